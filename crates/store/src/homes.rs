//! Engines for a process that keeps only part of the platform's data: a region's controller
//! reads the global plane's store but never writes it ([`ReadOnly`]); the global plane keeps no
//! regional data at all ([`Elsewhere`]). [`crate::Repo::split`] puts them in place of the
//! kinds' homes, so the rule holds in one spot instead of in every handler.

use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::engine::{Compare, Engine, KeyValue, Op, Revision, StoreError, Watch};

/// Another plane's store, read through but never written: every write is refused with
/// `why` (which says where such writes go).
pub struct ReadOnly {
    inner: std::sync::Arc<dyn Engine>,
    why: String,
}

impl ReadOnly {
    /// `inner`, refusing writes with `why`.
    pub fn new(inner: std::sync::Arc<dyn Engine>, why: impl Into<String>) -> Self {
        Self { inner, why: why.into() }
    }
}

#[async_trait]
impl Engine for ReadOnly {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        self.inner.range(prefix).await
    }

    async fn txn(&self, _compares: Vec<Compare>, _ops: Vec<Op>) -> Result<Revision, StoreError> {
        Err(StoreError::Elsewhere(self.why.clone()))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
        self.inner.watch(prefix, after).await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.inner.revision().await
    }
}

/// Data this process does not keep: reads find nothing (so the in-memory views that follow
/// such kinds stay empty instead of failing), watches stay open and quiet, and every write is
/// refused with `why`.
pub struct Elsewhere {
    why: String,
    /// The senders of the quiet watches: held so that their receivers never see an end.
    quiet: Mutex<Vec<mpsc::Sender<Result<crate::Event, StoreError>>>>,
}

impl Elsewhere {
    /// Nothing here; writes are refused with `why`.
    pub fn new(why: impl Into<String>) -> Self {
        Self { why: why.into(), quiet: Mutex::default() }
    }
}

#[async_trait]
impl Engine for Elsewhere {
    async fn get(&self, _key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(None)
    }

    async fn range(&self, _prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        Ok((Vec::new(), 0))
    }

    async fn txn(&self, _compares: Vec<Compare>, _ops: Vec<Op>) -> Result<Revision, StoreError> {
        Err(StoreError::Elsewhere(self.why.clone()))
    }

    async fn watch(&self, _prefix: &str, _after: Revision) -> Result<Watch, StoreError> {
        let (tx, rx) = mpsc::channel(1);
        self.quiet.lock().map_err(|_| StoreError::Unavailable("poisoned lock".into()))?.push(tx);
        Ok(rx)
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use op_types::{Kind, Name, Object};

    use super::*;
    use crate::{RedbEngine, Repo, RepoError};

    fn obj(kind: Kind, name: &str) -> Object<serde_json::Value> {
        Object::new(kind, None, Name::new(name).unwrap(), serde_json::json!({}))
    }

    #[tokio::test]
    async fn a_split_repo_keeps_each_kind_in_its_home() {
        let dir = tempfile::tempdir().unwrap();
        let global: Arc<dyn Engine> = RedbEngine::open(&dir.path().join("g.redb")).unwrap();
        let regional: Arc<dyn Engine> = RedbEngine::open(&dir.path().join("r.redb")).unwrap();
        let writer = Repo::new(global.clone());
        writer.create(&mut obj(Kind::App, "shared")).await.unwrap();

        // A region's controller: global kinds read through, never written; regional kinds and
        // audit in its own store.
        let region = Repo::split(Arc::new(ReadOnly::new(global.clone(), "ask the global plane")), regional.clone(), regional.clone());
        assert_eq!(region.list::<serde_json::Value, serde_json::Value>(Kind::App).await.unwrap().0.len(), 1);
        match region.create(&mut obj(Kind::App, "mine")).await {
            Err(RepoError::Store(StoreError::Elsewhere(m))) => assert_eq!(m, "ask the global plane"),
            other => panic!("a global write from a region: {other:?}"),
        }
        region.create(&mut obj(Kind::Cloudlet, "edge1")).await.unwrap();
        region.create(&mut obj(Kind::AuditRecord, "a1")).await.unwrap();
        assert!(global.range("/o/cloudlets/").await.unwrap().0.is_empty(), "regional data stays out of the global store");
        assert_eq!(regional.range("/o/cloudlets/").await.unwrap().0.len(), 1);
        assert_eq!(regional.range("/o/apps/").await.unwrap().0.len(), 0);

        // The global plane: regional kinds are not there, and cannot be written there.
        let plane = Repo::split(global.clone(), Arc::new(Elsewhere::new("ask the region")), global.clone());
        assert!(plane.list::<serde_json::Value, serde_json::Value>(Kind::Cloudlet).await.unwrap().0.is_empty());
        assert!(matches!(plane.create(&mut obj(Kind::AppInstance, "i1")).await, Err(RepoError::Store(StoreError::Elsewhere(_)))));
        plane.create(&mut obj(Kind::AuditRecord, "a2")).await.unwrap();
        assert_eq!(global.range("/o/audit/").await.unwrap().0.len(), 1, "the global plane's audit is its own");
    }

    #[tokio::test]
    async fn a_watch_of_data_kept_elsewhere_stays_open_and_quiet() {
        let e = Elsewhere::new("elsewhere");
        let mut w = e.watch("/o/appinstances/", 0).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(50), w.recv()).await.is_err(), "no event and no end");
        assert_eq!(e.get("/o/appinstances/x").await.unwrap(), None);
    }
}
