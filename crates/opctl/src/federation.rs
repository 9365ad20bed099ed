//! `opctl federation`: the operator's side of federation with other operators (GSMA EWBI):
//! partners that call us, peers we call, and settlement.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use op_client::Method;
use serde_json::{json, Value};

use crate::output::{print, table};
use crate::Ctx;

/// Federation commands.
#[derive(Subcommand)]
pub enum FederationCmd {
    /// Operators allowed to call our EWBI (partner role).
    Partner {
        #[command(subcommand)]
        cmd: PartnerCmd,
    },
    /// Operators whose EWBI we call (originating role).
    Peer {
        #[command(subcommand)]
        cmd: PeerCmd,
    },
    /// Federation contexts partners created with us.
    Contexts,
    /// Usage records with a peer or partner (settlement).
    Usage {
        /// The peer's or partner's name.
        counterpart: String,
        /// Start (RFC 3339); default 24 h before `--to`.
        #[arg(long)]
        from: Option<String>,
        /// End (RFC 3339); default the start of this hour.
        #[arg(long)]
        to: Option<String>,
        /// Print CSV instead of a table.
        #[arg(long)]
        csv: bool,
        /// Compare with the partner's own report (peers only) and show every difference.
        #[arg(long, conflicts_with = "csv")]
        check: bool,
    },
}

/// Partner commands.
#[derive(Subcommand)]
pub enum PartnerCmd {
    /// Register a partner; prints its client secret once.
    Create {
        /// Name.
        name: String,
        /// Its OAuth2 client id.
        #[arg(long)]
        client_id: String,
        /// The `origOPFederationId` it will present.
        #[arg(long)]
        federation_id: String,
        /// A zone to offer, `zone[=alias]`; repeat for several.
        #[arg(long = "zone", required = true)]
        zones: Vec<String>,
        /// CA (PEM) of its callback endpoints.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// vCPUs reserved for it in each offered zone.
        #[arg(long, default_value_t = 0)]
        reserved_vcpus: u32,
        /// Memory (MiB) reserved for it in each offered zone.
        #[arg(long, default_value_t = 0)]
        reserved_memory_mb: u64,
    },
    /// List partners.
    List,
    /// Show one partner.
    Get {
        /// Name.
        name: String,
    },
    /// Remove a partner (its tokens stop working; its federations end).
    Delete {
        /// Name.
        name: String,
    },
}

/// Peer commands.
#[derive(Subcommand)]
pub enum PeerCmd {
    /// Federate with a partner's EWBI.
    Create {
        /// Name.
        name: String,
        /// The partner's EWBI root (`https://.../operatorplatform/federation/v1`).
        #[arg(long)]
        url: String,
        /// Our client id there.
        #[arg(long)]
        client_id: String,
        /// File holding our client secret there.
        #[arg(long)]
        client_secret_file: PathBuf,
        /// CA (PEM) of the partner's certificate.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Our federation id as the partner registered it.
        #[arg(long)]
        federation_id: String,
        /// The region our copies of its zones go in.
        #[arg(long, default_value = "partners")]
        region: String,
    },
    /// List peers with their federation state.
    List,
    /// Show one peer.
    Get {
        /// Name.
        name: String,
    },
    /// End the federation with a peer.
    Delete {
        /// Name.
        name: String,
    },
}

fn read(path: &Option<PathBuf>) -> Result<Option<String>> {
    path.as_ref().map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))).transpose()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Runs a federation command.
pub async fn run(ctx: &Ctx, cmd: FederationCmd) -> Result<()> {
    let c = &ctx.client;
    match cmd {
        FederationCmd::Partner { cmd } => match cmd {
            PartnerCmd::Create { name, client_id, federation_id, zones, ca_file, reserved_vcpus, reserved_memory_mb } => {
                let zones: Vec<Value> = zones
                    .iter()
                    .map(|z| {
                        let (zone, alias) = z.split_once('=').map_or((z.as_str(), None), |(a, b)| (a, Some(b)));
                        json!({"zone": zone, "alias": alias, "reservedVcpus": reserved_vcpus, "reservedMemoryMb": reserved_memory_mb})
                    })
                    .collect();
                let body = json!({"name": name, "spec": {"clientId": client_id, "federationId": federation_id, "caPem": read(&ca_file)?, "zones": zones}});
                let r: Value = c.call(Method::POST, "/op/v1/federation/partners", Some(&body)).await?;
                print(ctx.out, &r, || {
                    let mut t = table(&["PARTNER", "CLIENT_ID", "CLIENT_SECRET (shown once)"]);
                    t.add_row(vec![name.clone(), client_id.clone(), s(&r["clientSecret"])]);
                    t
                })
            }
            PartnerCmd::List => {
                let r: Value = c.call(Method::GET, "/op/v1/federation/partners", None).await?;
                print(ctx.out, &r, || {
                    let mut t = table(&["NAME", "CLIENT_ID", "FEDERATION_ID", "ZONES"]);
                    for p in r.as_array().into_iter().flatten() {
                        let zones: Vec<String> = p["spec"]["zones"].as_array().into_iter().flatten().map(|z| format!("{}={}", s(&z["zone"]), s(&z["alias"]))).collect();
                        t.add_row(vec![s(&p["metadata"]["name"]), s(&p["spec"]["clientId"]), s(&p["spec"]["federationId"]), zones.join(", ")]);
                    }
                    t
                })
            }
            PartnerCmd::Get { name } => {
                let r: Value = c.call(Method::GET, &format!("/op/v1/federation/partners/{name}"), None).await?;
                print(ctx.out, &r, || {
                    let mut t = table(&["ZONE", "OFFERED_AS", "RESERVED_VCPUS", "RESERVED_MB"]);
                    for z in r["spec"]["zones"].as_array().into_iter().flatten() {
                        t.add_row(vec![s(&z["zone"]), s(&z["alias"]), s(&z["reservedVcpus"]), s(&z["reservedMemoryMb"])]);
                    }
                    t
                })
            }
            PartnerCmd::Delete { name } => {
                c.call_text(Method::DELETE, &format!("/op/v1/federation/partners/{name}"), None).await?;
                println!("partner {name} removed");
                Ok(())
            }
        },
        FederationCmd::Peer { cmd } => match cmd {
            PeerCmd::Create { name, url, client_id, client_secret_file, ca_file, federation_id, region } => {
                let secret = std::fs::read_to_string(&client_secret_file).with_context(|| format!("reading {}", client_secret_file.display()))?;
                let body = json!({"name": name, "spec": {"url": url, "clientId": client_id, "clientSecret": secret.trim(), "caPem": read(&ca_file)?,
                    "federationId": federation_id, "region": region}});
                let r: Value = c.call(Method::POST, "/op/v1/federation/peers", Some(&body)).await?;
                print(ctx.out, &r, || {
                    let mut t = table(&["PEER", "URL", "STATE"]);
                    t.add_row(vec![name.clone(), url.clone(), "federating".into()]);
                    t
                })
            }
            PeerCmd::List => {
                let r: Value = c.call(Method::GET, "/op/v1/federation/peers", None).await?;
                print(ctx.out, &r, || {
                    let mut t = table(&["NAME", "STATE", "CONTEXT", "ZONES", "MESSAGE"]);
                    for p in r.as_array().into_iter().flatten() {
                        let zones: Vec<String> = p["observed"]["subscribed"].as_object().into_iter().flatten().map(|(k, _)| k.clone()).collect();
                        t.add_row(vec![s(&p["metadata"]["name"]), s(&p["status"]["state"]), s(&p["observed"]["contextId"]), zones.join(", "), s(&p["status"]["message"])]);
                    }
                    t
                })
            }
            PeerCmd::Get { name } => {
                let r: Value = c.call(Method::GET, &format!("/op/v1/federation/peers/{name}"), None).await?;
                print(ctx.out, &r, || {
                    let mut t = table(&["PARTNER_ZONE", "LOCATION", "GEOGRAPHY", "SUBSCRIBED"]);
                    for (id, z) in r["observed"]["offeredZones"].as_object().into_iter().flatten() {
                        let sub = r["observed"]["subscribed"].get(id).is_some();
                        t.add_row(vec![id.clone(), s(&z["geolocation"]), s(&z["geographyDetails"]), if sub { "yes" } else { "no" }.into()]);
                    }
                    t
                })
            }
            PeerCmd::Delete { name } => {
                c.call_text(Method::DELETE, &format!("/op/v1/federation/peers/{name}"), None).await?;
                println!("federation with {name} is ending");
                Ok(())
            }
        },
        FederationCmd::Contexts => {
            let r: Value = c.call(Method::GET, "/op/v1/federation/contexts", None).await?;
            print(ctx.out, &r, || {
                let mut t = table(&["CONTEXT", "PARTNER", "DIALECT", "ZONES", "SINCE"]);
                for f in r.as_array().into_iter().flatten() {
                    let zones: Vec<String> = f["spec"]["subscriptions"].as_object().into_iter().flatten().map(|(k, _)| k.clone()).collect();
                    let ctx_id = s(&f["metadata"]["name"]).trim_start_matches("f-").to_string();
                    t.add_row(vec![ctx_id, s(&f["spec"]["partner"]), s(&f["spec"]["dialect"]), zones.join(", "), s(&f["spec"]["initialDate"])]);
                }
                t
            })
        }
        FederationCmd::Usage { counterpart, from, to, csv, check } => {
            let mut q = vec![format!("counterpart={counterpart}")];
            if let Some(f) = &from {
                q.push(format!("from={f}"));
            }
            if let Some(t) = &to {
                q.push(format!("to={t}"));
            }
            if csv {
                q.push("format=csv".into());
                print!("{}", c.call_text(Method::GET, &format!("/op/v1/federation/usage?{}", q.join("&")), None).await?);
                return Ok(());
            }
            if check {
                let r: Value = c.call(Method::GET, &format!("/op/v1/federation/peers/{counterpart}/usage-check?{}", q.join("&")), None).await?;
                return print(ctx.out, &r, || {
                    let mut t = table(&["AGREED", "OUR_DIGEST", "PARTNER_DIGEST", "DIFFERENCES"]);
                    let diffs: Vec<String> = r["mismatches"].as_array().into_iter().flatten().map(|m| format!("{}: {} vs {}", s(&m["field"]), s(&m["a"]), s(&m["b"]))).collect();
                    t.add_row(vec![s(&r["agreed"]), s(&r["localDigest"]), s(&r["partnerDigest"]), diffs.join("; ")]);
                    t
                });
            }
            let r: Value = c.call(Method::GET, &format!("/op/v1/federation/usage?{}", q.join("&")), None).await?;
            print(ctx.out, &r, || {
                let mut t = table(&["PERIOD", "APP", "ZONE", "FLAVOUR", "INSTANCES", "INSTANCE_S", "VCPU_MS", "SESSIONS", "SERVICE_CALLS"]);
                for rec in r["records"].as_array().into_iter().flatten() {
                    t.add_row(vec![
                        s(&rec["period"]["start"]),
                        s(&rec["appId"]),
                        s(&rec["zoneId"]),
                        s(&rec["flavourId"]),
                        s(&rec["instanceCount"]),
                        s(&rec["instanceSeconds"]),
                        s(&rec["vcpuMilliSeconds"]),
                        s(&rec["sessionsServed"]),
                        s(&rec["serviceCalls"]),
                    ]);
                }
                let tot = &r["totals"];
                t.add_row(vec!["TOTAL".into(), String::new(), String::new(), String::new(), s(&tot["instancePeriods"]), s(&tot["instanceSeconds"]), s(&tot["vcpuMilliSeconds"]), s(&tot["sessionsServed"]), s(&tot["serviceCalls"])]);
                t.add_row(vec!["DIGEST".into(), s(&r["digest"]), String::new(), String::new(), String::new(), String::new(), String::new(), String::new(), String::new()]);
                t
            })
        }
    }
}
