//! Cloudlet federation on the EWBI listener (`/api/v1/auth/{create,show,update,delete}/cloudlet`):
//! a partner federates a simulated cloudlet, the operator reserves resources on it, the
//! compliance run passes, and then a developer's instance lands there. The partner's
//! `Access_vars` never show in any answer, the log, or the store file. A partner's Docker
//! Engine cloudlet goes the same way with real containers: the compliance run's instance
//! answers its QoE test over HTTP, and so does the developer's.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use op_e2e::federation::{ewbi_http, register_partner_offering, start_ewbi, tail, token};
use serde_json::{json, Value};

/// A password no other text of the platform contains.
const PASSWORD: &str = "Zq7-distinctive-Pa55word-91x";

async fn call(http: &reqwest::Client, tok: &str, method: reqwest::Method, url: &str, body: Option<&Value>) -> Result<(u16, Value)> {
    let mut r = http.request(method, url).bearer_auth(tok);
    if let Some(b) = body {
        r = r.json(b);
    }
    let resp = r.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

fn create_body(org: &str, lat: &str, platform: &str) -> Value {
    with_endpoint(org, lat, platform, "sim://fed-edge-1")
}

fn with_endpoint(org: &str, lat: &str, platform: &str, url: &str) -> Value {
    json!({
        "cloudlet_key": {"organization": org, "name": "edge1"},
        "cloudlet_location": {"Latitude": lat, "Longitude": "2.35"},
        "Platform_type": platform,
        "Access_vars": format!("url={url};username=ops;password={PASSWORD}"),
        "IP_support": "Static",
        "Static_IPs": ["127.0.0.1"],
        "Resource_Map": {"gpu-model": "none", "region-tag": "paris"},
        "Maintenance_State": "online"
    })
}

#[tokio::test]
async fn partner_cloudlet_passes_compliance_then_takes_instances() -> Result<()> {
    let (p, ewbi) = start_ewbi("opb", &[]).await?;
    let ca = std::fs::read_to_string(p.data_dir().join("ewbi-ca.pem"))?;
    let secret = register_partner_offering(&p, &ca, "opa-client", "opa", json!({"zone": "local"})).await?;
    let http = ewbi_http(&p)?;
    let tok = token(&http, &ewbi, "opa-client", &secret).await?;
    let create = format!("{ewbi}/api/v1/auth/create/cloudlet");
    let show = format!("{ewbi}/api/v1/auth/show/cloudlet");
    let mut answers = String::new();

    // Without a token: 401.
    let r = http.post(&create).json(&create_body("opa", "48.85", "Sim")).send().await?;
    assert_eq!(r.status().as_u16(), 401);

    // Create, then the same again: the same cloudlet.
    let (s, first) = call(&http, &tok, reqwest::Method::POST, &create, Some(&create_body("opa", "48.85", "Sim"))).await?;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["cloudlet_key"], json!({"organization": "opa", "name": "edge1"}));
    assert_eq!(first["state"], "reserve", "{first}");
    answers.push_str(&first.to_string());
    let (s, again) = call(&http, &tok, reqwest::Method::POST, &create, Some(&create_body("opa", "48.85", "Sim"))).await?;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["cloudlet_key"], first["cloudlet_key"]);
    answers.push_str(&again.to_string());
    // A different definition under the same key: 409.
    let mut changed = create_body("opa", "48.86", "Sim");
    changed["cloudlet_key"]["name"] = json!("edge1");
    let (s, b) = call(&http, &tok, reqwest::Method::POST, &create, Some(&changed)).await?;
    assert_eq!(s, 409, "{b}");

    // No driver: 422. Another operator's organization: 403. A bad latitude: 400 naming it.
    let (s, b) = call(&http, &tok, reqwest::Method::POST, &create, Some(&create_body("opa", "48.85", "OpenStack"))).await?;
    assert_eq!(s, 422, "{b}");
    let (s, b) = call(&http, &tok, reqwest::Method::POST, &create, Some(&create_body("opc", "48.85", "Sim"))).await?;
    assert_eq!(s, 403, "{b}");
    let (s, b) = call(&http, &tok, reqwest::Method::POST, &create, Some(&create_body("opa", "91.5", "Sim"))).await?;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["invalidParams"][0]["param"], "cloudlet_location.Latitude", "{b}");
    answers.push_str(&b.to_string());

    // Not placeable before the reservation and compliance.
    let admin = p.admin().await?;
    let (s, cl) = admin.get("/op/v1/cloudlets/p-opa-edge1").await?;
    assert_eq!(s, 200, "{cl}");
    assert_eq!(cl["spec"]["maintenance"], true, "{cl}");
    assert_eq!(cl["spec"]["publicHost"], "127.0.0.1");
    assert_eq!(cl["metadata"]["labels"]["op.federation.partner"], "opa");
    assert_eq!(cl["metadata"]["labels"]["op.resource/region-tag"], "paris");

    // The operator reserves; the workflow runs to compliance.
    let (s, b) = admin.post("/op/v1/federation/cloudlets/p-opa-edge1/reservation", &json!({"vcpus": 4, "memoryMb": 8192, "diskGb": 40, "gpus": 0})).await?;
    assert_eq!(s, 200, "{b}");
    answers.push_str(&b.to_string());
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        let (s, b) = call(&http, &tok, reqwest::Method::GET, &show, None).await?;
        assert_eq!(s, 200, "{b}");
        answers.push_str(&b.to_string());
        let c = &b["cloudlets"][0];
        if c["compliance"]["passed"] == true && c["state"] == "compliant" && c["placeable"] == true {
            break c.clone();
        }
        if Instant::now() > deadline {
            bail!("compliance did not pass in 60 s: {b}\n{}", tail(&p.log()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for phase in ["reserve", "discoverInventory", "networking", "catalogue", "sizes"] {
        assert_eq!(report["phases"][phase]["ok"], true, "{phase}: {report}");
    }
    let steps: Vec<&str> = report["compliance"]["steps"].as_array().context("steps")?.iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(
        steps,
        ["createApp", "createCluster", "createInstance", "clusterReady", "ready", "qoeTest", "metrics", "deleteInstance", "deleteCluster"],
        "{report}"
    );
    // The run's cluster goes with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, clusters) = admin.get("/op/v1/clusters").await?;
        ensure!(s == 200, "clusters: {s} {clusters}");
        if clusters.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        ensure!(Instant::now() < deadline, "the compliance cluster was not removed: {clusters}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(report["compliance"]["metrics"]["vcpus"].as_u64().unwrap_or(0) >= 1, "{report}");
    assert!(report["flavors"].as_array().is_some_and(|f| !f.is_empty()), "{report}");

    // A developer's instance now lands on the partner cloudlet's zone.
    let zone = p.zone_id(&admin, "p-opa-edge1").await?;
    let dev = p.developer("cloudlet_fed", "cfd_user", "Manager").await?;
    let app = dev.sample_app("cloudlet_fed", "cfd_app", json!({})).await?;
    let inst = dev.deploy("cfd_1", &app, &zone).await?;
    let ready = dev.wait_ready(&inst, Duration::from_secs(60)).await?;
    answers.push_str(&ready.to_string());
    let seen = admin.instance(&inst).await?.context("instance")?;
    assert_eq!(seen["spec"]["cloudlet"], "p-opa-edge1", "{seen}");

    // Deleting the cloudlet is refused while the instance runs.
    let del = format!("{ewbi}/api/v1/auth/delete/cloudlet");
    let key = json!({"cloudlet_key": {"organization": "opa", "name": "edge1"}});
    let (s, b) = call(&http, &tok, reqwest::Method::POST, &del, Some(&key)).await?;
    assert_eq!(s, 409, "{b}");

    // Update: offline takes it out of placement.
    let upd = format!("{ewbi}/api/v1/auth/update/cloudlet");
    let (s, b) = call(&http, &tok, reqwest::Method::POST, &upd, Some(&json!({"cloudlet_key": {"organization": "opa", "name": "edge1"}, "Maintenance_State": "offline"}))).await?;
    assert_eq!(s, 200, "{b}");
    // The workflow's reconciler may be mid-pass with the record it read before: it converges.
    let deadline = Instant::now() + Duration::from_secs(10);
    let cl = loop {
        let (_, cl) = admin.get("/op/v1/cloudlets/p-opa-edge1").await?;
        if cl["spec"]["maintenance"] == true || Instant::now() > deadline {
            break cl;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(cl["spec"]["maintenance"], true, "{cl}");
    answers.push_str(&cl.to_string());
    let (_, all) = admin.get("/op/v1/federation/cloudlets").await?;
    answers.push_str(&all.to_string());
    let (_, shown) = call(&http, &tok, reqwest::Method::GET, &show, None).await?;
    answers.push_str(&shown.to_string());

    // Once the instance is gone, the cloudlet can be deleted.
    let (s, b) = dev.delete(&format!("{}/appinstances/{inst}", op_e2e::CAMARA)).await?;
    assert!(s == 202 || s == 204, "{s} {b}");
    dev.wait_gone(&inst, Duration::from_secs(30)).await?;
    let (s, b) = call(&http, &tok, reqwest::Method::POST, &del, Some(&key)).await?;
    assert_eq!(s, 200, "{b}");
    let (_, shown) = call(&http, &tok, reqwest::Method::GET, &show, None).await?;
    assert_eq!(shown["cloudlets"], json!([]), "{shown}");

    // The credentials never show: answers, the log, the store file.
    assert!(answers.contains("p-opa-edge1") || answers.contains("edge1"), "the answers were collected");
    assert!(!answers.contains(PASSWORD), "an answer returned Access_vars");
    assert!(!answers.contains("username=ops"), "an answer returned Access_vars");
    let log = p.log();
    assert!(log.contains("partner cloudlet federated"), "the log was read");
    assert!(!log.contains(PASSWORD), "the log holds Access_vars");
    let store = std::fs::read(p.data_dir().join("store.redb"))?;
    assert!(store.len() > 1000, "the store file was read");
    assert!(!store.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()), "the store holds Access_vars in clear");
    Ok(())
}

/// A partner's Docker Engine cloudlet (here the local Podman service): the workflow runs with
/// real containers, the compliance run measures a real instance, and a developer's instance
/// on it answers HTTP.
#[tokio::test(flavor = "multi_thread")]
async fn partner_docker_cloudlet_runs_real_instances() -> Result<()> {
    let (p, ewbi) = start_ewbi("opd_docker", &[]).await?;
    let ca = std::fs::read_to_string(p.data_dir().join("ewbi-ca.pem"))?;
    let secret = register_partner_offering(&p, &ca, "opa-client", "opa", json!({"zone": "local"})).await?;
    let http = ewbi_http(&p)?;
    let tok = token(&http, &ewbi, "opa-client", &secret).await?;
    let body = with_endpoint("opa", "48.85", "Docker", &op_e2e::docker_endpoint());
    let (s, b) = call(&http, &tok, reqwest::Method::POST, &format!("{ewbi}/api/v1/auth/create/cloudlet"), Some(&body)).await?;
    assert_eq!(s, 200, "{b}");
    let mut answers = b.to_string();
    let admin = p.admin().await?;
    let (s, b) = admin.post("/op/v1/federation/cloudlets/p-opa-edge1/reservation", &json!({"vcpus": 2, "memoryMb": 2048, "diskGb": 10, "gpus": 0})).await?;
    assert_eq!(s, 200, "{b}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let report = loop {
        let (s, b) = call(&http, &tok, reqwest::Method::GET, &format!("{ewbi}/api/v1/auth/show/cloudlet"), None).await?;
        assert_eq!(s, 200, "{b}");
        answers.push_str(&b.to_string());
        let c = &b["cloudlets"][0];
        if c["compliance"]["passed"] == true && c["placeable"] == true {
            break c.clone();
        }
        if c["compliance"]["passed"] == false {
            bail!("the compliance run failed: {b}\n{}", tail(&p.log()));
        }
        if Instant::now() > deadline {
            bail!("compliance did not pass in 120 s: {b}\n{}", tail(&p.log()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The QoE test reached the real container over HTTP; its metrics are the runtime's.
    let steps = report["compliance"]["steps"].as_array().context("steps")?;
    let qoe = steps.iter().find(|s| s["step"] == "qoeTest").context("qoeTest")?;
    assert_eq!(qoe["ok"], true, "{report}");
    let m = &report["compliance"]["metrics"];
    assert_eq!(m["source"], "runtime", "{report}");
    assert!(m["measured"]["memoryBytes"].as_u64().unwrap_or(0) > 0, "memory in use: {report}");
    assert!(m["measured"]["netTxBytes"].as_u64().unwrap_or(0) > 0, "the QoE answer went out: {report}");
    assert!(m["bandwidthBps"].as_u64().unwrap_or(0) > 0, "{report}");
    assert_eq!(report["phases"]["networking"]["ok"], true, "{report}");

    let zone = p.zone_id(&admin, "p-opa-edge1").await?;
    let dev = p.developer("docker_fed", "dfd_user", "Manager").await?;
    let app = dev.sample_app("docker_fed", "dfd_app", json!({})).await?;
    let inst = dev.deploy("dfd_1", &app, &zone).await?;
    let ready = dev.wait_ready(&inst, Duration::from_secs(90)).await?;
    let body = op_e2e::http_get_ok(&op_e2e::endpoint(&ready)?, Duration::from_secs(10)).await?;
    assert!(body.contains(&inst), "the instance on the partner's cloudlet answers: {body}");
    let seen = admin.instance(&inst).await?.context("instance")?;
    assert_eq!(seen["spec"]["cloudlet"], "p-opa-edge1", "{seen}");
    let container = seen["observed"]["containerId"].as_str().unwrap_or_default().to_string();
    let running = std::process::Command::new("podman").args(["inspect", "--format", "{{.State.Running}}", &container]).output()?;
    assert_eq!(String::from_utf8_lossy(&running.stdout).trim(), "true", "a real container runs it");
    let (s, b) = dev.delete(&format!("{}/appinstances/{inst}", op_e2e::CAMARA)).await?;
    assert!(s == 202 || s == 204, "{s} {b}");
    dev.wait_gone(&inst, Duration::from_secs(60)).await?;
    let (s, b) = call(&http, &tok, reqwest::Method::POST, &format!("{ewbi}/api/v1/auth/delete/cloudlet"), Some(&json!({"cloudlet_key": {"organization": "opa", "name": "edge1"}}))).await?;
    assert_eq!(s, 200, "{b}");
    assert!(!answers.contains(PASSWORD), "an answer returned Access_vars");
    Ok(())
}
