//! Capacity-based instantiation (OPG.02): one instance per N users, where the users are, as
//! they come and go.
//!
//! Each zone needs `ceil(users in the zone / N)` instances. A zone with fewer gets the
//! difference; a zone with more gives back its surplus, but only instances serving nobody
//! (a live session is never cut: moving users off an instance is mobility's job). The plan is a
//! pure function of the counts; the caller decides when to act on it (e.g. scale in only after
//! the surplus has lasted a while, so a user who leaves and comes back finds the instance).

use std::collections::BTreeMap;

/// An instance as the planner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Running {
    /// The caller's id.
    pub id: u32,
    /// Its zone.
    pub zone: u32,
    /// Users it serves now.
    pub users: usize,
}

/// What to change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Zones that need one more instance each (a zone appears once per instance).
    pub add: Vec<u32>,
    /// Instances (ids) to remove: surplus and serving nobody.
    pub remove: Vec<u32>,
}

/// Plans for `per_instance` users per instance, `users` per zone (where they are) and the
/// instances running. Deterministic: zones in ascending order, and of a zone's idle instances
/// the highest ids go first.
pub fn plan(per_instance: u32, users: &BTreeMap<u32, usize>, running: &[Running]) -> Plan {
    let per = per_instance.max(1) as usize;
    let mut by_zone: BTreeMap<u32, Vec<&Running>> = BTreeMap::new();
    for r in running {
        by_zone.entry(r.zone).or_default().push(r);
    }
    let mut out = Plan::default();
    for (zone, n) in users {
        let want = n.div_ceil(per);
        let have = by_zone.get(zone).map_or(0, Vec::len);
        out.add.extend(std::iter::repeat_n(*zone, want.saturating_sub(have)));
    }
    for (zone, rs) in &by_zone {
        let want = users.get(zone).copied().unwrap_or(0).div_ceil(per);
        let mut idle: Vec<u32> = rs.iter().filter(|r| r.users == 0).map(|r| r.id).collect();
        idle.sort_unstable_by(|a, b| b.cmp(a));
        out.remove.extend(idle.into_iter().take(rs.len().saturating_sub(want)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scales_out_where_users_are_and_in_where_they_left() {
        let users = BTreeMap::from([(1, 5), (2, 1)]);
        let running = [Running { id: 10, zone: 1, users: 2 }, Running { id: 11, zone: 3, users: 0 }];
        let p = plan(2, &users, &running);
        assert_eq!(p.add, vec![1, 1, 2], "zone 1 needs 3 for 5 users, zone 2 one");
        assert_eq!(p.remove, vec![11], "nobody left in zone 3");
    }

    #[test]
    fn never_removes_an_instance_in_use() {
        let running = [Running { id: 1, zone: 1, users: 1 }, Running { id: 2, zone: 1, users: 1 }];
        assert_eq!(plan(5, &BTreeMap::from([(1, 2)]), &running).remove, Vec::<u32>::new());
    }

    proptest! {
        /// After applying a plan, every zone has at least the instances its users need, and
        /// nothing removed was serving anyone.
        #[test]
        fn plans_meet_demand_and_spare_users(
            per in 1u32..5,
            users in proptest::collection::btree_map(0u32..6, 0usize..12, 0..6),
            running in proptest::collection::vec((0u32..6, 0usize..3), 0..12),
        ) {
            let running: Vec<Running> = running.into_iter().enumerate().map(|(i, (zone, users))| Running { id: i as u32, zone, users }).collect();
            let p = plan(per, &users, &running);
            for id in &p.remove {
                prop_assert_eq!(running[*id as usize].users, 0);
            }
            for (zone, n) in &users {
                let after = running.iter().filter(|r| r.zone == *zone && !p.remove.contains(&r.id)).count()
                    + p.add.iter().filter(|z| *z == zone).count();
                prop_assert!(after >= n.div_ceil(per as usize));
            }
            // No instance is added to a zone that also gives some back.
            for z in &p.add {
                prop_assert!(!p.remove.iter().any(|id| running[*id as usize].zone == *z));
            }
        }
    }
}
