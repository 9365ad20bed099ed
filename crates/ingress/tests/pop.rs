//! A point of presence on real sockets: a connection with no instance anywhere is held, the
//! orchestrator is asked once, and it is answered when an instance appears; with none in time
//! it gets a 503 (on tokio's paused clock: no waiting); a session token is checked with the
//! public key alone; a point of presence without an instance forwards to the one that has one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}", name.len()).as_bytes()).await;
            });
        }
    });
    addr
}

async fn get(pop: SocketAddr, extra: &str) -> String {
    let mut s = TcpStream::connect(pop).await.unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: echo.test\r\n{extra}\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn backend(app: Uid, pop: &str, addr: SocketAddr) -> Table {
    Table { apps: vec![route(app, false)], backends: [(app, vec![Backend { instance: Uid::random(), pop: pop.into(), addr: addr.to_string(), ready: true }])].into() }
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
