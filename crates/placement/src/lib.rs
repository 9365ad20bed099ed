//! Placement: where an app runs. Pure and deterministic (no I/O, no clock, no randomness), so
//! it is property-tested against exact answers and benchmarked on its own.
//!
//! - [`decide`]: one instance: the app provider's hard criteria, the operator's barring rules,
//!   then the operator's weight matrix per app class, with the reasons kept.
//! - [`cover`]: the minimum set of edges covering a footprint within a latency bound.
//! - [`forecast`]: usage forecasts from recorded series, an input of the weight matrix.
//! - [`scale`]: capacity-based instantiation: instances per zone for the users there.

pub mod cover;
pub mod decide;
pub mod forecast;
pub mod scale;
pub mod serverless;
