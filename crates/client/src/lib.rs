//! Typed client of the platform's HTTP APIs, used by `opctl` and by anything else written in
//! Rust that drives the platform. Errors carry the server's CAMARA error body.

use op_types::specs::{AppInstance, Role};
use op_types::{Object, Uid};
pub mod exec;

pub use op_types::observe::InstanceDebug;
pub use op_types::views::{AppInstanceInfo, AppManifest, EdgeCloudZone, TokenResponse, UserView};
pub use reqwest::Method;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// CAMARA base path of Edge Application Management.
pub const CAMARA: &str = "/edge-application-management/v0.1alpha1";

/// What can go wrong talking to the platform.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the call with a CAMARA error body.
    #[error("{code} ({status}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// CAMARA code, e.g. `INVALID_ARGUMENT`.
        code: String,
        /// What went wrong.
        message: String,
    },
    /// The server could not be reached.
    #[error("cannot reach the platform: {0}")]
    Http(#[from] reqwest::Error),
    /// The answer was not what the API promises.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// A WebSocket (terminal access) failed after it was accepted, or could not be opened.
    #[error("terminal session: {0}")]
    WebSocket(String),
}

impl ClientError {
    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A platform client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    region: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the platform at `base` (e.g. `http://127.0.0.1:7080`), with a bearer token.
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self { base: base.trim_end_matches('/').to_string(), token, region: None, http: reqwest::Client::new() }
    }

    /// The same client, naming `region` in every call (`X-OP-Region`): on a platform split into
    /// a global plane and regions, the region a regional create or list is for.
    pub fn in_region(mut self, region: Option<String>) -> Self {
        self.region = region;
        self
    }

    /// Sends a request and decodes the JSON answer (or `null` for an empty body).
    pub async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<&Value>) -> Result<T, ClientError> {
        let text = self.call_text(method, path, body).await?;
        let text = if text.is_empty() { "null" } else { text.as_str() };
        serde_json::from_str(text).map_err(|e| ClientError::Decode(format!("{e}: {}", text.chars().take(200).collect::<String>())))
    }

    /// A request to `path` carrying the client's token.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(r) = &self.region {
            rb = rb.header("x-op-region", r);
        }
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends a request and returns the answer's text.
    pub async fn call_text(&self, method: Method, path: &str, body: Option<&Value>) -> Result<String, ClientError> {
        let mut rb = self.request(method, path);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status.is_success() {
            return Ok(text);
        }
        Err(api_error(status, &text))
    }

    /// Exchanges a user name and password for a token acting for `org` (default: the user's
    /// own organization).
    pub async fn login(&self, user: &str, password: &str, org: Option<&str>) -> Result<TokenResponse, ClientError> {
        self.call(Method::POST, "/op/v1/auth/token", Some(&json!({"username": user, "password": password, "organization": org}))).await
    }

    /// Lists operator resources of `plural` (regions, zones, cloudlets, flavors, organizations).
    pub async fn list<S: DeserializeOwned, X: DeserializeOwned + Default>(&self, plural: &str) -> Result<Vec<Object<S, X>>, ClientError> {
        self.call(Method::GET, &format!("/op/v1/{plural}"), None).await
    }

    /// Reads one operator resource.
    pub async fn get<S: DeserializeOwned, X: DeserializeOwned + Default>(&self, plural: &str, name: &str) -> Result<Object<S, X>, ClientError> {
        self.call(Method::GET, &format!("/op/v1/{plural}/{name}"), None).await
    }

    /// Creates one operator resource.
    pub async fn create<S: Serialize + DeserializeOwned, X: DeserializeOwned + Default>(
        &self,
        plural: &str,
        name: &str,
        spec: &S,
    ) -> Result<Object<S, X>, ClientError> {
        let body = json!({"name": name, "spec": spec});
        self.call(Method::POST, &format!("/op/v1/{plural}"), Some(&body)).await
    }

    /// Deletes one operator resource.
    pub async fn delete(&self, plural: &str, name: &str) -> Result<(), ClientError> {
        self.call_text(Method::DELETE, &format!("/op/v1/{plural}/{name}"), None).await.map(|_| ())
    }

    /// Lists users.
    pub async fn users(&self) -> Result<Vec<UserView>, ClientError> {
        self.call(Method::GET, "/op/v1/users", None).await
    }

    /// Creates a user.
    pub async fn create_user(&self, name: &str, org: Option<&str>, role: Role, password: &str) -> Result<UserView, ClientError> {
        let body = json!({"name": name, "organization": org, "role": role, "password": password});
        self.call(Method::POST, "/op/v1/users", Some(&body)).await
    }

    /// Deletes a user.
    pub async fn delete_user(&self, name: &str) -> Result<(), ClientError> {
        self.call_text(Method::DELETE, &format!("/op/v1/users/{name}"), None).await.map(|_| ())
    }

    /// CAMARA edge cloud zones.
    pub async fn zones(&self) -> Result<Vec<EdgeCloudZone>, ClientError> {
        self.call(Method::GET, &format!("{CAMARA}/edge-cloud-zones"), None).await
    }

    /// Submits an app manifest; returns the app id.
    pub async fn submit_app(&self, manifest: &Value) -> Result<Uid, ClientError> {
        let v: Value = self.call(Method::POST, &format!("{CAMARA}/apps"), Some(manifest)).await?;
        serde_json::from_value(v["appId"].clone()).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Lists apps.
    pub async fn apps(&self) -> Result<Vec<AppManifest>, ClientError> {
        self.call(Method::GET, &format!("{CAMARA}/apps"), None).await
    }

    /// Reads an app.
    pub async fn app(&self, id: Uid) -> Result<AppManifest, ClientError> {
        let v: Value = self.call(Method::GET, &format!("{CAMARA}/apps/{id}"), None).await?;
        serde_json::from_value(v["appManifest"].clone()).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Deletes an app.
    pub async fn delete_app(&self, id: Uid) -> Result<(), ClientError> {
        self.call_text(Method::DELETE, &format!("{CAMARA}/apps/{id}"), None).await.map(|_| ())
    }

    /// Deploys an app to a zone.
    /// Places an app by strategy (`everyEdge`, or `minimumCover` with a latency bound).
    pub async fn place(&self, app: Uid, every_edge: bool, max_latency_ms: Option<f64>) -> Result<op_types::views::PlacementResult, ClientError> {
        let body = if every_edge { json!({"strategy": "everyEdge"}) } else { json!({"strategy": "minimumCover", "maxLatencyMs": max_latency_ms}) };
        self.call(Method::POST, &format!("/op/v1/apps/{app}/placements"), Some(&body)).await
    }

    pub async fn create_instance(&self, name: &str, app: Uid, zone: Uid) -> Result<AppInstanceInfo, ClientError> {
        self.create_instance_in(name, app, zone, None).await
    }

    /// Deploys `app` to `zone`, in cluster `cluster` when given.
    pub async fn create_instance_in(&self, name: &str, app: Uid, zone: Uid, cluster: Option<Uid>) -> Result<AppInstanceInfo, ClientError> {
        let mut body = json!({"name": name, "appId": app, "edgeCloudZoneId": zone});
        if let Some(c) = cluster {
            body["clusterRef"] = json!(c);
        }
        self.call(Method::POST, &format!("{CAMARA}/appinstances"), Some(&body)).await
    }

    /// Lists instances, optionally of one app.
    pub async fn instances(&self, app: Option<Uid>) -> Result<Vec<AppInstanceInfo>, ClientError> {
        let q = app.map(|a| format!("?appId={a}")).unwrap_or_default();
        self.call(Method::GET, &format!("{CAMARA}/appinstances{q}"), None).await
    }

    /// The full instance object, or `None` if it does not exist.
    pub async fn instance(&self, id: Uid) -> Result<Option<AppInstance>, ClientError> {
        match self.call(Method::GET, &format!("/op/v1/appinstances/{id}"), None).await {
            Ok(i) => Ok(Some(i)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND.as_u16()) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Asks for an instance's deletion.
    pub async fn delete_instance(&self, id: Uid) -> Result<(), ClientError> {
        self.call_text(Method::DELETE, &format!("{CAMARA}/appinstances/{id}"), None).await.map(|_| ())
    }

    /// The last `tail` lines of an instance's output.
    pub async fn logs(&self, id: Uid, tail: usize) -> Result<String, ClientError> {
        self.call_text(Method::GET, &format!("/op/v1/appinstances/{id}/logs?tail={tail}"), None).await
    }

    /// The last `tail` lines of an instance's output, then what it writes from now on, as
    /// it arrives; the stream ends when the container stops.
    pub async fn follow_logs(
        &self,
        id: Uid,
        tail: usize,
    ) -> Result<impl futures::Stream<Item = Result<Vec<u8>, ClientError>>, ClientError> {
        use futures::StreamExt;
        let resp = self.request(Method::GET, &format!("/op/v1/appinstances/{id}/logs?tail={tail}&follow=true")).send().await?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(api_error(status, &resp.text().await?));
        }
        Ok(resp.bytes_stream().map(|r| r.map(|b| b.to_vec()).map_err(ClientError::from)))
    }

    /// An instance's debug view: state, container, health checks, events, last output.
    pub async fn debug(&self, id: Uid) -> Result<InstanceDebug, ClientError> {
        self.call(Method::GET, &format!("/op/v1/appinstances/{id}/debug"), None).await
    }

    /// Runs `cmd` in the instance's container, attached over a WebSocket (a terminal when
    /// `tty`).
    pub async fn exec(&self, id: Uid, cmd: &[String], tty: bool) -> Result<exec::Exec, ClientError> {
        exec::Exec::open(&self.base, self.token.as_deref(), id, cmd, tty).await
    }
}

/// A [`ClientError`] from a refusal's status and body.
fn api_error(status: StatusCode, text: &str) -> ClientError {
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v["code"].is_string() => ClientError::Api {
            status: status.as_u16(),
            code: v["code"].as_str().unwrap_or_default().to_string(),
            message: v["message"].as_str().unwrap_or_default().to_string(),
        },
        _ => ClientError::Api {
            status: status.as_u16(),
            code: status.canonical_reason().unwrap_or("ERROR").to_string(),
            message: text.to_string(),
        },
    }
}
