//! Keeps an [`EdgeIndex`] current: list each kind once, then apply its watch events; a broken or
//! compacted watch relists (dropping what vanished meanwhile).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use op_store::{Repo, RepoError, Revision, StoreError};
use op_types::specs::{App, AppInstance, Cloudlet, Organization, PlacementPolicy, Zone};
use op_types::{Kind, Uid};
use tokio::sync::watch;
use tracing::warn;

use crate::index::EdgeIndex;

/// The index shared by the feed (writer) and discovery (readers).
pub type SharedIndex = Arc<RwLock<EdgeIndex>>;

/// The index and a counter that moves on every change (for sessions to re-evaluate).
#[derive(Clone)]
pub struct Feed {
    /// The index.
    pub index: SharedIndex,
    /// Bumped after every applied change.
    pub changes: watch::Receiver<u64>,
}

/// The kinds the index follows.
const KINDS: [Kind; 6] = [Kind::Zone, Kind::Cloudlet, Kind::App, Kind::AppInstance, Kind::PlacementPolicy, Kind::Organization];

fn write(index: &SharedIndex) -> std::sync::RwLockWriteGuard<'_, EdgeIndex> {
    // A panic while holding the lock cannot leave the index half-updated in a way that matters
    // more than stopping discovery would: keep serving.
    index.write().unwrap_or_else(|e| e.into_inner())
}

/// Applies one stored object (or its removal) of `kind` to the index.
fn apply(index: &SharedIndex, kind: Kind, uid: Uid, value: Option<&serde_json::Value>) -> Result<(), RepoError> {
    let mut ix = write(index);
    ix.generation += 1;
    match (kind, value) {
        (Kind::Zone, Some(v)) => ix.upsert_zone(&serde_json::from_value::<Zone>(v.clone())?),
        (Kind::Zone, None) => ix.remove_zone(uid),
        (Kind::Cloudlet, Some(v)) => ix.upsert_cloudlet(&serde_json::from_value::<Cloudlet>(v.clone())?),
        (Kind::Cloudlet, None) => ix.remove_cloudlet(uid),
        (Kind::App, Some(v)) => ix.upsert_app(&serde_json::from_value::<App>(v.clone())?),
        (Kind::App, None) => ix.remove_app(uid),
        (Kind::AppInstance, Some(v)) => ix.upsert_instance(&serde_json::from_value::<AppInstance>(v.clone())?),
        (Kind::AppInstance, None) => ix.remove_instance(uid),
        (Kind::PlacementPolicy, Some(v)) => ix.upsert_policy(&serde_json::from_value::<PlacementPolicy>(v.clone())?),
        (Kind::PlacementPolicy, None) => ix.remove_policy(uid),
        (Kind::Organization, Some(v)) => ix.upsert_org(&serde_json::from_value::<Organization>(v.clone())?),
        (Kind::Organization, None) => ix.remove_org(uid),
        _ => {}
    }
    Ok(())
}

fn remove(index: &SharedIndex, kind: Kind, uid: Uid) {
    let _ = apply(index, kind, uid, None);
}

/// Lists `kind` into the index, dropping entries that are no longer stored; returns the
/// revision to watch from.
async fn list(repo: &Repo, index: &SharedIndex, kind: Kind, known: &mut HashSet<Uid>) -> Result<Revision, RepoError> {
    let (objs, rev) = repo.list::<serde_json::Value, serde_json::Value>(kind).await?;
    let mut seen = HashSet::new();
    for o in objs {
        let uid = o.metadata.uid;
        seen.insert(uid);
        apply(index, kind, uid, Some(&serde_json::to_value(&o)?))?;
    }
    for gone in known.difference(&seen) {
        remove(index, kind, *gone);
    }
    *known = seen;
    Ok(rev)
}

async fn follow(
    repo: Repo,
    index: SharedIndex,
    kind: Kind,
    mut rev: Revision,
    mut known: HashSet<Uid>,
    notify: Arc<watch::Sender<u64>>,
) {
    loop {
        match repo.watch(kind, rev).await {
            Ok(mut w) => {
                while let Some(ev) = w.recv().await {
                    match ev {
                        Ok(ev) => {
                            rev = ev.kv.mod_revision;
                            match Repo::decode_event::<serde_json::Value, serde_json::Value>(&ev) {
                                Ok((uid, Some(obj))) => {
                                    known.insert(uid);
                                    if let Err(e) = serde_json::to_value(&obj).map_err(RepoError::from).and_then(|v| apply(&index, kind, uid, Some(&v))) {
                                        warn!(%kind, %uid, error = %e, "cannot index object");
                                    }
                                }
                                Ok((uid, None)) => {
                                    known.remove(&uid);
                                    remove(&index, kind, uid);
                                }
                                Err(e) => warn!(%kind, error = %e, "undecodable watch event"),
                            }
                            let generation = index.read().map(|ix| ix.generation).unwrap_or_default();
                            notify.send_replace(generation);
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
        match list(&repo, &index, kind, &mut known).await {
            Ok(r) => rev = r,
            Err(e) => warn!(%kind, error = %e, "relist failed"),
        }
    }
}

/// Builds the index from the store and keeps it current in background tasks. Returns once the
/// first full list is in, so a discovery request never sees an empty index after a restart.
pub async fn start(repo: Repo) -> Result<Feed, RepoError> {
    let index: SharedIndex = Arc::default();
    let (tx, changes) = watch::channel(0);
    let tx = Arc::new(tx);
    for kind in KINDS {
        let mut known = HashSet::new();
        let rev = list(&repo, &index, kind, &mut known).await?;
        tokio::spawn(follow(repo.clone(), index.clone(), kind, rev, known, tx.clone()));
    }
    Ok(Feed { index, changes })
}
