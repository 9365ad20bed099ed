//! A read cache of kinds that change rarely and are read on every reconcile (apps, flavors,
//! cloudlets): informers keep the stored bytes in memory, the first read of each version
//! decodes them and keeps what it decoded for the reads after it (shared, not copied), and a
//! miss (an object newer than the last event) asks the store. Reads through it may lag a write by the
//! watch's delay, which is what a reconcile that is triggered again on change can afford;
//! objects a caller must see at their latest (the one it reconciles) are read from the store.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use op_types::{Kind, Name, Object, Uid};
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::informer::{Change, Informer, Raw};
use crate::repo::{Repo, RepoError};

#[derive(Default)]
struct Kept {
    by_uid: HashMap<Uid, Arc<Entry>>,
    names: HashMap<(Option<Name>, Name), Uid>,
}

/// One kept version: its bytes, and the object its last reader decoded them into (a reader
/// that wants another type decodes again and keeps its own).
struct Entry {
    raw: Raw,
    decoded: Mutex<Option<(TypeId, Arc<dyn Any + Send + Sync>)>>,
}

impl Entry {
    /// The object as `Object<S, X>`, decoded once per version and type.
    fn decoded<S, X>(&self) -> Result<Arc<Object<S, X>>, RepoError>
    where
        S: DeserializeOwned + Send + Sync + 'static,
        X: DeserializeOwned + Default + Send + Sync + 'static,
    {
        let wanted = TypeId::of::<Object<S, X>>();
        let mut slot = self.decoded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((kept, any)) = slot.as_ref() {
            if *kept == wanted {
                if let Ok(o) = any.clone().downcast::<Object<S, X>>() {
                    return Ok(o);
                }
            }
        }
        let o = Arc::new(self.raw.decode::<S, X>()?);
        *slot = Some((wanted, o.clone()));
        Ok(o)
    }
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
                kept.by_uid.insert(raw.uid(), Arc::new(Entry { raw: raw.clone(), decoded: Mutex::new(None) }));
            }
            Change::Deleted(uid) => {
                let gone = kept.by_uid.remove(&uid).and_then(|e| e.raw.decode::<IgnoredAny, IgnoredAny>().ok());
                if let Some(head) = gone {
                    kept.names.remove(&(head.metadata.organization, head.metadata.name));
                }
            }
        }
    }

    /// The kept version of `kind` `uid` (`None`: not kept, ask the store).
    fn entry(&self, kind: Kind, uid: Uid) -> Option<Arc<Entry>> {
        self.read().get(&kind).and_then(|k| k.by_uid.get(&uid).cloned())
    }

    /// The uid of `kind` named `name` in `org`, if kept.
    fn uid_of(&self, kind: Kind, org: Option<&Name>, name: &Name) -> Option<Uid> {
        self.read().get(&kind).and_then(|k| k.names.get(&(org.cloned(), name.clone())).copied())
    }

    /// Object `uid` of `kind` if kept.
    pub fn get<S, X>(&self, kind: Kind, uid: Uid) -> Option<Result<Arc<Object<S, X>>, RepoError>>
    where
        S: DeserializeOwned + Send + Sync + 'static,
        X: DeserializeOwned + Default + Send + Sync + 'static,
    {
        self.entry(kind, uid).map(|e| e.decoded())
    }

    /// Object `name` of `kind` in `org` if kept.
    pub fn get_by_name<S, X>(&self, kind: Kind, org: Option<&Name>, name: &Name) -> Option<Result<Arc<Object<S, X>>, RepoError>>
    where
        S: DeserializeOwned + Send + Sync + 'static,
        X: DeserializeOwned + Default + Send + Sync + 'static,
    {
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
    type Shared = std::sync::Arc<Loose>;

    /// Waits until the cached read of flavor `uid` through `repo` satisfies `want`.
    async fn eventually(repo: &Repo, uid: op_types::Uid, want: impl Fn(Option<Shared>) -> bool) {
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
        let hit: Shared = repo.get_by_name_cached(Kind::Flavor, None, &name).await.unwrap().unwrap();
        assert_eq!((hit.spec["vcpus"].as_u64(), hit.metadata.revision), (Some(1), small.metadata.revision));
        // A version is decoded once, and shared by the reads after it; a reader of another
        // type gets its own.
        let again: Shared = repo.get_cached(Kind::Flavor, small.metadata.uid).await.unwrap().unwrap();
        assert!(std::sync::Arc::ptr_eq(&hit, &again), "the second read shares the first one's object");
        let header = repo.get_cached::<serde::de::IgnoredAny, serde::de::IgnoredAny>(Kind::Flavor, small.metadata.uid).await.unwrap().unwrap();
        assert_eq!(header.metadata.name, name);

        small.spec = json!({"vcpus": 2});
        plain.update(&mut small).await.unwrap();
        eventually(&repo, small.metadata.uid, |o| o.is_some_and(|o| o.spec["vcpus"] == 2 && o.metadata.revision == small.metadata.revision)).await;
        assert_eq!(hit.spec["vcpus"], 1, "an earlier reader keeps the version it read");

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
            let o: Option<Shared> = repo.get_cached(Kind::App, uid).await.unwrap();
            if o.is_some_and(|o| o.spec["image"] == "v2") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The kept copy put back to v1, as if the cache's watch lagged the update.
        repo.cache.as_ref().unwrap().apply(Kind::App, crate::informer::Change::Put(&crate::informer::Raw::of(&v1).unwrap()));
        let kept: Shared = repo.get_cached(Kind::App, uid).await.unwrap().unwrap();
        assert_eq!(kept.spec["image"], "v1", "the lagging copy");
        let fresh: Shared = repo.get_cached_since(Kind::App, uid, Some(app.metadata.revision)).await.unwrap().unwrap();
        assert_eq!(fresh.spec["image"], "v2", "older than the floor: the store's");
        let any: Shared = repo.get_cached_since(Kind::App, uid, Some(kept.metadata.revision)).await.unwrap().unwrap();
        assert_eq!(any.spec["image"], "v1", "new enough: the kept copy");
        let unknown: Shared = repo.get_cached_since(Kind::App, uid, None).await.unwrap().unwrap();
        assert_eq!(unknown.spec["image"], "v2", "no floor: the store's");
    }
}
