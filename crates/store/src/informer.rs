//! An informer keeps an in-memory consumer in step with one kind: it lists the kind, then
//! applies its watch events; after a broken or compacted watch it lists again and reports
//! what vanished meanwhile as deletions. Hot paths (discovery's index, the event log) read
//! their own memory and never the store per request; this is how that memory stays current.

use std::collections::HashSet;
use std::time::Duration;

use op_types::{Kind, Object, Uid};
use tracing::warn;

use crate::engine::{Revision, StoreError};
use crate::repo::{Repo, RepoError};

/// A stored object as the informer hands it on: spec and observed left as JSON, for the
/// consumer to decode into what it needs.
pub type RawObject = Object<serde_json::Value, serde_json::Value>;

/// One change to the followed kind.
#[derive(Debug)]
pub enum Change<'a> {
    /// The object was created or changed (or was found by a list).
    Put(&'a RawObject),
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
        let (objs, rev) = self.repo.list::<serde_json::Value, serde_json::Value>(self.kind).await?;
        let seen: HashSet<Uid> = objs.iter().map(|o| o.metadata.uid).collect();
        for o in &objs {
            on(Change::Put(o));
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
                                match Repo::decode_event::<serde_json::Value, serde_json::Value>(&ev) {
                                    Ok((uid, Some(obj))) => {
                                        self.known.insert(uid);
                                        on(Change::Put(&obj));
                                    }
                                    Ok((uid, None)) => {
                                        self.known.remove(&uid);
                                        on(Change::Deleted(uid));
                                    }
                                    Err(e) => warn!(%kind, error = %e, "undecodable watch event"),
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
