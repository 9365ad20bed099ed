//! An informer keeps an in-memory consumer in step with one kind: it lists the kind, then
//! applies its watch events; after a broken or compacted watch it lists again and reports
//! what vanished meanwhile as deletions. Hot paths (discovery's index, the event log) read
//! their own memory and never the store per request; this is how that memory stays current.

use std::collections::HashSet;
use std::time::Duration;

use op_types::{Kind, Object, Uid};
use tracing::warn;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::engine::{EventKind, Revision, StoreError};
use crate::repo::{uid_of_key, Repo, RepoError};

/// An object as the informer hands it on: its stored bytes, for each consumer to decode
/// straight into the type it needs (once, with the fields it skips never allocated).
#[derive(Debug, Clone)]
pub struct Raw {
    uid: Uid,
    revision: Revision,
    bytes: Vec<u8>,
}

impl Raw {
    /// `obj` as the store would hand it on (for tests of consumers).
    pub fn of<S: Serialize, X: Serialize>(obj: &Object<S, X>) -> Result<Self, RepoError> {
        Ok(Self { uid: obj.metadata.uid, revision: obj.metadata.revision, bytes: serde_json::to_vec(obj)? })
    }

    /// The object's uid.
    pub fn uid(&self) -> Uid {
        self.uid
    }

    /// The object as stored (JSON), for consumers that sift before decoding.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decodes the object; `serde::de::IgnoredAny` for a spec or observed status the
    /// consumer does not read skips it without allocating.
    pub fn decode<S: DeserializeOwned, X: DeserializeOwned + Default>(&self) -> Result<Object<S, X>, RepoError> {
        let mut o: Object<S, X> = serde_json::from_slice(&self.bytes)?;
        o.metadata.revision = self.revision;
        Ok(o)
    }
}

/// One change to the followed kind.
#[derive(Debug)]
pub enum Change<'a> {
    /// The object was created or changed (or was found by a list).
    Put(&'a Raw),
    /// The object with this uid is gone.
    Deleted(Uid),
}

/// Follows one kind for one consumer.
pub struct Informer {
    repo: Repo,
    kind: Kind,
    rev: Revision,
    known: HashSet<Uid>,
}

impl Informer {
    /// Lists `kind` into `on` and returns the informer to [`Informer::run`]; callers that
    /// must not serve before their memory is full await this first.
    pub async fn start(repo: Repo, kind: Kind, on: &mut (impl FnMut(Change<'_>) + Send)) -> Result<Self, RepoError> {
        let mut me = Self { repo, kind, rev: 0, known: HashSet::new() };
        me.relist(on).await?;
        Ok(me)
    }

    async fn relist(&mut self, on: &mut (impl FnMut(Change<'_>) + Send)) -> Result<(), RepoError> {
        let (kvs, rev) = self.repo.list_raw(self.kind).await?;
        let mut seen = HashSet::with_capacity(kvs.len());
        for kv in kvs {
            let Some(uid) = uid_of_key(&kv.key) else {
                warn!(kind = %self.kind, key = %kv.key, "a stored key that names no uid");
                continue;
            };
            seen.insert(uid);
            on(Change::Put(&Raw { uid, revision: kv.mod_revision, bytes: kv.value }));
        }
        for gone in self.known.difference(&seen) {
            on(Change::Deleted(*gone));
        }
        self.known = seen;
        self.rev = rev;
        Ok(())
    }

    /// Applies the kind's changes to `on` for ever (spawn it).
    pub async fn run(mut self, mut on: impl FnMut(Change<'_>) + Send) {
        let kind = self.kind;
        loop {
            match self.repo.watch(kind, self.rev).await {
                Ok(mut w) => {
                    while let Some(ev) = w.recv().await {
                        match ev {
                            Ok(ev) => {
                                self.rev = ev.kv.mod_revision;
                                let Some(uid) = uid_of_key(&ev.kv.key) else {
                                    warn!(%kind, key = %ev.kv.key, "a watched key that names no uid");
                                    continue;
                                };
                                match ev.kind {
                                    EventKind::Put => {
                                        self.known.insert(uid);
                                        on(Change::Put(&Raw { uid, revision: ev.kv.mod_revision, bytes: ev.kv.value }));
                                    }
                                    EventKind::Delete => {
                                        self.known.remove(&uid);
                                        on(Change::Deleted(uid));
                                    }
                                }
                            }
                            Err(StoreError::Compacted(_)) => break,
                            Err(e) => {
                                warn!(%kind, error = %e, "watch failed");
                                break;
                            }
                        }
                    }
                }
                Err(e) => warn!(%kind, error = %e, "cannot watch"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(e) = self.relist(&mut on).await {
                warn!(%kind, error = %e, "relist failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use op_types::{Kind, Name, Object};
    use serde::de::IgnoredAny;

    use super::*;
    use crate::repo::object_key;

    #[test]
    fn a_raw_object_decodes_into_what_the_consumer_reads() {
        let mut o: Object<serde_json::Value> = Object::new(Kind::AppInstance, None, Name::new("web_1").unwrap(), serde_json::json!({"cloudlet": "edge"}));
        o.metadata.revision = 42;
        let raw = Raw::of(&o).unwrap();
        assert_eq!(uid_of_key(&object_key(Kind::AppInstance, o.metadata.uid)), Some(raw.uid()));
        let header: Object<IgnoredAny, IgnoredAny> = raw.decode().unwrap();
        assert_eq!((header.metadata.name.as_str(), header.metadata.revision), ("web_1", 42));
        let full: Object<serde_json::Value> = raw.decode().unwrap();
        assert_eq!(full.spec["cloudlet"], "edge");
        assert_eq!(uid_of_key("/o/appinstances/not-a-uid"), None);
    }
}
