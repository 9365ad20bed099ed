//! The Operator Platform's object model.
//!
//! Every object the platform stores is an [`Object`]: metadata (kind, organization, name, uid,
//! revision, times, labels), a kind-specific spec written by users, and a status written by
//! controllers. This crate does no I/O: it defines the shapes, their JSON forms (which are the
//! API's wire forms) and their validation, so the API layer, the store and the controllers agree
//! on one vocabulary.

pub mod ams;
pub mod ewbi;
pub mod ids;
pub mod meta;
pub mod mobility;
pub mod secret;
pub mod serverless;
pub mod specs;
pub mod uni;
pub mod validate;
pub mod views;

pub use ids::{Name, Uid};
pub use meta::{Condition, Kind, Meta, Object, State, Status};
pub use validate::{FieldError, Validate};
