//! Placement: where an app runs. Pure and deterministic (no I/O, no clock, no randomness), so
//! it is property-tested against an exact solver and benchmarked on its own.
//!
//! - [`cover`]: the minimum set of edges covering a footprint within a latency bound.

pub mod cover;
