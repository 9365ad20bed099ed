//! A developer's hands on one running instance: its logs (the tail, or followed as they are
//! written), a terminal into it (exec over WebSocket), and a debug view that puts its health,
//! its container's state and its recent events on one page.
//!
//! Each call reaches the instance's cloudlet through its driver; none reads the store more
//! than to find the instance.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{SinkExt, StreamExt};
use op_driver::{Driver, DriverError, ExecOutput, ExecRequest, ExecSession};
use op_types::specs::{AppInstance, CloudletObserved, CloudletSpec, HIDDEN_CLOUDLET};
use op_types::observe::{ContainerView, EndpointCheck, InstanceDebug, CLOSE, EXEC_PROTOCOL, RESIZE, STATUS, STDERR, STDIN, STDOUT};
use op_types::Kind;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::state::AppState;

/// Longest command line accepted (arguments).
const MAX_ARGS: usize = 64;

/// The instance (visible to the caller) and its cloudlet's driver.
async fn reach(s: &AppState, c: &Caller, id: &str) -> Result<(AppInstance, Arc<dyn Driver>), ApiError> {
    let inst = crate::camara::visible_instance(s, c, id).await?;
    if inst.spec.federated.is_some() {
        return Err(ApiError::Conflict(
            "the instance runs on a partner operator's zone: its container is the partner's, and only its state and events are shown here".into(),
        ));
    }
    let cl = s
        .repo
        .get_by_name::<CloudletSpec, CloudletObserved>(Kind::Cloudlet, None, &inst.spec.cloudlet)
        .await?
        .ok_or_else(|| ApiError::NotFound("the instance's cloudlet no longer exists".into()))?;
    let driver = s.drivers.for_cloudlet(&cl.spec).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok((inst, driver))
}

/// Maps a driver error about the instance's container to what the caller can act on.
fn container_error(e: DriverError) -> ApiError {
    match e {
        DriverError::NotFound(_) => ApiError::NotFound("the instance has no container (yet, or any more)".into()),
        DriverError::Runtime(m) => ApiError::Conflict(format!("the container cannot do this now: {m}")),
        e => ApiError::Unavailable(e.to_string()),
    }
}

/// Filters of the logs call.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LogsQuery {
    /// How many trailing lines (default 100, at most 10000).
    pub tail: Option<usize>,
    /// Keep the answer open and send what the container writes from now on, until it stops
    /// or the caller hangs up.
    pub follow: Option<bool>,
}

/// The last lines of an instance's container output and, with `follow=true`, what it writes
/// from then on (a chunked `text/plain` answer that stays open).
#[utoipa::path(get, path = "/op/v1/appinstances/{appInstanceId}/logs", tag = "instances", security(("bearer" = [])),
    params(("appInstanceId" = String, Path), LogsQuery),
    responses((status = 200, body = String, content_type = "text/plain"), (status = 400, body = ErrorInfo), (status = 404, body = ErrorInfo), (status = 503, body = ErrorInfo)))]
pub async fn logs(State(s): State<AppState>, c: Caller, Path(id): Path<String>, Query(q): Query<LogsQuery>) -> Result<Response, ApiError> {
    let tail = q.tail.unwrap_or(100);
    if tail > 10_000 {
        return Err(ApiError::invalid("tail", "must be at most 10000"));
    }
    let (inst, driver) = reach(&s, &c, &id).await?;
    let stream = driver.logs(&op_controller::container_name(inst.metadata.uid), tail, q.follow.unwrap_or(false)).await.map_err(container_error)?;
    let body = Body::from_stream(stream.map(|r| r.map_err(std::io::Error::other)));
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body).into_response())
}

/// What an exec runs: `command` repeated once per argument, e.g.
/// `?command=sh&command=-c&command=ls%20/`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExecQuery {
    /// The command and its arguments, one `command` parameter each (no shell is implied).
    pub command: Vec<String>,
    /// Allocate a terminal (interactive shells; output on one channel).
    pub tty: Option<bool>,
}

fn parse_exec_query(raw: Option<&str>) -> Result<ExecRequest, ApiError> {
    let mut cmd = Vec::new();
    let mut tty = false;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "command" => cmd.push(v.into_owned()),
            "tty" => tty = v.parse().map_err(|_| ApiError::invalid("tty", "must be true or false"))?,
            other => return Err(ApiError::invalid(other, "unknown parameter; exec takes command (repeated) and tty")),
        }
    }
    if cmd.is_empty() || cmd[0].is_empty() {
        return Err(ApiError::invalid("command", "name the program to run, e.g. ?command=sh"));
    }
    if cmd.len() > MAX_ARGS || cmd.iter().any(|a| a.contains('\0') || a.len() > 4096) {
        return Err(ApiError::invalid("command", format!("at most {MAX_ARGS} arguments of at most 4096 bytes, without NUL")));
    }
    Ok(ExecRequest { cmd, tty })
}

/// Runs a command inside the instance's container with its input and output on a WebSocket
/// (subprotocol `op.exec.v1`; see the API guide for the framing). Writers only (Contributor
/// and up); every exec is in the audit log with its command.
#[utoipa::path(get, path = "/op/v1/appinstances/{appInstanceId}/exec", tag = "instances", security(("bearer" = [])),
    params(("appInstanceId" = String, Path), ExecQuery),
    responses((status = 101, description = "switched to the exec WebSocket"), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo),
        (status = 404, body = ErrorInfo), (status = 409, body = ErrorInfo), (status = 503, body = ErrorInfo)))]
pub async fn exec(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let req = parse_exec_query(raw.as_deref())?;
    let ws = ws.map_err(|e| ApiError::invalid("Upgrade", format!("exec is a WebSocket (subprotocol {EXEC_PROTOCOL}): {e}")))?;
    let (inst, driver) = reach(&s, &c, &id).await?;
    let org = inst.metadata.organization.as_ref().ok_or_else(|| ApiError::Internal("instance without organization".into()))?;
    c.require_write(org)?;
    // Started before the upgrade, so a container that cannot exec is a plain HTTP error.
    let session = driver.exec(&op_controller::container_name(inst.metadata.uid), &req).await.map_err(container_error)?;
    Ok(ws.protocols([EXEC_PROTOCOL]).on_upgrade(move |socket| pump(socket, session, driver)))
}

/// A terminal size.
#[derive(Debug, Deserialize)]
struct Resize {
    cols: u16,
    rows: u16,
}

fn frame(channel: u8, payload: &[u8]) -> Message {
    let mut v = Vec::with_capacity(payload.len() + 1);
    v.push(channel);
    v.extend_from_slice(payload);
    Message::Binary(v.into())
}

/// How long a terminal may go without input or output before the platform closes it (a
/// forgotten session holds a process in the container and a connection open).
pub const EXEC_IDLE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// When a session last moved a byte either way.
struct Activity(std::sync::Mutex<tokio::time::Instant>);

impl Activity {
    fn new() -> Self {
        Self(std::sync::Mutex::new(tokio::time::Instant::now()))
    }

    fn touch(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now();
    }

    /// Completes once nothing moved for `limit`.
    async fn idle(&self, limit: std::time::Duration) {
        loop {
            let last = *self.0.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= limit {
                return;
            }
            tokio::time::sleep_until(last + limit).await;
        }
    }
}

/// Copies the socket to the process and the process to the socket until the process ends
/// (then sends its exit code), the client goes away (then the process's input closes), or
/// nothing moves either way for [`EXEC_IDLE`] (then the client is told and the socket closes).
async fn pump(socket: WebSocket, session: ExecSession, driver: Arc<dyn Driver>) {
    let ExecSession { id, mut output, mut input } = session;
    let (tx, mut rx) = socket.split();
    let tx = tokio::sync::Mutex::new(tx);
    let activity = Activity::new();
    let to_process = async {
        while let Some(Ok(msg)) = rx.next().await {
            activity.touch();
            let ok = match msg {
                Message::Binary(b) => match (b.first(), b.get(1)) {
                    (Some(&STDIN), _) => input.write_all(&b[1..]).await.is_ok() && input.flush().await.is_ok(),
                    (Some(&RESIZE), _) => {
                        if let Ok(r) = serde_json::from_slice::<Resize>(&b[1..]) {
                            let _ = driver.exec_resize(&id, r.cols, r.rows).await;
                        }
                        true
                    }
                    (Some(&CLOSE), Some(&STDIN)) => {
                        let _ = input.shutdown().await;
                        true
                    }
                    _ => true,
                },
                Message::Close(_) => false,
                _ => true,
            };
            if !ok {
                break;
            }
        }
    };
    let from_process = async {
        while let Some(chunk) = output.next().await {
            activity.touch();
            let msg = match chunk {
                Ok(ExecOutput::Stdout(b)) => frame(STDOUT, &b),
                Ok(ExecOutput::Stderr(b)) => frame(STDERR, &b),
                Err(e) => frame(STDERR, format!("\r\nexec: {e}\r\n").as_bytes()),
            };
            if tx.lock().await.send(msg).await.is_err() {
                return;
            }
        }
        // The output ends as the process does; the runtime may take a moment to record it.
        let mut code = None;
        for _ in 0..40 {
            match driver.exec_exit_code(&id).await {
                Ok(Some(c)) => {
                    code = Some(c);
                    break;
                }
                Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
                Err(_) => break,
            }
        }
        let status = serde_json::json!({ "exitCode": code });
        let mut tx = tx.lock().await;
        let _ = tx.send(frame(STATUS, status.to_string().as_bytes())).await;
        let _ = tx.send(Message::Close(None)).await;
    };
    tokio::select! {
        () = from_process => {}
        () = to_process => {}
        () = activity.idle(EXEC_IDLE) => {
            let mut tx = tx.lock().await;
            let note = format!("\r\nexec: closed after {} minutes without input or output\r\n", EXEC_IDLE.as_secs() / 60);
            let _ = tx.send(frame(STDERR, note.as_bytes())).await;
            let _ = tx.send(Message::Close(None)).await;
        }
    }
}

/// Lines of output the debug view shows.
const DEBUG_LOG_LINES: usize = 20;

/// An instance's debug view: state and conditions, its container as the runtime sees it now,
/// a health check of each endpoint, recent events and the last lines of output.
#[utoipa::path(get, path = "/op/v1/appinstances/{appInstanceId}/debug", tag = "instances", security(("bearer" = [])),
    params(("appInstanceId" = String, Path)),
    responses((status = 200, body = InstanceDebug), (status = 404, body = ErrorInfo), (status = 503, body = ErrorInfo)))]
pub async fn debug(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<InstanceDebug>, ApiError> {
    let (inst, driver) = reach(&s, &c, &id).await?;
    let name = op_controller::container_name(inst.metadata.uid);
    let mut runtime_error = None;
    let container = match driver.inspect(&name).await {
        Ok(info) => info.map(|i| ContainerView {
            id: i.id.chars().take(12).collect(),
            state: format!("{:?}", i.state),
            exit_code: i.exit_code,
            started_at: i.started_at,
            finished_at: i.finished_at,
            oom_killed: i.oom_killed,
            error: i.error,
        }),
        Err(e) => {
            runtime_error = Some(e.to_string());
            None
        }
    };
    let mut health = Vec::new();
    for e in &inst.observed.endpoints {
        let reachable = driver.reachable(&e.host, e.port).await;
        health.push(EndpointCheck { interface_id: e.interface_id.clone(), address: format!("{}:{}", e.host, e.port), reachable });
    }
    let mut log_tail = Vec::new();
    if container.is_some() {
        match driver.logs(&name, DEBUG_LOG_LINES, false).await {
            Ok(stream) => {
                let bytes: Vec<u8> = stream.filter_map(|r| async move { r.ok() }).concat().await;
                log_tail = String::from_utf8_lossy(&bytes).lines().map(str::to_string).collect();
            }
            Err(e) => runtime_error = Some(e.to_string()),
        }
    }
    let cloudlet = if c.role.is_operator() { inst.spec.cloudlet.to_string() } else { HIDDEN_CLOUDLET.to_string() };
    Ok(Json(InstanceDebug {
        app_instance_id: inst.metadata.uid,
        name: inst.metadata.name.to_string(),
        app_id: inst.spec.app_id,
        edge_cloud_zone_id: inst.spec.edge_cloud_zone_id,
        cloudlet,
        state: inst.status.state,
        message: inst.status.message.clone(),
        conditions: inst.status.conditions.clone(),
        container,
        health,
        events: s.events.of_object(inst.metadata.uid),
        log_tail,
        runtime_error,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_session_is_idle_only_after_the_limit_without_activity() {
        let a = Activity::new();
        let limit = std::time::Duration::from_secs(60);
        tokio::time::advance(std::time::Duration::from_secs(50)).await;
        a.touch();
        let started = tokio::time::Instant::now();
        a.idle(limit).await;
        assert_eq!(started.elapsed(), limit, "idle a full limit after the last touch, not after the start");
    }

    #[test]
    fn exec_queries() {
        let r = parse_exec_query(Some("command=sh&command=-c&command=echo%20hi&tty=true")).unwrap();
        assert_eq!(r.cmd, ["sh", "-c", "echo hi"]);
        assert!(r.tty);
        for (q, field) in [(None, "command"), (Some("tty=true"), "command"), (Some("command=sh&tty=maybe"), "tty"), (Some("command=sh&cmd=x"), "cmd"), (Some("command="), "command")] {
            match parse_exec_query(q) {
                Err(ApiError::Invalid(f)) => assert_eq!(f.field, field, "{q:?}"),
                other => panic!("{q:?}: {other:?}"),
            }
        }
        let many = vec!["command=x"; MAX_ARGS + 1].join("&");
        assert!(parse_exec_query(Some(&many)).is_err());
    }
}
