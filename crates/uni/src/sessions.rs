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
    /// Where the device is.
    pub at: DeviceAt,
    /// The instance it uses.
    pub instance: Uid,
    /// Expiry, seconds since the epoch.
    pub expires: u64,
    /// Told that no edge can serve it (so it is not told again until one can).
    stranded: bool,
    events: broadcast::Sender<UniEvent>,
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
        self.lock().insert(id, Session { app, device, at, instance, expires, stranded: false, events });
    }

    /// Ends a session (the device is done); false if it was unknown.
    pub fn close(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// The users of `app`: device, where it is and the instance it uses (live sessions only).
    pub fn users_of(&self, app: Uid, now: u64) -> Vec<(String, DeviceAt, Uid)> {
        self.lock().values().filter(|s| s.app == app && s.expires > now).map(|s| (s.device.clone(), s.at.clone(), s.instance)).collect()
    }

    /// The device confirmed (or switched to) `instance`; false if the session is unknown.
    pub fn confirm(&self, id: &str, instance: Uid) -> bool {
        match self.lock().get_mut(id) {
            Some(s) => {
                s.instance = instance;
                true
            }
            None => false,
        }
    }

    /// Subscribes to a session's events.
    pub fn subscribe(&self, id: &str) -> Option<broadcast::Receiver<UniEvent>> {
        self.lock().get(id).map(|s| s.events.subscribe())
    }

    /// The network says `device` is now at `at`.
    pub fn moved(&self, device: &str, at: DeviceAt) {
        for s in self.lock().values_mut().filter(|s| s.device == device) {
            s.at = at.clone();
        }
    }

    /// The network says `device` has a new IP address.
    pub fn ip_changed(&self, device: &str, ip: &str) {
        for s in self.lock().values().filter(|s| s.device == device) {
            let _ = s.events.send(UniEvent::IpChanged { ip: ip.to_string() });
        }
    }

    /// Drops expired sessions; re-ranks the others and pushes a change where the current
    /// instance cannot serve any more or another is clearly better. Returns how many were told.
    pub fn reevaluate(&self, index: &EdgeIndex, now: u64) -> usize {
        let mut told = 0;
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        for s in map.values_mut() {
            // A device sent to its app's cloud (nil instance) learns of edges when it revalidates.
            if s.instance == Uid::nil() {
                continue;
            }
            let Some(app) = index.app(s.app) else { continue };
            let weights = crate::select::weights_at(index, app, &s.at);
            let r = rank(index, app, &s.at, &weights, &crate::select::network_path(index, &s.at));
            let current = r.ranked.iter().find(|c| c.instance.uid == s.instance);
            // An app that never moves keeps its devices where they are while the instance
            // serves; only a gone, failed or unavailable edge moves them.
            let never_move = app.requirements.mobility_policy == op_types::specs::MobilityPolicy::NeverMove;
            let reason = match (current, r.rejected.iter().find(|(u, _)| *u == s.instance)) {
                (Some(_), _) if never_move => continue,
                (None, Some((_, Rejection::Latency { .. } | Rejection::Jitter { .. } | Rejection::Bandwidth { .. }))) if never_move => continue,
                (Some(cur), _) => match r.ranked.first() {
                    Some(best) if best.instance.uid != s.instance && best.score < cur.score * (1.0 - BETTER_BY) => {
                        ChangeReason::BetterEdge
                    }
                    _ => continue,
                },
                (None, Some((_, Rejection::EdgeUnavailable))) => ChangeReason::EdgeMaintenance,
                (None, Some((_, Rejection::Latency { .. } | Rejection::Jitter { .. } | Rejection::Bandwidth { .. }))) => ChangeReason::QosUnmet,
                (None, _) => ChangeReason::InstanceUnhealthy,
            };
            let event = match r.ranked.first().and_then(|b| b.instance.endpoint.clone().map(|e| (b, e))) {
                Some((best, e)) => {
                    s.instance = best.instance.uid;
                    UniEvent::EdgeChanged {
                        reason,
                        app_instance_id: best.instance.uid,
                        edge_cloud_zone_id: best.zone.uid,
                        host: e.host,
                        port: e.port,
                    }
                }
                None if s.stranded => continue,
                None => UniEvent::NoEdge,
            };
            s.stranded = event == UniEvent::NoEdge;
            let _ = s.events.send(event);
            told += 1;
        }
        told
    }
}
