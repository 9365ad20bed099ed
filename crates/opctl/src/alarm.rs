//! `opctl alarm`: alarms firing and resolved, the webhooks that receive them, and the alert
//! policies that raise them on resource use.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::Subcommand;
use op_client::Method;
use op_types::alarm::{AlarmName, AlarmReceiverView, AlarmSeverity, AlarmView, AlertPolicySpec};
use op_types::views::Delivery;
use op_types::{Object, Uid};
use serde_json::json;

use crate::output::{print, table};
use crate::{read_secret, Ctx};

/// What `opctl alarm` does.
#[derive(Subcommand)]
pub enum AlarmCmd {
    /// Alarms firing now and resolved in the last hour, newest first.
    List {
        /// Only firing ones.
        #[arg(long, conflicts_with = "resolved")]
        firing: bool,
        /// Only resolved ones.
        #[arg(long)]
        resolved: bool,
    },
    /// Webhooks that receive alarms (Alertmanager's webhook format).
    Receiver {
        #[command(subcommand)]
        cmd: ReceiverCmd,
    },
    /// Thresholds on instances' CPU and memory that raise alarms.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
}

/// `opctl alarm receiver`.
#[derive(Subcommand)]
pub enum ReceiverCmd {
    /// Register one.
    Create {
        /// Its name.
        name: String,
        /// Where alarms are POSTed.
        #[arg(long)]
        url: String,
        /// Only these alarms (repeat): CloudletDown, InstanceDown, CpuHigh, MemoryHigh.
        #[arg(long = "alarm")]
        alarms: Vec<String>,
        /// Only alarms at least this severe: info, warning, critical.
        #[arg(long)]
        min_severity: Option<String>,
        /// Only this app's instances.
        #[arg(long)]
        app: Option<Uid>,
        /// A file holding a secret (16+ characters) that signs each delivery
        /// (`X-OP-Signature-256`).
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// The organization (default: the one you act for; operators: the operator's own).
        #[arg(long)]
        org: Option<String>,
    },
    /// List them, with their last delivery.
    List,
    /// Send a test alarm now and say how it went.
    Test {
        /// Its name or id.
        receiver: String,
    },
    /// Remove one.
    Delete {
        /// Its name or id.
        receiver: String,
    },
}

/// `opctl alarm policy`.
#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Create one.
    Create {
        /// Its name.
        name: String,
        /// CPU use, in percent of the flavor's vCPUs, that raises CpuHigh.
        #[arg(long)]
        cpu: Option<u32>,
        /// Memory use, in percent of the limit, that raises MemoryHigh.
        #[arg(long)]
        memory: Option<u32>,
        /// How long the threshold must be passed, seconds.
        #[arg(long = "for", default_value_t = 30)]
        for_seconds: u32,
        /// info, warning or critical.
        #[arg(long, default_value = "warning")]
        severity: String,
        /// Only this app's instances.
        #[arg(long)]
        app: Option<Uid>,
        /// The organization (default: the one you act for; operators: every instance).
        #[arg(long)]
        org: Option<String>,
    },
    /// List them.
    List,
    /// Remove one (its alarms resolve).
    Delete {
        /// Its name or id.
        policy: String,
    },
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, s: &str, allowed: &str) -> Result<T> {
    serde_json::from_value(json!(s)).map_err(|_| anyhow!("{what} must be one of {allowed}"))
}

fn ago(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Runs `opctl alarm`.
pub async fn run(ctx: &Ctx, cmd: AlarmCmd) -> Result<()> {
    match cmd {
        AlarmCmd::List { firing, resolved } => {
            let q = if firing { "?state=firing" } else if resolved { "?state=resolved" } else { "" };
            let v: Vec<AlarmView> = ctx.client.call(Method::GET, &format!("/op/v1/alarms{q}"), None).await?;
            print(ctx.out, &v, || {
                let mut t = table(&["STATE", "ALARM", "SEVERITY", "OBJECT", "ORG", "SINCE", "RESOLVED", "SUMMARY"]);
                for a in &v {
                    t.add_row(vec![
                        a.state.as_str().to_string(),
                        a.spec.alertname.as_str().to_string(),
                        a.spec.severity.as_str().to_string(),
                        format!("{} {}", a.spec.object_kind, a.spec.object_name),
                        a.organization.as_ref().map_or_else(|| "-".into(), ToString::to_string),
                        ago(a.spec.starts_at),
                        a.ends_at.map_or_else(|| "-".into(), ago),
                        a.spec.summary.clone(),
                    ]);
                }
                t
            })
        }
        AlarmCmd::Receiver { cmd } => receivers(ctx, cmd).await,
        AlarmCmd::Policy { cmd } => policies(ctx, cmd).await,
    }
}

/// The id of the one receiver or policy the caller sees by `name_or_id`.
fn one(what: &str, name_or_id: &str, found: impl Iterator<Item = (Uid, String)>) -> Result<Uid> {
    if let Ok(id) = name_or_id.parse::<Uid>() {
        return Ok(id);
    }
    let ids: Vec<Uid> = found.filter(|(_, n)| n == name_or_id).map(|(id, _)| id).collect();
    match ids.as_slice() {
        [id] => Ok(*id),
        [] => Err(anyhow!("no {what} named {name_or_id}; see `opctl alarm {what} list`")),
        _ => Err(anyhow!("{} {what}s are named {name_or_id} (in different organizations); give its id", ids.len())),
    }
}

async fn receiver_id(ctx: &Ctx, name_or_id: &str) -> Result<Uid> {
    let v: Vec<AlarmReceiverView> = if name_or_id.parse::<Uid>().is_ok() { Vec::new() } else { ctx.client.call(Method::GET, "/op/v1/alarmreceivers", None).await? };
    one("receiver", name_or_id, v.into_iter().map(|r| (r.id, r.name.to_string())))
}

fn delivery(d: Option<&Delivery>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{} {} ({})", if d.delivered { "ok" } else { "FAILED" }, d.outcome, d.at))
}

async fn receivers(ctx: &Ctx, cmd: ReceiverCmd) -> Result<()> {
    match cmd {
        ReceiverCmd::Create { name, url, alarms, min_severity, app, secret_file, org } => {
            let alarms: Vec<AlarmName> =
                alarms.iter().map(|a| parse("--alarm", a, "CloudletDown, InstanceDown, CpuHigh, MemoryHigh")).collect::<Result<_>>()?;
            let min: Option<AlarmSeverity> = min_severity.map(|s| parse("--min-severity", &s, "info, warning, critical")).transpose()?;
            let secret = secret_file.map(|f| read_secret(&f)).transpose()?;
            let body = json!({"name": name, "organization": org, "spec": {"url": url, "alarms": alarms, "minSeverity": min, "appId": app, "secret": secret}});
            let r: AlarmReceiverView = ctx.client.call(Method::POST, "/op/v1/alarmreceivers", Some(&body)).await?;
            eprintln!("receiver {} registered (id {}); try it with: opctl alarm receiver test {}", r.name, r.id, r.name);
            Ok(())
        }
        ReceiverCmd::List => {
            let v: Vec<AlarmReceiverView> = ctx.client.call(Method::GET, "/op/v1/alarmreceivers", None).await?;
            print(ctx.out, &v, || {
                let mut t = table(&["ID", "NAME", "ORG", "URL", "ALARMS", "SIGNED", "LAST DELIVERY"]);
                for r in &v {
                    let alarms = if r.spec.alarms.is_empty() { "all".to_string() } else { r.spec.alarms.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(",") };
                    t.add_row(vec![
                        r.id.to_string(),
                        r.name.to_string(),
                        r.organization.as_ref().map_or_else(|| "(operator)".into(), ToString::to_string),
                        r.spec.url.clone(),
                        alarms,
                        if r.has_secret { "yes" } else { "no" }.into(),
                        delivery(r.last_delivery.as_ref()),
                    ]);
                }
                t
            })
        }
        ReceiverCmd::Test { receiver } => {
            let id = receiver_id(ctx, &receiver).await?;
            let d: Delivery = ctx.client.call(Method::POST, &format!("/op/v1/alarmreceivers/{id}/test"), None).await?;
            if d.delivered {
                eprintln!("delivered: {}", d.outcome);
                Ok(())
            } else {
                Err(anyhow!("the receiver did not take the test alarm: {}", d.outcome))
            }
        }
        ReceiverCmd::Delete { receiver } => {
            let id = receiver_id(ctx, &receiver).await?;
            ctx.client.call_text(Method::DELETE, &format!("/op/v1/alarmreceivers/{id}"), None).await?;
            eprintln!("receiver {id} removed");
            Ok(())
        }
    }
}

async fn policies(ctx: &Ctx, cmd: PolicyCmd) -> Result<()> {
    match cmd {
        PolicyCmd::Create { name, cpu, memory, for_seconds, severity, app, org } => {
            let severity: AlarmSeverity = parse("--severity", &severity, "info, warning, critical")?;
            let body = json!({"name": name, "organization": org, "spec": {"cpuPercent": cpu, "memoryPercent": memory, "forSeconds": for_seconds, "severity": severity, "appId": app}});
            let p: Object<AlertPolicySpec> = ctx.client.call(Method::POST, "/op/v1/alertpolicies", Some(&body)).await?;
            eprintln!("alert policy {} created (id {})", p.metadata.name, p.metadata.uid);
            Ok(())
        }
        PolicyCmd::List => {
            let v: Vec<Object<AlertPolicySpec>> = ctx.client.call(Method::GET, "/op/v1/alertpolicies", None).await?;
            print(ctx.out, &v, || {
                let mut t = table(&["ID", "NAME", "ORG", "CPU %", "MEMORY %", "FOR (s)", "SEVERITY", "APP"]);
                for p in &v {
                    let pct = |x: Option<u32>| x.map_or_else(|| "-".into(), |x| x.to_string());
                    t.add_row(vec![
                        p.metadata.uid.to_string(),
                        p.metadata.name.to_string(),
                        p.metadata.organization.as_ref().map_or_else(|| "(operator)".into(), ToString::to_string),
                        pct(p.spec.cpu_percent),
                        pct(p.spec.memory_percent),
                        p.spec.for_seconds.to_string(),
                        p.spec.severity.as_str().into(),
                        p.spec.app_id.map_or_else(|| "all".into(), |a| a.to_string()),
                    ]);
                }
                t
            })
        }
        PolicyCmd::Delete { policy } => {
            let v: Vec<Object<AlertPolicySpec>> =
                if policy.parse::<Uid>().is_ok() { Vec::new() } else { ctx.client.call(Method::GET, "/op/v1/alertpolicies", None).await? };
            let id = one("policy", &policy, v.into_iter().map(|p| (p.metadata.uid, p.metadata.name.to_string())))?;
            ctx.client.call_text(Method::DELETE, &format!("/op/v1/alertpolicies/{id}"), None).await?;
            eprintln!("alert policy {id} removed");
            Ok(())
        }
    }
}
