//! Organizations are isolated and roles are enforced: a developer of one organization can
//! neither list, read nor change another's objects; operator-only calls are refused to
//! developers; every call needs a valid token.

use std::time::Duration;

use op_e2e::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn organizations_are_isolated() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let a = p.developer("org_alpha", "anna", "Manager").await?;
    let b = p.developer("org_bravo", "boris", "Manager").await?;
    let zone = p.zone_id(&a, "local").await?;
    let app = a.sample_app("org_alpha", "secret_app", json!({"appRepo": {
        "type": "PRIVATEREPO", "imagePath": SAMPLE_IMAGE, "userName": "u", "credentials": "hunter2-secret"}})).await?;
    let inst = a.deploy("secret_1", &app, &zone).await?;

    // B sees nothing of A.
    let (s, apps) = b.get(&format!("{CAMARA}/apps")).await?;
    assert_eq!((s, apps.as_array().map(Vec::len)), (200, Some(0)));
    let (s, insts) = b.get(&format!("{CAMARA}/appinstances")).await?;
    assert_eq!((s, insts.as_array().map(Vec::len)), (200, Some(0)));
    let (s, insts) = b.get(&format!("{CAMARA}/appinstances?appInstanceId={inst}")).await?;
    assert_eq!((s, insts.as_array().map(Vec::len)), (200, Some(0)));
    assert_eq!(b.get(&format!("{CAMARA}/apps/{app}")).await?.0, 404);
    assert_eq!(b.get(&format!("/op/v1/appinstances/{inst}")).await?.0, 404);
    assert_eq!(b.get(&format!("/op/v1/appinstances/{inst}/logs")).await?.0, 404);
    // ...and cannot change it.
    assert_eq!(b.delete(&format!("{CAMARA}/apps/{app}")).await?.0, 404);
    assert_eq!(b.delete(&format!("{CAMARA}/appinstances/{inst}")).await?.0, 404);
    let (s, e) = b
        .post(&format!("{CAMARA}/appinstances"), &json!({"name": "steal", "appId": app, "edgeCloudZoneId": zone}))
        .await?;
    assert_eq!((s, e["code"].as_str()), (400, Some("INVALID_ARGUMENT")));
    // ...nor onboard in A's name.
    let (s, e) = b.post(&format!("{CAMARA}/apps"), &sample_manifest("org_alpha", "impostor")).await?;
    assert_eq!(s, 400, "{e}");
    assert!(e["message"].as_str().unwrap_or_default().contains("appProvider"));
    // Organizations and users of others are invisible.
    let (_, orgs) = b.get("/op/v1/organizations").await?;
    assert_eq!(orgs.as_array().map(|o| o.iter().map(|x| x["metadata"]["name"].clone()).collect::<Vec<_>>()), Some(vec![json!("org_bravo")]));
    assert_eq!(b.get("/op/v1/organizations/org_alpha").await?.0, 404);
    let (_, users) = b.get("/op/v1/users").await?;
    assert!(users.as_array().is_some_and(|u| u.iter().all(|x| x["organization"] == "org_bravo")));

    // A still has its instance, untouched; its secret is never returned.
    a.wait_ready(&inst, Duration::from_secs(60)).await?;
    let (_, got) = a.get(&format!("{CAMARA}/apps/{app}")).await?;
    assert_eq!(got["appManifest"]["appRepo"]["userName"], "u");
    assert!(!got.to_string().contains("hunter2-secret"));
    let (_, all) = a.get(&format!("{CAMARA}/apps")).await?;
    assert!(!all.to_string().contains("hunter2-secret"));

    // The operator sees both organizations' objects.
    let admin = p.admin().await?;
    let (_, apps) = admin.get(&format!("{CAMARA}/apps")).await?;
    assert_eq!(apps.as_array().map(Vec::len), Some(1));
    let (s, _) = a.delete(&format!("{CAMARA}/appinstances/{inst}")).await?;
    assert_eq!(s, 202);
    a.wait_gone(&inst, Duration::from_secs(30)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_and_authentication_are_enforced() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let dev = p.developer("org_charlie", "chris", "Contributor").await?;
    let viewer = {
        let admin = p.admin().await?;
        let (s, _) = admin
            .post("/op/v1/users", &json!({"name": "vera", "organization": "org_charlie", "role": "Viewer", "password": "viewer-password-1"}))
            .await?;
        assert_eq!(s, 201);
        p.api(Some(p.login("vera", "viewer-password-1").await?))
    };

    // Operator-only calls are refused to developers.
    let zone = json!({"name": "rogue", "spec": {"region": "default", "location": {"latitude": 1.0, "longitude": 1.0}, "serviceArea": {"cells": ["c1"]}}});
    let (s, e) = dev.post("/op/v1/zones", &zone).await?;
    assert_eq!((s, e["code"].as_str()), (403, Some("PERMISSION_DENIED")));
    assert_eq!(dev.get("/op/v1/cloudlets").await?.0, 403, "developers never see cloudlets");
    assert_eq!(dev.post("/op/v1/organizations", &json!({"name": "another_org", "spec": {}})).await?.0, 403);
    assert_eq!(dev.delete("/op/v1/flavors/small").await?.0, 403);
    assert_eq!(
        dev.post("/op/v1/users", &json!({"name": "mallory", "organization": "org_charlie", "role": "Manager", "password": "xxxxxxxxxxxxxxx"})).await?.0,
        403,
        "a Contributor cannot create users"
    );
    assert_eq!(
        dev.post("/op/v1/users", &json!({"name": "root2", "role": "OperatorAdmin", "password": "xxxxxxxxxxxxxxx"})).await?.0,
        403
    );
    // Developers can read zones and flavors.
    assert_eq!(dev.get("/op/v1/flavors").await?.0, 200);
    assert_eq!(dev.get(&format!("{CAMARA}/edge-cloud-zones")).await?.0, 200);

    // A Viewer reads but cannot write.
    let (s, _) = viewer.post(&format!("{CAMARA}/apps"), &sample_manifest("org_charlie", "nope")).await?;
    assert_eq!(s, 403);
    assert_eq!(viewer.get(&format!("{CAMARA}/apps")).await?.0, 200);

    // No token, a garbage token, a token signed by another platform: 401.
    let anon = p.api(None);
    let (s, e) = anon.get(&format!("{CAMARA}/apps")).await?;
    assert_eq!((s, e["code"].as_str()), (401, Some("UNAUTHENTICATED")));
    assert_eq!(p.api(Some("garbage".into())).get(&format!("{CAMARA}/apps")).await?.0, 401);
    let other = Platform::start().await?;
    let foreign = other.admin().await?;
    assert_eq!(p.api(foreign.token.clone()).get("/op/v1/zones").await?.0, 401);
    // Wrong password.
    assert!(p.login("chris", "wrong-password").await.is_err());
    Ok(())
}
