//! An instance with a way in from its host is reached inside its own network namespace (and
//! the connection is still joined in the kernel); without one, at its published address.
//!
//! The instance here is a server this test binary runs in a namespace it creates (`ip netns`),
//! listening only on an address that exists nowhere else: an answer proves the way in.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use op_ingress::{AppRoute, Backend, Inside, Mesh, PopHandle, Table};
use op_types::serverless::ServerlessProtocol;
use op_types::Uid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The address the server in the namespace listens on.
const INSIDE: &str = "10.250.0.1:8080";

/// Not a test of its own: the server [`Namespace::start`] runs inside the namespace. It
/// writes the address the connection came from, then echoes every byte until the end.
#[test]
fn serve_in_namespace() {
    let Ok(addr) = std::env::var("OP_TEST_SERVE") else { return };
    let l = std::net::TcpListener::bind(&addr).unwrap();
    // After libtest's "test serve_in_namespace ... ", on the same line.
    println!("ready");
    for s in l.incoming() {
        let mut s = s.unwrap();
        std::thread::spawn(move || {
            let peer = s.peer_addr().unwrap();
            s.write_all(format!("peer={peer}\n").as_bytes()).unwrap();
            let mut r = s.try_clone().unwrap();
            let _ = std::io::copy(&mut r, &mut s);
            let _ = s.shutdown(std::net::Shutdown::Write);
        });
    }
}

/// A network namespace with [`INSIDE`] on it and the server listening there; removed on drop.
struct Namespace {
    name: String,
    server: Child,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("iproute2 (scripts/setup-runtime.sh installs it)");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Namespace {
    fn start(tag: &str) -> Self {
        let name = format!("op-ingress-{}-{tag}", std::process::id());
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ip(&["-n", &name, "addr", "add", "10.250.0.1/32", "dev", "lo"]);
        let exe = std::env::current_exe().unwrap();
        let mut server = Command::new("ip")
            .args(["netns", "exec", &name])
            .arg(exe)
            .args(["--exact", "serve_in_namespace", "--nocapture", "--test-threads=1"])
            .env("OP_TEST_SERVE", INSIDE)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
        assert!(lines.any(|l| l.is_ok_and(|l| l.ends_with("ready"))), "the server in the namespace started");
        Self { name, server }
    }

    fn file(&self) -> std::path::PathBuf {
        format!("/run/netns/{}", self.name).into()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A point of presence for one app served by an instance published at `addr`, with `inside`.
async fn pop_for(addr: SocketAddr, inside: Option<Inside>) -> (Arc<Mesh>, PopHandle) {
    let (mesh, _wakes) = Mesh::new(Duration::from_secs(5));
    let app = Uid::random();
    let route = AppRoute { app, label: "org/ns".into(), host: "ns.test".into(), path_prefix: None, protocol: ServerlessProtocol::Http, require_session: false, concurrency: 10 };
    let b = Backend { instance: Uid::random(), pop: "p1".into(), addr: addr.to_string(), ready: true, inside };
    mesh.set_table(Table { apps: vec![route], backends: [(app, vec![b])].into() });
    let p = PopHandle::start(mesh.clone(), "p1", "127.0.0.1", 0).await.unwrap();
    (mesh, p)
}

/// A loopback address nothing listens on.
fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Sends a request with a `len`-byte body, ends the sending side and reads to the end.
async fn exchange(pop: SocketAddr, len: usize) -> (Vec<u8>, Vec<u8>) {
    let body: Vec<u8> = (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0]).collect();
    let head = format!("POST /up HTTP/1.1\r\nHost: ns.test\r\ncontent-length: {len}\r\n\r\n");
    let (mut r, mut w) = TcpStream::connect(pop).await.unwrap().into_split();
    let sent = body.clone();
    let writer = tokio::spawn(async move {
        w.write_all(head.as_bytes()).await.unwrap();
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut back)).await.expect("answer ended").unwrap();
    writer.await.unwrap();
    (body, back)
}

#[tokio::test]
async fn an_instance_with_a_way_in_is_reached_inside_its_namespace() {
    let ns = Namespace::start("in");
    let (mesh, p) = pop_for(closed_port(), Some(Inside { netns: ns.file(), addr: INSIDE.parse().unwrap() })).await;
    let (body, back) = exchange(p.http, 4 << 20).await;
    let text = String::from_utf8_lossy(&back[..back.len().min(200)]).to_string();
    assert!(text.starts_with("peer=10.250.0.1:"), "the instance saw a connection from its own address, not loopback: {text}");
    assert!(text.contains("\r\nX-Forwarded-For: 127.0.0.1\r\n"), "the head was written with the client's address: {text}");
    assert!(back.ends_with(&body), "every byte of the body came back, in order ({} bytes back)", back.len());
    assert_eq!(mesh.entered(), 1, "opened inside the namespace");
    if let Some((joined, _)) = mesh.kernel_spliced() {
        assert_eq!(joined, 1, "a connection into a namespace is joined in the kernel like any other");
    }
    drop(ns);
}

#[tokio::test]
async fn without_a_way_in_the_published_address_is_used() {
    let published = common::server(|mut s| async move {
        let _ = s.write_all(b"published\n").await;
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
    .await;
    let gone = Inside { netns: "/run/netns/op-no-such-namespace".into(), addr: INSIDE.parse().unwrap() };
    let (mesh, p) = pop_for(published, Some(gone)).await;
    let (body, back) = exchange(p.http, 1000).await;
    assert!(back.starts_with(b"published\n"), "{}", String::from_utf8_lossy(&back));
    assert!(back.ends_with(&body));
    assert_eq!(mesh.entered(), 0);
}
