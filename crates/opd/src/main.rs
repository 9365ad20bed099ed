//! `opd`: the Operator Platform daemon. Serves the APIs and runs the controllers over one store.
//!
//! `opd serve` on an empty data directory bootstraps the embedded default: a signing key, an
//! admin credential (mode 0600), one region, one zone, three flavors and one cloudlet backed by
//! this machine's container runtime.

mod bootstrap;
mod registry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use op_api::metrics::HttpMetrics;
use op_api::AppState;
use op_controller::{CloudletReconciler, Drivers, InstanceReconciler, Metrics, Runner};
use op_store::{EtcdEngine, EtcdSettings, RedbEngine, Repo};
use prometheus_client::registry::Registry;
use tracing::{debug, info, warn};

/// mimalloc instead of glibc's allocator: the API and the informers allocate and free many
/// small objects on every thread, and glibc's arenas spent a third of opd's CPU in malloc,
/// free and their locks under load (`bench/scale.sh`, profiled with `perf`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "opd", version, about = "Operator Platform daemon")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the APIs and run the controllers.
    Serve(Box<ServeArgs>),
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Data directory (store, keys, admin credential).
    #[arg(long, env = "OPD_DATA_DIR", default_value = ".op-data")]
    data_dir: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, env = "OPD_LISTEN", default_value = "127.0.0.1:7080")]
    listen: SocketAddr,
    /// Docker Engine API endpoint of the default cloudlet.
    #[arg(long, env = "DOCKER_HOST", default_value = "unix:///run/podman/podman.sock")]
    docker_endpoint: String,
    /// This operator's name, shown to developers as `edgeCloudProvider`.
    #[arg(long, env = "OPD_PROVIDER", default_value = "local-operator")]
    provider: String,
    /// Do not create the default region, zone, flavors and cloudlet on first start.
    #[arg(long)]
    no_default_cloudlet: bool,
    /// Log format.
    #[arg(long, env = "OPD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Serve the APIs only: controllers run in another replica (or not at all, for benchmarks
    /// that measure the read path alone).
    #[arg(long)]
    no_controllers: bool,
    /// The image of the connectivity probe run on every cloudlet (built by
    /// `scripts/build-images.sh`).
    #[arg(long, env = "OPD_PROBE_IMAGE", default_value = "localhost/op-probe:latest")]
    probe_image: String,
    /// The image of the egress gateway run in every cluster (built by
    /// `scripts/build-images.sh`).
    #[arg(long, env = "OPD_EGRESS_IMAGE", default_value = "localhost/op-egress:latest")]
    egress_image: String,
    /// How often capacity-based apps are scaled to their users, ms.
    #[arg(long, default_value_t = 2000)]
    scale_every_ms: u64,
    /// How long an instance of a capacity-based app must serve nobody before it is removed, s.
    #[arg(long, default_value_t = 60)]
    scale_in_after_secs: u64,
    /// How often every instance's resource use (CPU, memory, disk, network) is read, ms.
    #[arg(long, default_value_t = 10_000)]
    resources_every_ms: u64,
    /// Run the organizations' image registry (Debian's `docker-registry`) on this address,
    /// e.g. `127.0.0.1:5000`; image references then start with it. None when absent.
    #[arg(long, env = "OPD_REGISTRY_LISTEN")]
    registry_listen: Option<String>,
    /// The registry's program.
    #[arg(long, env = "OPD_REGISTRY_BIN", default_value = "docker-registry")]
    registry_bin: PathBuf,
    /// How long audit records are kept, days.
    #[arg(long, default_value_t = 90)]
    audit_retention_days: u64,
    /// How often alarms are checked against resource readings and undelivered alarms retried,
    /// ms (changes of instances and cloudlets raise and resolve alarms at once).
    #[arg(long, default_value_t = 1_000)]
    alarms_every_ms: u64,
    /// How often each cloudlet's usage is sampled for placement's forecasts, ms.
    #[arg(long, default_value_t = 60_000)]
    usage_sample_ms: u64,
    /// How often the network's view (paths from cells to zones, cell loads) is refreshed, ms.
    #[arg(long, default_value_t = 5_000)]
    network_refresh_ms: u64,
    /// The HTTP port of the first serverless point of presence (one per Docker cloudlet, on
    /// 127.0.0.1; the next ones take the ports after it). 0: any free port (see
    /// `GET /op/v1/serverless/pops`).
    #[arg(long, env = "OP_SERVERLESS_PORT", default_value_t = 0)]
    serverless_port: u16,
    /// How long a serverless point of presence holds a connection while an instance starts
    /// from zero, ms.
    #[arg(long, default_value_t = 30_000)]
    serverless_hold_ms: u64,
    /// Where app instances reach the platform's APIs (given to them as `OP_PLATFORM_URL`):
    /// an address, or `none`; default the container runtime's bridge gateway on the API port.
    #[arg(long)]
    apps_listen: Option<String>,
    /// Concurrent instance reconciles.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Mobile country code of this operator (UNI well-known name).
    #[arg(long, env = "OPD_MCC", default_value = "001")]
    mcc: String,
    /// Mobile network code of this operator.
    #[arg(long, env = "OPD_MNC", default_value = "01")]
    mnc: String,
    /// Partner networks (PLMN ids, comma-separated) apps may name in their customer reach.
    #[arg(long, env = "OPD_PARTNER_PLMNS", value_delimiter = ',')]
    partner_plmns: Vec<String>,
    /// UNI session lifetime and revalidation timer, seconds.
    #[arg(long, default_value_t = 300)]
    session_ttl: u64,
    /// The mobile network's exposure gateway (CAMARA / NEF `apiRoot`), e.g. the emulator.
    #[arg(long, env = "OPD_NETWORK_API")]
    network_api: Option<String>,
    /// OAuth2 token endpoint of the gateway (default `{network-api}/oauth2/token`).
    #[arg(long, env = "OPD_NETWORK_TOKEN_URL")]
    network_token_url: Option<String>,
    /// OAuth2 client id at the gateway.
    #[arg(long, env = "OPD_NETWORK_CLIENT_ID", default_value = "op-platform")]
    network_client_id: String,
    /// OAuth2 client secret at the gateway.
    #[arg(long, env = "OPD_NETWORK_CLIENT_SECRET", default_value = "", hide_default_value = true)]
    network_client_secret: String,
    /// URL at which this opd is reached: by the network (its notifications) and by users and
    /// relying parties (the OpenID Connect issuer named in every token); default
    /// `http://<listen>`.
    #[arg(long, env = "OPD_PUBLIC_URL")]
    public_url: Option<String>,
    /// Turn off self-serve registration (`POST /op/v1/auth/register`): only the operator and
    /// organizations' Managers create users.
    #[arg(long)]
    no_self_registration: bool,
    /// UNI requests per second allowed to one device (burst twice that).
    #[arg(long, default_value_t = 5.0)]
    device_rps: f64,
    /// UNI requests per second allowed in all (burst twice that).
    #[arg(long, default_value_t = 50_000.0)]
    uni_rps: f64,
    /// A second address of the API for devices (the UNI), served by a thread of its own that
    /// asks the kernel for short turns: a device's discovery then never waits behind the
    /// NBI's and the controllers' work on the main runtime (on two cores creating 100,000
    /// instances, discovery p99 went from about 12 ms to 4). Every route is served there, all
    /// authenticated as on the main address.
    #[arg(long, env = "OPD_UNI_LISTEN")]
    uni_listen: Option<SocketAddr>,
    /// Address of the federation interface (GSMA EWBI, HTTPS only); none when absent.
    #[arg(long, env = "OPD_EWBI_LISTEN")]
    ewbi_listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM) of the EWBI; default one made on first start, signed by a
    /// CA of its own (`ewbi-ca.pem` in the data directory: give it to partners).
    #[arg(long, env = "OPD_EWBI_CERT", requires = "ewbi_key")]
    ewbi_cert: Option<PathBuf>,
    /// TLS private key (PEM) of the EWBI.
    #[arg(long, env = "OPD_EWBI_KEY", requires = "ewbi_cert")]
    ewbi_key: Option<PathBuf>,
    /// CA (PEM) of partners' client certificates: enables mutual TLS on the EWBI.
    #[arg(long, env = "OPD_EWBI_CLIENT_CA")]
    ewbi_client_ca: Option<PathBuf>,
    /// Refuse EWBI connections without a client certificate from `--ewbi-client-ca`.
    #[arg(long, requires = "ewbi_client_ca")]
    ewbi_require_client_cert: bool,
    /// URL at which partners reach the EWBI (callbacks, `Location`); default `https://<ewbi-listen>`.
    #[arg(long, env = "OPD_EWBI_PUBLIC_URL")]
    ewbi_public_url: Option<String>,
    /// Host partners' devices reach federated instances on (the zone ingress), and where its
    /// relays listen.
    #[arg(long, env = "OPD_EWBI_INGRESS_HOST", default_value = "127.0.0.1")]
    ewbi_ingress_host: String,
    /// This operator's federation id (`origOPFederationId` / `partnerOPFederationId`); default
    /// the provider name.
    #[arg(long, env = "OPD_FEDERATION_ID")]
    federation_id: Option<String>,
    /// This operator's country (ISO 3166-1 alpha-2), told to partners.
    #[arg(long, env = "OPD_COUNTRY_CODE", default_value = "FR")]
    country_code: String,
    /// Keep the platform's state in this etcd cluster (client URLs, comma-separated) instead
    /// of the embedded store: replicas given the same cluster, prefix and data-directory
    /// secrets serve the same platform; the elected leader runs the controllers.
    #[arg(long, env = "OPD_ETCD_ENDPOINTS", value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Prefix of this platform's keys in etcd (one per region sharing a cluster).
    #[arg(long, env = "OPD_ETCD_PREFIX", default_value = "/op")]
    etcd_prefix: String,
    /// This replica's name in the leader election; default the host name and process id.
    #[arg(long, env = "OPD_REPLICA_ID")]
    replica_id: Option<String>,
    /// How long the leader's lease lasts without renewal, seconds: how soon another replica
    /// takes over the controllers from a leader that died.
    #[arg(long, default_value_t = 5)]
    leader_ttl_secs: u64,
    /// What this process is: the global plane (organizations, users, apps, regions, zones;
    /// regional calls passed to the regions' controllers), one region's controller (its
    /// cloudlets, flavors, instances, clusters and devices, in its own store), or both in one
    /// process (the embedded default).
    #[arg(long, env = "OPD_ROLE", value_enum, default_value_t = Plane::Both)]
    role: Plane,
    /// The region this process controls (with `--role regional`).
    #[arg(long, env = "OPD_REGION", required_if_eq("role", "regional"))]
    region: Option<String>,
    /// The global plane's etcd cluster (with `--role regional`): the controller reads
    /// organizations, users, apps, regions and zones there, and writes nothing.
    #[arg(long, env = "OPD_GLOBAL_ETCD_ENDPOINTS", value_delimiter = ',', required_if_eq("role", "regional"))]
    global_etcd_endpoints: Vec<String>,
    /// The global plane's prefix in its etcd cluster.
    #[arg(long, env = "OPD_GLOBAL_ETCD_PREFIX", default_value = "/op")]
    global_etcd_prefix: String,
    /// The global plane's URL (with `--role regional`): the issuer of the tokens the
    /// controller accepts, and where it sends callers of global calls.
    #[arg(long, env = "OPD_GLOBAL_URL", required_if_eq("role", "regional"))]
    global_url: Option<String>,
}

/// What an `opd` process is in a platform split into a global plane and regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Plane {
    /// Global plane and the controller of every region, one store: the embedded default.
    Both,
    /// The global plane alone.
    Global,
    /// One region's controller.
    Regional,
}

/// A startup step slower than this is logged as a warning: a platform that takes long to
/// start (a slow disk, a runtime that does not answer) says which step held it.
const SLOW_STEP: std::time::Duration = std::time::Duration::from_secs(2);

/// Times opd's startup steps (see [`SLOW_STEP`]).
struct Stopwatch {
    begun: std::time::Instant,
    last: std::time::Instant,
}

impl Stopwatch {
    fn start() -> Self {
        let now = std::time::Instant::now();
        Self { begun: now, last: now }
    }

    /// Ends the step `what` that began when the previous one ended.
    fn step(&mut self, what: &'static str) {
        let took = self.last.elapsed();
        self.last = std::time::Instant::now();
        if took > SLOW_STEP {
            warn!(step = what, ms = took.as_millis(), "slow startup step");
        } else {
            debug!(step = what, ms = took.as_millis(), "startup step");
        }
    }

    fn total(&self) -> std::time::Duration {
        self.begun.elapsed()
    }
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e` of mimalloc.h; the Rust
/// bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before it returns it to the kernel, ms. Its default
/// (10 ms) returned and faulted back in the same pages over and over under steady load: the
/// kernel's page clearing was 7% of the machine's CPU in `bench/scale.sh` (`perf`); at one
/// second opd's CPU per created instance fell from 0.79 to 0.68 ms, with the same peak memory
/// (what still clears pages is memory reused less often than that).
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // SAFETY: sets one of mimalloc's options, which it reads on its next purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Openapi => {
            println!("{}", op_api::openapi_json());
            Ok(())
        }
        Cmd::Serve(args) => serve(*args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(&args.log_format);
    let mut watch = Stopwatch::start();
    info!(version = env!("CARGO_PKG_VERSION"), data_dir = %args.data_dir.display(), "opd starting");
    // The configured ports first: listeners the platform opens on port 0 later (points of
    // presence, ingress relays) are given ports by the kernel and must not take these.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let uni_listener = match args.uni_listen {
        Some(a) => Some(std::net::TcpListener::bind(a).with_context(|| format!("binding {a}"))?),
        None => None,
    };
    let ewbi_listener = match args.ewbi_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding the EWBI on {addr}"))?),
        None => None,
    };
    let boot = bootstrap::prepare_dir(&args.data_dir)?;
    watch.step("preparing the data directory");
    let (engine, etcd): (Arc<dyn op_store::Engine>, Option<Arc<EtcdEngine>>) = if args.etcd_endpoints.is_empty() {
        let e = RedbEngine::open(&args.data_dir.join("store.redb"))
            .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
        (e, None)
    } else {
        let e = EtcdEngine::connect(EtcdSettings::new(args.etcd_endpoints.clone(), &args.etcd_prefix))
            .await
            .with_context(|| format!("connecting to etcd at {}", args.etcd_endpoints.join(",")))?;
        info!(endpoints = %args.etcd_endpoints.join(","), prefix = %args.etcd_prefix, "state in etcd");
        (e.clone(), Some(e))
    };
    let repo = match args.role {
        Plane::Both => Repo::new(engine),
        Plane::Global => {
            let why = "the global plane keeps no regional data: the region's controller does (GET /op/v1/regions names it)";
            Repo::split(engine.clone(), Arc::new(op_store::homes::Elsewhere::new(why)), engine)
        }
        Plane::Regional => {
            let settings = EtcdSettings::new(args.global_etcd_endpoints.clone(), &args.global_etcd_prefix);
            let global = EtcdEngine::connect(settings)
                .await
                .with_context(|| format!("connecting to the global plane's etcd at {}", args.global_etcd_endpoints.join(",")))?;
            let why = format!(
                "organizations, users, apps, regions and zones are managed by the global plane at {}",
                args.global_url.as_deref().unwrap_or_default()
            );
            Repo::split(Arc::new(op_store::homes::ReadOnly::new(global, why)), engine.clone(), engine)
        }
    };
    // Controllers read the same flavors, cloudlets and apps on every reconcile, and every
    // deployment request reads its app: from memory. (An instance names the app revision it
    // was admitted with, and an older copy is passed over for the store's.)
    let repo = match args.role {
        Plane::Global => repo,
        _ => repo
            .with_read_cache(&[op_types::Kind::Flavor, op_types::Kind::Cloudlet, op_types::Kind::App])
            .await
            .context("reading flavors, cloudlets and apps for the controllers")?,
    };
    watch.step("opening the store");
    if args.role != Plane::Both && (args.ewbi_listen.is_some() || args.registry_listen.is_some()) {
        anyhow::bail!("--ewbi-listen and --registry-listen need --role both: federation and the organizations' registry do not run on a split platform yet");
    }
    if args.role != Plane::Regional {
        bootstrap::ensure_admin(&repo, &boot).await?;
    }
    if args.role == Plane::Both && !args.no_default_cloudlet {
        bootstrap::ensure_default_site(&repo, &args.docker_endpoint).await?;
    }
    let region = match (&args.role, &args.region) {
        (Plane::Regional, Some(r)) => Some(op_types::Name::new(r).map_err(|e| anyhow::anyhow!("--region: {e}"))?),
        _ => None,
    };
    watch.step("writing the first objects");

    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let leading = prometheus_client::metrics::gauge::Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    registry.register("op_controllers_leader", "1 while this replica runs the controllers (leads its region), else 0", leading.clone());
    let http = HttpMetrics::register(&mut registry);
    let serverless = Arc::new(op_api::serverless::Serverless::new(std::time::Duration::from_millis(args.serverless_hold_ms), args.serverless_port));
    registry.register_collector(Box::new(op_api::serverless::TrafficMetrics(serverless.clone())));
    let resources = op_api::resources::Resources::default();
    registry.register_collector(Box::new(op_api::resources::ResourceMetrics(resources.clone())));
    let drivers = Drivers::default();
    let feed = op_uni::feed::start(repo.clone()).await?;
    watch.step("loading the UNI index");
    let signer = bootstrap::session_signer(&args.data_dir)?;
    let network: Option<Arc<dyn op_network::NetworkAdapter>> = match &args.network_api {
        Some(api) => {
            let mut cfg = op_network::AdapterConfig::new(api, &args.network_client_id, &args.network_client_secret);
            if let Some(t) = &args.network_token_url {
                cfg.token_url = t.clone();
            }
            Some(Arc::new(op_network::StandardAdapter::new(cfg).map_err(|e| anyhow::anyhow!("network adapter: {e}"))?))
        }
        None => None,
    };
    if let Some(bad) = args.partner_plmns.iter().find(|p| !op_types::specs::is_plmn_id(p)) {
        anyhow::bail!("--partner-plmns: '{bad}' is not a PLMN id (3-digit MCC then 2- or 3-digit MNC, e.g. 23415)");
    }
    let callback_secret = bootstrap::random_hex(16);
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{}", args.listen));
    let uni = op_api::uni::UniState {
        callback_url: network.as_ref().map(|_| format!("{public_url}/uni/v1/network-events/{callback_secret}")),
        callback_secret,
        subscriptions: Default::default(),
        index: feed.index.clone(),
        signer,
        sessions: op_uni::sessions::Sessions::default(),
        network,
        mcc: args.mcc.clone(),
        mnc: args.mnc.clone(),
        partner_plmns: args.partner_plmns.clone(),
        session_ttl: args.session_ttl,
        limiter: op_uni::limit::RateLimiter::new(
            op_uni::limit::Rate { per_second: args.device_rps, burst: args.device_rps * 2.0 },
            op_uni::limit::Rate { per_second: args.uni_rps, burst: args.uni_rps * 2.0 },
        ),
    };
    // A region's controller accepts the tokens the global plane issues.
    let issuer = args.global_url.clone().filter(|_| args.role == Plane::Regional).unwrap_or_else(|| public_url.clone());
    let keys = bootstrap::token_keys(&args.data_dir, issuer.trim_end_matches('/'))?;
    let registry_config = match &args.registry_listen {
        Some(listen) => {
            let events_secret = op_types::secret::derive_hex_str(&boot.service_secret, "registry-events/", "");
            let key_pem = std::fs::read_to_string(args.data_dir.join("token-signing.pem")).context("reading the token signing key")?;
            registry::start(registry::RegistrySettings {
                program: &args.registry_bin,
                listen,
                data_dir: &args.data_dir,
                token_key_pem: &key_pem,
                issuer: keys.issuer(),
                api_url: &public_url,
                events_secret: &events_secret,
            })
            .await
            .context("starting the organizations' registry")?;
            let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
            Some(op_api::registry::RegistryConfig { host: listen.clone(), events_secret, http })
        }
        None => None,
    };
    let state = AppState::new(op_api::state::Shared {
        repo: repo.clone(),
        keys,
        drivers: drivers.clone(),
        admission: Arc::default(),
        inventory: op_api::inventory::Inventory::start(repo.clone()).await.context("reading cloudlets and instances for admission")?,
        registry: Arc::new(registry),
        http,
        provider: args.provider.clone(),
        uni: Arc::new(uni),
        usage: op_api::usage::Usage::restore(repo.engine(op_types::Home::Regional).as_ref()).await.context("reading recorded usage")?,
        telemetry: Default::default(),
        instance_secret: boot.service_secret.clone(),
        mobility: Default::default(),
        ewbi: Arc::new(ewbi_state(&args, &boot)?),
        serverless,
        self_registration: !args.no_self_registration,
        oidc_codes: Default::default(),
        audit: op_api::audit::start(repo.clone()),
        events: op_api::events::Events::start(repo.clone()).await.context("reading instances and cloudlets for events")?,
        resources,
        alarm_deliveries: Default::default(),
        lbs: Default::default(),
        qoe: Default::default(),
        images: registry_config,
        region: region.clone(),
        regions: if args.role == Plane::Global { Some(op_api::regions::Forwarder::new()?) } else { None },
    });

    watch.step("loading keys, usage and federation settings");
    match op_api::mobility::recover(&state).await {
        Ok(0) => {}
        Ok(n) => info!(relocations = n, "closed relocations left open by the previous run"),
        Err(e) => warn!(error = %e, "cannot close relocations left open by the previous run"),
    }
    op_api::serverless::start(&state, feed.changes.clone());
    tokio::spawn(push_session_changes(state.clone(), feed.changes));
    if state.uni.network.is_some() {
        tokio::spawn(op_api::netview::run(state.clone(), std::time::Duration::from_millis(args.network_refresh_ms.max(100))));
    }
    let addr = listener.local_addr()?;
    // Where app instances reach the platform (their containers cannot reach the host's
    // loopback): the runtime's bridge gateway, on the same port.
    watch.step("recovering relocations and binding the API");
    let apps_listener = apps_listener(&args, addr).await;
    watch.step("asking the runtime for its bridge gateway");
    let router = op_api::router(state.clone());
    let mut platform_url = None;
    if let Some((l, url)) = apps_listener {
        info!(%url, "apps reach the platform here");
        let r = router.clone();
        tokio::spawn(async move { axum::serve(l, r).await });
        platform_url = Some(url);
    }
    if let Some(l) = uni_listener {
        info!(addr = %l.local_addr()?, "devices reach the platform here too (UNI), on a thread of its own");
        serve_uni(l, router.clone())?;
    }
    if let Some(l) = ewbi_listener {
        let settings = bootstrap::ewbi_tls(&args.data_dir, &args.ewbi_cert, &args.ewbi_key, args.ewbi_client_ca.clone(), args.ewbi_require_client_cert)?;
        let config = op_api::ewbi::tls::server_config(&settings).map_err(|e| anyhow::anyhow!("EWBI TLS: {e}"))?;
        let addr = l.local_addr()?;
        info!(%addr, url = %state.ewbi.public_url, "federation interface (EWBI) listening");
        println!("opd EWBI: {}", state.ewbi.public_url);
        tokio::spawn(op_api::ewbi::tls::serve(l, config, op_api::ewbi::router(state.clone()), shutdown()));
    }
    if !args.no_controllers {
        let controllers = Controllers {
            runtime: background_runtime()?,
            state: state.clone(),
            repo: repo.clone(),
            metrics,
            drivers,
            // A region's containers carry the region in their platform label, so that
            // controllers of regions that share a runtime (a lab) never collect each other's.
            platform_id: match &region {
                Some(r) => format!("{}-{r}", boot.platform_id),
                None => boot.platform_id.clone(),
            },
            role: args.role,
            service_secret: boot.service_secret.clone(),
            platform_url,
            workers: args.workers,
            probe_image: args.probe_image.clone(),
            egress_image: args.egress_image.clone(),
            usage_sample: std::time::Duration::from_millis(args.usage_sample_ms.max(100)),
            resources_every: std::time::Duration::from_millis(args.resources_every_ms.max(100)),
            audit_retention: std::time::Duration::from_secs(args.audit_retention_days.max(1) * 86_400),
            alarms_every: std::time::Duration::from_millis(args.alarms_every_ms.max(100)),
            scale_every: std::time::Duration::from_millis(args.scale_every_ms.max(100)),
            scale_in_after: std::time::Duration::from_secs(args.scale_in_after_secs),
        };
        match etcd {
            None => {
                leading.set(1);
                // Embedded store: one process owns it (redb locks the file), so it leads.
                let _detached = controllers.spawn();
            }
            Some(engine) => {
                let id = args.replica_id.clone().unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
                let ttl = std::time::Duration::from_secs(args.leader_ttl_secs.max(2));
                tokio::spawn(lead(engine, id, ttl, controllers, leading));
            }
        }
    }

    info!(%addr, startup_ms = watch.total().as_millis(), "opd listening");
    println!("opd API: http://{addr}");
    println!("admin credential: {}", boot.admin_credential_path.display());
    axum::serve(listener, router).with_graceful_shutdown(shutdown()).await?;
    Ok(())
}

/// Serves `router` on `l` from the `op-uni` thread and a runtime of its own, for as long as
/// the process lives.
fn serve_uni(l: std::net::TcpListener, router: axum::Router) -> anyhow::Result<()> {
    l.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("op-uni".into()).spawn(move || {
        if let Err(e) = op_ingress::short_slice() {
            info!(error = %e, "the UNI thread keeps the kernel's default turns");
        }
        rt.block_on(async move {
            let served = match tokio::net::TcpListener::from_std(l) {
                Ok(l) => axum::serve(l, router).await,
                Err(e) => Err(e),
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "the UNI listener failed");
            }
        });
    })?;
    Ok(())
}

/// Everything the controllers need, so that a replica can start them each time it becomes the
/// leader and stop them (abort their tasks: reconciles are cancel-safe) when it stops being one.
struct Controllers {
    /// Where the controllers run: threads of lower priority than the API's.
    runtime: tokio::runtime::Handle,
    state: AppState,
    repo: Repo,
    metrics: Metrics,
    drivers: Drivers,
    platform_id: String,
    role: Plane,
    service_secret: Vec<u8>,
    platform_url: Option<String>,
    workers: usize,
    probe_image: String,
    egress_image: String,
    usage_sample: std::time::Duration,
    resources_every: std::time::Duration,
    audit_retention: std::time::Duration,
    alarms_every: std::time::Duration,
    scale_every: std::time::Duration,
    scale_in_after: std::time::Duration,
}

impl Controllers {
    /// Starts the controllers and background writers of this process's plane; returns their
    /// tasks. The global plane only expires its audit records; a region's controller runs
    /// everything that acts on the region; federation runs where one process is both.
    fn spawn(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let (state, repo, metrics, rt) = (&self.state, &self.repo, &self.metrics, &self.runtime);
        let mut tasks = vec![rt.spawn(op_api::audit::expire(repo.clone(), self.audit_retention, std::time::Duration::from_secs(3600)))];
        if self.role == Plane::Global {
            return tasks;
        }
        if self.role == Plane::Both {
            let clients = state.ewbi.clients.clone();
            tasks.extend([
                rt.spawn(Runner::new(op_api::ewbi::peer::PeerReconciler::new(state.clone(), clients.clone()), repo.clone(), metrics.clone(), 2).run()),
                rt.spawn(Runner::new(op_api::ewbi::peer::RemoteInstanceReconciler::new(state.clone(), clients), repo.clone(), metrics.clone(), 4).run()),
                rt.spawn(Runner::new(op_api::ewbi::notify::InstanceNotifier::new(state.clone()), repo.clone(), metrics.clone(), 4).run()),
                rt.spawn(op_api::ewbi::notify::deliver(state.clone())),
                rt.spawn(op_api::ewbi::notify::report_all_sessions(state.clone())),
                rt.spawn(op_api::ewbi::zones::run(state.clone())),
                rt.spawn(Runner::new(op_api::ewbi::cloudlets::CloudletFederationReconciler::new(state.clone()), repo.clone(), metrics.clone(), 2).run()),
            ]);
        }
        let mut platform_env: std::collections::BTreeMap<String, String> =
            [("OP_UNI_PUBLIC_KEY".to_string(), state.uni.signer.public_pem().to_string())].into_iter().collect();
        if let Some(url) = &self.platform_url {
            platform_env.insert("OP_PLATFORM_URL".into(), url.clone());
        }
        let mut instances = InstanceReconciler::new(repo.clone(), self.drivers.clone(), self.platform_id.clone(), platform_env, self.service_secret.clone());
        if let Some(r) = &state.images {
            let s = state.clone();
            let credentials = Arc::new(move |org: &op_types::Name, cloudlet: &op_types::Name| op_api::registry::pull_credentials(&s, org, cloudlet));
            instances = instances.with_registry(op_controller::RegistryPulls { host: r.host.clone(), credentials });
        }
        let instances = Runner::new(instances, repo.clone(), metrics.clone(), self.workers);
        let cloudlets = CloudletReconciler::new(repo.clone(), self.drivers.clone(), self.platform_id.clone(), self.probe_image.clone()).with_instances(instances.known());
        let clusters = op_controller::ClusterReconciler::new(repo.clone(), self.drivers.clone(), self.platform_id.clone(), self.egress_image.clone());
        tasks.extend([
            rt.spawn(instances.run()),
            rt.spawn(op_api::telemetry::run(state.clone(), std::time::Duration::from_secs(1))),
            rt.spawn(op_api::ams::run(state.clone())),
            rt.spawn(op_api::usage::run(state.clone(), self.usage_sample)),
            rt.spawn(op_api::resources::run(state.clone(), self.resources_every)),
            rt.spawn(op_api::alarms::run(state.clone(), self.alarms_every)),
            rt.spawn(op_api::scale::run(state.clone(), self.scale_every, self.scale_in_after)),
            rt.spawn(op_api::clusters::run(state.clone(), std::time::Duration::from_secs(1))),
            rt.spawn(Runner::new(clusters, repo.clone(), metrics.clone(), 2).run()),
            rt.spawn(Runner::new(cloudlets, repo.clone(), metrics.clone(), 2).run()),
        ]);
        tasks
    }
}

/// How far below the API's threads the controllers' threads run (nice value).
const BACKGROUND_NICE: i32 = 10;

/// The runtime the controllers run on, apart from the API's: its threads run at a lower
/// priority ([`BACKGROUND_NICE`]), so that a burst of API writes on a busy machine is answered
/// first and reconciled with the CPU left over, instead of every answer queueing behind the
/// reconciles its own writes started. It lasts as long as the process (it is never dropped:
/// dropping a runtime inside another one's task is refused).
fn background_runtime() -> anyhow::Result<tokio::runtime::Handle> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("op-ctl")
        .on_thread_start(|| {
            if let Err(e) = op_ingress::background_priority(BACKGROUND_NICE) {
                debug!(error = %e, "a controller thread keeps the API's priority");
            }
        })
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    std::mem::forget(rt);
    Ok(handle)
}

/// Campaigns for the region's leadership in etcd and runs the controllers while this replica
/// leads; when the lease is lost it stops them and campaigns again. Every replica serves the
/// APIs all along.
async fn lead(
    engine: Arc<EtcdEngine>,
    id: String,
    ttl: std::time::Duration,
    controllers: Controllers,
    leading: prometheus_client::metrics::gauge::Gauge<i64, std::sync::atomic::AtomicI64>,
) {
    loop {
        match engine.campaign("controllers", &id, ttl).await {
            Ok(mut leadership) => {
                info!(replica = %id, "leading: starting the controllers");
                leading.set(1);
                let tasks = controllers.spawn();
                leadership.lost().await;
                for t in &tasks {
                    t.abort();
                }
                leading.set(0);
                warn!(replica = %id, "lost the leadership: controllers stopped; campaigning again");
            }
            Err(e) => {
                warn!(error = %e, "cannot campaign for leadership; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// This machine's host name (for the default replica id).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "opd".into())
}

/// The federation interface's shared state: its token key and id key derived from the
/// platform's secrets (so NBI and EWBI tokens are never interchangeable), its public URL and
/// the ingress.
fn ewbi_state(args: &ServeArgs, boot: &bootstrap::Boot) -> anyhow::Result<op_api::ewbi::EwbiState> {
    let token_key = op_types::secret::derive_hex_str(&boot.jwt_secret, "ewbi-token-key/", "");
    let public_url = match (&args.ewbi_public_url, args.ewbi_listen) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Some(a)) => format!("https://{a}"),
        (None, None) => "https://localhost".to_string(),
    };
    if !public_url.starts_with("https://") {
        anyhow::bail!("--ewbi-public-url must be an https:// URL: partners reach the EWBI over TLS only");
    }
    Ok(op_api::ewbi::EwbiState {
        tokens: op_api::ewbi::oauth::EwbiTokens::new(token_key.into_bytes(), public_url.clone(), std::time::Duration::from_secs(3600)),
        public_url,
        files_dir: args.data_dir.join("ewbi-files"),
        ingress_host: args.ewbi_ingress_host.clone(),
        secret: op_types::secret::derive_hex_str(&boot.service_secret, "ewbi-ids/", "").into_bytes(),
        federation_id: args.federation_id.clone().unwrap_or_else(|| args.provider.clone()),
        country_code: args.country_code.clone(),
        ingress: op_api::ewbi::ingress::Ingress::new(&args.ewbi_ingress_host),
        wake: tokio::sync::Notify::new(),
        clients: Default::default(),
    })
}

/// The listener app instances call the platform on, and its URL: `--apps-listen` when given
/// (`none` for no such listener), else the local runtime's bridge gateway on `main`'s port.
/// Failures are logged: apps then get no `OP_PLATFORM_URL`.
async fn apps_listener(args: &ServeArgs, main: SocketAddr) -> Option<(tokio::net::TcpListener, String)> {
    let at: SocketAddr = match args.apps_listen.as_deref() {
        Some("none") => return None,
        Some(a) => match a.parse() {
            Ok(a) => a,
            Err(e) => {
                warn!(addr = %a, error = %e, "--apps-listen is not an address; apps will not reach the platform");
                return None;
            }
        },
        None => {
            let gw = match op_driver::docker::DockerDriver::connect(&args.docker_endpoint) {
                Ok(d) => d.bridge_gateway().await,
                Err(e) => Err(e),
            };
            match gw {
                Ok(Some(ip)) => SocketAddr::new(ip, main.port()),
                Ok(None) => return None,
                Err(e) => {
                    warn!(error = %e, "no bridge gateway from the runtime; apps will not reach the platform");
                    return None;
                }
            }
        }
    };
    match tokio::net::TcpListener::bind(at).await {
        Ok(l) => {
            let url = format!("http://{}", l.local_addr().unwrap_or(at));
            Some((l, url))
        }
        Err(e) => {
            warn!(%at, error = %e, "cannot listen for apps there; apps will not reach the platform");
            None
        }
    }
}

/// Re-evaluates UNI sessions whenever the index changes (and every few seconds, to expire
/// old ones), pushing edge changes to the devices concerned.
async fn push_session_changes(state: AppState, mut changes: tokio::sync::watch::Receiver<u64>) {
    loop {
        if let Ok(Err(_)) = tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed()).await {
            // The feed is gone (shutting down): fall back to the periodic pass.
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
        op_api::mobility::reevaluate(&state);
    }
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    info!("shutting down");
}
