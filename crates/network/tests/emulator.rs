//! End to end: the real `op-netemu` binary running the lab scenario, driven through
//! `StandardAdapter` (and, to check the wire format against the specs, raw HTTP).
//!
//! The binary is looked up next to the test executable (`target/<profile>/op-netemu`); build it
//! first with `cargo build --workspace --bins`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use op_network::{
    decode_monitoring_notification, AdapterConfig, CellLoad, DeviceRef, NetworkAdapter,
    NetworkError, NetworkEvent, NetworkEventKind, PathPerformance, RoamingStatus, StandardAdapter,
    TrafficInfluence, Verification,
};
use op_types::specs::GeoPoint;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;

const CLIENT: &str = "op-platform";
const SECRET: &str = "op-platform-secret";

/// A running emulator; killed when dropped.
struct Emu {
    base: String,
    http: reqwest::Client,
    _child: Child,
    _stdout: Lines<BufReader<ChildStdout>>,
}

fn lab_scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../netemu/scenarios/lab.yaml")
}

fn emulator_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("cannot find the target directory from {}", exe.display()))?;
    let bin = dir.join(format!("op-netemu{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        bail!(
            "the op-netemu binary is missing at {}: run `cargo build --workspace --bins` before these tests",
            bin.display()
        );
    }
    Ok(bin)
}

async fn start(scenario: &Path) -> Result<Emu> {
    let mut child = Command::new(emulator_binary()?)
        .arg("--scenario")
        .arg(scenario)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start op-netemu")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .context("op-netemu did not print its address in time")??
        .ok_or_else(|| anyhow!("op-netemu exited before listening"))?;
    let base = line
        .strip_prefix("op-netemu listening on ")
        .ok_or_else(|| anyhow!("unexpected first line: {line}"))?
        .to_string();
    Ok(Emu { base, http: reqwest::Client::new(), _child: child, _stdout: lines })
}

impl Emu {
    fn adapter(&self) -> StandardAdapter {
        self.adapter_with(SECRET)
    }

    fn adapter_with(&self, secret: &str) -> StandardAdapter {
        match StandardAdapter::new(AdapterConfig::new(&self.base, CLIENT, secret)) {
            Ok(a) => a,
            Err(e) => panic!("adapter: {e}"),
        }
    }

    async fn token(&self) -> Result<String> {
        let v: Value = self
            .http
            .post(format!("{}/oauth2/token", self.base))
            .basic_auth(CLIENT, Some(SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(v["access_token"].as_str().ok_or_else(|| anyhow!("no access_token in {v}"))?.to_string())
    }

    /// A raw call: status and JSON body (Null when empty).
    async fn raw(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> Result<(u16, Value)> {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let v = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? };
        Ok((status, v))
    }

    async fn admin(&self, path: &str, body: Value) -> Result<Value> {
        let (status, v) = self.raw(reqwest::Method::POST, &format!("/emulator/v1{path}"), None, Some(body)).await?;
        ensure!(status == 200, "admin {path}: HTTP {status}: {v}");
        Ok(v)
    }

    async fn device(&self, reference: &str) -> Result<Value> {
        let (status, v) = self.raw(reqwest::Method::GET, &format!("/emulator/v1/devices/{reference}"), None, None).await?;
        ensure!(status == 200, "device {reference}: HTTP {status}: {v}");
        Ok(v)
    }
}

/// Starts the emulator on the lab scenario with each `(from, to)` text replacement applied (each
/// must match), so a test can give cells or devices fields the lab does not set.
async fn start_lab_with(edits: &[(&str, &str)]) -> Result<Emu> {
    let mut yaml = std::fs::read_to_string(lab_scenario())?;
    for (from, to) in edits {
        ensure!(yaml.contains(from), "lab scenario has no '{from}'");
        yaml = yaml.replacen(from, to, 1);
    }
    let path = std::env::temp_dir().join(format!(
        "netemu-edited-{}-{}.yaml",
        std::process::id(),
        unique_suffix()
    ));
    std::fs::write(&path, yaml)?;
    let emu = start(&path).await;
    let _ = std::fs::remove_file(&path);
    emu
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// An adapter whose every request would fail (wrong secret): proves a call made no request.
fn refusing_adapter(emu: &Emu) -> StandardAdapter {
    emu.adapter_with("not-the-secret")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn phone(p: &str) -> DeviceRef {
    DeviceRef { phone_number: Some(p.into()), ..Default::default() }
}

/// A small HTTP server receiving NEF notifications at `path`, each body turned into items by
/// `decode` (a body it refuses is answered 400).
async fn notification_server<T: Send + 'static>(
    path: &'static str,
    decode: fn(&[u8]) -> Option<Vec<T>>,
) -> Result<(String, mpsc::UnboundedReceiver<T>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        path,
        post(move |body: Bytes| {
            let tx = tx.clone();
            async move {
                match decode(&body) {
                    Some(items) => {
                        for i in items {
                            let _ = tx.send(i);
                        }
                        StatusCode::NO_CONTENT
                    }
                    None => StatusCode::BAD_REQUEST,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}{path}"), rx))
}

/// Receives NEF notifications, decoded with the adapter's helper.
async fn callback_server() -> Result<(String, mpsc::UnboundedReceiver<NetworkEvent>)> {
    notification_server("/nef-callbacks", |b| decode_monitoring_notification(b).ok()).await
}

/// Receives NEF notifications as raw JSON (for report types the adapter's decoder does not
/// turn into events).
async fn raw_callback_server() -> Result<(String, mpsc::UnboundedReceiver<Value>)> {
    notification_server("/raw-callbacks", |b| serde_json::from_slice::<Value>(b).ok().map(|v| vec![v])).await
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<NetworkEvent>) -> Result<NetworkEvent> {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .context("no notification within 15 s")?
        .ok_or_else(|| anyhow!("callback server gone"))
}

/// Required properties of a schema in a spec file (following `allOf` and local `$ref`s), or
/// `fallback` when the specs are not on this machine (`OP_SPECS_DIR`, default /work/shared/specs).
fn spec_required(file: &str, schema: &str, fallback: &[&str]) -> Vec<String> {
    let dir = std::env::var("OP_SPECS_DIR").unwrap_or_else(|_| "/work/shared/specs".into());
    let Ok(text) = std::fs::read_to_string(Path::new(&dir).join(file)) else {
        eprintln!("spec {file} not found under {dir}: using the built-in list for {schema}");
        return fallback.iter().map(|s| s.to_string()).collect();
    };
    let doc: serde_yaml::Value = match serde_yaml::from_str(&text) {
        Ok(d) => d,
        Err(e) => panic!("spec {file} does not parse: {e}"),
    };
    fn collect(doc: &serde_yaml::Value, node: &serde_yaml::Value, out: &mut Vec<String>, depth: usize) {
        if depth > 8 {
            return;
        }
        if let Some(r) = node.get("$ref").and_then(|r| r.as_str()) {
            if let Some(name) = r.strip_prefix("#/components/schemas/") {
                if let Some(target) = doc.get("components").and_then(|c| c.get("schemas")).and_then(|s| s.get(name)) {
                    collect(doc, target, out, depth + 1);
                }
            }
            return;
        }
        if let Some(req) = node.get("required").and_then(|r| r.as_sequence()) {
            out.extend(req.iter().filter_map(|v| v.as_str().map(str::to_string)));
        }
        if let Some(all) = node.get("allOf").and_then(|a| a.as_sequence()) {
            for item in all {
                collect(doc, item, out, depth + 1);
            }
        }
    }
    let mut out = Vec::new();
    let Some(node) = doc.get("components").and_then(|c| c.get("schemas")).and_then(|s| s.get(schema)) else {
        panic!("schema {schema} not in {file}");
    };
    collect(&doc, node, &mut out, 0);
    out.sort();
    out.dedup();
    assert!(!out.is_empty(), "no required fields found for {schema} in {file}");
    out
}

fn assert_required(v: &Value, required: &[String], what: &str) {
    for f in required {
        assert!(v.get(f).is_some_and(|x| !x.is_null()), "{what}: required field '{f}' missing in {v}");
    }
}

#[tokio::test]
async fn locate_and_verify_devices() -> Result<()> {
    let emu = start(&lab_scenario()).await?;
    let a = emu.adapter();

    let loc = a.locate(&phone("+33612340001")).await?;
    assert_eq!(loc.cell_id.as_deref(), Some("20801000000101"));
    assert_eq!(loc.tracking_area.as_deref(), Some("000001"));
    assert_eq!(loc.point, GeoPoint { latitude: 48.8566, longitude: 2.3522 });
    assert_eq!(loc.accuracy_m, 500.0);

    // By IP address and by NAI too.
    let carol = DeviceRef { ip: Some("10.45.0.3".parse()?), ..Default::default() };
    let loc = a.locate(&carol).await?;
    assert_eq!(loc.cell_id.as_deref(), Some("20801000000201"));
    assert_eq!(loc.tracking_area.as_deref(), Some("000002"));
    let dave = DeviceRef { network_access_identifier: Some("dave@lab.netemu.example".into()), ..Default::default() };
    assert_eq!(a.locate(&dave).await?.tracking_area.as_deref(), Some("000003"));

    let paris = GeoPoint { latitude: 48.8566, longitude: 2.3522 };
    let lyon = GeoPoint { latitude: 45.7640, longitude: 4.8357 };
    let alice = phone("+33612340001");
    assert_eq!(a.verify_location(&alice, paris, 2_000.0).await?, Verification::True);
    assert_eq!(a.verify_location(&alice, lyon, 5_000.0).await?, Verification::False);
    // A circle as big as the cell, 500 m away: partly overlapping.
    let near = GeoPoint { latitude: 48.8566 + 500.0 / 111_195.0, longitude: 2.3522 };
    match a.verify_location(&alice, near, 500.0).await? {
        Verification::Partial(rate) => assert!((1..=99).contains(&rate), "{rate}"),
        v => bail!("expected PARTIAL, got {v:?}"),
    }

    let nobody = phone("+33699999999");
    assert!(matches!(a.locate(&nobody).await, Err(NetworkError::UnknownDevice(_))));
    assert!(matches!(a.verify_location(&nobody, paris, 1_000.0).await, Err(NetworkError::UnknownDevice(_))));
    assert!(matches!(a.locate(&DeviceRef::default()).await, Err(NetworkError::Rejected(_))));
    Ok(())
}

#[tokio::test]
async fn credentials_are_enforced_and_tokens_refreshed() -> Result<()> {
    let emu = start(&lab_scenario()).await?;

    let bad = emu.adapter_with("not-the-secret");
    match bad.locate(&phone("+33612340001")).await {
        Err(NetworkError::Unauthorized(m)) => assert!(m.contains("invalid_client"), "{m}"),
        other => bail!("expected Unauthorized, got {other:?}"),
    }
    assert!(matches!(bad.path_performance("20801000000101", "dnai-paris").await, Err(NetworkError::Unauthorized(_))));

    // Without a token: 401 with a CAMARA body on CAMARA APIs, ProblemDetails on the NEF.
    let (status, body) = emu
        .raw(reqwest::Method::POST, "/location-retrieval/v0.5/retrieve", None, Some(json!({"device": {"phoneNumber": "+33612340001"}})))
        .await?;
    assert_eq!(status, 401);
    assert_eq!(body["status"], 401);
    assert_eq!(body["code"], "UNAUTHENTICATED");
    assert!(body["message"].is_string());
    let (status, body) = emu.raw(reqwest::Method::GET, "/3gpp-monitoring-event/v1/op-platform/subscriptions", Some("junk"), None).await?;
    assert_eq!(status, 401);
    assert_eq!(body["status"], 401);

    // A revoked token is replaced transparently (one refetch on 401).
    let a = emu.adapter();
    a.locate(&phone("+33612340001")).await?;
    let old = emu.token().await?;
    let (status, _) = emu
        .raw(reqwest::Method::POST, "/location-retrieval/v0.5/retrieve", Some(&old), Some(json!({"device": {"phoneNumber": "+33612340001"}})))
        .await?;
    assert_eq!(status, 200);
    let (status, _) = emu.raw(reqwest::Method::POST, "/emulator/v1/tokens/revoke", None, None).await?;
    assert_eq!(status, 204);
    let (status, body) = emu
        .raw(reqwest::Method::POST, "/location-retrieval/v0.5/retrieve", Some(&old), Some(json!({"device": {"phoneNumber": "+33612340001"}})))
        .await?;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "UNAUTHENTICATED");
    let loc = a.locate(&phone("+33612340001")).await?;
    assert_eq!(loc.cell_id.as_deref(), Some("20801000000101"));
    Ok(())
}

#[tokio::test]
async fn subscriptions_deliver_moves_and_ip_changes() -> Result<()> {
    let emu = start(&lab_scenario()).await?;
    let a = emu.adapter();
    let (url, mut rx) = callback_server().await?;
    let bob = phone("+33612340002");

    let id = a.subscribe(&bob, &[NetworkEventKind::LocationChange, NetworkEventKind::IpChange], &url).await?;
    assert!(!id.is_empty());

    emu.admin("/devices/bob/move", json!({"cell": "20801000000202"})).await?;
    let e = next_event(&mut rx).await?;
    assert_eq!(e.subscription_id, id);
    assert_eq!(e.kind, NetworkEventKind::LocationChange);
    assert_eq!(e.device.phone_number.as_deref(), Some("+33612340002"));
    let loc = e.location.ok_or_else(|| anyhow!("location report without a location"))?;
    assert_eq!(loc.cell_id.as_deref(), Some("20801000000202"));
    assert_eq!(loc.tracking_area.as_deref(), Some("000002"));
    assert_eq!(loc.point, GeoPoint { latitude: 45.7676, longitude: 4.8344 });
    assert_eq!(loc.accuracy_m, 500.0);

    emu.admin("/devices/+33612340002/ip", json!({"ipv4Address": "10.45.2.2"})).await?;
    let e = next_event(&mut rx).await?;
    assert_eq!(e.subscription_id, id);
    assert_eq!(e.kind, NetworkEventKind::IpChange);
    assert_eq!(e.ip, Some("10.45.2.2".parse()?));

    // The network now locates bob in Lyon, at his new address.
    let by_ip = DeviceRef { ip: Some("10.45.2.2".parse()?), ..Default::default() };
    assert_eq!(a.locate(&by_ip).await?.cell_id.as_deref(), Some("20801000000202"));

    // Only subscribed kinds are reported: a location-only subscription ignores IP changes.
    let (url2, mut rx2) = callback_server().await?;
    let loc_only = a.subscribe(&bob, &[NetworkEventKind::LocationChange], &url2).await?;
    emu.admin("/devices/bob/ip", json!({"ipv4Address": "10.45.2.3"})).await?;
    emu.admin("/devices/bob/move", json!({"cell": "20801000000203"})).await?;
    let e = next_event(&mut rx2).await?;
    assert_eq!((e.subscription_id.as_str(), e.kind), (loc_only.as_str(), NetworkEventKind::LocationChange));
    // Drain the first subscription's two events.
    assert_eq!(next_event(&mut rx).await?.kind, NetworkEventKind::IpChange);
    assert_eq!(next_event(&mut rx).await?.kind, NetworkEventKind::LocationChange);

    // After unsubscribing nothing more arrives; unsubscribing again is fine.
    a.unsubscribe(&id).await?;
    a.unsubscribe(&loc_only).await?;
    a.unsubscribe(&id).await?;
    emu.admin("/devices/bob/move", json!({"cell": "20801000000103"})).await?;
    let late = tokio::time::timeout(Duration::from_millis(800), rx.recv()).await;
    assert!(late.is_err() || matches!(late, Ok(None)), "event after unsubscribe: {late:?}");

    assert!(matches!(
        a.subscribe(&phone("+33699999999"), &[NetworkEventKind::LocationChange], &url).await,
        Err(NetworkError::UnknownDevice(_))
    ));
    assert!(matches!(a.subscribe(&bob, &[], &url).await, Err(NetworkError::Rejected(_))));
    Ok(())
}

#[tokio::test]
async fn path_performance_comes_from_the_scenario() -> Result<()> {
    let emu = start(&lab_scenario()).await?;
    let a = emu.adapter();
    // The cell's own link.
    let p = a.path_performance("20801000000104", "dnai-paris").await?;
    assert_eq!((p.latency_ms, p.jitter_ms, p.bandwidth_mbps), (8.0, 1.5, 800.0));
    // Its tracking area's link.
    let p = a.path_performance("20801000000201", "dnai-paris").await?;
    assert_eq!((p.latency_ms, p.jitter_ms, p.bandwidth_mbps), (12.0, 2.0, 500.0));
    let p = a.path_performance("20801000000101", "dnai-paris").await?;
    assert_eq!((p.latency_ms, p.jitter_ms, p.bandwidth_mbps), (5.0, 1.0, 1000.0));
    assert!(matches!(a.path_performance("nope", "dnai-paris").await, Err(NetworkError::Rejected(_))));
    assert!(matches!(a.path_performance("20801000000101", "nope").await, Err(NetworkError::Rejected(_))));
    Ok(())
}

#[tokio::test]
async fn traffic_influence_steers_and_is_removed() -> Result<()> {
    let emu = start(&lab_scenario()).await?;
    let a = emu.adapter();
    assert_eq!(emu.device("dave").await?["trafficDnai"], "dnai-marseille");

    let req = TrafficInfluence {
        device: phone("+33612340004"),
        app_id: "6b29fc40-ca47-1067-b31d-00dd010662da".into(),
        app_instance_id: "a1b2c3d4-0000-4000-8000-000000000001".into(),
        edge_cloud_zone_id: "zone-lyon".into(),
    };
    let id = a.influence_traffic(&req).await?;
    let dave = emu.device("dave").await?;
    assert_eq!(dave["trafficDnai"], "dnai-lyon");
    assert_eq!(dave["trafficInfluenceId"], id.as_str());

    // The resource as the spec has it, without the device (privacy).
    let token = emu.token().await?;
    let (status, ti) = emu.raw(reqwest::Method::GET, &format!("/traffic-influence/v0.10/traffic-influences/{id}"), Some(&token), None).await?;
    assert_eq!(status, 200);
    assert_eq!(ti["state"], "active");
    assert_eq!(ti["edgeCloudZoneId"], "zone-lyon");
    assert!(ti.get("device").is_none());
    let (status, list) = emu.raw(reqwest::Method::GET, "/traffic-influence/v0.10/traffic-influences", Some(&token), None).await?;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    a.remove_traffic_influence(&id).await?;
    assert_eq!(emu.device("dave").await?["trafficDnai"], "dnai-marseille");
    a.remove_traffic_influence(&id).await?;
    let (status, err) = emu.raw(reqwest::Method::GET, &format!("/traffic-influence/v0.10/traffic-influences/{id}"), Some(&token), None).await?;
    assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")));

    let unknown = TrafficInfluence { device: phone("+33699999999"), ..req };
    assert!(matches!(a.influence_traffic(&unknown).await, Err(NetworkError::UnknownDevice(_))));
    Ok(())
}

#[tokio::test]
async fn answers_carry_the_fields_the_specs_require() -> Result<()> {
    use reqwest::Method;
    let emu = start(&lab_scenario()).await?;
    let token = emu.token().await?;
    let t = Some(token.as_str());
    let dl = "camara/DeviceLocation";
    let alice = json!({"phoneNumber": "+33612340001"});

    // Location retrieval: Location with a Circle area.
    let (status, v) = emu.raw(Method::POST, "/location-retrieval/v0.5/retrieve", t, Some(json!({"device": alice}))).await?;
    assert_eq!(status, 200, "{v}");
    assert_required(&v, &spec_required(&format!("{dl}/location-retrieval.yaml"), "Location", &["area", "lastLocationTime"]), "Location");
    let circle = spec_required(&format!("{dl}/location-retrieval.yaml"), "Circle", &["areaType", "center", "radius"]);
    assert_required(&v["area"], &circle, "Circle");
    assert_eq!(v["area"]["areaType"], "CIRCLE");
    assert_required(&v["area"]["center"], &spec_required(&format!("{dl}/location-retrieval.yaml"), "Point", &["latitude", "longitude"]), "Point");

    // Verification.
    let body = json!({"device": alice, "area": {"areaType": "CIRCLE", "center": {"latitude": 48.8566, "longitude": 2.3522}, "radius": 1000}});
    let (status, v) = emu.raw(Method::POST, "/location-verification/v3/verify", t, Some(body)).await?;
    assert_eq!(status, 200, "{v}");
    let req = spec_required(&format!("{dl}/location-verification.yaml"), "VerifyLocationResponse", &["lastLocationTime", "verificationResult"]);
    assert_required(&v, &req, "VerifyLocationResponse");
    assert_eq!(v["verificationResult"], "TRUE");

    // Errors: ErrorInfo, with the spec's codes.
    let error_info = spec_required(&format!("{dl}/location-retrieval.yaml"), "ErrorInfo", &["code", "message", "status"]);
    let (status, v) = emu
        .raw(Method::POST, "/location-retrieval/v0.5/retrieve", t, Some(json!({"device": {"phoneNumber": "+33699999999"}})))
        .await?;
    assert_eq!((status, v["code"].as_str()), (404, Some("IDENTIFIER_NOT_FOUND")));
    assert_required(&v, &error_info, "ErrorInfo");
    let (status, v) = emu.raw(Method::POST, "/location-retrieval/v0.5/retrieve", t, Some(json!({"maxAge": 60}))).await?;
    assert_eq!((status, v["code"].as_str()), (422, Some("MISSING_IDENTIFIER")));
    let (status, v) = emu
        .raw(Method::POST, "/location-verification/v3/verify", t, Some(json!({"device": alice, "area": {"areaType": "POLYGON"}})))
        .await?;
    assert_eq!((status, v["code"].as_str()), (400, Some("INVALID_ARGUMENT")));
    assert_required(&v, &error_info, "ErrorInfo");

    // NEF: a continuous subscription and a one-time report.
    let nef = "3gpp-nef/TS29122_MonitoringEvent.yaml";
    let sub = json!({
        "msisdn": "33612340001", "monitoringType": "LOCATION_REPORTING",
        "notificationDestination": "http://127.0.0.1:9/unused", "maximumNumberOfReports": 5, "immediateRep": true,
    });
    let (status, v) = emu.raw(Method::POST, "/3gpp-monitoring-event/v1/op-platform/subscriptions", t, Some(sub)).await?;
    assert_eq!(status, 201, "{v}");
    assert_required(&v, &spec_required(nef, "MonitoringEventSubscription", &["monitoringType", "notificationDestination"]), "MonitoringEventSubscription");
    let link = v["self"].as_str().ok_or_else(|| anyhow!("no self link"))?.to_string();
    let report = spec_required(nef, "MonitoringEventReport", &["monitoringType"]);
    assert_required(&v["monitoringEventReport"], &report, "MonitoringEventReport");
    let path = link.strip_prefix(&emu.base).ok_or_else(|| anyhow!("self link {link} not on {}", emu.base))?.to_string();
    let (status, got) = emu.raw(Method::GET, &path, t, None).await?;
    assert_eq!((status, &got["self"]), (200, &json!(link)));
    let (status, _) = emu.raw(Method::DELETE, &path, t, None).await?;
    assert_eq!(status, 204);
    let (status, problem) = emu.raw(Method::GET, &path, t, None).await?;
    assert_eq!((status, problem["status"].as_u64()), (404, Some(404)));

    let once = json!({
        "externalId": "carol@lab.netemu.example", "monitoringType": "LOCATION_REPORTING",
        "notificationDestination": "http://127.0.0.1:9/unused", "maximumNumberOfReports": 1,
    });
    let (status, v) = emu.raw(Method::POST, "/3gpp-monitoring-event/v1/op-platform/subscriptions", t, Some(once)).await?;
    assert_eq!(status, 200, "{v}");
    assert_required(&v, &report, "MonitoringEventReport");
    assert_eq!(v["locationInfo"]["cellId"], "20801000000201");
    assert_eq!(v["locationInfo"]["trackingAreaId"], "000002");
    let (status, problem) = emu
        .raw(Method::POST, "/3gpp-monitoring-event/v1/op-platform/subscriptions", t, Some(json!({"msisdn": "33612340001"})))
        .await?;
    assert_eq!(status, 400);
    assert!(problem["invalidParams"].is_array(), "{problem}");

    // Traffic influence resource.
    let ti_spec = "camara/TrafficInfluence/traffic-influence.yaml";
    let body = json!({"apiConsumerId": "op-platform", "appId": "6b29fc40-ca47-1067-b31d-00dd010662da", "edgeCloudZoneId": "zone-paris", "device": alice});
    let (status, v) = emu.raw(Method::POST, "/traffic-influence/v0.10/traffic-influence-devices", t, Some(body)).await?;
    assert_eq!(status, 201, "{v}");
    assert_required(&v, &spec_required(ti_spec, "TrafficInfluence", &["apiConsumerId", "appId"]), "TrafficInfluence");
    assert!(v["trafficInfluenceID"].is_string());
    let (status, v) = emu
        .raw(Method::POST, "/traffic-influence/v0.10/traffic-influences", t, Some(json!({"appId": "x"})))
        .await?;
    assert_eq!((status, v["code"].as_str()), (400, Some("INVALID_ARGUMENT")));

    // Quality on Demand session lifecycle.
    let qod = "camara/QualityOnDemand/quality-on-demand.yaml";
    let session = spec_required(qod, "SessionInfo", &["applicationServer", "duration", "qosProfile", "qosStatus", "sessionId"]);
    let body = json!({"device": alice, "applicationServer": {"ipv4Address": "198.51.100.10"}, "qosProfile": "QOS_L", "duration": 600});
    let (status, v) = emu.raw(Method::POST, "/quality-on-demand/v1/sessions", t, Some(body.clone())).await?;
    assert_eq!(status, 201, "{v}");
    assert_required(&v, &session, "SessionInfo");
    assert_eq!(v["qosStatus"], "AVAILABLE");
    let sid = v["sessionId"].as_str().ok_or_else(|| anyhow!("no sessionId"))?.to_string();
    let (status, v) = emu.raw(Method::POST, "/quality-on-demand/v1/sessions", t, Some(body)).await?;
    assert_eq!((status, v["code"].as_str()), (409, Some("CONFLICT")));
    let (status, v) = emu
        .raw(Method::POST, &format!("/quality-on-demand/v1/sessions/{sid}/extend"), t, Some(json!({"requestedAdditionalDuration": 300})))
        .await?;
    assert_eq!((status, v["duration"].as_u64()), (200, Some(900)));
    let (status, v) = emu.raw(Method::POST, "/quality-on-demand/v1/retrieve-sessions", t, Some(json!({"device": alice}))).await?;
    assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(1)));
    let (status, _) = emu.raw(Method::DELETE, &format!("/quality-on-demand/v1/sessions/{sid}"), t, None).await?;
    assert_eq!(status, 204);
    let (status, v) = emu.raw(Method::GET, &format!("/quality-on-demand/v1/sessions/{sid}"), t, None).await?;
    assert_eq!((status, v["code"].as_str()), (404, Some("NOT_FOUND")));
    let bad = json!({"device": alice, "applicationServer": {"ipv4Address": "198.51.100.10"}, "qosProfile": "QOS_E", "duration": 7200});
    let (status, v) = emu.raw(Method::POST, "/quality-on-demand/v1/sessions", t, Some(bad)).await?;
    assert_eq!((status, v["code"].as_str()), (400, Some("QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE")));
    Ok(())
}

#[tokio::test]
async fn scripted_events_move_devices_and_notify() -> Result<()> {
    // The lab network with a script of its own: alice leaves for Lyon after 2 s.
    let lab = std::fs::read_to_string(lab_scenario())?;
    let head = lab.split("\nevents:").next().ok_or_else(|| anyhow!("lab scenario has no events"))?;
    let script = "\nevents:\n  - {at: 2, device: alice, moveTo: \"20801000000203\"}\n  - {at: 2.5, device: \"+33612340001\", newIpv4Address: \"10.45.9.1\"}\n";
    let path = std::env::temp_dir().join(format!("netemu-scripted-{}.yaml", std::process::id()));
    std::fs::write(&path, format!("{head}{script}"))?;
    let emu = start(&path).await;
    let _ = std::fs::remove_file(&path);
    let emu = emu?;

    let a = emu.adapter();
    let (url, mut rx) = callback_server().await?;
    let id = a
        .subscribe(&phone("+33612340001"), &[NetworkEventKind::LocationChange, NetworkEventKind::IpChange], &url)
        .await?;
    let e = next_event(&mut rx).await?;
    assert_eq!((e.subscription_id.as_str(), e.kind), (id.as_str(), NetworkEventKind::LocationChange));
    assert_eq!(e.location.and_then(|l| l.cell_id).as_deref(), Some("20801000000203"));
    let e = next_event(&mut rx).await?;
    assert_eq!((e.kind, e.ip), (NetworkEventKind::IpChange, Some("10.45.9.1".parse()?)));

    let alice = emu.device("alice").await?;
    assert_eq!(alice["cell"], "20801000000203");
    assert_eq!(alice["trafficDnai"], "dnai-lyon");
    let (_, history) = emu.raw(reqwest::Method::GET, "/emulator/v1/history", None, None).await?;
    let sources: Vec<&str> = history.as_array().into_iter().flatten().filter_map(|h| h["source"].as_str()).collect();
    assert_eq!(sources, ["script", "script"]);

    // Reset puts alice back in Paris.
    let (status, _) = emu.raw(reqwest::Method::POST, "/emulator/v1/reset", None, None).await?;
    assert_eq!(status, 204);
    assert_eq!(emu.device("alice").await?["cell"], "20801000000101");
    Ok(())
}

/// The lab scenario's path table: (latency ms, jitter ms, bandwidth Mbit/s) from a cell (its
/// tracking area is the digit after `208010000001`..`3`) to a DNAI.
fn lab_path(cell: &str, dnai: &str) -> (f64, f64, f64) {
    if (cell, dnai) == ("20801000000104", "dnai-paris") {
        return (8.0, 1.5, 800.0);
    }
    let ta = &cell[11..12];
    match (ta, dnai) {
        ("1", "dnai-paris") | ("2", "dnai-lyon") => {
            (if ta == "1" { 5.0 } else { 4.0 }, 1.0, 1000.0)
        }
        ("3", "dnai-marseille") => (4.0, 1.0, 1000.0),
        ("1", "dnai-lyon") | ("2", "dnai-paris") => (12.0, 2.0, 500.0),
        ("1", "dnai-marseille") | ("3", "dnai-paris") => (18.0, 3.0, 400.0),
        ("2", "dnai-marseille") | ("3", "dnai-lyon") => (9.0, 2.0, 500.0),
        _ => (40.0, 8.0, 200.0),
    }
}

fn triple(p: &PathPerformance) -> (f64, f64, f64) {
    (p.latency_ms, p.jitter_ms, p.bandwidth_mbps)
}

#[tokio::test]
async fn path_matrix_answers_every_known_pair() -> Result<()> {
    let emu = start(&lab_scenario()).await?;
    let a = emu.adapter();
    let all_cells = [
        "20801000000101",
        "20801000000102",
        "20801000000103",
        "20801000000104",
        "20801000000201",
        "20801000000202",
        "20801000000203",
        "20801000000301",
        "20801000000302",
        "20801000000303",
    ];
    let all_dnais = ["dnai-paris", "dnai-lyon", "dnai-marseille"];

    // The whole lab: 10 cells x 3 DNAIs, cells outer, each with the scenario's numbers.
    let m = a
        .path_matrix(&strings(&all_cells), &strings(&all_dnais))
        .await?;
    let pairs: Vec<(&str, &str)> = m
        .iter()
        .map(|e| (e.cell.as_str(), e.dnai.as_str()))
        .collect();
    let expected: Vec<(&str, &str)> = all_cells
        .iter()
        .flat_map(|c| all_dnais.iter().map(move |d| (*c, *d)))
        .collect();
    assert_eq!(pairs, expected);
    for e in &m {
        assert_eq!(
            triple(&e.performance),
            lab_path(&e.cell, &e.dnai),
            "{} -> {}",
            e.cell,
            e.dnai
        );
    }
    // The same numbers as one pair at a time.
    for (cell, dnai) in [
        ("20801000000104", "dnai-paris"),
        ("20801000000203", "dnai-marseille"),
        ("20801000000302", "dnai-lyon"),
    ] {
        let one = a.path_performance(cell, dnai).await?;
        let in_matrix = m
            .iter()
            .find(|e| e.cell == cell && e.dnai == dnai)
            .map(|e| e.performance);
        assert_eq!(in_matrix, Some(one), "{cell} -> {dnai}");
    }

    // Unknown cells and DNAIs are left out; repeats are answered once.
    let m = a
        .path_matrix(
            &strings(&["20801000000104", "nope", "20801000000201", "20801000000104"]),
            &strings(&["dnai-lyon", "dnai-nowhere", "dnai-paris"]),
        )
        .await?;
    let got: Vec<(&str, &str, (f64, f64, f64))> = m
        .iter()
        .map(|e| (e.cell.as_str(), e.dnai.as_str(), triple(&e.performance)))
        .collect();
    assert_eq!(
        got,
        [
            ("20801000000104", "dnai-lyon", (12.0, 2.0, 500.0)),
            ("20801000000104", "dnai-paris", (8.0, 1.5, 800.0)),
            ("20801000000201", "dnai-lyon", (4.0, 1.0, 1000.0)),
            ("20801000000201", "dnai-paris", (12.0, 2.0, 500.0)),
        ]
    );
    // Nothing known: no entries (the emulator answers 204).
    assert!(a
        .path_matrix(&strings(&["nope"]), &strings(&["dnai-paris"]))
        .await?
        .is_empty());
    assert!(a
        .path_matrix(&strings(&["20801000000101"]), &strings(&["dnai-nowhere"]))
        .await?
        .is_empty());

    // Empty input: empty output, and no request (an adapter with a wrong secret would fail one).
    let refusing = refusing_adapter(&emu);
    assert!(refusing
        .path_matrix(&[], &strings(&all_dnais))
        .await?
        .is_empty());
    assert!(refusing
        .path_matrix(&strings(&all_cells), &[])
        .await?
        .is_empty());
    assert!(matches!(
        refusing
            .path_matrix(&strings(&all_cells), &strings(&all_dnais))
            .await,
        Err(NetworkError::Unauthorized(_))
    ));

    // On the wire: the cross product of the known pairs, 204 when none is known.
    let token = emu.token().await?;
    // 301 and the three cells of TA 000002 (202 and 301 named twice), each once, with every DNAI.
    let ncgis = json!([
        {"nrCellId": "20801000000301"},
        {"nrCellId": "x"},
        {"nrCellId": "20801000000202"},
        {"nrCellId": "20801000000301"}
    ]);
    let filter = json!({"networkArea": {"ncgis": ncgis, "tais": [{"tac": "000002"}]}});
    let (status, v) = emu
        .raw(
            reqwest::Method::GET,
            &analytics_query("DN_PERFORMANCE", &filter),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["dnPerfInfos"][0]["dnPerf"].as_array().map(Vec::len),
        Some(4 * 3),
        "{v}"
    );
    let filter = json!({"networkArea": {"ncgis": [{"nrCellId": "x"}]}});
    let (status, _) = emu
        .raw(
            reqwest::Method::GET,
            &analytics_query("DN_PERFORMANCE", &filter),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(status, 204);
    Ok(())
}

/// Path and query of an analytics request.
fn analytics_query(event: &str, filter: &Value) -> String {
    let mut url =
        reqwest::Url::parse("http://x/nnwdaf-analyticsinfo/v1/analytics").expect("static URL");
    url.query_pairs_mut()
        .append_pair("event-id", event)
        .append_pair("event-filter", &filter.to_string());
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

fn load(loads: &[CellLoad], cell: &str) -> Option<(u64, f64)> {
    loads
        .iter()
        .find(|l| l.cell == cell)
        .map(|l| (l.ues, l.ratio))
}

#[tokio::test]
async fn cell_loads_follow_devices_and_background_ues() -> Result<()> {
    // Terreaux: room for 4 UEs, one attached that is not a scenario device.
    let terreaux = "20801000000202";
    let emu = start_lab_with(&[(
        r#"{id: "20801000000202", lat: 45.7676, lon: 4.8344, trackingArea: "000002"}"#,
        r#"{id: "20801000000202", lat: 45.7676, lon: 4.8344, trackingArea: "000002", capacityUes: 4, backgroundUes: 1}"#,
    )])
    .await?;
    let a = emu.adapter();
    let montmartre = "20801000000103"; // bob's cell
    let asked = strings(&[montmartre, terreaux, "nope", "20801000000203", montmartre]);

    let loads = a.cell_loads(&asked).await?;
    let cells: Vec<&str> = loads.iter().map(|l| l.cell.as_str()).collect();
    assert_eq!(
        cells,
        [montmartre, terreaux, "20801000000203"],
        "unknown cells left out, repeats once"
    );
    assert_eq!(load(&loads, montmartre), Some((1, 0.01)));
    assert_eq!(load(&loads, terreaux), Some((1, 0.25)));
    // An idle cell reads the SamplingRatio minimum, 1 %.
    assert_eq!(load(&loads, "20801000000203"), Some((0, 0.01)));

    // bob moves in: one UE more there, one fewer where he was.
    emu.admin("/devices/bob/move", json!({"cell": terreaux}))
        .await?;
    let loads = a.cell_loads(&asked).await?;
    assert_eq!(load(&loads, terreaux), Some((2, 0.5)));
    assert_eq!(load(&loads, montmartre), Some((0, 0.01)));

    // Background load at run time.
    let view = emu
        .admin(
            &format!("/cells/{terreaux}/load"),
            json!({"backgroundUes": 2}),
        )
        .await?;
    assert_eq!(
        (view["ues"].as_u64(), view["relativeRatio"].as_u64()),
        (Some(3), Some(75)),
        "{view}"
    );
    assert_eq!(
        load(&a.cell_loads(&asked).await?, terreaux),
        Some((3, 0.75))
    );
    emu.admin(
        &format!("/cells/{terreaux}/load"),
        json!({"backgroundUes": 9}),
    )
    .await?;
    assert_eq!(
        load(&a.cell_loads(&asked).await?, terreaux),
        Some((10, 1.0)),
        "overload is capped at 100 %"
    );

    // Admin errors: unknown cell, malformed body.
    let (status, v) = emu
        .raw(
            reqwest::Method::POST,
            "/emulator/v1/cells/nope/load",
            None,
            Some(json!({"backgroundUes": 1})),
        )
        .await?;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("NOT_FOUND")),
        "{v}"
    );
    let (status, v) = emu
        .raw(
            reqwest::Method::POST,
            &format!("/emulator/v1/cells/{terreaux}/load"),
            None,
            Some(json!({"backgroundUes": -1})),
        )
        .await?;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "{v}"
    );

    // Reset: bob back in Montmartre, Terreaux's background back to the scenario's 1.
    let (status, _) = emu
        .raw(reqwest::Method::POST, "/emulator/v1/reset", None, None)
        .await?;
    assert_eq!(status, 204);
    let loads = a.cell_loads(&asked).await?;
    assert_eq!(load(&loads, terreaux), Some((1, 0.25)));
    assert_eq!(load(&loads, montmartre), Some((1, 0.01)));
    let (status, v) = emu
        .raw(
            reqwest::Method::GET,
            &format!("/emulator/v1/cells/{terreaux}"),
            None,
            None,
        )
        .await?;
    assert_eq!(
        (
            status,
            v["backgroundUes"].as_u64(),
            v["capacityUes"].as_u64()
        ),
        (200, Some(1), Some(4)),
        "{v}"
    );

    // Nothing known, nothing asked.
    assert!(a.cell_loads(&strings(&["nope"])).await?.is_empty());
    let refusing = refusing_adapter(&emu);
    assert!(refusing.cell_loads(&[]).await?.is_empty());
    assert!(matches!(
        refusing.cell_loads(&asked).await,
        Err(NetworkError::Unauthorized(_))
    ));

    // On the wire: TS 29.520 NetworkPerfInfo per cell; no cells in the filter = every cell.
    let token = emu.token().await?;
    let (status, v) = emu
        .raw(
            reqwest::Method::GET,
            &analytics_query("NETWORK_PERFORMANCE", &json!({})),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    let perfs = v["nwPerfs"]
        .as_array()
        .ok_or_else(|| anyhow!("no nwPerfs in {v}"))?;
    assert_eq!(perfs.len(), 10);
    let t = perfs
        .iter()
        .find(|p| p["networkArea"]["ncgis"][0]["nrCellId"] == terreaux)
        .ok_or_else(|| anyhow!("no entry for {terreaux}"))?;
    assert_eq!(
        (
            t["nwPerfType"].as_str(),
            t["absoluteNum"].as_u64(),
            t["relativeRatio"].as_u64()
        ),
        (Some("NUM_OF_UE"), Some(1), Some(25))
    );
    let filter = json!({"networkArea": {"ncgis": [{"nrCellId": "nope"}]}});
    let (status, _) = emu
        .raw(
            reqwest::Method::GET,
            &analytics_query("NETWORK_PERFORMANCE", &filter),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(status, 204);
    let filter = json!({"nwPerfTypes": ["NUM_OF_UE", "HO_SUCC_RATIO"]});
    let (status, v) = emu
        .raw(
            reqwest::Method::GET,
            &analytics_query("NETWORK_PERFORMANCE", &filter),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(status, 400);
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("nwPerfTypes[1]")),
        "{v}"
    );
    Ok(())
}

#[tokio::test]
async fn roaming_status_follows_the_serving_plmn() -> Result<()> {
    // dave is abroad from the start (PLMN 234-15).
    let emu = start_lab_with(&[(
        r#"cell: "20801000000301"}"#,
        r#"cell: "20801000000301", servingPlmn: "23415"}"#,
    )])
    .await?;
    let a = emu.adapter();
    let home = |plmn: &str| RoamingStatus {
        roaming: false,
        serving_plmn: Some(plmn.into()),
    };
    let away = |plmn: &str| RoamingStatus {
        roaming: true,
        serving_plmn: Some(plmn.into()),
    };

    let alice = phone("+33612340001");
    assert_eq!(a.roaming_status(&alice).await?, home("20801"));
    let dave = DeviceRef {
        network_access_identifier: Some("dave@lab.netemu.example".into()),
        ..Default::default()
    };
    assert_eq!(a.roaming_status(&dave).await?, away("23415"));
    let dave_ip = DeviceRef {
        ip: Some("10.45.0.4".parse()?),
        ..Default::default()
    };
    assert_eq!(a.roaming_status(&dave_ip).await?, away("23415"));

    // alice travels to a 3-digit-MNC network; dave comes home.
    let view = emu
        .admin("/devices/alice/roam", json!({"servingPlmn": "310410"}))
        .await?;
    assert_eq!(
        (view["servingPlmn"].as_str(), view["roaming"].as_bool()),
        (Some("310410"), Some(true)),
        "{view}"
    );
    assert_eq!(a.roaming_status(&alice).await?, away("310410"));
    emu.admin("/devices/dave/roam", json!({"servingPlmn": "20801"}))
        .await?;
    assert_eq!(a.roaming_status(&dave).await?, home("20801"));
    let (_, history) = emu
        .raw(reqwest::Method::GET, "/emulator/v1/history", None, None)
        .await?;
    let roams: Vec<(&str, &str)> = history
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            Some((
                h["device"].as_str()?,
                h["action"]["roam"]["servingPlmn"].as_str()?,
            ))
        })
        .collect();
    assert_eq!(roams, [("alice", "310410"), ("dave", "20801")]);

    // Admin errors.
    let (status, v) = emu
        .raw(
            reqwest::Method::POST,
            "/emulator/v1/devices/alice/roam",
            None,
            Some(json!({"servingPlmn": "2341"})),
        )
        .await?;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("servingPlmn")),
        "{v}"
    );
    let (status, v) = emu
        .raw(
            reqwest::Method::POST,
            "/emulator/v1/devices/nobody/roam",
            None,
            Some(json!({"servingPlmn": "23415"})),
        )
        .await?;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("IDENTIFIER_NOT_FOUND")),
        "{v}"
    );

    // Unknown devices and missing identifiers map as for the other NEF calls.
    assert!(matches!(
        a.roaming_status(&phone("+33699999999")).await,
        Err(NetworkError::UnknownDevice(_))
    ));
    assert!(matches!(
        a.roaming_status(&DeviceRef::default()).await,
        Err(NetworkError::Rejected(_))
    ));

    // Reset: back to the scenario's PLMNs.
    let (status, _) = emu
        .raw(reqwest::Method::POST, "/emulator/v1/reset", None, None)
        .await?;
    assert_eq!(status, 204);
    assert_eq!(a.roaming_status(&alice).await?, home("20801"));
    assert_eq!(a.roaming_status(&dave).await?, away("23415"));

    // On the wire: plmnId only when asked for; a subscription is notified of PLMN changes.
    let token = emu.token().await?;
    let t = Some(token.as_str());
    let path = "/3gpp-monitoring-event/v1/op-platform/subscriptions";
    let once = json!({
        "msisdn": "33612340004", "monitoringType": "ROAMING_STATUS",
        "notificationDestination": "http://127.0.0.1:9/unused", "maximumNumberOfReports": 1,
    });
    let (status, v) = emu.raw(reqwest::Method::POST, path, t, Some(once)).await?;
    assert_eq!(status, 200, "{v}");
    assert_required(
        &v,
        &spec_required(
            "3gpp-nef/TS29122_MonitoringEvent.yaml",
            "MonitoringEventReport",
            &["monitoringType"],
        ),
        "MonitoringEventReport",
    );
    assert_eq!(
        (
            v["monitoringType"].as_str(),
            v["roamingStatus"].as_bool(),
            v["msisdn"].as_str()
        ),
        (Some("ROAMING_STATUS"), Some(true), Some("33612340004"))
    );
    assert!(
        v.get("plmnId").is_none(),
        "plmnId without plmnIndication: {v}"
    );

    let (url, mut rx) = raw_callback_server().await?;
    let sub = json!({
        "msisdn": "33612340001", "monitoringType": "ROAMING_STATUS", "plmnIndication": true,
        "notificationDestination": url, "maximumNumberOfReports": 5,
    });
    let (status, v) = emu.raw(reqwest::Method::POST, path, t, Some(sub)).await?;
    assert_eq!(status, 201, "{v}");
    emu.admin("/devices/alice/roam", json!({"servingPlmn": "26201"}))
        .await?;
    let n = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .context("no roaming notification within 15 s")?
        .ok_or_else(|| anyhow!("callback server gone"))?;
    let r = &n["monitoringEventReports"][0];
    assert_eq!(
        (r["monitoringType"].as_str(), r["roamingStatus"].as_bool()),
        (Some("ROAMING_STATUS"), Some(true)),
        "{n}"
    );
    assert_eq!(r["plmnId"], json!({"mcc": "262", "mnc": "01"}));
    Ok(())
}
