//! Single-instance decisions: no hard constraint is ever broken, every site is either ranked
//! or rejected with a reason, the choice is the cheapest admissible site (checked against an
//! exhaustive scan), and the operator's weights and barring rules are obeyed.

use std::collections::BTreeSet;

use op_placement::decide::*;
use proptest::prelude::*;

fn site(id: u32, zone: u32, lat: f64, lon: f64) -> Site {
    Site {
        id,
        zone,
        region: zone % 3,
        location: Point { lat, lon },
        free: Resources { millicpus: 4000, memory_mb: 8192, disk_gb: 100, gpus: 0 },
        flavors: BTreeSet::from([1]),
        services: 0,
        available: true,
        mobility: true,
        edge_load: 0.0,
        network_load: 0.0,
        forecast: 0.0,
    }
}

fn arb_site(id: u32) -> impl Strategy<Value = Site> {
    (
        0u32..12,
        44.0f64..50.0,
        -1.0f64..8.0,
        (0u64..4000, 0u64..8192, 0u32..2),
        any::<bool>(),
        any::<bool>(),
        (0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0),
        0u64..4,
        proptest::collection::btree_set(0u32..3, 0..3),
    )
        .prop_map(move |(zone, lat, lon, (cpu, mem, gpus), up, mobility, (el, nl, fc), services, flavors)| Site {
            free: Resources { millicpus: cpu, memory_mb: mem, disk_gb: 50, gpus },
            available: up,
            mobility,
            edge_load: el,
            network_load: nl,
            forecast: fc,
            services,
            flavors,
            ..site(id, zone, lat, lon)
        })
}

fn arb_need() -> impl Strategy<Value = Need> {
    (
        (0u64..3000, 0u64..6000, 0u32..2),
        proptest::option::of(0u32..3),
        0u64..4,
        proptest::collection::btree_set(0u32..12, 0..6),
        proptest::collection::btree_set(0u32..3, 0..2),
        proptest::option::of((44.0f64..50.0, -1.0f64..8.0)),
        proptest::option::of(1.0f64..20.0),
        any::<bool>(),
    )
        .prop_map(|((cpu, mem, gpus), flavor, services, zones, regions, near, max_latency_ms, mobility)| Need {
            app: 1,
            class: 0,
            resources: Resources { millicpus: cpu, memory_mb: mem, disk_gb: 10, gpus },
            flavor,
            services,
            zones,
            regions,
            near: near.map(|(lat, lon)| Point { lat, lon }),
            max_latency_ms,
            mobility,
            deployed: BTreeSet::new(),
        })
}

/// A latency model: 1 ms plus 1 ms per 50 km from the location served.
fn latency_for(need: &Need) -> impl Fn(&Site) -> Option<f64> + '_ {
    move |s: &Site| need.near.map(|p| 1.0 + p.km(s.location) / 50.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn decisions_respect_every_hard_constraint(sites in (1usize..60).prop_flat_map(|n| (0..n as u32).map(arb_site).collect::<Vec<_>>()), need in arb_need()) {
        let policy = Policy { barred_sites: BTreeSet::from([3]), ..Policy::default() };
        let index = Sites::new(sites.clone());
        let latency = latency_for(&need);
        let d = decide(&index, &need, &policy, &latency);
        let ok = |s: &Site| {
            s.available
                && s.id != 3
                && (need.zones.is_empty() || need.zones.contains(&s.zone))
                && (need.regions.is_empty() || need.regions.contains(&s.region))
                && need.flavor.is_none_or(|f| s.flavors.contains(&f))
                && need.services & !s.services == 0
                && need.resources.short_in(&s.free).is_none()
                && need.max_latency_ms.is_none_or(|b| latency(s).is_none_or(|l| l <= b))
                && (!need.mobility || s.mobility)
        };
        for r in &d.ranked {
            prop_assert!(ok(&sites[r.site as usize]), "site {} breaks a constraint", r.site);
        }
        for (id, _) in &d.rejected {
            prop_assert!(!ok(&sites[*id as usize]), "site {} was rejected but is admissible", id);
        }
        // Everything examined is either ranked or rejected, once.
        let mut seen: Vec<u32> = d.ranked.iter().map(|r| r.site).chain(d.rejected.iter().map(|r| r.0)).collect();
        seen.sort_unstable();
        let before = seen.len();
        seen.dedup();
        prop_assert_eq!(before, seen.len());
        // Without a location every site of the footprint is examined: the ranked ones are
        // exactly the admissible ones, cheapest first.
        if need.near.is_none() {
            let admissible: BTreeSet<u32> = sites.iter().filter(|s| ok(s)).map(|s| s.id).collect();
            prop_assert_eq!(d.ranked.iter().map(|r| r.site).collect::<BTreeSet<_>>(), admissible);
            prop_assert!(d.ranked.windows(2).all(|w| w[0].score <= w[1].score));
        }
    }

    /// With a location to serve and distance the only criterion, the nearest admissible site is
    /// chosen, as an exhaustive scan finds it.
    #[test]
    fn near_walk_finds_the_nearest_admissible(sites in (1usize..80).prop_flat_map(|n| (0..n as u32).map(arb_site).collect::<Vec<_>>()), need in arb_need()) {
        let w = Weights { distance: 1.0, latency: 0.0, edge_load: 0.0, network_load: 0.0, forecast: 0.0, not_deployed: 0.0, no_mobility: 0.0 };
        let policy = Policy { weights: w, ..Policy::default() };
        let Some(p) = need.near else { return Ok(()) };
        let index = Sites::new(sites.clone());
        let latency = latency_for(&need);
        let d = decide(&index, &need, &policy, &latency);
        let exhaustive = decide(&index, &Need { near: None, ..need.clone() }, &policy, &latency);
        let nearest = exhaustive.ranked.iter().map(|r| p.km(sites[r.site as usize].location)).fold(f64::INFINITY, f64::min);
        match d.chosen() {
            Some(c) => prop_assert!((p.km(sites[c as usize].location) - nearest).abs() < 1e-6),
            None => prop_assert!(exhaustive.ranked.is_empty()),
        }
    }
}

#[test]
fn weights_per_class_and_barring_decide() {
    // A near, loaded site and a far, idle one.
    let mut near = site(0, 0, 48.85, 2.35);
    near.edge_load = 0.9;
    let far = site(1, 1, 45.76, 4.83);
    let sites = Sites::new(vec![near, far]);
    let need = |class| Need { app: 7, class, near: Some(Point { lat: 48.86, lon: 2.34 }), ..Need::default() };
    let mut policy = Policy::default();
    policy.by_class.insert(1, Weights { distance: 0.0, edge_load: 5.0, ..Weights::default() });
    let none = |_: &Site| None;
    assert_eq!(decide(&sites, &need(0), &policy, &none).chosen(), Some(0), "default weights: distance wins");
    assert_eq!(decide(&sites, &need(1), &policy, &none).chosen(), Some(1), "class 1: load wins");
    policy.barred_pairs.insert((7, 0));
    let d = decide(&sites, &need(0), &policy, &none);
    assert_eq!(d.chosen(), Some(1));
    assert!(d.rejected.contains(&(0, Rejection::Barred)));
    policy.barred_apps.insert(7);
    assert_eq!(decide(&sites, &need(0), &policy, &none).chosen(), None);
}

#[test]
fn reasons_name_what_is_missing() {
    let mut s = site(0, 0, 48.85, 2.35);
    s.free.gpus = 0;
    let sites = Sites::new(vec![s]);
    let need = Need { resources: Resources { gpus: 1, ..Resources::default() }, ..Need::default() };
    let d = decide(&sites, &need, &Policy::default(), &|_| None);
    assert_eq!(d.rejected, vec![(0, Rejection::NoCapacity(Resource::Gpu))]);
    let need = Need { max_latency_ms: Some(5.0), near: Some(Point { lat: 43.3, lon: 5.37 }), ..Need::default() };
    let d = decide(&sites, &need, &Policy::default(), &|s: &Site| Some(1.0 + Point { lat: 43.3, lon: 5.37 }.km(s.location) / 50.0));
    assert!(matches!(d.rejected[0].1, Rejection::Latency { expected_ms } if expected_ms > 5.0));
}
