//! op-counter's state follows its devices (MEC 021 with prior notice): two real op-counter
//! processes on loopback and a fake Application Mobility Service, built on the crate's own
//! server, that records what the instances register and lets the test notify them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use op_sample_app::client;
use op_sample_app::{Request, Response};
use serde_json::{json, Value};

const PATIENCE: Duration = Duration::from_secs(15);
const TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `f` until it gives something, at most [`PATIENCE`].
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn call(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(Value::to_string);
    let headers = [("Content-Type", "application/json")];
    let r = client::request(method, url, &headers, body.as_deref().map(str::as_bytes), TIMEOUT)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
}

/// One call the fake AMS received.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    token: String,
    body: Value,
}

#[derive(Default)]
struct AmsState {
    calls: Vec<Call>,
    /// Registration id -> the token that made it.
    registrations: HashMap<String, String>,
    /// Tokens whose first registration was answered 503 (to see the retry).
    refused_once: Vec<String>,
}

/// A fake AMS: answers like the platform would and records every call.
struct FakeAms {
    url: String,
    state: Arc<Mutex<AmsState>>,
}

impl FakeAms {
    fn start() -> FakeAms {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(AmsState::default()));
        let s = state.clone();
        std::thread::spawn(move || op_sample_app::serve("fake-ams", listener, move |req| Self::route(&s, req)));
        FakeAms { url, state }
    }

    fn route(state: &Mutex<AmsState>, req: &Request) -> Response {
        let Some(token) = req.header("authorization").and_then(|a| a.strip_prefix("Bearer ")).map(str::to_string)
        else {
            return Response::new("401 Unauthorized", "bearer token required\n");
        };
        if req.header("content-type") != Some("application/json") {
            return Response::new("415 Unsupported Media Type", "json only\n");
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return Response::new("400 Bad Request", "not json\n");
        };
        let mut st = state.lock().unwrap();
        st.calls.push(Call {
            method: req.method.clone(),
            path: req.path.clone(),
            token: token.clone(),
            body: body.clone(),
        });
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/amsi/v1/app_mobility_services") => {
                if !st.refused_once.contains(&token) {
                    st.refused_once.push(token);
                    return Response::new("503 Service Unavailable", "starting\n");
                }
                let id = format!("ams-{}", st.registrations.len() + 1);
                st.registrations.insert(id.clone(), token);
                let mut reply = body;
                reply["appMobilityServiceId"] = json!(id);
                Response::json("201 Created", reply.to_string())
            }
            ("POST", "/amsi/v1/subscriptions") => Response::json("201 Created", body.to_string()),
            ("PUT", p) => match p.strip_prefix("/amsi/v1/app_mobility_services/") {
                Some(id) if st.registrations.get(id) == Some(&token) => Response::json("200 OK", body.to_string()),
                _ => Response::not_found(),
            },
            _ => Response::not_found(),
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The registration id of the instance with `token`, once registered.
    fn registration(&self, token: &str) -> String {
        wait_for(&format!("the registration of {token}"), || {
            self.state.lock().unwrap().registrations.iter().find(|(_, t)| *t == token).map(|(id, _)| id.clone())
        })
    }

    /// The body of `method path` from `token`, once made.
    fn call_body(&self, token: &str, method: &str, path: &str) -> Value {
        wait_for(&format!("{method} {path} from {token}"), || {
            self.calls().into_iter().find(|c| c.token == token && c.method == method && c.path == path).map(|c| c.body)
        })
    }

    /// The registration updates of `id`, oldest first.
    fn puts(&self, id: &str) -> Vec<Value> {
        let path = format!("/amsi/v1/app_mobility_services/{id}");
        self.calls().into_iter().filter(|c| c.method == "PUT" && c.path == path).map(|c| c.body).collect()
    }

    /// Waits until the latest update of `id` says `(level, transfer state)` about `device`
    /// (`None`: does not list it); returns that update.
    fn wait_latest(&self, id: &str, device: &str, want: Option<(&str, &str)>) -> Value {
        wait_for(&format!("registration {id} to say {want:?} about {device}"), || {
            let last = self.puts(id).pop()?;
            (device_state(&last, device).as_ref().map(|(l, t)| (l.as_str(), t.as_str())) == want).then_some(last)
        })
    }
}

/// `(appMobilityServiceLevel, contextTransferState)` of `device` in a RegistrationInfo.
fn device_state(reg: &Value, device: &str) -> Option<(String, String)> {
    reg["deviceInformation"].as_array()?.iter().find(|d| d["associateId"]["value"] == device).map(|d| {
        assert_eq!(d["associateId"]["type"], "UE_IPv4_ADDRESS", "{d}");
        (
            d["appMobilityServiceLevel"].as_str().unwrap_or("").into(),
            d["contextTransferState"].as_str().unwrap_or("").into(),
        )
    })
}

/// A running op-counter.
struct Counter {
    child: Child,
    port: u16,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Counter {
    fn start(instance: &str, platform: Option<(&FakeAms, &str)>, env: &[(&str, &str)]) -> Counter {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_op-counter"));
        for var in
            ["OP_PLATFORM_URL", "OP_INSTANCE_TOKEN", "OP_CALLBACK_HOST", "OP_COUNTER_REFUSE", "OP_COUNTER_GRACE_MS"]
        {
            cmd.env_remove(var);
        }
        cmd.env("PORT", "0").env("OP_INSTANCE", instance).env("OP_CALLBACK_HOST", "127.0.0.1");
        if let Some((ams, token)) = platform {
            cmd.env("OP_PLATFORM_URL", &ams.url).env("OP_INSTANCE_TOKEN", token);
        }
        cmd.envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("op-counter starts");
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let l = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("op-counter listening on 0.0.0.0:") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
                l.lock().unwrap().push(line);
            }
        });
        let port = rx.recv_timeout(PATIENCE).ok().flatten().expect("op-counter says where it listens");
        Counter { child, port, logs }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `(count, instance)` of a `/count`.
    fn count(&self, device: &str) -> (u64, String) {
        let (status, v) = call("GET", &self.url(&format!("/count?device={device}")), None);
        assert_eq!(status, 200, "count {device}: {v}");
        assert_eq!(v["device"], device, "{v}");
        (v["count"].as_u64().expect("a count"), v["instance"].as_str().unwrap_or("").to_string())
    }

    /// The count of a `/peek`, `None` when 404.
    fn peek(&self, device: &str) -> Option<u64> {
        let (status, v) = call("GET", &self.url(&format!("/peek?device={device}")), None);
        match status {
            200 => Some(v["count"].as_u64().expect("a count")),
            404 => None,
            s => panic!("peek {device}: {s} {v}"),
        }
    }

    fn notify(&self, body: &Value) {
        let (status, v) = call("POST", &self.url("/ams/notify"), Some(body));
        assert_eq!(status, 204, "notify: {v}");
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- op-counter on port {}:\n{}", self.port, self.logs.lock().unwrap().join("\n"));
        }
    }
}

fn notification(device: &str, status: &str, target: Option<(&str, &[u16])>) -> Value {
    let mut n = json!({
        "notificationType": "MobilityProcedureNotification",
        "associateId": [{"type": "UE_IPv4_ADDRESS", "value": device}],
        "mobilityStatus": status,
    });
    if let Some((instance, ports)) = target {
        let addrs: Vec<Value> = ports.iter().map(|p| json!({"host": "127.0.0.1", "port": p})).collect();
        n["targetAppInfo"] = json!({"appInstanceId": instance, "commInterface": {"ipAddresses": addrs}});
    }
    n
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn state_follows_the_device() {
    let ams = FakeAms::start();
    let a = Counter::start("inst-a", Some((&ams, "tok-a")), &[("OP_COUNTER_GRACE_MS", "1500")]);
    let b = Counter::start("inst-b", Some((&ams, "tok-b")), &[]);

    // Registered (after a refused first attempt) and subscribed, as MEC 021 says.
    let reg_a = ams.registration("tok-a");
    let reg_b = ams.registration("tok-b");
    assert_eq!(
        ams.call_body("tok-a", "POST", "/amsi/v1/app_mobility_services"),
        json!({"serviceConsumerId": {"appInstanceId": "inst-a"}, "deviceInformation": []})
    );
    let registrations =
        ams.calls().iter().filter(|c| c.token == "tok-a" && c.path == "/amsi/v1/app_mobility_services").count();
    assert_eq!(registrations, 2, "one refused attempt, one retry");
    assert_eq!(
        ams.call_body("tok-a", "POST", "/amsi/v1/subscriptions"),
        json!({
            "subscriptionType": "MobilityProcedureSubscription",
            "callbackReference": format!("http://127.0.0.1:{}/ams/notify", a.port),
            "filterCriteria": {"appInstanceId": "inst-a", "mobilityStatus": [
                "INTERHOST_MOVEOUT_TRIGGERED", "INTERHOST_MOVEOUT_COMPLETED", "INTERHOST_MOVEOUT_FAILED"]},
        })
    );

    // Counting on A; the device joins A's registration.
    let dev = "10.0.0.7";
    for n in 1..=3 {
        assert_eq!(a.count(dev), (n, "inst-a".to_string()));
    }
    assert_eq!(a.peek(dev), Some(3), "peek does not count");
    assert_eq!(b.peek(dev), None);
    let put = ams.wait_latest(&reg_a, dev, Some(("APP_MOBILITY_WITH_CONFIRMATION", "NOT_TRANSFERRED")));
    assert_eq!(put["appMobilityServiceId"], reg_a.as_str());
    assert_eq!(put["serviceConsumerId"]["appInstanceId"], "inst-a");

    // The move is triggered; the first address of B does not answer, the second does.
    a.notify(&notification(dev, "INTERHOST_MOVEOUT_TRIGGERED", Some(("inst-b", &[dead_port(), b.port]))));
    wait_for("B to hold the state", || (b.peek(dev) == Some(3)).then_some(()));
    ams.wait_latest(&reg_a, dev, Some(("APP_MOBILITY_WITH_CONFIRMATION", "USER_CONTEXT_TRANSFER_COMPLETED")));
    ams.wait_latest(&reg_b, dev, Some(("APP_MOBILITY_WITH_CONFIRMATION", "NOT_TRANSFERRED")));

    // A forwards: the count goes on at B, whichever instance the device talks to.
    assert_eq!(a.count(dev), (4, "inst-b".to_string()));
    assert_eq!(b.count(dev), (5, "inst-b".to_string()));
    assert_eq!(a.count(dev), (6, "inst-b".to_string()));
    assert_eq!(a.peek(dev), Some(6));

    // Completed: A still forwards during the grace period, then forgets the device.
    a.notify(&notification(dev, "INTERHOST_MOVEOUT_COMPLETED", None));
    assert_eq!(a.count(dev), (7, "inst-b".to_string()));
    ams.wait_latest(&reg_a, dev, None);
    assert_eq!(a.peek(dev), None, "forgotten after the grace period");
    assert_eq!(b.peek(dev), Some(7));
}

#[test]
fn no_count_is_lost_or_doubled_across_the_move_and_a_failed_move_takes_it_back() {
    let ams = FakeAms::start();
    let a = Counter::start("inst-a", Some((&ams, "tok-a")), &[]);
    let b = Counter::start("inst-b", Some((&ams, "tok-b")), &[]);
    let reg_a = ams.registration("tok-a");
    ams.call_body("tok-a", "POST", "/amsi/v1/subscriptions");
    let dev = "10.0.0.9";

    // Four clients count on A while the move happens; each goes on until B has answered it a
    // few times.
    let a_url = a.url(&format!("/count?device={dev}"));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let url = a_url.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut from_b = 0;
                while from_b < 10 && seen.len() < 20_000 {
                    let (status, v) = call("GET", &url, None);
                    assert_eq!(status, 200, "{v}");
                    let inst = v["instance"].as_str().unwrap_or("").to_string();
                    if inst == "inst-b" {
                        from_b += 1;
                    }
                    seen.push((v["count"].as_u64().expect("a count"), inst));
                }
                seen
            })
        })
        .collect();
    wait_for("some counts on A", || (a.peek(dev).unwrap_or(0) >= 50).then_some(()));
    a.notify(&notification(dev, "INTERHOST_MOVEOUT_TRIGGERED", Some(("inst-b", &[b.port]))));
    let mut all = Vec::new();
    for c in clients {
        let seen = c.join().expect("a client");
        // Once B answers, A never counts locally again.
        let first_b = seen.iter().position(|(_, i)| i == "inst-b").expect("B answered");
        assert!(seen[first_b..].iter().all(|(_, i)| i == "inst-b"), "A counted after the move: {seen:?}");
        assert!(seen[..first_b].iter().all(|(_, i)| i == "inst-a"));
        all.extend(seen);
    }
    assert!(all.iter().any(|(_, i)| i == "inst-a"), "the move came after some local counts");
    let mut counts: Vec<u64> = all.iter().map(|(c, _)| *c).collect();
    counts.sort_unstable();
    let total = counts.len() as u64;
    assert_eq!(counts, (1..=total).collect::<Vec<_>>(), "every count exactly once");
    assert_eq!(b.peek(dev), Some(total));
    ams.wait_latest(&reg_a, dev, Some(("APP_MOBILITY_WITH_CONFIRMATION", "USER_CONTEXT_TRANSFER_COMPLETED")));

    // The move fails: A takes the count back from B (including what was counted there through
    // A and directly) and serves locally again.
    assert_eq!(b.count(dev), (total + 1, "inst-b".to_string()));
    a.notify(&notification(dev, "INTERHOST_MOVEOUT_FAILED", None));
    ams.wait_latest(&reg_a, dev, Some(("APP_MOBILITY_WITH_CONFIRMATION", "NOT_TRANSFERRED")));
    assert_eq!(a.count(dev), (total + 2, "inst-a".to_string()));
    assert_eq!(b.peek(dev), Some(total + 1), "B is no longer counted on");
}

#[test]
fn an_app_that_refuses_keeps_its_devices() {
    let ams = FakeAms::start();
    let c = Counter::start("inst-c", Some((&ams, "tok-c")), &[("OP_COUNTER_REFUSE", "1")]);
    let b = Counter::start("inst-b", Some((&ams, "tok-b")), &[]);
    let reg_c = ams.registration("tok-c");
    ams.call_body("tok-c", "POST", "/amsi/v1/subscriptions");
    let dev = "10.0.0.8";
    assert_eq!(c.count(dev), (1, "inst-c".to_string()));
    assert_eq!(c.count(dev), (2, "inst-c".to_string()));
    ams.wait_latest(&reg_c, dev, Some(("APP_MOBILITY_WITH_CONFIRMATION", "NOT_TRANSFERRED")));

    c.notify(&notification(dev, "INTERHOST_MOVEOUT_TRIGGERED", Some(("inst-b", &[b.port]))));
    ams.wait_latest(&reg_c, dev, Some(("APP_MOBILITY_NOT_ALLOWED", "NOT_TRANSFERRED")));
    assert_eq!(b.peek(dev), None, "no state was sent");
    assert_eq!(c.count(dev), (3, "inst-c".to_string()), "still counted here");
}

#[test]
fn serves_without_a_platform_and_refuses_bad_input() {
    let a = Counter::start("inst-x", None, &[]);
    let get = |path: &str| {
        let r = client::request("GET", &a.url(path), &[], None, TIMEOUT).unwrap();
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    };
    assert_eq!(get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get("/env/OP_INSTANCE"), (200, "inst-x\n".to_string()));
    assert_eq!(get("/env/NOT_SET_ANYWHERE_42").0, 404);
    assert_eq!(get("/count").0, 400);
    assert_eq!(get("/count?device=not-an-ip").0, 400);
    assert_eq!(get("/count?device=%zz").0, 400);
    assert_eq!(get("/peek?device=10.0.0.1").0, 404, "never seen");
    assert_eq!(a.count("10.0.0.1"), (1, "inst-x".to_string()));
    // An IPv6 device, percent-encoded or not, is one device.
    let (status, body) = get("/count?device=fd00%3A%3A1");
    assert_eq!(status, 200, "{body}");
    let (status, body) = get("/count?device=fd00::1");
    assert_eq!((status, serde_json::from_str::<Value>(&body).unwrap()["count"].clone()), (200, json!(2)));
    for bad in ["", "{", "[]", r#"{"notificationType": "MobilityProcedureNotification"}"#] {
        let r = client::request("POST", &a.url("/ams/notify"), &[], Some(bad.as_bytes()), TIMEOUT).unwrap();
        assert_eq!(r.status, 400, "{bad}");
    }
    for bad in ["", r#"{"device": "x", "count": 1}"#, r#"{"device": "10.0.0.2", "count": -1}"#] {
        let r = client::request("POST", &a.url("/state"), &[], Some(bad.as_bytes()), TIMEOUT).unwrap();
        assert_eq!(r.status, 400, "{bad}");
    }
    assert_eq!(call("POST", &a.url("/state"), Some(&json!({"device": "10.0.0.2", "count": 41}))).0, 200);
    assert_eq!(a.count("10.0.0.2"), (42, "inst-x".to_string()));
    let r = client::request("HEAD", &a.url("/count?device=10.0.0.2"), &[], None, TIMEOUT).unwrap();
    assert_eq!(r.status, 405, "HEAD does not count");
    assert_eq!(a.peek("10.0.0.2"), Some(42));
    // A test notification is taken.
    a.notify(&json!({"notificationType": "TestNotification"}));
}
