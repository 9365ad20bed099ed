//! The UNI core: what answers "where is my edge?" in one round trip.
//!
//! - [`index::EdgeIndex`]: zones, cloudlets, apps and instances held in memory and kept current
//!   by store watches ([`feed::run`]), so a discovery request touches no store.
//! - [`select`]: the pure selection: hard constraints (readiness, maintenance, footprint, data
//!   geography, latency/jitter/bandwidth bounds) then the operator's weight matrix.
//! - [`token`]: session tokens signed with the platform's Ed25519 key, which cloudlets verify
//!   with the public key alone, so a session needs no further round trip to the platform.

pub mod feed;
pub mod geo;
pub mod index;
pub mod limit;
pub mod select;
pub mod sessions;
pub mod token;
