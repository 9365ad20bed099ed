//! One suite for every storage engine: each case is a function over `Arc<dyn Engine>`, and each
//! engine runs all of them: the embedded redb engine, and the etcd engine on a three-member
//! cluster of Debian's etcd started for the test (then the etcd-only cases: members failing,
//! quorum lost and regained, compaction, leader election).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use op_store::etcd_lab::EtcdLab;
use op_store::{Compare, Engine, EtcdEngine, EtcdSettings, EventKind, Op, RedbEngine, StoreError};

fn put(k: &str, v: &str) -> Op {
    Op::Put(k.to_string(), v.as_bytes().to_vec())
}

async fn next_event(w: &mut op_store::Watch) -> op_store::Event {
    tokio::time::timeout(Duration::from_secs(5), w.recv()).await.expect("event in time").expect("open").expect("ok")
}

async fn put_get_revisions(e: Arc<dyn Engine>) {
    let base = e.revision().await.unwrap();
    let r1 = e.txn(vec![], vec![put("/a", "1")]).await.unwrap();
    assert_eq!(r1, base + 1);
    let r2 = e.txn(vec![], vec![put("/a", "2")]).await.unwrap();
    assert_eq!(r2, base + 2);
    let kv = e.get("/a").await.unwrap().unwrap();
    assert_eq!((kv.value.as_slice(), kv.create_revision, kv.mod_revision), (b"2".as_slice(), r1, r2));
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
    assert_eq!((ev.kind, ev.kv.key.as_str(), ev.kv.value.as_slice()), (EventKind::Delete, "/w/a", b"".as_slice()));
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
    // Every write once, in revision order (writes committed together share a revision).
    let mut last = 0;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..400 {
        let ev = next_event(&mut w).await;
        assert!(ev.kv.mod_revision >= last, "in revision order");
        assert!(seen.insert(ev.kv.key.clone()), "no repeats: {}", ev.kv.key);
        last = ev.kv.mod_revision;
    }
    assert_eq!(last, e.revision().await.unwrap());
}

async fn watchers_of_one_prefix_each_get_exactly_their_part(e: Arc<dyn Engine>) {
    let mut revs = vec![e.revision().await.unwrap()];
    for i in 0..20 {
        revs.push(e.txn(vec![], vec![put(&format!("/h/{i}"), "v")]).await.unwrap());
    }
    // Watchers of one prefix from different revisions, some before others; writes go on.
    let starts = [revs[10], revs[0], revs[5], revs[15], revs[20]];
    let mut watches = Vec::new();
    for s in starts {
        watches.push((s, e.watch("/h/", s).await.unwrap()));
    }
    for i in 20..40 {
        revs.push(e.txn(vec![], vec![put(&format!("/h/{i}"), "v")]).await.unwrap());
    }
    let last = *revs.last().unwrap();
    for (after, mut w) in watches {
        let mut got = Vec::new();
        while got.last() != Some(&last) {
            got.push(next_event(&mut w).await.kv.mod_revision);
        }
        let want: Vec<u64> = revs.iter().copied().filter(|r| *r > after).collect();
        assert_eq!(got, want, "watcher from {after}");
    }
}

/// Concurrent transactions (which an engine may commit together) each succeed or conflict on
/// their own compares only: of many creating one key exactly one wins; among many creating
/// distinct keys, the one whose key exists conflicts and the rest go in; of many updating one
/// key from the same revision exactly one wins.
async fn concurrent_transactions_commit_or_conflict_alone(e: Arc<dyn Engine>) {
    async fn all(e: &Arc<dyn Engine>, txns: Vec<(Vec<Compare>, Vec<Op>)>) -> Vec<Result<u64, StoreError>> {
        let tasks: Vec<_> = txns.into_iter().map(|(c, o)| {
            let e = e.clone();
            tokio::spawn(async move { e.txn(c, o).await })
        }).collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }
    let same: Vec<_> = (0..20).map(|i| (vec![Compare::Absent("/g/one".into())], vec![put("/g/one", &i.to_string())])).collect();
    let r = all(&e, same).await;
    assert_eq!(r.iter().filter(|r| r.is_ok()).count(), 1, "{r:?}");
    assert!(r.iter().all(|r| matches!(r, Ok(_) | Err(StoreError::Conflict))), "{r:?}");

    let rev = e.txn(vec![], vec![put("/g/taken", "x")]).await.unwrap();
    let distinct: Vec<_> = (0..20).map(|i| {
        let k = if i == 7 { "/g/taken".to_string() } else { format!("/g/d{i}") };
        (vec![Compare::Absent(k.clone())], vec![put(&k, "new")])
    }).collect();
    let r = all(&e, distinct).await;
    for (i, r) in r.iter().enumerate() {
        assert_eq!(r.is_ok(), i != 7, "#{i}: {r:?}");
    }
    assert_eq!(e.get("/g/taken").await.unwrap().map(|kv| kv.value), Some(b"x".to_vec()), "the conflicting one wrote nothing");
    assert_eq!(e.range("/g/d").await.unwrap().0.len(), 19);

    let cas: Vec<_> = (0..20).map(|i| (vec![Compare::ModRevision("/g/taken".into(), rev)], vec![put("/g/taken", &format!("v{i}"))])).collect();
    let r = all(&e, cas).await;
    assert_eq!(r.iter().filter(|r| r.is_ok()).count(), 1, "{r:?}");
}

async fn suite(mut make: impl FnMut() -> Arc<dyn Engine>) {
    put_get_revisions(make()).await;
    compare_and_swap(make()).await;
    multi_op_atomicity(make()).await;
    range_by_prefix(make()).await;
    watch_history_then_live(make()).await;
    watch_no_gaps_under_concurrency(make()).await;
    watchers_of_one_prefix_each_get_exactly_their_part(make()).await;
    concurrent_transactions_commit_or_conflict_alone(make()).await;
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

/// A three-member etcd cluster for one test, and engines on it under their own prefixes.
async fn etcd_lab() -> (tempfile::TempDir, EtcdLab) {
    let dir = tempfile::tempdir().unwrap();
    let lab = EtcdLab::start(dir.path(), 3).await.expect("etcd cluster (scripts/setup-runtime.sh installs etcd-server)");
    (dir, lab)
}

async fn etcd_engine(lab: &EtcdLab, prefix: &str) -> Arc<EtcdEngine> {
    EtcdEngine::connect(EtcdSettings::new(lab.endpoints(), prefix)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_engine_passes_the_suite() {
    let (_dir, lab) = etcd_lab().await;
    let mut engines = Vec::new();
    for i in 0..8 {
        engines.push(etcd_engine(&lab, &format!("/suite{i}")).await as Arc<dyn Engine>);
    }
    engines.reverse();
    suite(|| engines.pop().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_prefixes_keep_regions_apart() {
    let (_dir, lab) = etcd_lab().await;
    let eu = etcd_engine(&lab, "/op/eu").await;
    let us = etcd_engine(&lab, "/op/us").await;
    eu.txn(vec![], vec![put("/o/apps/1", "eu")]).await.unwrap();
    us.txn(vec![], vec![put("/o/apps/1", "us")]).await.unwrap();
    assert_eq!(eu.get("/o/apps/1").await.unwrap().unwrap().value, b"eu");
    let (kvs, _) = us.range("/o/").await.unwrap();
    assert_eq!(kvs.iter().map(|k| (k.key.as_str(), k.value.as_slice())).collect::<Vec<_>>(), [("/o/apps/1", b"us".as_slice())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_ranges_page_at_one_revision() {
    let (_dir, lab) = etcd_lab().await;
    let e = etcd_engine(&lab, "/big").await;
    let n = op_store::PAGE as usize * 2 + 17;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        e.txn(vec![], chunk.iter().map(|i| put(&format!("/r/{i:06}"), "v")).collect()).await.unwrap();
    }
    let (kvs, rev) = e.range("/r/").await.unwrap();
    assert_eq!(kvs.len(), n, "every page read");
    assert!(kvs.windows(2).all(|w| w[0].key < w[1].key), "in key order, no repeats");
    assert_eq!(rev, e.revision().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_rides_out_one_member_down_and_fails_clearly_without_quorum() {
    let (_dir, mut lab) = etcd_lab().await;
    let e = etcd_engine(&lab, "/f").await;
    let mut w = e.watch("/f/", 0).await.unwrap();
    e.txn(vec![], vec![put("/f/0", "v")]).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv.key, "/f/0");

    // One of three down (the member the engine talks to first): nothing visible.
    lab.stop_member(0);
    for i in 1..20 {
        e.txn(vec![Compare::Absent(format!("/f/{i}"))], vec![put(&format!("/f/{i}"), "v")]).await.expect("write with one member down");
        assert!(e.get(&format!("/f/{i}")).await.unwrap().is_some());
    }
    assert_eq!(e.range("/f/").await.unwrap().0.len(), 20);

    // Two of three down: a write fails within the deadline, saying why.
    lab.stop_member(1);
    let begun = std::time::Instant::now();
    let err = e.txn(vec![], vec![put("/f/lost", "v")]).await.expect_err("no quorum, no write");
    assert!(begun.elapsed() < Duration::from_secs(15), "fails within the deadline, took {:?}", begun.elapsed());
    assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("etcd")), "{err}");

    // Back to quorum: writes resume, and the watch delivered every change once, in order.
    lab.start_member(0).unwrap();
    lab.start_member(1).unwrap();
    lab.wait_healthy(Duration::from_secs(30)).await.unwrap();
    e.txn(vec![], vec![put("/f/after", "v")]).await.expect("writes resume");
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("/f/after") {
        let ev = next_event(&mut w).await;
        seen.push(ev.kv.key);
    }
    let writes: Vec<String> = (1..20).map(|i| format!("/f/{i}")).chain(["/f/after".to_string()]).collect();
    let got: Vec<&String> = seen.iter().filter(|k| *k != "/f/lost").collect();
    assert_eq!(got, writes.iter().collect::<Vec<_>>(), "no gap, no repeat across the members' failures");
}

/// etcd's watchers now, summed over the members (`etcd_debugging_mvcc_watcher_total`).
async fn etcd_watchers(lab: &EtcdLab) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sum = 0.0;
    for e in lab.endpoints() {
        let mut s = tokio::net::TcpStream::connect(e.trim_start_matches("http://")).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        let line = text.lines().find(|l| l.starts_with("etcd_debugging_mvcc_watcher_total ")).expect("etcd reports its watchers");
        sum += line.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()).unwrap();
    }
    sum
}

/// Watches of one prefix share one etcd watch, and each still gets exactly the changes after
/// its own revision: one that starts it, one that joins later (given what it missed from the
/// shared watch's recent changes), and one older than those (given a watch of its own).
#[tokio::test(flavor = "multi_thread")]
async fn etcd_watches_of_a_prefix_share_one_stream() {
    let (_dir, lab) = etcd_lab().await;
    let e = etcd_engine(&lab, "/share").await;
    let before = etcd_watchers(&lab).await;
    let r0 = e.revision().await.unwrap();
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(e.txn(vec![], vec![put(&format!("/k/{i}"), "v")]).await.unwrap());
    }
    let mut first = e.watch("/k/", revs[1]).await.unwrap();
    let mut firsts = vec![next_event(&mut first).await.kv.key];
    let mut joined = e.watch("/k/", revs[2]).await.unwrap();
    let mut older = e.watch("/k/", r0).await.unwrap();
    for i in 5..8 {
        e.txn(vec![], vec![put(&format!("/k/{i}"), "v"), put("/other", "x")]).await.unwrap();
    }
    let keys = |from: usize| (from..8).map(|i| format!("/k/{i}")).collect::<Vec<_>>();
    for _ in 3..8 {
        firsts.push(next_event(&mut first).await.kv.key);
    }
    assert_eq!(firsts, keys(2), "the first watch: every change after its revision");
    let mut got = Vec::new();
    for _ in 3..8 {
        got.push(next_event(&mut joined).await.kv.key);
    }
    assert_eq!(got, keys(3), "a watch that joined later: what it missed, then the rest");
    let mut got = Vec::new();
    for _ in 0..8 {
        got.push(next_event(&mut older).await.kv.key);
    }
    assert_eq!(got, keys(0), "a watch from before the shared one: its own, complete");
    for w in [&mut first, &mut joined, &mut older] {
        assert!(tokio::time::timeout(Duration::from_millis(300), w.recv()).await.is_err(), "no repeat, nothing else");
    }
    // Two etcd watches for three streams: the shared one and the older stream's own.
    assert_eq!(etcd_watchers(&lab).await - before, 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_watch_from_a_compacted_revision_says_so() {
    let (_dir, lab) = etcd_lab().await;
    let e = etcd_engine(&lab, "/c").await;
    for i in 0..10 {
        e.txn(vec![], vec![put("/c/k", &i.to_string())]).await.unwrap();
    }
    let now = e.revision().await.unwrap();
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &lab.endpoints().join(","), "compact", &now.to_string()])
        .output()
        .expect("etcdctl (Debian's etcd-client)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let compacted = match e.watch("/c/", 2).await {
        Err(StoreError::Compacted(_)) => true,
        Ok(mut w) => matches!(tokio::time::timeout(Duration::from_secs(5), w.recv()).await, Ok(Some(Err(StoreError::Compacted(_))))),
        Err(other) => panic!("{other}"),
    };
    assert!(compacted, "a watch from before the compaction ends with Compacted");
    // From the current revision it works.
    let mut w = e.watch("/c/", now).await.unwrap();
    e.txn(vec![], vec![put("/c/k", "new")]).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv.value, b"new");
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_elects_one_leader_and_replaces_a_dead_one() {
    let (_dir, lab) = etcd_lab().await;
    let a = etcd_engine(&lab, "/l").await;
    let b = etcd_engine(&lab, "/l").await;
    let ttl = Duration::from_secs(2);
    let lead_a = a.campaign("region", "replica-a", ttl).await.unwrap();
    let b2 = b.clone();
    let mut waiting = tokio::spawn(async move { b2.campaign("region", "replica-b", ttl).await.unwrap() });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!waiting.is_finished(), "one leader at a time: b waits while a renews its lease");
    // a resigns: b leads at once.
    lead_a.resign().await;
    let lead_b = tokio::time::timeout(Duration::from_secs(5), &mut waiting).await.expect("b takes over").unwrap();
    // b dies without resigning (its lease is no longer renewed): a takes over after the ttl.
    drop(lead_b);
    let begun = std::time::Instant::now();
    let mut lead_a = tokio::time::timeout(Duration::from_secs(10), a.campaign("region", "replica-a", ttl)).await.expect("a takes over").unwrap();
    assert!(begun.elapsed() >= Duration::from_millis(500), "not before b's lease ran out");
    // a's leadership holds while it renews.
    assert!(tokio::time::timeout(Duration::from_secs(3), lead_a.lost()).await.is_err());
}
