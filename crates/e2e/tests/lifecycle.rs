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
    assert_eq!(containers_of(&id).await?, 1);

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
    let (_, m) = anon.get("/metrics").await?;
    let m = m.as_str().unwrap_or_default().to_string();
    assert!(m.contains("op_http_requests"), "{m}");
    assert!(m.contains("op_reconciles"), "{m}");
    Ok(())
}
