//! A platform split into a global plane and two regions' controllers, each region's data in its
//! own etcd prefix (its own cluster in production): the developer works through the global
//! plane only, which passes every regional call to the region's controller; the regions'
//! data never reaches the global plane's store nor the other region's; each controller applies
//! its region's regulation and refuses what belongs elsewhere.

use std::time::Duration;

use anyhow::{ensure, Context};
use op_e2e::*;
use op_store::etcd_lab::EtcdLab;
use op_store::{Engine, EtcdEngine, EtcdSettings};
use serde_json::{json, Value};

/// Removes the containers of a region's controller (labelled with the platform id and the
/// region) however the test ends: `Platform`'s own clean-up knows only the plain id.
struct RegionContainers(Vec<String>);

impl Drop for RegionContainers {
    fn drop(&mut self) {
        for label in &self.0 {
            let host = docker_endpoint();
            let out = std::process::Command::new("podman")
                .args(["--url", &host, "ps", "-aq", "--filter", &format!("label={}={label}", op_driver::LABEL_PLATFORM)])
                .output();
            if let Ok(out) = out {
                let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
                if !ids.is_empty() {
                    let _ = std::process::Command::new("podman").args(["--url", &host, "rm", "-f", "-t", "0"]).args(&ids).output();
                }
            }
        }
    }
}

/// Every key and value under `prefix` in the lab, as text.
async fn dump(lab: &EtcdLab, prefix: &str) -> anyhow::Result<Vec<(String, String)>> {
    let e = EtcdEngine::connect(EtcdSettings::new(lab.endpoints(), prefix)).await?;
    let (kvs, _) = e.range("/").await?;
    Ok(kvs.into_iter().map(|kv| (kv.key, String::from_utf8_lossy(&kv.value).into_owned())).collect())
}

fn regional(lab: &EtcdLab, region: &str, global_url: &str) -> Vec<String> {
    let ep = lab.endpoints().join(",");
    let prefix = format!("/op/region/{region}");
    ["--role", "regional", "--region", region, "--etcd-endpoints", &ep, "--etcd-prefix", &prefix, "--global-etcd-endpoints", &ep, "--global-etcd-prefix", "/op/global", "--global-url", global_url]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A global plane and the controllers of regions eu and us on a one-member etcd cluster. Fields
/// drop in order: the controllers first, then their containers, so nothing starts a probe again.
struct Split {
    eu: Platform,
    us: Platform,
    _cleanup: RegionContainers,
    global: Platform,
    lab: EtcdLab,
    _etcd_dir: tempfile::TempDir,
}

impl Split {
    async fn start() -> anyhow::Result<Self> {
        let etcd_dir = tempfile::tempdir()?;
        let lab = EtcdLab::start(etcd_dir.path(), 1).await?;
        let ep = lab.endpoints().join(",");
        let global = Platform::start_with(&["--role", "global", "--etcd-endpoints", &ep, "--etcd-prefix", "/op/global", "--no-default-cloudlet"]).await?;
        let id = std::fs::read_to_string(global.data_dir().join("platform-id"))?.trim().to_string();
        let cleanup = RegionContainers(vec![format!("{id}-eu"), format!("{id}-us")]);
        let eu = global.replica_of(&refs(&regional(&lab, "eu", &global.url))).await?;
        let us = global.replica_of(&refs(&regional(&lab, "us", &global.url))).await?;
        Ok(Self { eu, us, _cleanup: cleanup, global, lab, _etcd_dir: etcd_dir })
    }
}

fn cloudlet(name: &str, zone: &str) -> Value {
    json!({"name": name, "spec": {"zone": zone, "location": {"latitude": 48.0, "longitude": 2.0}, "platformType": "docker",
        "driverEndpoint": docker_endpoint(), "capacity": {"vcpus": 8, "memoryMb": 8192, "diskGb": 100}, "flavors": ["small"]}})
}

#[tokio::test(flavor = "multi_thread")]
async fn regions_keep_their_data_and_the_global_plane_routes_to_them() -> anyhow::Result<()> {
    let Split { eu, us, global, lab, .. } = &Split::start().await?;
    let admin = global.admin().await?;

    // The operator lays out both regions through the global plane; us lets nothing out.
    let (s, b) = admin.post("/op/v1/regions", &json!({"name": "eu", "spec": {"controllerUrl": eu.url}})).await?;
    ensure!(s == 201, "region eu: {s} {b}");
    let (s, b) = admin
        .post("/op/v1/regions", &json!({"name": "us", "spec": {"controllerUrl": us.url, "privacyPolicy": {"outboundAllowed": false}}}))
        .await?;
    ensure!(s == 201, "region us: {s} {b}");
    for (zone, region, cell) in [("eu-1", "eu", "c-eu-1"), ("eu-2", "eu", "c-eu-2"), ("us-1", "us", "c-us-1")] {
        let (s, b) = admin
            .post("/op/v1/zones", &json!({"name": zone, "spec": {"region": region, "location": {"latitude": 48.0, "longitude": 2.0}, "serviceArea": {"cells": [cell]}}}))
            .await?;
        ensure!(s == 201, "zone {zone}: {s} {b}");
    }
    // Flavors are regional: a create names its region.
    let small = json!({"name": "small", "spec": {"vcpus": 1, "memoryMb": 256, "diskGb": 10}});
    let (s, b) = admin.post("/op/v1/flavors", &small).await?;
    assert_eq!((s, b["message"].as_str().unwrap_or_default().contains("region")), (400, true), "a regional create without a region: {b}");
    for region in ["eu", "us"] {
        let (s, b) = admin.post(&format!("/op/v1/flavors?region={region}"), &small).await?;
        ensure!(s == 201, "flavor in {region}: {s} {b}");
    }
    // Cloudlets go to the region of their zone.
    for (name, zone) in [("eu-a", "eu-1"), ("eu-b", "eu-2"), ("us-a", "us-1")] {
        let (s, b) = admin.post("/op/v1/cloudlets", &cloudlet(name, zone)).await?;
        ensure!(s == 201, "cloudlet {name}: {s} {b}");
    }
    // A controller takes no cloudlet of another region, and writes nothing global.
    let eu_admin = eu.api(admin.token.clone());
    let (s, b) = eu_admin.post("/op/v1/cloudlets", &cloudlet("us-b", "us-1")).await?;
    assert_eq!(s, 421, "eu's controller refuses a cloudlet in us: {b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("region us"), "{b}");
    let (s, b) = eu_admin.post("/op/v1/organizations", &json!({"name": "sneaky_org", "spec": {}})).await?;
    assert_eq!(s, 421, "organizations are the global plane's: {b}");
    assert!(b["message"].as_str().unwrap_or_default().contains(&global.url), "{b}");

    // The operator sees every region's cloudlets through the global plane.
    let (s, list) = admin.get("/op/v1/cloudlets").await?;
    ensure!(s == 200, "cloudlets: {s} {list}");
    let mut names: Vec<&str> = list.as_array().context("a list")?.iter().filter_map(|c| c["metadata"]["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["eu-a", "eu-b", "us-a"]);

    // A developer of the global plane deploys an app to every cloudlet of region eu.
    let dev = global.developer("geography_org", "gina", "Contributor").await?;
    let small_app = json!({"requiredResources": {"infraKind": "container", "numCPU": "100m", "memory": 32}});
    let app = dev.sample_app("geography_org", "web", small_app.clone()).await?;
    let (s, placed) = dev.post(&format!("/op/v1/apps/{app}/placements?region=eu"), &json!({"strategy": "everyEdge"})).await?;
    ensure!(s == 202, "placement in eu: {s} {placed}");
    let (s, insts) = dev.get(&format!("{CAMARA}/appinstances?appId={app}")).await?;
    ensure!(s == 200, "instances: {s} {insts}");
    let ids: Vec<String> = insts.as_array().context("a list")?.iter().filter_map(|i| i["appInstanceId"].as_str().map(str::to_string)).collect();
    assert_eq!(ids.len(), 2, "one instance per cloudlet of eu: {insts}");
    for id in &ids {
        let inst = dev.wait_ready(id, Duration::from_secs(90)).await?;
        http_get_ok(&endpoint(&inst)?, Duration::from_secs(15)).await?;
    }
    let zones: Vec<&str> = insts.as_array().context("a list")?.iter().filter_map(|i| i["edgeCloudZoneId"].as_str()).collect();
    let eu1 = global.zone_id(&dev, "eu-1").await?;
    let eu2 = global.zone_id(&dev, "eu-2").await?;
    let us1 = global.zone_id(&dev, "us-1").await?;
    assert!(zones.contains(&eu1.as_str()) && zones.contains(&eu2.as_str()), "{insts}");

    // us's regulation lets nothing out: a plain instance there is refused by us's controller.
    let (s, b) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": "web_us", "appId": app, "edgeCloudZoneId": us1})).await?;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("regulation of region us"), "{b}");
    // A developer's stricter rule: this app's data stays in us, so eu's controller refuses it.
    let mut stay = small_app.clone();
    stay["requirements"] = json!({"dataRegions": ["us"]});
    let us_only = dev.sample_app("geography_org", "us_only", stay).await?;
    let (s, b) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": "stay_in_us", "appId": us_only, "edgeCloudZoneId": eu1})).await?;
    assert_eq!(s, 400, "data regions: {b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("dataRegions"), "{b}");

    // What a region keeps stays there: the global plane's store and the other region's hold no
    // trace of eu's cloudlets and instances; eu's holds them.
    let global_keys = dump(lab, "/op/global").await?;
    let us_keys = dump(lab, "/op/region/us").await?;
    let eu_keys = dump(lab, "/op/region/eu").await?;
    for (k, v) in global_keys.iter().chain(&us_keys) {
        for needle in ids.iter().map(String::as_str).chain(["eu-a", "eu-b"]) {
            assert!(!k.contains(needle) && !v.contains(needle), "{needle} leaked out of eu at {k}");
        }
    }
    assert!(!global_keys.iter().any(|(k, _)| k.starts_with("/o/appinstances/") || k.starts_with("/o/cloudlets/")), "the global plane keeps no regional kind");
    for id in &ids {
        assert!(eu_keys.iter().any(|(k, _)| k == &format!("/o/appinstances/{id}")), "eu keeps instance {id}");
    }
    assert!(global_keys.iter().any(|(k, _)| k == &format!("/o/apps/{app}")), "the app is global");

    // The app cannot go while a region runs it; the instances go through the global plane.
    let (s, b) = dev.delete(&format!("{CAMARA}/apps/{app}")).await?;
    assert_eq!(s, 409, "{b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("region eu"), "{b}");
    for id in &ids {
        let (s, b) = dev.delete(&format!("{CAMARA}/appinstances/{id}")).await?;
        ensure!(s == 202 || s == 204, "delete {id}: {s} {b}");
    }
    for id in &ids {
        dev.wait_gone(id, Duration::from_secs(60)).await?;
    }
    let (s, b) = dev.delete(&format!("{CAMARA}/apps/{app}")).await?;
    ensure!(s == 204 || s == 202, "app delete: {s} {b}");
    Ok(())
}

/// The README's `regions` block, against a global plane and two regional controllers: what it
/// lays out lands in the right regions.
#[tokio::test(flavor = "multi_thread")]
async fn readme_regions_block_lays_out_two_regions() -> anyhow::Result<()> {
    let Split { eu, us, global, .. } = &Split::start().await?;
    run_readme_block_with("regions", global, &[("EU_URL", eu.url.clone()), ("US_URL", us.url.clone()), ("DOCKER_HOST", docker_endpoint())]).await?;

    let admin = global.admin().await?;
    let names = |list: &Value| -> Vec<String> {
        let mut v: Vec<String> = list.as_array().map(|a| a.iter().filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string)).collect()).unwrap_or_default();
        v.sort();
        v
    };
    let (_, all) = admin.get("/op/v1/cloudlets").await?;
    assert_eq!(names(&all), ["boston-1", "paris-1"], "{all}");
    let (_, eu_only) = eu.api(admin.token.clone()).get("/op/v1/cloudlets").await?;
    assert_eq!(names(&eu_only), ["paris-1"], "eu's controller keeps eu's cloudlet only: {eu_only}");
    let (_, us_only) = admin.get("/op/v1/cloudlets?region=us").await?;
    assert_eq!(names(&us_only), ["boston-1"], "{us_only}");
    let (_, region) = admin.get("/op/v1/regions/us").await?;
    assert_eq!(region["spec"]["privacyPolicy"]["outboundAllowed"], false, "{region}");
    Ok(())
}

/// Each region elects its own leader among its controller's replicas: a second replica of eu
/// waits while eu's first leads, takes over when it dies, and runs eu's controllers; us's
/// leader is not disturbed.
#[tokio::test(flavor = "multi_thread")]
async fn each_region_elects_its_own_leader() -> anyhow::Result<()> {
    let mut split = Split::start().await?;
    let admin = split.global.admin().await?;
    let on = |p: &Platform| p.api(admin.token.clone());
    on(&split.eu).wait_leads(Duration::from_secs(10)).await?;
    on(&split.us).wait_leads(Duration::from_secs(10)).await?;
    let mut args = regional(&split.lab, "eu", &split.global.url);
    args.extend(["--replica-id", "eu-2"].map(String::from));
    let eu2 = split.global.replica_of(&refs(&args)).await?;
    ensure!(!on(&eu2).leads().await?, "one leader per region");

    let (s, b) = admin.post("/op/v1/regions", &json!({"name": "eu", "spec": {"controllerUrl": split.eu.url}})).await?;
    ensure!(s == 201, "region: {s} {b}");
    let (s, b) = admin
        .post("/op/v1/zones", &json!({"name": "eu-1", "spec": {"region": "eu", "location": {"latitude": 48.0, "longitude": 2.0}, "serviceArea": {"cells": ["c1"]}}}))
        .await?;
    ensure!(s == 201, "zone: {s} {b}");
    split.eu.kill9();
    on(&eu2).wait_leads(Duration::from_secs(15)).await?;
    assert!(on(&split.us).leads().await?, "us keeps its leader");
    // eu's controllers now run on eu-2: a cloudlet created there is checked and goes Ready.
    let eu2_admin = on(&eu2);
    let (s, b) = eu2_admin.post("/op/v1/flavors", &json!({"name": "small", "spec": {"vcpus": 1, "memoryMb": 256}})).await?;
    ensure!(s == 201, "flavor: {s} {b}");
    let (s, b) = eu2_admin.post("/op/v1/cloudlets", &cloudlet("eu-a", "eu-1")).await?;
    ensure!(s == 201, "cloudlet: {s} {b}");
    let begun = std::time::Instant::now();
    loop {
        let (_, c) = eu2_admin.get("/op/v1/cloudlets/eu-a").await?;
        if c["status"]["state"] == "Ready" {
            break;
        }
        ensure!(begun.elapsed() < Duration::from_secs(30), "eu-a not Ready under the new leader: {c}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
