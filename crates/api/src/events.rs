//! Events: what happened to app instances and cloudlets (created, a state change, a condition
//! turning, deleted), for the debug view, the operator's cloudlet events and alarms.
//!
//! Events are derived from the stored status as it changes (an [`Informer`] per kind), never
//! written by controllers: every replica derives the same ones, and what a controller did is
//! exactly what its status says. They are kept in memory, the most recent [`KEEP`] of all and
//! [`KEEP_PER_OBJECT`] per object, since the process started; the status itself is durable.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::Json;
use op_store::informer::{Change, Informer, Raw};
use op_store::{Repo, RepoError};
use op_types::observe::{Event, Severity};
use op_types::{Kind, Name, State as ObjState, Status, Uid};
use serde::Deserialize;
use tokio::sync::broadcast;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::state::AppState;

/// Events kept in all.
pub const KEEP: usize = 10_000;
/// Events kept per object (what its debug view shows).
pub const KEEP_PER_OBJECT: usize = 50;

/// What an object looked like last time, to tell what changed.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    name: String,
    organization: Option<Name>,
    state: ObjState,
    message: Option<String>,
    conditions: BTreeMap<String, (bool, String)>,
}

#[derive(Default)]
struct Inner {
    all: VecDeque<Event>,
    per_object: HashMap<Uid, VecDeque<Event>>,
    seen: HashMap<Uid, Seen>,
}

/// The event log, shared by the API and the alarm evaluator.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Mutex<Inner>>,
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Self { inner: Arc::default(), tx: broadcast::channel(4096).0 }
    }
}

/// What events are derived from: an object's metadata and status (its spec and observed
/// status are skipped, not decoded).
type Header = op_types::Object<serde::de::IgnoredAny, serde::de::IgnoredAny>;

fn header(raw: &Raw) -> Option<Header> {
    raw.decode().map_err(|e| tracing::warn!(error = %e, "undecodable object")).ok()
}

impl Events {
    /// Starts following instances and cloudlets. What is stored when it starts is the baseline:
    /// it yields no events, only later changes do.
    pub async fn start(repo: Repo) -> Result<Self, RepoError> {
        let events = Self::default();
        for kind in [Kind::AppInstance, Kind::Cloudlet] {
            let informer = Informer::start(repo.clone(), kind, &mut |c| events.baseline(c)).await?;
            let ev = events.clone();
            tokio::spawn(informer.run(move |c| ev.observe(kind, c)));
        }
        Ok(events)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn seen_of(o: &Header) -> Seen {
        let status: &Status = &o.status;
        Seen {
            name: o.metadata.name.to_string(),
            organization: o.metadata.organization.clone(),
            state: status.state,
            message: status.message.clone(),
            conditions: status.conditions.iter().map(|c| (c.kind.clone(), (c.status, c.reason.clone()))).collect(),
        }
    }

    fn baseline(&self, change: Change<'_>) {
        if let Change::Put(raw) = change {
            if let Some(o) = header(raw) {
                self.lock().seen.insert(o.metadata.uid, Self::seen_of(&o));
            }
        }
    }

    /// Derives the events of one change (public for tests of the derivation).
    pub fn observe(&self, kind: Kind, change: Change<'_>) {
        let mut out = Vec::new();
        let mut inner = self.lock();
        match change {
            Change::Put(raw) => {
                let Some(ref o) = header(raw) else { return };
                let now = Self::seen_of(o);
                let event = |reason: &str, message: String, severity| Event {
                    at: chrono::Utc::now(),
                    object_kind: kind,
                    object_id: o.metadata.uid,
                    object_name: o.metadata.name.to_string(),
                    organization: o.metadata.organization.clone(),
                    reason: reason.to_string(),
                    message,
                    severity,
                };
                let before = inner.seen.get(&o.metadata.uid).cloned();
                match &before {
                    None => out.push(event("Created", format!("{kind} {} created", o.metadata.name), Severity::Normal)),
                    Some(b) => {
                        // The `Ready` condition says what the state change says.
                        for (ty, (status, reason)) in now.conditions.iter().filter(|(ty, _)| ty.as_str() != "Ready") {
                            if b.conditions.get(ty).map(|c| c.0) != Some(*status) {
                                let (sev, what) = if *status { (Severity::Normal, "now holds") } else { (Severity::Warning, "no longer holds") };
                                let why = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
                                out.push(event(ty, format!("{ty} {what}{why}"), sev));
                            }
                        }
                    }
                }
                let changed = before.as_ref().is_none_or(|b| b.state != now.state || (now.state == ObjState::Failed && b.message != now.message));
                // A new object's Pending is what Created already says.
                if changed && (before.is_some() || now.state != ObjState::Pending) {
                    let from = before.as_ref().map_or_else(String::new, |b| format!(" (was {})", b.state));
                    let msg = now.message.as_ref().map_or_else(String::new, |m| format!(": {m}"));
                    let sev = if matches!(now.state, ObjState::Failed) { Severity::Warning } else { Severity::Normal };
                    out.push(event(&now.state.to_string(), format!("{}{from}{msg}", now.state), sev));
                }
                inner.seen.insert(o.metadata.uid, now);
            }
            Change::Deleted(uid) => {
                inner.per_object.remove(&uid);
                if let Some(last) = inner.seen.remove(&uid) {
                    out.push(Event {
                        at: chrono::Utc::now(),
                        object_kind: kind,
                        object_id: uid,
                        message: format!("{kind} {} deleted", last.name),
                        object_name: last.name,
                        organization: last.organization,
                        reason: "Deleted".into(),
                        severity: Severity::Normal,
                    });
                }
            }
        }
        for e in out {
            if e.reason != "Deleted" {
                let q = inner.per_object.entry(e.object_id).or_default();
                q.push_back(e.clone());
                if q.len() > KEEP_PER_OBJECT {
                    q.pop_front();
                }
            }
            inner.all.push_back(e.clone());
            if inner.all.len() > KEEP {
                inner.all.pop_front();
            }
            let _ = self.tx.send(e);
        }
    }

    /// The most recent events of one object, oldest first.
    pub fn of_object(&self, uid: Uid) -> Vec<Event> {
        self.lock().per_object.get(&uid).map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }

    /// Up to `limit` of the most recent events that pass `keep`, newest first.
    pub fn recent(&self, limit: usize, keep: impl Fn(&Event) -> bool) -> Vec<Event> {
        self.lock().all.iter().rev().filter(|e| keep(e)).take(limit).cloned().collect()
    }

    /// Every event from now on (alarms).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

/// Filters of `GET /op/v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct EventQuery {
    /// Only events of this kind of object: `AppInstance` or `Cloudlet`.
    pub object_kind: Option<Kind>,
    /// Only events of this object (uid).
    pub object_id: Option<Uid>,
    /// Only `Warning` events.
    pub warnings: Option<bool>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// Recent events, newest first: the operator's are every instance's and cloudlet's; a
/// developer's, the instances of the organizations it may read.
#[utoipa::path(get, path = "/op/v1/events", tag = "events", security(("bearer" = [])), params(EventQuery),
    responses((status = 200, body = Vec<Event>), (status = 400, body = ErrorInfo), (status = 401, body = ErrorInfo)))]
pub async fn list(State(s): State<AppState>, c: Caller, Query(q): Query<EventQuery>) -> Result<Json<Vec<Event>>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid("limit", "must be 1 to 1000"));
    }
    if let Some(k) = q.object_kind {
        if !matches!(k, Kind::AppInstance | Kind::Cloudlet) {
            return Err(ApiError::invalid("objectKind", "must be AppInstance or Cloudlet"));
        }
    }
    let warnings = q.warnings.unwrap_or(false);
    Ok(Json(s.events.recent(limit, |e| {
        let visible = c.role.is_operator() || (e.object_kind == Kind::AppInstance && c.can_read(e.organization.as_ref()));
        visible
            && q.object_kind.is_none_or(|k| k == e.object_kind)
            && q.object_id.is_none_or(|u| u == e.object_id)
            && (!warnings || e.severity == Severity::Warning)
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use op_types::Object;

    fn inst(uid: Uid, state: ObjState, running: Option<bool>) -> Raw {
        let mut o: Object<serde_json::Value> = Object::new(Kind::AppInstance, Name::new("org_one").ok(), Name::new("web_1").unwrap(), serde_json::json!({}));
        o.metadata.uid = uid;
        o.status.state = state;
        if let Some(r) = running {
            o.status.set_condition("ContainerRunning", r, if r { "" } else { "Exited" });
        }
        Raw::of(&o).unwrap()
    }

    #[test]
    fn events_follow_status_changes() {
        let ev = Events::default();
        let (known, new) = (Uid::random(), Uid::random());
        ev.baseline(Change::Put(&inst(known, ObjState::Ready, Some(true))));
        assert!(ev.recent(10, |_| true).is_empty(), "what was there at the start is the baseline");
        ev.observe(Kind::AppInstance, Change::Put(&inst(known, ObjState::Ready, Some(true))));
        assert!(ev.recent(10, |_| true).is_empty(), "no change, no event");
        ev.observe(Kind::AppInstance, Change::Put(&inst(known, ObjState::Creating, Some(false))));
        let got = ev.of_object(known);
        assert_eq!(got.iter().map(|e| (e.reason.as_str(), e.severity)).collect::<Vec<_>>(), [("ContainerRunning", Severity::Warning), ("Creating", Severity::Normal)]);
        assert!(got[0].message.contains("Exited") && got[1].message.contains("was Ready"), "{got:?}");

        let mut rx = ev.subscribe();
        ev.observe(Kind::AppInstance, Change::Put(&inst(new, ObjState::Pending, None)));
        assert_eq!(rx.try_recv().map(|e| e.reason).ok().as_deref(), Some("Created"));
        ev.observe(Kind::AppInstance, Change::Deleted(new));
        let del = rx.try_recv().expect("deleted");
        assert_eq!((del.reason.as_str(), del.object_name.as_str(), del.organization.as_ref().map(Name::as_str)), ("Deleted", "web_1", Some("org_one")));
        assert!(ev.of_object(new).is_empty(), "a deleted object's own events go with it");
        assert_eq!(ev.recent(1, |_| true)[0].reason, "Deleted", "newest first");
    }
}
