//! Two operator platforms federated over the GSMA EWBI, for end-to-end tests and the
//! federation benchmark: B (the partner) offers its default zone to A (the originating
//! platform); A registers B as a peer and gets B's zone as one of its own.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{free_port, Api, Platform, CAMARA};

/// The zone id B offers (its default zone under an alias).
pub const PARTNER_ZONE: &str = "bzone-1";
/// The name of B's zone on A.
pub const ZONE_ON_A: &str = "opb-bzone-1";
/// A's OAuth client id at B.
pub const CLIENT_ID: &str = "opa-client";

/// A federated pair.
pub struct Pair {
    /// The originating platform.
    pub a: Platform,
    /// The partner platform.
    pub b: Platform,
    /// A's EWBI (`https://127.0.0.1:port`).
    pub a_ewbi: String,
    /// B's EWBI.
    pub b_ewbi: String,
    /// A's client secret at B.
    pub secret: String,
}

/// Starts a platform with its EWBI on a free port; returns it and its EWBI URL.
pub async fn start_ewbi(provider: &str, extra: &[&str]) -> Result<(Platform, String)> {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["--ewbi-listen", &listen, "--provider", provider, "--federation-id", provider];
    args.extend_from_slice(extra);
    let p = Platform::start_with(&args).await?;
    Ok((p, format!("https://127.0.0.1:{port}")))
}

impl Pair {
    /// B offers its `local` zone to A; A federates with B and waits for B's zone.
    pub async fn start() -> Result<Pair> {
        let (b, b_ewbi) = start_ewbi("opb", &[]).await?;
        let (a, a_ewbi) = start_ewbi("opa", &[]).await?;
        let secret = register_partner(&b, &a, CLIENT_ID, "opa").await?;
        let pair = Pair { a, b, a_ewbi, b_ewbi, secret };
        pair.add_peer().await?;
        pair.wait_zone(Duration::from_secs(30)).await?;
        Ok(pair)
    }

    /// A registers B as a peer (with the client secret B made for it).
    pub async fn add_peer(&self) -> Result<()> {
        let admin = self.a.admin().await?;
        let ca = std::fs::read_to_string(self.b.data_dir().join("ewbi-ca.pem"))?;
        let (s, body) = admin
            .post(
                "/op/v1/federation/peers",
                &json!({"name": "opb", "spec": {
                    "url": format!("{}/operatorplatform/federation/v1", self.b_ewbi),
                    "clientId": CLIENT_ID, "clientSecret": self.secret, "caPem": ca,
                    "federationId": "opa", "region": "partner-b"}}),
            )
            .await?;
        anyhow::ensure!(s == 201, "peer create: {s} {body}");
        Ok(())
    }

    /// Waits until B's zone is a zone of A's.
    pub async fn wait_zone(&self, timeout: Duration) -> Result<String> {
        let admin = self.a.admin().await?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(id) = self.a.zone_id(&admin, ZONE_ON_A).await {
                return Ok(id);
            }
            if Instant::now() > deadline {
                let (_, peer) = admin.get("/op/v1/federation/peers/opb").await?;
                bail!("B's zone never appeared on A; peer: {peer}\nA log:\n{}\nB log:\n{}", tail(&self.a.log()), tail(&self.b.log()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The last lines of a log, for failure messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Registers `origin` as a partner of `partner` with client `client_id` and federation id
/// `fed_id`, offering `partner`'s `local` zone; returns the client secret.
pub async fn register_partner(partner: &Platform, origin: &Platform, client_id: &str, fed_id: &str) -> Result<String> {
    let ca = std::fs::read_to_string(origin.data_dir().join("ewbi-ca.pem"))?;
    let offer = json!({"zone": "local", "alias": PARTNER_ZONE, "geography": "Paris, east bank",
                       "reservedVcpus": 4, "reservedMemoryMb": 8192, "quotaVcpus": 8, "quotaMemoryMb": 16384});
    register_partner_offering(partner, &ca, client_id, fed_id, offer).await
}

/// Registers a partner of `partner` whose callbacks are signed by `ca_pem`, offering `zone`
/// (an `OfferedZone`); returns the client secret.
pub async fn register_partner_offering(partner: &Platform, ca_pem: &str, client_id: &str, fed_id: &str, zone: Value) -> Result<String> {
    let admin = partner.admin().await?;
    let (s, body) = admin
        .post("/op/v1/federation/partners", &json!({"name": fed_id, "spec": {"clientId": client_id, "federationId": fed_id, "caPem": ca_pem, "zones": [zone]}}))
        .await?;
    anyhow::ensure!(s == 201, "partner create: {s} {body}");
    body["clientSecret"].as_str().map(str::to_string).context("clientSecret")
}

/// An HTTPS client trusting `platform`'s EWBI CA.
pub fn ewbi_http(platform: &Platform) -> Result<reqwest::Client> {
    let ca = std::fs::read(platform.data_dir().join("ewbi-ca.pem"))?;
    Ok(reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&ca)?).https_only(true).build()?)
}

/// A client-credentials token from `ewbi`'s token endpoint.
pub async fn token(http: &reqwest::Client, ewbi: &str, client_id: &str, secret: &str) -> Result<String> {
    let r = http.post(format!("{ewbi}/oauth2/token")).basic_auth(client_id, Some(secret)).form(&[("grant_type", "client_credentials"), ("scope", "fed-mgmt")]).send().await?;
    let s = r.status();
    let b: Value = r.json().await?;
    anyhow::ensure!(s == 200, "token: {s} {b}");
    b["access_token"].as_str().map(str::to_string).context("access_token")
}

/// Deploys the sample app for a fresh developer of A on `zone`; returns the developer and
/// the instance id.
pub async fn deploy_sample(a: &Platform, org: &str, zone: &str) -> Result<(Api, String)> {
    let dev = a.developer(org, &format!("{org}_dev"), "Manager").await?;
    let app = dev.sample_app(org, &format!("{org}_app"), json!({})).await?;
    let (s, b) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": format!("{org}_1"), "appId": app, "edgeCloudZoneId": zone})).await?;
    anyhow::ensure!(s == 202, "deploy: {s} {b}");
    Ok((dev, b["appInstanceId"].as_str().context("appInstanceId")?.to_string()))
}
