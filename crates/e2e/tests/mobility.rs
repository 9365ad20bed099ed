//! Mobility end to end, against the network emulator and real containers: a device moves
//! between zones and its app server moves with it, without notice for a stateless app, with
//! prior notice (ETSI MEC 021) for the stateful counter app, whose state survives; an app that
//! refuses keeps its device; an app's report of degraded service moves the device; every
//! relocation is recorded with its timeline.

use std::time::{Duration, Instant};

use futures::StreamExt;
use op_device::DeviceClient;
use op_e2e::*;
use op_types::uni::{AppRef, Device, DeviceIpv4Addr, RegisterRequest, UniEvent};
use serde_json::{json, Value};

const EVE: &str = "+33612340005"; // starts in Paris, cell 20801000000102
const EVE_IP: &str = "10.45.0.5";

fn register(app: &str, token: &str) -> RegisterRequest {
    RegisterRequest {
        device: Device {
            phone_number: Some(EVE.into()),
            ipv4_address: Some(DeviceIpv4Addr { public_address: EVE_IP.parse().unwrap(), private_address: None, public_port: None }),
            ..Default::default()
        },
        app: AppRef { provider: "move_games".into(), name: app.into(), version: "1.0".into() },
        app_token: token.into(),
        location: None,
        max_alternatives: None,
    }
}

/// Onboards `name` (image, mobility policy, env) and deploys it in Paris and Lyon; returns the
/// app id and the two instances.
async fn app_in_both_zones(p: &Platform, dev: &Api, key_pem: &str, name: &str, image: &str, policy: &str, env: Value) -> anyhow::Result<(String, String, String)> {
    let mut m = sample_manifest("move_games", name);
    m["appRepo"]["imagePath"] = json!(image);
    m["deviceAuth"] = json!({"publicKeyPem": key_pem});
    m["requirements"] = json!({"mobilityPolicy": policy});
    m["env"] = env;
    let (s, b) = dev.post(&format!("{CAMARA}/apps"), &m).await?;
    anyhow::ensure!(s == 201, "{b}");
    let app = b["appId"].as_str().unwrap_or_default().to_string();
    let mut ids = Vec::new();
    for zone in ["zone-paris", "zone-lyon"] {
        let z = p.zone_id(dev, zone).await?;
        let id = dev.deploy(&format!("{name}_{}", &zone[5..]), &app, &z).await?;
        dev.wait_ready(&id, Duration::from_secs(60)).await?;
        ids.push(id);
    }
    Ok((app, ids[0].clone(), ids[1].clone()))
}

async fn next_event(events: &mut (impl futures::Stream<Item = Result<UniEvent, op_device::DeviceError>> + Unpin), within: Duration) -> anyhow::Result<UniEvent> {
    match tokio::time::timeout(within, events.next()).await {
        Ok(Some(Ok(e))) => Ok(e),
        other => anyhow::bail!("no event: {other:?}"),
    }
}

/// The relocations of `app`, oldest first.
async fn relocations(dev: &Api, app: &str) -> anyhow::Result<Vec<Value>> {
    let (s, all) = dev.get("/op/v1/relocations").await?;
    anyhow::ensure!(s == 200, "{all}");
    let mut v: Vec<Value> = all.as_array().into_iter().flatten().filter(|r| r["spec"]["appId"] == app).cloned().collect();
    v.reverse();
    Ok(v)
}

/// Waits until the newest relocation of `app` reaches `phase`.
async fn relocation_in(dev: &Api, app: &str, phase: &str, within: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(r) = relocations(dev, app).await?.pop().filter(|r| r["observed"]["phase"] == phase) {
            return Ok(r);
        }
        anyhow::ensure!(Instant::now() < deadline, "no relocation of {app} in phase {phase}: {:?}", relocations(dev, app).await?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(host: &str, port: u16) -> anyhow::Result<u64> {
    let v: Value = reqwest::get(format!("http://{host}:{port}/count?device={EVE_IP}")).await?.error_for_status()?.json().await?;
    v["count"].as_u64().ok_or_else(|| anyhow::anyhow!("no count in {v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn stateless_app_moves_without_notice_and_traffic_follows() -> anyhow::Result<()> {
    let (net, p, _admin) = uni_lab(&[]).await?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = p.developer("move_games", "mona", "Manager").await?;
    let (app, in_paris, in_lyon) = app_in_both_zones(&p, &dev, &key.public_key_pem(), "runner", "localhost/op-sample-app:latest", "moveWithoutNotice", json!({})).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let uni = DeviceClient::new(&p.url);
    let reg = uni.register(&register("runner", &app_token(&key.serialize_pem(), "eve"))).await?;
    assert_eq!(reg.endpoint.app_instance_id.to_string(), in_paris);
    let mut events = Box::pin(uni.watch(&reg.session_id, &reg.session_token).await?);
    net.move_device(EVE, "20801000000201").await?;
    match next_event(&mut events, Duration::from_secs(10)).await? {
        UniEvent::EdgeChanged { app_instance_id, .. } => assert_eq!(app_instance_id.to_string(), in_lyon),
        e => panic!("{e:?}"),
    }
    let r = relocation_in(&dev, &app, "completed", Duration::from_secs(10)).await?;
    assert_eq!(r["spec"]["fromInstance"], in_paris.as_str());
    assert_eq!(r["spec"]["withNotice"], false);
    assert_eq!(r["spec"]["deviceAddress"], EVE_IP);
    assert!(r["spec"]["decisionMs"].as_f64().is_some_and(|d| d < 1000.0), "{r}");
    let text = r["observed"]["timeline"].to_string();
    assert!(text.contains("traffic steered to dnai-lyon"), "{text}");
    // The network agrees: the device's traffic breaks out in Lyon.
    let d: Value = reqwest::get(format!("{}/emulator/v1/devices/eve", net.url)).await?.json().await?;
    assert_eq!(d["trafficDnai"], "dnai-lyon", "{d}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stateful_app_moves_its_state_with_prior_notice() -> anyhow::Result<()> {
    let (net, p, _admin) = uni_lab(&[]).await?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = p.developer("move_games", "mona", "Manager").await?;
    let (app, in_paris, in_lyon) = app_in_both_zones(&p, &dev, &key.public_key_pem(), "counter", "localhost/op-counter:latest", "moveWithPriorNotice", json!({})).await?;
    let (refusing, refusing_paris, _) =
        app_in_both_zones(&p, &dev, &key.public_key_pem(), "stubborn", "localhost/op-counter:latest", "moveWithPriorNotice", json!({"OP_COUNTER_REFUSE": "1"})).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let uni = DeviceClient::new(&p.url);
    let token = app_token(&key.serialize_pem(), "eve");
    let reg = uni.register(&register("counter", &token)).await?;
    assert_eq!(reg.endpoint.app_instance_id.to_string(), in_paris);
    let (host, port) = (reg.endpoint.host.clone(), reg.endpoint.port);
    for n in 1..=3 {
        assert_eq!(count(&host, port).await?, n);
    }
    let stubborn = uni.register(&register("stubborn", &token)).await?;
    assert_eq!(stubborn.endpoint.app_instance_id.to_string(), refusing_paris);
    assert_eq!(count(&stubborn.endpoint.host, stubborn.endpoint.port).await?, 1);
    // The apps register the device with the mobility service as they see it.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut events = Box::pin(uni.watch(&reg.session_id, &reg.session_token).await?);
    let mut refused_events = Box::pin(uni.watch(&stubborn.session_id, &stubborn.session_token).await?);
    net.move_device(EVE, "20801000000201").await?;
    let (new_host, new_port) = match next_event(&mut events, Duration::from_secs(30)).await.map_err(|e| anyhow::anyhow!("{e}\n{}", p.log()))? {
        UniEvent::EdgeChanged { app_instance_id, host, port, .. } => {
            assert_eq!(app_instance_id.to_string(), in_lyon);
            (host, port)
        }
        e => panic!("{e:?}"),
    };
    assert_eq!(count(&new_host, new_port).await?, 4, "the device's state moved with it");
    let r = relocation_in(&dev, &app, "completed", Duration::from_secs(10)).await?;
    let phases: Vec<&str> = r["observed"]["timeline"].as_array().into_iter().flatten().filter_map(|s| s["phase"].as_str()).collect();
    assert_eq!(phases, ["decided", "appNotified", "completed"], "{r}");
    assert_eq!(r["spec"]["withNotice"], true);

    // The app that refuses keeps its device, which is told.
    match next_event(&mut refused_events, Duration::from_secs(30)).await? {
        UniEvent::RelocationCancelled { reason } => assert!(reason.contains("refused"), "{reason}"),
        e => panic!("{e:?}"),
    }
    let r = relocation_in(&dev, &refusing, "cancelled", Duration::from_secs(10)).await?;
    assert!(r["observed"]["timeline"].to_string().contains("APP_MOBILITY_NOT_ALLOWED"), "{r}");
    assert_eq!(count(&stubborn.endpoint.host, stubborn.endpoint.port).await?, 2, "still served where it was");

    // The device gets a new address: the app serving it is told and keeps its count under it.
    let r = reqwest::Client::new().post(format!("{}/emulator/v1/devices/eve/ip", net.url)).json(&json!({"ipv4Address": "10.45.1.5"})).send().await?;
    assert!(r.status().is_success());
    let peek = format!("http://{new_host}:{new_port}/peek?device=10.45.1.5");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: Value = reqwest::get(&peek).await?.json().await.unwrap_or_default();
        if v["count"] == 4 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the count did not follow the new address: {v}\n{}", p.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // opctl shows the timeline.
    let id = relocations(&dev, &app).await?.pop().and_then(|r| r["metadata"]["uid"].as_str().map(str::to_string)).unwrap_or_default();
    let out = p.opctl_as(&dev, &["relocation", "get", &id])?;
    assert!(out.contains("appNotified") || out.contains("AppNotified"), "{out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn app_reports_move_the_device_and_over_reporting_is_throttled() -> anyhow::Result<()> {
    let (_net, p, _admin) = uni_lab(&[]).await?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = p.developer("move_games", "mona", "Manager").await?;
    let (app, in_paris, in_lyon) = app_in_both_zones(&p, &dev, &key.public_key_pem(), "viewer", "localhost/op-sample-app:latest", "moveWithoutNotice", json!({})).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let uni = DeviceClient::new(&p.url);
    let reg = uni.register(&register("viewer", &app_token(&key.serialize_pem(), "eve"))).await?;
    assert_eq!(reg.endpoint.app_instance_id.to_string(), in_paris);
    let mut events = Box::pin(uni.watch(&reg.session_id, &reg.session_token).await?);
    let token = instance_token(&p, &in_paris)?;
    let report = json!({"associateId": {"type": "UE_IPv4_ADDRESS", "value": EVE_IP}, "kind": "qoe", "detail": "video stalls"});
    let post = |body: Value, token: String| {
        let url = format!("{}/op/v1/mobility/reports", p.url);
        async move {
            let r = reqwest::Client::new().post(url).bearer_auth(token).json(&body).send().await?;
            let status = r.status().as_u16();
            anyhow::Ok((status, r.json::<Value>().await.unwrap_or_default()))
        }
    };
    let (s, b) = post(report.clone(), token.clone()).await?;
    assert_eq!((s, b["sessions"].as_u64()), (202, Some(1)), "{b}");
    match next_event(&mut events, Duration::from_secs(10)).await? {
        UniEvent::EdgeChanged { app_instance_id, reason, .. } => {
            assert_eq!(app_instance_id.to_string(), in_lyon);
            assert_eq!(reason, op_types::uni::ChangeReason::QosUnmet);
        }
        e => panic!("{e:?}"),
    }
    let (s, b) = post(report.clone(), token.clone()).await?;
    assert_eq!(s, 429, "{b}");
    assert!(b["message"].as_str().is_some_and(|m| m.contains("throttled")), "{b}");
    let (s, _) = post(report.clone(), "opi.garbage".into()).await?;
    assert_eq!(s, 401);
    let (s, b) = post(json!({"associateId": {"type": "UE_IPv4_ADDRESS", "value": "not-an-ip"}, "kind": "qos"}), instance_token(&p, &in_lyon)?).await?;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().is_some_and(|m| m.contains("associateId.value")), "{b}");
    let r = relocation_in(&dev, &app, "completed", Duration::from_secs(10)).await?;
    assert_eq!(r["spec"]["reason"], "qosUnmet");
    Ok(())
}

/// A local receiver of MEC 021 notifications; returns its URL and what it receives.
async fn receiver() -> anyhow::Result<(String, tokio::sync::mpsc::UnboundedReceiver<Value>)> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/notify", l.local_addr()?);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route("/notify", axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(v);
            axum::http::StatusCode::NO_CONTENT
        }
    }));
    tokio::spawn(async move { axum::serve(l, app).await });
    Ok((url, rx))
}

/// Waits for a notification of `kind`.
async fn notification(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>, kind: &str, within: Duration) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(v)) if v["notificationType"] == kind => return Ok(v),
            Ok(Some(_)) => continue,
            _ => anyhow::bail!("no {kind} within {within:?}"),
        }
    }
}

/// A dynamically instantiated app follows its device: an instance starts where the device went,
/// the device is moved to it, the instance left behind is released; the app hears of the
/// device's new address.
#[tokio::test(flavor = "multi_thread")]
async fn dynamic_app_follows_its_device_and_releases_the_origin() -> anyhow::Result<()> {
    let (net, p, _admin) = uni_lab(&["--scale-every-ms", "200", "--scale-in-after-secs", "1"]).await?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = p.developer("move_games", "mona", "Manager").await?;
    let mut m = sample_manifest("move_games", "roamer");
    m["deviceAuth"] = json!({"publicKeyPem": key.public_key_pem()});
    m["requirements"] = json!({"instantiation": "dynamic"});
    let (s, b) = dev.post(&format!("{CAMARA}/apps"), &m).await?;
    anyhow::ensure!(s == 201, "{b}");
    let app = b["appId"].as_str().unwrap_or_default().to_string();
    let uni = DeviceClient::new(&p.url);
    let reg = uni.register(&register("roamer", &app_token(&key.serialize_pem(), "eve"))).await?;
    let paris = p.zone_id(&dev, "zone-paris").await?;
    let lyon = p.zone_id(&dev, "zone-lyon").await?;
    assert_eq!(reg.endpoint.edge_cloud_zone_id.to_string(), paris, "started where the device is");
    let origin = reg.endpoint.app_instance_id.to_string();
    let mut events = Box::pin(uni.watch(&reg.session_id, &reg.session_token).await?);

    net.move_device(EVE, "20801000000202").await?;
    let to = match next_event(&mut events, Duration::from_secs(60)).await.map_err(|e| anyhow::anyhow!("{e}\n{}", p.log()))? {
        UniEvent::EdgeChanged { app_instance_id, edge_cloud_zone_id, .. } => {
            assert_eq!(edge_cloud_zone_id.to_string(), lyon, "an instance started in Lyon for the device");
            app_instance_id.to_string()
        }
        e => panic!("{e:?}"),
    };
    dev.wait_gone(&origin, Duration::from_secs(30)).await.map_err(|e| anyhow::anyhow!("the Paris instance is released once unused: {e}"))?;
    assert!(dev.instance(&to).await?.is_some(), "the one in use stays");

    // The app serving the device hears of its new address.
    let (url, mut rx) = receiver().await?;
    let (s, e) = dev
        .post("/amsi/v1/subscriptions", &json!({"subscriptionType": "MobilityProcedureSubscription", "callbackReference": url, "filterCriteria": {"appInstanceId": to}}))
        .await?;
    assert_eq!(s, 201, "{e}");
    let r = reqwest::Client::new().post(format!("{}/emulator/v1/devices/eve/ip", net.url)).json(&json!({"ipv4Address": "10.45.1.5"})).send().await?;
    assert!(r.status().is_success());
    let n = notification(&mut rx, "UeIpChangeNotification", Duration::from_secs(10)).await?;
    assert_eq!(n["associateId"][0]["value"], EVE_IP);
    assert_eq!(n["newAssociateId"], json!({"type": "UE_IPv4_ADDRESS", "value": "10.45.1.5"}));
    match next_event(&mut events, Duration::from_secs(5)).await? {
        UniEvent::IpChanged { ip } => assert_eq!(ip, "10.45.1.5"),
        e => panic!("{e:?}"),
    }
    let _ = app;
    Ok(())
}

/// A relocation waiting on its app when the platform is killed is closed at restart, never
/// left open.
#[tokio::test(flavor = "multi_thread")]
async fn relocations_left_open_by_a_crash_are_closed() -> anyhow::Result<()> {
    let (net, mut p, _admin) = uni_lab(&[]).await?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = p.developer("move_games", "mona", "Manager").await?;
    let (app, in_paris, _) = app_in_both_zones(&p, &dev, &key.public_key_pem(), "waiter", "localhost/op-sample-app:latest", "moveWithPriorNotice", json!({})).await?;
    // The app (here, the test with its instance's token) registers the device and subscribes,
    // then never answers.
    let (url, mut rx) = receiver().await?;
    let token = instance_token(&p, &in_paris)?;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/amsi/v1/app_mobility_services", p.url))
        .bearer_auth(&token)
        .json(&json!({"serviceConsumerId": {"appInstanceId": in_paris}, "deviceInformation": [{"associateId": {"type": "UE_IPv4_ADDRESS", "value": EVE_IP}, "appMobilityServiceLevel": "APP_MOBILITY_WITH_CONFIRMATION", "contextTransferState": "NOT_TRANSFERRED"}]}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await?);
    let r = http
        .post(format!("{}/amsi/v1/subscriptions", p.url))
        .bearer_auth(&token)
        .json(&json!({"subscriptionType": "MobilityProcedureSubscription", "callbackReference": url, "filterCriteria": {"appInstanceId": in_paris}}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await?);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let uni = DeviceClient::new(&p.url);
    let reg = uni.register(&register("waiter", &app_token(&key.serialize_pem(), "eve"))).await?;
    assert_eq!(reg.endpoint.app_instance_id.to_string(), in_paris);
    net.move_device(EVE, "20801000000201").await?;
    let n = notification(&mut rx, "MobilityProcedureNotification", Duration::from_secs(10)).await?;
    assert_eq!(n["mobilityStatus"], "INTERHOST_MOVEOUT_TRIGGERED");
    assert_eq!(n["associateId"][0]["value"], EVE_IP);
    assert!(n["targetAppInfo"]["commInterface"]["ipAddresses"].as_array().is_some_and(|a| !a.is_empty()), "{n}");
    relocation_in(&dev, &app, "appNotified", Duration::from_secs(10)).await?;
    p.kill9();
    p.restart().await?;
    let dev = p.api(dev.token.clone());
    let r = relocation_in(&dev, &app, "cancelled", Duration::from_secs(10)).await?;
    assert!(r["observed"]["timeline"].to_string().contains("restarted"), "{r}");
    Ok(())
}

/// Devices can be given an address of their own (`--uni-listen`): the same API, served there
/// by a thread of its own that runs in short turns, so that a discovery never queues behind
/// the NBI's and the controllers' work.
#[tokio::test(flavor = "multi_thread")]
async fn devices_have_an_address_of_their_own() -> anyhow::Result<()> {
    let uni = free_port();
    let p = Platform::start_with(&["--uni-listen", &format!("127.0.0.1:{uni}")]).await?;
    let http = reqwest::Client::new();
    let keys = |base: String| {
        let http = http.clone();
        async move { anyhow::Ok(http.get(format!("{base}/uni/v1/keys")).send().await?.error_for_status()?.text().await?) }
    };
    assert_eq!(keys(format!("http://127.0.0.1:{uni}")).await?, keys(p.url.clone()).await?, "the same UNI at both addresses");
    let r = http.get(format!("http://127.0.0.1:{uni}/edge-application-management/v0.1alpha1/apps")).send().await?;
    assert_eq!(r.status(), 401, "authenticated there as everywhere");
    // Served by the op-uni thread, in 200 µs turns where the kernel has custom slices.
    let pid = p.pid().expect("running");
    let tid = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|t| t.ok())
        .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "op-uni"))
        .expect("an op-uni thread");
    let sched = std::fs::read_to_string(tid.path().join("sched"))?;
    if let Some(slice) = sched.lines().find(|l| l.starts_with("se.slice")) {
        assert_eq!(slice.rsplit(' ').next(), Some("200000"), "{slice}");
    }
    Ok(())
}
