//! The audit log: who changed what, when, and with what outcome, for every write through the
//! management APIs (the device-facing UNI and token exchanges are not management and stay
//! out). Request bodies are kept with every secret-looking field replaced by `[redacted]`.
//!
//! A layer around the router sees each write, learns the caller from the [`Caller`] extractor
//! (through a slot in the request's extensions) and queues a record; one task stores what is
//! queued in one transaction (group commit: concurrent writes share one fsync), and the answer
//! leaves only once its record is stored, so a write that was answered is a write that was
//! audited. A handler whose one write is the request's outcome (a deployment) may store the
//! record in that write's own transaction instead ([`record_for_write`]): one commit answers
//! the request, and the layer only corrects the record's status if the answer differs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body as AxumBody};
use axum::extract::{Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use axum::Json;
use op_store::Repo;
use op_types::specs::Role;
use op_types::{Kind, Name, Object, Uid};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::state::AppState;

/// Most records one answer lists.
pub const MAX_LIST: usize = 1000;

/// The longest body kept (serialized, after redaction); longer ones are cut.
const MAX_BODY_CHARS: usize = 4096;
/// How long a mutating request waits for its audit record to be stored before it answers
/// anyway (the record stays queued): while the store is down, callers get an error, not a hang.
const AUDIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One audited write.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// When the answer was sent.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Who (absent when the call carried no valid credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// With which role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The answer's status.
    pub status: u16,
    /// The request body, secrets redacted (absent when empty or not JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// A stored audit record; `metadata.organization` is the organization the caller acted for.
pub type AuditRecord = Object<AuditEntry>;

/// Who made a call: user, role, and the organization acted for.
type Who = (String, Role, Option<Name>);

/// Where the [`Caller`] extractor leaves who called, for the audit layer (and a handler whose
/// caller has no credential yet, registration, who it turned out to be).
#[derive(Clone, Default)]
pub struct Slot(Arc<Mutex<Option<Who>>>);

impl Slot {
    /// Records the authenticated caller.
    pub fn set(&self, c: &Caller) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((c.user.clone(), c.role, c.org.clone()));
    }

    fn take(&self) -> Option<Who> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn peek(&self) -> Option<Who> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

tokio::task_local! {
    /// The audited request being served, while its handler runs: a handler whose one write
    /// makes the request's outcome stores the request's record in that write's transaction.
    static CURRENT: Current;
}

/// What the layer knows of an audited request before its answer, and the record a handler
/// stored with its write, if one did.
#[derive(Clone)]
struct Current(Arc<Mutex<Draft>>);

struct Draft {
    slot: Slot,
    method: String,
    path: String,
    body: Option<serde_json::Value>,
    stored: Option<AuditRecord>,
}

impl Draft {
    fn record(&self, who: Option<Who>, status: u16) -> Option<AuditRecord> {
        let (user, role, org) = match who {
            Some((u, r, o)) => (Some(u), Some(r), o),
            None => (None, None, None),
        };
        let entry = AuditEntry { at: chrono::Utc::now(), user, role, method: self.method.clone(), path: self.path.clone(), status, body: self.body.clone() };
        let uid = Uid::random();
        let name = Name::new(format!("a{}", uid.0.simple())).ok()?;
        let mut rec: AuditRecord = Object::new(Kind::AuditRecord, org, name, entry);
        rec.metadata.uid = uid;
        Some(rec)
    }
}

/// The record of the audited request being served, as it will read if the request is answered
/// with `status`, for the handler to store in the transaction of its write (then
/// [`stored_with_write`]); `None` outside an audited request, and once the request's record
/// is stored (a request that writes many objects is recorded with the first).
pub fn record_for_write(status: axum::http::StatusCode) -> Option<AuditRecord> {
    CURRENT
        .try_with(|c| {
            let d = c.lock();
            if d.stored.is_some() {
                return None;
            }
            d.record(d.slot.peek(), status.as_u16())
        })
        .ok()
        .flatten()
}

/// Tells the layer that `rec` (from [`record_for_write`]) is stored: the answer needs no other
/// write when its status is the one recorded, and an update of the record otherwise.
pub fn stored_with_write(rec: AuditRecord) {
    let _ = CURRENT.try_with(|c| c.lock().stored = Some(rec));
}

impl Current {
    fn lock(&self) -> std::sync::MutexGuard<'_, Draft> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The queue to the writer task: a record and who waits for it to be stored.
pub type Queue = mpsc::Sender<(AuditRecord, oneshot::Sender<()>)>;

/// Batches of records being stored at once: while they are, new records gather into the
/// next batch (and the store may commit batches together with other writes).
const BATCHES_IN_FLIGHT: usize = 4;

/// Starts the writer: stores whatever is queued in one transaction, then tells the waiters.
pub fn start(repo: Repo) -> Queue {
    let (tx, mut rx) = mpsc::channel::<(AuditRecord, oneshot::Sender<()>)>(4096);
    tokio::spawn(async move {
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(BATCHES_IN_FLIGHT));
        while let Some(first) = rx.recv().await {
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let (mut batch, mut waiters): (Vec<AuditRecord>, Vec<oneshot::Sender<()>>) = (vec![first.0], vec![first.1]);
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok((r, w)) => {
                        batch.push(r);
                        waiters.push(w);
                    }
                    Err(_) => break,
                }
            }
            let repo = repo.clone();
            tokio::spawn(async move {
                // A store that fails now may work in a moment: retry the batch, never drop it.
                let mut wait = Duration::from_millis(100);
                while let Err(e) = repo.create_batch(&mut batch).await {
                    tracing::warn!(error = %e, records = batch.len(), "cannot store audit records; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                for w in waiters {
                    let _ = w.send(());
                }
                drop(slot);
            });
        }
    });
    tx
}

/// Whether a request is a management write to audit.
fn audited(method: &Method, path: &str) -> bool {
    let write = matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    let device_or_token = ["/uni/", "/oauth2/", "/simple-edge-discovery/", "/optimal-edge-discovery/", "/application-endpoint-discovery/", "/op/v1/auth/token", "/op/v1/registry/events"]
        .iter()
        .any(|p| path.starts_with(p));
    // Opening a terminal into an instance is an action even though it is a GET (an upgrade).
    let exec = path.starts_with("/op/v1/appinstances/") && path.ends_with("/exec");
    (write && !device_or_token) || exec
}

/// Deletes audit records older than `keep`, every `every`, for ever (where the controllers run):
/// the log stays bounded, and what it holds is what the operator's retention promises.
pub async fn expire(repo: Repo, keep: std::time::Duration, every: std::time::Duration) {
    loop {
        match expire_once(&repo, keep).await {
            Ok(0) => {}
            Ok(gone) => tracing::info!(records = gone, "audit records past their retention deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot read the audit log to expire it"),
        }
        tokio::time::sleep(every).await;
    }
}

/// One pass of [`expire`]: how many records went.
async fn expire_once(repo: &Repo, keep: std::time::Duration) -> Result<usize, op_store::RepoError> {
    let (all, _) = repo.list::<AuditEntry, ()>(Kind::AuditRecord).await?;
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(keep).unwrap_or_else(|_| chrono::Duration::days(90));
    let mut gone = 0;
    for r in all.iter().filter(|r| r.spec.at < cutoff) {
        if repo.delete(r).await.is_ok() {
            gone += 1;
        }
    }
    Ok(gone)
}

/// Replaces the value of every field whose name suggests a secret.
pub fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                let k = k.to_ascii_lowercase();
                let secret = ["password", "secret", "credential", "token", "privatekey", "private_key", "adminurl", "accessvars", "access_vars", "pem"]
                    .iter()
                    .any(|s| k.contains(s));
                if secret && !val.is_null() {
                    *val = serde_json::Value::String("[redacted]".into());
                } else {
                    redact(val);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The layer: passes the request on and queues a record of every management write.
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !audited(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    // The body limit layer runs first; this only reads what it let through.
    let bytes = match to_bytes(body, crate::json::MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return ApiError::invalid("body", format!("cannot read the body: {e}")).into_response(),
    };
    let slot = Slot::default();
    parts.extensions.insert(slot.clone());
    let method = parts.method.to_string();
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let mut body = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
    if let Some(b) = body.as_mut() {
        redact(b);
        if b.to_string().len() > MAX_BODY_CHARS {
            *b = serde_json::Value::String("(longer than 4096 characters; not kept)".into());
        }
    }
    let current = Current(Arc::new(Mutex::new(Draft { slot: slot.clone(), method, path, body, stored: None })));
    let resp = CURRENT.scope(current.clone(), next.run(Request::from_parts(parts, AxumBody::from(bytes)))).await;
    let status = resp.status().as_u16();
    // What the handler stored with its write, else the record to store now.
    let (stored, rec) = {
        let mut draft = current.lock();
        if draft.method == "GET" && !matches!(status, 101 | 403) {
            // An exec is recorded when a session opened or was refused to someone who can see
            // the instance; a malformed or blind probe changed nothing and names nothing of the
            // caller's.
            return resp;
        }
        match draft.stored.take() {
            Some(rec) => (Some(rec), None),
            None => (None, draft.record(slot.take(), status)),
        }
    };
    if let Some(mut rec) = stored {
        // Stored with the handler's write: done, unless the answer turned out otherwise.
        if rec.spec.status != status {
            rec.spec.status = status;
            if let Err(e) = state.repo.update(&mut rec).await {
                tracing::error!(error = %e, record = %rec.metadata.uid, status, "cannot correct the status of an audit record");
            }
        }
        return resp;
    }
    let Some(rec) = rec else { return resp };
    let (done, stored) = oneshot::channel();
    if state.audit.send((rec, done)).await.is_err() {
        tracing::error!("the audit writer has stopped; a record is lost");
    } else {
        match tokio::time::timeout(AUDIT_WAIT, stored).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => tracing::error!("the audit writer has stopped; a record is lost"),
            // The store is down: the writer keeps the record and retries; the caller gets
            // its answer (most likely the store's own error) instead of a hang.
            Err(_) => tracing::warn!("audit record not stored yet; the writer keeps retrying"),
        }
    }
    resp
}


/// Filters of `GET /op/v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this user's records.
    pub user: Option<String>,
    /// Only records of this organization (the operator, or a Manager of it or above it).
    pub organization: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// The audit log, newest first: the operator's is everything; a Manager's, its organization's
/// and its groups'; anyone else's, their own calls.
#[utoipa::path(get, path = "/op/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = Vec<Object<AuditEntry>>), (status = 400, body = ErrorInfo), (status = 401, body = ErrorInfo)))]
pub async fn list(State(s): State<AppState>, c: Caller, Query(q): Query<AuditQuery>) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::invalid("limit", format!("must be 1 to {MAX_LIST}")));
    }
    let (mut all, _) = s.repo.list::<AuditEntry, ()>(Kind::AuditRecord).await?;
    all.retain(|r| {
        let org = r.metadata.organization.as_ref();
        let mine = r.spec.user.as_deref() == Some(c.user.as_str());
        let visible = c.role.is_operator() || mine || (c.role == Role::Manager && org.is_some_and(|o| c.scope.contains(o)));
        visible
            && q.user.as_ref().is_none_or(|u| r.spec.user.as_ref() == Some(u))
            && q.organization.as_ref().is_none_or(|o| org.is_some_and(|x| x.as_str() == o))
    });
    all.sort_by_key(|r| std::cmp::Reverse(r.spec.at));
    all.truncate(limit);
    Ok(Json(all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_past_retention_are_deleted_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::new(op_store::RedbEngine::open(&dir.path().join("s.redb")).unwrap());
        for (name, age_days) in [("old-one", 100), ("recent-one", 1)] {
            let entry = AuditEntry {
                at: chrono::Utc::now() - chrono::Duration::days(age_days),
                user: Some("alice".into()),
                role: None,
                method: "POST".into(),
                path: "/x".into(),
                status: 201,
                body: None,
            };
            let mut r: AuditRecord = Object::new(Kind::AuditRecord, None, Name::new(name).unwrap(), entry);
            repo.create(&mut r).await.unwrap();
        }
        assert_eq!(expire_once(&repo, std::time::Duration::from_secs(90 * 86_400)).await.unwrap(), 1);
        let (left, _) = repo.list::<AuditEntry, ()>(Kind::AuditRecord).await.unwrap();
        assert_eq!(left.iter().map(|r| r.metadata.name.as_str()).collect::<Vec<_>>(), vec!["recent-one"]);
    }

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut v = serde_json::json!({"name": "u", "password": "hunter2", "spec": {"clientSecret": "s", "adminUrl": "postgres://a:b@h/db",
            "list": [{"credentials": "c", "keep": 1}]}, "appRepo": {"userName": "u", "credentials": null}});
        redact(&mut v);
        let t = v.to_string();
        assert!(!t.contains("hunter2") && !t.contains("postgres://") && !t.contains("\"s\"") && !t.contains("\"c\""), "{t}");
        assert_eq!(v["name"], "u");
        assert_eq!(v["spec"]["list"][0]["keep"], 1);
        assert_eq!(v["password"], "[redacted]");
    }

    #[test]
    fn only_management_writes() {
        assert!(audited(&Method::POST, "/op/v1/users"));
        assert!(audited(&Method::DELETE, "/edge-application-management/v0.1alpha1/apps/x"));
        assert!(!audited(&Method::GET, "/op/v1/users"));
        assert!(!audited(&Method::POST, "/uni/v1/sessions"));
        assert!(!audited(&Method::POST, "/op/v1/auth/token"));
        assert!(audited(&Method::POST, "/op/v1/auth/register"));
    }
}
