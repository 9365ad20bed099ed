//! Index and selection on constructed objects: hard constraints are never broken, ranking
//! follows the weights, and watches' upserts and removals keep the index exact.

use op_types::specs::*;
use op_types::{Kind, Name, Object, State};
use op_uni::index::EdgeIndex;
use op_uni::select::{closest_zone, rank, DeviceAt, PathInfo, Rejection, Weights};
use proptest::prelude::*;

fn n(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn zone(name: &str, region: &str, lat: f64, lon: f64, cells: &[&str]) -> Zone {
    Object::new(Kind::Zone, None, n(name), ZoneSpec {
        region: n(region),
        location: GeoPoint { latitude: lat, longitude: lon },
        service_area: ServiceArea { cells: cells.iter().map(|c| c.to_string()).collect(), polygon: vec![] },
        dnai: None,
        federated: None,
    })
}

fn cloudlet(name: &str, zone: &str, ready: bool, maintenance: bool) -> Cloudlet {
    let mut c: Cloudlet = Object::new(Kind::Cloudlet, None, n(name), CloudletSpec {
        zone: n(zone),
        location: GeoPoint { latitude: 0.0, longitude: 0.0 },
        platform_type: PlatformType::Docker,
        driver_endpoint: "unix:///x".into(),
        public_host: "127.0.0.1".into(),
        capacity: Resources { vcpus: 8, memory_mb: 8192, disk_gb: 10, gpus: 0 },
        flavors: vec![n("small")],
        maintenance,
        level: Default::default(),
        security_group: None,
        privacy_policy: None,
    });
    c.status.state = if ready { State::Ready } else { State::Failed };
    c
}

fn app(req: Requirements) -> App {
    let spec: AppSpec = serde_json::from_value(serde_json::json!({
        "version": "1", "appProvider": "acme_games", "packageType": "CONTAINER",
        "appRepo": {"type": "PUBLICREPO", "imagePath": "img"},
        "requiredResources": {"infraKind": "container", "numCPU": "1", "memory": 64},
        "componentSpec": [{"componentName": "c", "networkInterfaces": [{"interfaceId": "http", "protocol": "TCP", "port": 80, "visibilityType": "VISIBILITY_EXTERNAL"}]}]
    })).unwrap();
    let mut a: App = Object::new(Kind::App, Some(n("acme_games")), n("game"), AppSpec { requirements: req, ..spec });
    a.status.state = State::Ready;
    a
}

fn instance(app: &App, zone: &Zone, cloudlet: &str, ready: bool) -> AppInstance {
    let mut i: AppInstance = Object::new(Kind::AppInstance, Some(n("acme_games")), n(&format!("i-{}", &zone.metadata.name)), AppInstanceSpec {
        app_id: app.metadata.uid,
        edge_cloud_zone_id: zone.metadata.uid,
        cloudlet: n(cloudlet),
        flavor: n("small"),
        federated: None,
        cluster: None,
        app_revision: None,
    });
    if ready {
        i.status.state = State::Ready;
        i.observed.endpoints = vec![Endpoint { interface_id: "http".into(), host: "127.0.0.1".into(), port: 1000 }];
    }
    i
}

struct World {
    ix: EdgeIndex,
    app: App,
    paris: Zone,
    lyon: Zone,
    berlin: Zone,
}

fn world(req: Requirements) -> World {
    let mut ix = EdgeIndex::default();
    let paris = zone("paris", "fr", 48.85, 2.35, &["c-paris"]);
    let lyon = zone("lyon", "fr", 45.76, 4.83, &["c-lyon"]);
    let berlin = zone("berlin", "de", 52.52, 13.40, &["c-berlin"]);
    for z in [&paris, &lyon, &berlin] {
        ix.upsert_zone(z);
        ix.upsert_cloudlet(&cloudlet(&format!("{}-1", z.metadata.name), z.metadata.name.as_str(), true, false));
    }
    let app = app(req);
    ix.upsert_app(&app);
    for z in [&paris, &lyon, &berlin] {
        ix.upsert_instance(&instance(&app, z, &format!("{}-1", z.metadata.name), true));
    }
    World { ix, app, paris, lyon, berlin }
}

/// A grid of `rows` x `cols` zones (0.1 degree of latitude by 0.2 of longitude apart, from
/// 44N 4E), each with one cloudlet and `instances(i, j)` ready instances of `app`, all indexed.
/// Returns the zones in row order, each with its cloudlet's name and its instances.
fn grid(ix: &mut EdgeIndex, app: &App, rows: usize, cols: usize, instances: impl Fn(usize, usize) -> usize) -> Vec<(Zone, String, Vec<AppInstance>)> {
    let mut out = Vec::new();
    for i in 0..rows {
        for j in 0..cols {
            let z = zone(&format!("z{i}x{j}"), "fr", 44.0 + i as f64 * 0.1, 4.0 + j as f64 * 0.2, &[&format!("c{i}x{j}")]);
            ix.upsert_zone(&z);
            let cl = format!("cl{i}x{j}");
            ix.upsert_cloudlet(&cloudlet(&cl, z.metadata.name.as_str(), true, false));
            let insts: Vec<AppInstance> = (0..instances(i, j)).map(|_| instance(app, &z, &cl, true)).collect();
            insts.iter().for_each(|inst| ix.upsert_instance(inst));
            out.push((z, cl, insts));
        }
    }
    out
}

fn no_path(_: &op_uni::index::ZoneEntry) -> Option<PathInfo> {
    None
}

#[test]
fn nearest_ranks_first_and_all_are_offered() {
    let w = world(Requirements::default());
    let entry = w.ix.app(w.app.metadata.uid).unwrap().clone();
    let at = DeviceAt { cell: Some("c-lyon".into()), point: None };
    let r = rank(&w.ix, &entry, &at, &Weights::default(), &no_path);
    let order: Vec<_> = r.ranked.iter().map(|c| c.zone.name.to_string()).collect();
    assert_eq!(order, ["lyon", "paris", "berlin"]);
    assert!(r.rejected.is_empty());
    assert_eq!(closest_zone(&w.ix, &at).unwrap().uid, w.lyon.metadata.uid);
}

#[test]
fn hard_constraints_reject_with_reasons() {
    let req = Requirements { data_regions: vec![n("fr")], max_latency_ms: Some(10.0), ..Default::default() };
    let w = world(req);
    let entry = w.ix.app(w.app.metadata.uid).unwrap().clone();
    let at = DeviceAt { cell: Some("c-paris".into()), point: None };
    let lyon = w.lyon.metadata.uid;
    let path = move |z: &op_uni::index::ZoneEntry| {
        Some(PathInfo { latency_ms: if z.uid == lyon { 25.0 } else { 5.0 }, jitter_ms: 1.0, bandwidth_mbps: 100.0 })
    };
    let r = rank(&w.ix, &entry, &at, &Weights::default(), &path);
    assert_eq!(r.ranked.len(), 1);
    assert_eq!(r.ranked[0].zone.uid, w.paris.metadata.uid);
    let reasons: Vec<_> = r.rejected.iter().map(|(_, why)| why.clone()).collect();
    assert!(reasons.contains(&Rejection::DataGeography), "berlin is outside the data regions");
    assert!(reasons.contains(&Rejection::Latency { expected_ms: 25.0 }));
}

#[test]
fn maintenance_and_removals_are_seen() {
    let mut w = world(Requirements::default());
    let entry = w.ix.app(w.app.metadata.uid).unwrap().clone();
    let at = DeviceAt { cell: Some("c-berlin".into()), point: None };
    w.ix.upsert_cloudlet(&cloudlet("berlin-1", "berlin", true, true));
    let r = rank(&w.ix, &entry, &at, &Weights::default(), &no_path);
    assert!(r.ranked.iter().all(|c| c.zone.uid != w.berlin.metadata.uid));
    assert_ne!(closest_zone(&w.ix, &at).unwrap().uid, w.berlin.metadata.uid, "a zone in maintenance is not closest");
    w.ix.remove_zone(w.paris.metadata.uid);
    let r = rank(&w.ix, &entry, &at, &Weights::default(), &no_path);
    assert!(r.ranked.iter().all(|c| c.zone.uid != w.paris.metadata.uid));
}

proptest! {
    /// Whatever the world, nothing offered breaks a hard constraint, and offers are sorted.
    #[test]
    fn offers_never_break_hard_constraints(
        ready in proptest::collection::vec(any::<bool>(), 3),
        up in proptest::collection::vec(any::<bool>(), 3),
        maint in proptest::collection::vec(any::<bool>(), 3),
        lat in proptest::collection::vec(1.0f64..60.0, 3),
        bound in 1.0f64..60.0,
        restrict in any::<bool>(),
    ) {
        let req = Requirements {
            max_latency_ms: Some(bound),
            data_regions: if restrict { vec![n("fr")] } else { vec![] },
            ..Default::default()
        };
        let mut w = world(req);
        let zones = [w.paris.clone(), w.lyon.clone(), w.berlin.clone()];
        for (i, z) in zones.iter().enumerate() {
            let cl = format!("{}-1", z.metadata.name);
            w.ix.upsert_cloudlet(&cloudlet(&cl, z.metadata.name.as_str(), up[i], maint[i]));
            let mut inst = instance(&w.app, z, &cl, ready[i]);
            inst.metadata.uid = w.ix.instances_of(w.app.metadata.uid).find(|e| e.zone == z.metadata.uid).unwrap().uid;
            w.ix.upsert_instance(&inst);
        }
        let entry = w.ix.app(w.app.metadata.uid).unwrap().clone();
        let lats: Vec<(op_types::Uid, f64)> = zones.iter().zip(&lat).map(|(z, l)| (z.metadata.uid, *l)).collect();
        let path = move |z: &op_uni::index::ZoneEntry| {
            lats.iter().find(|(u, _)| *u == z.uid).map(|(_, l)| PathInfo { latency_ms: *l, jitter_ms: 0.0, bandwidth_mbps: 1e3 })
        };
        let r = rank(&w.ix, &entry, &DeviceAt { cell: Some("c-paris".into()), point: None }, &Weights::default(), &path);
        prop_assert_eq!(r.ranked.len() + r.rejected.len(), 3);
        for c in &r.ranked {
            let i = zones.iter().position(|z| z.metadata.uid == c.zone.uid).unwrap();
            prop_assert!(ready[i] && up[i] && !maint[i]);
            prop_assert!(lat[i] <= bound);
            prop_assert!(!restrict || c.zone.region.as_str() == "fr");
        }
        prop_assert!(r.ranked.windows(2).all(|w| w[0].score <= w[1].score));
    }
}

#[test]
fn sessions_are_told_when_their_edge_goes_or_a_better_one_appears() {
    use op_uni::sessions::{ChangeReason, Sessions, UniEvent};
    let mut w = world(Requirements::default());
    let sessions = Sessions::default();
    let inst = |ix: &EdgeIndex, zone: &Zone| ix.instances_of(w.app.metadata.uid).find(|i| i.zone == zone.metadata.uid).unwrap().uid;
    let on_paris = inst(&w.ix, &w.paris);
    sessions.open("s1".into(), w.app.metadata.uid, "+33600000001".into(), DeviceAt { cell: Some("c-paris".into()), point: None }, on_paris, u64::MAX);
    let mut rx = sessions.subscribe("s1").unwrap();
    assert_eq!(sessions.reevaluate(&w.ix, 0).len(), 0, "nothing to say while the edge is best");

    // The device moves to Berlin: Berlin's edge is clearly better.
    sessions.moved("+33600000001", DeviceAt { cell: Some("c-berlin".into()), point: None });
    assert_eq!(sessions.reevaluate(&w.ix, 0).len(), 1);
    match rx.try_recv().unwrap() {
        UniEvent::EdgeChanged { reason, edge_cloud_zone_id, .. } => {
            assert_eq!(reason, ChangeReason::BetterEdge);
            assert_eq!(edge_cloud_zone_id, w.berlin.metadata.uid);
        }
        e => panic!("{e:?}"),
    }
    // Berlin goes into maintenance: moved away with that reason.
    w.ix.upsert_cloudlet(&cloudlet("berlin-1", "berlin", true, true));
    assert_eq!(sessions.reevaluate(&w.ix, 0).len(), 1);
    assert!(matches!(rx.try_recv().unwrap(), UniEvent::EdgeChanged { reason: ChangeReason::EdgeMaintenance, .. }));
    // Expired sessions are dropped.
    assert_eq!(sessions.reevaluate(&w.ix, u64::MAX).len(), 0);
    assert!(sessions.subscribe("s1").is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// On the hot path, an app with many instances is ranked near the device only; the best
    /// offer is the same as ranking every instance.
    #[test]
    fn near_ranking_finds_the_same_best(lat in 44.0f64..46.0, lon in 4.0f64..6.0) {
        let mut ix = EdgeIndex::default();
        let app = app(Requirements::default());
        ix.upsert_app(&app);
        grid(&mut ix, &app, 20, 10, |_, _| 1);
        let entry = ix.app(app.metadata.uid).unwrap().clone();
        let at = DeviceAt { cell: None, point: Some(GeoPoint { latitude: lat, longitude: lon }) };
        let w = Weights { distance: 1.0, latency: 0.0, load: 0.0, not_deployed: 0.0, network_load: 0.0 };
        let all = rank(&ix, &entry, &at, &w, &no_path);
        let near = op_uni::select::rank_near(&ix, &entry, &at, &w, &no_path);
        prop_assert_eq!(all.ranked.len(), 200);
        prop_assert!(near.ranked.len() < 200);
        prop_assert_eq!(all.ranked[0].instance.uid, near.ranked[0].instance.uid);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// A device located by its cell is ranked from its zone's remembered neighbour list: the
    /// same offers, in the same order, as walking the R-tree from the zone's location, whether
    /// the app runs in most zones or in a few far apart (the list then runs out and the walk
    /// takes over), and after zones change.
    #[test]
    fn cell_ranking_matches_the_walk(cell in (0usize..20, 0usize..10), every in 1usize..40, moved in 0usize..200) {
        let mut ix = EdgeIndex::default();
        let app = app(Requirements::default());
        ix.upsert_app(&app);
        let zones = grid(&mut ix, &app, 20, 10, |i, j| if (i * 10 + j) % every == 0 { 20 } else { 0 });
        let entry = ix.app(app.metadata.uid).unwrap().clone();
        let cell_id = format!("c{}x{}", cell.0, cell.1);
        let w = Weights { distance: 1.0, latency: 0.0, load: 0.0, not_deployed: 0.0, network_load: 0.0 };
        for round in 0..2 {
            let by_cell = DeviceAt { cell: Some(cell_id.clone()), point: None };
            let z = ix.cell_zone(&cell_id).unwrap().clone();
            let by_point = DeviceAt { cell: None, point: Some(z.location) };
            let a = op_uni::select::rank_near(&ix, &entry, &by_cell, &w, &no_path);
            let b = op_uni::select::rank_near(&ix, &entry, &by_point, &w, &no_path);
            let ids = |r: &op_uni::select::Ranking| r.ranked.iter().map(|c| c.instance.uid).collect::<Vec<_>>();
            prop_assert!(!a.ranked.is_empty());
            prop_assert_eq!(ids(&a), ids(&b), "round {}", round);
            // A zone moves: remembered lists are dropped and rebuilt.
            let mut m = zones[moved].0.clone();
            m.spec.location.latitude += 0.55;
            ix.upsert_zone(&m);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Discovery's best `n` (judged one by one, only the best kept) are exactly the first `n` of
    /// the full ranking, scores included, whether the device is located by cell or by position,
    /// with instances not ready, loads that differ per cloudlet, and `n` past what is remembered.
    #[test]
    fn the_best_n_are_the_first_n_of_the_ranking(
        cell in (0usize..12, 0usize..8),
        counts in proptest::collection::vec(0usize..6, 96),
        failed in proptest::collection::vec(any::<bool>(), 96),
        n in 1usize..16,
        by_cell in any::<bool>(),
    ) {
        let mut ix = EdgeIndex::default();
        let app = app(Requirements::default());
        ix.upsert_app(&app);
        let zones = grid(&mut ix, &app, 12, 8, |i, j| counts[i * 8 + j]);
        for ((_, _, insts), f) in zones.iter().zip(&failed) {
            if let (Some(first), true) = (insts.first(), *f) {
                let mut i = first.clone();
                i.status.state = State::Failed;
                ix.upsert_instance(&i);
            }
        }
        let entry = ix.app(app.metadata.uid).unwrap().clone();
        let cell_id = format!("c{}x{}", cell.0, cell.1);
        let at = if by_cell {
            DeviceAt { cell: Some(cell_id), point: None }
        } else {
            DeviceAt { cell: None, point: Some(ix.cell_zone(&cell_id).unwrap().location) }
        };
        let w = Weights { distance: 1.0, latency: 0.0, load: 0.5, not_deployed: 0.0, network_load: 0.0 };
        let full = op_uni::select::rank_near(&ix, &entry, &at, &w, &no_path);
        let expect: Vec<(op_types::Uid, f64)> = full.ranked.iter().take(n).map(|c| (c.instance.uid, c.score)).collect();
        for round in ["fresh", "remembered"] {
            let got: Vec<(op_types::Uid, f64)> = op_uni::select::best_near(&ix, &entry, &at, &w, n).iter().map(|c| (c.instance.uid, c.score)).collect();
            prop_assert_eq!(&got, &expect, "{}", round);
        }
    }
}

/// The hot path's remembered rankings answer as a fresh ranking does, and are forgotten when
/// the index changes (here: the best instance fails, then its cloudlet enters maintenance).
#[test]
fn remembered_rankings_follow_changes() {
    let mut ix = EdgeIndex::default();
    let app = app(Requirements::default());
    ix.upsert_app(&app);
    let insts = grid(&mut ix, &app, 10, 10, |_, _| 1);
    let entry = ix.app(app.metadata.uid).unwrap().clone();
    let at = DeviceAt { cell: Some("c3x3".into()), point: None };
    let w = Weights::default();
    let ids = |v: &[op_uni::select::Choice]| v.iter().map(|c| c.instance.uid).collect::<Vec<_>>();
    let fresh = |ix: &EdgeIndex| op_uni::select::rank_near(ix, &entry, &at, &w, &no_path).ranked.iter().take(3).map(|c| c.instance.uid).collect::<Vec<_>>();
    let first = op_uni::select::best_near(&ix, &entry, &at, &w, 3);
    assert_eq!(ids(&first), fresh(&ix));
    assert_eq!(ids(&op_uni::select::best_near(&ix, &entry, &at, &w, 3)), fresh(&ix), "remembered");
    let best = first[0].instance.uid;
    let mut failed = insts.iter().flat_map(|(_, _, i)| i).find(|i| i.metadata.uid == best).cloned().unwrap();
    failed.status.state = State::Failed;
    ix.upsert_instance(&failed);
    let after = op_uni::select::best_near(&ix, &entry, &at, &w, 3);
    assert!(!ids(&after).contains(&best), "a failed instance is not offered from memory");
    assert_eq!(ids(&after), fresh(&ix));
    let next = after[0].instance.uid;
    let (z2, cl2, _) = insts.iter().find(|(_, _, i)| i[0].metadata.uid == next).cloned().unwrap();
    ix.upsert_cloudlet(&cloudlet(&cl2, z2.metadata.name.as_str(), true, true));
    assert!(!ids(&op_uni::select::best_near(&ix, &entry, &at, &w, 3)).contains(&next), "maintenance is seen");
}

#[test]
fn zones_are_ranked_for_optimal_edge_discovery() {
    let req = Requirements { data_regions: vec![n("fr")], ..Default::default() };
    let mut w = world(req);
    let entry = w.ix.app(w.app.metadata.uid).unwrap().clone();
    let at = DeviceAt { cell: Some("c-lyon".into()), point: None };
    let zones: Vec<_> = op_uni::select::rank_zones(&w.ix, &entry, &at, &Weights::default(), &no_path).into_iter().map(|(z, _)| z.name.to_string()).collect();
    assert_eq!(zones, ["lyon", "paris"], "berlin is outside the data regions");
    w.ix.upsert_cloudlet(&cloudlet("lyon-1", "lyon", false, false));
    let zones: Vec<_> = op_uni::select::rank_zones(&w.ix, &entry, &at, &Weights::default(), &no_path).into_iter().map(|(z, _)| z.name.to_string()).collect();
    assert_eq!(zones, ["paris"], "a zone whose cloudlet is down is not offered");
}

/// The world's zones with user-plane DNAIs, so the index's network view applies to them.
fn world_with_dnais(req: Requirements) -> World {
    let mut w = world(req);
    for z in [&mut w.paris, &mut w.lyon, &mut w.berlin] {
        z.spec.dnai = Some(format!("dnai-{}", z.metadata.name));
        w.ix.upsert_zone(z);
    }
    w
}

fn perf(latency_ms: f64) -> PathInfo {
    PathInfo { latency_ms, jitter_ms: 1.0, bandwidth_mbps: 100.0 }
}

#[test]
fn the_hot_path_checks_qos_bounds_against_the_network_view() {
    let req = Requirements { max_latency_ms: Some(10.0), ..Default::default() };
    let mut w = world_with_dnais(req);
    let entry = w.ix.app(w.app.metadata.uid).unwrap().clone();
    let at = DeviceAt { cell: Some("c-paris".into()), point: None };
    let ws = Weights::default();
    let best = |ix: &EdgeIndex| op_uni::select::best_near(ix, &entry, &at, &ws, 3).iter().map(|c| c.zone.name.to_string()).collect::<Vec<_>>();
    assert_eq!(best(&w.ix), ["paris", "lyon", "berlin"], "without a network view nothing is ruled out");
    let view = |paris: f64| {
        let mut m = op_uni::index::NetworkPaths::default();
        m.insert("c-paris".to_string(), [("dnai-paris", paris), ("dnai-lyon", 6.0), ("dnai-berlin", 40.0)].into_iter().map(|(d, l)| (d.to_string(), perf(l))).collect());
        m
    };
    assert!(w.ix.set_network(view(25.0), Default::default()));
    assert_eq!(best(&w.ix), ["lyon"], "paris and berlin exceed the bound on the network's paths");
    assert_eq!(op_uni::select::best_near(&w.ix, &entry, &at, &ws, 1)[0].path, Some(perf(6.0)), "the offer carries the expected QoS");
    assert!(!w.ix.set_network(view(25.0), Default::default()), "the same view is no change");
    assert!(w.ix.set_network(view(3.0), Default::default()));
    assert_eq!(best(&w.ix), ["paris", "lyon"], "a remembered ranking follows the new view");
    // Sessions re-evaluated on the view move their devices too.
    let sessions = op_uni::sessions::Sessions::default();
    let (paris_inst, lyon_inst) = {
        let id = |z: &Zone| w.ix.instances_in(w.app.metadata.uid, z.metadata.uid).next().unwrap().uid;
        (id(&w.paris), id(&w.lyon))
    };
    sessions.open("s1".into(), w.app.metadata.uid, "dev".into(), at.clone(), paris_inst, u64::MAX);
    let mut rx = sessions.subscribe("s1").unwrap();
    assert_eq!(sessions.reevaluate(&w.ix, 0).len(), 0, "paris meets the bound");
    w.ix.set_network(view(25.0), Default::default());
    assert_eq!(sessions.reevaluate(&w.ix, 0).len(), 1);
    match rx.try_recv().unwrap() {
        op_uni::sessions::UniEvent::EdgeChanged { app_instance_id, reason, .. } => {
            assert_eq!(app_instance_id, lyon_inst);
            assert_eq!(reason, op_uni::sessions::ChangeReason::QosUnmet);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn network_load_weighs_against_a_zone() {
    let mut w = world_with_dnais(Requirements::default());
    let entry = w.ix.app(w.app.metadata.uid).unwrap().clone();
    // Halfway between paris and lyon: similar distance, so the network load decides.
    let at = DeviceAt { cell: None, point: Some(GeoPoint { latitude: 47.3, longitude: 3.6 }) };
    let ws = Weights { distance: 1.0, latency: 0.0, load: 0.0, not_deployed: 0.0, network_load: 10.0 };
    let first = |ix: &EdgeIndex| rank(ix, &entry, &at, &ws, &no_path).ranked[0].zone.name.to_string();
    let loads = |p: f64, l: f64| [(w.paris.metadata.uid, p), (w.lyon.metadata.uid, l)].into_iter().collect();
    w.ix.set_network(Default::default(), loads(0.9, 0.1));
    assert_eq!(first(&w.ix), "lyon");
    w.ix.set_network(Default::default(), loads(0.1, 0.9));
    assert_eq!(first(&w.ix), "paris");
}

#[test]
fn customer_reach_and_visited_networks_decide_who_is_offered_the_app() {
    use op_uni::select::reach_refusal;
    let open = Requirements::default();
    assert_eq!(reach_refusal(&open, "00101", false, None), None, "at home, no restriction");
    assert!(reach_refusal(&open, "00101", true, Some("23415")).unwrap().contains("visitedNetworks"), "roaming needs visitedNetworks");
    let roams = Requirements { visited_networks: true, ..Default::default() };
    assert_eq!(reach_refusal(&roams, "00101", true, Some("23415")), None);
    let reach = Requirements { visited_networks: true, customer_reach: vec!["00101".into(), "26201".into()], ..Default::default() };
    assert_eq!(reach_refusal(&reach, "00101", false, None), None, "home network listed");
    assert_eq!(reach_refusal(&reach, "00101", true, Some("26201")), None, "partner listed");
    assert!(reach_refusal(&reach, "00101", true, Some("23415")).unwrap().contains("23415"), "partner not listed");
    assert!(reach_refusal(&reach, "00101", true, None).unwrap().contains("unknown"), "unknown serving network with a restricted reach");
    let abroad_only = Requirements { visited_networks: true, customer_reach: vec!["26201".into()], ..Default::default() };
    assert!(reach_refusal(&abroad_only, "00101", false, None).is_some(), "the home network is not in the reach");
}

fn policy(name: &str, spec: serde_json::Value) -> PlacementPolicy {
    Object::new(Kind::PlacementPolicy, None, n(name), serde_json::from_value(spec).unwrap())
}

#[test]
fn the_operators_policy_weighs_and_bars_at_the_uni_too() {
    let req = Requirements { app_class: Some(n("gaming")), ..Default::default() };
    let mut w = world(req);
    let entry = w.ix.app(w.app.metadata.uid).unwrap().clone();
    let at = DeviceAt { cell: Some("c-paris".into()), point: None };
    assert_eq!(op_uni::select::weights_at(&w.ix, &entry, &at), Weights::default(), "no policy: the platform's defaults");
    // The default policy weighs gaming apps by latency only; the region fr has its own.
    let default = policy("default", serde_json::json!({"weights": {"distance": 3.0}, "byClass": {"gaming": {"distance": 0.0, "latency": 7.0}}}));
    w.ix.upsert_policy(&default);
    let got = op_uni::select::weights_at(&w.ix, &entry, &at);
    assert_eq!((got.distance, got.latency), (0.0, 7.0), "the class's weights");
    let fr = policy("fr", serde_json::json!({"weights": {"distance": 5.0}, "barredCloudlets": ["paris-1"], "barredDevices": ["+33600000009"]}));
    w.ix.upsert_policy(&fr);
    assert_eq!(op_uni::select::weights_at(&w.ix, &entry, &at).distance, 5.0, "the region's policy, which has no gaming class");
    // Paris's cloudlet is barred in fr: its instance is not offered; berlin (de) falls under
    // the default policy, which bars nothing.
    let r = rank(&w.ix, &entry, &at, &Weights::default(), &no_path);
    assert!(r.ranked.iter().all(|c| c.zone.uid != w.paris.metadata.uid));
    assert!(r.rejected.iter().any(|(_, why)| *why == Rejection::Barred));
    assert!(r.ranked.iter().any(|c| c.zone.uid == w.berlin.metadata.uid));
    let zones: Vec<_> = op_uni::select::rank_zones(&w.ix, &entry, &at, &Weights::default(), &no_path).iter().map(|(z, _)| z.name.to_string()).collect();
    assert!(!zones.contains(&"paris".to_string()) && zones.contains(&"lyon".to_string()), "no dynamic instance where every cloudlet is barred: {zones:?}");
    // Barred devices, by the policy of their region.
    assert!(w.ix.device_barred(&["+33600000009"], Some(&n("fr"))));
    assert!(!w.ix.device_barred(&["+33600000009"], Some(&n("de"))), "de has no policy of its own; default bars no device");
    assert!(!w.ix.device_barred(&["+33600000001"], Some(&n("fr"))));
    // Removing the policy lifts the bar.
    w.ix.remove_policy(fr.metadata.uid);
    assert!(rank(&w.ix, &entry, &at, &Weights::default(), &no_path).ranked.iter().any(|c| c.zone.uid == w.paris.metadata.uid));
}

#[test]
fn barred_devices_are_validated() {
    let bad: Result<PlacementPolicySpec, _> = serde_json::from_value(serde_json::json!({"barredDevices": ["12345"]}));
    let err = op_types::Validate::validate(&bad.unwrap()).unwrap_err();
    assert_eq!(err.field, "barredDevices[0]");
}

#[test]
fn apps_that_never_move_keep_their_devices_until_the_edge_goes() {
    use op_uni::sessions::{ChangeReason, Sessions, UniEvent};
    let mut w = world(Requirements { mobility_policy: MobilityPolicy::NeverMove, ..Default::default() });
    let sessions = Sessions::default();
    let on_paris = w.ix.instances_in(w.app.metadata.uid, w.paris.metadata.uid).next().unwrap().uid;
    sessions.open("s1".into(), w.app.metadata.uid, "+33600000001".into(), DeviceAt { cell: Some("c-paris".into()), point: None }, on_paris, u64::MAX);
    let mut rx = sessions.subscribe("s1").unwrap();
    sessions.moved("+33600000001", DeviceAt { cell: Some("c-berlin".into()), point: None });
    assert_eq!(sessions.reevaluate(&w.ix, 0).len(), 0, "a better edge does not move an app that never moves");
    w.ix.upsert_cloudlet(&cloudlet("paris-1", "paris", true, true));
    assert_eq!(sessions.reevaluate(&w.ix, 0).len(), 1, "its edge going into maintenance does");
    assert!(matches!(rx.try_recv().unwrap(), UniEvent::EdgeChanged { reason: ChangeReason::EdgeMaintenance, .. }));
}

#[test]
fn moves_with_prior_notice_wait_for_the_app_and_reports_move_devices() {
    use op_uni::sessions::{ChangeReason, Sessions, UniEvent};
    let w = world(Requirements { mobility_policy: MobilityPolicy::MoveWithPriorNotice, ..Default::default() });
    let sessions = Sessions::default();
    let id = |z: &Zone| w.ix.instances_in(w.app.metadata.uid, z.metadata.uid).next().unwrap().uid;
    let (paris, berlin, lyon) = (id(&w.paris), id(&w.berlin), id(&w.lyon));
    sessions.open("s1".into(), w.app.metadata.uid, "+33600000001".into(), DeviceAt { cell: Some("c-paris".into()), point: None }, paris, u64::MAX);
    sessions.set_ip("s1", "10.45.0.1".into());
    let mut rx = sessions.subscribe("s1").unwrap();
    sessions.moved("+33600000001", DeviceAt { cell: Some("c-berlin".into()), point: None });
    let moves = sessions.reevaluate(&w.ix, 0);
    assert_eq!(moves.len(), 1);
    let m = moves[0].clone();
    assert!(m.with_notice && m.from == paris && m.to == berlin && m.reason == ChangeReason::BetterEdge, "{m:?}");
    assert_eq!(m.ip.as_deref(), Some("10.45.0.1"));
    assert!(rx.try_recv().is_err(), "the device is not told before the app is ready");
    assert!(sessions.reevaluate(&w.ix, 0).is_empty(), "a pending move is not decided again");
    assert!(sessions.complete(&m));
    assert!(matches!(rx.try_recv().unwrap(), UniEvent::EdgeChanged { app_instance_id, .. } if app_instance_id == berlin));
    assert!(!sessions.complete(&m), "completed once");
    // Back toward Paris; the app refuses: the device stays and nothing is retried until the hold ends.
    sessions.moved("+33600000001", DeviceAt { cell: Some("c-paris".into()), point: None });
    let m = sessions.reevaluate(&w.ix, 0).pop().unwrap();
    sessions.cancel(&m, 100, "the app refused");
    assert!(matches!(rx.try_recv().unwrap(), UniEvent::RelocationCancelled { reason } if reason == "the app refused"));
    assert!(sessions.reevaluate(&w.ix, 50).is_empty(), "held");
    assert_eq!(sessions.reevaluate(&w.ix, 101).len(), 1, "tried again after the hold");
    // The app reports degraded service in Lyon for this device: it is moved away.
    let s2 = Sessions::default();
    s2.open("s2".into(), w.app.metadata.uid, "+33600000002".into(), DeviceAt { cell: Some("c-lyon".into()), point: None }, lyon, u64::MAX);
    s2.set_ip("s2", "10.45.0.2".into());
    assert!(s2.reevaluate(&w.ix, 0).is_empty(), "lyon is its best edge");
    assert_eq!(s2.degraded(lyon, "10.45.0.9"), 0, "another device");
    assert_eq!(s2.degraded(lyon, "10.45.0.2"), 1);
    let m = s2.reevaluate(&w.ix, 0).pop().expect("moved away from the reported instance");
    assert_eq!((m.from, m.reason), (lyon, ChangeReason::QosUnmet));
    assert_ne!(m.to, lyon);
}

#[test]
fn an_instance_updated_in_place_or_moved_is_listed_once_where_it_is() {
    let mut w = world(Requirements::default());
    let mut i = instance(&w.app, &w.paris, "paris-1", false);
    w.ix.upsert_instance(&i);
    let ids = |ix: &EdgeIndex, z: &Zone| ix.instances_in(w.app.metadata.uid, z.metadata.uid).map(|e| (e.uid, e.ready)).collect::<Vec<_>>();
    assert_eq!(ids(&w.ix, &w.paris).iter().filter(|(u, _)| *u == i.metadata.uid).count(), 1);
    // A change of state: the same entry, now ready, still listed once.
    i.status.state = State::Ready;
    w.ix.upsert_instance(&i);
    let paris = ids(&w.ix, &w.paris);
    assert_eq!(paris.iter().filter(|(u, _)| *u == i.metadata.uid).collect::<Vec<_>>(), vec![&(i.metadata.uid, true)]);
    assert_eq!(w.ix.instances_of(w.app.metadata.uid).filter(|e| e.uid == i.metadata.uid).count(), 1);
    // Moved to another zone: gone from the first zone's list, in the second's.
    i.spec.edge_cloud_zone_id = w.lyon.metadata.uid;
    i.spec.cloudlet = n("lyon-1");
    w.ix.upsert_instance(&i);
    assert!(ids(&w.ix, &w.paris).iter().all(|(u, _)| *u != i.metadata.uid));
    assert_eq!(ids(&w.ix, &w.lyon).iter().filter(|(u, _)| *u == i.metadata.uid).count(), 1);
    assert_eq!(w.ix.instances_of(w.app.metadata.uid).filter(|e| e.uid == i.metadata.uid).count(), 1);
    w.ix.remove_instance(i.metadata.uid);
    assert_eq!(w.ix.instances_of(w.app.metadata.uid).filter(|e| e.uid == i.metadata.uid).count(), 0);
}
