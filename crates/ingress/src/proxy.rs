//! A point of presence's listeners and the pipeline each connection goes through.
//!
//! - **HTTP** (shared port): read the head ([`crate::sniff`]), route by host and path, check
//!   the session, count, pick a backend, connect, splice.
//! - **TCP** (a port per TCP app): count, pick a backend, connect, splice.
//! - **Peer** (from other points of presence): a one-line preamble names the app; only local
//!   instances serve it.
//!
//! Picking a backend, in order: a ready local instance (least connections), the point of
//! presence with a ready instance (least connections there), a local instance still starting
//! (retried every few milliseconds), a point of presence whose instance is starting; with none
//! anywhere the connection is held, the orchestrator is asked for an instance once, and the
//! pick is retried on every table change until [`Mesh::hold`] runs out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use op_types::Uid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::sniff::{sniff, with_header, Head, Sniff, MAX_HEAD};
use crate::{AppRoute, Backend, Blame, Load, Mesh, ProxyError};

/// How long a client may take to send its first request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a backend that refused or failed its check is left alone.
const DOWN_FOR_MS: u64 = 1000;
/// How long a connection to a ready backend may take before another is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a starting instance is tried.
const STARTING_RETRY: Duration = Duration::from_millis(3);
/// The preamble of a forwarded connection.
const FORWARD: &str = "OPFWD ";

/// A running point of presence; dropping it closes its listeners.
pub struct PopHandle {
    /// Its name.
    pub name: String,
    /// Where devices send HTTP.
    pub http: SocketAddr,
    /// Where other points of presence forward to.
    pub peer: SocketAddr,
    bind_host: String,
    mesh: Arc<Mesh>,
    tasks: Vec<JoinHandle<()>>,
    tcp: Mutex<HashMap<Uid, (u16, JoinHandle<()>)>>,
}

impl Drop for PopHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for (_, (_, t)) in self.tcp.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            t.abort();
        }
        self.mesh.remove_pop(&self.name);
    }
}

impl PopHandle {
    /// Starts point of presence `name`: its HTTP listener on `bind_host:http_port` (0: any
    /// free port) and its peer listener.
    pub async fn start(mesh: Arc<Mesh>, name: &str, bind_host: &str, http_port: u16) -> std::io::Result<Self> {
        let http = TcpListener::bind((bind_host, http_port)).await?;
        let peer = TcpListener::bind((bind_host, 0)).await?;
        let (http_addr, peer_addr) = (http.local_addr()?, peer.local_addr()?);
        mesh.set_pop(name, peer_addr);
        let pop: Arc<str> = Arc::from(name);
        let (m, p) = (mesh.clone(), pop.clone());
        let t1 = tokio::spawn(accept(http, move |s, from| tokio::spawn(serve_http(m.clone(), p.clone(), s, from))));
        let (m, p) = (mesh.clone(), pop.clone());
        let t2 = tokio::spawn(accept(peer, move |s, _| tokio::spawn(serve_peer(m.clone(), p.clone(), s))));
        Ok(Self { name: name.to_string(), http: http_addr, peer: peer_addr, bind_host: bind_host.to_string(), mesh, tasks: vec![t1, t2], tcp: Mutex::default() })
    }

    /// The port TCP app `app` listens on here, opening it when new.
    pub async fn ensure_tcp(&self, app: Uid) -> std::io::Result<u16> {
        self.ensure_tcp_on(app, 0).await
    }

    /// Like [`PopHandle::ensure_tcp`] on port `port` (0: any free one); an app open on
    /// another port is moved to this one.
    pub async fn ensure_tcp_on(&self, app: Uid, port: u16) -> std::io::Result<u16> {
        {
            let mut tcp = self.tcp.lock().unwrap_or_else(|e| e.into_inner());
            match tcp.get(&app) {
                Some((p, _)) if port == 0 || *p == port => return Ok(*p),
                Some(_) => {
                    if let Some((_, t)) = tcp.remove(&app) {
                        t.abort();
                    }
                }
                None => {}
            }
        }
        let l = TcpListener::bind((self.bind_host.as_str(), port)).await?;
        let port = l.local_addr()?.port();
        let (m, p) = (self.mesh.clone(), Arc::<str>::from(self.name.as_str()));
        let task = tokio::spawn(accept(l, move |s, from| tokio::spawn(serve_tcp(m.clone(), p.clone(), app, s, from))));
        let mut tcp = self.tcp.lock().unwrap_or_else(|e| e.into_inner());
        match tcp.get(&app) {
            // Opened concurrently: keep the first.
            Some((p, _)) => {
                task.abort();
                Ok(*p)
            }
            None => {
                tcp.insert(app, (port, task));
                Ok(port)
            }
        }
    }

    /// The TCP port of `app` here, if open.
    pub fn tcp_port(&self, app: Uid) -> Option<u16> {
        self.tcp.lock().unwrap_or_else(|e| e.into_inner()).get(&app).map(|(p, _)| *p)
    }

    /// Closes the TCP ports of apps not in `keep`.
    pub fn retain_tcp(&self, keep: &[Uid]) {
        self.tcp.lock().unwrap_or_else(|e| e.into_inner()).retain(|app, (_, t)| {
            let k = keep.contains(app);
            if !k {
                t.abort();
            }
            k
        });
    }
}

async fn accept<F>(l: TcpListener, mut on: F)
where
    F: FnMut(TcpStream, SocketAddr) -> JoinHandle<()>,
{
    loop {
        match l.accept().await {
            Ok((s, from)) => {
                let _ = s.set_nodelay(true);
                on(s, from);
            }
            Err(e) => {
                // Out of descriptors or similar: breathe instead of spinning.
                tracing::warn!(error = %e, "ingress accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads until the head of the first request is complete.
async fn read_head(client: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Head, ProxyError> {
    let read = async {
        loop {
            match sniff(buf) {
                Sniff::Complete(h) => return Ok(h),
                Sniff::Invalid(why) => return Err(ProxyError::BadRequest(why)),
                Sniff::Partial => {}
            }
            let mut chunk = [0u8; 4096];
            let n = client.read(&mut chunk).await.map_err(|e| ProxyError::Io(Blame::Client, e))?;
            if n == 0 {
                return Err(ProxyError::BadRequest("connection closed before a full request head"));
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_HEAD + 4096 {
                return Err(ProxyError::BadRequest("request head too large"));
            }
        }
    };
    tokio::time::timeout(HEAD_TIMEOUT, read).await.unwrap_or(Err(ProxyError::BadRequest("request head not received in time")))
}

/// The app `head` is for.
fn route(mesh: &Mesh, head: &Head) -> Result<Arc<AppRoute>, ProxyError> {
    let host = head.host.clone().unwrap_or_default();
    let c = mesh.compiled();
    let under = |p: &str| head.path == p || head.path.starts_with(p) && (p.ends_with('/') || head.path.as_bytes().get(p.len()) == Some(&b'/'));
    c.by_host
        .get(&host)
        .and_then(|v| v.iter().find(|r| r.path_prefix.as_deref().is_none_or(under)).cloned())
        .ok_or(ProxyError::NoRoute(host))
}

/// The session key and device key of a connection: from a verified session token, else the
/// client's address. An app requiring sessions refuses connections without a valid token.
fn session_of(mesh: &Mesh, r: &AppRoute, head: &Head, from: SocketAddr) -> Result<(String, String), ProxyError> {
    let anon = || {
        let ip = from.ip().to_string();
        (ip.clone(), ip)
    };
    let Some(token) = &head.token else {
        return if r.require_session { Err(ProxyError::Session("this app needs a UNI session token: register at /uni/v1/sessions and send it as Authorization: Bearer".into())) } else { Ok(anon()) };
    };
    let Some(v) = mesh.verifier() else {
        return if r.require_session { Err(ProxyError::Session("session tokens cannot be checked yet; retry".into())) } else { Ok(anon()) };
    };
    match v.verify(token) {
        Ok(c) if c.app == r.app => {
            let dev = if c.dev.is_empty() { c.sub.clone() } else { c.dev.clone() };
            Ok((c.sub, dev))
        }
        Ok(_) => Err(ProxyError::Session("the session token is for another app".into())),
        Err(e) if r.require_session => Err(ProxyError::Session(format!("bad session token: {e}"))),
        Err(_) => Ok(anon()),
    }
}

/// Counts a connection at a point of presence for as long as it lives.
struct Counted<'a> {
    mesh: &'a Mesh,
    app: Uid,
    pop: &'a str,
    session: String,
}

impl<'a> Counted<'a> {
    fn new(mesh: &'a Mesh, app: Uid, pop: &'a str, session: String, device: &str) -> Self {
        mesh.stats.opened(app, pop, &session, device);
        Self { mesh, app, pop, session }
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.mesh.stats.closed(self.app, self.pop, &self.session);
    }
}

/// A connection open on a backend: its load, released when dropped.
struct Busy<'a> {
    mesh: &'a Mesh,
    load: Arc<Load>,
}

impl<'a> Busy<'a> {
    fn new(mesh: &'a Mesh, load: Arc<Load>) -> Self {
        load.active.fetch_add(1, Ordering::Relaxed);
        load.last_busy_ms.store(mesh.now_ms(), Ordering::Relaxed);
        Self { mesh, load }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.load.active.fetch_sub(1, Ordering::Relaxed);
        self.load.last_busy_ms.store(self.mesh.now_ms(), Ordering::Relaxed);
    }
}

/// Where a connection goes.
enum Upstream<'a> {
    /// An instance here.
    Local(TcpStream, Busy<'a>),
    /// The peer listener of another point of presence, and the bytes of the preamble written
    /// to it.
    Forwarded(TcpStream, usize),
}

fn up(mesh: &Mesh, l: &Load) -> bool {
    l.down_until_ms.load(Ordering::Relaxed) <= mesh.now_ms()
}

/// The backend with the fewest open connections among `it`; with `spread`, the least
/// recently busy of those (so one connection after another goes round the backends, as a
/// load balancer's should; serverless keeps sending to the same instance, so others go idle).
fn least<'b>(it: impl Iterator<Item = &'b (Backend, Arc<Load>)>, spread: bool) -> Option<&'b (Backend, Arc<Load>)> {
    it.min_by_key(|(_, l)| (l.active.load(Ordering::Relaxed), if spread { l.last_busy_ms.load(Ordering::Relaxed) } else { 0 }))
}

/// The point of presence (not `here`) whose instances matching `pick` carry the least load.
fn other_pop(all: &[(Backend, Arc<Load>)], here: &str, pick: impl Fn(&Backend) -> bool) -> Option<String> {
    let mut by_pop: HashMap<&str, u64> = HashMap::new();
    for (b, l) in all.iter().filter(|(b, _)| b.pop != here && pick(b)) {
        *by_pop.entry(b.pop.as_str()).or_default() += l.active.load(Ordering::Relaxed);
    }
    by_pop.into_iter().min_by_key(|(p, n)| (*n, *p)).map(|(p, _)| p.to_string())
}

/// Finds somewhere for a connection of `app` arriving at `pop` (see the module's order).
/// `local_only` for connections forwarded here.
async fn connect<'a>(mesh: &'a Mesh, pop: &str, app: Uid, local_only: bool) -> Result<Upstream<'a>, ProxyError> {
    let deadline = tokio::time::Instant::now() + mesh.hold;
    let mut changes = mesh.subscribe();
    let mut asked = false;
    loop {
        let c = mesh.compiled();
        let all: &[(Backend, Arc<Load>)] = c.backends.get(&app).map_or(&[], Vec::as_slice);
        let local = |ready: bool| least(all.iter().filter(|(b, l)| b.pop == pop && b.ready == ready && up(mesh, l)), mesh.spread);
        if let Some((b, l)) = local(true) {
            // A backend that went away without a reset (its address gone from the network)
            // would hold the connection for seconds: give it a second, then try another.
            let connected = tokio::time::timeout(CONNECT_TIMEOUT, open(mesh, b))
                .await
                .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")));
            match connected {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(Upstream::Local(s, Busy::new(mesh, l.clone())));
                }
                Err(e) => {
                    tracing::debug!(instance = %b.instance, error = %e, "instance refused a connection; left alone for a second");
                    l.down_until_ms.store(mesh.now_ms() + DOWN_FOR_MS, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let remote = |ready: bool| if local_only { None } else { other_pop(all, pop, |b| b.ready == ready) };
        if let Some(to) = remote(true) {
            if let Some(f) = forward(mesh, &to, app).await {
                mesh.stats.forwarded(app, pop);
                return Ok(f);
            }
        }
        if let Some((b, l)) = local(false) {
            if let Ok(s) = open(mesh, b).await {
                let _ = s.set_nodelay(true);
                return Ok(Upstream::Local(s, Busy::new(mesh, l.clone())));
            }
        } else if let Some(to) = remote(false) {
            if let Some(f) = forward(mesh, &to, app).await {
                mesh.stats.forwarded(app, pop);
                return Ok(f);
            }
        } else if !asked && !local_only && all.is_empty() {
            mesh.ask(app, pop);
            mesh.stats.held(app, pop);
            asked = true;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProxyError::NoInstance(mesh.hold));
        }
        let starting = all.iter().any(|(b, _)| !b.ready);
        let wait = if starting { STARTING_RETRY } else { Duration::from_millis(250) };
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Opens a connection to instance `b`: inside its network namespace where it has a way in and
/// the ingress may enter ([`crate::netns`]), else at its published address.
async fn open(mesh: &Mesh, b: &Backend) -> std::io::Result<TcpStream> {
    if let (Some(inside), Some(entrance)) = (&b.inside, mesh.entrance()) {
        let connected = match entrance.socket(inside.netns.clone(), inside.addr.is_ipv6()).await {
            Ok(s) => s.connect(inside.addr).await,
            Err(e) => Err(e),
        };
        match connected {
            Ok(s) => {
                mesh.entered.fetch_add(1, Ordering::Relaxed);
                return Ok(s);
            }
            Err(e) => tracing::debug!(instance = %b.instance, error = %e, "no way in through the instance's namespace; trying its published address"),
        }
    }
    TcpStream::connect(&b.addr).await
}

/// Opens a forwarded connection to point of presence `to` for `app`.
async fn forward<'a>(mesh: &'a Mesh, to: &str, app: Uid) -> Option<Upstream<'a>> {
    let addr = mesh.pop_addr(to)?;
    let mut s = TcpStream::connect(addr).await.ok()?;
    let _ = s.set_nodelay(true);
    let preamble = format!("{FORWARD}{app}\r\n");
    s.write_all(preamble.as_bytes()).await.ok()?;
    Some(Upstream::Forwarded(s, preamble.len()))
}

/// Sends `first` upstream, then joins the two connections until both sides have closed: in
/// the kernel where it allows it ([`crate::splice`]), else by copying here. `read` bytes
/// were read from the client, `written` already written upstream.
async fn splice(mesh: &Mesh, mut client: TcpStream, mut up: TcpStream, read: usize, written: usize, first: &[u8]) -> Result<(), ProxyError> {
    up.write_all(first).await.map_err(|e| ProxyError::Io(Blame::Backend, e))?;
    if let Some(k) = mesh.splicer() {
        match k.splice(client, up, read as u64, (written + first.len()) as u64).await {
            Ok(done) => {
                let _ = done.await;
                return Ok(());
            }
            Err(r) => {
                tracing::debug!(error = %r.error, "connection not joined in the kernel");
                (client, up) = r.back.ok_or(ProxyError::Io(Blame::Platform, r.error))?;
            }
        }
    }
    match tokio::io::copy_bidirectional(&mut client, &mut up).await {
        Ok(_) => Ok(()),
        // A reset by either side ends the connection; not the ingress's business.
        Err(e) => Err(ProxyError::Io(Blame::Backend, e)),
    }
}

/// Answers an HTTP/1.1 client with the error (CAMARA `ErrorInfo` body) and closes.
async fn answer(client: &mut TcpStream, e: &ProxyError) {
    let (status, reason, code) = e.status();
    let msg = e.to_string().replace('\\', "\\\\").replace('"', "\\\"");
    let body = format!(r#"{{"status":{status},"code":"{code}","message":"{msg}"}}"#);
    let retry = if e.retryable() { "retry-after: 1\r\n" } else { "" };
    let head = format!("HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n", body.len());
    let _ = client.write_all(head.as_bytes()).await;
    let _ = client.write_all(body.as_bytes()).await;
    let _ = client.shutdown().await;
}

async fn serve_http(mesh: Arc<Mesh>, pop: Arc<str>, mut client: TcpStream, from: SocketAddr) {
    let mut buf = Vec::with_capacity(4096);
    let head = match read_head(&mut client, &mut buf).await {
        Ok(h) => h,
        Err(e) => {
            if !matches!(e, ProxyError::Io(..)) && !buf.is_empty() {
                answer(&mut client, &e).await;
            }
            return;
        }
    };
    let routed = route(&mesh, &head).and_then(|r| session_of(&mesh, &r, &head, from).map(|s| (r, s)));
    let (r, (session, device)) = match routed {
        Ok(x) => x,
        Err(e) => {
            // An HTTP/2 client would need an HTTP/2 answer: it gets a closed connection.
            if !head.h2 {
                answer(&mut client, &e).await;
            }
            return;
        }
    };
    let _counted = Counted::new(&mesh, r.app, &pop, session, &device);
    let buf_len = buf.len();
    let first = if head.h2 { buf } else { with_header(&buf, head.head_len, &format!("X-Forwarded-For: {}", from.ip())) };
    match connect(&mesh, &pop, r.app, false).await {
        Ok(Upstream::Local(up, _busy)) => {
            let _ = splice(&mesh, client, up, buf_len, 0, &first).await;
        }
        Ok(Upstream::Forwarded(up, written)) => {
            let _ = splice(&mesh, client, up, buf_len, written, &first).await;
        }
        Err(e) => {
            tracing::info!(app = %r.label, pop = %pop, error = %e, "connection not served");
            if !head.h2 {
                answer(&mut client, &e).await;
            }
        }
    }
}

async fn serve_tcp(mesh: Arc<Mesh>, pop: Arc<str>, app: Uid, client: TcpStream, from: SocketAddr) {
    let ip = from.ip().to_string();
    let _counted = Counted::new(&mesh, app, &pop, ip.clone(), &ip);
    match connect(&mesh, &pop, app, false).await {
        Ok(Upstream::Local(up, _busy)) => {
            let _ = splice(&mesh, client, up, 0, 0, &[]).await;
        }
        Ok(Upstream::Forwarded(up, written)) => {
            let _ = splice(&mesh, client, up, 0, written, &[]).await;
        }
        Err(e) => tracing::info!(app = %app, pop = %pop, error = %e, "TCP connection not served"),
    }
}

async fn serve_peer(mesh: Arc<Mesh>, pop: Arc<str>, mut client: TcpStream) {
    let mut buf = Vec::with_capacity(1024);
    let line_end = loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            break i;
        }
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(HEAD_TIMEOUT, client.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 && buf.len() < 256 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    };
    let app = std::str::from_utf8(&buf[..line_end]).ok().and_then(|l| l.strip_prefix(FORWARD)).and_then(|u| u.parse::<Uid>().ok());
    let Some(app) = app else { return };
    let rest = buf[line_end + 2..].to_vec();
    if let Ok(Upstream::Local(up, _busy)) = connect(&mesh, &pop, app, true).await {
        let _ = splice(&mesh, client, up, buf.len(), 0, &rest).await;
    }
}

/// Checks every backend every `every`: one that refuses a connection is left alone for a
/// second (and checked again), so a dead instance stops taking connections before a client
/// meets it.
pub async fn health(mesh: Arc<Mesh>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let c = mesh.compiled();
        for (b, l) in c.backends.values().flatten().filter(|(b, _)| b.ready) {
            let ok = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(&b.addr)).await.is_ok_and(|r| r.is_ok());
            if !ok {
                l.down_until_ms.store(mesh.now_ms() + DOWN_FOR_MS, Ordering::Relaxed);
            }
        }
    }
}
