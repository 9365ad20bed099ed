//! The discovery benchmark's parts: the seed (a synthetic operator written straight into a data
//! directory, as a restore would), the baseline server and an open-loop latency meter.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use op_store::{RedbEngine, Repo};
use op_types::specs::*;
use op_types::{Kind, Name, Object, State, Uid};
use op_uni::token::{now, SessionClaims, SessionSigner, SESSION_ISSUER};
use rand::{Rng, SeedableRng};

/// `seed-uni` arguments.
#[derive(clap::Args)]
pub struct SeedArgs {
    /// Data directory to create (must not exist).
    #[arg(long)]
    data_dir: PathBuf,
    /// Where to write tokens and cells.
    #[arg(long)]
    out_dir: PathBuf,
    #[arg(long, default_value_t = 5000)]
    zones: usize,
    #[arg(long, default_value_t = 50_000)]
    instances: usize,
    #[arg(long, default_value_t = 10)]
    apps: usize,
    /// Registered devices (one session token each).
    #[arg(long, default_value_t = 1_000_000)]
    devices: usize,
}

fn name(s: &str) -> Result<Name> {
    Name::new(s).map_err(|e| anyhow::anyhow!("{s}: {e}"))
}

fn ready<S, X: Default>(kind: Kind, org: Option<Name>, n: &str, spec: S) -> Result<Object<S, X>> {
    let mut o = Object::new(kind, org, name(n)?, spec);
    o.status.state = State::Ready;
    Ok(o)
}

async fn batch<S: serde::Serialize, X: serde::Serialize>(repo: &Repo, mut objs: Vec<Object<S, X>>) -> Result<()> {
    for chunk in objs.chunks_mut(5000) {
        repo.create_batch(chunk).await?;
    }
    Ok(())
}

/// Writes the synthetic operator and the devices' tokens.
pub async fn seed(a: SeedArgs) -> Result<()> {
    anyhow::ensure!(!a.data_dir.exists(), "{} exists", a.data_dir.display());
    std::fs::create_dir_all(&a.data_dir)?;
    std::fs::create_dir_all(&a.out_dir)?;
    let repo = Repo::new(RedbEngine::open(&a.data_dir.join("store.redb"))?);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    batch::<_, ()>(&repo, vec![ready(Kind::Region, None, "bench", RegionSpec::default())?]).await?;
    let small: FlavorSpec = Resources { vcpus: 1, memory_mb: 256, disk_gb: 1, gpus: 0 };
    batch::<_, ()>(&repo, vec![ready(Kind::Flavor, None, "small", small)?]).await?;
    batch::<_, ()>(&repo, vec![ready(Kind::Organization, None, "bench_org", OrganizationSpec::default())?]).await?;

    let side = (a.zones as f64).sqrt().ceil() as usize;
    let (mut zones, mut cloudlets, mut cells) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..a.zones {
        let loc = GeoPoint { latitude: 43.0 + 8.0 * (i / side) as f64 / side as f64, longitude: -1.0 + 9.0 * (i % side) as f64 / side as f64 };
        let zcells = vec![format!("c{i}a"), format!("c{i}b")];
        cells.extend(zcells.iter().cloned());
        let spec = ZoneSpec { region: name("bench")?, location: loc, service_area: ServiceArea { cells: zcells, polygon: vec![] }, dnai: None, federated: None };
        zones.push(ready::<_, ()>(Kind::Zone, None, &format!("z{i}"), spec)?);
        let cl = CloudletSpec {
            zone: name(&format!("z{i}"))?,
            location: loc,
            platform_type: PlatformType::Sim,
            driver_endpoint: format!("sim://cl{i}"),
            public_host: "127.0.0.1".into(),
            capacity: Resources { vcpus: 64, memory_mb: 65536, disk_gb: 1000, gpus: 0 },
            flavors: vec![name("small")?],
            maintenance: false,
            level: Default::default(),
            security_group: None,
            privacy_policy: None,
        };
        cloudlets.push(ready::<_, op_types::specs::CloudletObserved>(Kind::Cloudlet, None, &format!("cl{i}"), cl)?);
    }
    let zone_ids: Vec<Uid> = zones.iter().map(|z| z.metadata.uid).collect();
    batch(&repo, zones).await?;
    batch(&repo, cloudlets).await?;

    let mut apps = Vec::new();
    for k in 0..a.apps {
        let spec: AppSpec = serde_json::from_value(serde_json::json!({
            "version": "1", "appProvider": "bench_org", "packageType": "CONTAINER",
            "appRepo": {"type": "PUBLICREPO", "imagePath": "localhost/op-sample-app:latest"},
            "requiredResources": {"infraKind": "container", "numCPU": "1", "memory": 128},
            "componentSpec": [{"componentName": "c", "networkInterfaces": [{"interfaceId": "http", "protocol": "TCP", "port": 8080, "visibilityType": "VISIBILITY_EXTERNAL"}]}]
        }))?;
        apps.push(ready::<_, ()>(Kind::App, Some(name("bench_org")?), &format!("app{k}"), spec)?);
    }
    let app_ids: Vec<Uid> = apps.iter().map(|a| a.metadata.uid).collect();
    batch(&repo, apps).await?;

    let mut insts = Vec::new();
    for i in 0..a.instances {
        let z = (i / a.apps) % a.zones;
        let spec = AppInstanceSpec { app_id: app_ids[i % a.apps], edge_cloud_zone_id: zone_ids[z], cloudlet: name(&format!("cl{z}"))?, flavor: name("small")?, federated: None, cluster: None, app_revision: None };
        let mut o: AppInstance = ready(Kind::AppInstance, Some(name("bench_org")?), &format!("i{i}"), spec)?;
        o.observed.endpoints = vec![Endpoint { interface_id: "http".into(), host: "127.0.0.1".into(), port: 20_000 + (i % 40_000) as u16 }];
        insts.push(o);
        if insts.len() == 5000 {
            batch(&repo, std::mem::take(&mut insts)).await?;
        }
    }
    batch(&repo, insts).await?;

    let (signer, pem) = SessionSigner::generate()?;
    write_private(&a.data_dir.join("uni-signing.pem"), &pem)?;
    let mut tokens = std::io::BufWriter::new(std::fs::File::create(a.out_dir.join("tokens.txt"))?);
    let iat = now();
    for d in 0..a.devices {
        let c = SessionClaims {
            sub: format!("dev-{d}"),
            app: app_ids[rng.gen_range(0..app_ids.len())],
            inst: Uid::random(),
            zone: zone_ids[rng.gen_range(0..zone_ids.len())],
            iat,
            exp: iat + 6 * 3600,
            iss: SESSION_ISSUER.into(),
            dev: String::new(),
            mac: String::new(),
        };
        writeln!(tokens, "{}", signer.sign(&c)?)?;
    }
    tokens.flush()?;
    std::fs::write(a.out_dir.join("cells.txt"), cells.join("\n") + "\n")?;
    eprintln!("seeded {} zones, {} instances, {} apps, {} device tokens", a.zones, a.instances, a.apps, a.devices);
    Ok(())
}

fn write_private(path: &std::path::Path, content: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

/// `baseline` arguments.
#[derive(clap::Args)]
pub struct BaselineArgs {
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// Size of the fixed JSON body answered.
    #[arg(long)]
    body_bytes: usize,
}

/// Serves a fixed JSON body of the given size to any POST: the same stack (tokio, hyper, axum)
/// without the platform's work.
pub async fn baseline(a: BaselineArgs) -> Result<()> {
    let filler = "x".repeat(a.body_bytes.saturating_sub(12));
    let body: Arc<str> = format!("{{\"filler\":\"{filler}\"}}").into();
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()) }
    });
    let listener = tokio::net::TcpListener::bind(a.listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// `latency` arguments.
#[derive(clap::Args)]
pub struct LatencyArgs {
    /// Target URL.
    #[arg(long)]
    url: String,
    /// Requests per second (open loop).
    #[arg(long)]
    rate: f64,
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// File of bearer tokens, one per line.
    #[arg(long)]
    tokens: PathBuf,
    /// File of cell ids, one per line.
    #[arg(long)]
    cells: PathBuf,
}

/// Reads one HTTP/1.1 response (headers, then Content-Length bytes); returns its status.
async fn read_response(conn: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> Result<u16> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("status line")?;
    let mut len = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).await?;
    Ok(status)
}

/// Sends requests at a fixed rate regardless of answers (open loop) over 64 keep-alive
/// connections, timing each from its scheduled start so that queueing is counted; prints
/// `p50_ms p99_ms errors`. A pacing thread releases each request at its own instant (a thread
/// sleep is precise to tens of microseconds; tokio's timer, to a millisecond, would release
/// requests in bursts and measure the bursts).
pub async fn latency(a: LatencyArgs) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    const CONNS: usize = 64;
    let tokens: Vec<String> = std::fs::read_to_string(&a.tokens)?.lines().take(200_000).map(str::to_string).collect();
    let cells: Vec<String> = std::fs::read_to_string(&a.cells)?.lines().map(str::to_string).collect();
    anyhow::ensure!(!tokens.is_empty() && !cells.is_empty(), "no tokens or cells");
    let url = a.url.strip_prefix("http://").context("http:// URL")?;
    let (host, path) = url.split_once('/').map(|(h, p)| (h.to_string(), format!("/{p}"))).unwrap_or((url.to_string(), "/".into()));
    let total = (a.rate * a.secs as f64) as usize;
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..CONNS {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        senders.push(tx);
        let mut conn = tokio::io::BufReader::new(tokio::net::TcpStream::connect(&host).await?);
        conn.get_ref().set_nodelay(true)?;
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut prev_done = Instant::now();
            while let Some((at, req)) = rx.recv().await {
                // When the connection was idle at the scheduled time, count from the actual
                // send (the pacer's own lateness is not the server's); when it was still busy,
                // count from the schedule, so queueing behind a slow answer is not hidden.
                let sent = Instant::now();
                let start = if prev_done <= at { sent } else { at };
                let ok = match conn.get_mut().write_all(&req).await {
                    Ok(()) => matches!(read_response(&mut conn).await, Ok(200)),
                    Err(_) => false,
                };
                prev_done = Instant::now();
                out.push((start.elapsed(), ok));
            }
            out
        }));
    }
    let start = Instant::now() + Duration::from_millis(200);
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let at = start + interval * i as u32;
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            let token = &tokens[i % tokens.len()];
            let body = format!("{{\"location\":{{\"cellId\":\"{}\"}}}}", cells[(i * 7919) % cells.len()]);
            let req = format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = senders[i % CONNS].send((at, req.into_bytes()));
        }
    });
    let mut lat = Vec::with_capacity(total);
    let mut errors = 0usize;
    for w in workers {
        for (d, ok) in w.await.context("connection task")? {
            if !ok {
                errors += 1;
            }
            lat.push(d.as_secs_f64() * 1000.0);
        }
    }
    pacer.join().map_err(|_| anyhow::anyhow!("pacer panicked"))?;
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    println!("p50_ms={:.3} p99_ms={:.3} errors={errors} sent={total}", pct(0.5), pct(0.99));
    Ok(())
}
