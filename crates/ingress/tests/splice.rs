//! A routed connection joined in the kernel behaves like one copied by the ingress: every
//! byte arrives, in order, both ways; an end on either side is passed on only after the
//! bytes before it; a reset frees the instance. Each case runs both ways (kernel splice on,
//! then off) and checks which way it ran.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{read_n, server};
use op_ingress::{AppRoute, Backend, Mesh, PopHandle, Table};
use op_types::serverless::ServerlessProtocol;
use op_types::Uid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A point of presence for one app served by the instance at `addr`.
async fn pop_for(kernel: bool, protocol: ServerlessProtocol, addr: SocketAddr) -> (Arc<Mesh>, PopHandle, Uid, Uid) {
    let (mesh, _wakes) = Mesh::new(Duration::from_secs(5));
    mesh.set_kernel_splice(kernel);
    assert_eq!(mesh.kernel_spliced().is_some(), kernel, "this machine's kernel joins sockets (BPF sockhash), as the platform's machines do");
    let (app, instance) = (Uid::random(), Uid::random());
    let route = AppRoute { app, label: "org/big".into(), host: "big.test".into(), path_prefix: None, protocol, require_session: false, concurrency: 10 };
    mesh.set_table(Table { apps: vec![route], backends: [(app, vec![Backend { instance, pop: "p1".into(), addr: addr.to_string(), ready: true, inside: None }])].into() });
    let p = PopHandle::start(mesh.clone(), "p1", "127.0.0.1", 0).await.unwrap();
    (mesh, p, app, instance)
}

/// Bytes that show any loss, repetition or reordering.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0]).collect()
}

/// Waits until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Checks that the connections ran the expected way and that none is left open.
async fn ran(mesh: &Mesh, kernel: bool, connections: u64) {
    match mesh.kernel_spliced() {
        Some((total, _)) => assert_eq!(total, connections, "joined in the kernel"),
        None => assert!(!kernel),
    }
    until("a joined connection was left open", || mesh.kernel_spliced().is_none_or(|(_, open)| open == 0)).await;
}

#[tokio::test]
async fn a_large_upload_and_its_echo_arrive_whole_and_in_order() {
    // Echoes every byte, and closes when the client has finished.
    let addr = server(|mut s| async move {
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
    .await;
    for kernel in [true, false] {
        let (mesh, p, _, _) = pop_for(kernel, ServerlessProtocol::Http, addr).await;
        let body = pattern(8 << 20);
        let head = b"POST /up HTTP/1.1\r\nHost: big.test\r\ncontent-length: 8388608\r\n\r\n";
        let s = TcpStream::connect(p.http).await.unwrap();
        let (mut r, mut w) = s.into_split();
        let sent = body.clone();
        let writer = tokio::spawn(async move {
            w.write_all(head).await.unwrap();
            for chunk in sent.chunks(100_000) {
                w.write_all(chunk).await.unwrap();
            }
            // The client's end, passed on once its bytes are through.
            w.shutdown().await.unwrap();
        });
        let mut back = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut back)).await.expect("echo ended").unwrap();
        writer.await.unwrap();
        let text = String::from_utf8_lossy(&back[..back.len() - body.len()]).to_string();
        assert!(text.starts_with("POST /up HTTP/1.1\r\n") && text.contains("X-Forwarded-For: 127.0.0.1\r\n"), "{text}");
        assert_eq!(back.len() - text.len(), body.len(), "kernel={kernel}: every byte back, no more");
        assert!(back[text.len()..] == body[..], "kernel={kernel}: in order");
        ran(&mesh, kernel, 1).await;
    }
}

#[tokio::test]
async fn an_instance_that_speaks_first_and_closes_is_read_to_the_last_byte() {
    // A greeting at once, then 4 MiB and a close: the close reaches the client only after
    // the last byte, even when the client is slow to read.
    let payload = Arc::new(pattern(4 << 20));
    let sent = payload.clone();
    let addr = server(move |mut s| {
        let sent = sent.clone();
        async move {
            s.write_all(b"HELLO\n").await.unwrap();
            s.write_all(&sent).await.unwrap();
        }
    })
    .await;
    for kernel in [true, false] {
        let (mesh, p, app, _) = pop_for(kernel, ServerlessProtocol::Tcp, addr).await;
        let port = p.ensure_tcp(app).await.unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        assert_eq!(read_n(&mut s, 6).await, b"HELLO\n");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut got)).await.expect("closed after the payload").unwrap();
        assert_eq!(got.len(), payload.len(), "kernel={kernel}: nothing cut off by the close");
        assert!(got == *payload, "kernel={kernel}: in order");
        drop(s);
        ran(&mesh, kernel, 1).await;
    }
}

#[tokio::test]
async fn many_round_trips_on_one_connection_and_a_reset_frees_the_instance() {
    let (closed_tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    let addr = server(move |mut s| {
        let closed = closed_tx.clone();
        async move {
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = closed.send(());
        }
    })
    .await;
    for kernel in [true, false] {
        let (mesh, p, app, instance) = pop_for(kernel, ServerlessProtocol::Http, addr).await;
        let mut s = TcpStream::connect(p.http).await.unwrap();
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: big.test\r\n\r\n").await.unwrap();
        let head_back = read_n(&mut s, 64).await;
        assert!(head_back.starts_with(b"GET /ws HTTP/1.1\r\n"), "{}", String::from_utf8_lossy(&head_back));
        let rest = b"GET /ws HTTP/1.1\r\nHost: big.test\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n".len() - 64;
        read_n(&mut s, rest).await;
        for i in 0..300u32 {
            let msg = format!("message {i} {}", "x".repeat(i as usize));
            s.write_all(msg.as_bytes()).await.unwrap();
            assert_eq!(read_n(&mut s, msg.len()).await, msg.as_bytes(), "kernel={kernel}: round trip {i}");
        }
        assert_eq!(mesh.load(instance).map(|l| l.0), Some(1), "busy while open");
        // A reset (linger 0): the instance's connection is closed and the instance is free.
        s.set_zero_linger().unwrap();
        drop(s);
        tokio::time::timeout(Duration::from_secs(10), closed.recv()).await.expect("the instance's connection closed").unwrap();
        until("the instance is still counted busy", || mesh.load(instance).map(|l| l.0) == Some(0)).await;
        let open = mesh.stats.snapshot().iter().find(|(a, _, _)| *a == app).map_or(0, |x| x.2.connections);
        assert_eq!(open, 0, "the connection is no longer counted");
        ran(&mesh, kernel, 1).await;
    }
}
