//! The platform's store: a key-value engine with etcd's semantics (a global revision counter,
//! per-key create/mod revisions, transactions guarded by compares, prefix ranges, and watches
//! that resume from a revision), and [`Repo`], the typed object layer every caller uses.
//!
//! The engine trait is deliberately tiny so that engines are interchangeable: the embedded
//! default, [`RedbEngine`], is durable on disk and crash-safe (redb commits are atomic and
//! fsynced); [`EtcdEngine`] keeps a region's data in an etcd cluster that several `opd`
//! replicas share, and elects the one that runs the controllers. One test suite
//! (`tests/engine_suite.rs`) runs against every engine.

mod engine;
mod etcd_engine;
pub mod cache;
pub mod etcd_lab;
pub mod homes;
pub mod informer;
mod redb_engine;
mod repo;

pub use engine::{Compare, Engine, Event, EventKind, KeyValue, Op, Revision, StoreError, Watch};
pub use etcd_engine::{EtcdEngine, EtcdSettings, Leadership, PAGE};
pub use redb_engine::RedbEngine;
pub use cache::ReadCache;
pub use repo::{kind_prefix, object_key, uid_of_key, Repo, RepoError};
