//! The mobility benchmark: a device sends steady requests to its app while the network
//! emulator moves it across the lab's ten cells and three zones (and back), once for a
//! stateless app that moves without notice and once for the stateful counter app that moves
//! with prior notice (MEC 021). Counts failed requests and the longest gap between successful
//! answers, checks the counter's state survived (each answer is the previous plus one), and
//! reads the time from trigger to decision of every relocation from the platform's records.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::StreamExt;
use op_device::DeviceClient;
use op_e2e::{app_token, docker_endpoint, sample_manifest, uni_lab, Api, Platform, CAMARA};
use op_types::uni::{AppRef, Device, DeviceIpv4Addr, RegisterRequest, UniEvent};
use serde_json::{json, Value};

/// Benchmark settings.
#[derive(clap::Args)]
pub struct MobilityArgs {
    /// Requests per second the device sends.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Time in each cell, ms.
    #[arg(long, default_value_t = 1500)]
    dwell_ms: u64,
}

const EVE: &str = "+33612340005";
const EVE_IP: &str = "10.45.0.5";
/// The trip: Paris's four cells, Lyon's three, Marseille's three, and back.
const TRIP: [&str; 10] = [
    "20801000000101", "20801000000102", "20801000000103", "20801000000104",
    "20801000000201", "20801000000202", "20801000000203",
    "20801000000301", "20801000000302", "20801000000303",
];

/// What one trip measured.
struct Trip {
    ok: usize,
    failed: usize,
    max_gap: Duration,
    /// Each answer's counter was the previous one plus one (stateful app).
    state_kept: bool,
    relocations: usize,
}

/// Marseille, the lab's third metro area, as a zone with a cloudlet.
async fn marseille(admin: &Api) -> Result<()> {
    let (s, e) = admin
        .post("/op/v1/zones", &json!({"name": "zone-marseille", "spec": {"region": "default", "dnai": "dnai-marseille",
            "location": {"latitude": 43.2965, "longitude": 5.3698}, "serviceArea": {"cells": &TRIP[7..]}}}))
        .await?;
    anyhow::ensure!(s == 201, "zone: {e}");
    let (s, e) = admin
        .post("/op/v1/cloudlets", &json!({"name": "zone-marseille-1", "spec": {"zone": "zone-marseille",
            "location": {"latitude": 43.2965, "longitude": 5.3698}, "platformType": "docker", "driverEndpoint": docker_endpoint(),
            "capacity": {"vcpus": 8, "memoryMb": 8192, "diskGb": 100}, "flavors": ["small"]}}))
        .await?;
    anyhow::ensure!(s == 201, "cloudlet: {e}");
    Ok(())
}

/// Onboards `name` and deploys it in every zone of the trip.
async fn deploy_everywhere(p: &Platform, dev: &Api, key_pem: &str, name: &str, image: &str, policy: &str) -> Result<()> {
    let mut m = sample_manifest("bench_moves", name);
    m["appRepo"]["imagePath"] = json!(image);
    m["deviceAuth"] = json!({"publicKeyPem": key_pem});
    m["requirements"] = json!({"mobilityPolicy": policy});
    let (s, b) = dev.post(&format!("{CAMARA}/apps"), &m).await?;
    anyhow::ensure!(s == 201, "{b}");
    let app = b["appId"].as_str().unwrap_or_default().to_string();
    let mut ids = Vec::new();
    for zone in ["zone-paris", "zone-lyon", "zone-marseille"] {
        let z = p.zone_id(dev, zone).await?;
        ids.push(dev.deploy(&format!("{name}_{}", &zone[5..]), &app, &z).await?);
    }
    for id in ids {
        dev.wait_ready(&id, Duration::from_secs(120)).await?;
    }
    Ok(())
}

/// One trip for app `name`, requesting `path` on the device's current instance.
async fn trip(p: &Platform, net: &op_e2e::Netemu, token: &str, name: &str, path: &str, counted: bool, a: &MobilityArgs) -> Result<Trip> {
    net.move_device(EVE, TRIP[0]).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let uni = DeviceClient::new(&p.url);
    let req = RegisterRequest {
        device: Device {
            phone_number: Some(EVE.into()),
            ipv4_address: Some(DeviceIpv4Addr { public_address: EVE_IP.parse()?, private_address: None, public_port: None }),
            ..Default::default()
        },
        app: AppRef { provider: "bench_moves".into(), name: name.into(), version: "1.0".into() },
        app_token: token.into(),
        location: None,
        max_alternatives: None,
    };
    let reg = loop {
        match uni.register(&req).await {
            Err(op_device::DeviceError::Api { status: 429, .. }) => tokio::time::sleep(Duration::from_millis(500)).await,
            other => break other?,
        }
    };
    let target = Arc::new(Mutex::new(format!("http://{}:{}", reg.endpoint.host, reg.endpoint.port)));
    let relocations = Arc::new(Mutex::new(0usize));
    let mut events = Box::pin(uni.watch(&reg.session_id, &reg.session_token).await?);
    let watcher = {
        let (target, relocations) = (target.clone(), relocations.clone());
        tokio::spawn(async move {
            while let Some(Ok(e)) = events.next().await {
                if let UniEvent::EdgeChanged { host, port, .. } = e {
                    *target.lock().unwrap_or_else(|e| e.into_inner()) = format!("http://{host}:{port}");
                    *relocations.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                }
            }
        })
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (target, stop, path) = (target.clone(), stop.clone(), path.to_string());
        let every = Duration::from_secs_f64(1.0 / a.rate);
        tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut out: Vec<(Instant, Option<u64>, bool)> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let url = format!("{}{path}", target.lock().unwrap_or_else(|e| e.into_inner()));
                let r = http.get(&url).send().await;
                let (ok, count) = match r {
                    Ok(r) if r.status().is_success() => (true, r.json::<Value>().await.ok().and_then(|v| v["count"].as_u64())),
                    _ => (false, None),
                };
                out.push((Instant::now(), count, ok));
            }
            anyhow::Ok(out)
        })
    };
    // Let the app see the device (the counter registers it with the mobility service).
    tokio::time::sleep(Duration::from_secs(1)).await;
    for cell in TRIP.iter().skip(1).chain(TRIP.iter().rev().skip(1)) {
        tokio::time::sleep(Duration::from_millis(a.dwell_ms)).await;
        net.move_device(EVE, cell).await?;
    }
    tokio::time::sleep(Duration::from_millis(a.dwell_ms)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let out = load.await??;
    watcher.abort();
    let ok = out.iter().filter(|o| o.2).count();
    let mut max_gap = Duration::ZERO;
    let mut last: Option<Instant> = None;
    for (t, _, good) in &out {
        if *good {
            if let Some(l) = last {
                max_gap = max_gap.max(*t - l);
            }
            last = Some(*t);
        }
    }
    let counts: Vec<u64> = out.iter().filter_map(|o| o.1).collect();
    let state_kept = !counted || (counts.len() == ok && counts.windows(2).all(|w| w[1] == w[0] + 1));
    let relocations = *relocations.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Trip { ok, failed: out.len() - ok, max_gap, state_kept, relocations })
}

/// Runs the benchmark; prints the RESULT line.
pub async fn run(a: MobilityArgs) -> Result<()> {
    let (net, p, admin) = uni_lab(&[]).await?;
    marseille(&admin).await?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let dev = p.developer("bench_moves", "bench", "Manager").await?;
    deploy_everywhere(&p, &dev, &key.public_key_pem(), "stateless", "localhost/op-sample-app:latest", "moveWithoutNotice").await?;
    deploy_everywhere(&p, &dev, &key.public_key_pem(), "stateful", "localhost/op-counter:latest", "moveWithPriorNotice").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let token = app_token(&key.serialize_pem(), "eve");
    let stateless = trip(&p, &net, &token, "stateless", "/", false, &a).await?;
    eprintln!(
        "stateless: {} ok, {} failed, {} relocations, longest gap {:.1} ms",
        stateless.ok,
        stateless.failed,
        stateless.relocations,
        stateless.max_gap.as_secs_f64() * 1000.0
    );
    let stateful = trip(&p, &net, &token, "stateful", &format!("/count?device={EVE_IP}"), true, &a).await?;
    eprintln!(
        "stateful: {} ok, {} failed, {} relocations, longest gap {:.1} ms, state kept: {}",
        stateful.ok,
        stateful.failed,
        stateful.relocations,
        stateful.max_gap.as_secs_f64() * 1000.0,
        stateful.state_kept
    );
    let (_, all) = admin.get("/op/v1/relocations").await?;
    let mut decisions: Vec<f64> = all.as_array().into_iter().flatten().filter_map(|r| r["spec"]["decisionMs"].as_f64()).collect();
    let cancelled = all.as_array().into_iter().flatten().filter(|r| r["observed"]["phase"] == "cancelled").count();
    if decisions.is_empty() || stateless.relocations == 0 || stateful.relocations == 0 {
        bail!("no relocation happened; opd log:\n{}", p.log());
    }
    decisions.sort_by(f64::total_cmp);
    let p99 = decisions[((decisions.len() as f64 * 0.99).ceil() as usize).clamp(1, decisions.len()) - 1];
    eprintln!("{} relocations recorded ({} cancelled); decision ms: {:?}", decisions.len(), cancelled, decisions);
    println!(
        "RESULT stateless_failed={} stateless_max_gap_ms={:.1} stateful_failed={} stateful_max_gap_ms={:.1} decision_p99_ms={:.3} state_kept={} relocations={} cancelled={}",
        stateless.failed,
        stateless.max_gap.as_secs_f64() * 1000.0,
        stateful.failed,
        stateful.max_gap.as_secs_f64() * 1000.0,
        p99,
        stateful.state_kept,
        decisions.len(),
        cancelled
    );
    Ok(())
}
