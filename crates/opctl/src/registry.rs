//! `opctl registry`: where the organizations' registry is, how to log in to it, and the image
//! versions pushed there.

use anyhow::Result;
use clap::Subcommand;
use op_client::Method;
use op_types::registry::{ImageVersionView, RegistryInfo};

use crate::output::{print, table};
use crate::Ctx;

/// What `opctl registry` does.
#[derive(Subcommand)]
pub enum RegistryCmd {
    /// The registry's address, the organizations you may read (and push to), how to log in.
    Info,
    /// Image versions pushed: tag, digest, who pushed, pulls by cloudlets, apps using them.
    Images {
        /// Only this organization's.
        #[arg(long)]
        org: Option<String>,
    },
}

/// Runs `opctl registry`.
pub async fn run(ctx: &Ctx, cmd: RegistryCmd) -> Result<()> {
    match cmd {
        RegistryCmd::Info => {
            let i: RegistryInfo = ctx.client.call(Method::GET, "/op/v1/registry", None).await?;
            print(ctx.out, &i, || {
                let mut t = table(&["ORGANIZATION", "IMAGES ARE", "YOU MAY"]);
                for n in &i.namespaces {
                    t.add_row(vec![n.organization.to_string(), format!("{}<name>:<tag>", n.prefix), if n.push { "pull, push" } else { "pull" }.to_string()]);
                }
                t
            })?;
            eprintln!("log in with your password or an API key (`opctl apikey create`): podman login {} -u <user>", i.host);
            Ok(())
        }
        RegistryCmd::Images { org } => {
            let path = match org {
                Some(o) => format!("/op/v1/registry/images?organization={o}"),
                None => "/op/v1/registry/images".to_string(),
            };
            let v: Vec<ImageVersionView> = ctx.client.call(Method::GET, &path, None).await?;
            print(ctx.out, &v, || {
                let mut t = table(&["IMAGE", "DIGEST", "PUSHED BY", "PUSHED", "PUSHES", "CLOUDLET PULLS", "APPS"]);
                for i in &v {
                    t.add_row(vec![
                        i.reference.clone(),
                        i.digest.chars().take(19).collect(),
                        i.pushed_by.clone(),
                        i.pushed_at.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
                        i.history.len().to_string(),
                        if i.cloudlets.is_empty() { i.cloudlet_pulls.to_string() } else { i.cloudlets.iter().map(|(c, n)| format!("{c}:{n}")).collect::<Vec<_>>().join(" ") },
                        i.used_by.len().to_string(),
                    ]);
                }
                t
            })
        }
    }
}
