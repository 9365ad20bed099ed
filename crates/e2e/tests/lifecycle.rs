//! A developer deploys the sample app, reaches it over HTTP, and deletes it; the container goes
//! with it, and an app with live instances cannot be deleted.

use std::time::Duration;

use op_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn deploy_reach_delete() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let dev = p.developer("acme_games", "alice", "Manager").await?;
    let zone = p.zone_id(&dev, "local").await?;
    let app = dev.sample_app("acme_games", "hello", serde_json::json!({"env": {"GREETING": "bonjour"}})).await?;
    let id = dev.deploy("hello_1", &app, &zone).await?;

    let inst = dev.wait_ready(&id, Duration::from_secs(60)).await?;
    let url = endpoint(&inst)?;
    let body = http_get_ok(&url, Duration::from_secs(10)).await?;
    assert!(body.contains(&id), "the app answers with its instance id: {body}");
    let env = http_get_ok(&format!("{url}env/GREETING"), Duration::from_secs(5)).await?;
    assert_eq!(env.trim(), "bonjour");
    // The UNI's session-token key is distributed to every instance, for local verification.
    let key = http_get_ok(&format!("{url}env/OP_UNI_PUBLIC_KEY"), Duration::from_secs(5)).await?;
    let (_, published) = dev.get("/uni/v1/keys").await?;
    assert_eq!(key.trim(), published["publicKeyPem"].as_str().unwrap_or_default().trim());
    assert_eq!(containers_of(&id).await?, 1);
    // The controllers that deployed it run on threads of their own, below the API's priority.
    let nice = threads_nice(p.pid().expect("running"))?;
    let of = |comm: &str| nice.iter().filter(|(c, _)| c == comm).map(|(_, n)| *n).collect::<Vec<_>>();
    assert!(!of("op-ctl").is_empty() && of("op-ctl").iter().all(|n| *n == 10), "{nice:?}");
    assert!(!of("tokio-rt-worker").is_empty() && of("tokio-rt-worker").iter().all(|n| *n == 0), "{nice:?}");

    // CAMARA view: ready, with the endpoint.
    let (s, list) = dev.get(&format!("{CAMARA}/appinstances?appId={app}")).await?;
    assert_eq!(s, 200);
    assert_eq!(list[0]["status"], "ready");
    assert_eq!(list[0]["componentEndpointInfo"][0]["interfaceId"], "http");

    // Logs come from the container.
    let (s, logs) = dev.get(&format!("/op/v1/appinstances/{id}/logs")).await?;
    assert_eq!(s, 200);
    assert!(logs.as_str().unwrap_or_default().contains("listening"), "logs: {logs}");

    // The app cannot go while an instance runs.
    let (s, b) = dev.delete(&format!("{CAMARA}/apps/{app}")).await?;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["code"], "ABORTED");

    let (s, _) = dev.delete(&format!("{CAMARA}/appinstances/{id}")).await?;
    assert_eq!(s, 202);
    dev.wait_gone(&id, Duration::from_secs(30)).await?;
    assert_eq!(containers_of(&id).await?, 0, "the container is removed with its instance");

    let (s, _) = dev.delete(&format!("{CAMARA}/apps/{app}")).await?;
    assert_eq!(s, 204);
    let (s, b) = dev.get(&format!("{CAMARA}/apps/{app}")).await?;
    assert_eq!((s, b["code"].as_str()), (404, Some("NOT_FOUND")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn health_metrics_and_openapi() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let anon = p.api(None);
    assert_eq!(anon.get("/healthz").await?.0, 200);
    assert_eq!(anon.get("/readyz").await?.0, 200);
    let (s, doc) = anon.get("/openapi.json").await?;
    assert_eq!(s, 200);
    assert!(doc["paths"][format!("{CAMARA}/appinstances")]["post"].is_object());
    let (s, e) = anon.get("/metrics").await?;
    assert_eq!(s, 401, "metrics are the operator's: {e}");
    let dev = p.developer("metrics_org", "mia", "Manager").await?;
    let (s, e) = dev.get("/metrics").await?;
    assert_eq!(s, 403, "a developer does not read the operator's metrics: {e}");
    let (_, m) = p.admin().await?.get("/metrics").await?;
    let m = m.as_str().unwrap_or_default().to_string();
    assert!(m.lines().any(|l| l.starts_with("op_http_requests_total{")), "{m}");
    assert!(m.lines().any(|l| l.starts_with("op_reconciles_total{")), "{m}");
    Ok(())
}

/// The same controllers drive a simulated cloudlet: fifty instances become Ready (with
/// injected create failures retried), then go away, and nothing real was started.
#[tokio::test(flavor = "multi_thread")]
async fn sim_cloudlet_runs_many_instances() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let admin = p.admin().await?;
    let dev = p.developer("sim_org_1", "simon", "Manager").await?;
    let (s, _) = admin
        .post("/op/v1/zones", &serde_json::json!({"name": "simzone", "spec": {"region": "default",
            "location": {"latitude": 40.0, "longitude": 3.0}, "serviceArea": {"cells": ["c-sim"]}}}))
        .await?;
    assert_eq!(s, 201);
    let (s, e) = admin
        .post("/op/v1/cloudlets", &serde_json::json!({"name": "sim-1", "spec": {"zone": "simzone",
            "location": {"latitude": 40.0, "longitude": 3.0}, "platformType": "sim", "driverEndpoint": "sim://sim-1?failEvery=7",
            "capacity": {"vcpus": 1000, "memoryMb": 1048576, "diskGb": 100000}, "flavors": ["small"]}}))
        .await?;
    assert_eq!(s, 201, "{e}");
    let zone = p.zone_id(&dev, "simzone").await?;
    let app = dev.sample_app("sim_org_1", "simapp", serde_json::json!({})).await?;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(dev.deploy(&format!("s{i}"), &app, &zone).await?);
    }
    for id in &ids {
        let inst = dev.wait_ready(id, Duration::from_secs(60)).await?;
        assert!(inst["observed"]["containerId"].as_str().unwrap_or_default().starts_with("sim-"));
    }
    assert!(containers_of_platform(&p.data_dir()).await?.is_empty(), "nothing real was started");
    for id in &ids {
        assert_eq!(dev.delete(&format!("{CAMARA}/appinstances/{id}")).await?.0, 202);
    }
    for id in &ids {
        dev.wait_gone(id, Duration::from_secs(60)).await?;
    }
    Ok(())
}

/// Each thread of process `pid`: its name and nice value (`/proc/PID/task/TID/stat`, field 19).
fn threads_nice(pid: u32) -> anyhow::Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(t?.path().join("stat"))?;
        let (head, rest) = stat.rsplit_once(") ").ok_or_else(|| anyhow::anyhow!("stat: {stat}"))?;
        let comm = head.split_once(" (").map_or("", |(_, c)| c).to_string();
        let nice = rest.split(' ').nth(16).ok_or_else(|| anyhow::anyhow!("stat: {stat}"))?.parse()?;
        out.push((comm, nice));
    }
    Ok(out)
}
