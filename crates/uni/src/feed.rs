//! Keeps an [`EdgeIndex`] current: one [`Informer`] per kind it follows.

use std::sync::{Arc, RwLock};

use op_store::informer::{Change, Informer};
use op_store::{Repo, RepoError};
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

/// Applies one informer change to the index.
fn index_change(index: &SharedIndex, kind: Kind, change: Change<'_>) {
    let r = match change {
        Change::Put(o) => serde_json::to_value(o).map_err(RepoError::from).and_then(|v| apply(index, kind, o.metadata.uid, Some(&v))),
        Change::Deleted(uid) => apply(index, kind, uid, None),
    };
    if let Err(e) = r {
        warn!(%kind, error = %e, "cannot index object");
    }
}

/// Builds the index from the store and keeps it current in background tasks. Returns once the
/// first full list is in, so a discovery request never sees an empty index after a restart.
pub async fn start(repo: Repo) -> Result<Feed, RepoError> {
    let index: SharedIndex = Arc::default();
    let (tx, changes) = watch::channel(0);
    let tx = Arc::new(tx);
    for kind in KINDS {
        let informer = Informer::start(repo.clone(), kind, &mut |c| index_change(&index, kind, c)).await?;
        let (index, tx) = (index.clone(), tx.clone());
        tokio::spawn(informer.run(move |c| {
            index_change(&index, kind, c);
            let generation = index.read().map(|ix| ix.generation).unwrap_or_default();
            tx.send_replace(generation);
        }));
    }
    Ok(Feed { index, changes })
}
