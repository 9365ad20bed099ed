//! The docker driver against a real runtime (Podman's Docker-compatible API by default).
//! Needs the sample image: scripts/build-sample-image.sh.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use op_driver::docker::DockerDriver;
use op_driver::{ContainerSpec, ContainerState, Driver, DriverError, PortProtocol, PortSpec, LABEL_INSTANCE};

const IMAGE: &str = "localhost/op-sample-app:latest";

fn endpoint() -> String {
    std::env::var("OP_TEST_DOCKER_ENDPOINT").unwrap_or_else(|_| "unix:///run/podman/podman.sock".into())
}

fn spec(tag: &str, host_port: Option<u16>) -> ContainerSpec {
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_INSTANCE.to_string(), format!("driver-test-{tag}-{}", std::process::id()));
    ContainerSpec {
        name: format!("op-driver-test-{tag}-{}", std::process::id()),
        image: IMAGE.into(),
        env: [("OP_INSTANCE".to_string(), tag.to_string())].into_iter().collect(),
        ports: vec![PortSpec { container_port: 8080, protocol: PortProtocol::Tcp, host_port }],
        host_ip: "127.0.0.1".into(),
        millicpus: 500,
        memory_bytes: 64 * 1024 * 1024,
        labels,
    }
}

fn http_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

async fn driver() -> DockerDriver {
    let d = DockerDriver::connect(&endpoint()).expect("connect");
    d.ping().await.expect("runtime answers");
    assert!(d.image_exists(IMAGE).await.unwrap(), "{IMAGE} missing: run scripts/build-sample-image.sh");
    d
}

#[tokio::test]
async fn lifecycle_and_idempotence() {
    let d = driver().await;
    let s = spec("life", None);
    d.remove(&s.name).await.unwrap();
    let id = d.create(&s).await.unwrap();
    assert!(matches!(d.create(&s).await, Err(DriverError::NameInUse(_))), "a second create never duplicates");
    d.start(&id).await.unwrap();
    d.start(&id).await.unwrap();
    let info = d.inspect(&s.name).await.unwrap().unwrap();
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.labels[LABEL_INSTANCE], s.labels[LABEL_INSTANCE]);
    let port = info.ports.iter().find(|p| p.container_port == 8080).expect("published").host_port;
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        if let Some(b) = http_get(port) {
            break b;
        }
        assert!(Instant::now() < deadline, "app never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(body.starts_with("HTTP/1.1 200") && body.contains("instance life"), "{body}");
    let listed = d.list(&[(LABEL_INSTANCE, s.labels[LABEL_INSTANCE].as_str())]).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(d.logs(&id, 10).await.unwrap().contains("listening"));
    let t = Instant::now();
    d.stop(&id, Duration::from_secs(5)).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(4), "the app exits on SIGTERM, no kill needed");
    assert_eq!(d.inspect(&id).await.unwrap().unwrap().state, ContainerState::Exited);
    d.stop(&id, Duration::from_secs(5)).await.unwrap();
    d.remove(&id).await.unwrap();
    assert!(d.inspect(&s.name).await.unwrap().is_none());
    d.remove(&id).await.unwrap();
}

#[tokio::test]
async fn limits_are_applied() {
    let d = driver().await;
    let s = spec("limits", None);
    d.remove(&s.name).await.unwrap();
    let id = d.create(&s).await.unwrap();
    let docker = bollard::Docker::connect_with_unix(
        endpoint().trim_start_matches("unix://"),
        30,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap();
    let r = docker.inspect_container(&id, None).await.unwrap();
    let hc = r.host_config.unwrap();
    assert_eq!(hc.memory, Some(64 * 1024 * 1024));
    assert_eq!(hc.nano_cpus.filter(|n| *n > 0).or(hc.cpu_quota.map(|q| q * 10_000)), Some(500_000_000));
    d.remove(&id).await.unwrap();
}

#[tokio::test]
async fn errors_say_what_went_wrong() {
    let d = driver().await;
    let mut s = spec("noimage", None);
    s.image = "localhost/op-no-such-image:1".into();
    assert!(matches!(d.create(&s).await, Err(DriverError::ImageNotFound(_))));
    assert!(!d.image_exists(&s.image).await.unwrap());

    // Two containers on one fixed host port: the second cannot start.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (a, b) = (spec("porta", Some(port)), spec("portb", Some(port)));
    for x in [&a, &b] {
        d.remove(&x.name).await.unwrap();
    }
    let ia = d.create(&a).await.unwrap();
    d.start(&ia).await.unwrap();
    let ib = d.create(&b).await.unwrap();
    let err = d.start(&ib).await.unwrap_err();
    assert!(matches!(err, DriverError::PortInUse(p) if p == port || p == 0), "{err:?}");
    assert!(!err.retryable());
    d.remove(&ia).await.unwrap();
    d.remove(&ib).await.unwrap();

    let gone = DockerDriver::connect("unix:///nonexistent/podman.sock");
    assert!(matches!(gone, Err(DriverError::Unavailable(_))));
    let refused = DockerDriver::connect("tcp://127.0.0.1:1").unwrap();
    let err = refused.ping().await.unwrap_err();
    assert!(matches!(err, DriverError::Unavailable(_)) && err.retryable());
}
