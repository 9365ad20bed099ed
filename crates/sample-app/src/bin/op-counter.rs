//! A stateful sample app whose state follows its devices when the platform relocates them
//! (ETSI MEC 021 Application Mobility Service, with prior notice), on the crate's std-only
//! HTTP server:
//!
//! - `GET /count?device=<ip>` increments the device's counter and answers
//!   `{"device", "count", "instance"}`; `GET /peek?device=<ip>` answers it without incrementing
//!   (404 for a device never seen); a device whose state moved on is served by the instance
//!   that holds it, through this one;
//! - `POST /state` with `{"device", "count"}` stores a device's counter (what another instance
//!   sends when the device moves here);
//! - `POST /ams/notify` takes the platform's notifications (answered 204 at once, handled in the
//!   background, see `mobility`);
//! - `GET /healthz` answers 200 `ok`; `GET /env/NAME` the environment variable `NAME`.
//!
//! With `OP_PLATFORM_URL` and `OP_INSTANCE_TOKEN` it registers with the platform's AMS as
//! `OP_INSTANCE`, subscribes to its mobility procedures and lists every device it serves
//! (see `platform`). `OP_CALLBACK_HOST` overrides the address notifications are sent to,
//! `OP_COUNTER_REFUSE=1` makes it refuse every move, `OP_COUNTER_GRACE_MS` (default 30,000)
//! is how long it keeps forwarding a device after its move completed.

// A binary's root looks for modules beside it; these live in their own directory.
#[path = "op-counter/ams.rs"]
mod ams;
#[path = "op-counter/devices.rs"]
mod devices;
#[path = "op-counter/mobility.rs"]
mod mobility;
#[path = "op-counter/platform.rs"]
mod platform;

use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::Duration;

use op_sample_app::client;
use op_sample_app::{log, Request, Response};
use serde_json::{json, Value};

use crate::ams::Notification;
use crate::devices::{lock, route, Device, Mode, Route, Table};
use crate::mobility::Move;
use crate::platform::{Platform, Registrar};

/// Per forwarded request.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of `OP_COUNTER_GRACE_MS`.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The app's shared state.
pub struct App {
    /// `OP_INSTANCE`.
    instance: String,
    /// The devices.
    table: Arc<Table>,
    /// The registration's pending change.
    registrar: Arc<Registrar>,
    /// `OP_COUNTER_REFUSE=1`: refuse every move.
    refuse: bool,
    /// How long a moved device is still forwarded.
    grace: Duration,
    /// To the notification worker.
    moves: Sender<Move>,
}

/// Percent-decodes a query value; `None` when not valid UTF-8 or a bad escape.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn bad_request(msg: &str) -> Response {
    Response::new("400 Bad Request", format!("{msg}\n"))
}

/// The `device` query parameter, normalized; `Err` is the answer.
fn device_param(req: &Request) -> Result<String, Response> {
    let raw = req.param("device").ok_or_else(|| bad_request("give ?device=<ip address>"))?;
    percent_decode(raw).and_then(|d| ams::normalize_device(&d)).ok_or_else(|| bad_request("device: not an IP address"))
}

/// The status line for a forwarded answer's code.
fn status_line(code: u16) -> &'static str {
    match code {
        200 => "200 OK",
        400 => "400 Bad Request",
        404 => "404 Not Found",
        _ => "502 Bad Gateway",
    }
}

impl App {
    fn answer(&self, device: &str, count: u64) -> Response {
        Response::json("200 OK", json!({"device": device, "count": count, "instance": self.instance}).to_string())
    }

    /// Sends `/{op}` for the device to where its state is; a successful answer's count is
    /// kept as the local copy (what a failed move takes back if the target is gone).
    fn forward(d: &mut Device, target: &str, op: &str, device: &str) -> Response {
        match client::request("GET", &format!("{target}/{op}?device={device}"), &[], None, FORWARD_TIMEOUT) {
            Ok(r) => {
                if r.is_success() {
                    if let Some(n) =
                        serde_json::from_slice::<Value>(&r.body).ok().and_then(|v| v.get("count")?.as_u64())
                    {
                        d.count = n;
                    }
                }
                let status = status_line(r.status);
                if status.starts_with("502") {
                    return Response::new(status, format!("{target} answered {}\n", r.status));
                }
                Response::json(status, r.body)
            }
            Err(e) => Response::new(
                "502 Bad Gateway",
                format!("the device's state is at {target}, which does not answer: {e}\n"),
            ),
        }
    }

    fn count(&self, device: &str) -> Response {
        let (dev, new) = self.table.entry(device);
        if new {
            self.registrar.mark_dirty();
        }
        let mut d = lock(&dev);
        let target = match route(&d.mode) {
            Route::Local => {
                // Never removed while local: only forwarded devices are forgotten.
                d.count = d.count.saturating_add(1);
                return self.answer(device, d.count);
            }
            Route::Forward(t) => t.to_string(),
        };
        Self::forward(&mut d, &target, "count", device)
    }

    fn peek(&self, device: &str) -> Response {
        let Some(dev) = self.table.get(device) else {
            return Response::new("404 Not Found", "device not served here\n");
        };
        let mut d = lock(&dev);
        let target = match route(&d.mode) {
            Route::Local => return self.answer(device, d.count),
            Route::Forward(t) => t.to_string(),
        };
        Self::forward(&mut d, &target, "peek", device)
    }

    fn store_state(&self, body: &[u8]) -> Response {
        let Ok(v) = serde_json::from_slice::<Value>(body) else { return bad_request("body: not JSON") };
        let Some(device) = v.get("device").and_then(Value::as_str).and_then(ams::normalize_device) else {
            return bad_request("device: not an IP address");
        };
        let Some(count) = v.get("count").and_then(Value::as_u64) else {
            return bad_request("count: not a whole number");
        };
        // A forgotten entry is out of the table: the next lookup gives a fresh one.
        for _ in 0..3 {
            let (dev, _) = self.table.entry(&device);
            let mut d = lock(&dev);
            if d.removed {
                continue;
            }
            d.count = count;
            d.mode = Mode::Local;
            d.epoch += 1;
            drop(d);
            self.table.set_registration(&device, None, Some(false));
            self.registrar.mark_dirty();
            log(&format!("{device}: state received ({count})"));
            return self.answer(&device, count);
        }
        Response::new("503 Service Unavailable", "busy; try again\n")
    }

    fn notify(&self, body: &[u8]) -> Response {
        match ams::parse_notification(body) {
            Err(e) => bad_request(&format!("not a notification: {e}")),
            Ok(Notification::Test) => {
                log("test notification received");
                Response::new("204 No Content", "")
            }
            Ok(Notification::Readdressed { old, new }) => {
                if self.table.rename(&old, &new) {
                    self.registrar.mark_dirty();
                    log(&format!("{old} is now {new}"));
                }
                Response::new("204 No Content", "")
            }
            Ok(Notification::Other(kind)) => {
                log(&format!("{kind} ignored"));
                Response::new("204 No Content", "")
            }
            Ok(Notification::Mobility { devices, status, target_instance, targets }) => {
                log(&format!(
                    "{status:?} for {devices:?} toward {} {targets:?}",
                    target_instance.as_deref().unwrap_or("(no target)")
                ));
                let targets = targets.iter().map(ams::Endpoint::base_url).collect();
                if self.moves.send(Move { devices, status, targets }).is_err() {
                    return Response::new("503 Service Unavailable", "not handling notifications\n");
                }
                Response::new("204 No Content", "")
            }
        }
    }

    fn route(&self, req: &Request) -> Response {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/healthz") => Response::new("200 OK", "ok\n"),
            // HEAD must not count.
            ("GET", "/count") if req.head => Response::new("405 Method Not Allowed", "GET /count\n"),
            ("GET", "/count") => match device_param(req) {
                Ok(d) => self.count(&d),
                Err(r) => r,
            },
            ("GET", "/peek") => match device_param(req) {
                Ok(d) => self.peek(&d),
                Err(r) => r,
            },
            ("POST", "/state") => self.store_state(&req.body),
            ("POST", "/ams/notify") => self.notify(&req.body),
            (_, "/healthz" | "/count" | "/peek" | "/state" | "/ams/notify") => {
                Response::new("405 Method Not Allowed", "method not allowed\n")
            }
            ("GET", p) => match p.strip_prefix("/env/") {
                Some(name) => op_sample_app::env_var(name),
                None => Response::not_found(),
            },
            _ => Response::not_found(),
        }
    }
}

fn main() {
    op_sample_app::exit_on_sigterm();
    let listener = op_sample_app::listen(8080);
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => {
            eprintln!("no local address: {e}");
            std::process::exit(1);
        }
    };
    let instance =
        std::env::var("OP_INSTANCE").ok().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "unknown".into());
    let grace = match std::env::var("OP_COUNTER_GRACE_MS").map(|v| v.trim().parse::<u64>()) {
        Ok(Ok(ms)) => Duration::from_millis(ms),
        Ok(Err(_)) => {
            log("OP_COUNTER_GRACE_MS is not a number of milliseconds; using 30000");
            DEFAULT_GRACE
        }
        Err(_) => DEFAULT_GRACE,
    };
    let (moves, worker_moves) = mpsc::channel();
    let app = Arc::new(App {
        instance: instance.clone(),
        table: Arc::default(),
        registrar: Arc::default(),
        refuse: std::env::var("OP_COUNTER_REFUSE").is_ok_and(|v| v.trim() == "1"),
        grace,
        moves,
    });
    let worker_app = app.clone();
    if let Err(e) =
        std::thread::Builder::new().name("mobility".into()).spawn(move || mobility::worker(worker_app, worker_moves))
    {
        eprintln!("cannot start the notification worker: {e}");
        std::process::exit(1);
    }
    match Platform::from_env() {
        Ok(p) => {
            let (table, registrar) = (app.table.clone(), app.registrar.clone());
            let spawned = std::thread::Builder::new()
                .name("platform".into())
                .spawn(move || platform::run(p, instance, port, table, registrar));
            if let Err(e) = spawned {
                eprintln!("cannot start the platform thread: {e}");
                std::process::exit(1);
            }
        }
        Err(why) => log(&format!("not registering with the application mobility service: {why}")),
    }
    op_sample_app::serve("op-counter", listener, move |req| app.route(req));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_values() {
        assert_eq!(percent_decode("fd00%3A%3a1").as_deref(), Some("fd00::1"));
        assert_eq!(percent_decode("10.0.0.1").as_deref(), Some("10.0.0.1"));
        for bad in ["%", "%4", "%zz", "%ff"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
}
