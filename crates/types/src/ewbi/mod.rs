//! The GSMA OPG East/Westbound (federation) interface: wire shapes of the published API, the
//! federated identifiers that cross between operators, and settlement's usage records. No I/O.

pub mod objects;
pub mod usage;
pub mod wire;
