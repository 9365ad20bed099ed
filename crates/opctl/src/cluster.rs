//! `opctl cluster` and `opctl lb`: an organization's containers networked together on one
//! cloudlet of a zone, and load balancers in front of them.

use anyhow::{anyhow, Result};
use clap::Subcommand;
use op_client::Method;
use op_types::cluster::{ClusterView, LoadBalancerView};
use op_types::egress::{EffectiveEgress, OutboundRule};
use op_types::Uid;
use serde_json::json;

use crate::output::{print, table};
use crate::Ctx;

/// `opctl cluster`.
#[derive(Subcommand)]
pub enum ClusterCmd {
    /// Create one in a zone (outbound traffic denied unless --outbound or --allow-out).
    Create {
        /// Its name.
        name: String,
        /// The zone's name.
        #[arg(long)]
        zone: String,
        /// Let its containers open connections outside it.
        #[arg(long)]
        outbound: bool,
        /// Let out only this (repeat), through the cluster's egress gateway, e.g.
        /// tcp:10.0.0.0/8:443 or tcp:192.0.2.0/24:8000-8100.
        #[arg(long, conflicts_with = "outbound")]
        allow_out: Vec<String>,
    },
    /// List them with their members and health.
    List,
    /// Allow outbound traffic (--outbound), some of it (--allow-out), or none (neither).
    Update {
        /// Its name or id.
        cluster: String,
        /// Let everything out.
        #[arg(long)]
        outbound: bool,
        /// Let out only this (repeat), e.g. tcp:10.0.0.0/8:443.
        #[arg(long, conflicts_with = "outbound")]
        allow_out: Vec<String>,
    },
    /// Delete one (once its instances and load balancers are gone).
    Delete {
        /// Its name or id.
        cluster: String,
    },
}

/// `opctl lb`.
#[derive(Subcommand)]
pub enum LbCmd {
    /// Create one: a front-end port over a cluster's instances of an app.
    Create {
        /// Its name.
        name: String,
        /// The cluster's name or id.
        #[arg(long)]
        cluster: String,
        /// The app's id.
        #[arg(long)]
        app: Uid,
        /// The app's port.
        #[arg(long)]
        port: u16,
        /// The front-end port (default: one is picked).
        #[arg(long)]
        frontend_port: Option<u16>,
    },
    /// List them with their front ends and backends' health.
    List,
    /// Delete one.
    Delete {
        /// Its name or id.
        lb: String,
    },
}

async fn clusters(ctx: &Ctx) -> Result<Vec<ClusterView>> {
    Ok(ctx.client.call(Method::GET, "/op/v1/clusters", None).await?)
}

async fn cluster_named(ctx: &Ctx, s: &str) -> Result<ClusterView> {
    clusters(ctx).await?.into_iter().find(|c| c.id.to_string() == s || c.name.as_str() == s).ok_or_else(|| anyhow!("no cluster {s}; see `opctl cluster list`"))
}

/// The id of cluster `s` (a name or an id).
pub async fn cluster_id(ctx: &Ctx, s: &str) -> Result<Uid> {
    Ok(cluster_named(ctx, s).await?.id)
}

/// Parses `--allow-out` rules.
pub fn outbound_rules(given: &[String]) -> Result<Vec<OutboundRule>> {
    given.iter().map(|r| r.parse::<OutboundRule>().map_err(|e| anyhow!("--allow-out {e}"))).collect()
}

/// What may leave a cluster, for its table row.
fn egress_cell(c: &ClusterView) -> String {
    match &c.egress {
        None => "-".into(),
        Some(EffectiveEgress::All) => "allowed".into(),
        Some(EffectiveEgress::Nothing) => "denied".into(),
        Some(EffectiveEgress::Rules(layers)) => {
            let each: Vec<String> = layers.iter().map(|l| l.rules.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")).collect();
            format!("only {}", each.join(" and "))
        }
    }
}

/// Runs `opctl cluster`.
pub async fn run(ctx: &Ctx, cmd: ClusterCmd) -> Result<()> {
    match cmd {
        ClusterCmd::Create { name, zone, outbound, allow_out } => {
            let rules = outbound_rules(&allow_out)?;
            let body = json!({"name": name, "spec": {"edgeCloudZoneId": crate::zone_id(ctx, &zone).await?, "outboundAllowed": outbound, "outboundRules": rules}});
            let c: ClusterView = ctx.client.call(Method::POST, "/op/v1/clusters", Some(&body)).await?;
            eprintln!("cluster {} created (id {}); deploy into it with: opctl instance create <name> --app <app> --zone {zone} --cluster {}", c.name, c.id, c.name);
            Ok(())
        }
        ClusterCmd::List => {
            let v = clusters(ctx).await?;
            print(ctx.out, &v, || {
                let mut t = table(&["NAME", "ID", "STATE", "OUTBOUND", "HEALTH", "MEMBERS"]);
                for c in &v {
                    let members = c.members.iter().map(|m| format!("{} ({:?})", m.name, m.health)).collect::<Vec<_>>().join(", ");
                    t.add_row(vec![c.name.to_string(), c.id.to_string(), c.state.clone(), egress_cell(c), format!("{:?}", c.health), members]);
                }
                t
            })
        }
        ClusterCmd::Update { cluster, outbound, allow_out } => {
            let c = cluster_named(ctx, &cluster).await?;
            let mut spec = c.spec.clone();
            spec.outbound_allowed = outbound;
            spec.outbound_rules = outbound_rules(&allow_out)?;
            let _: ClusterView = ctx.client.call(Method::PUT, &format!("/op/v1/clusters/{}", c.id), Some(&json!({"spec": spec}))).await?;
            let what = match (outbound, allow_out.is_empty()) {
                (true, _) => "allowed".to_string(),
                (false, false) => format!("only {}", allow_out.join(", ")),
                (false, true) => "denied".to_string(),
            };
            eprintln!("cluster {}: outbound traffic {what}", c.name);
            Ok(())
        }
        ClusterCmd::Delete { cluster } => {
            let c = cluster_named(ctx, &cluster).await?;
            ctx.client.call_text(Method::DELETE, &format!("/op/v1/clusters/{}", c.id), None).await?;
            eprintln!("cluster {} is being deleted", c.name);
            Ok(())
        }
    }
}

/// Runs `opctl lb`.
pub async fn run_lb(ctx: &Ctx, cmd: LbCmd) -> Result<()> {
    match cmd {
        LbCmd::Create { name, cluster, app, port, frontend_port } => {
            let c = cluster_named(ctx, &cluster).await?;
            let body = json!({"name": name, "spec": {"clusterId": c.id, "appId": app, "backendPort": port, "frontendPort": frontend_port}});
            let lb: LoadBalancerView = ctx.client.call(Method::POST, "/op/v1/loadbalancers", Some(&body)).await?;
            println!("{}", lb.frontend.unwrap_or_default());
            Ok(())
        }
        LbCmd::List => {
            let v: Vec<LoadBalancerView> = ctx.client.call(Method::GET, "/op/v1/loadbalancers", None).await?;
            print(ctx.out, &v, || {
                let mut t = table(&["NAME", "ID", "FRONT END", "BACKEND PORT", "BACKENDS"]);
                for l in &v {
                    let b = l.backends.iter().map(|b| format!("{} {} ({} open)", b.name, if b.healthy { "healthy" } else { "DOWN" }, b.active_connections)).collect::<Vec<_>>().join(", ");
                    t.add_row(vec![l.name.to_string(), l.id.to_string(), l.frontend.clone().unwrap_or_else(|| "-".into()), l.spec.backend_port.to_string(), b]);
                }
                t
            })
        }
        LbCmd::Delete { lb } => {
            let v: Vec<LoadBalancerView> = ctx.client.call(Method::GET, "/op/v1/loadbalancers", None).await?;
            let l = v.into_iter().find(|l| l.id.to_string() == lb || l.name.as_str() == lb).ok_or_else(|| anyhow!("no load balancer {lb}"))?;
            ctx.client.call_text(Method::DELETE, &format!("/op/v1/loadbalancers/{}", l.id), None).await?;
            eprintln!("load balancer {} removed", l.name);
            Ok(())
        }
    }
}
