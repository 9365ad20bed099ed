//! `opctl relocation`: the platform's relocations of devices between instances (mobility), and
//! each one's timeline.

use anyhow::Result;
use clap::Subcommand;
use op_types::mobility::{Relocation, RelocationObserved, RelocationSpec};
use op_types::Object;

use crate::output::{print, table};
use crate::Ctx;

/// Relocation commands.
#[derive(Subcommand)]
pub enum RelocationCmd {
    /// List relocations, newest first.
    List,
    /// Show one relocation's timeline.
    Get {
        /// Relocation id.
        id: String,
    },
}

fn phase(r: &Relocation) -> String {
    format!("{:?}", r.observed.phase)
}

/// Runs a relocation command.
pub async fn run(ctx: &Ctx, cmd: RelocationCmd) -> Result<()> {
    match cmd {
        RelocationCmd::List => {
            let all: Vec<Object<RelocationSpec, RelocationObserved>> = ctx.client.list("relocations").await?;
            print(ctx.out, &all, || {
                let mut t = table(&["ID", "CREATED", "APP", "DEVICE", "FROM", "TO", "REASON", "NOTICE", "DECISION_MS", "PHASE"]);
                for r in &all {
                    t.add_row(vec![
                        r.metadata.uid.to_string(),
                        r.metadata.created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        r.spec.app_id.to_string(),
                        r.spec.device_address.clone().unwrap_or_default(),
                        r.spec.from_instance.to_string(),
                        r.spec.to_instance.to_string(),
                        format!("{:?}", r.spec.reason),
                        if r.spec.with_notice { "yes" } else { "no" }.to_string(),
                        format!("{:.2}", r.spec.decision_ms),
                        phase(r),
                    ]);
                }
                t
            })
        }
        RelocationCmd::Get { id } => {
            let r: Relocation = ctx.client.get("relocations", &id).await?;
            print(ctx.out, &r, || {
                let mut t = table(&["AT", "PHASE", "DETAIL"]);
                for s in &r.observed.timeline {
                    t.add_row(vec![s.at.clone(), format!("{:?}", s.phase), s.detail.clone()]);
                }
                t
            })
        }
    }
}
