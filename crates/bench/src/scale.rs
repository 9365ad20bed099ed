//! The scale benchmark: one region on a three-member etcd cluster with thousands of simulated
//! cloudlets; app instances created through the API by concurrent clients while a device asks
//! for its edge. Measures the API's create latency, the time until every instance is Ready,
//! opd's peak resident memory, and discovery latency during the churn.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use op_e2e::Api;
use op_store::etcd_lab::EtcdLab;
use op_types::Uid;
use op_uni::token::{now, SessionClaims, SessionSigner, SESSION_ISSUER};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

/// `scale` arguments.
#[derive(clap::Args)]
pub struct ScaleArgs {
    /// The opd binary.
    #[arg(long, default_value = "target/release/opd")]
    opd: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    cloudlets: usize,
    #[arg(long, default_value_t = 100)]
    zones: usize,
    #[arg(long, default_value_t = 100_000)]
    instances: usize,
    /// Concurrent API clients creating instances (the most requests in flight).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Creates per second, sent on a fixed schedule whatever the answers (an open load, as
    /// Kubernetes' scalability tests run at a set rate); each latency counts from when its
    /// request was due, so a late client counts against the platform. Without it the clients
    /// send back to back (a closed load: the latency is then mostly the queue they make).
    #[arg(long)]
    rate: Option<f64>,
    /// Discovery requests per second during the churn.
    #[arg(long, default_value_t = 50.0)]
    discovery_rate: f64,
    /// Give up waiting for convergence after this long, s.
    #[arg(long, default_value_t = 900)]
    converge_limit: u64,
    /// Where opd's log goes (default: the run's temporary directory, removed at the end).
    #[arg(long)]
    opd_log: Option<PathBuf>,
}

/// Runs `n` POSTs of `body(i)` to `path` with `concurrency` at a time, at `rate` per second
/// when given; returns each latency (from when the request was due) with when it ended.
async fn create_all(c: &Api, path: &str, n: usize, concurrency: usize, rate: Option<f64>, body: impl Fn(usize) -> Value) -> Result<Vec<(Duration, Instant)>> {
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut out = Vec::with_capacity(n);
    let t0 = tokio::time::Instant::now();
    for i in 0..n {
        let due = match rate {
            Some(r) => {
                let due = t0 + Duration::from_secs_f64(i as f64 / r);
                tokio::time::sleep_until(due).await;
                Some(due.into_std())
            }
            None => None,
        };
        let permit = sem.clone().acquire_owned().await?;
        let (c, path, b) = (c.clone(), path.to_string(), body(i));
        tasks.spawn(async move {
            let _permit = permit;
            let begun = due.unwrap_or_else(Instant::now);
            let (s, r) = c.post(&path, &b).await?;
            ensure!(s == 201 || s == 202, "{path} #{i}: {s} {r}");
            Ok::<_, anyhow::Error>((begun.elapsed(), Instant::now()))
        });
        while tasks.len() > concurrency * 2 {
            if let Some(r) = tasks.join_next().await {
                out.push(r??);
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        out.push(r??);
    }
    Ok(out)
}

/// Where the creates' time went: their mean and worst latency, and the seconds of the run in
/// which fewer than half the median number of creates completed (a stall that hides below
/// p99 when it holds only the requests in flight).
fn stalls(done: &[(Duration, Instant)], t0: Instant) -> String {
    let secs = done.iter().map(|(_, end)| end.duration_since(t0).as_secs() as usize).max().unwrap_or(0) + 1;
    let mut per = vec![0usize; secs];
    done.iter().for_each(|(_, end)| per[end.duration_since(t0).as_secs() as usize] += 1);
    let mut sorted = per.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let slow: Vec<String> = per.iter().enumerate().filter(|(s, n)| **n < median / 2 && *s + 1 < secs).map(|(s, n)| format!("{s}s:{n}")).collect();
    let mean = done.iter().map(|(d, _)| d.as_secs_f64()).sum::<f64>() / done.len().max(1) as f64 * 1000.0;
    let max = done.iter().map(|(d, _)| d.as_secs_f64()).fold(0.0, f64::max) * 1000.0;
    format!("create mean {mean:.1} ms, max {max:.0} ms; median {median}/s; seconds under half of it: {} [{}]", slow.len(), slow.join(" "))
}

fn percentile(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1000.0
}

/// CPU time used so far (user and system, s) by the processes named `comm`: where the
/// machine's two cores went, per instance, whatever else shared them.
fn cpu_seconds(comm: &str) -> f64 {
    // The kernel counts in USER_HZ ticks, 100 a second on every Linux architecture.
    const TICKS: f64 = 100.0;
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    dir.filter_map(Result::ok)
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == comm))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .map(|stat| {
            // Fields after the command (which may hold spaces): utime and stime are 14 and 15.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
            (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / TICKS
        })
        .sum()
}

fn rss_peak_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Counts the instances the developer sees in each state.
async fn ready_count(dev: &Api) -> Result<(usize, usize)> {
    let (s, list) = dev.get("/edge-application-management/v0.1alpha1/appinstances").await?;
    ensure!(s == 200, "list instances: {s}");
    let all = list.as_array().context("instance list")?;
    let ready = all.iter().filter(|i| i["status"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("ready"))).count();
    Ok((ready, all.len()))
}

/// etcd's gRPC calls served so far, by method, summed over the members (their `/metrics`):
/// where the store's work per instance goes.
async fn etcd_calls(endpoints: &[String]) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for e in endpoints {
        let Ok(r) = reqwest::get(format!("{e}/metrics")).await else { continue };
        let Ok(text) = r.text().await else { continue };
        for l in text.lines() {
            let n: f64 = l.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
            let name = if l.starts_with("grpc_server_handled_total{") {
                l.split("grpc_method=\"").nth(1).and_then(|m| m.split('"').next()).unwrap_or("?")
            } else if let Some(m) = ["etcd_mvcc_put_total", "etcd_network_client_grpc_received_bytes_total", "etcd_network_client_grpc_sent_bytes_total", "etcd_network_peer_sent_bytes_total", "etcd_disk_wal_fsync_duration_seconds_sum", "etcd_disk_wal_fsync_duration_seconds_count", "etcd_disk_backend_commit_duration_seconds_sum", "etcd_disk_backend_commit_duration_seconds_count", "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_sum", "etcd_server_slow_apply_total", "etcd_server_proposals_committed_total"].iter().find(|m| l.starts_with(*m)) {
                m
            } else {
                continue;
            };
            *out.entry(name.to_string()).or_insert(0.0) += n;
        }
    }
    out
}

/// Runs the benchmark and prints its `RESULT` line.
pub async fn run(a: ScaleArgs) -> Result<()> {
    let work = tempfile::tempdir()?;
    let etcd_dir = work.path().join("etcd");
    std::fs::create_dir_all(&etcd_dir)?;
    let lab = EtcdLab::start(&etcd_dir, 3).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    // Devices reach opd at an address of their own (`--uni-listen`), as an operator deploys it.
    let uni_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let data = work.path().join("data");
    let log_path = a.opd_log.clone().unwrap_or_else(|| work.path().join("opd.log"));
    let log = std::fs::File::create(&log_path)?;
    let mut opd = std::process::Command::new(&a.opd)
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--uni-listen", &format!("127.0.0.1:{uni_port}"), "--etcd-endpoints", &lab.endpoints().join(","), "--etcd-prefix", "/op/scale"])
        .args(["--no-default-cloudlet", "--apps-listen", "none", "--workers", "64", "--uni-rps", "10000000", "--device-rps", "1000000"])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting opd")?;
    let pid = opd.id();
    let store = op_store::EtcdEngine::connect(op_store::EtcdSettings::new(lab.endpoints(), "/op/scale")).await?;
    let result = measure(&a, (port, uni_port), &data, pid, store.as_ref(), &lab.endpoints()).await;
    let _ = opd.kill();
    let _ = opd.wait();
    drop(lab);
    if result.is_err() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!("opd log (last lines):\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    result
}

async fn measure(a: &ScaleArgs, (port, uni_port): (u16, u16), data: &std::path::Path, pid: u32, store: &dyn op_store::Engine, etcd: &[String]) -> Result<()> {
    let url = format!("http://127.0.0.1:{port}");
    let anonymous = Api::new(&url, None);
    let begun = Instant::now();
    while !matches!(anonymous.get("/readyz").await, Ok((200, _))) {
        ensure!(begun.elapsed() < Duration::from_secs(60), "opd did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let password = std::fs::read_to_string(data.join("admin-credential"))?.trim().split_once(':').context("user:password")?.1.to_string();
    let admin = Api::new(&url, Some(anonymous.login("admin", &password).await?));

    // The operator: one region, zones, cloudlets (simulated), one flavor.
    admin.post("/op/v1/regions", &json!({"name": "scale", "spec": {}})).await?;
    admin.post("/op/v1/flavors", &json!({"name": "small", "spec": {"vcpus": 1, "memoryMb": 256, "diskGb": 1, "gpus": 0}})).await?;
    let side = (a.zones as f64).sqrt().ceil() as usize;
    let loc = |i: usize| json!({"latitude": 43.0 + 8.0 * (i / side) as f64 / side as f64, "longitude": -1.0 + 9.0 * (i % side) as f64 / side as f64});
    let t = Instant::now();
    create_all(&admin, "/op/v1/zones", a.zones, 8, None, |i| {
        json!({"name": format!("z{i}"), "spec": {"region": "scale", "location": loc(i), "serviceArea": {"cells": [format!("c{i}")], "polygon": []}}})
    })
    .await?;
    let zones = a.zones;
    create_all(&admin, "/op/v1/cloudlets", a.cloudlets, a.concurrency, None, |i| {
        json!({"name": format!("cl{i}"), "spec": {"zone": format!("z{}", i % zones), "location": loc(i % zones), "platformType": "sim",
            "driverEndpoint": format!("sim://cl{i}"), "capacity": {"vcpus": 64, "memoryMb": 65536, "diskGb": 1000}, "flavors": ["small"]}})
    })
    .await?;
    eprintln!("{} zones and {} cloudlets created in {:.1} s", a.zones, a.cloudlets, t.elapsed().as_secs_f64());

    admin.post("/op/v1/organizations", &json!({"name": "scale_org", "spec": {}})).await?;
    admin.post("/op/v1/users", &json!({"name": "scaler", "organization": "scale_org", "role": "Manager", "password": "scale-password-1"})).await?;
    let dev = Api::new(&url, Some(anonymous.login("scaler", "scale-password-1").await?));
    let (s, app) = dev
        .post("/edge-application-management/v0.1alpha1/apps", &json!({"name": "scaled", "version": "1", "appProvider": "scale_org",
            "packageType": "CONTAINER", "appRepo": {"type": "PUBLICREPO", "imagePath": "localhost/op-sample-app:latest"},
            "requiredResources": {"infraKind": "container", "numCPU": "100m", "memory": 64},
            "componentSpec": [{"componentName": "web", "networkInterfaces": [{"interfaceId": "http", "protocol": "TCP", "port": 8080, "visibilityType": "VISIBILITY_EXTERNAL"}]}]}))
        .await?;
    ensure!(s == 201, "app: {s} {app}");
    let app_id = app["appId"].as_str().context("appId")?.to_string();
    let (_, zl) = dev.get("/edge-application-management/v0.1alpha1/edge-cloud-zones").await?;
    let zone_ids: Vec<String> = zl.as_array().context("zones")?.iter().filter_map(|z| z["edgeCloudZoneId"].as_str().map(str::to_string)).collect();
    ensure!(zone_ids.len() == a.zones, "{} zones visible", zone_ids.len());

    // A device's session token, signed with the platform's UNI key, for discovery.
    let signer = SessionSigner::from_private_pem(&std::fs::read_to_string(data.join("uni-signing.pem"))?)?;
    let iat = now();
    let token = signer.sign(&SessionClaims {
        sub: "scale-device".into(),
        app: app_id.parse::<Uid>().map_err(|e| anyhow::anyhow!("{e}"))?,
        inst: Uid::random(),
        zone: zone_ids[0].parse::<Uid>().map_err(|e| anyhow::anyhow!("{e}"))?,
        iat,
        exp: iat + 3600,
        iss: SESSION_ISSUER.into(),
        dev: String::new(),
        mac: String::new(),
    })?;
    let churn = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // The device asks from a thread of its own in short turns, as a device does from a machine
    // of its own: its latencies are the platform's, not those of the load generator's queue
    // and turns on the same two cores.
    let discovery = {
        let (url, churn, rate, zones) = (format!("http://127.0.0.1:{uni_port}"), churn.clone(), a.discovery_rate, a.zones);
        std::thread::Builder::new().name("op-device".into()).spawn(move || -> Result<(Vec<Duration>, usize)> {
            if let Err(e) = op_ingress::short_slice() {
                eprintln!("the device thread keeps the kernel's default turns: {e}");
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let device = Api::new(&url, Some(token));
                let mut lat = Vec::new();
                let mut failed = 0usize;
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)));
                let mut k = 0usize;
                while churn.load(std::sync::atomic::Ordering::Relaxed) {
                    tick.tick().await;
                    k += 1;
                    let t = Instant::now();
                    match device.post("/uni/v1/discover", &json!({"location": {"cellId": format!("c{}", k % zones)}})).await {
                        Ok((200, _)) | Ok((404, _)) => lat.push(t.elapsed()),
                        _ => failed += 1,
                    }
                }
                Ok((lat, failed))
            })
        })?
    };

    // The churn: instances created through the API, spread over the zones.
    let rev0 = store.revision().await?;
    let calls0 = etcd_calls(etcd).await;
    let cpu0 = (cpu_seconds("opd"), cpu_seconds("etcd"));
    let t0 = Instant::now();
    let done = create_all(&dev, "/edge-application-management/v0.1alpha1/appinstances", a.instances, a.concurrency, a.rate, |i| {
        json!({"name": format!("i{i}"), "appId": app_id, "edgeCloudZoneId": zone_ids[i % zone_ids.len()]})
    })
    .await?;
    let create_s = t0.elapsed().as_secs_f64();
    eprintln!("{} instances created in {create_s:.1} s ({:.0}/s)", a.instances, a.instances as f64 / create_s);
    eprintln!("{}", stalls(&done, t0));
    eprintln!(
        "CPU per instance while creating: opd {:.2} ms, etcd (all members) {:.2} ms",
        (cpu_seconds("opd") - cpu0.0) * 1000.0 / a.instances as f64,
        (cpu_seconds("etcd") - cpu0.1) * 1000.0 / a.instances as f64
    );
    let mut created: Vec<Duration> = done.into_iter().map(|(d, _)| d).collect();
    let converge_s = loop {
        let (ready, all) = ready_count(&dev).await?;
        eprintln!("  {ready} of {all} Ready after {:.0} s", t0.elapsed().as_secs_f64());
        if ready == a.instances {
            break t0.elapsed().as_secs_f64();
        }
        ensure!(t0.elapsed() < Duration::from_secs(a.converge_limit), "not converged within {} s: {ready} of {all} Ready", a.converge_limit);
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    churn.store(false, std::sync::atomic::Ordering::Relaxed);
    let writes = store.revision().await?.saturating_sub(rev0);
    eprintln!("{writes} store writes during the churn ({:.1} per instance)", writes as f64 / a.instances as f64);
    let delta: std::collections::BTreeMap<String, f64> = etcd_calls(etcd)
        .await
        .into_iter()
        .map(|(m, n)| (m.clone(), n - calls0.get(&m).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    let mean_ms = |what: &str| 1000.0 * delta.get(&format!("{what}_sum")).copied().unwrap_or(0.0) / delta.get(&format!("{what}_count")).copied().unwrap_or(0.0).max(1.0);
    eprintln!(
        "etcd disk: WAL fsync mean {:.2} ms, backend commit mean {:.2} ms",
        mean_ms("etcd_disk_wal_fsync_duration_seconds"),
        mean_ms("etcd_disk_backend_commit_duration_seconds")
    );
    let per: Vec<String> = delta.iter().filter(|(m, _)| !m.contains("_seconds_")).map(|(m, n)| format!("{m} {:.2}", n / a.instances as f64)).collect();
    eprintln!("etcd calls per instance (all members): {}", per.join(", "));
    let (mut disc, failed) = discovery.join().map_err(|_| anyhow::anyhow!("the discovery thread panicked"))??;
    ensure!(!disc.is_empty(), "no discovery answered ({failed} failed)");
    let create_p99 = percentile(&mut created, 0.99);
    let create_p50 = percentile(&mut created, 0.50);
    let disc_p99 = percentile(&mut disc, 0.99);
    let rss = rss_peak_mb(pid);
    let (disc_p50, disc_p90, disc_max) = (percentile(&mut disc, 0.50), percentile(&mut disc, 0.90), percentile(&mut disc, 1.0));
    eprintln!("create p50 {create_p50:.1} ms; {} discoveries ({failed} failed): p50 {disc_p50:.2} ms, p90 {disc_p90:.2} ms, max {disc_max:.1} ms", disc.len());
    println!(
        "RESULT instances={} create_p99_ms={create_p99:.1} converge_s={converge_s:.1} rss_mb={rss:.0} discovery_p99_ms={disc_p99:.2}",
        a.instances
    );
    Ok(())
}
