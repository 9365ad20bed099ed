//! Bad input gets a 4xx with CAMARA's error body naming the field, and nothing half-created.

use std::time::Duration;

use op_e2e::*;
use serde_json::{json, Value};

fn field_named(e: &Value, field: &str) -> bool {
    e["message"].as_str().is_some_and(|m| m.contains(field))
}

async fn instance_count(api: &Api) -> anyhow::Result<usize> {
    Ok(api.get(&format!("{CAMARA}/appinstances")).await?.1.as_array().map_or(0, Vec::len))
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_with_the_field() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let admin = p.admin().await?;
    let dev = p.developer("bad_input", "bob", "Manager").await?;
    let zone = p.zone_id(&dev, "local").await?;
    let apps = format!("{CAMARA}/apps");
    let insts = format!("{CAMARA}/appinstances");

    // Malformed JSON.
    let (s, e) = dev.post_raw(&apps, "{\"name\": ").await?;
    assert_eq!((s, e["code"].as_str(), e["status"].as_u64()), (400, Some("INVALID_ARGUMENT"), Some(400)));
    // Unknown field, deep inside.
    let mut m = sample_manifest("bad_input", "x_app");
    m["componentSpec"][0]["networkInterfaces"][0]["colour"] = json!("red");
    let (s, e) = dev.post(&apps, &m).await?;
    assert_eq!(s, 400);
    assert!(field_named(&e, "componentSpec[0].networkInterfaces[0]") && field_named(&e, "colour"), "{e}");
    // Illegal and too-long names.
    let (s, e) = dev.post(&apps, &sample_manifest("bad_input", "has space")).await?;
    assert!(s == 400 && field_named(&e, "name"), "{e}");
    let (s, e) = dev.post(&apps, &sample_manifest("bad_input", &"a".repeat(65))).await?;
    assert!(s == 400 && field_named(&e, "name"), "{e}");
    let (s, e) = admin.post("/op/v1/regions", &json!({"name": "-bad", "spec": {}})).await?;
    assert!(s == 400 && field_named(&e, "name"), "{e}");
    // Wrong value inside an otherwise valid manifest.
    let mut m = sample_manifest("bad_input", "x_app");
    m["requiredResources"]["numCPU"] = json!("lots");
    let (s, e) = dev.post(&apps, &m).await?;
    assert!(s == 400 && field_named(&e, "requiredResources.numCPU"), "{e}");
    // Unknown flavor.
    let (s, e) = dev.post(&apps, &{ let mut m = sample_manifest("bad_input", "x_app"); m["flavor"] = json!("huge"); m }).await?;
    assert!(s == 400 && field_named(&e, "flavor"), "{e}");
    // Duplicate name.
    let app = dev.sample_app("bad_input", "dup_app", json!({})).await?;
    let (s, e) = dev.post(&apps, &sample_manifest("bad_input", "dup_app")).await?;
    assert_eq!((s, e["code"].as_str()), (409, Some("ALREADY_EXISTS")));
    assert_eq!(dev.get(&apps).await?.1.as_array().map(Vec::len), Some(1), "nothing half-created");

    // Unknown app, unknown zone, malformed ids.
    let (s, e) = dev.post(&insts, &json!({"name": "i1", "appId": "6f1c7c2e-0000-4000-8000-000000000000", "edgeCloudZoneId": zone})).await?;
    assert!(s == 400 && field_named(&e, "appId"), "{e}");
    let (s, e) = dev.post(&insts, &json!({"name": "i1", "appId": app, "edgeCloudZoneId": "6f1c7c2e-0000-4000-8000-000000000000"})).await?;
    assert!(s == 400 && field_named(&e, "edgeCloudZoneId"), "{e}");
    let (s, e) = dev.post(&insts, &json!({"name": "i1", "appId": "not-a-uuid", "edgeCloudZoneId": zone})).await?;
    assert!(s == 400 && field_named(&e, "appId"), "{e}");
    // An image that does not exist.
    let mut m = sample_manifest("bad_input", "ghost");
    m["appRepo"]["imagePath"] = json!("localhost/no-such-image:1");
    let (_, b) = dev.post(&apps, &m).await?;
    let ghost = b["appId"].as_str().unwrap_or_default().to_string();
    let (s, e) = dev.post(&insts, &json!({"name": "g1", "appId": ghost, "edgeCloudZoneId": zone})).await?;
    assert!(s == 400 && field_named(&e, "appRepo.imagePath"), "{e}");
    assert_eq!(instance_count(&dev).await?, 0, "nothing half-created");

    // A flavor larger than the cloudlet: refused when the cloudlet is defined...
    let (s, _) = admin.post("/op/v1/flavors", &json!({"name": "xl", "spec": {"vcpus": 32, "memoryMb": 65536}})).await?;
    assert_eq!(s, 201);
    let (s, _) = admin.post("/op/v1/zones", &json!({"name": "tiny", "spec": {"region": "default",
        "location": {"latitude": 45.0, "longitude": 5.0}, "serviceArea": {"cells": ["c-tiny"]}}})).await?;
    assert_eq!(s, 201);
    let tiny = |flavors: Value| json!({"name": "tiny-1", "spec": {"zone": "tiny", "location": {"latitude": 45.0, "longitude": 5.0},
        "platformType": "docker", "driverEndpoint": docker_endpoint(), "capacity": {"vcpus": 2, "memoryMb": 2048, "diskGb": 100}, "flavors": flavors}});
    let (s, e) = admin.post("/op/v1/cloudlets", &tiny(json!(["small", "xl"]))).await?;
    assert!(s == 400 && field_named(&e, "spec.flavors[1]"), "{e}");
    let (s, _) = admin.post("/op/v1/cloudlets", &tiny(json!(["small"]))).await?;
    assert_eq!(s, 201);
    // ...and when an app asks for more than a zone's cloudlets offer.
    let big = { let mut m = sample_manifest("bad_input", "big_app"); m["flavor"] = json!("large"); m };
    let (_, b) = dev.post(&apps, &big).await?;
    let big_app = b["appId"].as_str().unwrap_or_default().to_string();
    let tiny_zone = p.zone_id(&dev, "tiny").await?;
    let (s, e) = dev.post(&insts, &json!({"name": "b1", "appId": big_app, "edgeCloudZoneId": tiny_zone})).await?;
    assert!(s == 400 && field_named(&e, "flavor"), "{e}");

    // A fixed port already taken in the zone.
    let fixed = |name: &str| {
        let mut m = sample_manifest("bad_input", name);
        m["componentSpec"][0]["networkInterfaces"][0]["extPort"] = json!(free_port_hint());
        m
    };
    let port_app_1 = fixed("port_one");
    let mut port_app_2 = fixed("port_two");
    port_app_2["componentSpec"][0]["networkInterfaces"][0]["extPort"] = port_app_1["componentSpec"][0]["networkInterfaces"][0]["extPort"].clone();
    let (_, b1) = dev.post(&apps, &port_app_1).await?;
    let (_, b2) = dev.post(&apps, &port_app_2).await?;
    let first = dev.deploy("p1", b1["appId"].as_str().unwrap_or_default(), &zone).await?;
    let (s, e) = dev.post(&insts, &json!({"name": "p2", "appId": b2["appId"], "edgeCloudZoneId": zone})).await?;
    assert!(s == 409 && field_named(&e, "extPort"), "{e}");
    assert_eq!(instance_count(&dev).await?, 1, "nothing half-created");
    let inst = dev.wait_ready(&first, Duration::from_secs(60)).await?;
    assert_eq!(inst["observed"]["endpoints"][0]["port"], port_app_1["componentSpec"][0]["networkInterfaces"][0]["extPort"]);

    // Name taken for instances too.
    let (s, e) = dev.post(&insts, &json!({"name": "p1", "appId": app, "edgeCloudZoneId": zone})).await?;
    assert_eq!((s, e["code"].as_str()), (409, Some("ALREADY_EXISTS")));
    // Deleting what is still used is refused.
    let (s, e) = admin.delete("/op/v1/zones/tiny").await?;
    assert_eq!((s, e["code"].as_str()), (409, Some("ABORTED")));
    let (s, _) = dev.delete(&format!("{CAMARA}/appinstances/{first}")).await?;
    assert_eq!(s, 202);
    dev.wait_gone(&first, Duration::from_secs(30)).await?;
    Ok(())
}

fn free_port_hint() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(39999)
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_outage_fails_then_recovers() -> anyhow::Result<()> {
    // A second Podman API service on a socket of our own: the cloudlet's runtime, which we stop.
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("podman.sock");
    let start = || {
        std::process::Command::new("podman")
            .args(["system", "service", "--time=0", &format!("unix://{}", sock.display())])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    };
    let p = Platform::start().await?;
    let admin = p.admin().await?;
    let dev = p.developer("outage_org", "olga", "Manager").await?;
    let (s, _) = admin.post("/op/v1/zones", &json!({"name": "flaky", "spec": {"region": "default",
        "location": {"latitude": 45.0, "longitude": 5.0}, "serviceArea": {"cells": ["c-flaky"]}}})).await?;
    assert_eq!(s, 201);
    let (s, e) = admin.post("/op/v1/cloudlets", &json!({"name": "flaky-1", "spec": {"zone": "flaky",
        "location": {"latitude": 45.0, "longitude": 5.0}, "platformType": "docker",
        "driverEndpoint": format!("unix://{}", sock.display()), "capacity": {"vcpus": 4, "memoryMb": 4096, "diskGb": 100}, "flavors": ["small"]}})).await?;
    assert_eq!(s, 201, "{e}");
    let zone = p.zone_id(&dev, "flaky").await?;
    let app = dev.sample_app("outage_org", "outage_app", json!({})).await?;

    // Runtime down: accepted, then Failed with the reason.
    let id = dev.deploy("o1", &app, &zone).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let inst = dev.instance(&id).await?.expect("instance");
        if inst["status"]["state"] == "Failed" {
            break inst;
        }
        assert!(std::time::Instant::now() < deadline, "never failed: {inst}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(failed["status"]["message"].as_str().unwrap_or_default().contains("unavailable"), "{failed}");
    let (_, list) = dev.get(&format!("{CAMARA}/appinstances?appInstanceId={id}")).await?;
    assert_eq!(list[0]["status"], "failed");

    // Runtime back: the instance recovers by itself.
    let mut svc = start()?;
    let inst = dev.wait_ready(&id, Duration::from_secs(90)).await;
    let inst = match inst {
        Ok(i) => i,
        Err(e) => {
            let _ = svc.kill();
            return Err(e);
        }
    };
    http_get_ok(&endpoint(&inst)?, Duration::from_secs(10)).await?;
    let (s, _) = dev.delete(&format!("{CAMARA}/appinstances/{id}")).await?;
    assert_eq!(s, 202);
    dev.wait_gone(&id, Duration::from_secs(30)).await?;
    let _ = svc.kill();
    let _ = svc.wait();
    Ok(())
}
