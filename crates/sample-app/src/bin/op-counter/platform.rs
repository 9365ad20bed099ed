//! op-counter and the platform's Application Mobility Service: one background thread registers
//! the instance, subscribes to its mobility procedures (each retried every 500 ms until it
//! works), then keeps the registration's device list up to date. Changes only mark the
//! registration dirty; the thread sends the whole current RegistrationInfo, so changes that
//! come quickly one after the other are sent once.

use std::net::{ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use op_sample_app::client::{self, Url};
use op_sample_app::log;
use serde_json::Value;

use crate::ams;
use crate::devices::{lock, Table};

/// Between attempts.
const RETRY: Duration = Duration::from_millis(500);
/// Per call to the platform.
const TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach the platform: `OP_PLATFORM_URL` and `OP_INSTANCE_TOKEN`.
#[derive(Clone, Debug)]
pub struct Platform {
    base: String,
    url: Url,
    token: String,
}

impl Platform {
    /// From the environment; `Err` says why there is none (logged once by the caller).
    pub fn from_env() -> Result<Platform, String> {
        let base = std::env::var("OP_PLATFORM_URL").unwrap_or_default();
        let token = std::env::var("OP_INSTANCE_TOKEN").unwrap_or_default();
        if base.trim().is_empty() || token.trim().is_empty() {
            return Err("OP_PLATFORM_URL or OP_INSTANCE_TOKEN not set".into());
        }
        if token.contains(['\r', '\n']) {
            return Err("OP_INSTANCE_TOKEN is not a token".into());
        }
        let base = base.trim().trim_end_matches('/').to_string();
        let url = Url::parse(&base).map_err(|e| format!("OP_PLATFORM_URL: {e}"))?;
        Ok(Platform { base, url, token: token.trim().to_string() })
    }

    /// Sends `body` with the instance's credential; the status and the reply's JSON (`Null`
    /// when none).
    fn call(&self, method: &str, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let auth = format!("Bearer {}", self.token);
        let headers =
            [("Authorization", auth.as_str()), ("Content-Type", "application/json"), ("Accept", "application/json")];
        let url = format!("{}{path}", self.base);
        let reply = client::request(method, &url, &headers, Some(body.to_string().as_bytes()), TIMEOUT)
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let json = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        Ok((reply.status, json))
    }

    /// The host notifications reach this instance at: `OP_CALLBACK_HOST`, else the address this
    /// container's traffic toward the platform leaves from (its address on that network; a UDP
    /// connect sends nothing).
    fn callback_host(&self) -> Result<String, String> {
        if let Ok(h) = std::env::var("OP_CALLBACK_HOST") {
            if !h.trim().is_empty() {
                return Ok(h.trim().to_string());
            }
        }
        let to = (self.url.host.as_str(), self.url.port)
            .to_socket_addrs()
            .map_err(|e| format!("resolving {}: {e}", self.url.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", self.url.host))?;
        let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let socket = UdpSocket::bind(bind).map_err(|e| format!("udp socket: {e}"))?;
        socket.connect(to).map_err(|e| format!("no route to {to}: {e}"))?;
        let ip = socket.local_addr().map_err(|e| format!("local address: {e}"))?.ip();
        if ip.is_unspecified() {
            return Err(format!("no local address toward {to}"));
        }
        Ok(ip.to_string())
    }
}

/// `s` as one URL path segment: unreserved characters as they are, the others percent-encoded.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The registration's pending change.
#[derive(Default)]
pub struct Registrar {
    dirty: Mutex<bool>,
    wake: Condvar,
}

impl Registrar {
    /// The device list changed: send it (soon, in the background).
    pub fn mark_dirty(&self) {
        *lock(&self.dirty) = true;
        self.wake.notify_all();
    }

    /// Waits for a change and takes it.
    fn take(&self) {
        let mut dirty = lock(&self.dirty);
        while !*dirty {
            dirty = self.wake.wait(dirty).unwrap_or_else(|e| e.into_inner());
        }
        *dirty = false;
    }
}

/// Logs failures once in a row, not every 500 ms.
#[derive(Default)]
struct Complaints {
    last: Option<String>,
}

impl Complaints {
    fn failed(&mut self, msg: String) {
        if self.last.as_deref() != Some(msg.as_str()) {
            log(&format!("{msg} (retrying every {} ms)", RETRY.as_millis()));
            self.last = Some(msg);
        }
        std::thread::sleep(RETRY);
    }

    fn worked(&mut self) {
        self.last = None;
    }
}

/// Registers, subscribes, then keeps the registration current; runs forever.
pub fn run(platform: Platform, instance: String, port: u16, table: Arc<Table>, registrar: Arc<Registrar>) {
    let mut id: Option<String> = None;
    let mut subscribed = false;
    let mut complaints = Complaints::default();
    loop {
        let Some(current) = id.clone() else {
            match platform.call("POST", "/amsi/v1/app_mobility_services", &ams::registration_body(&instance, None, &[]))
            {
                Ok((200..=299, body)) => match body.get("appMobilityServiceId").and_then(Value::as_str) {
                    Some(i) if !i.is_empty() => {
                        log(&format!("registered with the application mobility service: {i}"));
                        complaints.worked();
                        id = Some(i.to_string());
                        // What was seen before the registration existed goes in its first update.
                        if !table.registration().is_empty() {
                            registrar.mark_dirty();
                        }
                    }
                    _ => complaints.failed(format!("registration answered without appMobilityServiceId: {body}")),
                },
                Ok((status, body)) => complaints.failed(format!("registration refused: {status} {body}")),
                Err(e) => complaints.failed(e),
            }
            continue;
        };
        if !subscribed {
            let sent = platform.callback_host().and_then(|host| {
                let callback = ams::callback_url(&host, port);
                let body = ams::subscription_body(&instance, &callback);
                match platform.call("POST", "/amsi/v1/subscriptions", &body)? {
                    (200..=299, _) => Ok(callback),
                    (status, body) => Err(format!("subscription refused: {status} {body}")),
                }
            });
            match sent {
                Ok(callback) => {
                    log(&format!("subscribed to mobility procedures, notified at {callback}"));
                    complaints.worked();
                    subscribed = true;
                }
                Err(e) => complaints.failed(e),
            }
            continue;
        }
        registrar.take();
        let body = ams::registration_body(&instance, Some(&current), &table.registration());
        match platform.call("PUT", &format!("/amsi/v1/app_mobility_services/{}", encode_segment(&current)), &body) {
            Ok((200..=299, _)) => complaints.worked(),
            Ok((404, _)) => {
                // The platform lost it: register again (the subscription is the platform's own).
                log(&format!("registration {current} is gone; registering again"));
                id = None;
                registrar.mark_dirty();
            }
            Ok((status, reply)) => {
                registrar.mark_dirty();
                complaints.failed(format!("registration update refused: {status} {reply}"));
            }
            Err(e) => {
                registrar.mark_dirty();
                complaints.failed(format!("registration update failed: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_ids() {
        assert_eq!(encode_segment("ams-1_a.b~c"), "ams-1_a.b~c");
        assert_eq!(encode_segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
