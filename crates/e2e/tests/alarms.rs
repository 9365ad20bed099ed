//! Alarms through the real platform to real webhook receivers: an instance whose container is
//! killed (InstanceDown, firing then resolved), a busy instance under an alert policy
//! (CpuHigh), a cloudlet whose runtime stops answering (CloudletDown, the operator's only),
//! Alertmanager's message format, signatures, retries after a receiver's errors, isolation
//! between organizations, and an alarm resolved across a `kill -9` of opd, told once.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use op_client::Client;
use op_e2e::*;
use serde_json::{json, Value};

/// One message a receiver took: its path, signature header, body parsed and raw.
type Received = (String, Option<String>, Value, Vec<u8>);

/// What the test's webhook receiver got: per path, each body and its signature header.
#[derive(Clone, Default)]
struct Inbox {
    got: Arc<Mutex<Vec<Received>>>,
    /// Answers to give a path before taking its messages (e.g. two 503s).
    fail_first: Arc<Mutex<HashMap<String, u32>>>,
}

impl Inbox {
    fn of(&self, path: &str) -> Vec<Value> {
        self.got.lock().unwrap().iter().filter(|(p, ..)| p == path).map(|(_, _, v, _)| v.clone()).collect()
    }

    /// Waits for a message on `path` about `alertname` in `status` (and `also`).
    async fn wait(&self, path: &str, alertname: &str, status: &str, also: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        for _ in 0..300 {
            if let Some(m) = self.of(path).into_iter().find(|m| m["status"] == status && m["commonLabels"]["alertname"] == alertname && also(m)) {
                return Ok(m);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("no {status} {alertname} on /{path}; got {:?}", self.of(path))
    }
}

async fn take(State(inbox): State<Inbox>, Path(path): Path<String>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    {
        let mut fails = inbox.fail_first.lock().unwrap();
        if let Some(n) = fails.get_mut(&path).filter(|n| **n > 0) {
            *n -= 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    let sig = headers.get("x-op-signature-256").and_then(|v| v.to_str().ok()).map(str::to_string);
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inbox.got.lock().unwrap().push((path, sig, v, body.to_vec()));
    StatusCode::OK
}

async fn serve(router: Router, port: u16) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    Ok(tokio::spawn(async move {
        let _ = axum::serve(l, router).await;
    }))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

#[tokio::test(flavor = "multi_thread")]
async fn alarms_reach_webhooks() -> anyhow::Result<()> {
    let inbox = Inbox::default();
    let hook_port = free_port();
    let _hooks = serve(Router::new().route("/{path}", post(take)).with_state(inbox.clone()), hook_port).await?;
    let hook = |p: &str| format!("http://127.0.0.1:{hook_port}/{p}");
    let mut p = Platform::start_with(&["--resources-every-ms", "300", "--alarms-every-ms", "200"]).await?;
    let admin = p.admin().await?;
    let dev = p.developer("alarm_org", "alma", "Manager").await?;
    let other = p.developer("quiet_org", "quinn", "Manager").await?;

    // Receivers: the operator's (signed), the organization's (failing twice first), another
    // organization's.
    let secret = "a-shared-secret-for-signatures";
    let (s, ops) = admin.post("/op/v1/alarmreceivers", &json!({"name": "noc", "spec": {"url": hook("ops"), "secret": secret}})).await?;
    assert_eq!(s, 201, "{ops}");
    assert_eq!(ops["hasSecret"], true);
    assert!(ops["organization"].is_null() && !ops.to_string().contains(secret) && ops["spec"].get("secret").is_none(), "{ops}");
    inbox.fail_first.lock().unwrap().insert("dev".into(), 2);
    let (s, devr) = dev.post("/op/v1/alarmreceivers", &json!({"name": "pager", "spec": {"url": hook("dev")}})).await?;
    assert_eq!((s, devr["organization"].as_str()), (201, Some("alarm_org")), "{devr}");
    let (s, b) = other.post("/op/v1/alarmreceivers", &json!({"name": "pager", "spec": {"url": hook("other")}})).await?;
    assert_eq!(s, 201, "the same name in another organization: {b}");
    let (_, listed) = admin.get("/op/v1/alarmreceivers").await?;
    assert!(!listed.to_string().contains(secret), "a secret is never returned: {listed}");
    let (_, mine) = dev.get("/op/v1/alarmreceivers").await?;
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "an organization sees its own receivers only: {mine}");

    // Bad input names its field; roles hold.
    for (body, field) in [
        (json!({"name": "x1", "spec": {"url": "ftp://x"}}), "spec.url"),
        (json!({"name": "x2", "spec": {"url": hook("x"), "secret": "short"}}), "spec.secret"),
        (json!({"name": "x3", "spec": {"url": hook("x"), "alarms": ["Nope"]}}), "spec.alarms"),
        (json!({"name": "x4", "spec": {"url": hook("x"), "appId": "00000000-0000-4000-8000-000000000000"}}), "spec.appId"),
    ] {
        let (s, b) = dev.post("/op/v1/alarmreceivers", &body).await?;
        assert_eq!((s, b["code"].as_str()), (400, Some("INVALID_ARGUMENT")), "{body}: {b}");
        assert!(b["message"].as_str().unwrap_or_default().contains(field), "{field}: {b}");
    }
    let (s, b) = dev.post("/op/v1/alertpolicies", &json!({"name": "empty", "spec": {"forSeconds": 1}})).await?;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("spec.cpuPercent"), "{b}");
    let (s, _) = dev.post("/op/v1/alarmreceivers", &json!({"name": "theirs", "organization": "quiet_org", "spec": {"url": hook("x")}})).await?;
    assert_eq!(s, 403, "no receivers in another organization");
    let (s, b) = admin
        .post("/op/v1/users", &json!({"name": "vera", "organization": "alarm_org", "role": "Viewer", "password": "correct-horse-battery"}))
        .await?;
    assert_eq!(s, 201, "{b}");
    let viewer = p.api(Some(p.login("vera", "correct-horse-battery").await?));
    let (s, _) = viewer.post("/op/v1/alarmreceivers", &json!({"name": "vv", "spec": {"url": hook("x")}})).await?;
    assert_eq!(s, 403, "a Viewer registers no receiver");
    let (s, _) = other.delete(&format!("/op/v1/alarmreceivers/{}", devr["id"].as_str().unwrap_or_default())).await?;
    assert_eq!(s, 404, "another organization cannot see the receiver to delete it");

    // A test alarm, on request, signed with the secret.
    let (s, d) = admin.post(&format!("/op/v1/alarmreceivers/{}/test", ops["id"].as_str().unwrap_or_default()), &json!({})).await?;
    assert_eq!((s, d["delivered"].as_bool()), (200, Some(true)), "{d}");
    let test = inbox.wait("ops", "Test", "resolved", |_| true).await?;
    assert_eq!(test["version"], "4");
    {
        let got = inbox.got.lock().unwrap();
        let (_, sig, _, raw) = got.iter().find(|(p, ..)| p == "ops").expect("the test message");
        assert_eq!(sig.as_deref(), Some(op_api::alarms::signature(secret.as_bytes(), raw).as_str()), "signed with the receiver's secret");
    }

    // An instance whose container is killed: InstanceDown fires, then resolves once it runs
    // again; the organization's receiver gets it after two failures, never the cloudlet.
    let zone = p.zone_id(&dev, "local").await?;
    let app = dev.sample_app("alarm_org", "watched", json!({})).await?;
    let id = dev.deploy("watched_1", &app, &zone).await?;
    dev.wait_ready(&id, Duration::from_secs(60)).await?;
    let out = Command::new("podman").args(["--url", &docker_endpoint(), "kill", &format!("op-{id}")]).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let about = |m: &Value| m["commonLabels"]["object_id"] == id.as_str();
    let fired = inbox.wait("ops", "InstanceDown", "firing", about).await?;
    assert_eq!(fired["alerts"][0]["labels"]["cloudlet"], "local-docker", "the operator sees the cloudlet: {fired}");
    assert_eq!(fired["alerts"][0]["labels"]["severity"], "critical");
    assert_eq!(fired["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert!(fired["alerts"][0]["annotations"]["description"].as_str().unwrap_or_default().contains("137"), "{fired}");
    let resolved = inbox.wait("ops", "InstanceDown", "resolved", about).await?;
    assert_eq!(resolved["alerts"][0]["fingerprint"], fired["alerts"][0]["fingerprint"], "one alarm, firing then resolved");
    // The organization's receiver was failing while the instance was down (a fraction of a
    // second): it is told the alarm's state when it takes messages again, resolved.
    let dev_fired = inbox.wait("dev", "InstanceDown", "resolved", about).await?;
    assert_eq!(dev_fired["alerts"][0]["fingerprint"], fired["alerts"][0]["fingerprint"]);
    assert_eq!(dev_fired["alerts"][0]["labels"]["cloudlet"], "hidden", "developers never see a cloudlet: {dev_fired}");
    assert_eq!(dev_fired["alerts"][0]["labels"]["organization"], "alarm_org");
    assert_eq!(dev_fired["alerts"][0]["labels"]["zone"], "local");
    assert!(!dev_fired.to_string().contains("local-docker"), "{dev_fired}");
    let (_, receivers) = dev.get("/op/v1/alarmreceivers").await?;
    assert_eq!(receivers[0]["lastDelivery"]["delivered"], true, "delivered after the receiver's two errors: {receivers}");
    let (_, alarms) = dev.get("/op/v1/alarms?state=resolved").await?;
    let a = alarms.as_array().into_iter().flatten().find(|a| a["objectId"] == id.as_str()).cloned().expect("the resolved alarm is listed");
    assert_eq!((a["alertname"].as_str(), a["cloudlet"].as_str()), (Some("InstanceDown"), Some("hidden")), "{a}");
    let (_, theirs) = other.get("/op/v1/alarms").await?;
    assert_eq!(theirs.as_array().map(Vec::len), Some(0), "another organization sees none of these alarms: {theirs}");

    // An alert policy: CPU over half the flavor's vCPU for a second raises CpuHigh; it
    // resolves when the load stops.
    let (s, pol) = dev.post("/op/v1/alertpolicies", &json!({"name": "hot", "spec": {"cpuPercent": 50, "forSeconds": 1, "appId": app}})).await?;
    assert_eq!(s, 201, "{pol}");
    let client = Client::new(&p.url, dev.token.clone());
    let uid = id.parse()?;
    let (_, _, code) = client.exec(uid, &["sh".into(), "-c".into(), "for i in 1 2; do (while :; do :; done) & done".into()], false).await?.run(b"").await?;
    assert_eq!(code, Some(0));
    let hot = inbox.wait("dev", "CpuHigh", "firing", about).await?;
    assert_eq!(hot["alerts"][0]["labels"]["policy"], pol["metadata"]["uid"], "{hot}");
    assert_eq!(hot["alerts"][0]["labels"]["severity"], "warning");
    let _ = client.exec(uid, &["sh".into(), "-c".into(), "kill -9 -1".into()], false).await?.run(b"").await;
    inbox.wait("dev", "CpuHigh", "resolved", about).await?;
    assert!(inbox.of("other").is_empty(), "another organization's receiver got nothing: {:?}", inbox.of("other"));

    // A cloudlet whose runtime stops answering: CloudletDown, to the operator only. It is
    // resolved while opd was killed and restarted, and the operator hears of it once.
    let fake_port = free_port();
    let fake = Router::new().route("/_ping", get(|| async { "OK" })).route("/{*rest}", get(|| async { "OK" }));
    let fake_server = serve(fake.clone(), fake_port).await?;
    let (s, b) = admin
        .post(
            "/op/v1/cloudlets",
            &json!({"name": "edge-flaky", "spec": {"zone": "local", "location": {"latitude": 48.85, "longitude": 2.35},
                "platformType": "docker", "driverEndpoint": format!("http://127.0.0.1:{fake_port}"),
                "capacity": {"vcpus": 4, "memoryMb": 4096, "diskGb": 20}, "flavors": ["small"], "maintenance": true}}),
        )
        .await?;
    assert_eq!(s, 201, "{b}");
    for _ in 0..100 {
        let (_, c) = admin.get("/op/v1/cloudlets/edge-flaky").await?;
        if c["status"]["state"] == "Ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fake_server.abort();
    let _ = fake_server.await;
    let cl = |m: &Value| m["commonLabels"]["cloudlet"] == "edge-flaky";
    let down = inbox.wait("ops", "CloudletDown", "firing", cl).await?;
    assert_eq!(down["alerts"][0]["labels"]["severity"], "critical");
    let (_, firing) = admin.get("/op/v1/alarms?state=firing").await?;
    assert!(firing.as_array().into_iter().flatten().any(|a| a["alertname"] == "CloudletDown"), "{firing}");
    let (_, devs) = dev.get("/op/v1/alarms").await?;
    assert!(!devs.to_string().contains("CloudletDown"), "cloudlet alarms are the operator's: {devs}");
    p.kill9();
    let _fake_again = serve(fake, fake_port).await?;
    p.restart().await?;
    inbox.wait("ops", "CloudletDown", "resolved", cl).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let told: Vec<String> = inbox.of("ops").iter().filter(|m| cl(m)).map(|m| m["status"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(told, vec!["firing", "resolved"], "told once of each change across the restart");
    assert!(inbox.of("dev").iter().all(|m| m["commonLabels"]["alertname"] != "CloudletDown"));

    // opctl shows them.
    let out = p.opctl_as(&admin, &["alarm", "list"])?;
    assert!(out.contains("CloudletDown") && out.contains("edge-flaky"), "{out}");
    let out = p.opctl_as(&dev, &["alarm", "receiver", "list"])?;
    assert!(out.contains("pager") && out.contains(&hook("dev")) && !out.contains("noc"), "{out}");
    let out = p.opctl_as(&dev, &["alarm", "policy", "list"])?;
    assert!(out.contains("hot") && out.contains("50"), "{out}");
    Ok(())
}
