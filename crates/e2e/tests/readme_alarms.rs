//! The README's alarms walk-through, executed verbatim with the real opctl against a webhook
//! receiver of the test's own.

use std::sync::{Arc, Mutex};

use axum::routing::post;
use axum::Router;
use op_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn readme_alarms_runs() -> anyhow::Result<()> {
    type Received = (Option<String>, Vec<u8>);
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let inbox = got.clone();
    let hook = Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
            let sig = headers.get("x-op-signature-256").and_then(|v| v.to_str().ok()).map(str::to_string);
            inbox.lock().unwrap().push((sig, body.to_vec()));
            "ok"
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, hook).await });

    let p = Platform::start().await?;
    let run = run_readme_block_with("alarms", &p, &[("HOOK_URL", url.clone())]).await?;
    let out = run.stdout;
    // The receiver table: the URL, signed, its last delivery.
    assert!(out.contains(&url) && out.contains("yes") && out.contains("ok HTTP 200"), "{out}");
    assert!(out.contains("hot") && out.contains("critical"), "{out}");

    // The test alarm arrived in Alertmanager's format, signed with the README's secret.
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1, "one test delivery");
    let (sig, body) = &got[0];
    let m: serde_json::Value = serde_json::from_slice(body)?;
    assert_eq!((m["version"].as_str(), m["alerts"][0]["labels"]["alertname"].as_str()), (Some("4"), Some("Test")), "{m}");
    assert_eq!(m["alerts"][0]["labels"]["organization"], "bell_labs");
    assert_eq!(sig.as_deref(), Some(op_api::alarms::signature(b"a-shared-secret-of-some-length", body).as_str()));
    Ok(())
}
