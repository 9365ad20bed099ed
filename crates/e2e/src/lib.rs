//! Test harness: start a real `opd` on a fresh data directory and a free port, talk to it over
//! HTTP, run `opctl`, kill it with SIGKILL and restart it on the same data.

pub mod browser;
pub mod certs;
pub mod federation;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// The Podman socket the tests use.
pub fn docker_endpoint() -> String {
    std::env::var("OP_TEST_DOCKER_ENDPOINT").unwrap_or_else(|_| "unix:///run/podman/podman.sock".into())
}

/// The sample app image (built by scripts/build-images.sh).
pub const SAMPLE_IMAGE: &str = "localhost/op-sample-app:latest";

/// Where cargo put the workspace binaries: beside the running executable, or beside its
/// `deps` folder for a test executable (so a release benchmark drives release binaries).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    let parent = exe.parent().expect("executable's folder");
    let dir = if parent.ends_with("deps") { parent.parent().expect("target dir") } else { parent };
    let p = dir.join(name);
    assert!(p.exists(), "{} not built: run `cargo build --workspace --bins` first", p.display());
    p
}

/// A port the kernel just gave out and took back: free now, and (being from the ephemeral
/// range) never one the driver gives a container.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A running opd.
pub struct Platform {
    /// Its data directory.
    pub dir: tempfile::TempDir,
    /// API base URL.
    pub url: String,
    port: u16,
    child: Option<Child>,
    http: reqwest::Client,
    extra_args: Vec<String>,
}

impl Platform {
    /// The opd process's id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts opd with the embedded default site.
    pub async fn start() -> Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts opd with extra `serve` arguments.
    pub async fn start_with(extra: &[&str]) -> Result<Self> {
        Self::start_in(tempfile::tempdir()?, extra).await
    }

    /// Starts another replica of this platform: its own port and directory, holding copies of
    /// this one's secrets (not its store), with `extra` arguments (the same etcd cluster and
    /// prefix, for it to serve the same platform).
    pub async fn replica_of(&self, extra: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        for e in std::fs::read_dir(self.data_dir())? {
            let e = e?;
            if e.file_type()?.is_file() && e.file_name() != "store.redb" {
                std::fs::copy(e.path(), data.join(e.file_name()))?;
            }
        }
        Self::start_in(dir, extra).await
    }

    async fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Result<Self> {
        let port = free_port();
        let mut p = Platform {
            dir,
            url: format!("http://127.0.0.1:{port}"),
            port,
            child: None,
            http: reqwest::Client::new(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        p.spawn().await?;
        Ok(p)
    }

    async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("opd.log"))?;
        let child = Command::new(bin("opd"))
            .arg("serve")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--docker-endpoint")
            .arg(docker_endpoint())
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning opd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url)).timeout(Duration::from_secs(2)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("opd did not become ready; log:\n{}\n{}", self.log(), self.where_it_waits());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where opd's threads are (kernel wait channel and state of each) and the machine's load:
    /// what a platform that does not start is waiting for.
    fn where_it_waits(&self) -> String {
        let Some(pid) = self.child.as_ref().map(Child::id) else { return String::new() };
        let mut out = format!("load: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default());
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in tasks.flatten() {
                let read = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
                let state = read("stat").rsplit(") ").next().and_then(|r| r.split(' ').next()).unwrap_or("?").to_string();
                out += &format!("thread {} {} state={state} wchan={}\n", t.file_name().to_string_lossy(), read("comm").trim(), read("wchan"));
                let stack = read("stack");
                if !stack.is_empty() {
                    out += &stack;
                }
            }
        }
        out
    }

    /// opd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("opd.log")).unwrap_or_default()
    }

    /// The data directory opd uses.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts opd again on the same data directory and port.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.spawn().await
    }

    /// The admin password from the bootstrap credential file.
    pub fn admin_password(&self) -> Result<String> {
        let s = std::fs::read_to_string(self.data_dir().join("admin-credential"))?;
        Ok(s.trim().split_once(':').context("user:password")?.1.to_string())
    }

    /// Logs in and returns a token.
    pub async fn login(&self, user: &str, password: &str) -> Result<String> {
        self.api(None).login(user, password).await
    }

    /// An admin token.
    pub async fn admin(&self) -> Result<Api> {
        let t = self.login("admin", &self.admin_password()?).await?;
        Ok(self.api(Some(t)))
    }

    /// A client with `token`.
    pub fn api(&self, token: Option<String>) -> Api {
        Api { url: self.url.clone(), token, http: self.http.clone() }
    }

    /// Creates organization `org` and a user with `role` in it; returns the user's client.
    pub async fn developer(&self, org: &str, user: &str, role: &str) -> Result<Api> {
        let admin = self.admin().await?;
        let (s, _) = admin.post("/op/v1/organizations", &json!({"name": org, "spec": {}})).await?;
        anyhow::ensure!(s == 201 || s == 409, "org create: {s}");
        let pw = "correct-horse-battery";
        let (s, b) = admin
            .post("/op/v1/users", &json!({"name": user, "organization": org, "role": role, "password": pw}))
            .await?;
        anyhow::ensure!(s == 201, "user create: {s} {b}");
        Ok(self.api(Some(self.login(user, pw).await?)))
    }

    /// The uid of zone `name` as developers see it.
    pub async fn zone_id(&self, api: &Api, name: &str) -> Result<String> {
        let (_, zones) = api.get(&format!("{CAMARA}/edge-cloud-zones")).await?;
        zones
            .as_array()
            .and_then(|a| a.iter().find(|z| z["edgeCloudZoneName"] == name))
            .and_then(|z| z["edgeCloudZoneId"].as_str())
            .map(str::to_string)
            .with_context(|| format!("zone {name} not in {zones}"))
    }
}

impl Drop for Platform {
    /// Kills opd and removes what it left on the runtime (its cloudlets' probes, and app
    /// containers of a test that failed half-way), so tests do not pile containers up.
    fn drop(&mut self) {
        self.kill9();
        let Ok(id) = std::fs::read_to_string(self.data_dir().join("platform-id")) else { return };
        let host = docker_endpoint();
        let ids = Command::new("podman")
            .args(["--url", &host, "ps", "-aq", "--filter", &format!("label={}={}", op_driver::LABEL_PLATFORM, id.trim())])
            .output();
        if let Ok(out) = ids {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
            if !ids.is_empty() {
                let _ = Command::new("podman").args(["--url", &host, "rm", "-f", "-t", "0"]).args(&ids).output();
            }
        }
    }
}

/// CAMARA base path.
pub const CAMARA: &str = "/edge-application-management/v0.1alpha1";

/// A thin JSON client that returns status and body, for asserting on both.
#[derive(Clone)]
pub struct Api {
    /// Base URL.
    pub url: String,
    /// Bearer token.
    pub token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    /// Whether this replica runs the controllers (leads its region), from its `/metrics`.
    pub async fn leads(&self) -> Result<bool> {
        let (s, m) = self.get("/metrics").await?;
        anyhow::ensure!(s == 200, "metrics: {s}");
        let m = m.as_str().unwrap_or_default();
        let line = m.lines().find(|l| l.starts_with("op_controllers_leader ")).context("op_controllers_leader on /metrics")?;
        Ok(line.ends_with(" 1"))
    }

    /// Waits until this replica leads its region.
    pub async fn wait_leads(&self, within: Duration) -> Result<()> {
        let begun = Instant::now();
        while !self.leads().await? {
            anyhow::ensure!(begun.elapsed() < within, "{} did not take the leadership within {within:?}", self.url);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// A client of the platform at `url` (a benchmark's own opd, a partner's), with `token`.
    pub fn new(url: &str, token: Option<String>) -> Self {
        Api { url: url.trim_end_matches('/').to_string(), token, http: reqwest::Client::new() }
    }

    /// Logs in at this client's platform and returns the token.
    pub async fn login(&self, user: &str, password: &str) -> Result<String> {
        let (s, v) = self.post("/op/v1/auth/token", &json!({"username": user, "password": password})).await?;
        if !(200..300).contains(&s) {
            bail!("login {user} failed: {v}");
        }
        Ok(v["access_token"].as_str().context("token")?.to_string())
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<(u16, Value)> {
        let rb = match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        };
        let r = rb.send().await?;
        let s = r.status().as_u16();
        let text = r.text().await?;
        let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Ok((s, v))
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.send(self.http.get(format!("{}{path}", self.url))).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.send(self.http.post(format!("{}{path}", self.url)).json(body)).await
    }

    /// PUT JSON.
    pub async fn put(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.send(self.http.put(format!("{}{path}", self.url)).json(body)).await
    }

    /// POST raw bytes as JSON.
    pub async fn post_raw(&self, path: &str, body: &str) -> Result<(u16, Value)> {
        let rb = self.http.post(format!("{}{path}", self.url)).header("content-type", "application/json").body(body.to_string());
        self.send(rb).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Result<(u16, Value)> {
        self.send(self.http.delete(format!("{}{path}", self.url))).await
    }

    /// Submits the sample app as `name` for `org`; returns its id.
    pub async fn sample_app(&self, org: &str, name: &str, extra: Value) -> Result<String> {
        let mut m = sample_manifest(org, name);
        if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        let (s, b) = self.post(&format!("{CAMARA}/apps"), &m).await?;
        anyhow::ensure!(s == 201, "submit app: {s} {b}");
        Ok(b["appId"].as_str().context("appId")?.to_string())
    }

    /// Deploys `app` to `zone`; returns the instance id.
    pub async fn deploy(&self, name: &str, app: &str, zone: &str) -> Result<String> {
        let (s, b) = self
            .post(&format!("{CAMARA}/appinstances"), &json!({"name": name, "appId": app, "edgeCloudZoneId": zone}))
            .await?;
        anyhow::ensure!(s == 202, "deploy: {s} {b}");
        Ok(b["appInstanceId"].as_str().context("appInstanceId")?.to_string())
    }

    /// The full instance object, or `None` once it is gone.
    pub async fn instance(&self, id: &str) -> Result<Option<Value>> {
        let (s, b) = self.get(&format!("/op/v1/appinstances/{id}")).await?;
        match s {
            200 => Ok(Some(b)),
            404 => Ok(None),
            _ => bail!("get instance: {s} {b}"),
        }
    }

    /// Waits until the instance is Ready; returns its object.
    pub async fn wait_ready(&self, id: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let inst = self.instance(id).await?.context("instance vanished")?;
            if inst["status"]["state"] == "Ready" {
                return Ok(inst);
            }
            if Instant::now() > deadline {
                bail!("instance {id} not Ready in time: {inst}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the instance object is gone.
    pub async fn wait_gone(&self, id: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.instance(id).await?.is_some() {
            if Instant::now() > deadline {
                bail!("instance {id} not deleted in time");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

/// The sample app's CAMARA manifest.
pub fn sample_manifest(org: &str, name: &str) -> Value {
    json!({
        "name": name,
        "version": "1.0",
        "appProvider": org,
        "packageType": "CONTAINER",
        "appRepo": {"type": "PUBLICREPO", "imagePath": SAMPLE_IMAGE},
        "requiredResources": {"infraKind": "container", "numCPU": "500m", "memory": 128},
        "componentSpec": [{"componentName": "web", "networkInterfaces": [
            {"interfaceId": "http", "protocol": "TCP", "port": 8080, "visibilityType": "VISIBILITY_EXTERNAL"}]}]
    })
}

/// GETs `http://host:port/` until it answers 200, returning the body.
pub async fn http_get_ok(url: &str, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http.get(url).timeout(Duration::from_secs(2)).send().await {
            if r.status().is_success() {
                return Ok(r.text().await?);
            }
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The endpoint URL of a Ready instance object.
pub fn endpoint(inst: &Value) -> Result<String> {
    let e = &inst["observed"]["endpoints"][0];
    Ok(format!("http://{}:{}/", e["host"].as_str().context("host")?, e["port"].as_u64().context("port")?))
}

/// Containers of the runtime labelled with this instance uid.
pub async fn containers_of(instance: &str) -> Result<usize> {
    use op_driver::Driver;
    let d = op_driver::docker::DockerDriver::connect(&docker_endpoint())?;
    Ok(d.list(&[(op_driver::LABEL_INSTANCE, instance)]).await?.len())
}

/// App-instance containers of the platform whose data directory is `data_dir`.
pub async fn containers_of_platform(data_dir: &Path) -> Result<Vec<op_driver::ContainerInfo>> {
    Ok(all_containers_of_platform(data_dir).await?.into_iter().filter(|c| c.labels.contains_key(op_driver::LABEL_INSTANCE)).collect())
}

/// Cloudlet probe containers of the platform whose data directory is `data_dir`.
pub async fn probes_of_platform(data_dir: &Path) -> Result<Vec<op_driver::ContainerInfo>> {
    Ok(all_containers_of_platform(data_dir).await?.into_iter().filter(|c| c.labels.contains_key(op_driver::LABEL_PROBE)).collect())
}

async fn all_containers_of_platform(data_dir: &Path) -> Result<Vec<op_driver::ContainerInfo>> {
    use op_driver::Driver;
    let id = std::fs::read_to_string(data_dir.join("platform-id"))?;
    let d = op_driver::docker::DockerDriver::connect(&docker_endpoint())?;
    Ok(d.list(&[(op_driver::LABEL_PLATFORM, id.trim())]).await?)
}

/// A running network emulator (`op-netemu`) on the lab scenario.
pub struct Netemu {
    /// Its base URL.
    pub url: String,
    child: Child,
}

impl Netemu {
    /// Starts the emulator on a free port with `crates/netemu/scenarios/lab.yaml`.
    pub fn start() -> Result<Self> {
        use std::io::BufRead;
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../netemu/scenarios/lab.yaml");
        let mut child = Command::new(bin("op-netemu"))
            .arg("--scenario")
            .arg(scenario)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning op-netemu")?;
        let out = child.stdout.take().context("stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line)?;
        let url = line.trim().rsplit(' ').next().context("listen line")?.to_string();
        anyhow::ensure!(url.starts_with("http://"), "unexpected first line: {line}");
        Ok(Self { url, child })
    }

    /// Moves a device (name, phone, NAI or IP) to `cell` now.
    pub async fn move_device(&self, device: &str, cell: &str) -> Result<()> {
        let r = reqwest::Client::new()
            .post(format!("{}/emulator/v1/devices/{device}/move", self.url))
            .json(&json!({"cell": cell}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "move: {}", r.status());
        Ok(())
    }
}

impl Drop for Netemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a README block printed.
pub struct BlockRun {
    /// Standard output.
    pub stdout: String,
}

/// Runs the README's shell block `name` (between `<!-- NAME:begin -->` and `<!-- NAME:end -->`,
/// extracted by `scripts/readme-block.sh`) with `bash -euo pipefail` in a fresh directory,
/// against platform `p` with the built `opctl` and `op-netemu` on the `PATH`; fails with both
/// outputs and opd's log when a command fails.
pub async fn run_readme_block(name: &str, p: &Platform) -> Result<BlockRun> {
    run_readme_block_with(name, p, &[]).await
}

/// [`run_readme_block`] with more environment (e.g. a second platform's URLs).
pub async fn run_readme_block_with(name: &str, p: &Platform, env: &[(&str, String)]) -> Result<BlockRun> {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg(root.join("scripts/readme-block.sh"))
        .arg(name)
        .stdin(std::fs::File::open(root.join("README.md"))?)
        .output()?;
    let block = String::from_utf8(out.stdout)?;
    anyhow::ensure!(block.lines().count() > 3, "README block '{name}' not found");
    let work = tempfile::tempdir()?;
    let bin_dir = bin("opctl").parent().map(Path::to_path_buf).unwrap_or_default();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = tokio::task::spawn_blocking({
        let (url, data, cfg, cwd) = (p.url.clone(), p.data_dir(), work.path().join("opctl.json"), work.path().to_path_buf());
        move || {
            Command::new("bash")
                .args(["-euo", "pipefail", "-c", &block])
                .current_dir(cwd)
                .env("PATH", path)
                .env("OPD_DATA_DIR", data)
                .env("OPCTL_SERVER", url)
                .env("OPCTL_CONFIG", cfg)
                .env_remove("OP_UNI_RESOLVE")
                .envs(env)
                .output()
        }
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "README block '{name}' failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nopd log:\n{}", p.log());
    Ok(BlockRun { stdout })
}

/// The lab scenario's Paris cells.
pub const PARIS_CELLS: [&str; 4] = ["20801000000101", "20801000000102", "20801000000103", "20801000000104"];
/// The lab scenario's Lyon cells.
pub const LYON_CELLS: [&str; 3] = ["20801000000201", "20801000000202", "20801000000203"];

/// A device-app token signed with the app provider's Ed25519 key (`key_pem`), for `sub`.
pub fn app_token(key_pem: &str, sub: &str) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + 300;
    let enc = EncodingKey::from_ed_pem(key_pem.as_bytes()).expect("an Ed25519 private key in PEM");
    encode(&Header::new(Algorithm::EdDSA), &json!({"sub": sub, "aud": "op-uni", "exp": exp}), &enc).expect("signing")
}

/// The emulator on its lab scenario, a platform using it (`--mcc 208 --mnc 01`, 2 device
/// requests per second, plus `extra`), and two edge zones (Paris, Lyon, with their DNAIs),
/// each with a cloudlet on this machine's runtime; returns the operator's API too.
pub async fn uni_lab(extra: &[&str]) -> Result<(Netemu, Platform, Api)> {
    let net = Netemu::start()?;
    let mut args = vec!["--network-api", &net.url, "--network-client-secret", "op-platform-secret", "--mcc", "208", "--mnc", "01", "--device-rps", "2"];
    args.extend_from_slice(extra);
    let p = Platform::start_with(&args).await?;
    let admin = p.admin().await?;
    for (zone, cells, dnai, lat, lon) in [
        ("zone-paris", &PARIS_CELLS[..], "dnai-paris", 48.8566, 2.3522),
        ("zone-lyon", &LYON_CELLS[..], "dnai-lyon", 45.7578, 4.8320),
    ] {
        let (s, e) = admin
            .post("/op/v1/zones", &json!({"name": zone, "spec": {"region": "default", "dnai": dnai,
                "location": {"latitude": lat, "longitude": lon}, "serviceArea": {"cells": cells}}}))
            .await?;
        anyhow::ensure!(s == 201, "zone {zone}: {e}");
        let (s, e) = admin
            .post("/op/v1/cloudlets", &json!({"name": format!("{zone}-1"), "spec": {"zone": zone,
                "location": {"latitude": lat, "longitude": lon}, "platformType": "docker", "driverEndpoint": docker_endpoint(),
                "capacity": {"vcpus": 8, "memoryMb": 8192, "diskGb": 100}, "flavors": ["small"]}}))
            .await?;
        anyhow::ensure!(s == 201, "cloudlet of {zone}: {e}");
    }
    // Devices are served from ready cloudlets only: wait for the controller's first check, so
    // that a loaded machine does not turn the first registration into "no edge".
    for zone in ["zone-paris", "zone-lyon"] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, c) = admin.get(&format!("/op/v1/cloudlets/{zone}-1")).await?;
            if c["status"]["state"] == "Ready" {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "cloudlet {zone}-1 not ready: {c}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok((net, p, admin))
}

/// The `OP_INSTANCE_TOKEN` the platform gives instance `id` (derived from its data
/// directory's secret, as the controller derives it).
pub fn instance_token(p: &Platform, id: &str) -> Result<String> {
    let secret = std::fs::read_to_string(p.data_dir().join("services.key"))?;
    Ok(op_types::secret::instance_token(secret.trim().as_bytes(), id.parse()?))
}

impl Platform {
    /// Runs `opctl` with `args` as the caller of `api` (its token in a throwaway config);
    /// returns stdout, or fails with both outputs.
    pub fn opctl_as(&self, api: &Api, args: &[&str]) -> Result<String> {
        let dir = tempfile::tempdir()?;
        let cfg = dir.path().join("opctl.json");
        std::fs::write(&cfg, serde_json::to_vec(&json!({"server": self.url, "token": api.token}))?)?;
        let out = Command::new(bin("opctl")).args(args).env("OPCTL_SERVER", &self.url).env("OPCTL_CONFIG", &cfg).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(out.status.success(), "opctl {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
        Ok(stdout)
    }
}
