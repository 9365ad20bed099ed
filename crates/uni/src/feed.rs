//! Keeps an [`EdgeIndex`] current: one [`Informer`] per kind it follows.

use std::sync::{Arc, RwLock};

use op_store::informer::{Change, Informer, Raw};
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

/// One decoded object of a kind the index follows.
enum Decoded {
    Zone(Box<Zone>),
    Cloudlet(Box<Cloudlet>),
    App(Box<App>),
    Instance(Box<AppInstance>),
    Policy(Box<PlacementPolicy>),
    Org(Box<Organization>),
}

/// Decodes a stored object of `kind` (outside the index's lock: discovery keeps reading
/// while it runs).
fn decode(kind: Kind, raw: &Raw) -> Result<Option<Decoded>, RepoError> {
    Ok(Some(match kind {
        Kind::Zone => Decoded::Zone(Box::new(raw.decode()?)),
        Kind::Cloudlet => Decoded::Cloudlet(Box::new(raw.decode()?)),
        Kind::App => Decoded::App(Box::new(raw.decode()?)),
        Kind::AppInstance => Decoded::Instance(Box::new(raw.decode()?)),
        Kind::PlacementPolicy => Decoded::Policy(Box::new(raw.decode()?)),
        Kind::Organization => Decoded::Org(Box::new(raw.decode()?)),
        _ => return Ok(None),
    }))
}

/// Applies one stored object (or its removal) of `kind` to the index.
fn apply(index: &SharedIndex, kind: Kind, uid: Uid, value: Option<Decoded>) {
    let mut ix = write(index);
    ix.generation += 1;
    match (kind, value) {
        (_, Some(Decoded::Zone(z))) => ix.upsert_zone(&z),
        (_, Some(Decoded::Cloudlet(c))) => ix.upsert_cloudlet(&c),
        (_, Some(Decoded::App(a))) => ix.upsert_app(&a),
        (_, Some(Decoded::Instance(i))) => ix.upsert_instance(&i),
        (_, Some(Decoded::Policy(p))) => ix.upsert_policy(&p),
        (_, Some(Decoded::Org(o))) => ix.upsert_org(&o),
        (Kind::Zone, None) => ix.remove_zone(uid),
        (Kind::Cloudlet, None) => ix.remove_cloudlet(uid),
        (Kind::App, None) => ix.remove_app(uid),
        (Kind::AppInstance, None) => ix.remove_instance(uid),
        (Kind::PlacementPolicy, None) => ix.remove_policy(uid),
        (Kind::Organization, None) => ix.remove_org(uid),
        _ => {}
    }
}

/// Applies one informer change to the index.
fn index_change(index: &SharedIndex, kind: Kind, change: Change<'_>) {
    match change {
        Change::Put(o) => match decode(kind, o) {
            Ok(Some(d)) => apply(index, kind, o.uid(), Some(d)),
            Ok(None) => {}
            Err(e) => warn!(%kind, error = %e, "cannot index object"),
        },
        Change::Deleted(uid) => apply(index, kind, uid, None),
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
