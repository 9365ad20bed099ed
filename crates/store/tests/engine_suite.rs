//! One suite for every storage engine: each case is a function over `Arc<dyn Engine>`, and each
//! engine runs all of them (today the embedded redb engine; an etcd engine joins by adding one
//! `engine_tests!` line).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use op_store::{Compare, Engine, EventKind, Op, RedbEngine, StoreError};

fn put(k: &str, v: &str) -> Op {
    Op::Put(k.to_string(), v.as_bytes().to_vec())
}

async fn next_event(w: &mut op_store::Watch) -> op_store::Event {
    tokio::time::timeout(Duration::from_secs(5), w.recv()).await.expect("event in time").expect("open").expect("ok")
}

async fn put_get_revisions(e: Arc<dyn Engine>) {
    assert_eq!(e.revision().await.unwrap(), 0);
    let r1 = e.txn(vec![], vec![put("/a", "1")]).await.unwrap();
    assert_eq!(r1, 1);
    let r2 = e.txn(vec![], vec![put("/a", "2")]).await.unwrap();
    assert_eq!(r2, 2);
    let kv = e.get("/a").await.unwrap().unwrap();
    assert_eq!((kv.value.as_slice(), kv.create_revision, kv.mod_revision), (b"2".as_slice(), 1, 2));
    assert!(e.get("/b").await.unwrap().is_none());
}

async fn compare_and_swap(e: Arc<dyn Engine>) {
    let r = e.txn(vec![Compare::Absent("/k".into())], vec![put("/k", "v1")]).await.unwrap();
    assert!(matches!(e.txn(vec![Compare::Absent("/k".into())], vec![put("/k", "x")]).await, Err(StoreError::Conflict)));
    assert!(matches!(
        e.txn(vec![Compare::ModRevision("/k".into(), r + 7)], vec![put("/k", "x")]).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        e.txn(vec![Compare::ModRevision("/missing".into(), 0)], vec![put("/k", "x")]).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(e.revision().await.unwrap(), r, "a failed compare writes nothing");
    assert_eq!(e.get("/k").await.unwrap().unwrap().value, b"v1");
    let r2 = e.txn(vec![Compare::ModRevision("/k".into(), r)], vec![put("/k", "v2")]).await.unwrap();
    assert_eq!(r2, r + 1);
    assert_eq!(e.get("/k").await.unwrap().unwrap().value, b"v2");
}

async fn multi_op_atomicity(e: Arc<dyn Engine>) {
    e.txn(vec![], vec![put("/x/1", "a")]).await.unwrap();
    let res = e.txn(vec![Compare::Absent("/x/1".into())], vec![put("/x/2", "b"), put("/x/3", "c")]).await;
    assert!(matches!(res, Err(StoreError::Conflict)));
    assert!(e.get("/x/2").await.unwrap().is_none() && e.get("/x/3").await.unwrap().is_none());
    let r = e.txn(vec![], vec![put("/x/2", "b"), Op::Delete("/x/1".into())]).await.unwrap();
    assert_eq!(e.get("/x/2").await.unwrap().unwrap().mod_revision, r);
    assert!(e.get("/x/1").await.unwrap().is_none());
    // Deleting a missing key changes nothing and makes no revision.
    assert_eq!(e.txn(vec![], vec![Op::Delete("/nope".into())]).await.unwrap(), r);
}

async fn range_by_prefix(e: Arc<dyn Engine>) {
    for k in ["/p/b", "/p/a", "/q/a", "/p", "/pa/z", "/p/c"] {
        e.txn(vec![], vec![put(k, k)]).await.unwrap();
    }
    let (kvs, rev) = e.range("/p/").await.unwrap();
    let keys: Vec<_> = kvs.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys, ["/p/a", "/p/b", "/p/c"]);
    assert_eq!(rev, e.revision().await.unwrap());
    assert!(e.range("/zzz/").await.unwrap().0.is_empty());
}

async fn watch_history_then_live(e: Arc<dyn Engine>) {
    e.txn(vec![], vec![put("/w/a", "1")]).await.unwrap();
    let r2 = e.txn(vec![], vec![put("/w/b", "2"), put("/other", "x")]).await.unwrap();
    let mut w = e.watch("/w/", 0).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv.key, "/w/a");
    let ev = next_event(&mut w).await;
    assert_eq!((ev.kv.key.as_str(), ev.kv.mod_revision), ("/w/b", r2));
    e.txn(vec![], vec![Op::Delete("/w/a".into())]).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!((ev.kind, ev.kv.key.as_str(), ev.kv.value.as_slice()), (EventKind::Delete, "/w/a", b"1".as_slice()));
    // From the middle: only later changes.
    let mut w2 = e.watch("/w/", r2).await.unwrap();
    let ev = next_event(&mut w2).await;
    assert_eq!((ev.kind, ev.kv.key.as_str()), (EventKind::Delete, "/w/a"));
    // Prefix filtering: a change elsewhere is not seen.
    e.txn(vec![], vec![put("/other", "y")]).await.unwrap();
    e.txn(vec![], vec![put("/w/c", "3")]).await.unwrap();
    assert_eq!(next_event(&mut w2).await.kv.key, "/w/c");
}

async fn watch_no_gaps_under_concurrency(e: Arc<dyn Engine>) {
    let mut w = e.watch("/c/", 0).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                e.txn(vec![], vec![put(&format!("/c/{t}/{i}"), "v")]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut last = 0;
    for _ in 0..400 {
        let ev = next_event(&mut w).await;
        assert!(ev.kv.mod_revision > last, "strictly increasing, no repeats");
        last = ev.kv.mod_revision;
    }
    assert_eq!(last, e.revision().await.unwrap());
}

async fn suite(make: impl Fn() -> Arc<dyn Engine>) {
    put_get_revisions(make()).await;
    compare_and_swap(make()).await;
    multi_op_atomicity(make()).await;
    range_by_prefix(make()).await;
    watch_history_then_live(make()).await;
    watch_no_gaps_under_concurrency(make()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redb_engine_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    suite(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        RedbEngine::open(&dir.path().join(format!("s{i}.redb"))).unwrap() as Arc<dyn Engine>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redb_is_durable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.redb");
    {
        let e = RedbEngine::open(&path).unwrap();
        e.txn(vec![], vec![put("/d/a", "1"), put("/d/b", "2")]).await.unwrap();
        e.txn(vec![], vec![Op::Delete("/d/a".into())]).await.unwrap();
    }
    let e = RedbEngine::open(&path).unwrap();
    assert_eq!(e.revision().await.unwrap(), 2);
    assert!(e.get("/d/a").await.unwrap().is_none());
    assert_eq!(e.get("/d/b").await.unwrap().unwrap().value, b"2");
    // History survives too: a watch from 0 replays both revisions.
    let mut w = e.watch("/d/", 0).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv.mod_revision, 1);
    assert_eq!(next_event(&mut w).await.kv.mod_revision, 1);
    assert_eq!(next_event(&mut w).await.kind, EventKind::Delete);
}

#[tokio::test(flavor = "multi_thread")]
async fn redb_compacts_old_history() {
    let dir = tempfile::tempdir().unwrap();
    let e = RedbEngine::open_with_history(&dir.path().join("c.redb"), 10).unwrap();
    for i in 0..1000 {
        e.txn(vec![], vec![put("/h", &i.to_string())]).await.unwrap();
    }
    assert!(matches!(e.watch("/", 5).await, Err(StoreError::Compacted(5))));
    let mut w = e.watch("/", 995).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv.mod_revision, 996);
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Put(u8, u8),
        Delete(u8),
        CasPut(u8, u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..8, any::<u8>()).prop_map(|(k, v)| Step::Put(k, v)),
            (0u8..8).prop_map(Step::Delete),
            (0u8..8, any::<u8>()).prop_map(|(k, v)| Step::CasPut(k, v)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The engine agrees with a BTreeMap on every sequence of writes, including CAS.
        #[test]
        fn engine_matches_model(steps in proptest::collection::vec(step(), 1..40)) {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let e = RedbEngine::open(&dir.path().join("m.redb")).unwrap();
                let mut model: BTreeMap<String, (Vec<u8>, u64)> = BTreeMap::new();
                for s in steps {
                    match s {
                        Step::Put(k, v) => {
                            let k = format!("/m/{k}");
                            let r = e.txn(vec![], vec![Op::Put(k.clone(), vec![v])]).await.unwrap();
                            model.insert(k, (vec![v], r));
                        }
                        Step::Delete(k) => {
                            let k = format!("/m/{k}");
                            e.txn(vec![], vec![Op::Delete(k.clone())]).await.unwrap();
                            model.remove(&k);
                        }
                        Step::CasPut(k, v) => {
                            let k = format!("/m/{k}");
                            // Compare against the model's revision: must succeed exactly when the model has the key.
                            let expect = model.get(&k).map(|x| x.1);
                            let res = e.txn(vec![Compare::ModRevision(k.clone(), expect.unwrap_or(0))], vec![Op::Put(k.clone(), vec![v])]).await;
                            match (expect, res) {
                                (Some(_), Ok(r)) => { model.insert(k, (vec![v], r)); }
                                (None, Err(StoreError::Conflict)) => {}
                                (x, r) => panic!("model {x:?} vs engine {r:?}"),
                            }
                        }
                    }
                }
                let (kvs, _) = e.range("/m/").await.unwrap();
                let got: BTreeMap<String, (Vec<u8>, u64)> = kvs.into_iter().map(|k| (k.key, (k.value, k.mod_revision))).collect();
                assert_eq!(got, model);
            });
        }
    }
}
