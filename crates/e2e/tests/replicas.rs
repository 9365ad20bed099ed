//! Several opd replicas of one region on a three-member etcd cluster (Debian's etcd, started
//! by the test): every replica serves the APIs, the elected leader alone runs the controllers.
//! - kill -9 of the leader during 100 deployments: the other replica takes over, and every
//!   instance reaches Ready with exactly one container;
//! - one etcd member down: no client sees an error; two down: writes fail with a clear 503 and
//!   succeed again once the members are back, with nothing lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use op_e2e::*;
use op_store::etcd_lab::EtcdLab;
use serde_json::json;

/// The args that put a replica named `id` on `lab` under `prefix`. Replicas of one platform
/// share its public URL (the address of their load balancer in production), which names the
/// issuer of its tokens: a token from one replica works on every other.
fn on_etcd(lab: &EtcdLab, prefix: &str, id: &str) -> Vec<String> {
    let public = format!("http://op{}.region.test", prefix.replace('/', "-"));
    ["--etcd-endpoints", &lab.endpoints().join(","), "--etcd-prefix", prefix, "--replica-id", id, "--leader-ttl-secs", "2", "--public-url", &public]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_killed_during_100_deployments_converges_exactly_once() -> anyhow::Result<()> {
    let etcd_dir = tempfile::tempdir()?;
    let lab = EtcdLab::start(etcd_dir.path(), 3).await?;
    let mut a = Platform::start_with(&refs(&on_etcd(&lab, "/op/failover", "replica-a"))).await?;
    let admin_a = a.admin().await?;
    admin_a.wait_leads(Duration::from_secs(10)).await?;
    let b = a.replica_of(&refs(&on_etcd(&lab, "/op/failover", "replica-b"))).await?;
    let admin_b = b.admin().await?;
    ensure!(!admin_b.leads().await?, "one leader at a time");

    // A second Podman cloudlet in the zone: the default one has disk for 50 small instances.
    let (s, e) = admin_a
        .post("/op/v1/cloudlets", &json!({"name": "local-2", "spec": {"zone": "local",
            "location": {"latitude": 48.85, "longitude": 2.35}, "platformType": "docker",
            "driverEndpoint": docker_endpoint(), "capacity": {"vcpus": 64, "memoryMb": 65536, "diskGb": 1000}, "flavors": ["small"]}}))
        .await?;
    ensure!(s == 201, "second cloudlet: {s} {e}");
    let dev_a = a.developer("failover_org", "fran", "Contributor").await?;
    // The same user's token, through the other replica: both serve the same platform.
    let dev_b = b.api(dev_a.token.clone());
    let zone = b.zone_id(&dev_b, "local").await?;
    let app = dev_b
        .sample_app("failover_org", "steady", json!({"requiredResources": {"infraKind": "container", "numCPU": "100m", "memory": 32}}))
        .await?;

    // 100 deployments, alternating between the replicas; the leader dies after the 40th.
    let mut ids = BTreeMap::new();
    for i in 0..100 {
        if i == 40 {
            a.kill9();
            eprintln!("killed the leader after {i} deployments");
        }
        let via = if i % 2 == 0 && i < 40 { &dev_a } else { &dev_b };
        let id = via.deploy(&format!("inst_{i:03}"), &app, &zone).await?;
        ids.insert(id, i);
    }
    admin_b.wait_leads(Duration::from_secs(15)).await?;
    for id in ids.keys() {
        dev_b.wait_ready(id, Duration::from_secs(240)).await?;
    }
    // Exactly one container per instance, and none besides.
    let containers = containers_of_platform(&b.data_dir()).await?;
    let per_instance: Vec<String> = containers.iter().filter_map(|c| c.labels.get(op_driver::LABEL_INSTANCE).cloned()).collect();
    ensure!(per_instance.len() == 100, "{} containers for 100 instances", per_instance.len());
    ensure!(per_instance.iter().cloned().collect::<BTreeSet<_>>() == ids.keys().cloned().collect::<BTreeSet<_>>(), "one per instance");
    // One answers.
    let first = dev_b.instance(ids.keys().next().context("an instance")?).await?.context("instance")?;
    http_get_ok(&endpoint(&first)?, Duration::from_secs(10)).await?;

    // The replica killed comes back as a follower.
    let a = a.replica_of(&refs(&on_etcd(&lab, "/op/failover", "replica-a"))).await?;
    let admin_a = a.admin().await?;
    ensure!(!admin_a.leads().await?, "the leader stays the leader");
    let (s, list) = a.api(dev_b.token.clone()).get(&format!("{CAMARA}/appinstances")).await?;
    ensure!(s == 200, "list through the old leader: {s} {list}");
    let listed = list.as_array().map(Vec::len).unwrap_or(0);
    ensure!(listed == 100, "every replica sees every instance: {listed}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_member_loss_is_invisible_and_quorum_loss_is_clear() -> anyhow::Result<()> {
    let etcd_dir = tempfile::tempdir()?;
    let mut lab = EtcdLab::start(etcd_dir.path(), 3).await?;
    let p = Platform::start_with(&refs(&on_etcd(&lab, "/op/members", "solo"))).await?;
    let dev = p.developer("members_org", "mia", "Contributor").await?;
    let mut made = Vec::new();
    let mut submit = |n: usize| {
        let name = format!("app{n:03}");
        made.push(name.clone());
        sample_manifest("members_org", &name)
    };
    for n in 0..10 {
        let (s, b) = dev.post(&format!("{CAMARA}/apps"), &submit(n)).await?;
        ensure!(s == 201, "submit: {s} {b}");
    }

    // One of three down (the one opd talks to first): every call still succeeds.
    lab.stop_member(0);
    for n in 10..40 {
        let (s, b) = dev.post(&format!("{CAMARA}/apps"), &submit(n)).await?;
        ensure!(s == 201, "submit with one member down: {s} {b}");
        let (s, b) = dev.get(&format!("{CAMARA}/apps")).await?;
        ensure!(s == 200, "list with one member down: {s} {b}");
    }

    // Two of three down: a write fails, clearly, within seconds.
    lab.stop_member(1);
    let begun = Instant::now();
    let (s, b) = dev.post(&format!("{CAMARA}/apps"), &sample_manifest("members_org", "lost")).await?;
    ensure!(s == 503, "no quorum: {s} {b}");
    let text = b.to_string();
    ensure!(text.contains("store unavailable") && text.contains("etcd"), "says what is wrong: {text}");
    ensure!(begun.elapsed() < Duration::from_secs(20), "fails within seconds, not a hang: {:?}", begun.elapsed());

    // Back: writes resume and nothing written before is lost.
    lab.start_member(0)?;
    lab.start_member(1)?;
    lab.wait_healthy(Duration::from_secs(30)).await?;
    let (s, b) = dev.post(&format!("{CAMARA}/apps"), &submit(40)).await?;
    ensure!(s == 201, "writes resume: {s} {b}");
    let (_, apps) = dev.get(&format!("{CAMARA}/apps")).await?;
    let names: BTreeSet<String> = apps.as_array().context("apps")?.iter().filter_map(|a| a["name"].as_str().map(str::to_string)).collect();
    for n in &made {
        ensure!(names.contains(n), "{n} lost: {names:?}");
    }
    Ok(())
}
