//! The docker driver against a real runtime: Podman's Docker-compatible API by default
//! (`unix:///run/podman/podman.sock`), or the endpoint in `OP_TEST_DOCKER_ENDPOINT`.
//!
//! Needs the sample image `localhost/op-sample-app:latest`: run `scripts/build-images.sh`
//! first. Without it (or without a runtime) these tests fail; they never skip.
//!
//! Every test names its containers with a random suffix and removes them, also when it fails.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::image::RemoveImageOptions;
use futures::StreamExt;
use op_driver::docker::{DockerDriver, HOST_PORTS};
use op_driver::{
    ContainerSpec, ContainerState, Driver, DriverError, PortProtocol, PortSpec, LABEL_INSTANCE, LABEL_MANAGED,
};

const IMAGE: &str = "localhost/op-sample-app:latest";

fn endpoint() -> String {
    std::env::var("OP_TEST_DOCKER_ENDPOINT").unwrap_or_else(|_| "unix:///run/podman/podman.sock".into())
}

/// A short random hex suffix, different per call and per process.
fn suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// A spec for the sample app with a unique name and instance label.
fn spec(tag: &str, host_port: Option<u16>) -> ContainerSpec {
    let unique = suffix();
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
    labels.insert(LABEL_INSTANCE.to_string(), format!("driver-test-{tag}-{unique}"));
    ContainerSpec {
        name: format!("op-driver-test-{tag}-{unique}"),
        image: IMAGE.into(),
        env: [("OP_INSTANCE".to_string(), format!("{tag}-{unique}"))].into_iter().collect(),
        ports: vec![PortSpec { container_port: 8080, protocol: PortProtocol::Tcp, host_port }],
        host_ip: "127.0.0.1".into(),
        millicpus: 500,
        memory_bytes: 64 * 1024 * 1024,
        labels,
        network: None,
    }
}

/// Removes the named containers when dropped, also when the test panics. Drop cannot await,
/// so the removal runs on its own thread and runtime.
struct Cleanup(Vec<String>);

impl Cleanup {
    fn new(specs: &[&ContainerSpec]) -> Self {
        Self(specs.iter().map(|s| s.name.clone()).collect())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.0);
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(d) = DockerDriver::connect(&endpoint()) {
                    for n in names {
                        if let Err(e) = d.remove(&n).await {
                            eprintln!("cleanup: could not remove {n}: {e}");
                        }
                    }
                }
            });
        });
        let _ = done.join();
    }
}

/// A driver for the test runtime, which must answer and hold the sample image.
async fn driver() -> DockerDriver {
    let ep = endpoint();
    let d = DockerDriver::connect(&ep)
        .unwrap_or_else(|e| panic!("cannot connect to {ep}: {e} (is the runtime up? scripts/setup-runtime.sh)"));
    if let Err(e) = d.ping().await {
        panic!("the runtime at {ep} does not answer: {e} (scripts/setup-runtime.sh starts it)");
    }
    match d.image_exists(IMAGE).await {
        Ok(true) => {}
        Ok(false) => panic!("the image {IMAGE} is missing on {ep}: run scripts/build-images.sh first"),
        Err(e) => panic!("cannot check for {IMAGE} on {ep}: {e}"),
    }
    d
}

/// bollard directly, for what the driver does not expose (limits, kill, stop).
fn raw_docker() -> bollard::Docker {
    let ep = endpoint();
    let r = match ep.strip_prefix("unix://") {
        Some(path) => bollard::Docker::connect_with_unix(path, 60, bollard::API_DEFAULT_VERSION),
        None => bollard::Docker::connect_with_http(&ep, 60, bollard::API_DEFAULT_VERSION),
    };
    r.expect("raw bollard client")
}

/// A port no one listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// One `GET path` with `Connection: close`; `None` if nothing (complete) answered.
fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

/// Polls `GET path` until it answers, for up to 10 seconds.
async fn http_get_eventually(port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = path.to_string();
        if let Ok(Some(b)) = tokio::task::spawn_blocking(move || http_get(port, &p)).await {
            return b;
        }
        assert!(Instant::now() < deadline, "nothing answered GET {path} on 127.0.0.1:{port} within 10s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `inspect` until `done` holds, for up to `secs` seconds; returns the last answer.
async fn inspect_until(
    d: &DockerDriver,
    id: &str,
    secs: u64,
    done: impl Fn(&op_driver::ContainerInfo) -> bool,
) -> op_driver::ContainerInfo {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let info = d.inspect(id).await.expect("inspect").expect("container exists");
        if done(&info) || Instant::now() >= deadline {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ping_and_image_exists() {
    let d = driver().await;
    d.ping().await.expect("ping");
    assert!(d.image_exists(IMAGE).await.expect("image_exists"));
    let missing = format!("localhost/op-no-such-image-{}:1", suffix());
    assert!(!d.image_exists(&missing).await.expect("image_exists on a missing image"));
}

#[tokio::test]
async fn lifecycle_and_idempotence() {
    let d = driver().await;
    let s = spec("life", None);
    let _cleanup = Cleanup::new(&[&s]);
    let instance = s.labels[LABEL_INSTANCE].clone();

    let id = d.create(&s).await.expect("create");
    let created = d.inspect(&s.name).await.expect("inspect").expect("exists after create");
    assert_eq!(created.id, id);
    assert_eq!(created.name, s.name);
    assert_eq!(created.state, ContainerState::Created);
    assert_eq!(created.exit_code, None);
    assert_eq!(created.labels.get(LABEL_INSTANCE), Some(&instance));

    let again = d.create(&s).await;
    assert!(matches!(again, Err(DriverError::NameInUse(_))), "a second create never duplicates: {again:?}");

    d.start(&id).await.expect("start");
    d.start(&id).await.expect("starting a running container is not an error");

    let info = d.inspect(&id).await.expect("inspect").expect("exists");
    assert_eq!(info.state, ContainerState::Running, "{info:?}");
    assert_eq!(info.exit_code, None);
    let published = info.ports.iter().find(|p| p.container_port == 8080).expect("8080 published");
    assert_eq!(published.host_ip, "127.0.0.1");
    assert!(HOST_PORTS.contains(&published.host_port), "the driver picked a host port outside the kernel's ephemeral range: {published:?}");
    let port = published.host_port;
    let netns = info.netns.as_deref().expect("a runtime on this host names the container's network namespace");
    assert!(std::path::Path::new(netns).exists(), "{netns} is a file here");
    let mine = std::fs::metadata("/proc/self/ns/net").expect("own namespace");
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(netns).expect("namespace file")),
        std::os::unix::fs::MetadataExt::ino(&mine),
        "the container's namespace, not the host's"
    );

    let body = http_get_eventually(port, "/").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains(&format!("instance {}", s.env["OP_INSTANCE"])), "the app sees its env: {body}");
    let env = http_get_eventually(port, "/env/OP_INSTANCE").await;
    assert!(env.starts_with("HTTP/1.1 200") && env.contains(&s.env["OP_INSTANCE"]), "{env}");

    let listed = d.list(&[(LABEL_INSTANCE, instance.as_str()), (LABEL_MANAGED, "true")]).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].name, s.name);
    assert_eq!(listed[0].state, ContainerState::Running);
    assert!(listed[0].ports.iter().any(|p| p.container_port == 8080 && p.host_port == port), "{listed:?}");
    let other = d.list(&[(LABEL_INSTANCE, instance.as_str()), (LABEL_MANAGED, "false")]).await.expect("list");
    assert!(other.is_empty(), "all labels must match: {other:?}");

    let logs: Vec<u8> = d.logs(&id, 10, false).await.expect("logs").map(|c| c.expect("log chunk")).concat().await;
    let logs = String::from_utf8_lossy(&logs);
    assert!(logs.contains("listening"), "logs: {logs:?}");

    // Counters from the runtime: memory in use under its limit, a process, CPU time spent.
    let st = d.stats(&id).await.expect("stats");
    assert!(st.memory_bytes > 0 && st.memory_limit_bytes >= st.memory_bytes && st.pids >= 1 && st.cpu_ns > 0, "{st:?}");
    assert!(matches!(d.stats("op-no-such-container").await, Err(DriverError::NotFound(_))));
    // A command runs inside (the sample image carries BusyBox); its output, on the right
    // stream, and its exit code come back.
    let cmd = ["sh", "-c", "echo out; echo err >&2; exit 3"].map(String::from).to_vec();
    let mut session = d.exec(&id, &op_driver::ExecRequest { cmd, tty: false }).await.expect("exec");
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut session.input).await;
    let exec_id = session.id.clone();
    let output: Vec<_> = session.output.map(|c| c.expect("exec output")).collect().await;
    assert!(output.contains(&op_driver::ExecOutput::Stdout(b"out\n".to_vec())), "{output:?}");
    assert!(output.contains(&op_driver::ExecOutput::Stderr(b"err\n".to_vec())), "{output:?}");
    let mut code = None;
    for _ in 0..40 {
        code = d.exec_exit_code(&exec_id).await.expect("exit code");
        if code.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(code, Some(3), "the exec ended and its exit code is known");

    let t = Instant::now();
    d.stop(&id, Duration::from_secs(5)).await.expect("stop");
    assert!(t.elapsed() < Duration::from_secs(4), "the app exits on SIGTERM, no kill needed");
    let stopped = d.inspect(&id).await.expect("inspect").expect("exists");
    assert_eq!((stopped.state, stopped.exit_code), (ContainerState::Exited, Some(0)), "{stopped:?}");
    d.stop(&id, Duration::from_secs(5)).await.expect("stopping a stopped container is not an error");

    d.remove(&id).await.expect("remove");
    assert!(d.inspect(&id).await.expect("inspect").is_none());
    assert!(d.inspect(&s.name).await.expect("inspect").is_none());
    d.remove(&id).await.expect("removing a missing container is not an error");
    d.remove(&s.name).await.expect("removing a missing container is not an error");
    assert!(d.list(&[(LABEL_INSTANCE, instance.as_str())]).await.expect("list").is_empty());
    d.stop(&id, Duration::from_secs(1)).await.expect("stopping a missing container is not an error");
    assert!(matches!(d.start(&id).await, Err(DriverError::NotFound(_))));
    assert!(matches!(d.logs(&id, 10, false).await, Err(DriverError::NotFound(_))));
    assert!(matches!(d.exec(&id, &op_driver::ExecRequest { cmd: vec!["true".into()], tty: false }).await, Err(DriverError::NotFound(_))));
}

#[tokio::test]
async fn exited_state_and_exit_code() {
    let d = driver().await;
    let s = spec("exit", None);
    let _cleanup = Cleanup::new(&[&s]);
    let id = d.create(&s).await.expect("create");
    d.start(&id).await.expect("start");
    raw_docker()
        .kill_container(&id, Some(bollard::container::KillContainerOptions { signal: "SIGKILL" }))
        .await
        .expect("kill");
    let info = inspect_until(&d, &id, 10, |i| i.state == ContainerState::Exited).await;
    assert_eq!(info.state, ContainerState::Exited, "{info:?}");
    assert_eq!(info.exit_code, Some(137), "killed by SIGKILL: {info:?}");
    let listed = d.list(&[(LABEL_INSTANCE, s.labels[LABEL_INSTANCE].as_str())]).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].state, listed[0].exit_code), (ContainerState::Exited, Some(137)), "{listed:?}");
    // A stopped container starts again.
    d.start(&id).await.expect("restart");
    assert_eq!(inspect_until(&d, &id, 10, |i| i.state == ContainerState::Running).await.state, ContainerState::Running);
    d.remove(&id).await.expect("remove");
}

/// Podman reports `stopping` while a container is being stopped, which the Docker API schema
/// does not know; inspect must still answer. The container is made with SIGUSR1 as its stop
/// signal: the app, PID 1 without a handler for it, ignores it, so the stop lasts the whole
/// grace period.
#[tokio::test]
async fn inspect_while_stopping() {
    let d = driver().await;
    let s = spec("stopping", None);
    let _cleanup = Cleanup::new(&[&s]);
    let raw = raw_docker();
    let config = bollard::container::Config {
        image: Some(s.image.clone()),
        labels: Some(s.labels.clone().into_iter().collect()),
        stop_signal: Some("SIGUSR1".to_string()),
        ..Default::default()
    };
    let opts = bollard::container::CreateContainerOptions { name: s.name.clone(), platform: None };
    let id = raw.create_container(Some(opts), config).await.expect("create").id;
    d.start(&id).await.expect("start");
    inspect_until(&d, &id, 10, |i| i.state == ContainerState::Running).await;
    let stopper = {
        let id = id.clone();
        tokio::spawn(async move {
            raw_docker().stop_container(&id, Some(bollard::container::StopContainerOptions { t: 4 })).await
        })
    };
    let info = inspect_until(&d, &id, 15, |i| i.state != ContainerState::Running).await;
    assert_ne!(info.state, ContainerState::Running, "the stop never showed: {info:?}");
    assert_eq!(info.id, id);
    assert_eq!(info.name, s.name);
    assert_eq!(info.labels.get(LABEL_INSTANCE), s.labels.get(LABEL_INSTANCE));
    eprintln!("state while stopping: {:?}", info.state);
    let _ = stopper.await;
    let info = inspect_until(&d, &id, 10, |i| i.state == ContainerState::Exited).await;
    assert_eq!(info.state, ContainerState::Exited, "{info:?}");
    d.remove(&id).await.expect("remove");
}

#[tokio::test]
async fn limits_are_applied() {
    let d = driver().await;
    let s = spec("limits", None);
    let _cleanup = Cleanup::new(&[&s]);
    let id = d.create(&s).await.expect("create with limits");
    d.start(&id).await.expect("start with limits");
    let r = raw_docker().inspect_container(&id, None).await.expect("inspect");
    let hc = r.host_config.expect("host config");
    assert_eq!(hc.memory, Some(64 * 1024 * 1024));
    assert_eq!(hc.nano_cpus.filter(|n| *n > 0).or(hc.cpu_quota.map(|q| q * 10_000)), Some(500_000_000));
    assert_eq!(d.inspect(&id).await.expect("inspect").map(|i| i.state), Some(ContainerState::Running));

    // On a local runtime, the kernel's own numbers (cgroup v1 or v2).
    let pid = r.state.and_then(|st| st.pid).unwrap_or(0);
    if endpoint().starts_with("unix://") && pid > 0 {
        if let Ok(cgroups) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
            let mut checked = false;
            for line in cgroups.lines() {
                let mut f = line.splitn(3, ':');
                let (_, controllers, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
                let base = if controllers.is_empty() {
                    "/sys/fs/cgroup".to_string()
                } else {
                    format!("/sys/fs/cgroup/{controllers}")
                };
                let read = |file: &str| std::fs::read_to_string(format!("{base}{path}/{file}")).ok();
                if let Some(mem) = read("memory.limit_in_bytes").or_else(|| read("memory.max")) {
                    assert_eq!(mem.trim(), "67108864", "memory limit in {base}{path}");
                    checked = true;
                }
                if let Some(quota) = read("cpu.cfs_quota_us") {
                    let period = read("cpu.cfs_period_us").unwrap_or_default();
                    let (q, p) = (quota.trim().parse::<i64>().unwrap_or(-1), period.trim().parse::<i64>().unwrap_or(0));
                    assert!(p > 0 && q * 1000 / p == 500, "cpu quota {q}/{p} in {base}{path}");
                    checked = true;
                } else if let Some(max) = read("cpu.max") {
                    let mut f = max.split_whitespace();
                    let (q, p) =
                        (f.next().and_then(|q| q.parse::<i64>().ok()), f.next().and_then(|p| p.parse::<i64>().ok()));
                    assert!(matches!((q, p), (Some(q), Some(p)) if p > 0 && q * 1000 / p == 500), "cpu.max {max}");
                    checked = true;
                }
            }
            eprintln!("kernel cgroup limits checked: {checked}");
        }
    }
    d.remove(&id).await.expect("remove");
}

#[tokio::test]
async fn missing_image() {
    let d = driver().await;
    let mut s = spec("noimage", None);
    let _cleanup = Cleanup::new(&[&s]);
    s.image = format!("localhost/op-no-such-image-{}:1", suffix());
    let r = d.create(&s).await;
    assert!(matches!(&r, Err(DriverError::ImageNotFound(i)) if *i == s.image), "{r:?}");
    assert!(!r.unwrap_err().retryable());
    assert!(d.inspect(&s.name).await.expect("inspect").is_none(), "nothing was created");
}

#[tokio::test]
async fn fixed_host_port_clash() {
    let d = driver().await;
    let port = free_port();
    let (a, b) = (spec("porta", Some(port)), spec("portb", Some(port)));
    let _cleanup = Cleanup::new(&[&a, &b]);
    let ia = d.create(&a).await.expect("create a");
    d.start(&ia).await.expect("start a");
    let info = d.inspect(&ia).await.expect("inspect").expect("a exists");
    assert!(info.ports.iter().any(|p| p.host_port == port && p.host_ip == "127.0.0.1"), "{info:?}");
    let ib = d.create(&b).await.expect("create b (the port is only bound at start)");
    let err = d.start(&ib).await.expect_err("b cannot bind the port a holds");
    assert!(matches!(err, DriverError::PortInUse(p) if p == port), "{err:?}");
    assert!(!err.retryable());
    let b_info = d.inspect(&ib).await.expect("inspect").expect("b exists");
    assert_ne!(b_info.state, ContainerState::Running);
    // A fixed port shows even while the container does not run.
    assert!(b_info.ports.iter().any(|p| p.host_port == port), "{b_info:?}");
    d.remove(&ia).await.expect("remove a");
    d.remove(&ib).await.expect("remove b");
}

#[tokio::test]
async fn host_port_taken_by_a_process() {
    let d = driver().await;
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let s = spec("porth", Some(port));
    let _cleanup = Cleanup::new(&[&s]);
    let id = d.create(&s).await.expect("create");
    let err = d.start(&id).await.expect_err("the port is taken");
    assert!(matches!(err, DriverError::PortInUse(p) if p == port), "{err:?}");
    drop(holder);
    d.remove(&id).await.expect("remove");
}

#[tokio::test]
async fn unreachable_runtime_is_unavailable() {
    // A socket path that does not exist.
    let missing = format!("unix:///nonexistent-{}/podman.sock", suffix());
    match DockerDriver::connect(&missing) {
        Err(e) => assert!(matches!(e, DriverError::Unavailable(_)) && e.retryable(), "{e:?}"),
        Ok(d) => assert!(matches!(d.ping().await, Err(DriverError::Unavailable(_)))),
    }

    // A socket file left behind by a runtime that is gone: connecting works, calls do not.
    let path = std::env::temp_dir().join(format!("op-driver-test-{}.sock", suffix()));
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind a unix socket"));
    let stale = DockerDriver::connect(&format!("unix://{}", path.display())).expect("the socket file exists");
    let s = spec("stale", None);
    let results = [
        stale.ping().await.err(),
        stale.image_exists(IMAGE).await.err(),
        stale.create(&s).await.err(),
        stale.start(&s.name).await.err(),
        stale.stop(&s.name, Duration::from_secs(1)).await.err(),
        stale.remove(&s.name).await.err(),
        stale.inspect(&s.name).await.err(),
        stale.list(&[]).await.err(),
        stale.logs(&s.name, 10, false).await.err(),
        stale.stats(&s.name).await.err(),
    ];
    let _ = std::fs::remove_file(&path);
    for r in results {
        assert!(matches!(&r, Some(DriverError::Unavailable(_))), "{r:?}");
    }

    // Nothing listens on the TCP port.
    let refused = DockerDriver::connect(&format!("tcp://127.0.0.1:{}", free_port())).expect("connect is lazy");
    let err = refused.ping().await.expect_err("nothing listens");
    assert!(matches!(err, DriverError::Unavailable(_)) && err.retryable(), "{err:?}");
    assert!(matches!(refused.inspect("x").await, Err(DriverError::Unavailable(_))));
}

// Image export, load and tag (what federation uses to move an app's image to a partner).
// The shared sample tag is never removed or reloaded: each test works on its own tags
// `localhost/op-test-fed/<random>:...`, removed at the end (also when the test fails).

/// Removes one tag (never the image's layers, never a container's image: `noprune`, no force).
async fn untag(name: &str) -> Result<(), bollard::errors::Error> {
    let opts = RemoveImageOptions { force: false, noprune: true };
    match raw_docker().remove_image(name, Some(opts), None).await {
        Ok(_) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the named tags when dropped, also when the test panics. Drop cannot await, so the
/// removal runs on its own thread and runtime.
struct Untag(Vec<String>);

impl Drop for Untag {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.0);
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                for n in names {
                    if let Err(e) = untag(&n).await {
                        eprintln!("cleanup: could not remove the tag {n}: {e}");
                    }
                }
            });
        });
        let _ = done.join();
    }
}

/// Whether `tar` is a tar archive (ustar magic in the first header) holding `manifest.json`,
/// as `docker save` writes it.
fn looks_like_docker_save(tar: &[u8]) -> bool {
    tar.len() > 1024 && &tar[257..262] == b"ustar" && tar.windows(13).any(|w| w == b"manifest.json")
}

/// Tag a unique name, export it, drop the tag, load the archive: the name is back, and the
/// runtime reported it. Also tags idempotently and with an implicit `latest`.
#[tokio::test]
async fn export_then_load_restores_the_name() {
    let d = driver().await;
    let unique = suffix();
    let name = format!("localhost/op-test-fed/{unique}:1");
    let bare = format!("localhost/op-test-fed/{unique}");
    let _cleanup = Untag(vec![name.clone(), format!("{bare}:latest")]);

    assert!(!d.image_exists(&name).await.unwrap(), "a fresh name must not exist yet");
    d.tag_image(IMAGE, &name).await.unwrap();
    d.tag_image(IMAGE, &name).await.expect("tagging again is not an error");
    assert!(d.image_exists(&name).await.unwrap(), "tag_image must create {name}");
    d.tag_image(&name, &bare).await.unwrap();
    assert!(d.image_exists(&format!("{bare}:latest")).await.unwrap(), "a target without a tag means :latest");

    let tar = d.export_image(&name).await.unwrap();
    assert!(looks_like_docker_save(&tar), "export is not a docker-save tar ({} bytes)", tar.len());
    assert!(tar.len() < 64 * 1024 * 1024, "the sample image exported as {} bytes", tar.len());

    untag(&name).await.unwrap();
    assert!(!d.image_exists(&name).await.unwrap(), "the tag should be gone before the load");
    let refs = d.load_image(tar).await.unwrap();
    assert!(refs.contains(&name), "load reported {refs:?}, not {name}");
    assert!(d.image_exists(&name).await.unwrap(), "load must bring {name} back");
    assert!(d.image_exists(IMAGE).await.unwrap(), "the sample tag must be untouched");
}

/// Bytes that are no image archive: the runtime's refusal, as a Runtime error with its message.
#[tokio::test]
async fn loading_garbage_is_a_runtime_error() {
    let d = driver().await;
    for (what, bytes) in [("text", b"not an image archive".to_vec()), ("an empty tar", vec![0u8; 1024])] {
        match d.load_image(bytes).await {
            Err(DriverError::Runtime(msg)) => assert!(!msg.trim().is_empty(), "{what}: empty message"),
            other => panic!("loading {what} gave {other:?}, not a Runtime error"),
        }
    }
}

/// A missing image cannot be exported or tagged: ImageNotFound, naming it.
#[tokio::test]
async fn missing_images_are_image_not_found() {
    let d = driver().await;
    let missing = format!("localhost/op-test-fed/missing-{}:1", suffix());
    match d.export_image(&missing).await {
        Err(DriverError::ImageNotFound(n)) => assert_eq!(n, missing),
        other => panic!("exporting {missing} gave {:?}, not ImageNotFound", other.map(|b| b.len())),
    }
    let target = format!("localhost/op-test-fed/never-{}:1", suffix());
    let _cleanup = Untag(vec![target.clone()]);
    match d.tag_image(&missing, &target).await {
        Err(DriverError::ImageNotFound(n)) => assert_eq!(n, missing),
        other => panic!("tagging {missing} gave {other:?}, not ImageNotFound"),
    }
    assert!(!d.image_exists(&target).await.unwrap());
}

/// Networks: a container made on an internal network answers another there by its alias and
/// publishes nothing; connecting it to a second network gives it an address there,
/// disconnecting takes it away; every call is idempotent; the networks go.
#[tokio::test]
async fn networks_connect_disconnect_and_aliases() {
    let d = driver().await;
    let unique = suffix();
    let (internal, egress) = (format!("op-test-net-{unique}"), format!("op-test-egress-{unique}"));
    let labels = BTreeMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]);
    let subnet = d.ensure_network(&internal, true, &labels).await.unwrap().expect("the runtime tells the subnet");
    let again = d.ensure_network(&internal, true, &labels).await.expect("ensuring again is not an error");
    assert_eq!(again.as_deref(), Some(subnet.as_str()), "the same network");
    d.ensure_network(&egress, false, &labels).await.unwrap();
    let mut a = spec("net-a", None);
    a.network = Some(op_driver::NetworkAttachment { name: internal.clone(), aliases: vec![format!("alias-{unique}")] });
    let mut b = spec("net-b", None);
    b.network = Some(op_driver::NetworkAttachment { name: internal.clone(), aliases: vec![] });
    let _cleanup = Cleanup::new(&[&a, &b]);
    for s in [&a, &b] {
        let id = d.create(s).await.unwrap();
        d.start(&id).await.unwrap();
    }
    let info = d.inspect(&a.name).await.unwrap().unwrap();
    assert!(info.ports.is_empty(), "nothing published on a cluster network: {:?}", info.ports);
    assert!(info.networks.contains_key(&internal), "{:?}", info.networks);
    let net: op_types::egress::Cidr = subnet.parse().unwrap();
    assert!(net.contains(info.networks[&internal].parse().unwrap()), "{:?} in {subnet}", info.networks);
    // b reaches a by its alias.
    let session = d.exec(&b.name, &op_driver::ExecRequest { cmd: vec!["sh".into(), "-c".into(), format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 alias-{unique} 8080")], tty: false }).await.unwrap();
    let mut out = Vec::new();
    let mut s = session.output;
    while let Some(chunk) = s.next().await {
        if let Ok(op_driver::ExecOutput::Stdout(b)) = chunk {
            out.extend_from_slice(&b);
        }
    }
    assert!(String::from_utf8_lossy(&out).contains("hello from op-sample-app"), "{}", String::from_utf8_lossy(&out));
    d.connect_network(&egress, &a.name).await.unwrap();
    d.connect_network(&egress, &a.name).await.expect("connecting again is not an error");
    assert!(d.inspect(&a.name).await.unwrap().unwrap().networks.contains_key(&egress));
    d.disconnect_network(&egress, &a.name).await.unwrap();
    d.disconnect_network(&egress, &a.name).await.expect("disconnecting again is not an error");
    assert!(!d.inspect(&a.name).await.unwrap().unwrap().networks.contains_key(&egress));
    for s in [&a, &b] {
        d.remove(&s.name).await.unwrap();
    }
    d.remove_network(&egress).await.unwrap();
    d.remove_network(&internal).await.unwrap();
    d.remove_network(&internal).await.expect("removing a missing network is not an error");
}

/// Removing an image name: gone after, the image under its other name untouched, a missing
/// name no error.
#[tokio::test]
async fn remove_image_drops_the_name_only() {
    let d = driver().await;
    let name = format!("localhost/op-test-rm/{}:1", suffix());
    let _cleanup = Untag(vec![name.clone()]);
    d.tag_image(IMAGE, &name).await.unwrap();
    assert!(d.image_exists(&name).await.unwrap());
    d.remove_image(&name).await.unwrap();
    assert!(!d.image_exists(&name).await.unwrap(), "{name} is gone");
    assert!(d.image_exists(IMAGE).await.unwrap(), "the image keeps its other name");
    d.remove_image(&name).await.expect("removing a missing name is not an error");
}
