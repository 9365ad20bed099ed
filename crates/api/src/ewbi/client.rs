//! The originating role's client of a partner's EWBI: HTTPS only (trusting the CA the operator
//! registered for the peer), mutual TLS when given an identity, and OAuth2 client credentials
//! with the token cached until shortly before it expires. Errors say whether retrying can help,
//! so the reconcilers pick their backoff without knowing HTTP.

use std::time::{Duration, Instant};

use op_types::ewbi::objects::FederationPeerSpec;
use reqwest::Method;
use serde_json::Value;
use tokio::sync::Mutex;

/// How long one EWBI call may take (uploads get longer, see [`PeerClient::upload`]).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a call to a partner failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The peer's registration cannot make a client (bad CA or identity PEM).
    #[error("peer configuration: {0}")]
    Config(String),
    /// The partner could not be reached or did not answer in time. Retry.
    #[error("partner unreachable: {0}")]
    Transport(String),
    /// The partner refused our credentials (token endpoint or API 401/403).
    #[error("partner refused our credentials: {0}")]
    Auth(String),
    /// The partner answered with an error status.
    #[error("partner answered {status}: {detail}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The `ProblemDetails` detail (or the body).
        detail: String,
    },
}

impl ClientError {
    /// Whether the same call may succeed later without anyone changing anything.
    pub fn retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 409,
            ClientError::Config(_) | ClientError::Auth(_) => false,
        }
    }

    /// The partner's status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A partner's answer.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// The JSON body, when there is one.
    pub body: Option<Value>,
    /// The `Location` header.
    pub location: Option<String>,
    /// The `Date` header: the partner's clock, which settlement records use.
    pub date: Option<chrono::DateTime<chrono::Utc>>,
}

/// A client of one peer's EWBI.
pub struct PeerClient {
    http: reqwest::Client,
    base: String,
    token_url: String,
    client_id: String,
    secret: String,
    token: Mutex<Option<(String, Instant)>>,
}

fn transport(e: reqwest::Error) -> ClientError {
    ClientError::Transport(op_types::error_chain(&e))
}

impl PeerClient {
    /// A client for `spec`.
    pub fn new(spec: &FederationPeerSpec) -> Result<Self, ClientError> {
        let mut b = reqwest::Client::builder().https_only(true).use_rustls_tls().timeout(CALL_TIMEOUT).connect_timeout(Duration::from_secs(5));
        if let Some(ca) = &spec.ca_pem {
            let cert = reqwest::Certificate::from_pem(ca.as_bytes()).map_err(|e| ClientError::Config(format!("caPem: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        if let Some(id) = &spec.client_identity_pem {
            let identity = reqwest::Identity::from_pem(id.as_bytes()).map_err(|e| ClientError::Config(format!("clientIdentityPem: {e}")))?;
            b = b.identity(identity);
        }
        let http = b.build().map_err(|e| ClientError::Config(e.to_string()))?;
        let base = spec.url.trim_end_matches('/').to_string();
        let token_url = match &spec.token_url {
            Some(t) => t.clone(),
            None => {
                // The GSMA file's `tokenUrl: /oauth2/token`: relative to the host.
                let url = reqwest::Url::parse(&base).map_err(|e| ClientError::Config(format!("url: {e}")))?;
                format!("{}://{}{}", url.scheme(), url.host_str().unwrap_or_default(), url.port().map(|p| format!(":{p}")).unwrap_or_default()) + super::TOKEN_PATH
            }
        };
        Ok(Self { http, base, token_url, client_id: spec.client_id.clone(), secret: spec.client_secret.clone(), token: Mutex::new(None) })
    }

    async fn token(&self) -> Result<String, ClientError> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let r = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(&[("grant_type", "client_credentials"), ("scope", op_types::ewbi::objects::SCOPE_FED_MGMT)])
            .send()
            .await
            .map_err(transport)?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.map_err(transport)?;
        if status != 200 {
            let e = body.get("error").and_then(Value::as_str).unwrap_or("unknown").to_string();
            return if status >= 500 { Err(ClientError::Status { status, detail: e }) } else { Err(ClientError::Auth(e)) };
        }
        let token = body.get("access_token").and_then(Value::as_str).ok_or_else(|| ClientError::Auth("no access_token in the token response".into()))?.to_string();
        let ttl = body.get("expires_in").and_then(Value::as_u64).unwrap_or(300);
        *cached = Some((token.clone(), Instant::now() + Duration::from_secs(ttl.saturating_sub(30).max(1))));
        Ok(token)
    }

    async fn finish(&self, r: reqwest::Response) -> Result<Reply, ClientError> {
        let status = r.status().as_u16();
        let location = r.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let date = r.headers().get(reqwest::header::DATE).and_then(|v| v.to_str().ok()).and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok()).map(|d| d.with_timezone(&chrono::Utc));
        let bytes = r.bytes().await.map_err(transport)?;
        let body = if bytes.is_empty() { None } else { serde_json::from_slice(&bytes).ok() };
        if status == 401 {
            *self.token.lock().await = None;
        }
        if (200..300).contains(&status) {
            return Ok(Reply { status, body, location, date });
        }
        let detail = body
            .as_ref()
            .and_then(|b| b.get("detail").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
        match status {
            401 | 403 => Err(ClientError::Auth(detail)),
            _ => Err(ClientError::Status { status, detail }),
        }
    }

    /// Calls `method` on `path` (relative to the API root) with an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply, ClientError> {
        let token = self.token().await?;
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.map_err(transport)?;
        self.finish(r).await
    }

    /// Posts a `multipart/form-data` body (UploadFile, UploadArtefact); `timeout` covers the
    /// upload of large images.
    pub async fn upload(&self, path: &str, form: reqwest::multipart::Form, timeout: Duration) -> Result<Reply, ClientError> {
        let token = self.token().await?;
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(token).timeout(timeout).multipart(form).send().await.map_err(transport)?;
        self.finish(r).await
    }

    /// The API root this client calls.
    pub fn base(&self) -> &str {
        &self.base
    }
}
