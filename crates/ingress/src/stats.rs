//! Connection events (OPG.02 serverless X.4.2): connections, concurrent sessions and distinct
//! devices per app and point of presence, counted per connection (never per request).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use op_types::serverless::PopTraffic;
use op_types::Uid;

/// At most this many events wait to be read; older ones are dropped (and counted).
const MAX_EVENTS: usize = 10_000;
/// Distinct devices remembered per app and point of presence.
const MAX_DEVICES: usize = 1_000_000;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A session's first open connection at a point of presence.
    SessionStarted,
    /// Its last connection there closed.
    SessionEnded,
}

/// A connection event.
#[derive(Clone, Debug)]
pub struct Event {
    /// When.
    pub at: SystemTime,
    /// The app.
    pub app: Uid,
    /// The point of presence.
    pub pop: String,
    /// What.
    pub kind: EventKind,
    /// Sessions open there after it.
    pub sessions: u64,
}

#[derive(Default)]
struct Entry {
    t: PopTraffic,
    open: HashMap<String, u32>,
    devices: HashSet<String>,
}

/// The counters of every app at every point of presence of a mesh.
#[derive(Default)]
pub struct Stats {
    map: Mutex<HashMap<(Uid, String), Entry>>,
    events: Mutex<VecDeque<Event>>,
}

/// One app's traffic at one point of presence.
pub type AppPopStats = (Uid, String, PopTraffic);

impl Stats {
    fn with<R>(&self, app: Uid, pop: &str, f: impl FnOnce(&mut Entry) -> R) -> R {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry((app, pop.to_string())).or_default();
        f(e)
    }

    fn event(&self, app: Uid, pop: &str, kind: EventKind, sessions: u64) {
        let mut q = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= MAX_EVENTS {
            q.pop_front();
        }
        q.push_back(Event { at: SystemTime::now(), app, pop: pop.to_string(), kind, sessions });
    }

    /// A connection of `session` (from `device`) arrived at `pop` for `app`.
    pub fn opened(&self, app: Uid, pop: &str, session: &str, device: &str) {
        let started = self.with(app, pop, |e| {
            e.t.connections += 1;
            e.t.connections_total += 1;
            if e.devices.len() < MAX_DEVICES && !e.devices.contains(device) {
                e.devices.insert(device.to_string());
                e.t.devices = e.devices.len() as u64;
            }
            let n = e.open.entry(session.to_string()).or_default();
            *n += 1;
            let first = *n == 1;
            e.t.sessions = e.open.len() as u64;
            first.then_some(e.t.sessions)
        });
        if let Some(s) = started {
            self.event(app, pop, EventKind::SessionStarted, s);
        }
    }

    /// That connection closed.
    pub fn closed(&self, app: Uid, pop: &str, session: &str) {
        let ended = self.with(app, pop, |e| {
            e.t.connections = e.t.connections.saturating_sub(1);
            let gone = match e.open.get_mut(session) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    e.open.remove(session);
                    true
                }
                None => false,
            };
            e.t.sessions = e.open.len() as u64;
            gone.then_some(e.t.sessions)
        });
        if let Some(s) = ended {
            self.event(app, pop, EventKind::SessionEnded, s);
        }
    }

    /// A connection at `pop` was held while an instance started.
    pub fn held(&self, app: Uid, pop: &str) {
        self.with(app, pop, |e| e.t.held_total += 1);
    }

    /// A connection at `pop` was forwarded to another point of presence.
    pub fn forwarded(&self, app: Uid, pop: &str) {
        self.with(app, pop, |e| e.t.forwarded_total += 1);
    }

    /// Every app's traffic at every point of presence.
    pub fn snapshot(&self) -> Vec<AppPopStats> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|((a, p), e)| (*a, p.clone(), e.t.clone())).collect()
    }

    /// The events since the last call, oldest first.
    pub fn drain_events(&self) -> Vec<Event> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_devices_follow_connections() {
        let s = Stats::default();
        let app = Uid::random();
        s.opened(app, "p1", "s1", "d1");
        s.opened(app, "p1", "s1", "d1");
        s.opened(app, "p1", "s2", "d2");
        s.opened(app, "p2", "s3", "d1");
        let t = |pop: &str| s.snapshot().into_iter().find(|(a, p, _)| *a == app && p == pop).map(|x| x.2).unwrap();
        assert_eq!((t("p1").connections, t("p1").sessions, t("p1").devices), (3, 2, 2));
        s.closed(app, "p1", "s1");
        assert_eq!((t("p1").connections, t("p1").sessions), (2, 2));
        s.closed(app, "p1", "s1");
        s.closed(app, "p1", "s2");
        assert_eq!((t("p1").connections, t("p1").sessions, t("p1").devices, t("p1").connections_total), (0, 0, 2, 3));
        let ev = s.drain_events();
        let kinds: Vec<_> = ev.iter().filter(|e| e.pop == "p1").map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::SessionStarted, EventKind::SessionStarted, EventKind::SessionEnded, EventKind::SessionEnded]);
        assert!(s.drain_events().is_empty());
    }
}
