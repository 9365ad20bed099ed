//! Each organization's image registry: a real OCI registry (CNCF distribution, started and
//! configured by `opd`) whose token authentication is this module, so the platform's users,
//! API keys and tokens (single sign-on) are the registry's. Repositories are scoped to the
//! organization: `<registry>/<organization>/<repository>:<tag>`; members read their
//! organization's repositories (and its groups'), Contributors and Managers write them.
//!
//! - `GET /op/v1/registry/token` is distribution's token endpoint: HTTP Basic with a password,
//!   an API key or a platform token as the password; the answer is an ES256 JWT signed with the
//!   platform's key, whose `kid` the registry finds in the certificate `opd` gave it.
//! - `POST /op/v1/registry/events` receives the registry's notifications: pushes become
//!   tracked image versions (digest history, who pushed), pulls are counted per puller (each
//!   cloudlet pulls an image once; after that its runtime has it cached).
//! - Cloudlets pull with short-lived tokens the platform issues per organization
//!   ([`pull_credentials`]); admission checks that the tag exists ([`check_pushed`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use op_driver::RegistryAuth;
use op_types::registry::{ImageVersionSpec, ImageVersionView, PushRecord, RegistryInfo, RegistryNamespace};
use op_types::specs::{AppSpec, Role, UserSpec};
use op_types::{Kind, Name, Object, Uid};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::auth::{Caller, API_KEY_PREFIX};
use crate::error::{ApiError, ErrorInfo};
use crate::state::AppState;

/// The `service` the registry names in its challenges and tokens carry as audience.
pub const SERVICE: &str = "op-registry";
/// How long a registry token lives.
pub const TOKEN_TTL_SECS: u64 = 300;
/// How many pushes of a tag are remembered.
const HISTORY: usize = 20;

/// Where the platform's registry is and how it talks to the platform.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// `host:port`, the first component of every image reference in it.
    pub host: String,
    /// The bearer the registry presents with its notifications.
    pub events_secret: String,
    /// The client that asks the registry whether a tag exists.
    pub http: reqwest::Client,
}

/// A stored image version.
pub type ImageVersion = Object<ImageVersionSpec>;

fn config(s: &AppState) -> Result<&RegistryConfig, ApiError> {
    s.images.as_ref().ok_or_else(|| ApiError::Unavailable("this platform runs no registry; start opd with --registry-listen".into()))
}

/// The organization a repository belongs to: its first path component.
pub fn repository_org(repository: &str) -> Option<Name> {
    let (first, rest) = repository.split_once('/')?;
    (!rest.is_empty()).then(|| Name::new(first).ok()).flatten()
}

/// Splits `host/repo:tag` of this registry into repository and tag (default `latest`);
/// `None` for an image elsewhere.
pub fn in_registry<'a>(host: &str, image: &'a str) -> Option<(&'a str, &'a str)> {
    let path = image.strip_prefix(host)?.strip_prefix('/')?;
    let path = path.split('@').next()?;
    Some(match path.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (path, "latest"),
    })
}

// ---------------------------------------------------------------------------------------------
// Who asks, and what they may do

/// The caller of the token endpoint.
enum Who {
    Anonymous,
    /// An operator user or token: every repository.
    Operator { name: String, role: Role },
    /// A user who logged in with a password: its role in each organization.
    User { name: String, spec: Box<UserSpec> },
    /// A token or API key acting for one organization (and its groups).
    Acting { name: String, role: Role, scope: BTreeSet<Name> },
}

impl Who {
    fn name(&self) -> &str {
        match self {
            Who::Anonymous => "",
            Who::Operator { name, .. } | Who::User { name, .. } | Who::Acting { name, .. } => name,
        }
    }

    /// The actions of `wanted` this caller may take on `repository`.
    fn allowed(&self, s: &AppState, repository: &str, wanted: &[String]) -> Vec<String> {
        let role = match self {
            Who::Anonymous => None,
            Who::Operator { role, .. } => Some(*role),
            Who::User { spec, .. } => repository_org(repository).and_then(|o| crate::auth::effective_role(s, spec, &o)).map(|(r, _)| r),
            Who::Acting { role, scope, .. } => repository_org(repository).filter(|o| scope.contains(o)).map(|_| *role),
        };
        let (pull, push) = match role {
            Some(Role::OperatorAdmin | Role::Manager | Role::Contributor) => (true, true),
            Some(Role::OperatorViewer | Role::Viewer) => (true, false),
            None => (false, false),
        };
        wanted
            .iter()
            .filter(|a| match a.as_str() {
                "pull" => pull,
                "push" => push,
                "delete" | "*" => push && matches!(self, Who::Operator { role: Role::OperatorAdmin, .. }),
                _ => false,
            })
            .cloned()
            .collect()
    }
}

async fn who(s: &AppState, headers: &HeaderMap) -> Result<Who, ApiError> {
    let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return Ok(Who::Anonymous) };
    let bad = || ApiError::Unauthenticated("registry login: wrong user name or password (a password, an API key or a platform token)".into());
    let raw = v.strip_prefix("Basic ").ok_or_else(bad)?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(raw.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, secret) = decoded.split_once(':').ok_or_else(bad)?;
    if secret.starts_with(API_KEY_PREFIX) {
        let (name, role, org) = crate::auth::api_key_caller(s, secret).await?;
        return Ok(acting(s, name, role, org));
    }
    if secret.matches('.').count() == 2 {
        if let Ok(c) = s.keys.verify(secret) {
            let org = c.org.map(Name::new).transpose().map_err(|_| bad())?;
            return Ok(acting(s, c.sub, c.role, org));
        }
    }
    let name = Name::new(user).map_err(|_| bad())?;
    let u = s.repo.get_by_name::<UserSpec, ()>(Kind::User, None, &name).await?.ok_or_else(bad)?;
    let (hash, password) = (u.spec.password_hash.clone(), secret.to_string());
    let ok = tokio::task::spawn_blocking(move || crate::auth::verify_password(&password, &hash)).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    if !ok {
        tracing::info!(user = %name, "failed registry login");
        return Err(bad());
    }
    Ok(if u.spec.role.is_operator() { Who::Operator { name: name.to_string(), role: u.spec.role } } else { Who::User { name: name.to_string(), spec: Box::new(u.spec) } })
}

fn acting(s: &AppState, name: String, role: Role, org: Option<Name>) -> Who {
    match org {
        None if role.is_operator() => Who::Operator { name, role },
        None => Who::Anonymous,
        Some(o) => Who::Acting { name, role, scope: s.uni.index.read().unwrap_or_else(|e| e.into_inner()).org_scope(&o) },
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// One grant of a registry token (distribution's `access` claim).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Access {
    /// `repository` (or `registry` for the catalogue).
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository.
    pub name: String,
    /// Granted actions.
    pub actions: Vec<String>,
}

#[derive(Serialize)]
struct RegistryClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<Access>,
}

/// Parses one `scope` (`repository:acme/web:pull,push`); the repository may not contain
/// the separator but its type may carry a class (`repository(plugin)`).
pub fn parse_scope(scope: &str) -> Option<Access> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let kind = kind.split('(').next()?.to_string();
    if name.is_empty() || name.len() > 255 {
        return None;
    }
    Some(Access { kind, name: name.to_string(), actions: actions.split(',').filter(|a| !a.is_empty()).map(str::to_string).collect() })
}

fn sign(s: &AppState, sub: &str, access: Vec<Access>) -> Result<String, ApiError> {
    let now = op_uni::token::now();
    s.keys.sign(&RegistryClaims {
        iss: s.keys.issuer(),
        sub,
        aud: SERVICE,
        exp: now + TOKEN_TTL_SECS,
        nbf: now.saturating_sub(5),
        iat: now,
        jti: Uid::random().to_string(),
        access,
    })
}

/// Distribution's token response.
#[derive(Serialize)]
struct TokenAnswer {
    token: String,
    access_token: String,
    expires_in: u64,
    issued_at: String,
}

/// The registry's token endpoint (distribution's token authentication). Grants what the
/// caller may of what the `scope`s ask: a request for more is answered with less, as the
/// protocol wants; the registry then refuses what was not granted.
pub async fn token(State(s): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    match token_inner(&s, &headers, q.as_deref().unwrap_or_default()).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = e.into_response();
            if r.status() == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"op-registry\""));
            }
            r
        }
    }
}

async fn token_inner(s: &AppState, headers: &HeaderMap, query: &str) -> Result<Response, ApiError> {
    config(s)?;
    let mut scopes = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "service" if v != SERVICE => return Err(ApiError::invalid("service", format!("this token endpoint serves `{SERVICE}`"))),
            // Several scopes may come in one parameter, separated by spaces.
            "scope" => {
                for one in v.split(' ').filter(|x| !x.is_empty()) {
                    scopes.push(parse_scope(one).ok_or_else(|| ApiError::invalid("scope", format!("'{one}' is not type:name:actions")))?);
                }
            }
            _ => {}
        }
    }
    if scopes.len() > 16 {
        return Err(ApiError::invalid("scope", "ask for at most 16 scopes at once"));
    }
    let who = who(s, headers).await?;
    let mut granted = Vec::new();
    for a in scopes {
        let actions = match a.kind.as_str() {
            "repository" => who.allowed(s, &a.name, &a.actions),
            // The catalogue lists every repository: the operator's.
            "registry" if a.name == "catalog" && matches!(who, Who::Operator { .. }) => a.actions.clone(),
            _ => Vec::new(),
        };
        granted.push(Access { actions, ..a });
    }
    let token = sign(s, who.name(), granted)?;
    let answer = TokenAnswer { access_token: token.clone(), token, expires_in: TOKEN_TTL_SECS, issued_at: Utc::now().to_rfc3339() };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response())
}

/// Credentials with which the runtime of `cloudlet` pulls the images of organization `org`
/// (and its groups): a platform token for a puller named after the cloudlet, valid for a few
/// minutes and good for reading only.
pub fn pull_credentials(s: &AppState, org: &Name, cloudlet: &Name) -> Option<RegistryAuth> {
    let cfg = s.images.as_ref()?;
    let name = format!("cloudlet-{cloudlet}");
    let user = Name::new(name.chars().take(op_types::ids::NAME_MAX).collect::<String>()).ok()?;
    let password = s.keys.issue_for(&user, Role::Viewer, Some(org), TOKEN_TTL_SECS).ok()?;
    Some(RegistryAuth { username: user.to_string(), password, server: cfg.host.clone() })
}

/// Refuses an app image in the platform's registry that the app's organization may not read
/// or that was never pushed, naming `appRepo.imagePath`. Images elsewhere pass.
pub async fn check_pushed(s: &AppState, image: &str, org: &Name) -> Result<(), ApiError> {
    let Some(cfg) = s.images.as_ref() else { return Ok(()) };
    let Some((repo, tag)) = in_registry(&cfg.host, image) else { return Ok(()) };
    let field = "appRepo.imagePath";
    let owner = repository_org(repo).ok_or_else(|| ApiError::invalid(field, format!("registry images are <registry>/<organization>/<name>:<tag>, e.g. {}/{org}/web:1.0", cfg.host)))?;
    let scope = s.uni.index.read().unwrap_or_else(|e| e.into_inner()).org_scope(org);
    if !scope.contains(&owner) {
        return Err(ApiError::invalid(field, format!("repository {repo} belongs to organization '{owner}', not to '{org}'")));
    }
    let token = sign(s, "op-platform", vec![Access { kind: "repository".into(), name: repo.to_string(), actions: vec!["pull".into()] }])?;
    let url = format!("http://{}/v2/{repo}/manifests/{tag}", cfg.host);
    let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
    let resp = cfg.http.head(&url).bearer_auth(token).header(header::ACCEPT, accept).timeout(Duration::from_secs(5)).send().await;
    match resp {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) if r.status() == StatusCode::NOT_FOUND => {
            Err(ApiError::invalid(field, format!("{image} is not in the registry; push it first (podman push {image})")))
        }
        Ok(r) => Err(ApiError::Unavailable(format!("the registry answered {} for {image}", r.status()))),
        Err(e) => Err(ApiError::Unavailable(format!("the registry does not answer: {}", op_types::error_chain(&e)))),
    }
}

// ---------------------------------------------------------------------------------------------
// Notifications

#[derive(Deserialize)]
struct Envelope {
    events: Vec<RegistryEvent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistryEvent {
    action: String,
    timestamp: DateTime<Utc>,
    target: Target,
    #[serde(default)]
    actor: Actor,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    repository: String,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Default, Deserialize)]
struct Actor {
    #[serde(default)]
    name: String,
}

fn is_manifest(media_type: &str) -> bool {
    media_type.contains("manifest") || media_type.contains("image.index")
}

/// The stored name of `repository:tag`'s version record.
fn version_name(repository: &str, tag: &str) -> Result<Name, ApiError> {
    let h = op_types::ids::stable_hash(&format!("{repository}:{tag}"));
    Name::new(format!("image-{h:016x}")).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Receives the registry's notifications (its `Authorization` is the secret `opd` gave it).
pub async fn events(State(s): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Result<StatusCode, ApiError> {
    let cfg = config(&s)?;
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
    if !crate::auth::same_secret(presented, &cfg.events_secret) {
        return Err(ApiError::Unauthenticated("registry notifications carry the registry's secret".into()));
    }
    let env: Envelope = serde_json::from_slice(&body).map_err(|e| ApiError::invalid("events", e.to_string()))?;
    for e in env.events.into_iter().filter(|e| is_manifest(&e.target.media_type)) {
        match e.action.as_str() {
            "push" => record_push(&s, &e).await?,
            "pull" => record_pull(&s, &e).await?,
            _ => {}
        }
    }
    Ok(StatusCode::OK)
}

async fn record_push(s: &AppState, e: &RegistryEvent) -> Result<(), ApiError> {
    let Some(tag) = e.target.tag.as_deref() else { return Ok(()) };
    let org = repository_org(&e.target.repository);
    let name = version_name(&e.target.repository, tag)?;
    let push = PushRecord { digest: e.target.digest.clone(), by: e.actor.name.clone(), at: e.timestamp };
    loop {
        match s.repo.get_by_name::<ImageVersionSpec, ()>(Kind::ImageVersion, org.as_ref(), &name).await? {
            Some(mut v) => {
                if v.spec.digest == push.digest && v.spec.history.last().is_some_and(|h| h.at == push.at) {
                    return Ok(());
                }
                v.spec.digest = push.digest.clone();
                v.spec.size = e.target.size;
                v.spec.history.push(push.clone());
                if v.spec.history.len() > HISTORY {
                    v.spec.history.remove(0);
                }
                match s.repo.update(&mut v).await {
                    Ok(()) => break,
                    Err(op_store::RepoError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            None => {
                let spec = ImageVersionSpec {
                    repository: e.target.repository.clone(),
                    tag: tag.to_string(),
                    digest: push.digest.clone(),
                    size: e.target.size,
                    history: vec![push.clone()],
                    pulls: BTreeMap::new(),
                };
                let mut v: ImageVersion = Object::new(Kind::ImageVersion, org.clone(), name.clone(), spec);
                v.status.state = op_types::State::Ready;
                match s.repo.create(&mut v).await {
                    Ok(()) => break,
                    Err(op_store::RepoError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    tracing::info!(repository = %e.target.repository, tag, digest = %e.target.digest, by = %e.actor.name, "image pushed");
    Ok(())
}

async fn record_pull(s: &AppState, e: &RegistryEvent) -> Result<(), ApiError> {
    let org = repository_org(&e.target.repository);
    let (all, _) = s.repo.list::<ImageVersionSpec, ()>(Kind::ImageVersion).await?;
    // A pull by tag counts for that tag; a pull by digest, for every tag naming it.
    let pulled = all
        .into_iter()
        .filter(|v| v.metadata.organization == org && v.spec.repository == e.target.repository)
        .filter(|v| match e.target.tag.as_deref() {
            Some(tag) => v.spec.tag == tag,
            None => v.spec.digest == e.target.digest,
        })
        .map(|v| v.metadata.uid);
    for uid in pulled {
        loop {
            let Some(mut v) = s.repo.get::<ImageVersionSpec, ()>(Kind::ImageVersion, uid).await? else { break };
            *v.spec.pulls.entry(e.actor.name.clone()).or_default() += 1;
            match s.repo.update(&mut v).await {
                Ok(()) => break,
                Err(op_store::RepoError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Views

/// Where the registry is and which organizations' repositories the caller may read and write.
#[utoipa::path(get, path = "/op/v1/registry", tag = "registry", security(("bearer" = [])),
    responses((status = 200, body = RegistryInfo), (status = 401, body = ErrorInfo), (status = 503, body = ErrorInfo)))]
pub async fn info(State(s): State<AppState>, c: Caller) -> Result<Json<RegistryInfo>, ApiError> {
    let cfg = config(&s)?;
    let orgs: Vec<Name> = if c.role.is_operator() {
        let (all, _) = s.repo.list::<serde_json::Value, ()>(Kind::Organization).await?;
        all.into_iter().map(|o| o.metadata.name).collect()
    } else {
        c.scope.iter().cloned().collect()
    };
    let namespaces = orgs
        .into_iter()
        .map(|o| RegistryNamespace { prefix: format!("{}/{o}/", cfg.host), push: c.require_write(&o).is_ok(), organization: o })
        .collect();
    Ok(Json(RegistryInfo { host: cfg.host.clone(), service: SERVICE.into(), namespaces }))
}

/// Filters of `GET /op/v1/registry/images`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImageQuery {
    /// Only this organization's.
    pub organization: Option<String>,
}

/// The image versions pushed to the registry that the caller may see: digest and its
/// history, who pushed, how often each puller took it (the operator sees which cloudlets; a
/// developer, how many), and the apps that run it.
#[utoipa::path(get, path = "/op/v1/registry/images", tag = "registry", security(("bearer" = [])), params(ImageQuery),
    responses((status = 200, body = Vec<ImageVersionView>), (status = 401, body = ErrorInfo), (status = 503, body = ErrorInfo)))]
pub async fn images(State(s): State<AppState>, c: Caller, Query(q): Query<ImageQuery>) -> Result<Json<Vec<ImageVersionView>>, ApiError> {
    let cfg = config(&s)?;
    let (all, _) = s.repo.list::<ImageVersionSpec, ()>(Kind::ImageVersion).await?;
    let (apps, _) = s.repo.list::<AppSpec, ()>(Kind::App).await?;
    let mut v: Vec<ImageVersionView> = all
        .into_iter()
        .filter(|v| c.can_read(v.metadata.organization.as_ref()))
        .filter(|v| q.organization.as_ref().is_none_or(|o| v.metadata.organization.as_ref().is_some_and(|x| x.as_str() == o)))
        .map(|v| {
            let reference = format!("{}/{}:{}", cfg.host, v.spec.repository, v.spec.tag);
            let used_by = apps.iter().filter(|a| a.spec.app_repo.image_path == reference && c.can_read(a.metadata.organization.as_ref())).map(|a| a.metadata.uid).collect();
            let cloudlets: BTreeMap<String, u64> = v.spec.pulls.iter().filter_map(|(who, n)| who.strip_prefix("cloudlet-").map(|c| (c.to_string(), *n))).collect();
            ImageVersionView {
                organization: v.metadata.organization,
                pushed_by: v.spec.history.last().map(|h| h.by.clone()).unwrap_or_default(),
                pushed_at: v.spec.history.last().map(|h| h.at),
                cloudlet_pulls: cloudlets.values().sum(),
                cloudlets: if c.role.is_operator() { cloudlets } else { BTreeMap::new() },
                reference,
                repository: v.spec.repository,
                tag: v.spec.tag,
                digest: v.spec.digest,
                size: v.spec.size,
                history: v.spec.history,
                used_by,
            }
        })
        .collect();
    v.sort_by(|a, b| (a.repository.as_str(), a.tag.as_str()).cmp(&(b.repository.as_str(), b.tag.as_str())));
    Ok(Json(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_references() {
        let a = parse_scope("repository:acme/web:pull,push").unwrap();
        assert_eq!((a.kind.as_str(), a.name.as_str(), a.actions.clone()), ("repository", "acme/web", vec!["pull".to_string(), "push".to_string()]));
        assert_eq!(parse_scope("repository(plugin):acme/x:pull").unwrap().kind, "repository");
        assert_eq!(parse_scope("registry:catalog:*").unwrap().name, "catalog");
        assert!(parse_scope("nonsense").is_none() && parse_scope("repository::pull").is_none());
        assert_eq!(repository_org("acme/web").map(|n| n.to_string()), Some("acme".into()));
        assert_eq!(repository_org("acme/team/web").map(|n| n.to_string()), Some("acme".into()));
        assert!(repository_org("web").is_none() && repository_org("acme/").is_none());
        assert_eq!(in_registry("127.0.0.1:5000", "127.0.0.1:5000/acme/web:1.0"), Some(("acme/web", "1.0")));
        assert_eq!(in_registry("127.0.0.1:5000", "127.0.0.1:5000/acme/web"), Some(("acme/web", "latest")));
        assert_eq!(in_registry("127.0.0.1:5000", "localhost/op-sample-app:latest"), None);
        assert_eq!(in_registry("127.0.0.1:5000", "127.0.0.1:50001/acme/web:1"), None, "another port is another registry");
        assert_ne!(version_name("acme/web", "1.0").unwrap(), version_name("acme/web", "1.1").unwrap());
    }
}
