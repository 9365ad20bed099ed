//! Federation end to end: two real `opd` processes as two operators on loopback, talking the
//! GSMA EWBI over TLS with OAuth2. A developer of A deploys on B's zone through A's ordinary
//! CAMARA API; the instance runs on B's edge and answers HTTP through B's ingress; both
//! operators compute the same usage; zone changes at B reach A; B restarting mid-deployment
//! makes one instance, and B being down shows and heals.

use std::time::{Duration, Instant};

use op_e2e::federation::*;
use op_e2e::*;
use serde_json::{json, Value};

async fn ready_or_logs(pair: &Pair, dev: &Api, inst: &str) -> anyhow::Result<Value> {
    match dev.wait_ready(inst, Duration::from_secs(60)).await {
        Ok(r) => Ok(r),
        Err(e) => anyhow::bail!("{e}\nA log:\n{}\nB log:\n{}", tail(&pair.a.log()), tail(&pair.b.log())),
    }
}

/// B's local app instances made for partners (they live in `fed-*` organizations).
async fn partner_instances(b: &Platform) -> anyhow::Result<Vec<Value>> {
    let admin = b.admin().await?;
    let (s, all) = admin.get(&format!("{CAMARA}/appinstances")).await?;
    anyhow::ensure!(s == 200, "{all}");
    let mut out = vec![];
    for i in all.as_array().cloned().unwrap_or_default() {
        let id = i["appInstanceId"].as_str().unwrap_or_default();
        let (_, full) = admin.get(&format!("/op/v1/appinstances/{id}")).await?;
        if full["metadata"]["organization"].as_str().is_some_and(|o| o.starts_with("fed-")) {
            out.push(full);
        }
    }
    Ok(out)
}

/// A's developer's view of `inst` once it shows what the partner reported: `traffic` or
/// `relocations`.
async fn partner_view(pair: &Pair, dev: &Api, inst: &str, want: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, d) = dev.get(&format!("/op/v1/appinstances/{inst}")).await?;
        let f = &d["observed"]["federation"];
        let done = match want {
            "traffic" => f["statistics"]["connections"].as_u64().unwrap_or(0) >= 1 && f["statistics"]["bytesOut"].as_u64().unwrap_or(0) > 0,
            _ => f["relocations"].as_array().is_some_and(|r| !r.is_empty()),
        };
        if done {
            return Ok(d);
        }
        anyhow::ensure!(Instant::now() < deadline, "A's developer never saw the partner's {want}: {d}\nA log:\n{}\nB log:\n{}", tail(&pair.a.log()), tail(&pair.b.log()));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn usage(p: &Platform, counterpart: &str, window: &str) -> anyhow::Result<Value> {
    let admin = p.admin().await?;
    let q = format!("/op/v1/federation/usage?counterpart={counterpart}&{window}");
    let (s, r) = admin.get(&q).await?;
    anyhow::ensure!(s == 200, "usage: {s} {r}");
    Ok(r)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_developer_of_a_deploys_on_a_zone_of_b_and_both_sides_bill_the_same() -> anyhow::Result<()> {
    let pair = Pair::start().await?;
    let admin_a = pair.a.admin().await?;
    let zone = pair.a.zone_id(&admin_a, ZONE_ON_A).await?;

    // Developers of A see B's zone as a zone, provided by B.
    let dev0 = pair.a.developer("viewer_org", "viewer", "Viewer").await?;
    let (_, zones) = dev0.get(&format!("{CAMARA}/edge-cloud-zones")).await?;
    let z = zones.as_array().and_then(|a| a.iter().find(|z| z["edgeCloudZoneName"] == ZONE_ON_A)).cloned().unwrap_or_default();
    assert_eq!(z["edgeCloudProvider"], "opb", "{z}");
    assert_eq!(z["edgeCloudZoneStatus"], "active", "{z}");

    let (dev, inst) = deploy_sample(&pair.a, "acme_fed", &zone).await?;
    let ready = ready_or_logs(&pair, &dev, &inst).await?;
    let ep = &ready["observed"]["endpoints"][0];
    assert_eq!(ep["interfaceId"], "http", "A's developer sees its own interface id: {ready}");
    let url = format!("http://{}:{}/", ep["host"].as_str().unwrap_or_default(), ep["port"]);
    let body = http_get_ok(&url, Duration::from_secs(10)).await?;
    assert!(!body.is_empty());

    // It runs at B, in B's partner organization, reached through B's ingress, not the container's port.
    let at_b = partner_instances(&pair.b).await?;
    assert_eq!(at_b.len(), 1, "one instance at B: {at_b:?}");
    assert_eq!(at_b[0]["status"]["state"], "Ready");
    let container_port = &at_b[0]["observed"]["endpoints"][0]["port"];
    assert_ne!(container_port, &ep["port"], "A sees B's ingress port, not B's container port");
    let org = at_b[0]["metadata"]["organization"].as_str().unwrap_or_default();
    assert!(!org.contains("acme"), "no developer name crosses: {org}");

    // Statistics flow back: A's developer sees the traffic B's ingress carried.
    let detail = |want: &'static str| partner_view(&pair, &dev, &inst, want);
    detail("traffic").await?;

    // B moves the instance (its container is gone; B's controller starts another): the relay
    // follows, A's developer is told of the relocation, and the same endpoint answers.
    let cid = at_b[0]["observed"]["containerId"].as_str().unwrap_or_default().to_string();
    assert!(!cid.is_empty(), "{}", at_b[0]);
    let rm = std::process::Command::new("podman").args(["--url", &docker_endpoint(), "rm", "-f", "-t", "0", &cid]).output()?;
    assert!(rm.status.success(), "podman rm: {}", String::from_utf8_lossy(&rm.stderr));
    let d = detail("relocations").await?;
    let r = &d["observed"]["federation"]["relocations"][0];
    assert_eq!(r["interfaceId"], "http", "{d}");
    assert_eq!(d["observed"]["endpoints"][0]["port"], ep["port"], "the access point stays: {d}");
    http_get_ok(&url, Duration::from_secs(20)).await?;

    // Deleting at A removes it at B, once it has run a billable time (settlement counts whole
    // seconds from the READY callback).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (s, b) = dev.delete(&format!("{CAMARA}/appinstances/{inst}")).await?;
    assert!(s == 202 || s == 204, "{s} {b}");
    dev.wait_gone(&inst, Duration::from_secs(30)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !partner_instances(&pair.b).await?.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "B still runs the instance");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The app stays onboarded at B until it is deleted at A.
    let apps_at_b = || async {
        let admin = pair.b.admin().await?;
        let (_, apps) = admin.get(&format!("{CAMARA}/apps")).await?;
        Ok::<usize, anyhow::Error>(apps.as_array().map_or(0, |a| a.iter().filter(|x| x["appProvider"].as_str().is_some_and(|p| p.starts_with("fed-"))).count()))
    };
    assert_eq!(apps_at_b().await?, 1);
    let app_id = ready["spec"]["appId"].as_str().unwrap_or_default().to_string();
    let (s, b) = dev.delete(&format!("{CAMARA}/apps/{app_id}")).await?;
    assert!(s == 204 || s == 202, "{s} {b}");
    let deadline = Instant::now() + Duration::from_secs(40);
    while apps_at_b().await? != 0 {
        anyhow::ensure!(Instant::now() < deadline, "B still has the deleted app\nA log:\n{}", tail(&pair.a.log()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Settlement: the same records on both sides, once the last status callback is in.
    let now = chrono::Utc::now();
    let window = format!(
        "from={}&to={}",
        (now - chrono::Duration::hours(2)).format("%Y-%m-%dT%H:00:00Z"),
        (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:00:00Z")
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ua, ub) = (usage(&pair.a, "opb", &window).await?, usage(&pair.b, "opa", &window).await?);
        let secs = ub["totals"]["instanceSeconds"].as_u64().unwrap_or(0);
        // Sessions served: the connections B's ingress carried (the two calls above at least).
        let sessions = ub["totals"]["sessionsServed"].as_u64().unwrap_or(0);
        if ua["digest"] == ub["digest"] && secs > 0 && sessions >= 2 {
            assert_eq!(ua["records"], ub["records"]);
            assert!(ub["totals"]["vcpuMilliSeconds"].as_u64().unwrap_or(0) >= secs * 1000, "{ub}");
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "usage differs:\nA: {ua}\nB: {ub}\nA log:\n{}\nB log:\n{}", tail(&pair.a.log()), tail(&pair.b.log()));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The operators see it with opctl: the peer, and the settlement check against B's report.
    let peers = pair.a.opctl_as(&admin_a, &["federation", "peer", "list"])?;
    assert!(peers.contains("opb") && peers.contains("bzone-1"), "{peers}");
    let check = pair.a.opctl_as(&admin_a, &["-o", "json", "federation", "usage", "opb", "--check", "--to", &(chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:00:00Z").to_string()])?;
    let check: Value = serde_json::from_str(&check)?;
    assert_eq!(check["agreed"], true, "{check}");
    assert!(check["local"]["totals"]["instanceSeconds"].as_u64().unwrap_or(0) > 0, "{check}");
    // CSV export has the header and the records.
    let (s, csv) = admin_a.get("/op/v1/federation/usage?counterpart=opb&format=csv").await?;
    assert_eq!(s, 200);
    assert!(csv.as_str().unwrap_or_default().starts_with("federationContextId"), "{csv}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn zones_added_and_lost_at_b_reach_a() -> anyhow::Result<()> {
    let pair = Pair::start().await?;
    let admin_b = pair.b.admin().await?;
    let (s, e) = admin_b.post("/op/v1/zones", &json!({"name": "lyon", "spec": {"region": "default",
        "location": {"latitude": 45.76, "longitude": 4.83}, "serviceArea": {"cells": ["ly1"]}}})).await?;
    assert_eq!(s, 201, "{e}");
    let (s, e) = admin_b.post("/op/v1/cloudlets", &json!({"name": "secret-lyon-edge", "spec": {"zone": "lyon",
        "location": {"latitude": 45.76, "longitude": 4.83}, "platformType": "sim", "driverEndpoint": "sim://lyon",
        "capacity": {"vcpus": 37, "memoryMb": 77777, "diskGb": 100}, "flavors": ["small"]}})).await?;
    assert_eq!(s, 201, "{e}");
    let (_, mut partner) = admin_b.get("/op/v1/federation/partners/opa").await?;
    let mut zones = partner["spec"]["zones"].as_array().cloned().unwrap_or_default();
    zones.push(json!({"zone": "lyon", "alias": "bzone-2", "geography": "Lyon", "reservedVcpus": 2, "reservedMemoryMb": 2048}));
    partner["spec"]["zones"] = json!(zones);
    let spec = partner["spec"].clone();
    let (s, e) = admin_b.put("/op/v1/federation/partners/opa", &json!({"spec": spec})).await?;
    assert_eq!(s, 200, "{e}");

    // A learns of the new zone (ZONES ADD), subscribes, and offers it to its developers.
    let admin_a = pair.a.admin().await?;
    let status_of = |name: &'static str| {
        let admin_a = admin_a.clone();
        async move {
            let (_, zs) = admin_a.get(&format!("{CAMARA}/edge-cloud-zones")).await?;
            Ok::<_, anyhow::Error>(zs.as_array().and_then(|a| a.iter().find(|z| z["edgeCloudZoneName"] == name)).map(|z| z["edgeCloudZoneStatus"].clone()))
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_of("opb-bzone-2").await? != Some(json!("active")) {
        anyhow::ensure!(Instant::now() < deadline, "B's new zone never reached A\nA log:\n{}", tail(&pair.a.log()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, peer) = admin_a.get("/op/v1/federation/peers/opb").await?;
    let text = peer.to_string();
    assert!(!text.contains("secret-lyon-edge") && !text.contains("77777") && !text.contains("sim://"), "no topology crosses: {text}");

    // B loses the zone's only edge: A's copy turns inactive and refuses deployments.
    let (s, e) = admin_b.delete("/op/v1/cloudlets/secret-lyon-edge").await?;
    assert!(s == 204 || s == 202, "{s} {e}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_of("opb-bzone-2").await? != Some(json!("inactive")) {
        anyhow::ensure!(Instant::now() < deadline, "the zone's loss never reached A\nB log:\n{}", tail(&pair.b.log()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let zone = pair.a.zone_id(&admin_a, "opb-bzone-2").await?;
    let dev = pair.a.developer("late_org", "late", "Manager").await?;
    let app = dev.sample_app("late_org", "late_app", json!({})).await?;
    let (s, e) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": "late_1", "appId": app, "edgeCloudZoneId": zone})).await?;
    assert_eq!(s, 400, "{e}");
    assert!(e["message"].as_str().unwrap_or_default().contains("not available"), "{e}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn partner_down_shows_and_heals_and_a_restart_mid_deployment_makes_one_instance() -> anyhow::Result<()> {
    let mut pair = Pair::start().await?;
    let admin_a = pair.a.admin().await?;
    let zone = pair.a.zone_id(&admin_a, ZONE_ON_A).await?;

    // B down: the deployment is accepted and says why it waits.
    pair.b.kill9();
    let (dev, inst) = deploy_sample(&pair.a, "outage_org", &zone).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let i = dev.instance(&inst).await?.unwrap_or_default();
        let msg = i["status"]["message"].as_str().unwrap_or_default().to_string();
        if i["status"]["state"] != "Ready" && (msg.contains("partner") || msg.contains("uploading")) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no sign of the outage: {i}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // B back: the deployment completes, once.
    pair.b.restart().await?;
    ready_or_logs(&pair, &dev, &inst).await?;

    // A second deployment, and B killed as soon as it has the instance: after B's restart
    // there is still exactly one instance for it.
    let app2 = dev.sample_app("outage_org", "second_app", json!({})).await?;
    let (s, b) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": "second_1", "appId": app2, "edgeCloudZoneId": zone})).await?;
    assert_eq!(s, 202, "{b}");
    let second = b["appInstanceId"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while partner_instances(&pair.b).await?.len() < 2 {
        anyhow::ensure!(Instant::now() < deadline, "B never got the second instance");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pair.b.restart().await?;
    ready_or_logs(&pair, &dev, &second).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let at_b = partner_instances(&pair.b).await?;
    assert_eq!(at_b.len(), 2, "two deployments, two instances at B: {at_b:?}");
    Ok(())
}

/// A device of A roaming in B's network is served by B's edge: A asks B which of its zones
/// suit the device (edge node sharing) and offers the app's instance there; out of roaming,
/// and in a network no partner runs, it is not.
#[tokio::test(flavor = "multi_thread")]
async fn a_device_roaming_in_b_is_served_by_bs_edge() -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let listen = format!("127.0.0.1:{port}");
    let (net, a, _) = uni_lab(&["--ewbi-listen", &listen, "--provider", "opa", "--federation-id", "opa"]).await?;
    let (b, b_ewbi) = start_ewbi("opb", &["--mcc", "262", "--mnc", "01"]).await?;
    let secret = register_partner(&b, &a, CLIENT_ID, "opa").await?;
    let pair = Pair { a, b, a_ewbi: format!("https://{listen}"), b_ewbi, secret };
    pair.add_peer().await?;
    let b_zone = pair.wait_zone(Duration::from_secs(30)).await?;

    // The app may be used at home and in B's network (whose code A learnt by federating).
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = pair.a.developer("uni_games", "una", "Manager").await?;
    let mut m = sample_manifest("uni_games", "arena");
    m["deviceAuth"] = json!({"publicKeyPem": key.public_key_pem()});
    m["requirements"] = json!({"visitedNetworks": true, "customerReach": ["20801", "26201"]});
    let (s, body) = dev.post(&format!("{CAMARA}/apps"), &m).await?;
    assert_eq!(s, 201, "{body}");
    let app = body["appId"].as_str().unwrap_or_default().to_string();
    let paris = pair.a.zone_id(&dev, "zone-paris").await?;
    let home = dev.deploy("arena_home", &app, &paris).await?;
    let away = dev.deploy("arena_b", &app, &b_zone).await?;
    dev.wait_ready(&home, Duration::from_secs(60)).await?;
    ready_or_logs(&pair, &dev, &away).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    const EVE: &str = "+33612340005";
    let token = app_token(&key.serialize_pem(), "eve");
    let register = || async {
        let r = reqwest::Client::new()
            .post(format!("{}/uni/v1/sessions", pair.a.url))
            .json(&json!({"device": {"phoneNumber": EVE}, "app": {"provider": "uni_games", "name": "arena", "version": "1.0"}, "appToken": token}))
            .send()
            .await?;
        Ok::<_, anyhow::Error>((r.status().as_u16(), r.json::<Value>().await.unwrap_or_default()))
    };
    let roam = |plmn: &'static str| {
        let url = format!("{}/emulator/v1/devices/{EVE}/roam", net.url);
        async move {
            let r = reqwest::Client::new().post(url).json(&json!({"servingPlmn": plmn})).send().await?;
            anyhow::ensure!(r.status().is_success(), "roam: {}", r.status());
            Ok::<_, anyhow::Error>(())
        }
    };
    let (s, r) = register().await?;
    assert_eq!((s, r["endpoint"]["appInstanceId"].as_str()), (201, Some(home.as_str())), "at home, the home edge: {r}");

    roam("26201").await?;
    let (s, r) = register().await?;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["endpoint"]["appInstanceId"].as_str(), Some(away.as_str()), "roaming in B: B's edge: {r}");
    assert_eq!(r["endpoint"]["edgeCloudZoneName"], ZONE_ON_A);
    let url = format!("http://{}:{}/", r["endpoint"]["host"].as_str().unwrap_or_default(), r["endpoint"]["port"]);
    http_get_ok(&url, Duration::from_secs(10)).await?;
    // Roaming user authentication: the device shows B's edge what A gave it; B checks with A
    // over the reverse federation (B originating, A partner).
    let auth = r["roamingAuth"].clone();
    assert_eq!(auth["homeOperator"], "opa", "{r}");
    assert!(!auth.to_string().contains("3361234"), "no phone number crosses: {auth}");
    let reverse = register_partner(&pair.a, &pair.b, "opb-client", "opb").await?;
    let admin_b = pair.b.admin().await?;
    let a_ca = std::fs::read_to_string(pair.a.data_dir().join("ewbi-ca.pem"))?;
    let (s, e) = admin_b
        .post("/op/v1/federation/peers", &json!({"name": "opa", "spec": {"url": format!("{}/operatorplatform/federation/v1", pair.a_ewbi),
            "clientId": "opb-client", "clientSecret": reverse, "caPem": a_ca, "federationId": "opb", "region": "partner-a"}}))
        .await?;
    assert_eq!(s, 201, "{e}");
    let check = |token: String| {
        let (admin_b, auth) = (admin_b.clone(), auth.clone());
        async move {
            let body = json!({"homeOperator": auth["homeOperator"], "deviceId": auth["deviceId"], "token": token});
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (s, v) = admin_b.post("/op/v1/federation/roaming-check", &body).await?;
                if s == 200 {
                    return Ok::<_, anyhow::Error>(v["authenticated"].clone());
                }
                // B is still federating with A.
                anyhow::ensure!(Instant::now() < deadline, "roaming check: {s} {v}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(check(auth["token"].as_str().unwrap_or_default().to_string()).await?, true);
    let mut forged = auth["token"].as_str().unwrap_or_default().to_string();
    forged.replace_range(0..1, if forged.starts_with('0') { "1" } else { "0" });
    assert_eq!(check(forged).await?, false, "a forged token is refused by the home operator");

    // Both count the edge discovery B did for A (an additional service, settled like the rest).
    // What B served reaches A through B's outbox, so the two agree once it is delivered.
    let now = chrono::Utc::now();
    let window = format!("from={}&to={}", (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:00:00Z"), (now + chrono::Duration::hours(2)).format("%Y-%m-%dT%H:00:00Z"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let (ua, ub) = loop {
        let (ua, ub) = (usage(&pair.a, "opb", &format!("{window}&role=peer")).await?, usage(&pair.b, "opa", &format!("{window}&role=partner")).await?);
        if ua["digest"] == ub["digest"] || Instant::now() > deadline {
            break (ua, ub);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ub["totals"]["serviceCalls"]["edgeDiscovery"].as_u64().unwrap_or(0) >= 1, "{ub}");
    assert_eq!(ua["digest"], ub["digest"], "A: {ua}\nB: {ub}");
    // And the roaming check, billed by A as B's partner, the same on both sides.
    let (ra, rb) = (usage(&pair.a, "opb", &format!("{window}&role=partner")).await?, usage(&pair.b, "opa", &format!("{window}&role=peer")).await?);
    assert_eq!(ra["totals"]["serviceCalls"]["roamingAuth"], 1, "{ra}");
    assert_eq!(ra["digest"], rb["digest"], "A: {ra}\nB: {rb}");

    roam("23415").await?;
    let (s, r) = register().await?;
    assert_eq!(s, 403, "a network no partner runs, not in the app's reach: {r}");
    Ok(())
}
