//! `opctl device ...`: act as a device app against the UNI (discover, probe, confirm, watch),
//! over the `op-device` client library. The session is kept in a file between commands.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use futures::StreamExt;
use op_device::{DeviceClient, Resolver};
use op_types::uni::{AppRef, ClaimedLocation, Device, DeviceIpv4Addr, Registration, RegisterRequest};
use op_types::Uid;
use serde::{Deserialize, Serialize};

use crate::output::{print, table, Format};

/// Device commands.
#[derive(Subcommand)]
pub enum DeviceCmd {
    /// Register with the UNI and get the best edge.
    Discover(Box<DiscoverArgs>),
    /// Measure round trips to the offered edges.
    Probe(SessionArgs),
    /// Confirm the edge the device uses (default: the best offer).
    Confirm {
        #[command(flatten)]
        session: SessionArgs,
        /// Instance id (one of the offers).
        #[arg(long)]
        instance: Option<Uid>,
    },
    /// Print the URL of the confirmed (else the best) offer: `http://HOST:PORT/`.
    Endpoint(SessionArgs),
    /// Mint a device-app token, as the app provider's backend does for its devices: a JWT
    /// for the UNI's audience signed with the provider's private key (PEM: Ed25519, P-256 or
    /// RSA). Printed on stdout.
    Token {
        /// The provider's private key.
        #[arg(long)]
        key_file: PathBuf,
        /// Who the provider says the user or device is.
        #[arg(long)]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 300)]
        ttl_secs: u64,
    },
    /// Print the changes the platform pushes.
    Watch {
        #[command(flatten)]
        session: SessionArgs,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
}

/// Where the session is kept.
#[derive(Args)]
pub struct SessionArgs {
    /// Session file written by `discover`.
    #[arg(long, env = "OPCTL_DEVICE_SESSION", default_value = "device-session.json")]
    session_file: PathBuf,
}

/// `discover` arguments.
#[derive(Args)]
pub struct DiscoverArgs {
    /// Mobile country code of the network.
    #[arg(long)]
    mcc: String,
    /// Mobile network code.
    #[arg(long)]
    mnc: String,
    /// UNI base URL, instead of resolving the well-known name (or set OP_UNI_RESOLVE).
    #[arg(long)]
    uni: Option<String>,
    /// The app as PROVIDER/NAME/VERSION.
    #[arg(long)]
    app: String,
    /// File holding the app provider's token for this device.
    #[arg(long)]
    app_token_file: PathBuf,
    /// Phone number (E.164).
    #[arg(long)]
    phone: Option<String>,
    /// Network access identifier.
    #[arg(long)]
    nai: Option<String>,
    /// 3GPP GPSI: msisdn-<digits> or extid-<id>@<domain>.
    #[arg(long)]
    gpsi: Option<String>,
    /// Public IPv4 address.
    #[arg(long)]
    ip: Option<std::net::Ipv4Addr>,
    /// Claimed serving cell.
    #[arg(long)]
    cell: Option<String>,
    /// Claimed latitude.
    #[arg(long, allow_hyphen_values = true)]
    lat: Option<f64>,
    /// Claimed longitude.
    #[arg(long, allow_hyphen_values = true)]
    lon: Option<f64>,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    uni: String,
    registration: Registration,
}

fn load(a: &SessionArgs) -> Result<Saved> {
    let text = std::fs::read_to_string(&a.session_file)
        .with_context(|| format!("no session in {}: run `opctl device discover` first", a.session_file.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn offers_table(r: &Registration) -> comfy_table::Table {
    let mut t = table(&["", "ZONE", "INSTANCE", "ENDPOINT", "LATENCY_MS", "DISTANCE_KM"]);
    let all = std::iter::once(("best", &r.endpoint)).chain(r.alternatives.iter().map(|a| ("alt", a)));
    for (tag, o) in all {
        t.add_row(vec![
            tag.to_string(),
            o.edge_cloud_zone_name.clone(),
            o.app_instance_id.to_string(),
            format!("{}:{}", o.host, o.port),
            o.expected_qos.map(|q| format!("{:.1}", q.latency_ms)).unwrap_or_default(),
            o.distance_km.map(|d| format!("{d:.1}")).unwrap_or_default(),
        ]);
    }
    t
}

/// Signs a device-app token with whichever kind of key `pem` holds.
fn app_token(pem: &[u8], sub: &str, ttl_secs: u64) -> Result<String> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let key = [
        (Algorithm::EdDSA, EncodingKey::from_ed_pem(pem)),
        (Algorithm::ES256, EncodingKey::from_ec_pem(pem)),
        (Algorithm::RS256, EncodingKey::from_rsa_pem(pem)),
    ]
    .into_iter()
    .find_map(|(alg, k)| k.ok().map(|k| (alg, k)));
    let (alg, key) = key.ok_or_else(|| anyhow!("the key file is not an Ed25519, P-256 or RSA private key in PEM"))?;
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + ttl_secs;
    let claims = op_types::uni::AppTokenClaims { sub: sub.to_string(), aud: op_types::uni::UNI_AUDIENCE.to_string(), exp };
    Ok(jsonwebtoken::encode(&Header::new(alg), &claims, &key)?)
}

/// Runs a device command.
pub async fn run(cmd: DeviceCmd, out: Format) -> Result<()> {
    match cmd {
        DeviceCmd::Discover(a) => {
            let client = match &a.uni {
                Some(u) => DeviceClient::new(u),
                None => DeviceClient::discover(&a.mcc, &a.mnc, &Resolver::from_env()).await?,
            };
            let mut parts = a.app.splitn(3, '/');
            let (Some(provider), Some(name), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
                bail!("--app must be PROVIDER/NAME/VERSION");
            };
            let app_token = std::fs::read_to_string(&a.app_token_file)
                .with_context(|| format!("reading {}", a.app_token_file.display()))?
                .trim()
                .to_string();
            let location = (a.cell.is_some() || a.lat.is_some()).then(|| ClaimedLocation {
                cell_id: a.cell.clone(),
                tracking_area: None,
                latitude: a.lat,
                longitude: a.lon,
            });
            let req = RegisterRequest {
                device: Device {
                    phone_number: a.phone.clone(),
                    network_access_identifier: a.nai.clone(),
                    ipv4_address: a.ip.map(|ip| DeviceIpv4Addr { public_address: ip, private_address: Some(ip), public_port: None }),
                    ipv6_address: None,
                    gpsi: a.gpsi.clone(),
                },
                app: AppRef { provider: provider.into(), name: name.into(), version: version.into() },
                app_token,
                location,
                max_alternatives: None,
            };
            let registration = client.register(&req).await?;
            let saved = Saved { uni: client.base().to_string(), registration };
            let file = &a.session.session_file;
            std::fs::write(file, serde_json::to_string_pretty(&saved)?).with_context(|| format!("writing {}", file.display()))?;
            print(out, &saved.registration, || offers_table(&saved.registration))
        }
        DeviceCmd::Probe(a) => {
            let s = load(&a)?;
            let client = DeviceClient::new(&s.uni);
            let r = &s.registration;
            let mut rows = Vec::new();
            for o in std::iter::once(&r.endpoint).chain(&r.alternatives) {
                let p = client.probe(o).await.ok();
                rows.push(serde_json::json!({"appInstanceId": o.app_instance_id, "zone": o.edge_cloud_zone_name,
                    "rttMs": p.map(|p| p.rtt.as_secs_f64() * 1000.0), "downloadMbps": p.and_then(|p| p.download_mbps)}));
            }
            print(out, &rows, || {
                let mut t = table(&["ZONE", "INSTANCE", "RTT_MS", "DOWNLOAD_MBPS"]);
                for r in &rows {
                    t.add_row(vec![
                        r["zone"].as_str().unwrap_or_default().to_string(),
                        r["appInstanceId"].as_str().unwrap_or_default().to_string(),
                        r["rttMs"].as_f64().map_or("unreachable".into(), |v| format!("{v:.2}")),
                        r["downloadMbps"].as_f64().map_or("-".into(), |v| format!("{v:.0}")),
                    ]);
                }
                t
            })
        }
        DeviceCmd::Confirm { session, instance } => {
            let mut s = load(&session)?;
            let client = DeviceClient::new(&s.uni);
            let chosen = instance.unwrap_or(s.registration.endpoint.app_instance_id);
            let offer = std::iter::once(&s.registration.endpoint)
                .chain(&s.registration.alternatives)
                .find(|o| o.app_instance_id == chosen)
                .ok_or_else(|| anyhow!("{chosen} is not among the offers"))?;
            let rtt = client.probe(offer).await.ok().map(|p| p.rtt);
            let c = client.confirm(&s.registration.session_id, &s.registration.session_token, chosen, rtt).await?;
            s.registration.session_token = c.session_token.clone();
            // The confirmed offer becomes the session's endpoint; the former best an alternative.
            let r = &mut s.registration;
            if let Some(alt) = r.alternatives.iter_mut().find(|o| o.app_instance_id == chosen) {
                std::mem::swap(alt, &mut r.endpoint);
            }
            std::fs::write(&session.session_file, serde_json::to_string_pretty(&s)?)?;
            eprintln!("confirmed {chosen}");
            Ok(())
        }
        DeviceCmd::Endpoint(a) => {
            let e = &load(&a)?.registration.endpoint;
            println!("http://{}:{}/", e.host, e.port);
            Ok(())
        }
        DeviceCmd::Token { key_file, sub, ttl_secs } => {
            let pem = std::fs::read(&key_file).with_context(|| format!("reading {}", key_file.display()))?;
            println!("{}", app_token(&pem, &sub, ttl_secs)?);
            Ok(())
        }
        DeviceCmd::Watch { session, count } => {
            let s = load(&session)?;
            let client = DeviceClient::new(&s.uni);
            let mut events = Box::pin(client.watch(&s.registration.session_id, &s.registration.session_token).await?);
            let mut n = 0;
            while let Some(ev) = tokio::time::timeout(Duration::from_secs(3600), events.next()).await.ok().flatten() {
                println!("{}", serde_json::to_string(&ev?)?);
                n += 1;
                if count.is_some_and(|c| n >= c) {
                    break;
                }
            }
            Ok(())
        }
    }
}
