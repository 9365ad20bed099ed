//! UNI sessions: which device uses which instance of which app, and the channel on which the
//! platform tells the device when that should change (a better edge, its edge in maintenance,
//! its instance unhealthy, its IP changed). Re-evaluation reads only the index.

use std::collections::HashMap;
use std::sync::Mutex;

use op_types::Uid;
use tokio::sync::broadcast;

pub use op_types::uni::{ChangeReason, UniEvent};

use crate::index::EdgeIndex;
use crate::select::{rank, DeviceAt, Rejection};

/// How much better (relative score) another edge must be before the device is told to move.
const BETTER_BY: f64 = 0.2;

/// One device's session.
#[derive(Debug)]
pub struct Session {
    /// The app.
    pub app: Uid,
    /// The device, as the rate limiter and network know it.
    pub device: String,
    /// The device's IP address, when known (the MEC 021 associate id apps know it by).
    pub ip: Option<String>,
    /// Where the device is.
    pub at: DeviceAt,
    /// The instance it uses.
    pub instance: Uid,
    /// Expiry, seconds since the epoch.
    pub expires: u64,
    /// Told that no edge can serve it (so it is not told again until one can).
    stranded: bool,
    /// The latency the network expected to each offered zone, ms (set against the device's
    /// own measurement in the QoE view).
    expected: Vec<(Uid, f64)>,
    /// A relocation with prior notice is under way toward this instance: not decided again.
    pending: Option<Uid>,
    /// After a relocation was refused or cancelled, none is tried before this time (seconds).
    hold_until: u64,
    /// The app reported degraded service on this instance for this device: move away.
    avoid: Option<Uid>,
    /// When the network last said the device moved (trigger of the next decision).
    moved_at: Option<std::time::Instant>,
    events: broadcast::Sender<UniEvent>,
}

/// A relocation decided by [`Sessions::reevaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// The session.
    pub session: String,
    /// The device.
    pub device: String,
    /// The device's IP address, when known.
    pub ip: Option<String>,
    /// The app.
    pub app: Uid,
    /// The instance the device leaves.
    pub from: Uid,
    /// The instance it goes to.
    pub to: Uid,
    /// The zone of `to`.
    pub to_zone: Uid,
    /// Why.
    pub reason: ChangeReason,
    /// What the device is told when it switches.
    pub event: UniEvent,
    /// The app moves with prior notice: the switch waits for it ([`Sessions::complete`]);
    /// otherwise the device has been told already.
    pub with_notice: bool,
    /// From the trigger (the device moved, or this pass began) to the decision.
    pub decided_in: std::time::Duration,
}

/// All live sessions.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a new session.
    pub fn open(&self, id: String, app: Uid, device: String, at: DeviceAt, instance: Uid, expires: u64) {
        let (events, _) = broadcast::channel(16);
        let s = Session { app, device, ip: None, at, instance, expires, stranded: false, expected: Vec::new(), pending: None, hold_until: 0, avoid: None, moved_at: None, events };
        self.lock().insert(id, s);
    }

    /// Records what the network expected to each zone offered to a session, ms.
    pub fn set_expected(&self, id: &str, expected: Vec<(Uid, f64)>) {
        if let Some(s) = self.lock().get_mut(id) {
            s.expected = expected;
        }
    }

    /// Records the device's IP address for a session.
    pub fn set_ip(&self, id: &str, ip: String) {
        if let Some(s) = self.lock().get_mut(id) {
            s.ip = Some(ip);
        }
    }

    /// The apps `device` has live sessions with (all its edge apps are managed together).
    pub fn apps_of(&self, device: &str) -> Vec<Uid> {
        let mut v: Vec<Uid> = self.lock().values().filter(|s| s.device == device).map(|s| s.app).collect();
        v.sort();
        v.dedup();
        v
    }

    /// A relocation with notice is done: the device switches to the move's instance and is
    /// told. False if the session is gone or no longer waits for that move.
    pub fn complete(&self, m: &Move) -> bool {
        let mut map = self.lock();
        let Some(s) = map.get_mut(&m.session).filter(|s| s.pending == Some(m.to)) else { return false };
        s.pending = None;
        s.instance = m.to;
        s.avoid = None;
        let _ = s.events.send(m.event.clone());
        true
    }

    /// A relocation with notice was refused or cancelled: the device stays (and is told why),
    /// and no other is tried before `hold_until` (seconds since the epoch).
    pub fn cancel(&self, m: &Move, hold_until: u64, reason: &str) {
        if let Some(s) = self.lock().get_mut(&m.session).filter(|s| s.pending == Some(m.to)) {
            s.pending = None;
            s.hold_until = hold_until;
            let _ = s.events.send(UniEvent::RelocationCancelled { reason: reason.to_string() });
        }
    }

    /// The app reports degraded service for the device of IP `ip` on `instance`: its sessions
    /// there are moved away at the next pass, if another instance can serve. Returns how many
    /// sessions that concerns.
    pub fn degraded(&self, instance: Uid, ip: &str) -> usize {
        let mut n = 0;
        for s in self.lock().values_mut().filter(|s| s.instance == instance && s.ip.as_deref() == Some(ip)) {
            s.avoid = Some(instance);
            s.hold_until = 0;
            n += 1;
        }
        n
    }

    /// Ends a session (the device is done); false if it was unknown.
    pub fn close(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// The users of `app`: device, where it is and the instance it uses (live sessions only).
    pub fn users_of(&self, app: Uid, now: u64) -> Vec<(String, DeviceAt, Uid)> {
        self.lock().values().filter(|s| s.app == app && s.expires > now).map(|s| (s.device.clone(), s.at.clone(), s.instance)).collect()
    }

    /// The device confirmed (or switched to) `instance` in `zone`; what the network expected
    /// to that zone (ms) when it said, or `None` if the session is unknown.
    pub fn confirm(&self, id: &str, instance: Uid, zone: Uid) -> Option<Option<f64>> {
        let mut m = self.lock();
        let s = m.get_mut(id)?;
        s.instance = instance;
        Some(s.expected.iter().find(|(z, _)| *z == zone).map(|(_, ms)| *ms))
    }

    /// Subscribes to a session's events.
    pub fn subscribe(&self, id: &str) -> Option<broadcast::Receiver<UniEvent>> {
        self.lock().get(id).map(|s| s.events.subscribe())
    }

    /// The network says `device` is now at `at`.
    pub fn moved(&self, device: &str, at: DeviceAt) {
        let now = std::time::Instant::now();
        for s in self.lock().values_mut().filter(|s| s.device == device) {
            s.at = at.clone();
            s.moved_at = Some(now);
        }
    }

    /// The network says `device` has a new IP address; returns its sessions' apps, instances
    /// and former addresses (whom to tell).
    pub fn ip_changed(&self, device: &str, ip: &str) -> Vec<(Uid, Uid, Option<String>)> {
        let mut told = Vec::new();
        for s in self.lock().values_mut().filter(|s| s.device == device) {
            let old = s.ip.replace(ip.to_string());
            told.push((s.app, s.instance, old));
            let _ = s.events.send(UniEvent::IpChanged { ip: ip.to_string() });
        }
        told
    }

    /// Drops expired sessions; re-ranks the others and decides a move where the current
    /// instance cannot serve any more, the app reported it degraded, or another is clearly
    /// better, within the app's mobility policy. A move without notice is applied and the
    /// device told at once; a move with prior notice waits ([`Self::complete`] /
    /// [`Self::cancel`]). Returns the moves decided.
    pub fn reevaluate(&self, index: &EdgeIndex, now: u64) -> Vec<Move> {
        use op_types::specs::MobilityPolicy;
        let mut moves = Vec::new();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        for (id, s) in map.iter_mut() {
            // A device sent to its app's cloud (nil instance) learns of edges when it revalidates.
            if s.instance == Uid::nil() || s.pending.is_some() || s.hold_until > now {
                continue;
            }
            let started = std::time::Instant::now();
            let Some(app) = index.app(s.app) else { continue };
            let weights = crate::select::weights_at(index, app, &s.at);
            let mut r = rank(index, app, &s.at, &weights, &crate::select::network_path(index, &s.at));
            let reported = s.avoid.filter(|a| *a == s.instance);
            if let Some(bad) = reported {
                r.ranked.retain(|c| c.instance.uid != bad);
            }
            let current = r.ranked.iter().find(|c| c.instance.uid == s.instance);
            // An app that never moves keeps its devices where they are while the instance
            // serves; only a gone, failed or unavailable edge moves them.
            let policy = app.requirements.mobility_policy;
            let never_move = policy == MobilityPolicy::NeverMove;
            let qos = |r: &Rejection| matches!(r, Rejection::Latency { .. } | Rejection::Jitter { .. } | Rejection::Bandwidth { .. });
            let reason = match (current, r.rejected.iter().find(|(u, _)| *u == s.instance)) {
                (Some(_), _) if never_move => continue,
                (None, Some((_, why))) if never_move && qos(why) => continue,
                (None, None) if never_move && reported.is_some() => continue,
                (Some(cur), _) => match r.ranked.first() {
                    Some(best) if best.instance.uid != s.instance && best.score < cur.score * (1.0 - BETTER_BY) => {
                        ChangeReason::BetterEdge
                    }
                    _ => continue,
                },
                (None, None) if reported.is_some() => ChangeReason::QosUnmet,
                (None, Some((_, Rejection::EdgeUnavailable))) => ChangeReason::EdgeMaintenance,
                (None, Some((_, why))) if qos(why) => ChangeReason::QosUnmet,
                (None, _) => ChangeReason::InstanceUnhealthy,
            };
            let (to, to_zone, event) = match r.ranked.first().and_then(|b| b.instance.endpoint.clone().map(|e| (b, e))) {
                Some((best, e)) => (
                    best.instance.uid,
                    best.zone.uid,
                    UniEvent::EdgeChanged { reason, app_instance_id: best.instance.uid, edge_cloud_zone_id: best.zone.uid, host: e.host, port: e.port },
                ),
                None if s.stranded => continue,
                None => {
                    s.stranded = true;
                    let _ = s.events.send(UniEvent::NoEdge);
                    continue;
                }
            };
            s.stranded = false;
            // Prior notice where the current instance can still hand over; a gone or failed
            // one cannot, so the device moves at once.
            let with_notice = policy == MobilityPolicy::MoveWithPriorNotice && matches!(reason, ChangeReason::BetterEdge | ChangeReason::QosUnmet);
            let decided_in = s.moved_at.take().map_or_else(|| started.elapsed(), |t| t.elapsed());
            let m = Move {
                session: id.clone(),
                device: s.device.clone(),
                ip: s.ip.clone(),
                app: s.app,
                from: s.instance,
                to,
                to_zone,
                reason,
                event: event.clone(),
                with_notice,
                decided_in,
            };
            if with_notice {
                s.pending = Some(to);
            } else {
                s.instance = to;
                s.avoid = None;
                let _ = s.events.send(event);
            }
            moves.push(m);
        }
        moves
    }
}
