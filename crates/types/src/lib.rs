//! The Operator Platform's object model.
//!
//! Every object the platform stores is an [`Object`]: metadata (kind, organization, name, uid,
//! revision, times, labels), a kind-specific spec written by users, and a status written by
//! controllers. This crate does no I/O: it defines the shapes, their JSON forms (which are the
//! API's wire forms) and their validation, so the API layer, the store and the controllers agree
//! on one vocabulary.

pub mod alarm;
pub mod ams;
pub mod cluster;
pub mod egress;
pub mod ewbi;
pub mod ids;
pub mod meta;
pub mod mobility;
pub mod registry;
pub mod observe;
pub mod secret;
pub mod serverless;
pub mod specs;
pub mod uni;
pub mod validate;
pub mod views;

pub use ids::{Name, Uid};
pub use meta::{Condition, Home, Kind, Meta, Object, State, Status};
pub use validate::{FieldError, Validate};

/// An error with its causes, joined by `: ` (an HTTP client's own message, "error sending
/// request", says nothing of a refused connection, a timeout or a bad certificate).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        out.push_str(": ");
        out.push_str(&c.to_string());
        next = c.source();
    }
    out
}
