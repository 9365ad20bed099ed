//! `op-bench`: benchmark drivers. Each measures the platform and a baseline in the same run and
//! prints a last line `RESULT key=value ...`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use op_driver::docker::DockerDriver;
use op_driver::{ContainerSpec, Driver, PortProtocol, PortSpec};
use serde_json::{json, Value};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

mod mobility;
mod placement;
mod scale;
mod serverless;
mod uni;

/// The app a benchmark drives through the platform, and the runtime its baseline uses.
#[derive(clap::Args)]
pub struct AppTarget {
    /// opd API URL.
    #[arg(long)]
    pub api: String,
    /// Bearer token of the app's developer.
    #[arg(long)]
    pub token: String,
    /// The app's id.
    #[arg(long)]
    pub app: String,
    /// Runtime endpoint for the baseline.
    #[arg(long, default_value = "unix:///run/podman/podman.sock")]
    pub docker: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Scale: one region on etcd with simulated cloudlets; instances created through the API
    /// while a device discovers its edge.
    Scale(scale::ScaleArgs),
    /// Seed a data directory for the discovery benchmark (zones, sim cloudlets, apps, Ready
    /// instances, the UNI key) and mint session tokens for the devices.
    SeedUni(uni::SeedArgs),
    /// A minimal HTTP server on the same stack answering a fixed body: the discovery baseline.
    Baseline(uni::BaselineArgs),
    /// Placement: minimum covers on a synthetic operator against the exact optimum, and
    /// single-instance decisions per second.
    Placement(placement::PlacementArgs),
    /// Solves a cover problem file exactly and prints the optimum's size (the placement
    /// benchmark's reference, run as a child so it can be given a time limit).
    ExactCover { file: std::path::PathBuf },
    /// Mobility: a device moved across ten cells and three zones while it uses a stateless and
    /// a stateful app; failed requests, longest gaps, decision times.
    Mobility(mobility::MobilityArgs),
    /// Open-loop load at a fixed rate; prints the latency percentiles.
    Latency(uni::LatencyArgs),
    /// Serverless: cold start through a point of presence vs. the runtime directly; warm
    /// latency through the ingress vs. straight to the instance.
    Serverless(serverless::ServerlessArgs),
    /// Time from create to first HTTP 200: through the NBI vs. directly through the runtime API.
    Deploy {
        #[command(flatten)]
        target: AppTarget,
        /// Zone id.
        #[arg(long)]
        zone: String,
        /// Image (same as the app's).
        #[arg(long, default_value = "localhost/op-sample-app:latest")]
        image: String,
        /// Samples per side.
        #[arg(long, default_value_t = 20)]
        n: usize,
    },
    /// Federation: create-to-first-200 of the sample app on a partner's zone (two opd over the
    /// EWBI) against the same on the originating platform's own zone, interleaved.
    Federation {
        /// Samples per side.
        #[arg(long, default_value_t = 10)]
        n: usize,
    },
}

const POLL: Duration = Duration::from_millis(5);

async fn first_200(http: &reqwest::Client, url: &str, deadline: Instant) -> Result<()> {
    loop {
        if let Ok(r) = http.get(url).timeout(Duration::from_millis(500)).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{url} never answered");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn direct_once(d: &DockerDriver, http: &reqwest::Client, image: &str, i: usize) -> Result<Duration> {
    let name = format!("bench-direct-{}-{i}", std::process::id());
    let spec = ContainerSpec {
        name: name.clone(),
        image: image.to_string(),
        env: BTreeMap::new(),
        ports: vec![PortSpec { container_port: 8080, protocol: PortProtocol::Tcp, host_port: None }],
        host_ip: "127.0.0.1".into(),
        millicpus: 1000,
        memory_bytes: 256 * 1024 * 1024,
        labels: BTreeMap::new(),
        network: None,
    };
    let t0 = Instant::now();
    let id = d.create(&spec).await?;
    d.start(&id).await?;
    let info = d.inspect(&id).await?.context("container vanished")?;
    let port = info.ports.first().context("no published port")?.host_port;
    first_200(http, &format!("http://127.0.0.1:{port}/"), t0 + Duration::from_secs(60)).await?;
    let took = t0.elapsed();
    d.remove(&id).await?;
    Ok(took)
}

async fn op_once(http: &reqwest::Client, api: &str, token: &str, app: &str, zone: &str, i: usize) -> Result<Duration> {
    let name = format!("bench_{}_{i}", std::process::id());
    let t0 = Instant::now();
    let r = http
        .post(format!("{api}/edge-application-management/v0.1alpha1/appinstances"))
        .bearer_auth(token)
        .json(&json!({"name": name, "appId": app, "edgeCloudZoneId": zone}))
        .send()
        .await?;
    if r.status().as_u16() != 202 {
        bail!("create: {} {}", r.status(), r.text().await?);
    }
    let id = r.json::<Value>().await?["appInstanceId"].as_str().context("id")?.to_string();
    let deadline = t0 + Duration::from_secs(60);
    let url = loop {
        let v: Value = http.get(format!("{api}/op/v1/appinstances/{id}")).bearer_auth(token).send().await?.json().await?;
        let e = &v["observed"]["endpoints"][0];
        if let (Some(h), Some(p)) = (e["host"].as_str(), e["port"].as_u64()) {
            break format!("http://{h}:{p}/");
        }
        if Instant::now() > deadline {
            bail!("no endpoint: {v}");
        }
        tokio::time::sleep(POLL).await;
    };
    first_200(http, &url, deadline).await?;
    let took = t0.elapsed();
    http.delete(format!("{api}/edge-application-management/v0.1alpha1/appinstances/{id}")).bearer_auth(token).send().await?;
    // Let the deletion finish so samples do not overlap.
    while http.get(format!("{api}/op/v1/appinstances/{id}")).bearer_auth(token).send().await?.status().as_u16() != 404 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(took)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() -> Result<()> {
    let cmd = Cli::parse().cmd;
    // One thread for the latency meter (plus its pacer): on a small machine every extra
    // runnable thread is a chance to be descheduled mid-measurement.
    let rt = match cmd {
        Cmd::Latency(_) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        _ => tokio::runtime::Runtime::new()?,
    };
    rt.block_on(run(cmd))
}

async fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Scale(a) => scale::run(a).await?,
        Cmd::SeedUni(a) => uni::seed(a).await?,
        Cmd::Baseline(a) => uni::baseline(a).await?,
        Cmd::Latency(a) => uni::latency(a).await?,
        Cmd::Mobility(a) => mobility::run(a).await?,
        Cmd::ExactCover { file } => placement::exact_cover(&file)?,
        Cmd::Placement(a) => {
            let (gap, ms, n) = placement::covers(&a)?;
            let rate = placement::decisions(&a, 3.0)?;
            println!("RESULT cover_gap_pct={gap:.2} cover_ms={ms:.1} decisions_per_s={rate:.0} compared={n}");
        }
        Cmd::Federation { n } => {
            let pair = op_e2e::federation::Pair::start().await?;
            let admin = pair.a.admin().await?;
            let (remote, local) = (pair.a.zone_id(&admin, op_e2e::federation::ZONE_ON_A).await?, pair.a.zone_id(&admin, "local").await?);
            let dev = pair.a.developer("bench_fed", "bench_fed_dev", "Manager").await?;
            let app = dev.sample_app("bench_fed", "bench_fed_app", json!({})).await?;
            let token = dev.token.clone().context("developer token")?;
            let http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
            // The first federated deployment carries the image to the partner: measured apart.
            let first = op_once(&http, &pair.a.url, &token, &app, &remote, 1000).await?.as_secs_f64() * 1000.0;
            eprintln!("first federated deployment (uploads the image): {first:.1} ms");
            let (mut fed, mut own) = (Vec::new(), Vec::new());
            for i in 0..n {
                own.push(op_once(&http, &pair.a.url, &token, &app, &local, i).await?.as_secs_f64() * 1000.0);
                fed.push(op_once(&http, &pair.a.url, &token, &app, &remote, n + i).await?.as_secs_f64() * 1000.0);
                eprintln!("sample {i}: local {:.1} ms, federated {:.1} ms", own[i], fed[i]);
            }
            own.sort_by(f64::total_cmp);
            fed.sort_by(f64::total_cmp);
            let (l50, f50) = (pct(&own, 0.5), pct(&fed, 0.5));
            println!("RESULT federated_deploy_ratio={:.3} federated_p50_ms={f50:.1} local_p50_ms={l50:.1} first_federated_ms={first:.1}", f50 / l50);
        }
        Cmd::Serverless(a) => serverless::run(a).await?,
        Cmd::Deploy { target: AppTarget { api, token, app, docker }, zone, image, n } => {
            let d = DockerDriver::connect(&docker)?;
            let http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
            let (mut direct, mut op) = (Vec::new(), Vec::new());
            // Interleave the two sides so machine noise hits both alike.
            for i in 0..n {
                direct.push(direct_once(&d, &http, &image, i).await?.as_secs_f64() * 1000.0);
                op.push(op_once(&http, &api, &token, &app, &zone, i).await?.as_secs_f64() * 1000.0);
                eprintln!("sample {i}: direct {:.1} ms, op {:.1} ms", direct[i], op[i]);
            }
            direct.sort_by(f64::total_cmp);
            op.sort_by(f64::total_cmp);
            let (d50, d95, o50, o95) = (pct(&direct, 0.5), pct(&direct, 0.95), pct(&op, 0.5), pct(&op, 0.95));
            println!(
                "RESULT deploy_p50_ratio={:.3} deploy_p95_ratio={:.3} direct_p50_ms={:.1} op_p50_ms={:.1}",
                o50 / d50,
                o95 / d95,
                d50,
                o50
            );
        }
    }
    Ok(())
}
