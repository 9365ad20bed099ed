//! A read cache of kinds that change rarely and are read on every reconcile (apps, flavors,
//! cloudlets): informers keep the stored bytes in memory, reads decode them, and a miss (an
//! object newer than the last event) asks the store. Reads through it may lag a write by the
//! watch's delay, which is what a reconcile that is triggered again on change can afford;
//! objects a caller must see at their latest (the one it reconciles) are read from the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use op_types::{Kind, Name, Object, Uid};
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::informer::{Change, Informer, Raw};
use crate::repo::{Repo, RepoError};

#[derive(Default)]
struct Kept {
    by_uid: HashMap<Uid, Arc<Raw>>,
    names: HashMap<(Option<Name>, Name), Uid>,
}

/// The followed kinds' objects as stored. Cheap to clone.
#[derive(Clone, Default)]
pub struct ReadCache {
    kinds: Arc<RwLock<HashMap<Kind, Kept>>>,
}

impl ReadCache {
    /// Lists `kinds` from `repo`, then follows them in the background.
    pub async fn start(repo: &Repo, kinds: &[Kind]) -> Result<Self, RepoError> {
        let me = Self::default();
        for &kind in kinds {
            me.write().insert(kind, Kept::default());
            let informer = Informer::start(repo.clone(), kind, &mut |c| me.apply(kind, c)).await?;
            let follower = me.clone();
            tokio::spawn(informer.run(move |c| follower.apply(kind, c)));
        }
        Ok(me)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Kind, Kept>> {
        self.kinds.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Kind, Kept>> {
        self.kinds.read().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, kind: Kind, change: Change<'_>) {
        let mut kinds = self.write();
        let Some(kept) = kinds.get_mut(&kind) else { return };
        match change {
            Change::Put(raw) => {
                let Ok(head) = raw.decode::<IgnoredAny, IgnoredAny>() else { return };
                kept.names.insert((head.metadata.organization, head.metadata.name), raw.uid());
                kept.by_uid.insert(raw.uid(), Arc::new(raw.clone()));
            }
            Change::Deleted(uid) => {
                let gone = kept.by_uid.remove(&uid).and_then(|r| r.decode::<IgnoredAny, IgnoredAny>().ok());
                if let Some(head) = gone {
                    kept.names.remove(&(head.metadata.organization, head.metadata.name));
                }
            }
        }
    }

    /// The kept bytes of `kind` `uid` (`None`: not kept, ask the store).
    fn raw(&self, kind: Kind, uid: Uid) -> Option<Arc<Raw>> {
        self.read().get(&kind).and_then(|k| k.by_uid.get(&uid).cloned())
    }

    /// The uid of `kind` named `name` in `org`, if kept.
    fn uid_of(&self, kind: Kind, org: Option<&Name>, name: &Name) -> Option<Uid> {
        self.read().get(&kind).and_then(|k| k.names.get(&(org.cloned(), name.clone())).copied())
    }

    /// Object `uid` of `kind` if kept (decoded now).
    pub fn get<S: DeserializeOwned, X: DeserializeOwned + Default>(&self, kind: Kind, uid: Uid) -> Option<Result<Object<S, X>, RepoError>> {
        self.raw(kind, uid).map(|r| r.decode())
    }

    /// Object `name` of `kind` in `org` if kept (decoded now).
    pub fn get_by_name<S: DeserializeOwned, X: DeserializeOwned + Default>(&self, kind: Kind, org: Option<&Name>, name: &Name) -> Option<Result<Object<S, X>, RepoError>> {
        self.uid_of(kind, org, name).and_then(|u| self.get(kind, u))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use op_types::{Kind, Name, Object};
    use serde_json::{json, Value};

    use crate::{Engine, RedbEngine, Repo};

    type Loose = Object<Value, Value>;

    /// Waits until the cached read of flavor `uid` through `repo` satisfies `want`.
    async fn eventually(repo: &Repo, uid: op_types::Uid, want: impl Fn(Option<Loose>) -> bool) {
        for _ in 0..200 {
            if want(repo.get_cached(Kind::Flavor, uid).await.unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the cache did not follow within 2 s");
    }

    /// Cached reads find what was there when the cache started, follow changes and deletions
    /// through the watch, find objects by name, and ask the store for kinds not followed.
    #[tokio::test]
    async fn cached_reads_follow_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let engine: std::sync::Arc<dyn Engine> = RedbEngine::open(&dir.path().join("s.redb")).unwrap();
        let plain = Repo::new(engine);
        let mut small: Loose = Object::new(Kind::Flavor, None, Name::new("small").unwrap(), json!({"vcpus": 1}));
        plain.create(&mut small).await.unwrap();
        let repo = plain.clone().with_read_cache(&[Kind::Flavor]).await.unwrap();
        let name = Name::new("small").unwrap();
        let hit: Loose = repo.get_by_name_cached(Kind::Flavor, None, &name).await.unwrap().unwrap();
        assert_eq!((hit.spec["vcpus"].as_u64(), hit.metadata.revision), (Some(1), small.metadata.revision));

        small.spec = json!({"vcpus": 2});
        plain.update(&mut small).await.unwrap();
        eventually(&repo, small.metadata.uid, |o| o.is_some_and(|o| o.spec["vcpus"] == 2 && o.metadata.revision == small.metadata.revision)).await;

        plain.delete(&small).await.unwrap();
        eventually(&repo, small.metadata.uid, |o| o.is_none()).await;
        assert!(repo.get_by_name_cached::<Value, Value>(Kind::Flavor, None, &name).await.unwrap().is_none(), "its name went with it");

        let mut app: Loose = Object::new(Kind::App, None, Name::new("web").unwrap(), json!({}));
        plain.create(&mut app).await.unwrap();
        assert!(repo.get_cached::<Value, Value>(Kind::App, app.metadata.uid).await.unwrap().is_some(), "a kind not followed is read from the store");
    }

    /// A reader that needs a revision at least as new as the one it knows of gets the kept
    /// copy only when it is that new, else the store's.
    #[tokio::test]
    async fn a_floor_passes_over_an_older_copy() {
        let dir = tempfile::tempdir().unwrap();
        let engine: std::sync::Arc<dyn Engine> = RedbEngine::open(&dir.path().join("s.redb")).unwrap();
        let plain = Repo::new(engine);
        let mut app: Loose = Object::new(Kind::App, None, Name::new("web").unwrap(), json!({"image": "v1"}));
        plain.create(&mut app).await.unwrap();
        let repo = plain.clone().with_read_cache(&[Kind::App]).await.unwrap();
        let uid = app.metadata.uid;
        let v1 = app.clone();
        app.spec = json!({"image": "v2"});
        plain.update(&mut app).await.unwrap();
        for _ in 0..200 {
            let o: Option<Loose> = repo.get_cached(Kind::App, uid).await.unwrap();
            if o.is_some_and(|o| o.spec["image"] == "v2") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The kept copy put back to v1, as if the cache's watch lagged the update.
        repo.cache.as_ref().unwrap().apply(Kind::App, crate::informer::Change::Put(&crate::informer::Raw::of(&v1).unwrap()));
        let kept: Loose = repo.get_cached(Kind::App, uid).await.unwrap().unwrap();
        assert_eq!(kept.spec["image"], "v1", "the lagging copy");
        let fresh: Loose = repo.get_cached_since(Kind::App, uid, Some(app.metadata.revision)).await.unwrap().unwrap();
        assert_eq!(fresh.spec["image"], "v2", "older than the floor: the store's");
        let any: Loose = repo.get_cached_since(Kind::App, uid, Some(kept.metadata.revision)).await.unwrap().unwrap();
        assert_eq!(any.spec["image"], "v1", "new enough: the kept copy");
        let unknown: Loose = repo.get_cached_since(Kind::App, uid, None).await.unwrap().unwrap();
        assert_eq!(unknown.spec["image"], "v2", "no floor: the store's");
    }
}
