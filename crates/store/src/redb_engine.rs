//! The embedded engine: [redb](https://docs.rs/redb), one file on disk. Every transaction is
//! one redb write transaction committed with immediate durability (fsync), so a `kill -9` at any
//! moment leaves either all of a transaction or none of it.
//!
//! Tables:
//! - `kv`: key -> `create_rev (u64 LE) | mod_rev (u64 LE) | value`
//! - `log`: `(revision, index)` -> `kind (1 byte) | create_rev (u64 LE) | key_len (u32 LE) | key | value`,
//!   the watch history, trimmed to the last `history` revisions
//! - `meta`: `"rev"` -> current revision, `"compacted"` -> oldest revision a watch may start after

use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::{broadcast, mpsc};

use crate::engine::{Compare, Engine, Event, EventKind, KeyValue, Op, Revision, StoreError, Watch};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Revisions of history kept for watches by default.
pub const DEFAULT_HISTORY: u64 = 100_000;
/// How often (in revisions) old history is trimmed.
const COMPACT_EVERY: u64 = 1000;
/// Buffer of a watch stream.
const WATCH_BUFFER: usize = 1024;

/// One committed transaction's events, as broadcast to live watchers.
type Batch = Arc<(Revision, Vec<Event>)>;

/// The embedded, durable engine.
pub struct RedbEngine {
    db: Arc<Database>,
    /// Serializes writers so batches are broadcast in revision order.
    write_lock: Arc<Mutex<()>>,
    live: broadcast::Sender<Batch>,
    history: u64,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(key: &str, reason: &str) -> StoreError {
    StoreError::Corrupt { key: key.to_string(), reason: reason.to_string() }
}

fn encode_kv(create: u64, modr: u64, value: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + value.len());
    b.extend_from_slice(&create.to_le_bytes());
    b.extend_from_slice(&modr.to_le_bytes());
    b.extend_from_slice(value);
    b
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes)
}

fn decode_kv(key: &str, b: &[u8]) -> Result<KeyValue, StoreError> {
    let (Some(create_revision), Some(mod_revision)) = (u64_at(b, 0), u64_at(b, 8)) else {
        return Err(corrupt(key, "short kv record"));
    };
    Ok(KeyValue { key: key.to_string(), value: b[16..].to_vec(), create_revision, mod_revision })
}

fn encode_event(ev: &Event) -> Vec<u8> {
    let k = ev.kv.key.as_bytes();
    let mut b = Vec::with_capacity(13 + k.len() + ev.kv.value.len());
    b.push(match ev.kind {
        EventKind::Put => 0,
        EventKind::Delete => 1,
    });
    b.extend_from_slice(&ev.kv.create_revision.to_le_bytes());
    b.extend_from_slice(&(k.len() as u32).to_le_bytes());
    b.extend_from_slice(k);
    b.extend_from_slice(&ev.kv.value);
    b
}

fn decode_event(rev: u64, b: &[u8]) -> Result<Event, StoreError> {
    let bad = || corrupt("log", "short event record");
    let kind = match b.first() {
        Some(0) => EventKind::Put,
        Some(1) => EventKind::Delete,
        _ => return Err(bad()),
    };
    let create_revision = u64_at(b, 1).ok_or_else(bad)?;
    let klen = b.get(9..13).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes).ok_or_else(bad)? as usize;
    let key = b.get(13..13 + klen).ok_or_else(bad)?;
    let key = std::str::from_utf8(key).map_err(|_| corrupt("log", "key is not utf-8"))?.to_string();
    let value = b[13 + klen..].to_vec();
    Ok(Event { kind, kv: KeyValue { key, value, create_revision, mod_revision: rev } })
}

fn meta_get(db: &Database, name: &str) -> Result<u64, StoreError> {
    let r = db.begin_read().map_err(unavailable)?;
    let t = match r.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(unavailable(e)),
    };
    Ok(t.get(name).map_err(unavailable)?.map(|v| v.value()).unwrap_or(0))
}

/// Reads the history of revisions in `(after, ..]` and the revision it reaches.
fn read_log(db: &Database, after: u64) -> Result<(Vec<(u64, Event)>, u64), StoreError> {
    let r = db.begin_read().map_err(unavailable)?;
    let rev = match r.open_table(META) {
        Ok(t) => t.get("rev").map_err(unavailable)?.map(|v| v.value()).unwrap_or(0),
        Err(redb::TableError::TableDoesNotExist(_)) => 0,
        Err(e) => return Err(unavailable(e)),
    };
    let log = match r.open_table(LOG) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((vec![], rev)),
        Err(e) => return Err(unavailable(e)),
    };
    let mut out = Vec::new();
    for item in log.range((after.saturating_add(1), 0u32)..).map_err(unavailable)? {
        let (k, v) = item.map_err(unavailable)?;
        let (r, _) = k.value();
        if r > rev {
            break;
        }
        out.push((r, decode_event(r, v.value())?));
    }
    Ok((out, rev))
}

impl RedbEngine {
    /// Opens (or creates) the store at `path`, keeping [`DEFAULT_HISTORY`] revisions of history.
    pub fn open(path: &Path) -> Result<Arc<Self>, StoreError> {
        Self::open_with_history(path, DEFAULT_HISTORY)
    }

    /// Opens (or creates) the store at `path`, keeping `history` revisions for watches.
    pub fn open_with_history(path: &Path, history: u64) -> Result<Arc<Self>, StoreError> {
        let db = Database::create(path).map_err(unavailable)?;
        let w = db.begin_write().map_err(unavailable)?;
        {
            w.open_table(KV).map_err(unavailable)?;
            w.open_table(LOG).map_err(unavailable)?;
            w.open_table(META).map_err(unavailable)?;
        }
        w.commit().map_err(unavailable)?;
        let (live, _) = broadcast::channel(4096);
        Ok(Arc::new(Self { db: Arc::new(db), write_lock: Arc::new(Mutex::new(())), live, history: history.max(1) }))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(unavailable)?
    }

    fn apply(
        db: &Database,
        history: u64,
        compares: &[Compare],
        ops: &[Op],
    ) -> Result<(Revision, Vec<Event>), StoreError> {
        let w = db.begin_write().map_err(unavailable)?;
        let (rev, events) = {
            let mut kv = w.open_table(KV).map_err(unavailable)?;
            let mut meta = w.open_table(META).map_err(unavailable)?;
            let current = meta.get("rev").map_err(unavailable)?.map(|v| v.value()).unwrap_or(0);
            for c in compares {
                let holds = match c {
                    Compare::Absent(k) => kv.get(k.as_str()).map_err(unavailable)?.is_none(),
                    Compare::ModRevision(k, r) => match kv.get(k.as_str()).map_err(unavailable)? {
                        Some(v) => decode_kv(k, v.value())?.mod_revision == *r,
                        None => false,
                    },
                };
                if !holds {
                    return Err(StoreError::Conflict);
                }
            }
            let rev = current + 1;
            let mut events = Vec::new();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        let create = match kv.get(k.as_str()).map_err(unavailable)? {
                            Some(old) => decode_kv(k, old.value())?.create_revision,
                            None => rev,
                        };
                        kv.insert(k.as_str(), encode_kv(create, rev, v).as_slice()).map_err(unavailable)?;
                        events.push(Event {
                            kind: EventKind::Put,
                            kv: KeyValue { key: k.clone(), value: v.clone(), create_revision: create, mod_revision: rev },
                        });
                    }
                    Op::Delete(k) => {
                        if kv.remove(k.as_str()).map_err(unavailable)?.is_some() {
                            events.push(Event {
                                kind: EventKind::Delete,
                                kv: KeyValue { key: k.clone(), value: Vec::new(), create_revision: 0, mod_revision: rev },
                            });
                        }
                    }
                }
            }
            if events.is_empty() {
                // Nothing changed: no new revision (etcd bumps only on change).
                return Ok((current, events));
            }
            let mut log = w.open_table(LOG).map_err(unavailable)?;
            for (i, ev) in events.iter().enumerate() {
                log.insert((rev, i as u32), encode_event(ev).as_slice()).map_err(unavailable)?;
            }
            meta.insert("rev", rev).map_err(unavailable)?;
            if rev % COMPACT_EVERY == 0 && rev > history {
                let cut = rev - history;
                log.retain_in(..(cut + 1, 0u32), |_, _| false).map_err(unavailable)?;
                meta.insert("compacted", cut).map_err(unavailable)?;
            }
            (rev, events)
        };
        w.commit().map_err(unavailable)?;
        Ok((rev, events))
    }
}

#[async_trait]
impl Engine for RedbEngine {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_string();
        self.blocking(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(KV).map_err(unavailable)?;
            let v = t.get(key.as_str()).map_err(unavailable)?;
            v.map(|v| decode_kv(&key, v.value())).transpose()
        })
        .await
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        let prefix = prefix.to_string();
        self.blocking(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let rev = r.open_table(META).map_err(unavailable)?.get("rev").map_err(unavailable)?.map(|v| v.value()).unwrap_or(0);
            let t = r.open_table(KV).map_err(unavailable)?;
            let mut out = Vec::new();
            let range = t.range::<&str>((Bound::Included(prefix.as_str()), Bound::Unbounded)).map_err(unavailable)?;
            for item in range {
                let (k, v) = item.map_err(unavailable)?;
                let k = k.value();
                if !k.starts_with(prefix.as_str()) {
                    break;
                }
                out.push(decode_kv(k, v.value())?);
            }
            Ok((out, rev))
        })
        .await
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<Revision, StoreError> {
        let lock = self.write_lock.clone();
        let live = self.live.clone();
        let history = self.history;
        self.blocking(move |db| {
            let _guard = lock.lock().map_err(|_| unavailable("writer lock poisoned"))?;
            let (rev, events) = Self::apply(db, history, &compares, &ops)?;
            if !events.is_empty() {
                // No receivers is fine: nobody watches.
                let _ = live.send(Arc::new((rev, events)));
            }
            Ok(rev)
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
        let compacted = {
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || meta_get(&db, "compacted")).await.map_err(unavailable)??
        };
        if after < compacted {
            return Err(StoreError::Compacted(after));
        }
        // Subscribe before reading history, so nothing committed in between is missed.
        let mut live = self.live.subscribe();
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let db = self.db.clone();
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            // Replays history after `last` to the watcher; returns the revision reached, or
            // None when the watcher is gone or the history could not be read.
            let catch_up = |last: u64| {
                let (db, tx, prefix) = (db.clone(), tx.clone(), prefix.clone());
                async move {
                    let read = tokio::task::spawn_blocking(move || read_log(&db, last)).await.map_err(unavailable);
                    match read.and_then(|r| r) {
                        Ok((events, reached)) => {
                            for (_, ev) in events {
                                if ev.kv.key.starts_with(&prefix) && tx.send(Ok(ev)).await.is_err() {
                                    return None;
                                }
                            }
                            Some(last.max(reached))
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            None
                        }
                    }
                }
            };
            let Some(mut last) = catch_up(after).await else { return };
            loop {
                match live.recv().await {
                    Ok(batch) => {
                        let (rev, events) = (batch.0, &batch.1);
                        if rev <= last {
                            continue;
                        }
                        for ev in events {
                            if ev.kv.key.starts_with(&prefix) && tx.send(Ok(ev.clone())).await.is_err() {
                                return;
                            }
                        }
                        last = rev;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => match catch_up(last).await {
                        Some(reached) => last = reached,
                        None => return,
                    },
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(rx)
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.blocking(|db| meta_get(db, "rev")).await
    }
}
