//! `opctl serverless`: a serverless app in one command, where it runs now and why, its
//! policy, and the points of presence devices reach it at.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use op_types::serverless::{PointOfPresence, ServerlessPolicy, ServerlessProtocol, ServerlessStatus};
use op_types::Name;
use op_client::Method;
use serde_json::json;

use crate::output::{print, table};
use crate::{app_id, manifest_from_flags, AppCreate, Ctx};

/// Serverless commands.
#[derive(Subcommand)]
pub enum ServerlessCmd {
    /// Onboard a container image as a serverless app: no zone, no size to choose; it runs
    /// where its users are, only while they are there.
    Create(Box<Create>),
    /// Where the app runs now and why, its traffic per zone, and its latest events.
    Show {
        /// The app (name or id).
        app: String,
    },
    /// Change the app's policy (the flags given; the rest is kept).
    Policy {
        /// The app (name or id).
        app: String,
        #[command(flatten)]
        policy: PolicyFlags,
    },
    /// The points of presence: where devices send the apps' traffic.
    Pops,
}

/// `opctl serverless create`.
#[derive(Args)]
pub struct Create {
    /// App name.
    name: String,
    /// Image reference, e.g. localhost/op-sample-app:latest.
    #[arg(long)]
    image: String,
    /// Container port the app listens on.
    #[arg(long)]
    port: u16,
    #[arg(long, default_value = "1.0")]
    version: String,
    /// Organization (default: yours).
    #[arg(long)]
    provider: Option<String>,
    #[arg(long, default_value = "500m")]
    cpu: String,
    #[arg(long, default_value_t = 128)]
    memory_mb: u32,
    /// KEY=VALUE, repeatable.
    #[arg(long = "env")]
    env: Vec<String>,
    /// Public key (PEM) of the app's device clients' tokens (for UNI sessions).
    #[arg(long)]
    device_key_file: Option<PathBuf>,
    #[command(flatten)]
    policy: PolicyFlags,
}

/// The policy's flags.
#[derive(Args, Default)]
pub struct PolicyFlags {
    /// Connections one instance takes before another starts.
    #[arg(long)]
    concurrency: Option<u32>,
    /// Concurrent sessions at a point of presence that start an instance there.
    #[arg(long)]
    session_trigger: Option<u32>,
    /// Instances kept with no traffic.
    #[arg(long)]
    min: Option<u32>,
    /// Instances at most.
    #[arg(long)]
    max: Option<u32>,
    /// Seconds without a connection before an instance stops.
    #[arg(long)]
    idle: Option<u32>,
    /// Zone of the homebase.
    #[arg(long)]
    homebase: Option<String>,
    /// Host the app answers on (default <app>.<org>.serverless).
    #[arg(long)]
    host: Option<String>,
    /// Only requests under this path.
    #[arg(long)]
    path_prefix: Option<String>,
    /// Plain TCP instead of HTTP.
    #[arg(long)]
    tcp: bool,
    /// Devices must present a UNI session token.
    #[arg(long)]
    require_session: bool,
}

impl PolicyFlags {
    /// `p` with the flags given applied.
    fn apply(&self, mut p: ServerlessPolicy) -> Result<ServerlessPolicy> {
        if let Some(v) = self.concurrency {
            p.concurrency_per_instance = v;
        }
        if let Some(v) = self.session_trigger {
            p.pop_session_trigger = v;
        }
        if let Some(v) = self.min {
            p.min_instances = v;
        }
        if let Some(v) = self.max {
            p.max_instances = v;
        }
        if let Some(v) = self.idle {
            p.idle_seconds = v;
        }
        if let Some(z) = &self.homebase {
            p.homebase = Some(Name::new(z.clone()).map_err(|e| anyhow!("--homebase: {e}"))?);
        }
        if self.host.is_some() {
            p.host.clone_from(&self.host);
        }
        if self.path_prefix.is_some() {
            p.path_prefix.clone_from(&self.path_prefix);
        }
        if self.tcp {
            p.protocol = ServerlessProtocol::Tcp;
        }
        if self.require_session {
            p.require_session = true;
        }
        Ok(p)
    }
}

fn pops_table(pops: &[PointOfPresence]) -> comfy_table::Table {
    let mut t = table(&["ZONE", "HTTP", "POINT OF PRESENCE"]);
    for p in pops {
        t.add_row(vec![p.zone.to_string(), p.http.clone(), p.name.as_ref().map(ToString::to_string).unwrap_or_default()]);
    }
    t
}

/// Runs a serverless command.
pub async fn run(ctx: &Ctx, cmd: ServerlessCmd) -> Result<()> {
    match cmd {
        ServerlessCmd::Create(c) => {
            let provider = match (&c.provider, ctx.client_org()) {
                (Some(p), _) => p.clone(),
                (None, Some(o)) => o,
                (None, None) => anyhow::bail!("--provider is required for operator users"),
            };
            let a = AppCreate {
                name: Some(c.name.clone()),
                file: None,
                version: Some(c.version.clone()),
                image: Some(c.image.clone()),
                port: Some(c.port),
                provider: Some(provider),
                cpu: c.cpu.clone(),
                memory_mb: c.memory_mb,
                flavor: None,
                env: c.env.clone(),
                device_key_file: c.device_key_file.clone(),
                instantiation: None,
                footprint_regions: Vec::new(),
                platform_services: Vec::new(),
            };
            let mut m = manifest_from_flags(&a, a.provider.clone().unwrap_or_default())?;
            m["requirements"]["instantiation"] = json!("serverless");
            m["requirements"]["serverless"] = serde_json::to_value(c.policy.apply(ServerlessPolicy::default())?)?;
            let id = ctx.client.submit_app(&m).await?;
            let st: ServerlessStatus = ctx.client.call(Method::GET, &format!("/op/v1/apps/{id}/serverless"), None).await?;
            let pops: Vec<PointOfPresence> = ctx.client.call(Method::GET, "/op/v1/serverless/pops", None).await?;
            print(ctx.out, &json!({"appId": id, "host": st.host, "pointsOfPresence": pops}), || {
                let mut t = table(&["APP ID", "HOST", "POLICY VERSION", "POINTS OF PRESENCE"]);
                t.add_row(vec![id.to_string(), st.host.clone(), st.policy.version.to_string(), pops.iter().map(|p| format!("{} {}", p.zone, p.http)).collect::<Vec<_>>().join("\n")]);
                t
            })
        }
        ServerlessCmd::Show { app } => {
            let id = app_id(ctx, &app).await?;
            let st: ServerlessStatus = ctx.client.call(Method::GET, &format!("/op/v1/apps/{id}/serverless"), None).await?;
            print(ctx.out, &st, || {
                let mut t = table(&["WHAT", "ZONE", "STATE / TRAFFIC", "WHY"]);
                let p = &st.policy;
                t.add_row(vec![
                    format!("policy v{}", p.version),
                    st.homebase.as_ref().map(|h| format!("homebase {h}")).unwrap_or_default(),
                    format!("host {}", st.host),
                    format!(
                        "{} conn/instance, {} sessions start a local instance, {}..{} instances, idle {} s",
                        p.concurrency_per_instance, p.pop_session_trigger, p.min_instances, p.max_instances, p.idle_seconds
                    ),
                ]);
                for e in &st.endpoints {
                    t.add_row(vec!["endpoint".into(), e.zone.to_string(), e.address.clone(), "where devices in this zone connect".into()]);
                }
                if st.instances.is_empty() {
                    t.add_row(vec!["no instance".into(), String::new(), "scaled to zero".into(), "the next connection starts one".into()]);
                }
                for i in &st.instances {
                    t.add_row(vec![format!("instance {}", i.app_instance_id), i.zone.to_string(), format!("{}, {} connections", i.state, i.connections), i.reason.clone()]);
                }
                for z in &st.traffic {
                    let x = &z.traffic;
                    t.add_row(vec![
                        "traffic".into(),
                        z.zone.to_string(),
                        format!("{} connections, {} sessions, {} devices", x.connections, x.sessions, x.devices),
                        format!("{} connections in all, {} held for a start, {} forwarded", x.connections_total, x.held_total, x.forwarded_total),
                    ]);
                }
                for e in st.events.iter().rev().take(10) {
                    t.add_row(vec![e.kind.clone(), e.zone.as_ref().map(ToString::to_string).unwrap_or_default(), e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), e.reason.clone()]);
                }
                t
            })
        }
        ServerlessCmd::Policy { app, policy } => {
            let id = app_id(ctx, &app).await?;
            let st: ServerlessStatus = ctx.client.call(Method::GET, &format!("/op/v1/apps/{id}/serverless"), None).await?;
            let p = policy.apply(st.policy)?;
            let new: ServerlessPolicy = ctx.client.call(Method::PUT, &format!("/op/v1/apps/{id}/serverless"), Some(&serde_json::to_value(&p)?)).await?;
            print(ctx.out, &new, || {
                let mut t = table(&["POLICY VERSION", "CONCURRENCY", "SESSION TRIGGER", "MIN", "MAX", "IDLE S"]);
                t.add_row(vec![
                    new.version.to_string(),
                    new.concurrency_per_instance.to_string(),
                    new.pop_session_trigger.to_string(),
                    new.min_instances.to_string(),
                    new.max_instances.to_string(),
                    new.idle_seconds.to_string(),
                ]);
                t
            })
        }
        ServerlessCmd::Pops => {
            let pops: Vec<PointOfPresence> = ctx.client.call(Method::GET, "/op/v1/serverless/pops", None).await?;
            print(ctx.out, &pops, || pops_table(&pops))
        }
    }
}
