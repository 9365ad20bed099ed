//! Serverless: (a) cold start, the first answer through a point of presence with zero
//! instances, against the same container started directly through the runtime API and
//! polled; (b) warm path, latency of sequential requests on a kept-alive connection through
//! the ingress against straight to the instance. Throughput is measured by `wrk` in the script.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use op_driver::docker::DockerDriver;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `op-bench serverless`.
#[derive(Args)]
pub struct ServerlessArgs {
    #[command(flatten)]
    target: crate::AppTarget,
    /// The point of presence (`host:port`).
    #[arg(long)]
    pop: String,
    /// The app's host.
    #[arg(long)]
    host: String,
    /// Image (same as the app's).
    #[arg(long, default_value = "localhost/op-sample-app:latest")]
    image: String,
    /// Cold-start samples per side.
    #[arg(long, default_value_t = 10)]
    n: usize,
    /// Warm requests per side.
    #[arg(long, default_value_t = 5000)]
    requests: usize,
}

async fn status(http: &reqwest::Client, a: &ServerlessArgs) -> Result<Value> {
    Ok(http.get(format!("{}/op/v1/apps/{}/serverless", a.target.api, a.target.app)).bearer_auth(&a.target.token).send().await?.json().await?)
}

/// Waits until the app runs no instance.
async fn scaled_to_zero(http: &reqwest::Client, a: &ServerlessArgs) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if status(http, a).await?["instances"].as_array().is_some_and(Vec::is_empty) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the app did not scale to zero");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One request on `s` (kept alive); returns when the whole answer is read.
async fn request(s: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> Result<()> {
    s.write_all(req).await?;
    buf.clear();
    loop {
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                bail!("answered {}", head.lines().next().unwrap_or_default());
            }
            let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Ok(());
            }
        }
    }
}

/// Microsecond latencies of `n` sequential requests to `addr`, sorted.
async fn latencies(addr: &str, host: &str, n: usize) -> Result<Vec<f64>> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
    let mut buf = Vec::with_capacity(8192);
    for _ in 0..200 {
        request(&mut s, &req, &mut buf).await?;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        request(&mut s, &req, &mut buf).await?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

/// Runs the benchmark; prints the measured figures as `key=value` on one line (the script
/// adds the throughput and prints the RESULT line).
pub async fn run(a: ServerlessArgs) -> Result<()> {
    let d = DockerDriver::connect(&a.target.docker)?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let (mut direct, mut cold) = (Vec::new(), Vec::new());
    for i in 0..a.n {
        direct.push(crate::direct_once(&d, &http, &a.image, i).await?.as_secs_f64() * 1000.0);
        scaled_to_zero(&http, &a).await?;
        let t0 = Instant::now();
        let r = http.get(format!("http://{}/", a.pop)).header("host", &a.host).timeout(Duration::from_secs(60)).send().await?;
        if !r.status().is_success() {
            bail!("cold request answered {}", r.status());
        }
        cold.push(t0.elapsed().as_secs_f64() * 1000.0);
        eprintln!("sample {i}: direct {:.1} ms, through the ingress from zero {:.1} ms", direct[i], cold[i]);
    }
    direct.sort_by(f64::total_cmp);
    cold.sort_by(f64::total_cmp);
    // Warm: keep one connection open so the instance stays, find it, measure both ways.
    let mut keep = TcpStream::connect(&a.pop).await?;
    let req = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", a.host).into_bytes();
    request(&mut keep, &req, &mut Vec::new()).await?;
    let st = status(&http, &a).await?;
    let inst = st["instances"][0]["appInstanceId"].as_str().context("no instance")?.to_string();
    let full: Value = http.get(format!("{}/op/v1/appinstances/{inst}", a.target.api)).bearer_auth(&a.target.token).send().await?.json().await?;
    let ep = &full["observed"]["endpoints"][0];
    let straight = format!("{}:{}", ep["host"].as_str().context("host")?, ep["port"].as_u64().context("port")?);
    let mut via = Vec::new();
    let mut direct_warm = Vec::new();
    // Interleaved halves, so machine noise hits both alike.
    for _ in 0..2 {
        direct_warm.extend(latencies(&straight, &a.host, a.requests / 2).await?);
        via.extend(latencies(&a.pop, &a.host, a.requests / 2).await?);
    }
    via.sort_by(f64::total_cmp);
    direct_warm.sort_by(f64::total_cmp);
    let p = crate::pct;
    println!(
        "cold_ratio={:.3} cold_p50_ms={:.1} direct_p50_ms={:.1} warm_p50_overhead_us={:.1} warm_p99_overhead_us={:.1} warm_direct_p50_us={:.1} straight={straight}",
        p(&cold, 0.5) / p(&direct, 0.5),
        p(&cold, 0.5),
        p(&direct, 0.5),
        p(&via, 0.5) - p(&direct_warm, 0.5),
        p(&via, 0.99) - p(&direct_warm, 0.99),
        p(&direct_warm, 0.5),
    );
    drop(keep);
    Ok(())
}
