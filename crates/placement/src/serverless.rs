//! The serverless orchestrator's decision (OPG.02 serverless X.4.3, X.4.4): from the
//! developer's policy and what the ingress of each point of presence sees, which instances to
//! start where and which to stop. Pure: the caller gathers the facts and carries the steps out.

use std::fmt;

/// The developer's policy, as the planner needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Connections one instance takes.
    pub concurrency: u32,
    /// Sessions at a point of presence without an instance that start one there.
    pub trigger: u32,
    /// Instances kept with no traffic.
    pub min: u32,
    /// Instances at most.
    pub max: u32,
    /// Milliseconds without a connection before an instance is stopped.
    pub idle_ms: u64,
}

/// An instance of the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inst {
    /// The caller's id for it.
    pub id: u32,
    /// Open connections.
    pub connections: u64,
    /// Milliseconds since it last had a connection open (0 while it has one).
    pub idle_ms: u64,
}

/// A point of presence as the ingress sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pop {
    /// The app's instances here (starting ones included).
    pub instances: Vec<Inst>,
    /// Concurrent sessions that arrived here.
    pub sessions: u64,
    /// Connections held here for want of any instance.
    pub waiting: bool,
    /// The homebase.
    pub homebase: bool,
}

/// Why a step is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Connections wait and no instance runs anywhere.
    FromZero,
    /// Sessions at a point of presence without an instance reached the trigger.
    Sessions {
        /// Sessions there.
        sessions: u64,
        /// The policy's trigger.
        trigger: u32,
    },
    /// Connections there exceed what its instances take.
    Concurrency {
        /// Open connections there.
        connections: u64,
        /// What its instances take.
        capacity: u64,
    },
    /// Fewer instances than the policy's minimum.
    Minimum {
        /// The minimum.
        min: u32,
    },
    /// No connection for the idle time.
    Idle {
        /// Seconds idle.
        seconds: u64,
    },
}

impl Why {
    /// The event kind it is reported as.
    pub fn kind(&self) -> &'static str {
        match self {
            Why::FromZero => "scaleFromZero",
            Why::Sessions { .. } => "migrate",
            Why::Concurrency { .. } => "scaleOut",
            Why::Minimum { .. } => "keepMinimum",
            Why::Idle { .. } => "scaleIn",
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::FromZero => write!(f, "a connection arrived here and no instance ran anywhere"),
            Why::Sessions { sessions, trigger } => write!(f, "{sessions} concurrent sessions here reached the policy's trigger of {trigger}: the app moves to where its sessions are"),
            Why::Concurrency { connections, capacity } => write!(f, "{connections} open connections here exceed the {capacity} its instances take (concurrencyPerInstance)"),
            Why::Minimum { min } => write!(f, "the policy keeps at least {min} instances (minInstances)"),
            Why::Idle { seconds } => write!(f, "no connection for {seconds} s (idleSeconds)"),
        }
    }
}

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Start an instance at point of presence `pop` (an index into the input).
    Start {
        /// Where.
        pop: usize,
        /// Why.
        why: Why,
    },
    /// Stop instance `id`.
    Stop {
        /// Which.
        id: u32,
        /// Why.
        why: Why,
    },
}

/// The steps for one app, at most one start per point of presence per call (the caller calls
/// again once the instances it started are counted).
pub fn plan(p: &Policy, pops: &[Pop]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut total: u64 = pops.iter().map(|x| x.instances.len() as u64).sum();
    let max = u64::from(p.max);
    let mut started = vec![false; pops.len()];
    // From zero: where connections wait (the homebase first among several).
    if total == 0 {
        let waiting = pops.iter().enumerate().filter(|(_, x)| x.waiting).min_by_key(|(i, x)| (!x.homebase, *i));
        if let Some((i, _)) = waiting {
            steps.push(Step::Start { pop: i, why: Why::FromZero });
            started[i] = true;
            total += 1;
        }
    }
    // Migration: sessions where no instance is.
    let mut by_sessions: Vec<usize> = (0..pops.len()).filter(|i| pops[*i].instances.is_empty() && !started[*i]).collect();
    by_sessions.sort_by_key(|i| (std::cmp::Reverse(pops[*i].sessions), *i));
    for i in by_sessions {
        if total >= max || pops[i].sessions < u64::from(p.trigger) {
            continue;
        }
        steps.push(Step::Start { pop: i, why: Why::Sessions { sessions: pops[i].sessions, trigger: p.trigger } });
        started[i] = true;
        total += 1;
    }
    // Scale out: connections beyond what the instances of a point of presence take.
    for (i, x) in pops.iter().enumerate() {
        if x.instances.is_empty() || started[i] || total >= max {
            continue;
        }
        let connections: u64 = x.instances.iter().map(|n| n.connections).sum();
        let capacity = x.instances.len() as u64 * u64::from(p.concurrency);
        if connections > capacity {
            steps.push(Step::Start { pop: i, why: Why::Concurrency { connections, capacity } });
            started[i] = true;
            total += 1;
        }
    }
    // The minimum, at the homebase (else the first point of presence).
    while total < u64::from(p.min) && !pops.is_empty() {
        let at = pops.iter().position(|x| x.homebase).unwrap_or(0);
        steps.push(Step::Start { pop: at, why: Why::Minimum { min: p.min } });
        total += 1;
    }
    // Scale in: idle instances, away from the homebase first, never below the minimum.
    let mut idle: Vec<(bool, u64, u32)> = pops
        .iter()
        .flat_map(|x| x.instances.iter().filter(|n| n.connections == 0 && n.idle_ms >= p.idle_ms).map(move |n| (x.homebase, n.idle_ms, n.id)))
        .collect();
    idle.sort_by_key(|(home, ms, id)| (*home, std::cmp::Reverse(*ms), *id));
    for (_, ms, id) in idle {
        if total <= u64::from(p.min) {
            break;
        }
        steps.push(Step::Stop { id, why: Why::Idle { seconds: ms / 1000 } });
        total -= 1;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> Policy {
        Policy { concurrency: 2, trigger: 3, min: 0, max: 4, idle_ms: 5000 }
    }

    fn inst(id: u32, connections: u64, idle_ms: u64) -> Inst {
        Inst { id, connections, idle_ms }
    }

    #[test]
    fn the_lifecycle() {
        let p = policy();
        // A first connection waits at pop 0: one instance there.
        let pops = vec![Pop { waiting: true, sessions: 1, ..Pop::default() }, Pop::default()];
        assert_eq!(plan(&p, &pops), [Step::Start { pop: 0, why: Why::FromZero }]);
        // Sessions at pop 1 below the trigger: served from pop 0.
        let pops = vec![Pop { instances: vec![inst(1, 1, 0)], sessions: 1, ..Pop::default() }, Pop { sessions: 2, ..Pop::default() }];
        assert!(plan(&p, &pops).is_empty());
        // At the trigger: an instance starts at pop 1.
        let pops = vec![Pop { instances: vec![inst(1, 1, 0)], sessions: 1, ..Pop::default() }, Pop { sessions: 3, ..Pop::default() }];
        assert_eq!(plan(&p, &pops), [Step::Start { pop: 1, why: Why::Sessions { sessions: 3, trigger: 3 } }]);
        // All quiet: both stop.
        let pops = vec![Pop { instances: vec![inst(1, 0, 6000)], ..Pop::default() }, Pop { instances: vec![inst(2, 0, 5000)], ..Pop::default() }];
        assert_eq!(plan(&p, &pops), [Step::Stop { id: 1, why: Why::Idle { seconds: 6 } }, Step::Stop { id: 2, why: Why::Idle { seconds: 5 } }]);
    }

    #[test]
    fn concurrency_scales_out_and_the_minimum_stays_at_the_homebase() {
        let p = Policy { min: 1, ..policy() };
        let pops = vec![Pop { instances: vec![inst(1, 3, 0)], sessions: 3, ..Pop::default() }, Pop { homebase: true, ..Pop::default() }];
        assert_eq!(plan(&p, &pops), [Step::Start { pop: 0, why: Why::Concurrency { connections: 3, capacity: 2 } }]);
        let pops = vec![Pop { instances: vec![inst(1, 0, 9000)], ..Pop::default() }, Pop { homebase: true, instances: vec![inst(2, 0, 9000)], ..Pop::default() }];
        assert_eq!(plan(&p, &pops), [Step::Stop { id: 1, why: Why::Idle { seconds: 9 } }]);
        let pops = vec![Pop::default(), Pop { homebase: true, ..Pop::default() }];
        assert_eq!(plan(&p, &pops), [Step::Start { pop: 1, why: Why::Minimum { min: 1 } }]);
    }

    proptest! {
        /// Never more than `max` instances, never below `min` by a stop, never a stop of a
        /// busy instance.
        #[test]
        fn bounds_hold(min in 0u32..3, extra in 0u32..4, pops in proptest::collection::vec((0usize..3, 0u64..5, 0u64..10_000, any::<bool>(), 0u64..6), 1..5)) {
            let p = Policy { concurrency: 2, trigger: 3, min, max: min.max(1) + extra, idle_ms: 5000 };
            let mut id = 0;
            let input: Vec<Pop> = pops.iter().map(|(n, conns, idle, waiting, sessions)| {
                let instances = (0..*n).map(|_| { id += 1; inst(id, *conns, if *conns > 0 { 0 } else { *idle }) }).collect();
                Pop { instances, sessions: *sessions, waiting: *waiting, homebase: false }
            }).collect();
            let before: u64 = input.iter().map(|x| x.instances.len() as u64).sum();
            let steps = plan(&p, &input);
            let starts = steps.iter().filter(|s| matches!(s, Step::Start { .. })).count() as u64;
            let stops = steps.iter().filter(|s| matches!(s, Step::Stop { .. })).count() as u64;
            let after = before + starts - stops;
            prop_assert!(starts == 0 || after <= u64::from(p.max).max(u64::from(p.min)));
            prop_assert!(stops == 0 || after >= u64::from(p.min));
            for s in &steps {
                if let Step::Stop { id, .. } = s {
                    let busy = input.iter().flat_map(|x| &x.instances).any(|n| n.id == *id && n.connections > 0);
                    prop_assert!(!busy);
                }
            }
        }
    }
}
