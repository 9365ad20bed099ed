//! The storage-engine contract (etcd semantics).

use async_trait::async_trait;
use tokio::sync::mpsc;

/// A store revision: increases with every committed transaction that changes something (by
/// exactly one while this store has no other writer; an etcd cluster counts every prefix).
pub type Revision = u64;

/// A stored key and its value, with etcd's revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value bytes (JSON for objects).
    pub value: Vec<u8>,
    /// Revision of the transaction that created the key.
    pub create_revision: Revision,
    /// Revision of the last transaction that wrote the key.
    pub mod_revision: Revision,
}

/// A condition a transaction checks before applying its operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist.
    Absent(String),
    /// The key exists and was last written at exactly this revision.
    ModRevision(String, Revision),
}

/// A write inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create or overwrite.
    Put(String, Vec<u8>),
    /// Remove (no-op if absent).
    Delete(String),
}

/// Whether a watch event is a write or a removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or overwritten; `kv.value` is the new value.
    Put,
    /// The key was removed; `kv` names the key and the revision of the removal only (its
    /// value is empty): no consumer needs the last value, and carrying it would make etcd send
    /// every value twice with every write (its watches can ask for the previous value of all
    /// changes or of none).
    Delete,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key and value (for deletes, the key alone); `mod_revision` is the revision of the
    /// change.
    pub kv: KeyValue,
}

/// A stream of events under a prefix, in revision order, with no gaps and no repeats. It ends
/// with `Err(StoreError::Compacted)` if the watcher fell behind the engine's retained history;
/// the caller then lists again and watches from the list's revision.
pub type Watch = mpsc::Receiver<Result<Event, StoreError>>;

/// Engine errors. `Conflict` is the normal outcome of a lost compare-and-swap race.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A transaction's compare failed; nothing was written.
    #[error("conflict: the object changed since it was read")]
    Conflict,
    /// The requested watch start revision is older than the retained history.
    #[error("revision {0} has been compacted")]
    Compacted(Revision),
    /// The engine is not reachable or failed; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// This process does not keep these keys: they belong to another plane (a region's
    /// controller, or the global plane); the message says which and where to go.
    #[error("{0}")]
    Elsewhere(String),
    /// The stored bytes could not be decoded.
    #[error("corrupt value at {key}: {reason}")]
    Corrupt {
        /// Where.
        key: String,
        /// Why.
        reason: String,
    },
}

/// A storage engine. All methods are cancel-safe: a dropped future either committed fully or not
/// at all.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Reads every key starting with `prefix`, in key order, and the revision the read reflects.
    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError>;

    /// Applies `ops` atomically if every compare holds; returns the new revision, or
    /// `Conflict` with nothing written.
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<Revision, StoreError>;

    /// Streams every change under `prefix` with a revision greater than `after`.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError>;

    /// The current revision.
    async fn revision(&self) -> Result<Revision, StoreError>;
}
