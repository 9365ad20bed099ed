//! `opctl`: the command-line client of the Operator Platform, over every API.

mod access;
mod alarm;
mod cluster;
mod config;
mod device;
mod federation;
mod inspect;
mod output;
mod registry;
mod relocation;
mod serverless;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use op_client::{AppInstanceInfo, AppManifest, Client, ClientError, EdgeCloudZone};
use op_types::specs::{
    AppInstance, CloudletObserved, CloudletSpec, FlavorSpec, GeoPoint, OrganizationSpec, PlatformServiceKind, PlatformServiceSpec, PlatformType,
    IngressRule, PrivacyPolicy, RegionSpec, Resources, Role, SecurityGroup, ServiceArea, ZoneSpec,
};
use op_types::{Name, Object, State, Uid};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::output::{print, table, Format};

#[derive(Parser)]
#[command(name = "opctl", version, about = "Operator Platform command-line client")]
struct Cli {
    /// API base URL (default: the logged-in server, else http://127.0.0.1:7080).
    #[arg(long, global = true, env = "OPCTL_SERVER")]
    server: Option<String>,
    /// The region a call is for, on a platform split into a global plane and regions (lists
    /// without it join every region's).
    #[arg(long, global = true, env = "OPCTL_REGION")]
    in_region: Option<String>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value = "table")]
    output: Format,
    /// Config file holding the server and token.
    #[arg(long, global = true, env = "OPCTL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Log in and remember the token.
    Login {
        /// User name (optional with --credential-file).
        user: Option<String>,
        /// File holding the password.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// File holding `user:password` (opd writes the admin's as <data-dir>/admin-credential).
        #[arg(long)]
        credential_file: Option<PathBuf>,
        /// Act for this organization (one you are a member of, or one below it).
        #[arg(long)]
        org: Option<String>,
    },
    /// Register a new organization and its first user (its Manager), and log in as it.
    Register {
        /// Your user name.
        name: String,
        /// The new organization (8-64 letters, digits or '_').
        #[arg(long)]
        org: String,
        /// What the organization does.
        #[arg(long)]
        description: Option<String>,
        /// File holding the password (else $OPCTL_NEW_PASSWORD).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Members of organizations and their roles.
    Member {
        #[command(subcommand)]
        cmd: access::MemberCmd,
    },
    /// API keys for scripts and CI (use one with OPCTL_TOKEN=<key>).
    Apikey {
        #[command(subcommand)]
        cmd: access::ApiKeyCmd,
    },
    /// The audit log: who changed what, when (a Manager: its organization's; others: their own).
    Audit {
        /// Only this user's calls.
        #[arg(long)]
        user: Option<String>,
        /// Only this organization's.
        #[arg(long)]
        org: Option<String>,
        /// At most this many, newest first (1-1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Recent events of instances (and, for the operator, cloudlets), newest first.
    Events {
        /// Only this instance's (name or id).
        #[arg(long)]
        instance: Option<String>,
        /// Only cloudlets' (operator).
        #[arg(long)]
        cloudlets: bool,
        /// Only warnings.
        #[arg(long)]
        warnings: bool,
        /// At most this many (1-1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Resource use (CPU, memory, disk, network) and health, per instance, app, organization or
    /// cloudlet (operator).
    Resources {
        #[arg(value_enum, default_value = "instances")]
        view: inspect::ResourceView,
    },
    /// Quality of experience per zone from device probes (operators: --by-zone over all apps).
    Qoe {
        /// Totals per zone over every app (operator).
        #[arg(long)]
        by_zone: bool,
    },
    /// Alarms (cloudlet down, instance down, resource thresholds), their webhook receivers and
    /// alert policies.
    Alarm {
        #[command(subcommand)]
        cmd: alarm::AlarmCmd,
    },
    /// Clusters: an organization's containers networked together in a zone.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Load balancers in front of a cluster's instances.
    Lb {
        #[command(subcommand)]
        cmd: cluster::LbCmd,
    },
    /// The organizations' image registry: where it is, how to log in, the versions pushed.
    Registry {
        #[command(subcommand)]
        cmd: registry::RegistryCmd,
    },
    /// Clients of the platform's OpenID Connect provider (operator).
    OidcClient {
        #[command(subcommand)]
        cmd: access::OidcClientCmd,
    },
    /// The edge cloud zones (CAMARA view).
    Zones,
    /// The flavors one can deploy in a zone now, or that a cloudlet offers (operator).
    Flavors {
        /// Zone name.
        #[arg(long, conflicts_with = "cloudlet", required_unless_present = "cloudlet")]
        zone: Option<String>,
        /// Cloudlet name (operator).
        #[arg(long)]
        cloudlet: Option<String>,
    },
    /// Regions (operator).
    Region(Crud<RegionArgs>),
    /// Zones (operator).
    Zone(Crud<ZoneArgs>),
    /// Flavors (operator).
    Flavor(Crud<FlavorArgs>),
    /// Cloudlets (operator).
    Cloudlet(Crud<CloudletArgs>),
    /// Replace a cloudlet's security group and privacy policy (operator).
    CloudletPolicy(CloudletPolicyArgs),
    /// Organizations (operator).
    Org(Crud<OrgArgs>),
    /// Platform services offered to apps, e.g. a managed PostgreSQL (operator writes; developers read).
    Service(Crud<ServiceArgs>),
    /// Users.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Applications.
    App {
        #[command(subcommand)]
        cmd: AppCmd,
    },
    /// Application instances.
    Instance {
        #[command(subcommand)]
        cmd: InstanceCmd,
    },
    /// Relocations of devices between instances (mobility) and their timelines.
    Relocation {
        #[command(subcommand)]
        cmd: relocation::RelocationCmd,
    },
    /// Federation with other operators (GSMA EWBI): partners, peers, settlement (operator).
    Federation {
        #[command(subcommand)]
        cmd: federation::FederationCmd,
    },
    /// Serverless apps: create in one command, see where they run and why, change policies.
    Serverless {
        #[command(subcommand)]
        cmd: serverless::ServerlessCmd,
    },
    /// Act as a device app against the UNI.
    Device {
        #[command(subcommand)]
        cmd: device::DeviceCmd,
    },
}

#[derive(Args)]
struct Crud<A: Args> {
    #[command(subcommand)]
    cmd: CrudCmd<A>,
}

#[derive(Subcommand)]
enum CrudCmd<A: Args> {
    /// List them.
    List,
    /// Show one.
    Get { name: String },
    /// Create one.
    Create {
        name: String,
        #[command(flatten)]
        args: A,
    },
    /// Delete one.
    Delete { name: String },
}

#[derive(Args)]
struct CloudletPolicyArgs {
    /// The cloudlet.
    name: String,
    #[command(flatten)]
    policies: PolicyArgs,
}

/// A cloudlet's security group and privacy policy, at creation and when replaced.
#[derive(Args)]
struct PolicyArgs {
    /// Only let this traffic in (repeat), e.g. tcp:8000-8100; default: every published port.
    #[arg(long)]
    allow_ingress: Vec<String>,
    /// Privacy policy: nothing leaves instances here (they run only in clusters that deny
    /// outbound traffic).
    #[arg(long)]
    deny_outbound: bool,
    /// Privacy policy: only this leaves instances here (repeat), through their clusters'
    /// egress gateways, e.g. tcp:10.0.0.0/8:443. With neither, anything may leave.
    #[arg(long)]
    allow_out: Vec<String>,
}

impl PolicyArgs {
    fn security_group(&self) -> Result<Option<SecurityGroup>> {
        if self.allow_ingress.is_empty() {
            return Ok(None);
        }
        Ok(Some(SecurityGroup { ingress: self.allow_ingress.iter().map(|r| ingress_rule(r)).collect::<Result<_>>()? }))
    }

    fn privacy_policy(&self) -> Result<Option<PrivacyPolicy>> {
        privacy_policy(self.deny_outbound, &self.allow_out)
    }
}

#[derive(Args)]
struct RegionArgs {
    #[arg(long)]
    description: Option<String>,
    /// Where the region's controller serves (when opd runs as a global plane and regional
    /// controllers).
    #[arg(long)]
    controller_url: Option<String>,
    /// The region's regulation lets nothing out of its cloudlets.
    #[arg(long)]
    deny_outbound: bool,
    /// The regulation lets only this out (repeat), through clusters' egress gateways, e.g.
    /// tcp:10.0.0.0/8:443.
    #[arg(long)]
    allow_out: Vec<String>,
}

#[derive(Args)]
struct OrgArgs {
    #[arg(long)]
    description: Option<String>,
    /// The organization this one is a group of (its Manager may create it).
    #[arg(long)]
    parent: Option<String>,
}

#[derive(Args)]
struct ZoneArgs {
    #[arg(long)]
    region: String,
    #[arg(long, allow_hyphen_values = true)]
    lat: f64,
    #[arg(long, allow_hyphen_values = true)]
    lon: f64,
    /// Cell ids, comma-separated.
    #[arg(long, value_delimiter = ',')]
    cells: Vec<String>,
    /// Polygon as `lat,lon;lat,lon;lat,lon`.
    #[arg(long, allow_hyphen_values = true)]
    polygon: Option<String>,
    /// Data-network access identifier of the zone's user plane.
    #[arg(long)]
    dnai: Option<String>,
}

#[derive(Args)]
struct FlavorArgs {
    #[arg(long)]
    vcpus: u32,
    #[arg(long)]
    memory_mb: u64,
    #[arg(long, default_value_t = 0)]
    disk_gb: u64,
    #[arg(long, default_value_t = 0)]
    gpus: u32,
}

#[derive(Args)]
struct CloudletArgs {
    #[arg(long)]
    zone: String,
    #[arg(long, allow_hyphen_values = true)]
    lat: f64,
    #[arg(long, allow_hyphen_values = true)]
    lon: f64,
    /// Docker Engine API endpoint, e.g. unix:///run/podman/podman.sock (or sim://NAME for a
    /// modelled cloudlet).
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    vcpus: u32,
    #[arg(long)]
    memory_mb: u64,
    #[arg(long, default_value_t = 100)]
    disk_gb: u64,
    #[arg(long, default_value_t = 0)]
    gpus: u32,
    /// Flavor names, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    flavors: Vec<String>,
    #[arg(long, default_value = "127.0.0.1")]
    public_host: String,
    #[arg(long)]
    maintenance: bool,
    /// edgeSite, federatedSite or publicCloudPeering.
    #[arg(long, default_value = "edgeSite")]
    level: String,
    #[command(flatten)]
    policies: PolicyArgs,
}

#[derive(Args)]
struct ServiceArgs {
    /// What the service is.
    #[arg(long, value_parser = ["postgresql"], default_value = "postgresql")]
    kind: String,
    /// File holding the admin URL, postgres://user:password@host:port/database, of a role with
    /// CREATEDB and CREATEROLE (a secret: read from a file, never given on the command line).
    #[arg(long)]
    admin_url_file: PathBuf,
    /// Address instances reach the server at (default: the admin URL's host).
    #[arg(long)]
    host: Option<String>,
    /// Port instances reach the server at (default: the admin URL's port).
    #[arg(long)]
    port: Option<u16>,
    /// Cloudlets offering it, comma-separated (default: every cloudlet).
    #[arg(long, value_delimiter = ',')]
    cloudlets: Vec<String>,
    #[arg(long)]
    description: Option<String>,
}

#[derive(Subcommand)]
enum UserCmd {
    /// List users.
    List,
    /// Create a user.
    Create {
        name: String,
        /// Organization (developer roles).
        #[arg(long)]
        org: Option<String>,
        /// OperatorAdmin, OperatorViewer, Manager, Contributor or Viewer.
        #[arg(long)]
        role: String,
        /// File holding the password (else $OPCTL_NEW_PASSWORD).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Delete a user.
    Delete { name: String },
}

#[derive(Subcommand)]
enum AppCmd {
    /// List apps.
    List,
    /// Show an app (name or id).
    Get { app: String },
    /// Onboard an app from a CAMARA manifest file (JSON or YAML) or from flags.
    Create(Box<AppCreate>),
    /// Delete an app (name or id).
    Delete { app: String },
    /// Deploy an app by strategy: on every edge of its footprint, or on the fewest edges that
    /// cover it within a latency bound. Zones already running it are left as they are.
    Place {
        /// The app (name or id).
        app: String,
        /// One instance on every edge of the footprint.
        #[arg(long, conflicts_with = "max_latency_ms")]
        every_edge: bool,
        /// Minimum cover within this bound, ms (default: the app's requirements.maxLatencyMs).
        #[arg(long)]
        max_latency_ms: Option<f64>,
    },
}

#[derive(Args)]
pub(crate) struct AppCreate {
    /// App name (not needed with --file).
    pub(crate) name: Option<String>,
    /// A CAMARA AppManifest, JSON or YAML.
    #[arg(long, conflicts_with_all = ["version", "image", "port", "device_key_file", "instantiation", "footprint_regions", "platform_services"])]
    pub(crate) file: Option<PathBuf>,
    #[arg(long)]
    pub(crate) version: Option<String>,
    /// Image reference, e.g. localhost/op-sample-app:latest.
    #[arg(long)]
    pub(crate) image: Option<String>,
    /// Container port exposed to clients.
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Organization (default: yours).
    #[arg(long)]
    pub(crate) provider: Option<String>,
    #[arg(long, default_value = "500m")]
    pub(crate) cpu: String,
    #[arg(long, default_value_t = 128)]
    pub(crate) memory_mb: u32,
    #[arg(long)]
    pub(crate) flavor: Option<String>,
    /// KEY=VALUE, repeatable.
    #[arg(long = "env")]
    pub(crate) env: Vec<String>,
    /// Public key (PEM: Ed25519, P-256 or RSA) that the app's device clients' tokens are
    /// signed with: lets its devices register with the UNI.
    #[arg(long)]
    pub(crate) device_key_file: Option<PathBuf>,
    /// When instances start: `static` (where you deploy them) or `dynamic` (the platform
    /// starts one near a device that asks).
    #[arg(long, value_parser = ["static", "dynamic"])]
    pub(crate) instantiation: Option<String>,
    /// Regions the app may run in (its footprint), repeatable; default: anywhere.
    #[arg(long = "footprint-region")]
    pub(crate) footprint_regions: Vec<String>,
    /// A platform service each instance needs (see `opctl service list`), repeatable: e.g. a
    /// managed database, given to the instance as DATABASE_URL.
    #[arg(long = "platform-service")]
    pub(crate) platform_services: Vec<String>,
}

#[derive(Subcommand)]
enum InstanceCmd {
    /// List instances.
    List {
        /// Only this app's (name or id).
        #[arg(long)]
        app: Option<String>,
    },
    /// Show an instance (name or id) with its conditions.
    Get { instance: String },
    /// Deploy an app to a zone.
    Create {
        name: String,
        /// App name or id.
        #[arg(long)]
        app: String,
        /// Zone name or id.
        #[arg(long)]
        zone: String,
        /// A cluster (name or id) of the zone to run it in.
        #[arg(long)]
        cluster: Option<String>,
        /// Wait until Ready and print the endpoint.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Delete an instance.
    Delete {
        instance: String,
        /// Wait until it is gone.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Print the instance's first endpoint as a URL.
    Endpoint { instance: String },
    /// Print the instance's container output.
    Logs {
        instance: String,
        #[arg(long, default_value_t = 100)]
        tail: usize,
        /// Keep printing what it writes, until it stops (or Ctrl-C).
        #[arg(short, long)]
        follow: bool,
    },
    /// Run a command inside the instance's container, with this terminal's input and output
    /// (e.g. `opctl instance exec web -- sh -c 'ls /'`); exits with the command's code.
    Exec {
        instance: String,
        /// Give the command a terminal (interactive shells).
        #[arg(short, long)]
        tty: bool,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Everything about an instance's health on one page: state, container, endpoint checks,
    /// recent events and last output.
    Debug { instance: String },
}

pub(crate) struct Ctx {
    pub(crate) client: Client,
    config: Config,
    config_path: PathBuf,
    server: String,
    pub(crate) out: Format,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        if let Some(ClientError::Api { status: 401, .. }) = e.downcast_ref::<ClientError>() {
            eprintln!("hint: log in again with `opctl login`");
        }
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let config_path = cli.config.clone().unwrap_or_else(config::default_path);
    let config = Config::load(&config_path)?;
    let server = cli.server.clone().or(config.server.clone()).unwrap_or_else(|| config::DEFAULT_SERVER.to_string());
    // An API key (or any token) in OPCTL_TOKEN wins over the one `opctl login` saved.
    let token = std::env::var("OPCTL_TOKEN").ok().filter(|t| !t.is_empty()).or(config.token.clone());
    let client = Client::new(&server, token).in_region(cli.in_region.clone());
    let ctx = Ctx { client, config, config_path, server, out: cli.output };
    match cli.cmd {
        Cmd::Login { user, password_file, credential_file, org } => login(ctx, user, password_file, credential_file, org).await,
        Cmd::Register { name, org, description, password_file } => access::register(ctx, name, org, description, password_file).await,
        Cmd::Member { cmd } => access::members(&ctx, cmd).await,
        Cmd::Apikey { cmd } => access::api_keys(&ctx, cmd).await,
        Cmd::OidcClient { cmd } => access::oidc_clients(&ctx, cmd).await,
        Cmd::Audit { user, org, limit } => access::audit(&ctx, user, org, limit).await,
        Cmd::Resources { view } => inspect::resources(&ctx, view).await,
        Cmd::Alarm { cmd } => alarm::run(&ctx, cmd).await,
        Cmd::Qoe { by_zone } => inspect::qoe(&ctx, by_zone).await,
        Cmd::Registry { cmd } => registry::run(&ctx, cmd).await,
        Cmd::Cluster { cmd } => cluster::run(&ctx, cmd).await,
        Cmd::Lb { cmd } => cluster::run_lb(&ctx, cmd).await,
        Cmd::Events { instance, cloudlets, warnings, limit } => {
            let id = match instance {
                Some(i) => Some(instance_id(&ctx, &i).await?),
                None => None,
            };
            inspect::events(&ctx, id, cloudlets, warnings, limit).await
        }
        Cmd::Zones => {
            let zones = ctx.client.zones().await?;
            print(ctx.out, &zones, || zones_table(&zones))
        }
        Cmd::Region(c) => crud(&ctx, "regions", c.cmd, |_, a: RegionArgs| {
            let privacy_policy = privacy_policy(a.deny_outbound, &a.allow_out)?;
            Ok(RegionSpec { description: a.description, controller_url: a.controller_url, privacy_policy })
        }, |t, r: &Object<RegionSpec>| {
            let outbound = egress_text(&r.spec.egress());
            t.add_row(vec![
                r.metadata.name.to_string(),
                r.spec.controller_url.clone().unwrap_or_else(|| "-".into()),
                outbound,
                r.spec.description.clone().unwrap_or_default(),
            ]);
        }, &["NAME", "CONTROLLER", "OUTBOUND", "DESCRIPTION"]).await,
        Cmd::Org(c) => crud(&ctx, "organizations", c.cmd, |_, a: OrgArgs| {
            let parent = a.parent.map(Name::new).transpose().map_err(|e| anyhow!("--parent: {e}"))?;
            Ok(OrganizationSpec { description: a.description, parent })
        }, |t, r: &Object<OrganizationSpec>| {
            t.add_row(vec![r.metadata.name.to_string(), r.spec.parent.as_ref().map_or("-".into(), ToString::to_string), r.spec.description.clone().unwrap_or_default()]);
        }, &["NAME", "PARENT", "DESCRIPTION"]).await,
        Cmd::Zone(c) => crud(&ctx, "zones", c.cmd, zone_spec, |t, z: &Object<ZoneSpec>| {
            t.add_row(vec![
                z.metadata.name.to_string(),
                z.metadata.uid.to_string(),
                z.spec.region.to_string(),
                format!("{:.4},{:.4}", z.spec.location.latitude, z.spec.location.longitude),
                z.spec.service_area.cells.join(","),
            ]);
        }, &["NAME", "ID", "REGION", "LOCATION", "CELLS"]).await,
        Cmd::Flavors { zone, cloudlet } => {
            let path = match (zone, cloudlet) {
                (Some(z), _) => format!("zones/{z}/flavors"),
                (None, Some(c)) => format!("cloudlets/{c}/flavors"),
                (None, None) => bail!("give --zone or --cloudlet"),
            };
            let flavors: Vec<Object<FlavorSpec>> = ctx.client.list(&path).await?;
            print(ctx.out, &flavors, || {
                let mut t = table(&FLAVOR_HEADER);
                flavors.iter().for_each(|f| flavor_row(&mut t, f));
                t
            })
        }
        Cmd::Flavor(c) => crud(&ctx, "flavors", c.cmd, |_, a: FlavorArgs| Ok(Resources { vcpus: a.vcpus, memory_mb: a.memory_mb, disk_gb: a.disk_gb, gpus: a.gpus }), flavor_row, &FLAVOR_HEADER).await,
        Cmd::Cloudlet(c) => crud(&ctx, "cloudlets", c.cmd, cloudlet_spec, |t, c: &Object<CloudletSpec, CloudletObserved>| {
            t.add_row(vec![
                c.metadata.name.to_string(),
                c.spec.zone.to_string(),
                serde_json::to_value(c.spec.level).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                c.spec.driver_endpoint.clone(),
                c.spec.capacity.to_string(),
                c.spec.security_group.as_ref().map_or_else(
                    || "all".to_string(),
                    |sg| sg.ingress.iter().map(|r| format!("{:?}:{}{}", r.protocol, r.port_min, r.port_max.map(|m| format!("-{m}")).unwrap_or_default())).collect::<Vec<_>>().join(","),
                ),
                egress_text(&c.spec.egress()),
                c.spec.flavors.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                c.observed.probe.as_ref().map(|p| format!("{}:{}", p.host, p.port)).unwrap_or_default(),
                state_text(c.status.state, c.status.message.as_deref()),
            ]);
        }, &["NAME", "ZONE", "LEVEL", "ENDPOINT", "CAPACITY", "INGRESS", "OUTBOUND", "FLAVORS", "PROBE", "STATE"]).await,
        Cmd::CloudletPolicy(a) => {
            let body = json!({"securityGroup": a.policies.security_group()?, "privacyPolicy": a.policies.privacy_policy()?});
            let c: Object<CloudletSpec, CloudletObserved> = ctx.client.call(op_client::Method::PUT, &format!("/op/v1/cloudlets/{}/policies", a.name), Some(&body)).await?;
            eprintln!("cloudlet {}: outbound {}; its clusters follow within seconds", c.metadata.name, egress_text(&c.spec.egress()));
            Ok(())
        }
        Cmd::Service(c) => crud(&ctx, "platformservices", c.cmd, service_spec, |t, p: &Object<PlatformServiceSpec>| {
            t.add_row(vec![
                p.metadata.name.to_string(),
                serde_json::to_value(p.spec.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                match (&p.spec.host, p.spec.port) {
                    (Some(h), Some(port)) => format!("{h}:{port}"),
                    (Some(h), None) => h.clone(),
                    _ => String::new(),
                },
                p.spec.cloudlets.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                p.spec.description.clone().unwrap_or_default(),
            ]);
        }, &["NAME", "KIND", "REACHED_AT", "CLOUDLETS", "DESCRIPTION"]).await,
        Cmd::User { cmd } => users(&ctx, cmd).await,
        Cmd::App { cmd } => apps(&ctx, cmd).await,
        Cmd::Instance { cmd } => instances(&ctx, cmd).await,
        Cmd::Relocation { cmd } => relocation::run(&ctx, cmd).await,
        Cmd::Federation { cmd } => federation::run(&ctx, cmd).await,
        Cmd::Serverless { cmd } => serverless::run(&ctx, cmd).await,
        Cmd::Device { cmd } => device::run(cmd, ctx.out).await,
    }
}

fn state_text(state: State, message: Option<&str>) -> String {
    match message {
        Some(m) => format!("{state}: {m}"),
        None => state.to_string(),
    }
}

pub(crate) fn read_secret(path: &PathBuf) -> Result<String> {
    let s = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

async fn login(mut ctx: Ctx, user: Option<String>, password_file: Option<PathBuf>, credential_file: Option<PathBuf>, org: Option<String>) -> Result<()> {
    let (user, password) = match (credential_file, user) {
        (Some(f), u) => {
            let cred = read_secret(&f)?;
            let (cu, cp) = cred.split_once(':').ok_or_else(|| anyhow!("{} must hold user:password", f.display()))?;
            (u.unwrap_or_else(|| cu.to_string()), cp.to_string())
        }
        (None, Some(u)) => {
            let p = match (password_file, std::env::var("OPCTL_PASSWORD")) {
                (Some(f), _) => read_secret(&f)?,
                (None, Ok(p)) => p,
                (None, Err(_)) => {
                    if std::io::stdin().is_terminal() {
                        eprint!("password for {u}: ");
                    }
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            (u, p)
        }
        (None, None) => bail!("give a user name, or --credential-file"),
    };
    let t = ctx.client.login(&user, &password, org.as_deref()).await?;
    ctx.config.server = Some(ctx.server.clone());
    ctx.config.token = Some(t.access_token);
    ctx.config.save(&ctx.config_path)?;
    match org {
        Some(o) => eprintln!("logged in to {} as {user}, acting for {o}", ctx.server),
        None => eprintln!("logged in to {} as {user}", ctx.server),
    }
    Ok(())
}

fn zones_table(zones: &[EdgeCloudZone]) -> comfy_table::Table {
    let mut t = table(&["NAME", "ID", "REGION", "STATUS", "PROVIDER"]);
    for z in zones {
        t.add_row(vec![
            z.edge_cloud_zone_name.clone(),
            z.edge_cloud_zone_id.to_string(),
            z.edge_cloud_region.clone(),
            z.edge_cloud_zone_status.clone(),
            z.edge_cloud_provider.clone(),
        ]);
    }
    t
}

async fn crud<A: Args, S: Serialize + DeserializeOwned, X: Serialize + DeserializeOwned + Default>(
    ctx: &Ctx,
    plural: &str,
    cmd: CrudCmd<A>,
    spec: impl FnOnce(&str, A) -> Result<S>,
    row: impl Fn(&mut comfy_table::Table, &Object<S, X>),
    header: &[&str],
) -> Result<()> {
    let rows = |objs: &[Object<S, X>]| {
        let mut t = table(header);
        for o in objs {
            row(&mut t, o);
        }
        t
    };
    match cmd {
        CrudCmd::List => {
            let objs: Vec<Object<S, X>> = ctx.client.list(plural).await?;
            print(ctx.out, &objs, || rows(&objs))
        }
        CrudCmd::Get { name } => {
            let o: Object<S, X> = ctx.client.get(plural, &name).await?;
            print(ctx.out, &o, || rows(std::slice::from_ref(&o)))
        }
        CrudCmd::Create { name, args } => {
            let s = spec(&name, args)?;
            let o = ctx.client.create(plural, &name, &s).await?;
            print(ctx.out, &o, || rows(std::slice::from_ref(&o)))
        }
        CrudCmd::Delete { name } => {
            ctx.client.delete(plural, &name).await?;
            eprintln!("deleted {name}");
            Ok(())
        }
    }
}

/// Columns of a flavor table.
const FLAVOR_HEADER: [&str; 5] = ["NAME", "VCPUS", "MEMORY_MB", "DISK_GB", "GPUS"];

fn flavor_row(t: &mut comfy_table::Table, f: &Object<FlavorSpec>) {
    t.add_row(vec![f.metadata.name.to_string(), f.spec.vcpus.to_string(), f.spec.memory_mb.to_string(), f.spec.disk_gb.to_string(), f.spec.gpus.to_string()]);
}

fn name(s: &str, what: &str) -> Result<Name> {
    Name::new(s).map_err(|e| anyhow!("{what} '{s}': {e}"))
}

/// Parses `lat,lon;lat,lon;...`.
fn parse_polygon(s: &str) -> Result<Vec<GeoPoint>> {
    s.split(';')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (lat, lon) = p.split_once(',').ok_or_else(|| anyhow!("polygon vertex '{p}' is not lat,lon"))?;
            Ok(GeoPoint { latitude: lat.trim().parse()?, longitude: lon.trim().parse()? })
        })
        .collect()
}

fn zone_spec(_: &str, a: ZoneArgs) -> Result<ZoneSpec> {
    let polygon = a.polygon.as_deref().map(parse_polygon).transpose()?.unwrap_or_default();
    Ok(ZoneSpec {
        region: name(&a.region, "region")?,
        location: GeoPoint { latitude: a.lat, longitude: a.lon },
        service_area: ServiceArea { cells: a.cells, polygon },
        dnai: a.dnai,
        federated: None,
    })
}

fn cloudlet_spec(_: &str, a: CloudletArgs) -> Result<CloudletSpec> {
    Ok(CloudletSpec {
        zone: name(&a.zone, "zone")?,
        location: GeoPoint { latitude: a.lat, longitude: a.lon },
        // sim://NAME is a modelled cloudlet; anything else a Docker Engine API.
        platform_type: if a.endpoint.starts_with("sim://") { PlatformType::Sim } else { PlatformType::Docker },
        driver_endpoint: a.endpoint,
        public_host: a.public_host,
        capacity: Resources { vcpus: a.vcpus, memory_mb: a.memory_mb, disk_gb: a.disk_gb, gpus: a.gpus },
        flavors: a.flavors.iter().map(|f| name(f, "flavor")).collect::<Result<_>>()?,
        maintenance: a.maintenance,
        level: serde_json::from_value(json!(a.level)).map_err(|_| anyhow!("--level must be edgeSite, federatedSite or publicCloudPeering"))?,
        security_group: a.policies.security_group()?,
        privacy_policy: a.policies.privacy_policy()?,
    })
}

/// A privacy policy from `--deny-outbound` and `--allow-out` (none: everything may leave).
fn privacy_policy(deny: bool, allow_out: &[String]) -> Result<Option<PrivacyPolicy>> {
    let outbound_rules = cluster::outbound_rules(allow_out)?;
    Ok((deny || !outbound_rules.is_empty()).then_some(PrivacyPolicy { outbound_allowed: false, outbound_rules }))
}

/// What a policy lets out, for a table.
fn egress_text(e: &op_types::egress::Egress) -> String {
    match e {
        op_types::egress::Egress::All => "allowed".into(),
        op_types::egress::Egress::Nothing => "denied".into(),
        op_types::egress::Egress::Rules(r) => format!("only {}", r.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")),
    }
}

/// `tcp:8000-8100`, `udp:53` or `any:443` as an ingress rule.
fn ingress_rule(s: &str) -> Result<IngressRule> {
    let bad = || anyhow!("--allow-ingress {s}: give PROTOCOL:PORT or PROTOCOL:FIRST-LAST, e.g. tcp:8000-8100");
    let (proto, ports) = s.split_once(':').ok_or_else(bad)?;
    let protocol = serde_json::from_value(json!(proto.to_ascii_uppercase())).map_err(|_| bad())?;
    let (min, max) = match ports.split_once('-') {
        Some((a, b)) => (a.parse().map_err(|_| bad())?, Some(b.parse().map_err(|_| bad())?)),
        None => (ports.parse().map_err(|_| bad())?, None),
    };
    Ok(IngressRule { protocol, port_min: min, port_max: max })
}

fn service_spec(_: &str, a: ServiceArgs) -> Result<PlatformServiceSpec> {
    let kind = match a.kind.as_str() {
        "postgresql" => PlatformServiceKind::Postgresql,
        k => bail!("unknown service kind '{k}'"),
    };
    Ok(PlatformServiceSpec {
        kind,
        admin_url: Some(read_secret(&a.admin_url_file)?.trim().to_string()),
        host: a.host,
        port: a.port,
        cloudlets: a.cloudlets.iter().map(|c| name(c, "cloudlet")).collect::<Result<_>>()?,
        description: a.description,
    })
}

async fn users(ctx: &Ctx, cmd: UserCmd) -> Result<()> {
    match cmd {
        UserCmd::List => {
            let users = ctx.client.users().await?;
            print(ctx.out, &users, || {
                let mut t = table(&["NAME", "ORGANIZATION", "ROLE"]);
                for u in &users {
                    t.add_row(vec![
                        u.metadata.name.to_string(),
                        u.organization.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".into()),
                        format!("{:?}", u.role),
                    ]);
                }
                t
            })
        }
        UserCmd::Create { name, org, role, password_file } => {
            let role: Role = serde_json::from_value(json!(role))
                .map_err(|_| anyhow!("role must be OperatorAdmin, OperatorViewer, Manager, Contributor or Viewer"))?;
            let password = match password_file {
                Some(f) => read_secret(&f)?,
                None => std::env::var("OPCTL_NEW_PASSWORD").map_err(|_| anyhow!("give --password-file or set OPCTL_NEW_PASSWORD"))?,
            };
            let u = ctx.client.create_user(&name, org.as_deref(), role, &password).await?;
            eprintln!("created user {}", u.metadata.name);
            Ok(())
        }
        UserCmd::Delete { name } => {
            ctx.client.delete_user(&name).await?;
            eprintln!("deleted user {name}");
            Ok(())
        }
    }
}

/// Resolves an app name or id to its id.
pub(crate) async fn app_id(ctx: &Ctx, app: &str) -> Result<Uid> {
    if let Ok(id) = app.parse::<Uid>() {
        return Ok(id);
    }
    let apps = ctx.client.apps().await?;
    let hits: Vec<_> = apps.iter().filter(|a| a.name == app).filter_map(|a| a.app_id).collect();
    match hits.as_slice() {
        [id] => Ok(*id),
        [] => bail!("no app named '{app}' (see `opctl app list`)"),
        _ => bail!("several apps are named '{app}'; use its id"),
    }
}

/// Resolves a zone name or id to its id.
pub(crate) async fn zone_id(ctx: &Ctx, zone: &str) -> Result<Uid> {
    if let Ok(id) = zone.parse::<Uid>() {
        return Ok(id);
    }
    let zones = ctx.client.zones().await?;
    zones
        .iter()
        .find(|z| z.edge_cloud_zone_name == zone)
        .map(|z| z.edge_cloud_zone_id)
        .ok_or_else(|| anyhow!("no zone named '{zone}' (see `opctl zones`)"))
}

/// Resolves an instance name or id to its id.
async fn instance_id(ctx: &Ctx, inst: &str) -> Result<Uid> {
    if let Ok(id) = inst.parse::<Uid>() {
        return Ok(id);
    }
    let all = ctx.client.instances(None).await?;
    let hits: Vec<_> = all.iter().filter(|i| i.name == inst).map(|i| i.app_instance_id).collect();
    match hits.as_slice() {
        [id] => Ok(*id),
        [] => bail!("no instance named '{inst}' (see `opctl instance list`)"),
        _ => bail!("several instances are named '{inst}'; use its id"),
    }
}

/// Builds a manifest from `opctl app create` flags.
pub(crate) fn manifest_from_flags(a: &AppCreate, provider: String) -> Result<Value> {
    let name = a.name.clone().ok_or_else(|| anyhow!("give the app's name, or --file"))?;
    let version = a.version.clone().ok_or_else(|| anyhow!("--version is required"))?;
    let image = a.image.clone().ok_or_else(|| anyhow!("--image is required"))?;
    let port = a.port.ok_or_else(|| anyhow!("--port is required"))?;
    let env = parse_env(&a.env)?;
    let mut m = json!({
        "name": name, "version": version, "appProvider": provider, "packageType": "CONTAINER",
        "appRepo": {"type": "PUBLICREPO", "imagePath": image},
        "requiredResources": {"infraKind": "container", "numCPU": a.cpu, "memory": a.memory_mb},
        "componentSpec": [{"componentName": "main", "networkInterfaces": [
            {"interfaceId": "main", "protocol": "TCP", "port": port, "visibilityType": "VISIBILITY_EXTERNAL"}]}],
    });
    if !env.is_empty() {
        m["env"] = json!(env);
    }
    if let Some(f) = &a.flavor {
        m["flavor"] = json!(f);
    }
    if let Some(f) = &a.device_key_file {
        let pem = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        m["deviceAuth"] = json!({"publicKeyPem": pem});
    }
    if let Some(i) = &a.instantiation {
        m["requirements"]["instantiation"] = json!(i);
    }
    if !a.footprint_regions.is_empty() {
        m["requirements"]["footprint"] = json!({"regions": a.footprint_regions});
    }
    if !a.platform_services.is_empty() {
        m["requirements"]["platformServices"] = json!(a.platform_services);
    }
    Ok(m)
}

/// Parses repeated `KEY=VALUE`.
fn parse_env(items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| anyhow!("--env '{kv}' is not KEY=VALUE")))
        .collect()
}

fn apps_table(apps: &[AppManifest]) -> comfy_table::Table {
    let mut t = table(&["NAME", "ID", "VERSION", "PROVIDER", "IMAGE"]);
    for a in apps {
        t.add_row(vec![
            a.name.clone(),
            a.app_id.map(|i| i.to_string()).unwrap_or_default(),
            a.spec.version.clone(),
            a.spec.app_provider.clone(),
            a.spec.app_repo.image_path.clone(),
        ]);
    }
    t
}

async fn apps(ctx: &Ctx, cmd: AppCmd) -> Result<()> {
    match cmd {
        AppCmd::List => {
            let apps = ctx.client.apps().await?;
            print(ctx.out, &apps, || apps_table(&apps))
        }
        AppCmd::Get { app } => {
            let a = ctx.client.app(app_id(ctx, &app).await?).await?;
            print(ctx.out, &a, || apps_table(std::slice::from_ref(&a)))
        }
        AppCmd::Create(a) => {
            let manifest = match &a.file {
                Some(f) => {
                    let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
                    serde_yaml::from_str::<Value>(&text).with_context(|| format!("{} is not JSON or YAML", f.display()))?
                }
                None => {
                    let provider = match (&a.provider, ctx.client_org()) {
                        (Some(p), _) => p.clone(),
                        (None, Some(o)) => o,
                        (None, None) => bail!("--provider is required for operator users"),
                    };
                    manifest_from_flags(&a, provider)?
                }
            };
            let id = ctx.client.submit_app(&manifest).await?;
            print(ctx.out, &json!({"appId": id}), || {
                let mut t = table(&["APP ID"]);
                t.add_row(vec![id.to_string()]);
                t
            })
        }
        AppCmd::Delete { app } => {
            ctx.client.delete_app(app_id(ctx, &app).await?).await?;
            eprintln!("deleted app {app}");
            Ok(())
        }
        AppCmd::Place { app, every_edge, max_latency_ms } => {
            let r = ctx.client.place(app_id(ctx, &app).await?, every_edge, max_latency_ms).await?;
            if let (Some(m), Some(lb)) = (&r.method, r.lower_bound) {
                eprintln!("minimum cover: {} zones ({m}; no cover needs fewer than {lb})", r.zones.len());
            }
            if !r.uncovered_cells.is_empty() {
                eprintln!("cells no zone reaches within the bound: {}", r.uncovered_cells.join(", "));
            }
            print(ctx.out, &r, || {
                let mut t = table(&["ZONE", "OUTCOME", "INSTANCE", "REASON"]);
                for z in &r.zones {
                    t.add_row(vec![
                        z.edge_cloud_zone_name.clone(),
                        z.outcome.clone(),
                        z.app_instance_id.map(|i| i.to_string()).unwrap_or_default(),
                        z.reason.clone().unwrap_or_default(),
                    ]);
                }
                t
            })
        }
    }
}

impl Ctx {
    pub(crate) fn client_org(&self) -> Option<String> {
        self.config.token.as_deref().and_then(config::token_org)
    }
}

fn endpoint_urls(i: &AppInstance) -> Vec<String> {
    i.observed.endpoints.iter().map(|e| format!("http://{}:{}/", e.host, e.port)).collect()
}

fn instances_table(list: &[AppInstanceInfo]) -> comfy_table::Table {
    let mut t = table(&["NAME", "ID", "APP", "ZONE", "STATUS", "ENDPOINT"]);
    for i in list {
        let ep = i
            .component_endpoint_info
            .iter()
            .filter_map(|c| {
                let ap = &c.access_points;
                Some(format!("{}:{}", ap.ipv4_addresses.first()?, ap.port))
            })
            .collect::<Vec<_>>()
            .join(" ");
        t.add_row(vec![
            i.name.clone(),
            i.app_instance_id.to_string(),
            i.app_id.to_string(),
            i.edge_cloud_zone_id.to_string(),
            i.status.clone(),
            ep,
        ]);
    }
    t
}

fn spinner(msg: String) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb.set_message(msg);
    pb
}

async fn wait_ready(ctx: &Ctx, id: Uid, timeout: Duration) -> Result<AppInstance> {
    let pb = spinner("waiting for the instance".into());
    let deadline = Instant::now() + timeout;
    loop {
        let inst = ctx.client.instance(id).await?.ok_or_else(|| anyhow!("instance {id} disappeared"))?;
        pb.set_message(state_text(inst.status.state, inst.status.message.as_deref()));
        if inst.status.state == State::Ready {
            pb.finish_and_clear();
            return Ok(inst);
        }
        if Instant::now() > deadline {
            pb.finish_and_clear();
            bail!(
                "instance {id} not Ready after {}s: {}",
                timeout.as_secs(),
                state_text(inst.status.state, inst.status.message.as_deref())
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn instances(ctx: &Ctx, cmd: InstanceCmd) -> Result<()> {
    match cmd {
        InstanceCmd::List { app } => {
            let app = match app {
                Some(a) => Some(app_id(ctx, &a).await?),
                None => None,
            };
            let list = ctx.client.instances(app).await?;
            print(ctx.out, &list, || instances_table(&list))
        }
        InstanceCmd::Get { instance } => {
            let id = instance_id(ctx, &instance).await?;
            let inst = ctx.client.instance(id).await?.ok_or_else(|| anyhow!("no instance {instance}"))?;
            print(ctx.out, &inst, || {
                let mut t = table(&["FIELD", "VALUE"]);
                t.add_row(vec!["name".to_string(), inst.metadata.name.to_string()]);
                t.add_row(vec!["id".to_string(), id.to_string()]);
                t.add_row(vec!["state".to_string(), state_text(inst.status.state, inst.status.message.as_deref())]);
                t.add_row(vec!["endpoints".to_string(), endpoint_urls(&inst).join(" ")]);
                if !inst.observed.services.is_empty() {
                    t.add_row(vec!["platform services".to_string(), inst.observed.services.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")]);
                }
                if let Some(p) = &inst.observed.placement {
                    t.add_row(vec!["placement".to_string(), p.summary.clone()]);
                    for e in &p.edges {
                        t.add_row(vec![format!("edge {}", e.cloudlet), e.outcome.clone()]);
                    }
                }
                for c in &inst.status.conditions {
                    t.add_row(vec![format!("condition {}", c.kind), format!("{} {} (since {})", c.status, c.reason, c.since)]);
                }
                t
            })
        }
        InstanceCmd::Create { name, app, zone, cluster, wait, timeout } => {
            let (app, zone) = (app_id(ctx, &app).await?, zone_id(ctx, &zone).await?);
            let cluster = match cluster {
                Some(c) => Some(cluster::cluster_id(ctx, &c).await?),
                None => None,
            };
            let info = ctx.client.create_instance_in(&name, app, zone, cluster).await?;
            let id = info.app_instance_id;
            if !wait {
                return print(ctx.out, &info, || instances_table(std::slice::from_ref(&info)));
            }
            let inst = wait_ready(ctx, id, Duration::from_secs(timeout)).await?;
            print(ctx.out, &inst, || {
                let mut t = table(&["NAME", "ID", "STATE", "ENDPOINT"]);
                t.add_row(vec![name.clone(), id.to_string(), inst.status.state.to_string(), endpoint_urls(&inst).join(" ")]);
                t
            })
        }
        InstanceCmd::Delete { instance, wait, timeout } => {
            let id = instance_id(ctx, &instance).await?;
            ctx.client.delete_instance(id).await?;
            if wait {
                let pb = spinner(format!("deleting {instance}"));
                let deadline = Instant::now() + Duration::from_secs(timeout);
                while ctx.client.instance(id).await?.is_some() {
                    if Instant::now() > deadline {
                        pb.finish_and_clear();
                        bail!("instance {instance} still there after {timeout}s");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                pb.finish_and_clear();
            }
            eprintln!("deleted instance {instance}");
            Ok(())
        }
        InstanceCmd::Endpoint { instance } => {
            let id = instance_id(ctx, &instance).await?;
            let inst = ctx.client.instance(id).await?.ok_or_else(|| anyhow!("no instance {instance}"))?;
            let url = endpoint_urls(&inst).into_iter().next().ok_or_else(|| anyhow!("instance {instance} has no endpoint yet"))?;
            println!("{url}");
            Ok(())
        }
        InstanceCmd::Logs { instance, tail, follow } => {
            let id = instance_id(ctx, &instance).await?;
            if follow {
                return inspect::follow_logs(ctx, id, tail).await;
            }
            print!("{}", ctx.client.logs(id, tail).await?);
            Ok(())
        }
        InstanceCmd::Exec { instance, tty, command } => inspect::exec(ctx, instance_id(ctx, &instance).await?, command, tty).await,
        InstanceCmd::Debug { instance } => inspect::debug(ctx, instance_id(ctx, &instance).await?).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_and_env_parsing() {
        let p = parse_polygon("48.1,2.2; 48.2,2.3;48.0,-2.4").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[2].longitude, -2.4);
        assert!(parse_polygon("48.1").is_err());
        let e = parse_env(&["A=1".into(), "B=x=y".into()]).unwrap();
        assert_eq!(e["B"], "x=y");
        assert!(parse_env(&["nope".into()]).is_err());
    }

    #[test]
    fn flags_make_a_valid_manifest() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "opctl", "app", "create", "hello", "--version", "1", "--image", "img:1", "--port", "8080", "--env", "K=V",
        ])
        .unwrap();
        let Cmd::App { cmd: AppCmd::Create(a) } = cli.cmd else { panic!("parsed") };
        let m = manifest_from_flags(&a, "acme_games".into()).unwrap();
        let mut rest = m.clone();
        rest.as_object_mut().unwrap().remove("name");
        let spec: op_types::specs::AppSpec = serde_json::from_value(rest).unwrap();
        use op_types::Validate;
        assert_eq!(spec.validate(), Ok(()));
        assert_eq!(spec.env["K"], "V");
    }
}
