//! The organizations' registry on the real platform: a real CNCF distribution registry that
//! opd starts, logins with passwords, API keys and platform tokens (single sign-on), pushes
//! and pulls with Podman's own client, repositories scoped to organizations and roles, image
//! versions tracked from the registry's notifications, a cloudlet pulling a pushed image once
//! and then running it from its cache, and the registry back after `kill -9` of opd.
//!
//! One test: the registry listens on a fixed loopback port that Podman is told to reach over
//! plain HTTP (`scripts/setup-runtime.sh`).

use std::process::Command;
use std::time::Duration;

use op_e2e::*;
use serde_json::json;

const HOST: &str = "127.0.0.1:5002";
const PW: &str = "correct-horse-battery";

/// Runs `podman` with `args`; returns whether it succeeded and what it said.
fn podman(args: &[&str]) -> (bool, String) {
    match Command::new("podman").args(args).output() {
        Ok(o) => (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))),
        Err(e) => (false, e.to_string()),
    }
}

/// `podman login` to the registry with its own credentials file, so logins never mix.
fn login(auth: &std::path::Path, user: &str, secret: &str) -> (bool, String) {
    podman(&["login", "--tls-verify=false", "--authfile", &auth.display().to_string(), HOST, "-u", user, "-p", secret])
}

fn push(auth: &std::path::Path, reference: &str) -> (bool, String) {
    podman(&["push", "--tls-verify=false", "--authfile", &auth.display().to_string(), reference])
}

fn pull(auth: &std::path::Path, reference: &str) -> (bool, String) {
    podman(&["pull", "--tls-verify=false", "--authfile", &auth.display().to_string(), reference])
}

#[tokio::test(flavor = "multi_thread")]
async fn organizations_registry() -> anyhow::Result<()> {
    let mut p = Platform::start_with(&["--registry-listen", HOST]).await?;
    let admin = p.admin().await?;
    let rita = p.developer("registry_org", "rita", "Manager").await?;
    let eve = p.developer("registry_other", "eve", "Manager").await?;
    let (s, b) = admin.post("/op/v1/users", &json!({"name": "vic", "organization": "registry_org", "role": "Viewer", "password": PW})).await?;
    assert_eq!(s, 201, "{b}");
    let dir = tempfile::tempdir()?;
    let auth = |who: &str| dir.path().join(format!("{who}.json"));
    let image = format!("{HOST}/registry_org/hello:1.0");
    let (ok, out) = podman(&["tag", SAMPLE_IMAGE, &image]);
    assert!(ok, "{out}");

    // The organization's namespace is there as soon as the organization is.
    let (s, info) = rita.get("/op/v1/registry").await?;
    assert_eq!(s, 200, "{info}");
    assert_eq!(info["host"], HOST);
    assert_eq!(info["namespaces"][0]["prefix"], format!("{HOST}/registry_org/"));
    assert_eq!(info["namespaces"][0]["push"], true);

    // A Manager pushes with its password; wrong passwords do not log in.
    assert!(!login(&auth("bad"), "rita", "not-the-password").0, "a wrong password is refused");
    let (ok, out) = login(&auth("rita"), "rita", PW);
    assert!(ok, "{out}");
    let (ok, out) = push(&auth("rita"), &image);
    assert!(ok, "the organization's Manager pushes: {out}");

    // Another organization neither pushes to nor pulls from it; a Viewer pulls but does not push.
    let (ok, out) = login(&auth("eve"), "eve", PW);
    assert!(ok, "{out}");
    let (ok, out) = push(&auth("eve"), &image);
    assert!(!ok, "another organization cannot push here: {out}");
    let (ok, out) = pull(&auth("eve"), &image);
    assert!(!ok, "nor pull: {out}");
    let (ok, out) = login(&auth("vic"), "vic", PW);
    assert!(ok, "{out}");
    let (ok, out) = pull(&auth("vic"), &image);
    assert!(ok, "a Viewer pulls: {out}");
    let theirs = format!("{HOST}/registry_org/viewer-was-here:1");
    assert!(podman(&["tag", SAMPLE_IMAGE, &theirs]).0);
    let (ok, out) = push(&auth("vic"), &theirs);
    assert!(!ok, "a Viewer does not push: {out}");
    let _ = podman(&["rmi", &theirs]);

    // Single sign-on: a platform token and an API key are passwords too.
    let (ok, out) = login(&auth("rita-token"), "rita", rita.token.as_deref().unwrap_or_default());
    assert!(ok, "a platform token logs in: {out}");
    let v2 = format!("{HOST}/registry_org/hello:2.0");
    assert!(podman(&["tag", SAMPLE_IMAGE, &v2]).0);
    let (ok, out) = push(&auth("rita-token"), &v2);
    assert!(ok, "{out}");
    let (s, key) = rita.post("/op/v1/apikeys", &json!({"name": "ci", "role": "Contributor"})).await?;
    assert_eq!(s, 201, "{key}");
    let (ok, out) = login(&auth("ci"), "ci", key["key"].as_str().unwrap_or_default());
    assert!(ok, "an API key logs in: {out}");
    let (ok, out) = pull(&auth("ci"), &v2);
    assert!(ok, "{out}");

    // The token endpoint itself: a scope beyond the caller's rights is answered with less.
    let http = reqwest::Client::new();
    let url = format!("{}/op/v1/registry/token?service=op-registry&scope=repository:registry_other/x:pull,push&scope=repository:registry_org/hello:pull,push", p.url);
    let t: serde_json::Value = http.get(&url).basic_auth("vic", Some(PW)).send().await?.json().await?;
    let claims = t["token"].as_str().and_then(|t| t.split('.').nth(1)).map(|c| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).unwrap_or_default()
    });
    let claims: serde_json::Value = serde_json::from_slice(&claims.unwrap_or_default())?;
    assert_eq!(claims["access"], json!([
        {"type": "repository", "name": "registry_other/x", "actions": []},
        {"type": "repository", "name": "registry_org/hello", "actions": ["pull"]},
    ]), "{claims}");
    assert_eq!((claims["aud"].as_str(), claims["sub"].as_str()), (Some("op-registry"), Some("vic")));
    let r = http.get(&url).basic_auth("vic", Some("wrong")).send().await?;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let r = http.get(format!("{}/op/v1/registry/token?service=elsewhere", p.url)).send().await?;
    assert_eq!(r.status(), 400, "another service is named as the bad field");
    let r = http.post(format!("{}/op/v1/registry/events", p.url)).body("{\"events\":[]}").send().await?;
    assert_eq!(r.status(), 401, "notifications only from the registry");

    // Versions are tracked from the registry's notifications: who pushed what, when.
    let mut versions = json!([]);
    for _ in 0..50 {
        let (_, v) = rita.get("/op/v1/registry/images").await?;
        if v.as_array().map(Vec::len) == Some(2) {
            versions = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(versions[0]["reference"], image, "{versions}");
    assert_eq!(versions[0]["pushedBy"], "rita");
    assert!(versions[0]["digest"].as_str().unwrap_or_default().starts_with("sha256:"), "{versions}");
    assert_eq!(versions[1]["tag"], "2.0");
    let (_, none) = eve.get("/op/v1/registry/images").await?;
    assert_eq!(none.as_array().map(Vec::len), Some(0), "another organization sees none of them: {none}");

    // Deploy from the registry: the cloudlet lacks the image, pulls it with the platform's
    // credentials, and runs it; a second instance uses the cached image.
    let (ok, out) = podman(&["rmi", &image]);
    assert!(ok, "{out}");
    let zone = p.zone_id(&rita, "local").await?;
    let mut m = sample_manifest("registry_org", "hello");
    m["appRepo"]["imagePath"] = json!(image);
    let (s, b) = rita.post(&format!("{CAMARA}/apps"), &m).await?;
    assert_eq!(s, 201, "{b}");
    let app = b["appId"].as_str().unwrap_or_default().to_string();
    let first = rita.deploy("hello_1", &app, &zone).await?;
    let inst = rita.wait_ready(&first, Duration::from_secs(90)).await?;
    let body = http_get_ok(&endpoint(&inst)?, Duration::from_secs(10)).await?;
    assert!(body.contains("hello"), "{body}");
    let second = rita.deploy("hello_2", &app, &zone).await?;
    rita.wait_ready(&second, Duration::from_secs(90)).await?;
    // The registry's notifications arrive on their own time: wait for the pull, then check
    // that it stays the only one.
    let v1 = || async {
        let (_, versions) = admin.get("/op/v1/registry/images?organization=registry_org").await?;
        anyhow::Ok(versions.as_array().into_iter().flatten().find(|v| v["tag"] == "1.0").cloned().unwrap_or_default())
    };
    for _ in 0..100 {
        if v1().await?["cloudlets"]["local-docker"] != json!(null) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let v1 = v1().await?;
    assert_eq!(v1["cloudlets"]["local-docker"], 1, "pulled once by the cloudlet, then cached: {v1}");
    assert_eq!(v1["usedBy"], json!([app]), "{v1}");
    let (_, dev_view) = rita.get("/op/v1/registry/images").await?;
    assert!(!dev_view.to_string().contains("local-docker"), "developers see counts, not cloudlets: {dev_view}");

    // An image that was never pushed, or another organization's, is refused at deployment.
    for (reference, why) in [(format!("{HOST}/registry_org/hello:9.9"), "push it first"), (format!("{HOST}/registry_other/hello:1.0"), "belongs to organization")] {
        let mut m = sample_manifest("registry_org", "missing");
        m["appRepo"]["imagePath"] = json!(reference);
        m["name"] = json!(format!("m{}", reference.len()));
        let (s, b) = rita.post(&format!("{CAMARA}/apps"), &m).await?;
        assert_eq!(s, 201, "{b}");
        let (s, b) = rita
            .post(&format!("{CAMARA}/appinstances"), &json!({"name": "nope", "appId": b["appId"], "edgeCloudZoneId": zone}))
            .await?;
        assert_eq!(s, 400, "{b}");
        assert!(b["message"].as_str().unwrap_or_default().contains("appRepo.imagePath") && b["message"].as_str().unwrap_or_default().contains(why), "{b}");
    }

    // opctl shows the same.
    let out = p.opctl_as(&rita, &["registry", "images"])?;
    assert!(out.contains(&image) && out.contains("rita"), "{out}");
    let out = p.opctl_as(&rita, &["registry", "info"])?;
    assert!(out.contains("registry_org") && out.contains("pull, push"), "{out}");

    // kill -9: opd stops the registry it left behind and starts its own on the same storage.
    p.kill9();
    p.restart().await?;
    let (ok, out) = pull(&auth("vic"), &v2);
    assert!(ok, "the registry is back with its images: {out}");
    let (_, after) = rita.get("/op/v1/registry/images").await?;
    assert_eq!(after.as_array().map(Vec::len), Some(2), "{after}");

    for i in [first, second] {
        let _ = rita.delete(&format!("{CAMARA}/appinstances/{i}")).await?;
        rita.wait_gone(&i, Duration::from_secs(60)).await?;
    }
    let _ = podman(&["rmi", &v2, &image]);
    Ok(())
}
