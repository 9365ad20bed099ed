//! `opctl register`, `opctl member`, `opctl apikey`, `opctl oidc-client`, `opctl audit`: who
//! may do what, and who did what.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::Subcommand;
use op_client::Method;
use op_types::specs::Role;
use op_types::views::{ApiKeyCreated, ApiKeyView, MemberView, UserView};
use serde_json::{json, Value};

use crate::output::{print, table};
use crate::{read_secret, Ctx};

fn role(s: &str) -> Result<Role> {
    serde_json::from_value(json!(s)).map_err(|_| anyhow!("role must be Manager, Contributor or Viewer (operators: OperatorAdmin, OperatorViewer)"))
}

/// `opctl register`: a new organization and its Manager, then logs in as it.
pub async fn register(mut ctx: Ctx, name: String, org: String, description: Option<String>, password_file: Option<PathBuf>) -> Result<()> {
    let password = match password_file {
        Some(f) => read_secret(&f)?,
        None => std::env::var("OPCTL_NEW_PASSWORD").map_err(|_| anyhow!("give --password-file or set OPCTL_NEW_PASSWORD"))?,
    };
    let body = json!({"name": name, "password": password, "organization": org, "description": description});
    let u: UserView = ctx.client.call(Method::POST, "/op/v1/auth/register", Some(&body)).await?;
    let t = ctx.client.login(&name, &password, None).await?;
    ctx.config.server = Some(ctx.server.clone());
    ctx.config.token = Some(t.access_token);
    ctx.config.save(&ctx.config_path)?;
    eprintln!("registered organization {org}; logged in to {} as {} (Manager)", ctx.server, u.metadata.name);
    Ok(())
}

/// Members of an organization.
#[derive(Subcommand)]
pub enum MemberCmd {
    /// Who holds a role in the organization (directly or from an organization above it).
    List {
        /// The organization.
        org: String,
    },
    /// Give a user a role in the organization, or change it.
    Set {
        /// The organization.
        org: String,
        /// The user.
        user: String,
        /// Manager, Contributor or Viewer.
        #[arg(long)]
        role: String,
    },
    /// Take a user's role in the organization away.
    Remove {
        /// The organization.
        org: String,
        /// The user.
        user: String,
    },
}

/// Runs `opctl member`.
pub async fn members(ctx: &Ctx, cmd: MemberCmd) -> Result<()> {
    match cmd {
        MemberCmd::List { org } => {
            let ms: Vec<MemberView> = ctx.client.call(Method::GET, &format!("/op/v1/organizations/{org}/members"), None).await?;
            print(ctx.out, &ms, || {
                let mut t = table(&["USER", "ROLE", "VIA"]);
                for m in &ms {
                    let via = if m.via.as_str() == org { "-".to_string() } else { m.via.to_string() };
                    t.add_row(vec![m.user.to_string(), format!("{:?}", m.role), via]);
                }
                t
            })
        }
        MemberCmd::Set { org, user, role: r } => {
            let body = json!({"role": role(&r)?});
            let _: Value = ctx.client.call(Method::PUT, &format!("/op/v1/organizations/{org}/members/{user}"), Some(&body)).await?;
            eprintln!("{user} is {r} in {org}");
            Ok(())
        }
        MemberCmd::Remove { org, user } => {
            ctx.client.call_text(Method::DELETE, &format!("/op/v1/organizations/{org}/members/{user}"), None).await?;
            eprintln!("{user} holds no role in {org} any more");
            Ok(())
        }
    }
}

/// API keys: credentials for scripts and CI (`OPCTL_TOKEN=<key> opctl ...`).
#[derive(Subcommand)]
pub enum ApiKeyCmd {
    /// Create a key; prints it once.
    Create {
        /// A label, unique in the organization.
        name: String,
        /// Its role (default yours; at most yours).
        #[arg(long)]
        role: Option<String>,
        /// The organization it acts in (default yours; or one below it).
        #[arg(long)]
        org: Option<String>,
        /// Days until it expires (1-365).
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Your keys (a Manager: the organization's; the operator: all).
    List,
    /// Revoke a key by id.
    Delete {
        /// The key's id.
        id: String,
    },
}

/// Runs `opctl apikey`.
pub async fn api_keys(ctx: &Ctx, cmd: ApiKeyCmd) -> Result<()> {
    match cmd {
        ApiKeyCmd::Create { name, role: r, org, days, description } => {
            let r = r.as_deref().map(role).transpose()?;
            let body = json!({"name": name, "role": r, "organization": org, "expiresInDays": days, "description": description});
            let k: ApiKeyCreated = ctx.client.call(Method::POST, "/op/v1/apikeys", Some(&body)).await?;
            eprintln!("API key {} ({:?}); it is shown once, store it now:", k.api_key.metadata.uid, k.api_key.role);
            println!("{}", k.key);
            Ok(())
        }
        ApiKeyCmd::List => {
            let ks: Vec<ApiKeyView> = ctx.client.call(Method::GET, "/op/v1/apikeys", None).await?;
            print(ctx.out, &ks, || {
                let mut t = table(&["ID", "NAME", "USER", "ORGANIZATION", "ROLE", "EXPIRES"]);
                for k in &ks {
                    t.add_row(vec![
                        k.metadata.uid.to_string(),
                        k.metadata.name.to_string(),
                        k.user.to_string(),
                        k.organization.as_ref().map_or("-".into(), ToString::to_string),
                        format!("{:?}", k.role),
                        k.expires_at.map_or("-".into(), |t| t.format("%Y-%m-%d").to_string()),
                    ]);
                }
                t
            })
        }
        ApiKeyCmd::Delete { id } => {
            ctx.client.call_text(Method::DELETE, &format!("/op/v1/apikeys/{id}"), None).await?;
            eprintln!("revoked API key {id}");
            Ok(())
        }
    }
}

/// Clients of the platform's OpenID Connect provider (operator).
#[derive(Subcommand)]
pub enum OidcClientCmd {
    /// Register a client; prints a confidential client's secret once.
    Create {
        /// The client id.
        name: String,
        /// A redirect URI (repeat for more).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE).
        #[arg(long)]
        public: bool,
    },
    /// The clients.
    List,
    /// Remove a client.
    Delete {
        /// The client id.
        name: String,
    },
}

/// Runs `opctl oidc-client`.
pub async fn oidc_clients(ctx: &Ctx, cmd: OidcClientCmd) -> Result<()> {
    match cmd {
        OidcClientCmd::Create { name, redirect_uris, public } => {
            let body = json!({"name": name, "redirectUris": redirect_uris, "public": public});
            let c: Value = ctx.client.call(Method::POST, "/op/v1/oidc/clients", Some(&body)).await?;
            eprintln!("registered client {name}; issuer {}/.well-known/openid-configuration", ctx.server.trim_end_matches('/'));
            if let Some(secret) = c["clientSecret"].as_str() {
                eprintln!("its secret is shown once, store it now:");
                println!("{secret}");
            }
            Ok(())
        }
        OidcClientCmd::List => {
            let cs: Vec<Value> = ctx.client.call(Method::GET, "/op/v1/oidc/clients", None).await?;
            print(ctx.out, &cs, || {
                let mut t = table(&["CLIENT", "PUBLIC", "REDIRECT URIS"]);
                for c in &cs {
                    let uris: Vec<&str> = c["redirectUris"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                    t.add_row(vec![c["clientId"].as_str().unwrap_or_default().to_string(), c["public"].to_string(), uris.join(" ")]);
                }
                t
            })
        }
        OidcClientCmd::Delete { name } => {
            ctx.client.call_text(Method::DELETE, &format!("/op/v1/oidc/clients/{name}"), None).await?;
            eprintln!("removed client {name}");
            Ok(())
        }
    }
}

/// Runs `opctl audit`: the audit log, newest first.
pub async fn audit(ctx: &Ctx, user: Option<String>, org: Option<String>, limit: usize) -> Result<()> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("limit", &limit.to_string());
    if let Some(u) = &user {
        q.append_pair("user", u);
    }
    if let Some(o) = &org {
        q.append_pair("organization", o);
    }
    let rs: Vec<Value> = ctx.client.call(Method::GET, &format!("/op/v1/audit?{}", q.finish()), None).await?;
    print(ctx.out, &rs, || {
        let mut t = table(&["TIME", "USER", "ORGANIZATION", "CALL", "STATUS"]);
        for r in &rs {
            let s = &r["spec"];
            t.add_row(vec![
                s["at"].as_str().unwrap_or_default().to_string(),
                s["user"].as_str().unwrap_or("-").to_string(),
                r["metadata"]["organization"].as_str().unwrap_or("-").to_string(),
                format!("{} {}", s["method"].as_str().unwrap_or_default(), s["path"].as_str().unwrap_or_default()),
                s["status"].to_string(),
            ]);
        }
        t
    })
}
