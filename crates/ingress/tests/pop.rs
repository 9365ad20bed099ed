//! A point of presence on real sockets: a connection with no instance anywhere is held, the
//! orchestrator is asked once, and it is answered when an instance appears; with none in time
//! it gets a 503 (on tokio's paused clock: no waiting); a session token is checked with the
//! public key alone; a point of presence without an instance forwards to the one that has one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{read_n, server};
use op_ingress::{AppRoute, Backend, Mesh, PopHandle, Table};
use op_types::serverless::ServerlessProtocol;
use op_types::Uid;
use op_uni::token::{now, SessionClaims, SessionSigner, SessionVerifier, SESSION_ISSUER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn route(app: Uid, require_session: bool) -> AppRoute {
    AppRoute { app, label: "org/echo".into(), host: "echo.test".into(), path_prefix: None, protocol: ServerlessProtocol::Http, require_session, concurrency: 10 }
}

/// A one-answer-per-connection HTTP server that says `name`.
async fn instance(name: &'static str) -> SocketAddr {
    server(move |mut s| async move {
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}", name.len()).as_bytes()).await;
    })
    .await
}

async fn get(pop: SocketAddr, extra: &str) -> String {
    let mut s = TcpStream::connect(pop).await.unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: echo.test\r\n{extra}\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn backend(app: Uid, pop: &str, addr: SocketAddr) -> Table {
    Table { apps: vec![route(app, false)], backends: [(app, vec![Backend { instance: Uid::random(), pop: pop.into(), addr: addr.to_string(), ready: true, inside: None }])].into() }
}

#[tokio::test]
async fn held_until_an_instance_appears_then_forwarded_from_elsewhere() {
    let (mesh, mut wakes) = Mesh::new(Duration::from_secs(30));
    let app = Uid::random();
    mesh.set_table(Table { apps: vec![route(app, false)], backends: [(app, vec![])].into() });
    let p1 = PopHandle::start(mesh.clone(), "p1", "127.0.0.1", 0).await.unwrap();
    let p2 = PopHandle::start(mesh.clone(), "p2", "127.0.0.1", 0).await.unwrap();
    let held = tokio::spawn(get(p1.http, ""));
    let w = wakes.recv().await.unwrap();
    assert_eq!((w.app, w.pop.as_str()), (app, "p1"));
    let addr = instance("one").await;
    mesh.set_table(backend(app, "p1", addr));
    let answer = held.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("one"), "{answer}");
    // p2 has no instance: it forwards to p1, and counts the forward.
    let answer = get(p2.http, "").await;
    assert!(answer.ends_with("one"), "{answer}");
    let t = mesh.stats.snapshot();
    let at = |pop: &str| t.iter().find(|(a, p, _)| *a == app && p == pop).map(|x| x.2.clone()).unwrap_or_default();
    assert_eq!((at("p1").held_total, at("p2").forwarded_total, at("p2").connections_total), (1, 1, 1));
    // Only one request for an instance was made.
    assert!(wakes.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn no_instance_in_time_is_a_503_that_may_be_retried() {
    let (mesh, _wakes) = Mesh::new(Duration::from_secs(30));
    let app = Uid::random();
    mesh.set_table(Table { apps: vec![route(app, false)], backends: [(app, vec![])].into() });
    let p = PopHandle::start(mesh.clone(), "p1", "127.0.0.1", 0).await.unwrap();
    let started = tokio::time::Instant::now();
    let answer = get(p.http, "").await;
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("retry-after: 1") && answer.contains("\"code\":\"UNAVAILABLE\""), "{answer}");
    assert!(started.elapsed() >= Duration::from_secs(30), "held for the whole hold time: {:?}", started.elapsed());
    let unknown = {
        let mut s = TcpStream::connect(p.http).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(unknown.starts_with("HTTP/1.1 404") && unknown.contains("NOT_FOUND"), "{unknown}");
}

#[tokio::test]
async fn sessions_are_verified_with_the_public_key_alone() {
    let (signer, _) = SessionSigner::generate().unwrap();
    let (mesh, _wakes): (Arc<Mesh>, _) = Mesh::new(Duration::from_secs(5));
    mesh.set_verifier(SessionVerifier::from_public_pem(signer.public_pem()).unwrap());
    let app = Uid::random();
    let addr = instance("secured").await;
    let mut t = backend(app, "p1", addr);
    t.apps = vec![route(app, true)];
    mesh.set_table(t);
    let p = PopHandle::start(mesh.clone(), "p1", "127.0.0.1", 0).await.unwrap();
    let token = |for_app: Uid, dev: &str| {
        let iat = now();
        let c = SessionClaims { sub: format!("s-{dev}"), app: for_app, inst: Uid::random(), zone: Uid::random(), iat, exp: iat + 60, iss: SESSION_ISSUER.into(), dev: dev.into(), mac: String::new() };
        signer.sign(&c).unwrap()
    };
    assert!(get(p.http, "").await.starts_with("HTTP/1.1 401"));
    assert!(get(p.http, "Authorization: Bearer not.a.token\r\n").await.starts_with("HTTP/1.1 401"));
    assert!(get(p.http, &format!("Authorization: Bearer {}\r\n", token(Uid::random(), "d1"))).await.starts_with("HTTP/1.1 401"));
    let ok = get(p.http, &format!("Authorization: Bearer {}\r\n", token(app, "d1"))).await;
    assert!(ok.ends_with("secured"), "{ok}");
    let ok = get(p.http, &format!("x-op-session: {}\r\n", token(app, "d2"))).await;
    assert!(ok.ends_with("secured"), "{ok}");
    let t = mesh.stats.snapshot();
    assert_eq!(t.iter().find(|(a, _, _)| *a == app).map(|x| x.2.devices), Some(2), "two devices by their pseudonyms");
}

/// A server that says `name` on each connection, then echoes every byte it reads (an HTTP/2
/// or plain TCP peer as far as a byte pipe can tell).
async fn echo(name: &'static str) -> SocketAddr {
    server(move |mut s| async move {
        let _ = s.write_all(format!("{name}\n").as_bytes()).await;
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
    .await
}

#[tokio::test]
async fn http2_prior_knowledge_is_routed_by_its_authority_and_passed_unchanged() {
    let (mesh, _wakes) = Mesh::new(Duration::from_secs(30));
    let (a, b) = (Uid::random(), Uid::random());
    let mut ra = route(a, false);
    ra.host = "a.test".into();
    let mut rb = route(b, false);
    rb.host = "b.test".into();
    let be = |app, addr: SocketAddr| (app, vec![Backend { instance: Uid::random(), pop: "p1".into(), addr: addr.to_string(), ready: true, inside: None }]);
    mesh.set_table(Table { apps: vec![ra, rb], backends: [be(a, echo("A").await), be(b, echo("B").await)].into() });
    let p = PopHandle::start(mesh.clone(), "p1", "127.0.0.1", 0).await.unwrap();

    // Preface, an empty SETTINGS frame, then HEADERS (END_HEADERS | END_STREAM) on stream 1.
    let block = hpack::Encoder::new().encode(vec![(&b":method"[..], &b"GET"[..]), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"b.test")]);
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    let len = u32::try_from(block.len()).unwrap().to_be_bytes();
    bytes.extend_from_slice(&[len[1], len[2], len[3], 0x1, 0x5, 0, 0, 0, 1]);
    bytes.extend_from_slice(&block);
    let mut s = TcpStream::connect(p.http).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    assert_eq!(read_n(&mut s, 2).await, b"B\n", "routed by :authority to app b");
    assert_eq!(read_n(&mut s, bytes.len()).await, bytes, "the HTTP/2 bytes reach the instance unchanged");
    // Later frames go through too (a PING, echoed).
    let ping = [0, 0, 8, 0x6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    s.write_all(&ping).await.unwrap();
    assert_eq!(read_n(&mut s, ping.len()).await, ping);
}

#[tokio::test]
async fn a_websocket_upgrade_becomes_a_two_way_pipe_counted_while_open() {
    let (mesh, _wakes) = Mesh::new(Duration::from_secs(30));
    let app = Uid::random();
    // The instance answers the upgrade, then echoes frames (anything else that connects to its
    // port is not the test's and is dropped).
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (heads, mut got) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut c = [0u8; 1];
                if s.read_exact(&mut c).await.is_err() {
                    break;
                }
                head.push(c[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            if !head.contains("Upgrade: websocket") {
                continue;
            }
            heads.send(head).unwrap();
            tokio::spawn(async move {
                s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").await.unwrap();
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    mesh.set_table(backend(app, "p1", addr));
    let p = PopHandle::start(mesh.clone(), "p1", "127.0.0.1", 0).await.unwrap();
    let mut s = TcpStream::connect(p.http).await.unwrap();
    s.write_all(b"GET /chat HTTP/1.1\r\nHost: echo.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await.unwrap();
    let answer = read_n(&mut s, 77).await;
    assert!(answer.starts_with(b"HTTP/1.1 101 Switching Protocols") && answer.ends_with(b"\r\n\r\n"), "{}", String::from_utf8_lossy(&answer));
    let head = got.recv().await.unwrap();
    assert!(head.starts_with("GET /chat HTTP/1.1\r\n") && head.contains("X-Forwarded-For: 127.0.0.1"), "the instance sees the upgrade and who asked: {head}");
    // A masked text frame "hi", both ways, several times on the same connection.
    for _ in 0..3 {
        let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        s.write_all(&frame).await.unwrap();
        assert_eq!(read_n(&mut s, frame.len()).await, frame);
    }
    let open = |mesh: &Mesh| mesh.stats.snapshot().iter().find(|(a, _, _)| *a == app).map_or(0, |x| x.2.connections);
    assert_eq!(open(&mesh), 1, "counted while open");
    drop(s);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while open(&mesh) != 0 {
        assert!(tokio::time::Instant::now() < deadline, "still counted after the client left");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_tcp_app_gets_a_port_of_its_own_at_each_point_of_presence() {
    let (mesh, _wakes) = Mesh::new(Duration::from_secs(30));
    let app = Uid::random();
    let mut r = route(app, false);
    r.protocol = ServerlessProtocol::Tcp;
    let addr = echo("T").await;
    mesh.set_table(Table { apps: vec![r], backends: [(app, vec![Backend { instance: Uid::random(), pop: "p1".into(), addr: addr.to_string(), ready: true, inside: None }])].into() });
    let p1 = PopHandle::start(mesh.clone(), "p1", "127.0.0.1", 0).await.unwrap();
    let p2 = PopHandle::start(mesh.clone(), "p2", "127.0.0.1", 0).await.unwrap();
    let port = p1.ensure_tcp(app).await.unwrap();
    assert_eq!(p1.ensure_tcp(app).await.unwrap(), port, "the same port when asked again");
    assert_ne!(port, p1.http.port());
    // Any bytes, no HTTP: straight to the instance at p1, forwarded from p2.
    for pop in [&p1, &p2] {
        let port = pop.ensure_tcp(app).await.unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        assert_eq!(read_n(&mut s, 2).await, b"T\n");
        let bytes = b"\x00\x01binary\xff";
        s.write_all(bytes).await.unwrap();
        assert_eq!(read_n(&mut s, bytes.len()).await, bytes);
    }
    let t = mesh.stats.snapshot();
    let at = |pop: &str| t.iter().find(|(a, p, _)| *a == app && p == pop).map(|x| x.2.clone()).unwrap_or_default();
    assert_eq!((at("p1").connections_total, at("p2").forwarded_total), (1, 1));
    assert_eq!(mesh.label(app).as_deref(), Some("org/echo"), "named for metrics");
    // An app no longer TCP loses its port.
    p1.retain_tcp(&[]);
    assert_eq!(p1.tcp_port(app), None);
}
