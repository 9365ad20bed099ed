//! Typed objects over an [`Engine`].
//!
//! Layout: an object lives at `/o/{kind}/{uid}` (so CAMARA's id-addressed calls are one read);
//! its name is claimed at `/n/{kind}/{org or _}/{name}` -> uid, written in the same transaction,
//! which makes names unique per kind and organization without a lock.

use std::sync::Arc;

use chrono::Utc;
use op_types::{Home, Kind, Name, Object, Uid};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::ReadCache;
use crate::engine::{Compare, Engine, Op, Revision, StoreError, Watch};

/// Errors of the typed layer.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// An object of this kind with this name already exists in this scope.
    #[error("{kind} '{name}' already exists")]
    AlreadyExists {
        /// Kind.
        kind: Kind,
        /// Name.
        name: String,
    },
    /// The object changed since it was read (compare-and-swap lost); re-read and retry.
    #[error("conflict: the object changed since it was read")]
    Conflict,
    /// The engine failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value does not decode as the expected type.
    #[error("stored object does not decode: {0}")]
    Codec(#[from] serde_json::Error),
}

/// Typed access to stored objects. Cheap to clone.
///
/// Each kind is kept in the engine of its [`Home`]: one engine for all three in the embedded
/// default and in a process that is both global plane and regional controller; different
/// engines when the platform runs split (see [`Repo::split`]).
#[derive(Clone)]
pub struct Repo {
    global: Arc<dyn Engine>,
    regional: Arc<dyn Engine>,
    local: Arc<dyn Engine>,
    /// Kinds read through memory by [`Repo::get_cached`] and [`Repo::get_by_name_cached`].
    pub(crate) cache: Option<ReadCache>,
}

/// What creating `obj` takes in a transaction: its key and, for a kind that claims names
/// ([`Kind::claims_name`]), its name's key must be free, and both are written.
fn creation<S: Serialize, X: Serialize>(obj: &Object<S, X>, compares: &mut Vec<Compare>, ops: &mut Vec<Op>) -> Result<(), RepoError> {
    let m = &obj.metadata;
    let key = object_key(m.kind, m.uid);
    compares.push(Compare::Absent(key.clone()));
    ops.push(Op::Put(key, serde_json::to_vec(obj)?));
    if m.kind.claims_name() {
        let nkey = name_key(m.kind, m.organization.as_ref(), &m.name);
        compares.push(Compare::Absent(nkey.clone()));
        ops.push(Op::Put(nkey, m.uid.to_string().into_bytes()));
    }
    Ok(())
}

/// The key an object of `kind` with `uid` is stored at.
pub fn object_key(kind: Kind, uid: Uid) -> String {
    format!("/o/{}/{uid}", kind.plural())
}

/// The uid of the object stored at `key` (`/o/{kind}/{uid}`): what a watcher needs to know
/// which object changed, without decoding it.
pub fn uid_of_key(key: &str) -> Option<Uid> {
    key.rsplit('/').next().and_then(|u| u.parse().ok())
}

/// The prefix under which all objects of `kind` are stored.
pub fn kind_prefix(kind: Kind) -> String {
    format!("/o/{}/", kind.plural())
}

fn name_key(kind: Kind, org: Option<&Name>, name: &Name) -> String {
    let scope = org.map_or("_", Name::as_str);
    format!("/n/{}/{scope}/{name}", kind.plural())
}

fn decode<T: DeserializeOwned>(bytes: &[u8], key: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { key: key.to_string(), reason: e.to_string() })
}

impl Repo {
    /// A repository keeping every kind in `engine`.
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        Self { global: engine.clone(), regional: engine.clone(), local: engine, cache: None }
    }

    /// A repository keeping global kinds in `global`, regional kinds in `regional` and local
    /// ones (audit) in `local`: a region's controller passes the global plane's store wrapped
    /// in [`crate::homes::ReadOnly`], the global plane passes [`crate::homes::Elsewhere`] for
    /// the regional kinds.
    pub fn split(global: Arc<dyn Engine>, regional: Arc<dyn Engine>, local: Arc<dyn Engine>) -> Self {
        Self { global, regional, local, cache: None }
    }

    /// The same repository, whose cached reads of `kinds` come from memory (see
    /// [`ReadCache`]): for controllers, which read the same apps, flavors and cloudlets on
    /// every reconcile.
    pub async fn with_read_cache(mut self, kinds: &[Kind]) -> Result<Self, RepoError> {
        self.cache = Some(ReadCache::start(&self, kinds).await?);
        Ok(self)
    }

    /// [`Repo::get`], from memory for a cached kind (which may lag a write by the watch's
    /// delay; a miss asks the store).
    pub async fn get_cached<S, X>(&self, kind: Kind, uid: Uid) -> Result<Option<Arc<Object<S, X>>>, RepoError>
    where
        S: DeserializeOwned + Send + Sync + 'static,
        X: DeserializeOwned + Default + Send + Sync + 'static,
    {
        match self.cache.as_ref().and_then(|c| c.get(kind, uid)) {
            Some(hit) => hit.map(Some),
            None => Ok(self.get(kind, uid).await?.map(Arc::new)),
        }
    }

    /// [`Repo::get_cached`] for a reader that knows how new the object must be: the kept copy
    /// when it is at revision `at_least` or later, else (or with no floor) the store's.
    pub async fn get_cached_since<S, X>(&self, kind: Kind, uid: Uid, at_least: Option<Revision>) -> Result<Option<Arc<Object<S, X>>>, RepoError>
    where
        S: DeserializeOwned + Send + Sync + 'static,
        X: DeserializeOwned + Default + Send + Sync + 'static,
    {
        if let (Some(floor), Some(cache)) = (at_least, self.cache.as_ref()) {
            if let Some(hit) = cache.get::<S, X>(kind, uid) {
                let hit = hit?;
                if hit.metadata.revision >= floor {
                    return Ok(Some(hit));
                }
            }
        }
        Ok(self.get(kind, uid).await?.map(Arc::new))
    }

    /// [`Repo::get_by_name`], from memory for a cached kind (as [`Repo::get_cached`]).
    pub async fn get_by_name_cached<S, X>(&self, kind: Kind, org: Option<&Name>, name: &Name) -> Result<Option<Arc<Object<S, X>>>, RepoError>
    where
        S: DeserializeOwned + Send + Sync + 'static,
        X: DeserializeOwned + Default + Send + Sync + 'static,
    {
        match self.cache.as_ref().and_then(|c| c.get_by_name(kind, org, name)) {
            Some(hit) => hit.map(Some),
            None => Ok(self.get_by_name(kind, org, name).await?.map(Arc::new)),
        }
    }

    /// The engine that keeps data of `home`, for callers that store raw keys (recorded usage
    /// is regional) or ask for a revision.
    pub fn engine(&self, home: Home) -> &Arc<dyn Engine> {
        match home {
            Home::Global => &self.global,
            Home::Regional => &self.regional,
            Home::Local => &self.local,
        }
    }

    fn of(&self, kind: Kind) -> &Arc<dyn Engine> {
        self.engine(kind.home())
    }

    /// Stores a new object, claiming its name. On success `obj.metadata.revision` is set.
    pub async fn create<S: Serialize, X: Serialize>(&self, obj: &mut Object<S, X>) -> Result<(), RepoError> {
        let (mut compares, mut ops) = (Vec::with_capacity(2), Vec::with_capacity(2));
        creation(obj, &mut compares, &mut ops)?;
        let m = &obj.metadata;
        match self.of(m.kind).txn(compares, ops).await {
            Ok(rev) => {
                obj.metadata.revision = rev;
                Ok(())
            }
            Err(StoreError::Conflict) => Err(RepoError::AlreadyExists { kind: m.kind, name: m.name.to_string() }),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a new object and, in the same transaction, `record`: a new object that says how
    /// it came (the audit record of the request that made it). One commit instead of two, and
    /// never one without the other. Where the two kinds live in different stores, only `obj`
    /// is stored and `false` returned: the caller stores `record` its usual way.
    pub async fn create_with<S: Serialize, X: Serialize, T: Serialize, Y: Serialize>(
        &self,
        obj: &mut Object<S, X>,
        record: &mut Object<T, Y>,
    ) -> Result<bool, RepoError> {
        if !Arc::ptr_eq(self.of(obj.metadata.kind), self.of(record.metadata.kind)) {
            self.create(obj).await?;
            return Ok(false);
        }
        let (mut compares, mut ops) = (Vec::with_capacity(4), Vec::with_capacity(4));
        creation(obj, &mut compares, &mut ops)?;
        creation(record, &mut compares, &mut ops)?;
        let m = &obj.metadata;
        match self.of(m.kind).txn(compares, ops).await {
            Ok(rev) => {
                obj.metadata.revision = rev;
                record.metadata.revision = rev;
                Ok(true)
            }
            // The record is new by construction (a fresh uid): the object's name is taken.
            Err(StoreError::Conflict) => Err(RepoError::AlreadyExists { kind: m.kind, name: m.name.to_string() }),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores many new objects in one transaction (all or none), claiming their names: for
    /// imports and fixtures, where one fsync per object would dominate. The objects' kinds must
    /// share a [`Home`] (one engine takes the transaction: the first object's).
    pub async fn create_batch<S: Serialize, X: Serialize>(&self, objs: &mut [Object<S, X>]) -> Result<(), RepoError> {
        let mut compares = Vec::with_capacity(objs.len() * 2);
        let mut ops = Vec::with_capacity(objs.len() * 2);
        for obj in objs.iter() {
            creation(obj, &mut compares, &mut ops)?;
        }
        let Some(kind) = objs.first().map(|o| o.metadata.kind) else { return Ok(()) };
        match self.of(kind).txn(compares, ops).await {
            Ok(rev) => {
                for o in objs.iter_mut() {
                    o.metadata.revision = rev;
                }
                Ok(())
            }
            Err(StoreError::Conflict) => Err(RepoError::AlreadyExists { kind, name: "(one of a batch)".into() }),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads an object by uid.
    pub async fn get<S: DeserializeOwned, X: DeserializeOwned + Default>(
        &self,
        kind: Kind,
        uid: Uid,
    ) -> Result<Option<Object<S, X>>, RepoError> {
        let key = object_key(kind, uid);
        let Some(kv) = self.of(kind).get(&key).await? else { return Ok(None) };
        let mut obj: Object<S, X> = decode(&kv.value, &key)?;
        obj.metadata.revision = kv.mod_revision;
        Ok(Some(obj))
    }

    /// Reads an object by name within `org` (or the operator scope when `None`); never finds
    /// one of a kind that claims no names ([`Kind::claims_name`]).
    pub async fn get_by_name<S: DeserializeOwned, X: DeserializeOwned + Default>(
        &self,
        kind: Kind,
        org: Option<&Name>,
        name: &Name,
    ) -> Result<Option<Object<S, X>>, RepoError> {
        let nkey = name_key(kind, org, name);
        let Some(kv) = self.of(kind).get(&nkey).await? else { return Ok(None) };
        let uid: Uid = std::str::from_utf8(&kv.value)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StoreError::Corrupt { key: nkey.clone(), reason: "not a uid".into() })?;
        self.get(kind, uid).await
    }

    /// Lists every object of `kind`, with the revision the list reflects (to watch from).
    pub async fn list<S: DeserializeOwned, X: DeserializeOwned + Default>(
        &self,
        kind: Kind,
    ) -> Result<(Vec<Object<S, X>>, Revision), RepoError> {
        let (kvs, rev) = self.of(kind).range(&kind_prefix(kind)).await?;
        let mut out = Vec::with_capacity(kvs.len());
        for kv in kvs {
            let mut obj: Object<S, X> = decode(&kv.value, &kv.key)?;
            obj.metadata.revision = kv.mod_revision;
            out.push(obj);
        }
        Ok((out, rev))
    }

    /// Every stored object of `kind` as the engine holds it, undecoded, with the revision the
    /// list reflects (informers hand the bytes on to consumers that decode what they need).
    pub async fn list_raw(&self, kind: Kind) -> Result<(Vec<crate::KeyValue>, Revision), RepoError> {
        Ok(self.of(kind).range(&kind_prefix(kind)).await?)
    }

    /// Writes `obj` if nobody wrote it since it was read (compare-and-swap on its revision).
    /// On success `obj.metadata.revision` and `updated` are refreshed.
    pub async fn update<S: Serialize, X: Serialize>(&self, obj: &mut Object<S, X>) -> Result<(), RepoError> {
        let key = object_key(obj.metadata.kind, obj.metadata.uid);
        let prev = obj.metadata.revision;
        obj.metadata.updated = Utc::now();
        let value = serde_json::to_vec(&obj)?;
        match self.of(obj.metadata.kind).txn(vec![Compare::ModRevision(key.clone(), prev)], vec![Op::Put(key, value)]).await {
            Ok(rev) => {
                obj.metadata.revision = rev;
                Ok(())
            }
            Err(StoreError::Conflict) => Err(RepoError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `obj` and its name claim if nobody wrote it since it was read (the claim's key
    /// is deleted for every kind: records stored before their kind stopped claiming names
    /// have one).
    pub async fn delete<S, X>(&self, obj: &Object<S, X>) -> Result<(), RepoError> {
        let m = &obj.metadata;
        let key = object_key(m.kind, m.uid);
        let nkey = name_key(m.kind, m.organization.as_ref(), &m.name);
        match self
            .of(m.kind)
            .txn(vec![Compare::ModRevision(key.clone(), m.revision)], vec![Op::Delete(key), Op::Delete(nkey)])
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict) => Err(RepoError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Watches every change to objects of `kind` after revision `after`.
    pub async fn watch(&self, kind: Kind, after: Revision) -> Result<Watch, RepoError> {
        Ok(self.of(kind).watch(&kind_prefix(kind), after).await?)
    }
}

#[cfg(test)]
mod tests {
    use op_types::{Kind, Name, Object};
    use serde_json::{json, Value};

    use crate::{Engine, RedbEngine, Repo};

    type Loose = Object<Value, Value>;

    /// An object and its record are stored in one transaction (one revision), and a create that
    /// fails on a taken name stores neither.
    #[tokio::test]
    async fn an_object_and_its_record_are_stored_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let engine: std::sync::Arc<dyn Engine> = RedbEngine::open(&dir.path().join("s.redb")).unwrap();
        let repo = Repo::new(engine);
        let name = |n: &str| Name::new(n).unwrap();
        let mut inst: Loose = Object::new(Kind::AppInstance, Some(name("org")), name("web"), json!({"n": 1}));
        let mut rec: Loose = Object::new(Kind::AuditRecord, Some(name("org")), name("a1"), json!({"status": 202}));
        assert!(repo.create_with(&mut inst, &mut rec).await.unwrap(), "one store: together");
        assert_eq!(inst.metadata.revision, rec.metadata.revision);
        let kept: Loose = repo.get(Kind::AuditRecord, rec.metadata.uid).await.unwrap().unwrap();
        assert_eq!(kept.spec["status"], 202);

        let mut again: Loose = Object::new(Kind::AppInstance, Some(name("org")), name("web"), json!({"n": 2}));
        let mut rec2: Loose = Object::new(Kind::AuditRecord, Some(name("org")), name("a2"), json!({"status": 202}));
        let e = repo.create_with(&mut again, &mut rec2).await.unwrap_err();
        assert!(matches!(e, crate::RepoError::AlreadyExists { .. }), "{e}");
        assert!(repo.get::<Value, Value>(Kind::AuditRecord, rec2.metadata.uid).await.unwrap().is_none(), "no record of a create that failed");
        assert!(repo.get::<Value, Value>(Kind::AppInstance, again.metadata.uid).await.unwrap().is_none());
    }

    /// An audit record is stored without a name claim (one key, not two), so two may share a
    /// name; a kind that claims names keeps its names unique.
    #[tokio::test]
    async fn only_kinds_that_claim_names_write_a_name_key() {
        let dir = tempfile::tempdir().unwrap();
        let engine: std::sync::Arc<dyn Engine> = RedbEngine::open(&dir.path().join("s.redb")).unwrap();
        let repo = Repo::new(engine.clone());
        let name = |n: &str| Name::new(n).unwrap();
        for _ in 0..2 {
            let mut rec: Loose = Object::new(Kind::AuditRecord, Some(name("org")), name("a1"), json!({"status": 200}));
            repo.create(&mut rec).await.unwrap();
        }
        assert_eq!(repo.list::<Value, Value>(Kind::AuditRecord).await.unwrap().0.len(), 2);
        assert!(engine.range("/n/audit/").await.unwrap().0.is_empty(), "no name key for audit records");
        let mut app: Loose = Object::new(Kind::App, Some(name("org")), name("web"), json!({}));
        repo.create(&mut app).await.unwrap();
        assert_eq!(engine.range("/n/apps/").await.unwrap().0.len(), 1);
        let mut twin: Loose = Object::new(Kind::App, Some(name("org")), name("web"), json!({}));
        assert!(matches!(repo.create(&mut twin).await, Err(crate::RepoError::AlreadyExists { .. })));
    }
}
