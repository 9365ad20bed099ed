//! The serverless ingress (OPG.02 serverless X.2: ingress / load balancer / gateway at each
//! point of presence).
//!
//! A [`Mesh`] holds what every point of presence of this platform needs to route: the apps
//! (host, path prefix or port), their instances by point of presence, and the addresses of the
//! points of presence themselves. The platform replaces that [`Table`] whenever its index
//! changes; the data path reads it under a read lock and touches no store and no platform API.
//! Session tokens are verified with the platform's public key alone.
//!
//! A connection goes through a pipeline of small steps ([`proxy`]): read the head ([`sniff`]),
//! route, check the session, count ([`stats`]), pick a backend (a local instance by least
//! connections, else the point of presence that has one, else hold and ask for one), connect,
//! splice. Each step's error says who is to blame and whether retrying may help
//! ([`ProxyError`]).

pub mod proxy;
mod kernel;
mod netns;
pub mod sniff;
pub mod splice;
pub mod stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use op_types::serverless::ServerlessProtocol;
use op_types::Uid;
use op_uni::token::SessionVerifier;
use tokio::sync::{mpsc, watch};

pub use kernel::{background_priority, short_slice};
pub use proxy::PopHandle;
pub use stats::{AppPopStats, Event, EventKind};

/// How long the load of an instance not in the table is kept after it was last busy.
const KEEP_LOAD_MS: u64 = 60_000;

/// Who caused a connection to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The client (bad request, no or bad session, unknown host).
    Client,
    /// The app's instance (refused, reset, not answering).
    Backend,
    /// The platform (no instance could be started in time).
    Platform,
}

/// Why the ingress could not serve a connection.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request is not one the ingress can route.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// No app answers on this host, path or port.
    #[error("no serverless app answers on host {0:?}")]
    NoRoute(String),
    /// The app needs a UNI session token and got none or a bad one.
    #[error("session: {0}")]
    Session(String),
    /// No instance was ready in time.
    #[error("no instance of the app was ready within {0:?}")]
    NoInstance(Duration),
    /// Reading or writing a socket failed.
    #[error("{1}")]
    Io(Blame, std::io::Error),
}

impl ProxyError {
    /// Who is to blame.
    pub fn blame(&self) -> Blame {
        match self {
            ProxyError::BadRequest(_) | ProxyError::NoRoute(_) | ProxyError::Session(_) => Blame::Client,
            ProxyError::NoInstance(_) => Blame::Platform,
            ProxyError::Io(b, _) => *b,
        }
    }

    /// Whether the client may try again as it is (the platform or an instance may recover).
    pub fn retryable(&self) -> bool {
        matches!(self.blame(), Blame::Platform | Blame::Backend)
    }

    /// The HTTP status and CAMARA error code the client is answered with.
    pub fn status(&self) -> (u16, &'static str, &'static str) {
        match self {
            ProxyError::BadRequest(_) => (400, "Bad Request", "INVALID_ARGUMENT"),
            ProxyError::NoRoute(_) => (404, "Not Found", "NOT_FOUND"),
            ProxyError::Session(_) => (401, "Unauthorized", "UNAUTHENTICATED"),
            ProxyError::NoInstance(_) => (503, "Service Unavailable", "UNAVAILABLE"),
            ProxyError::Io(..) => (502, "Bad Gateway", "UNAVAILABLE"),
        }
    }
}

/// An app as the ingress routes it.
#[derive(Clone, Debug, PartialEq)]
pub struct AppRoute {
    /// The app.
    pub app: Uid,
    /// `org/name`, for logs and answers.
    pub label: String,
    /// The host it answers on (HTTP), lower case.
    pub host: String,
    /// Only requests under this path (HTTP).
    pub path_prefix: Option<String>,
    /// HTTP or plain TCP.
    pub protocol: ServerlessProtocol,
    /// A valid UNI session token for this app is required.
    pub require_session: bool,
    /// Connections one instance takes before another is wanted.
    pub concurrency: u32,
}

/// An instance the ingress may send connections to.
#[derive(Clone, Debug, PartialEq)]
pub struct Backend {
    /// The instance.
    pub instance: Uid,
    /// The point of presence it runs at.
    pub pop: String,
    /// Where it listens (`host:port`).
    pub addr: String,
    /// Ready (answered the platform's check); a backend not yet ready is tried with patience.
    pub ready: bool,
    /// Its way in from the same host, when it has one (tried before `addr`).
    pub inside: Option<Inside>,
}

/// Where an ingress on an instance's host reaches it inside its network namespace, over the
/// namespace's loopback rather than the published port's bridge and NAT (see [`netns`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Inside {
    /// The namespace's file (the runtime's `SandboxKey`).
    pub netns: std::path::PathBuf,
    /// The instance's address in it.
    pub addr: SocketAddr,
}

/// Everything a point of presence routes by; replaced as a whole.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Apps.
    pub apps: Vec<AppRoute>,
    /// Instances per app.
    pub backends: HashMap<Uid, Vec<Backend>>,
}

/// A backend's load, kept across table replacements (keyed by instance).
#[derive(Debug, Default)]
pub struct Load {
    /// Open connections.
    pub active: AtomicU64,
    /// When it last had a connection open (ms since the mesh started).
    pub last_busy_ms: AtomicU64,
    /// Not tried again before this (ms since the mesh started), after a failure.
    pub down_until_ms: AtomicU64,
}

/// A request for an instance, from a point of presence that has connections waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wake {
    /// The app.
    pub app: Uid,
    /// Where connections wait.
    pub pop: String,
}

/// The routing state shared by the points of presence of one platform.
pub struct Mesh {
    table: RwLock<Arc<Compiled>>,
    loads: Mutex<HashMap<Uid, Arc<Load>>>,
    pops: RwLock<HashMap<String, SocketAddr>>,
    changed: watch::Sender<u64>,
    wake: mpsc::UnboundedSender<Wake>,
    verifier: RwLock<Option<Arc<SessionVerifier>>>,
    /// Counters per app and point of presence.
    pub stats: stats::Stats,
    started: Instant,
    /// How long a connection is held for an instance to start.
    pub hold: Duration,
    /// Spread connections round equally loaded backends (a load balancer) rather than keep
    /// to one (serverless, so that the others can go idle).
    pub spread: bool,
    /// Joins routed connections in the kernel, where it allows it.
    splicer: RwLock<Option<Arc<splice::Splicer>>>,
    /// The way into instances' namespaces, opened on first use (none where it cannot be).
    entrance: OnceLock<Option<netns::Entrance>>,
    /// Connections opened inside an instance's namespace.
    entered: AtomicU64,
}

/// A splicer, or none (with the reason logged) where the kernel does not allow it.
fn open_splicer() -> Option<Arc<splice::Splicer>> {
    match splice::Splicer::open() {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            tracing::info!(error = %e, "routed connections are copied by the ingress: the kernel does not allow joining them (BPF sockhash)");
            None
        }
    }
}

/// The table in the shape the data path reads.
#[derive(Default)]
pub(crate) struct Compiled {
    pub(crate) by_host: HashMap<String, Vec<Arc<AppRoute>>>,
    pub(crate) backends: HashMap<Uid, Vec<(Backend, Arc<Load>)>>,
    /// `org/name` of every app, HTTP or TCP.
    labels: HashMap<Uid, String>,
}

impl Mesh {
    /// A mesh whose requests for instances go to the returned receiver.
    pub fn new(hold: Duration) -> (Arc<Self>, mpsc::UnboundedReceiver<Wake>) {
        Self::build(hold, false)
    }

    fn build(hold: Duration, spread: bool) -> (Arc<Self>, mpsc::UnboundedReceiver<Wake>) {
        let (wake, rx) = mpsc::unbounded_channel();
        let (changed, _) = watch::channel(0);
        let mesh = Self {
            table: RwLock::default(),
            loads: Mutex::default(),
            pops: RwLock::default(),
            changed,
            wake,
            verifier: RwLock::new(None),
            stats: stats::Stats::default(),
            started: Instant::now(),
            hold,
            spread,
            splicer: RwLock::new(open_splicer()),
            entrance: OnceLock::new(),
            entered: AtomicU64::new(0),
        };
        (Arc::new(mesh), rx)
    }

    /// A mesh for load balancers: connections spread round equally loaded backends.
    pub fn spreading(hold: Duration) -> (Arc<Self>, mpsc::UnboundedReceiver<Wake>) {
        Self::build(hold, true)
    }

    /// Whether routed connections are joined in the kernel (the default where it allows it)
    /// or copied by the ingress; connections already joined stay so.
    pub fn set_kernel_splice(&self, on: bool) {
        let mut s = self.splicer.write().unwrap_or_else(|e| e.into_inner());
        match (on, s.is_some()) {
            (true, false) => *s = open_splicer(),
            (false, true) => *s = None,
            _ => {}
        }
    }

    /// Connections joined in the kernel so far and those joined now, if it does that now.
    pub fn kernel_spliced(&self) -> Option<(u64, usize)> {
        self.splicer().map(|s| (s.spliced(), s.open_now()))
    }

    /// How many connections were opened inside an instance's network namespace.
    pub fn entered(&self) -> u64 {
        self.entered.load(Ordering::Relaxed)
    }

    pub(crate) fn entrance(&self) -> Option<&netns::Entrance> {
        self.entrance
            .get_or_init(|| {
                netns::Entrance::open()
                    .map_err(|e| tracing::info!(error = %e, "instances are reached at their published ports: no way into their network namespaces"))
                    .ok()
            })
            .as_ref()
    }

    pub(crate) fn splicer(&self) -> Option<Arc<splice::Splicer>> {
        self.splicer.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the key session tokens are verified with.
    pub fn set_verifier(&self, v: SessionVerifier) {
        *self.verifier.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(v));
    }

    pub(crate) fn verifier(&self) -> Option<Arc<SessionVerifier>> {
        self.verifier.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Milliseconds since the mesh started (the clock of [`Load`]).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The `org/name` of a routed app (for metrics and logs).
    pub fn label(&self, app: Uid) -> Option<String> {
        let t = self.table.read().unwrap_or_else(|e| e.into_inner()).clone();
        t.labels.get(&app).cloned()
    }

    /// Replaces the routing table; waiting connections look again.
    pub fn set_table(&self, t: Table) {
        let mut c = Compiled::default();
        for a in t.apps {
            c.labels.insert(a.app, a.label.clone());
            let a = Arc::new(a);
            if a.protocol == ServerlessProtocol::Http {
                let v = c.by_host.entry(a.host.clone()).or_default();
                v.push(a);
                // Longest prefix first.
                v.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.as_ref().map_or(0, String::len)));
            }
        }
        {
            let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
            let live: std::collections::HashSet<Uid> = t.backends.values().flatten().map(|b| b.instance).collect();
            // An instance just started is touched before it is in the table: its load (and idle
            // clock) is kept until it appears.
            let now = self.now_ms();
            loads.retain(|k, l| live.contains(k) || l.active.load(Ordering::Relaxed) > 0 || now.saturating_sub(l.last_busy_ms.load(Ordering::Relaxed)) < KEEP_LOAD_MS);
            for (app, bs) in t.backends {
                let v = bs.into_iter().map(|b| {
                    let l = loads.entry(b.instance).or_default().clone();
                    (b, l)
                });
                c.backends.insert(app, v.collect());
            }
        }
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(c);
        self.changed.send_modify(|n| *n += 1);
    }

    pub(crate) fn compiled(&self) -> Arc<Compiled> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(crate) fn ask(&self, app: Uid, pop: &str) {
        let _ = self.wake.send(Wake { app, pop: pop.to_string() });
    }

    /// Records the peer address of point of presence `pop` (where others forward to it).
    pub(crate) fn set_pop(&self, pop: &str, peer: SocketAddr) {
        self.pops.write().unwrap_or_else(|e| e.into_inner()).insert(pop.to_string(), peer);
    }

    /// Forgets point of presence `pop`.
    pub(crate) fn remove_pop(&self, pop: &str) {
        self.pops.write().unwrap_or_else(|e| e.into_inner()).remove(pop);
    }

    pub(crate) fn pop_addr(&self, pop: &str) -> Option<SocketAddr> {
        self.pops.read().unwrap_or_else(|e| e.into_inner()).get(pop).copied()
    }

    /// Load of instance `uid`: open connections and when it was last busy.
    pub fn load(&self, uid: Uid) -> Option<(u64, u64)> {
        let loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        loads.get(&uid).map(|l| (l.active.load(Ordering::Relaxed), l.last_busy_ms.load(Ordering::Relaxed)))
    }

    /// Instance `uid`'s open connections and whether its last health check passed.
    pub fn backend_state(&self, uid: Uid) -> Option<(u64, bool)> {
        let loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        loads.get(&uid).map(|l| (l.active.load(Ordering::Relaxed), l.down_until_ms.load(Ordering::Relaxed) <= self.now_ms()))
    }

    /// Marks instance `uid` as serving now (a new instance counts as busy when it starts, so
    /// that it is not idle before its first connection could arrive).
    pub fn touch(&self, uid: Uid) {
        let l = self.loads.lock().unwrap_or_else(|e| e.into_inner()).entry(uid).or_default().clone();
        l.last_busy_ms.store(self.now_ms(), Ordering::Relaxed);
    }
}
