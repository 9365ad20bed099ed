//! Placement at admission, on modelled cloudlets: the engine passes over an edge in
//! maintenance, one without the flavor and one without room, picks by the operator's weights,
//! falls back to the next flavor that fits when the smallest has no room, and explains the
//! decision: the zone-level account to the developer, each edge's outcome to
//! the operator only.

use op_e2e::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn admission_places_and_explains() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let admin = p.admin().await?;
    let (s, e) = admin.post("/op/v1/zones", &json!({"name": "metro", "spec": {"region": "default",
        "location": {"latitude": 48.85, "longitude": 2.35}, "serviceArea": {"cells": ["c1"]}}})).await?;
    assert_eq!(s, 201, "{e}");
    // m-1 in maintenance, m-2 offers only `large`, m-3 has room for one `small`, m-4 for many.
    for (name, vcpus, flavors, maintenance) in [("m-1", 8, vec!["small"], true), ("m-2", 8, vec!["large"], false),
        ("m-3", 1, vec!["small"], false), ("m-4", 8, vec!["small"], false)] {
        let (s, e) = admin.post("/op/v1/cloudlets", &json!({"name": name, "spec": {"zone": "metro",
            "location": {"latitude": 48.85, "longitude": 2.35}, "platformType": "sim", "driverEndpoint": format!("sim://{name}"),
            "capacity": {"vcpus": vcpus, "memoryMb": 16384, "diskGb": 100}, "flavors": flavors, "maintenance": maintenance}})).await?;
        assert_eq!(s, 201, "{e}");
    }
    let dev = p.developer("place_org", "pia", "Manager").await?;
    let zone = p.zone_id(&dev, "metro").await?;
    let app = dev.sample_app("place_org", "placed", json!({})).await?;
    let detail = |api: &Api, id: &str| {
        let (api, id) = (api.clone(), id.to_string());
        async move { api.get(&format!("/op/v1/appinstances/{id}")).await }
    };

    // First instance: m-3 and m-4 tie (idle, app not deployed); the lower name wins.
    let first = dev.deploy("placed_1", &app, &zone).await?;
    let (_, inst) = detail(&admin, &first).await?;
    assert_eq!(inst["spec"]["cloudlet"], "m-3", "{inst}");
    assert_eq!(inst["spec"]["flavor"], "small");

    // Second: m-3 is full now.
    let second = dev.deploy("placed_2", &app, &zone).await?;
    let (_, inst) = detail(&admin, &second).await?;
    assert_eq!(inst["spec"]["cloudlet"], "m-4", "{inst}");
    let edges: Vec<(String, String)> = inst["observed"]["placement"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (e["cloudlet"].as_str().unwrap_or_default().to_string(), e["outcome"].as_str().unwrap_or_default().to_string()))
        .collect();
    let outcome = |n: &str| edges.iter().find(|(c, _)| c == n).map(|(_, o)| o.clone()).unwrap_or_default();
    assert!(outcome("m-1").starts_with("ruled out: unavailable"), "{edges:?}");
    assert!(outcome("m-2").starts_with("ruled out: does not offer the flavor"), "{edges:?}");
    assert!(outcome("m-3").starts_with("ruled out: no CPU capacity left"), "{edges:?}");
    assert!(outcome("m-4").starts_with("chosen: cost"), "{edges:?}");

    // The developer gets the account without edge names or costs per edge.
    let (s, mine) = detail(&dev, &second).await?;
    assert_eq!(s, 200);
    let summary = mine["observed"]["placement"]["summary"].as_str().unwrap_or_default().to_string();
    assert!(summary.contains("zone metro") && summary.contains("no CPU capacity left"), "{summary}");
    assert!(mine["observed"]["placement"].get("edges").is_none(), "{mine}");
    assert_eq!(mine["spec"]["cloudlet"], "hidden", "developers never see cloudlet names");
    for name in ["m-1", "m-2", "m-3", "m-4"] {
        assert!(!summary.contains(name), "{summary}");
    }

    // m-4 takes seven more `small`; then the next larger flavor that fits is used where it is
    // offered (m-2, two `large`), then the zone is full.
    for i in 3..10 {
        dev.deploy(&format!("placed_{i}"), &app, &zone).await?;
    }
    for i in 10..12 {
        let id = dev.deploy(&format!("placed_{i}"), &app, &zone).await?;
        let (_, inst) = detail(&admin, &id).await?;
        assert_eq!((inst["spec"]["cloudlet"].as_str(), inst["spec"]["flavor"].as_str()), (Some("m-2"), Some("large")), "{inst}");
    }
    let (s, e) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": "placed_x", "appId": app, "edgeCloudZoneId": zone})).await?;
    assert_eq!((s, e["code"].as_str()), (409, Some("ABORTED")), "{e}");

    // A flavor no available cloudlet offers is no choice for developers (m-5, in maintenance,
    // is the only one with `gpu_xl`); the operator still sees it.
    let (s, e) = admin.post("/op/v1/flavors", &json!({"name": "gpu_xl", "spec": {"vcpus": 4, "memoryMb": 4096, "diskGb": 10, "gpus": 1}})).await?;
    assert_eq!(s, 201, "{e}");
    let (s, e) = admin.post("/op/v1/cloudlets", &json!({"name": "m-5", "spec": {"zone": "metro",
        "location": {"latitude": 48.85, "longitude": 2.35}, "platformType": "sim", "driverEndpoint": "sim://m-5",
        "capacity": {"vcpus": 8, "memoryMb": 16384, "diskGb": 100, "gpus": 2}, "flavors": ["gpu_xl"], "maintenance": true}})).await?;
    assert_eq!(s, 201, "{e}");
    let names = |v: serde_json::Value| v.as_array().into_iter().flatten().filter_map(|f| f["metadata"]["name"].as_str().map(str::to_string)).collect::<Vec<_>>();
    let (_, mine) = dev.get("/op/v1/flavors").await?;
    let (_, all) = admin.get("/op/v1/flavors").await?;
    assert!(!names(mine).contains(&"gpu_xl".to_string()));
    assert!(names(all).contains(&"gpu_xl".to_string()));
    assert_eq!(dev.get("/op/v1/flavors/gpu_xl").await?.0, 404);
    assert_eq!(dev.get("/op/v1/flavors/small").await?.0, 200);
    // An app moved with prior notice needs a zone whose sessions the network can steer (a
    // DNAI); the local zone has none.
    let moving = dev.sample_app("place_org", "moving", json!({"requirements": {"mobilityPolicy": "moveWithPriorNotice"}})).await?;
    let local_zone = p.zone_id(&dev, "local").await?;
    let (s, e) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": "moving_local", "appId": moving, "edgeCloudZoneId": local_zone})).await?;
    assert_eq!(s, 409, "{e}");
    assert!(e["message"].as_str().is_some_and(|m| m.contains("no mobility support")), "{e}");
    // Per zone (what a developer can deploy there) and per cloudlet (operator only).
    let (s, here) = dev.get("/op/v1/zones/metro/flavors").await?;
    assert_eq!((s, names(here)), (200, vec!["small".to_string(), "large".to_string()]), "smallest first; gpu_xl only on m-5, in maintenance");
    let (_, local) = dev.get("/op/v1/zones/local/flavors").await?;
    assert_eq!(names(local), ["small", "medium", "large"]);
    let (s, on) = admin.get("/op/v1/cloudlets/m-5/flavors").await?;
    assert_eq!((s, names(on)), (200, vec!["gpu_xl".to_string()]));
    assert_eq!(dev.get("/op/v1/cloudlets/m-5/flavors").await?.0, 403, "developers never see cloudlets");
    assert_eq!(dev.get("/op/v1/zones/nowhere/flavors").await?.0, 404);

    // A zone outside the app's footprint or data geography is refused, naming the criterion.
    let local = p.zone_id(&dev, "local").await?;
    let (s, e) = admin.post("/op/v1/regions", &json!({"name": "elsewhere", "spec": {}})).await?;
    assert_eq!(s, 201, "{e}");
    for (name, requirements, criterion) in [
        ("fenced", json!({"footprint": {"zones": [local]}}), "requirements.footprint.zones"),
        ("sovereign", json!({"dataRegions": ["elsewhere"]}), "requirements.dataRegions"),
    ] {
        let app = dev.sample_app("place_org", name, json!({"requirements": requirements})).await?;
        let (s, e) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": format!("{name}_1"), "appId": app, "edgeCloudZoneId": zone})).await?;
        assert_eq!(s, 400, "{e}");
        let message = e["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("edgeCloudZoneId:") && message.contains(criterion), "{message}");
    }
    Ok(())
}

/// Strategies: the minimum cover of a footprint within a latency bound (six zones on a line,
/// each reaching its neighbours: two suffice), then every edge; asking again deploys nothing
/// twice.
#[tokio::test(flavor = "multi_thread")]
async fn strategies_cover_the_footprint() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let admin = p.admin().await?;
    let (s, e) = admin.post("/op/v1/regions", &json!({"name": "line", "spec": {}})).await?;
    assert_eq!(s, 201, "{e}");
    for i in 1..=6 {
        // 50 km apart along a meridian (0.45 degrees of latitude).
        let lat = 44.0 + 0.45 * f64::from(i);
        let (s, e) = admin.post("/op/v1/zones", &json!({"name": format!("z{i}"), "spec": {"region": "line",
            "location": {"latitude": lat, "longitude": 3.0}, "serviceArea": {"cells": [format!("cell{i}a"), format!("cell{i}b")]}}})).await?;
        assert_eq!(s, 201, "{e}");
        let (s, e) = admin.post("/op/v1/cloudlets", &json!({"name": format!("z{i}-1"), "spec": {"zone": format!("z{i}"),
            "location": {"latitude": lat, "longitude": 3.0}, "platformType": "sim", "driverEndpoint": format!("sim://z{i}"),
            "capacity": {"vcpus": 8, "memoryMb": 16384, "diskGb": 100}, "flavors": ["small"]}})).await?;
        assert_eq!(s, 201, "{e}");
    }
    let dev = p.developer("line_org", "lena", "Manager").await?;
    let app = dev.sample_app("line_org", "liner", json!({"requirements": {"footprint": {"regions": ["line"]}}})).await?;
    let path = format!("/op/v1/apps/{app}/placements");

    let (s, e) = dev.post(&path, &json!({"strategy": "minimumCover"})).await?;
    assert_eq!(s, 400, "{e}");
    assert!(e["message"].as_str().unwrap_or_default().starts_with("maxLatencyMs:"), "{e}");

    // 1 ms + 50 km / 100 km per ms = 1.5 ms to a neighbour, 2.0 ms two zones away.
    let (s, plan) = dev.post(&path, &json!({"strategy": "minimumCover", "maxLatencyMs": 1.6})).await?;
    assert_eq!(s, 202, "{plan}");
    let zones = |v: &serde_json::Value, outcome: &str| {
        let mut z: Vec<String> = v["zones"].as_array().into_iter().flatten()
            .filter(|z| z["outcome"] == outcome).filter_map(|z| z["edgeCloudZoneName"].as_str().map(str::to_string)).collect();
        z.sort();
        z
    };
    assert_eq!(zones(&plan, "created"), vec!["z2", "z5"], "{plan}");
    assert_eq!((plan["method"].as_str(), plan["lowerBound"].as_u64()), (Some("exact"), Some(2)), "{plan}");

    let (_, again) = dev.post(&path, &json!({"strategy": "minimumCover", "maxLatencyMs": 1.6})).await?;
    assert_eq!(zones(&again, "existing"), vec!["z2", "z5"], "{again}");
    assert!(zones(&again, "created").is_empty());

    let (s, every) = dev.post(&path, &json!({"strategy": "everyEdge"})).await?;
    assert_eq!(s, 202, "{every}");
    assert_eq!(zones(&every, "created"), vec!["z1", "z3", "z4", "z6"], "{every}");
    assert_eq!(zones(&every, "existing"), vec!["z2", "z5"], "{every}");
    let (_, list) = dev.get(&format!("{CAMARA}/appinstances?appId={app}")).await?;
    assert_eq!(list.as_array().map(Vec::len), Some(6), "one instance per zone, never two");

    // Another organization cannot place this app.
    let other = p.developer("other_org", "otto", "Manager").await?;
    assert_eq!(other.post(&path, &json!({"strategy": "everyEdge"})).await?.0, 404);
    Ok(())
}

/// The operator's placement policy: barring rules rule edges (and apps) out, and a weight
/// matrix per app class changes where instances go; the policy named after a zone's region
/// applies there.
#[tokio::test(flavor = "multi_thread")]
async fn operator_policy_bars_and_weighs() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let admin = p.admin().await?;
    assert_eq!(admin.post("/op/v1/regions", &json!({"name": "west", "spec": {}})).await?.0, 201);
    let (s, e) = admin.post("/op/v1/zones", &json!({"name": "brest", "spec": {"region": "west",
        "location": {"latitude": 48.39, "longitude": -4.49}, "serviceArea": {"cells": ["b1"]}}})).await?;
    assert_eq!(s, 201, "{e}");
    for name in ["p-1", "p-2"] {
        let (s, e) = admin.post("/op/v1/cloudlets", &json!({"name": name, "spec": {"zone": "brest",
            "location": {"latitude": 48.39, "longitude": -4.49}, "platformType": "sim", "driverEndpoint": format!("sim://{name}"),
            "capacity": {"vcpus": 8, "memoryMb": 16384, "diskGb": 100}, "flavors": ["small"]}})).await?;
        assert_eq!(s, 201, "{e}");
    }
    let dev = p.developer("policy_org", "polly", "Manager").await?;
    let zone = p.zone_id(&dev, "brest").await?;
    let plain = dev.sample_app("policy_org", "plain", json!({})).await?;
    let spread = dev.sample_app("policy_org", "spread", json!({"requirements": {"appClass": "spread"}})).await?;
    let cloudlet_of = |id: String| {
        let admin = admin.clone();
        async move { anyhow::Ok(admin.get(&format!("/op/v1/appinstances/{id}")).await?.1["spec"]["cloudlet"].as_str().unwrap_or_default().to_string()) }
    };

    // Bad weights are refused by name; developers cannot read or write policies.
    let (s, e) = admin.post("/op/v1/placementpolicies", &json!({"name": "west", "spec": {"weights": {"edgeLoad": -1}}})).await?;
    assert_eq!(s, 400);
    assert!(e["message"].as_str().unwrap_or_default().starts_with("spec.weights.edgeLoad"), "{e}");
    assert_eq!(dev.post("/op/v1/placementpolicies", &json!({"name": "west", "spec": {}})).await?.0, 403);

    // The region's policy: p-1 barred; the `spread` class weighs load heavily and deployment not at all.
    let (s, e) = admin.post("/op/v1/placementpolicies", &json!({"name": "west", "spec": {"barredCloudlets": ["p-1"],
        "byClass": {"spread": {"edgeLoad": 50, "notDeployed": 0}}}})).await?;
    assert_eq!(s, 201, "{e}");
    let first = dev.deploy("plain_1", &plain, &zone).await?;
    assert_eq!(cloudlet_of(first.clone()).await?, "p-2");
    let (_, inst) = admin.get(&format!("/op/v1/appinstances/{first}")).await?;
    let edges = inst["observed"]["placement"]["edges"].to_string();
    assert!(edges.contains("barred by the operator"), "{edges}");

    // Without the bar (the policy replaced whole): the plain app stays together (already
    // deployed wins over a little load), the spread class goes where the load is lowest.
    let (s, e) = dev.put("/op/v1/placementpolicies/west", &json!({"spec": {}})).await?;
    assert_eq!(s, 403, "{e}");
    let (s, e) = admin.put("/op/v1/placementpolicies/west", &json!({"spec": {"byClass": {"spread": {"edgeLoad": 50, "notDeployed": 0}}}})).await?;
    assert_eq!(s, 200, "{e}");
    assert!(e["spec"].get("barredCloudlets").is_none(), "{e}");
    let second = dev.deploy("plain_2", &plain, &zone).await?;
    assert_eq!(cloudlet_of(second).await?, "p-2", "with the app already there");
    let s1 = cloudlet_of(dev.deploy("spread_1", &spread, &zone).await?).await?;
    assert_eq!(s1, "p-1", "p-2 carries two instances already");
    let s2 = cloudlet_of(dev.deploy("spread_2", &spread, &zone).await?).await?;
    assert_eq!(s2, "p-1", "p-1 has one, p-2 two");
    let s3 = cloudlet_of(dev.deploy("spread_3", &spread, &zone).await?).await?;
    assert_eq!(s3, "p-1", "tie at two each: the lower id");

    // An app barred everywhere is refused as such.
    let (s, e) = admin.post("/op/v1/placementpolicies", &json!({"name": "default", "spec": {"barredApps": [plain]}})).await?;
    assert_eq!(s, 201, "{e}");
    assert_eq!(admin.delete("/op/v1/placementpolicies/west").await?.0, 204);
    let (s, e) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": "plain_3", "appId": plain, "edgeCloudZoneId": zone})).await?;
    assert_eq!((s, e["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{e}");
    Ok(())
}

/// Usage is sampled per cloudlet and its forecast weighs in the decision (and its explanation).
#[tokio::test(flavor = "multi_thread")]
async fn usage_forecasts_weigh_in() -> anyhow::Result<()> {
    let p = Platform::start_with(&["--usage-sample-ms", "100"]).await?;
    let admin = p.admin().await?;
    let (s, e) = admin.post("/op/v1/zones", &json!({"name": "solo", "spec": {"region": "default",
        "location": {"latitude": 43.6, "longitude": 1.44}, "serviceArea": {"cells": ["t1"]}}})).await?;
    assert_eq!(s, 201, "{e}");
    let (s, e) = admin.post("/op/v1/cloudlets", &json!({"name": "solo-1", "spec": {"zone": "solo",
        "location": {"latitude": 43.6, "longitude": 1.44}, "platformType": "sim", "driverEndpoint": "sim://solo-1",
        "capacity": {"vcpus": 8, "memoryMb": 16384, "diskGb": 100}, "flavors": ["small"]}})).await?;
    assert_eq!(s, 201, "{e}");
    let dev = p.developer("usage_org", "ursula", "Manager").await?;
    let zone = p.zone_id(&dev, "solo").await?;
    let app = dev.sample_app("usage_org", "busy", json!({})).await?;
    let first = dev.deploy("busy_1", &app, &zone).await?;
    let (_, inst) = admin.get(&format!("/op/v1/appinstances/{first}")).await?;
    assert!(!inst["observed"]["placement"].to_string().contains("forecast usage"), "no history yet: {inst}");
    dev.deploy("busy_2", &app, &zone).await?;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let third = dev.deploy("busy_3", &app, &zone).await?;
    let (_, inst) = admin.get(&format!("/op/v1/appinstances/{third}")).await?;
    let edges = inst["observed"]["placement"]["edges"].to_string();
    // Small instances on eight vCPUs: a load of 0.125 rising to 0.25, which the
    // forecast carries on (weight 0.5).
    let part: f64 = edges.split("forecast usage ").nth(1).and_then(|r| r.split(|c: char| c != '.' && !c.is_ascii_digit()).next()).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    assert!(part >= 0.12, "the forecast weighs in: {edges}");
    Ok(())
}
