//! The UNI end to end, against the network emulator: a device registers (authenticated by the
//! network and by its app provider's key), gets its nearest edge, reaches the app with a session
//! token the edge verifies alone, moves, and is pushed the new edge. Every bad input gets its
//! standard error.

use std::time::{Duration, Instant};

use futures::StreamExt;
use op_device::{DeviceClient, Resolver};
use op_e2e::Api;
use op_e2e::*;
use op_types::uni::{AppRef, ClaimedLocation, Device, RegisterRequest, UniEvent};
use serde_json::json;

const EVE: &str = "+33612340005"; // starts in Paris, cell 20801000000102

fn register(phone: &str, token: &str, claim: Option<&str>) -> RegisterRequest {
    RegisterRequest {
        device: Device { phone_number: Some(phone.into()), ..Default::default() },
        app: AppRef { provider: "uni_games".into(), name: "arena".into(), version: "1.0".into() },
        app_token: token.into(),
        location: claim.map(|c| ClaimedLocation { cell_id: Some(c.into()), tracking_area: None, latitude: None, longitude: None }),
        max_alternatives: None,
    }
}

/// Revalidates a session on the hot path from `cell`: status and body.
async fn discover(p: &Platform, token: &str, cell: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let r = reqwest::Client::new()
        .post(format!("{}/uni/v1/discover", p.url))
        .bearer_auth(token)
        .json(&json!({"location": {"cellId": cell}}))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or_default()))
}

async fn api_error(r: Result<op_types::uni::Registration, op_device::DeviceError>) -> (u16, String) {
    match r {
        Err(op_device::DeviceError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The emulator on its lab scenario, a platform using it, and two edge zones (Paris, Lyon),
/// each with a cloudlet on this machine's runtime.
async fn lab() -> anyhow::Result<(Netemu, Platform, Api)> {
    lab_with(&[]).await
}

/// [`lab`] with more `opd serve` arguments.
async fn lab_with(extra: &[&str]) -> anyhow::Result<(Netemu, Platform, Api)> {
    uni_lab(extra).await
}

#[tokio::test(flavor = "multi_thread")]
async fn device_discovers_reaches_moves_and_is_told() -> anyhow::Result<()> {
    let (net, p, _admin) = lab().await?;
    // The app provider onboards its app with the key its device clients' tokens are signed with.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = p.developer("uni_games", "una", "Manager").await?;
    let mut manifest = sample_manifest("uni_games", "arena");
    manifest["deviceAuth"] = json!({"publicKeyPem": key.public_key_pem()});
    let (s, b) = dev.post(&format!("{CAMARA}/apps"), &manifest).await?;
    assert_eq!(s, 201, "{b}");
    let app = b["appId"].as_str().unwrap_or_default().to_string();
    let paris = p.zone_id(&dev, "zone-paris").await?;
    let lyon = p.zone_id(&dev, "zone-lyon").await?;
    let in_paris = dev.deploy("arena_paris", &app, &paris).await?;
    let in_lyon = dev.deploy("arena_lyon", &app, &lyon).await?;
    let paris_inst = dev.wait_ready(&in_paris, Duration::from_secs(60)).await?;
    dev.wait_ready(&in_lyon, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await; // the index follows the store by watch

    // The device finds the UNI from MCC/MNC and registers.
    let resolver = Resolver::parse(&format!("uni.mnc001.mcc208.pub.3gppnetwork.org={}", p.url));
    let uni = DeviceClient::discover("208", "01", &resolver).await?;
    let token = app_token(&key.serialize_pem(), "eve");
    let reg = uni.register(&register(EVE, &token, Some("20801000000102"))).await?;
    assert_eq!(reg.endpoint.edge_cloud_zone_id.to_string(), paris, "the nearest edge");
    assert_eq!(reg.endpoint.app_instance_id.to_string(), in_paris);
    assert!(reg.alternatives.iter().any(|a| a.edge_cloud_zone_id.to_string() == lyon));
    assert!(reg.service_area.cells.contains(&"20801000000102".to_string()));
    assert_eq!(reg.revalidate_after_seconds, 300);
    let qos = reg.endpoint.expected_qos.expect("path performance from the network");
    assert!(qos.latency_ms > 0.0);

    // The app answers, and the edge verifies the session token with the key it was given.
    let url = format!("http://{}:{}/", reg.endpoint.host, reg.endpoint.port);
    http_get_ok(&url, Duration::from_secs(5)).await?;
    let edge_key = http_get_ok(&format!("{url}env/OP_UNI_PUBLIC_KEY"), Duration::from_secs(5)).await?;
    let claims = op_uni::token::SessionVerifier::from_public_pem(edge_key.trim())?.verify(&reg.session_token)?;
    assert_eq!(claims.inst.to_string(), in_paris);
    assert_eq!(paris_inst["observed"]["endpoints"][0]["port"], reg.endpoint.port);

    // Probe every offer at its cloudlet's connectivity probe (a container the cloudlet
    // controller runs, not the app), then confirm.
    for o in std::iter::once(&reg.endpoint).chain(&reg.alternatives) {
        let probe_url = o.probe_url.as_deref().expect("every cloudlet runs a probe");
        assert_ne!(probe_url, url.trim_end_matches('/'), "the probe is not the app");
        assert_eq!(http_get_ok(&format!("{probe_url}/echo"), Duration::from_secs(5)).await?.trim(), "ok");
        let m = uni.probe(o).await?;
        assert!(m.rtt < Duration::from_secs(1), "{m:?}");
        assert!(m.download_mbps.is_some_and(|x| x > 1.0), "{m:?}");
    }
    let probe = uni.probe(&reg.endpoint).await?;
    let confirmed = uni.confirm(&reg.session_id, &reg.session_token, reg.endpoint.app_instance_id, Some(probe.rtt)).await?;
    assert!(!confirmed.session_token.is_empty());

    // The probe feeds the QoE view of the zone: the app provider's (per app), the operator's
    // (per zone over all apps); another organization sees none of it.
    let (_, qoe) = dev.get("/op/v1/qoe").await?;
    assert_eq!(qoe.as_array().map(Vec::len), Some(1), "{qoe}");
    assert_eq!((qoe[0]["edgeCloudZoneName"].as_str(), qoe[0]["probes"].as_u64()), (Some("zone-paris"), Some(1)), "{qoe}");
    let measured = probe.rtt.as_secs_f64() * 1000.0;
    assert!((qoe[0]["p50Ms"].as_f64().unwrap_or(-1.0) - measured).abs() < 1e-6, "the device's own measurement: {qoe} vs {measured}");
    assert!(qoe[0]["expectedMeanMs"].as_f64().is_some_and(|x| x > 0.0), "the network's expectation beside it: {qoe}");
    let (s, _) = dev.get("/op/v1/qoe?byZone=true").await?;
    assert_eq!(s, 403, "totals over every app are the operator's");
    let (_, zones) = p.admin().await?.get("/op/v1/qoe?byZone=true").await?;
    assert!(zones.as_array().is_some_and(|z| z.iter().any(|x| x["edgeCloudZoneName"] == "zone-paris" && x["appId"].is_null())), "{zones}");
    let table = p.opctl_as(&dev, &["qoe"])?;
    assert!(table.contains("zone-paris") && table.contains("PROBES"), "{table}");
    let (_, none) = p.developer("uni_bystanders", "bea", "Manager").await?.get("/op/v1/qoe").await?;
    assert_eq!(none, json!([]), "another organization sees no probes of this app");
    let r = reqwest::Client::new()
        .post(format!("{}/uni/v1/sessions/{}/confirm", p.url, reg.session_id))
        .bearer_auth(&reg.session_token)
        .json(&json!({"appInstanceId": reg.endpoint.app_instance_id, "measuredLatencyMs": -5}))
        .send()
        .await?;
    assert_eq!(r.status(), 400, "a negative latency is refused");

    // The device moves to Lyon: the platform pushes the Lyon edge.
    let mut events = Box::pin(uni.watch(&reg.session_id, &confirmed.session_token).await?);
    net.move_device(EVE, "20801000000201").await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let pushed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.next()).await {
            Ok(Some(Ok(UniEvent::EdgeChanged { edge_cloud_zone_id, reason, .. }))) => break (edge_cloud_zone_id, reason),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no edge change pushed: {other:?}\n{}", p.log()),
        }
    };
    assert_eq!(pushed.0.to_string(), lyon);
    assert_eq!(pushed.1, op_types::uni::ChangeReason::BetterEdge);

    // Revalidation from Lyon, on the hot path, with the session token alone.
    let (s, d) = discover(&p, &confirmed.session_token, "20801000000202").await?;
    assert_eq!(s, 200);
    assert_eq!(d["endpoint"]["edgeCloudZoneId"], lyon.as_str());

    // CAMARA discovery APIs agree.
    let (s, z) = dev.post("/simple-edge-discovery/v2/retrieve-closest-edge-cloud-zone", &json!({"device": {"phoneNumber": "+33612340001"}})).await?;
    assert_eq!((s, z["edgeCloudZoneName"].as_str()), (200, Some("zone-paris")));
    let (s, e) = dev.post("/application-endpoint-discovery/v0.1/retrieve-optimal-app-endpoints",
        &json!({"device": {"phoneNumber": "+33612340003"}, "appId": app})).await?;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["applicationEndpoints"][0]["edgeCloudZone"]["edgeCloudZoneName"], "zone-lyon");
    let (s, o) = dev.post("/optimal-edge-discovery/v0.1/retrieve-optimal-edge-cloud-zones",
        &json!({"device": {"phoneNumber": "+33612340001"}, "applicationProfileId": app})).await?;
    assert_eq!(s, 200, "{o}");
    assert_eq!(o["edgeCloudZones"][0]["edgeCloudZoneName"], "zone-paris");

    // Bad input, each with its standard error.
    let alice = |t: &str, claim: Option<&str>| register("+33612340001", t, claim);
    let mut unknown_app = alice(&app_token(&key.serialize_pem(), "a"), None);
    unknown_app.app.version = "9.9".into();
    assert_eq!(api_error(uni.register(&unknown_app).await).await, (404, "NOT_FOUND".into()));
    assert_eq!(
        api_error(uni.register(&register("+33699999999", &token, None)).await).await,
        (404, "IDENTIFIER_NOT_FOUND".into()),
        "a device the network does not know"
    );
    let forged = app_token(&rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?.serialize_pem(), "a");
    assert_eq!(api_error(uni.register(&alice(&forged, None)).await).await, (401, "UNAUTHENTICATED".into()));
    assert_eq!(
        api_error(uni.register(&register("+33612340003", &token, Some("20801000000301"))).await).await,
        (422, "LOCATION_MISMATCH".into()),
        "a claimed cell the network contradicts"
    );
    assert_eq!(
        api_error(uni.register(&register("+33612340004", &token, None)).await).await,
        (422, "SERVICE_NOT_APPLICABLE".into()),
        "Marseille has no edge zone"
    );
    let pem = std::fs::read_to_string(p.data_dir().join("uni-signing.pem"))?;
    let mut old = claims.clone();
    old.exp = old.iat.saturating_sub(1);
    let expired = op_uni::token::SessionSigner::from_private_pem(&pem)?.sign(&old)?;
    assert_eq!(discover(&p, &expired, "20801000000202").await?.0, 401, "an expired session token");
    // Rate limit: this device at 2/s with a burst of 4.
    let mut limited = false;
    for _ in 0..10 {
        let (s, b) = dev.post("/simple-edge-discovery/v2/retrieve-closest-edge-cloud-zone", &json!({"device": {"phoneNumber": "+33612340002"}})).await?;
        if s == 429 {
            assert_eq!(b["code"], "TOO_MANY_REQUESTS");
            limited = true;
            break;
        }
    }
    assert!(limited, "a device asking in a loop is limited");
    let (s, b) = dev.post("/simple-edge-discovery/v2/retrieve-closest-edge-cloud-zone", &json!({"device": {}})).await?;
    assert_eq!((s, b["code"].as_str()), (422, Some("MISSING_IDENTIFIER")));

    for id in [&in_paris, &in_lyon] {
        dev.delete(&format!("{CAMARA}/appinstances/{id}")).await?;
    }
    for id in [&in_paris, &in_lyon] {
        dev.wait_gone(id, Duration::from_secs(30)).await?;
    }
    Ok(())
}

/// Waits for the next `edgeChanged` on a session's stream.
async fn next_edge_change(
    events: &mut (impl futures::Stream<Item = Result<UniEvent, op_device::DeviceError>> + Unpin),
    within: Duration,
) -> anyhow::Result<(op_types::Uid, op_types::Uid)> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.next()).await {
            Ok(Some(Ok(UniEvent::EdgeChanged { app_instance_id, edge_cloud_zone_id, .. }))) => return Ok((app_instance_id, edge_cloud_zone_id)),
            Ok(Some(Ok(_))) => continue,
            other => anyhow::bail!("no edge change pushed: {other:?}"),
        }
    }
}

/// Dynamic instantiation: an app whose provider lets the platform start instances where its
/// devices are. A device far from every instance gets the best existing one at once and an
/// instance starting in its own zone (asked once however many devices register), then is
/// pushed to it when it is ready; a device of an app with no instance anywhere waits for one.
#[tokio::test(flavor = "multi_thread")]
async fn dynamic_app_is_started_where_its_devices_are() -> anyhow::Result<()> {
    let (_net, p, _admin) = lab().await?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = p.developer("uni_games", "una", "Manager").await?;
    let mut ids = Vec::new();
    for name in ["arena", "arena_zero"] {
        let mut manifest = sample_manifest("uni_games", name);
        manifest["deviceAuth"] = json!({"publicKeyPem": key.public_key_pem()});
        manifest["requirements"] = json!({"instantiation": "dynamic"});
        let (s, b) = dev.post(&format!("{CAMARA}/apps"), &manifest).await?;
        assert_eq!(s, 201, "{b}");
        ids.push(b["appId"].as_str().unwrap_or_default().to_string());
    }
    let paris = p.zone_id(&dev, "zone-paris").await?;
    let lyon = p.zone_id(&dev, "zone-lyon").await?;
    let in_lyon = dev.deploy("arena_lyon", &ids[0], &lyon).await?;
    dev.wait_ready(&in_lyon, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let uni = op_device::DeviceClient::new(&p.url);
    let token = app_token(&key.serialize_pem(), "eve");
    let reg = uni.register(&register(EVE, &token, None)).await?;
    assert_eq!(reg.endpoint.app_instance_id.to_string(), in_lyon, "served at once by the only instance");
    let starting = reg.starting.clone().expect("an instance starts in the device's zone");
    assert_eq!(starting.edge_cloud_zone_id.to_string(), paris);
    // Another device in Paris (identified by its GPSI): the same instance, not a second one.
    let mut by_gpsi = register("+33612340001", &token, None);
    by_gpsi.device = Device { gpsi: Some("msisdn-33612340001".into()), ..Default::default() };
    let other = uni.register(&by_gpsi).await?;
    assert_eq!(other.starting.map(|s| s.app_instance_id), Some(starting.app_instance_id));
    let (_, list) = dev.get(&format!("{CAMARA}/appinstances?appId={}", ids[0])).await?;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");

    // When it is ready, the device is told to move to it.
    let mut events = Box::pin(uni.watch(&reg.session_id, &reg.session_token).await?);
    let (inst, zone) = next_edge_change(&mut events, Duration::from_secs(60)).await.map_err(|e| anyhow::anyhow!("{e}\n{}", p.log()))?;
    assert_eq!((inst, zone.to_string()), (starting.app_instance_id, paris.clone()));

    // A GPSI that is neither form, or that contradicts the phone number, is refused by name.
    for (gpsi, phone) in [("imsi-208010000000001", None), ("msisdn-33612340009", Some("+33612340001"))] {
        let mut bad = register("+33612340001", &token, None);
        bad.device = Device { gpsi: Some(gpsi.into()), phone_number: phone.map(Into::into), ..Default::default() };
        match uni.register(&bad).await {
            Err(op_device::DeviceError::Api { status: 400, message, .. }) => assert!(message.contains("device.gpsi"), "{message}"),
            other => panic!("{gpsi}: {other:?}"),
        }
    }

    // No instance anywhere: the registration waits for the one it starts.
    let mut zero = register(EVE, &token, None);
    zero.app.name = "arena_zero".into();
    let reg = uni.register(&zero).await?;
    assert_eq!(reg.endpoint.edge_cloud_zone_id.to_string(), paris);
    assert!(reg.starting.is_none(), "the answer is the started instance itself");
    http_get_ok(&format!("http://{}:{}/", reg.endpoint.host, reg.endpoint.port), Duration::from_secs(5)).await?;

    for app in &ids {
        let (_, list) = dev.get(&format!("{CAMARA}/appinstances?appId={app}")).await?;
        for i in list.as_array().into_iter().flatten() {
            let id = i["appInstanceId"].as_str().unwrap_or_default();
            dev.delete(&format!("{CAMARA}/appinstances/{id}")).await?;
            dev.wait_gone(id, Duration::from_secs(30)).await?;
        }
    }
    Ok(())
}

/// Every cloudlet runs a connectivity probe (not the app): it answers echo and download, its
/// endpoint is in the cloudlet's observed state, and it goes when its cloudlet goes.
#[tokio::test(flavor = "multi_thread")]
async fn every_cloudlet_runs_a_probe_that_goes_with_it() -> anyhow::Result<()> {
    let (_net, p, admin) = lab().await?;
    let probe_of = |name: &'static str| {
        let admin = admin.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (_, cl) = admin.get(&format!("/op/v1/cloudlets/{name}")).await?;
                if let (Some(h), Some(port)) = (cl["observed"]["probe"]["host"].as_str(), cl["observed"]["probe"]["port"].as_u64()) {
                    return anyhow::Ok(format!("http://{h}:{port}"));
                }
                anyhow::ensure!(Instant::now() < deadline, "no probe on {name}: {cl}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let paris = probe_of("zone-paris-1").await?;
    let lyon = probe_of("zone-lyon-1").await?;
    assert_ne!(paris, lyon, "one probe per cloudlet");
    assert_eq!(http_get_ok(&format!("{paris}/echo"), Duration::from_secs(5)).await?.trim(), "ok");
    let body = reqwest::get(format!("{paris}/download?bytes=100000")).await?.bytes().await?;
    assert_eq!(body.len(), 100_000);
    assert_eq!(reqwest::get(format!("{paris}/download?bytes=lots")).await?.status(), 400);
    let up = reqwest::Client::new().post(format!("{paris}/upload")).body(vec![7u8; 5000]).send().await?.text().await?;
    assert_eq!(up.trim(), "5000");
    // Developers never see cloudlets, so never their probes' addresses.
    let dev = p.developer("uni_games", "una", "Manager").await?;
    let (s, _) = dev.get("/op/v1/cloudlets/zone-paris-1").await?;
    assert_eq!(s, 404);

    assert_eq!(probes_of_platform(&p.data_dir()).await?.len(), 3, "local-docker, zone-paris-1, zone-lyon-1");
    let (s, b) = admin.delete("/op/v1/cloudlets/zone-lyon-1").await?;
    assert_eq!(s, 204, "{b}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get_ok(&format!("{lyon}/echo"), Duration::from_millis(100)).await.is_ok() {
        anyhow::ensure!(Instant::now() < deadline, "the deleted cloudlet's probe still answers");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Stopped first, then removed: the container goes a moment after its probe stops answering.
    while probes_of_platform(&p.data_dir()).await?.len() != 2 {
        anyhow::ensure!(Instant::now() < deadline, "the deleted cloudlet's probe container is still there");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Capacity-based instantiation: one instance per user here. Three phones in Paris register
/// (the first waits for the instance its registration starts); the scaler brings the app to
/// three instances in Paris; two phones end their sessions and the two idle instances go.
#[tokio::test(flavor = "multi_thread")]
async fn capacity_based_app_scales_with_its_users() -> anyhow::Result<()> {
    let (_net, p, _admin) = lab_with(&["--scale-every-ms", "200", "--scale-in-after-secs", "1"]).await?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = p.developer("uni_games", "una", "Manager").await?;
    let mut manifest = sample_manifest("uni_games", "arena");
    manifest["deviceAuth"] = json!({"publicKeyPem": key.public_key_pem()});
    manifest["requirements"] = json!({"instantiation": "capacityBased", "usersPerInstance": 1});
    let (s, b) = dev.post(&format!("{CAMARA}/apps"), &manifest).await?;
    assert_eq!(s, 201, "{b}");
    let app = b["appId"].as_str().unwrap_or_default().to_string();
    let paris = p.zone_id(&dev, "zone-paris").await?;
    let count = |ready_only: bool| {
        let (dev, app, paris) = (dev.clone(), app.clone(), paris.clone());
        async move {
            let (_, list) = dev.get(&format!("{CAMARA}/appinstances?appId={app}")).await?;
            let all = list.as_array().cloned().unwrap_or_default();
            anyhow::ensure!(all.iter().all(|i| i["edgeCloudZoneId"] == paris.as_str()), "instances where the users are: {list}");
            anyhow::Ok(all.iter().filter(|i| !ready_only || i["status"] == "ready").count())
        }
    };
    let wait_for = |n: usize| {
        async move {
            let deadline = Instant::now() + Duration::from_secs(45);
            loop {
                let have = count(true).await?;
                if have == n && count(false).await? == n {
                    return anyhow::Ok(());
                }
                anyhow::ensure!(Instant::now() < deadline, "{have} ready instances, waiting for {n}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    let uni = op_device::DeviceClient::new(&p.url);
    let token = app_token(&key.serialize_pem(), "user");
    let mut regs = Vec::new();
    for phone in ["+33612340001", "+33612340002", EVE] {
        let reg = uni.register(&register(phone, &token, None)).await.map_err(|e| anyhow::anyhow!("{phone}: {e}\n{}", p.log()))?;
        assert_eq!(reg.endpoint.edge_cloud_zone_id.to_string(), paris);
        regs.push(reg);
    }
    wait_for(3).await.map_err(|e| anyhow::anyhow!("{e}\n{}", p.log()))?;

    // Two users leave: their sessions end, and after the grace period two instances go.
    let http = reqwest::Client::new();
    for r in &regs[1..] {
        let resp = http.delete(format!("{}/uni/v1/sessions/{}", p.url, r.session_id)).bearer_auth(&r.session_token).send().await?;
        assert_eq!(resp.status(), 204);
    }
    let again = http.delete(format!("{}/uni/v1/sessions/{}", p.url, regs[1].session_id)).bearer_auth(&regs[1].session_token).send().await?;
    assert_eq!(again.status(), 404, "a session ends once");
    let foreign = http.delete(format!("{}/uni/v1/sessions/{}", p.url, regs[0].session_id)).bearer_auth(&regs[2].session_token).send().await?;
    assert_eq!(foreign.status(), 403, "a token ends its own session only");
    wait_for(1).await.map_err(|e| anyhow::anyhow!("{e}\n{}", p.log()))?;
    // The one left is the one the remaining user is on.
    let (_, list) = dev.get(&format!("{CAMARA}/appinstances?appId={app}")).await?;
    assert_eq!(list[0]["appInstanceId"], regs[0].endpoint.app_instance_id.to_string().as_str());
    let id = regs[0].endpoint.app_instance_id.to_string();
    dev.delete(&format!("{CAMARA}/appinstances/{id}")).await?;
    Ok(())
}

/// When no edge meets an app's QoS bounds for a device, the app's `onUnmet` policy decides:
/// reject (422 naming the bound), best effort (served, flagged, with the expected QoS), or the
/// provider's cloud endpoint (served as the offer).
#[tokio::test(flavor = "multi_thread")]
async fn unmet_qos_follows_the_apps_policy() -> anyhow::Result<()> {
    let (_net, p, _admin) = lab().await?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = p.developer("uni_games", "una", "Manager").await?;
    let paris = p.zone_id(&dev, "zone-paris").await?;
    let mut ids = Vec::new();
    for (name, policy) in [("strict", json!({"onUnmet": "reject"})), ("lenient", json!({})),
        ("clouded", json!({"onUnmet": "fallbackToCloud", "fallbackEndpoint": "https://cloud.example/arena"}))] {
        let mut manifest = sample_manifest("uni_games", name);
        manifest["deviceAuth"] = json!({"publicKeyPem": key.public_key_pem()});
        let mut req = policy;
        req["maxLatencyMs"] = json!(0.5); // below every path of the lab network
        manifest["requirements"] = req;
        let (s, b) = dev.post(&format!("{CAMARA}/apps"), &manifest).await?;
        assert_eq!(s, 201, "{b}");
        let app = b["appId"].as_str().unwrap_or_default().to_string();
        ids.push(dev.deploy(&format!("{name}_paris"), &app, &paris).await?);
    }
    for id in &ids {
        dev.wait_ready(id, Duration::from_secs(60)).await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let uni = op_device::DeviceClient::new(&p.url);
    let token = app_token(&key.serialize_pem(), "u");
    let as_app = |phone: &str, name: &str| {
        let mut r = register(phone, &token, None);
        r.app.name = name.into();
        r
    };
    match uni.register(&as_app("+33612340001", "strict")).await {
        Err(op_device::DeviceError::Api { status: 422, code, message }) => {
            assert_eq!(code, "SERVICE_NOT_APPLICABLE");
            assert!(message.contains("requirements.maxLatencyMs"), "{message}");
        }
        other => panic!("reject: {other:?}"),
    }
    let reg = uni.register(&as_app("+33612340002", "lenient")).await?;
    assert!(reg.best_effort, "served all the same, and told so");
    assert_eq!(reg.endpoint.edge_cloud_zone_id.to_string(), paris);
    assert!(reg.endpoint.expected_qos.is_some_and(|q| q.latency_ms > 0.5));
    let reg = uni.register(&as_app(EVE, "clouded")).await?;
    assert!(reg.cloud_fallback, "{reg:?}");
    assert_eq!((reg.endpoint.host.as_str(), reg.endpoint.port, reg.endpoint.edge_cloud_zone_name.as_str()), ("cloud.example", 443, "cloud"));
    assert_eq!(reg.endpoint.app_instance_id, op_types::Uid::nil());

    // An app with no edge instance at all: its devices go to its cloud, on registration and on
    // revalidation.
    let mut manifest = sample_manifest("uni_games", "cloudonly");
    manifest["deviceAuth"] = json!({"publicKeyPem": key.public_key_pem()});
    manifest["requirements"] = json!({"onUnmet": "fallbackToCloud", "fallbackEndpoint": "http://cloud.example:8443/x"});
    assert_eq!(dev.post(&format!("{CAMARA}/apps"), &manifest).await?.0, 201);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reg = uni.register(&as_app("+33612340001", "cloudonly")).await?;
    assert!(reg.cloud_fallback);
    assert_eq!((reg.endpoint.host.as_str(), reg.endpoint.port), ("cloud.example", 8443));
    let (s, d) = discover(&p, &reg.session_token, "20801000000101").await?;
    assert_eq!(s, 200);
    assert_eq!((d["endpoint"]["host"].as_str(), d["endpoint"]["port"].as_u64()), (Some("cloud.example"), Some(8443)));
    for id in &ids {
        dev.delete(&format!("{CAMARA}/appinstances/{id}")).await?;
    }
    Ok(())
}

/// POSTs to the emulator's admin API.
async fn emulate(net: &Netemu, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
    let r = reqwest::Client::new().post(format!("{}/emulator/v1{path}", net.url)).json(&body).send().await?;
    anyhow::ensure!(r.status().is_success(), "{path}: {} {}", r.status(), r.text().await.unwrap_or_default());
    Ok(())
}

/// Polls `f` until it returns Some, or fails after `secs`.
async fn eventually<T, F: std::future::Future<Output = anyhow::Result<Option<T>>>>(secs: u64, what: &str, mut f: impl FnMut() -> F) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The network's view (paths from cells to zones, cell loads) drives the hot path's QoS checks,
/// the minimum cover and the network-load criterion; the provider's telemetry reports what it
/// asked for, pulled and pushed.
#[tokio::test(flavor = "multi_thread")]
async fn network_view_qos_cover_load_and_telemetry() -> anyhow::Result<()> {
    let (net, p, _admin) = lab_with(&["--network-refresh-ms", "200"]).await?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = p.developer("uni_games", "una", "Manager").await?;
    // A webhook the provider runs.
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/telemetry", hook.local_addr()?);
    let (tx, mut pushed) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    tokio::spawn(async move {
        let app = axum::Router::new().route("/telemetry", axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v);
                axum::http::StatusCode::NO_CONTENT
            }
        }));
        axum::serve(hook, app).await
    });
    let mut manifest = sample_manifest("uni_games", "arena");
    manifest["deviceAuth"] = json!({"publicKeyPem": key.public_key_pem()});
    let paris = p.zone_id(&dev, "zone-paris").await?;
    let lyon = p.zone_id(&dev, "zone-lyon").await?;
    manifest["requirements"] = json!({"maxLatencyMs": 10.0, "footprint": {"zones": [paris, lyon]},
        "telemetry": {"kinds": ["instances", "sessions", "qos"], "webhook": hook_url, "intervalSeconds": 10}});
    let (s, b) = dev.post(&format!("{CAMARA}/apps"), &manifest).await?;
    assert_eq!(s, 201, "{b}");
    let app = b["appId"].as_str().unwrap_or_default().to_string();

    // Minimum cover on the network's latencies: from Paris cells Lyon is 12 ms away, beyond the
    // 10 ms bound (the distance model would say 4.9 ms and cover everything from one zone).
    let plan = eventually(10, "the network's view of the paths", || async {
        let (s, plan) = dev.post(&format!("/op/v1/apps/{app}/placements"), &json!({"strategy": "minimumCover"})).await?;
        assert_eq!(s, 202, "{plan}");
        Ok((plan["latencies"]["modelled"] == 0).then_some(plan))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", p.log()))?;
    assert_eq!(plan["zones"].as_array().map(Vec::len), Some(2), "{plan}");
    assert_eq!(plan["latencies"], json!({"network": 14, "modelled": 0}), "7 cells x 2 zones, all from the network");
    for z in plan["zones"].as_array().into_iter().flatten() {
        dev.wait_ready(z["appInstanceId"].as_str().unwrap_or_default(), Duration::from_secs(60)).await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Registration and the hot path check the bound on the view: from Paris, Lyon (12 ms) is
    // no alternative, and every offer carries the network's expected QoS.
    let uni = DeviceClient::new(&p.url);
    let token = app_token(&key.serialize_pem(), "eve");
    let reg = uni.register(&register(EVE, &token, None)).await?;
    assert_eq!(reg.endpoint.edge_cloud_zone_id.to_string(), paris);
    assert!(reg.alternatives.is_empty(), "lyon exceeds the bound: {:?}", reg.alternatives);
    let (s, d) = discover(&p, &reg.session_token, "20801000000104").await?;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["endpoint"]["edgeCloudZoneId"], paris.as_str());
    assert_eq!(d["endpoint"]["expectedQos"]["latencyMs"], 8.0, "Montparnasse's longer fronthaul, from the view");
    assert_eq!(d["alternatives"], json!([]), "{d}");
    let (s, d) = discover(&p, &reg.session_token, "20801000000202").await?;
    assert_eq!((s, d["endpoint"]["edgeCloudZoneId"].as_str()), (200, Some(lyon.as_str())));
    assert_eq!(d["endpoint"]["expectedQos"]["latencyMs"], 4.0);
    uni.register(&register("+33612340001", &app_token(&key.serialize_pem(), "alice"), None)).await?;

    // Telemetry, pulled: what was asked for, by zone, no cloudlet.
    let (s, t) = dev.get(&format!("/op/v1/apps/{app}/telemetry")).await?;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["instances"].as_array().map(Vec::len), Some(2), "{t}");
    assert!(t["instances"].as_array().into_iter().flatten().all(|i| i["ready"] == true));
    assert_eq!(t["sessions"], json!([{"edgeCloudZoneName": "zone-paris", "sessions": 2, "devices": 2}]), "{t}");
    assert_eq!(t["qos"][0]["measuredSessions"], 2, "{t}");
    assert_eq!(t["qos"][0]["maxLatencyMs"], 5.0, "both devices in Paris cells on the 5 ms path: {t}");
    assert!(!t.to_string().contains("zone-paris-1"), "no cloudlet name in telemetry");
    // ... and pushed to the webhook.
    let got = tokio::time::timeout(Duration::from_secs(15), pushed.recv()).await?.expect("a pushed report");
    assert_eq!(got["appId"], app.as_str());
    assert!(got["instances"].is_array() && got["sessions"].is_array(), "{got}");
    let t = eventually(5, "the delivery to be recorded", || async {
        let (_, t) = dev.get(&format!("/op/v1/apps/{app}/telemetry")).await?;
        Ok((t["lastDelivery"]["delivered"] == true).then_some(t))
    })
    .await?;
    assert_eq!(t["lastDelivery"]["outcome"], "HTTP 204");
    // Only what was asked for; nothing for an app that asked for nothing; nothing for others.
    let mut only = sample_manifest("uni_games", "quiet");
    only["requirements"] = json!({"telemetry": {"kinds": ["instances"]}});
    let (_, b) = dev.post(&format!("{CAMARA}/apps"), &only).await?;
    let (s, t) = dev.get(&format!("/op/v1/apps/{}/telemetry", b["appId"].as_str().unwrap_or_default())).await?;
    assert_eq!(s, 200);
    assert!(t.get("sessions").is_none() && t.get("qos").is_none() && t["instances"] == json!([]), "{t}");
    let (_, b) = dev.post(&format!("{CAMARA}/apps"), &sample_manifest("uni_games", "mute")).await?;
    let (s, e) = dev.get(&format!("/op/v1/apps/{}/telemetry", b["appId"].as_str().unwrap_or_default())).await?;
    assert_eq!((s, e["message"].as_str().is_some_and(|m| m.contains("requirements.telemetry"))), (400, true), "{e}");
    let other = p.developer("other_games", "otto", "Manager").await?;
    assert_eq!(other.get(&format!("/op/v1/apps/{app}/telemetry")).await?.0, 404, "another organization's app");
    let mut bad = sample_manifest("uni_games", "badtel");
    bad["requirements"] = json!({"telemetry": {"kinds": [], "intervalSeconds": 1}});
    let (s, e) = dev.post(&format!("{CAMARA}/apps"), &bad).await?;
    assert_eq!(s, 400);
    assert!(e["message"].as_str().is_some_and(|m| m.contains("telemetry.kinds")), "{e}");

    // Network load: Lyon's cells fill up; the next deployment there explains the cost.
    for cell in LYON_CELLS {
        emulate(&net, &format!("/cells/{cell}/load"), json!({"backgroundUes": 80})).await?;
    }
    // Admission reads the view as it is refreshed: deploy once it shows, and read why.
    let mut inst = String::new();
    for n in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let id = dev.deploy(&format!("arena_lyon_{n}"), &app, &lyon).await?;
        inst = dev.instance(&id).await?.map(|i| i["observed"]["placement"].to_string()).unwrap_or_default();
        dev.delete(&format!("{CAMARA}/appinstances/{id}")).await?;
        if inst.contains("network load 0.40") {
            break;
        }
    }
    assert!(inst.contains("network load 0.40"), "Lyon's cells at 80 % of their capacity, weighted 0.5: {inst}");
    Ok(())
}

/// A device client that waits out its rate limit (2/s here) instead of failing.
struct Patient(DeviceClient);

impl Patient {
    async fn register(&self, r: &RegisterRequest) -> Result<op_types::uni::Registration, op_device::DeviceError> {
        loop {
            match self.0.register(r).await {
                Err(op_device::DeviceError::Api { status: 429, .. }) => tokio::time::sleep(Duration::from_millis(500)).await,
                other => return other,
            }
        }
    }
}

/// Customer reach and visited networks: who may use the app depends on the network serving
/// the device, asked of the network at registration.
#[tokio::test(flavor = "multi_thread")]
async fn roaming_devices_and_customer_reach() -> anyhow::Result<()> {
    let (net, p, admin) = lab_with(&["--partner-plmns", "26201"]).await?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = p.developer("uni_games", "una", "Manager").await?;
    let paris = p.zone_id(&dev, "zone-paris").await?;
    let onboard = |name: &str, req: serde_json::Value| {
        let mut m = sample_manifest("uni_games", name);
        m["deviceAuth"] = json!({"publicKeyPem": key.public_key_pem()});
        m["requirements"] = req;
        m
    };
    // Onboarding checks the networks named.
    for (reach, field) in [(json!(["2080"]), "customerReach[0]"), (json!(["20801", "23415"]), "customerReach[1]")] {
        let (s, e) = dev.post(&format!("{CAMARA}/apps"), &onboard("bad", json!({"customerReach": reach}))).await?;
        assert_eq!(s, 400, "{e}");
        assert!(e["message"].as_str().is_some_and(|m| m.contains(field)), "{e}");
    }
    for (name, req) in [
        ("home", json!({})),
        ("partners", json!({"visitedNetworks": true, "customerReach": ["20801", "26201"]})),
        ("cloudy", json!({"onUnmet": "fallbackToCloud", "fallbackEndpoint": "https://cloud.example.com:8443/"})),
    ] {
        let (s, b) = dev.post(&format!("{CAMARA}/apps"), &onboard(name, req)).await?;
        assert_eq!(s, 201, "{b}");
        let app = b["appId"].as_str().unwrap_or_default().to_string();
        let inst = dev.deploy(&format!("{name}_paris"), &app, &paris).await?;
        dev.wait_ready(&inst, Duration::from_secs(60)).await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let uni = Patient(DeviceClient::new(&p.url));
    let token = app_token(&key.serialize_pem(), "eve");
    let reg = |app: &str| {
        let mut r = register(EVE, &token, None);
        r.app.name = app.into();
        r
    };
    // At home, every app is offered.
    for app in ["home", "partners", "cloudy"] {
        assert_eq!(uni.register(&reg(app)).await?.endpoint.edge_cloud_zone_id.to_string(), paris, "{app}");
    }
    // Roaming in a network that is not a partner.
    emulate(&net, &format!("/devices/{EVE}/roam"), json!({"servingPlmn": "23415"})).await?;
    assert_eq!(api_error(uni.register(&reg("home")).await).await, (403, "PERMISSION_DENIED".into()), "visitedNetworks is false");
    assert_eq!(api_error(uni.register(&reg("partners")).await).await, (403, "PERMISSION_DENIED".into()), "23415 is not in the reach");
    let cloud = uni.register(&reg("cloudy")).await?;
    assert!(cloud.cloud_fallback, "not offered here: sent to the provider's cloud");
    assert_eq!((cloud.endpoint.host.as_str(), cloud.endpoint.port), ("cloud.example.com", 8443));
    // Roaming in the partner's network.
    emulate(&net, &format!("/devices/{EVE}/roam"), json!({"servingPlmn": "26201"})).await?;
    assert_eq!(uni.register(&reg("partners")).await?.endpoint.edge_cloud_zone_id.to_string(), paris);
    assert_eq!(api_error(uni.register(&reg("home")).await).await.0, 403);
    // Home again.
    emulate(&net, &format!("/devices/{EVE}/roam"), json!({"servingPlmn": "20801"})).await?;
    assert_eq!(uni.register(&reg("home")).await?.endpoint.edge_cloud_zone_id.to_string(), paris);

    // The operator bars the user: refused, whatever the app.
    let (s, e) = admin.post("/op/v1/placementpolicies", &json!({"name": "default", "spec": {"barredDevices": ["123"]}})).await?;
    assert_eq!((s, e["message"].as_str().is_some_and(|m| m.contains("barredDevices[0]"))), (400, true), "{e}");
    let (s, e) = admin.post("/op/v1/placementpolicies", &json!({"name": "default", "spec": {"barredDevices": [EVE]}})).await?;
    assert_eq!(s, 201, "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await; // the index follows the store by watch
    assert_eq!(api_error(uni.register(&reg("partners")).await).await, (403, "PERMISSION_DENIED".into()), "a barred user");
    let mut alice = reg("partners");
    alice.device.phone_number = Some("+33612340001".into());
    let other = uni.register(&alice).await?;
    assert_eq!(other.endpoint.edge_cloud_zone_id.to_string(), paris, "others are not");
    Ok(())
}
