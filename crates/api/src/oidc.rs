//! The platform as an OpenID Connect provider (authorization code flow with PKCE, RFC 6749,
//! RFC 7636, OpenID Connect Core 1.0): single sign-on for the console, the registry and any
//! tool an operator registers as a client. Its access tokens are the platform's ordinary API
//! tokens (ES256, verifiable with `/oauth2/jwks`), so what a user logs in to once works
//! everywhere.
//!
//! Authorization codes live in memory for [`CODE_TTL`] and are single-use: a restart between
//! the login and the exchange makes the user log in again, nothing more.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use base64::Engine as _;
use op_types::specs::{OidcClient, OidcClientSpec, Role, UserSpec};
use op_types::{Kind, Name, Object, State as ObjState};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::{Caller, TOKEN_TTL_SECS};
use crate::error::{ApiError, ErrorInfo};
use crate::ewbi::oauth::{client_credentials, dummy_hash, hash_secret, invalid_request, new_secret, oauth_error, parse_form, secret_matches};
use crate::infra::path_name;
use crate::json::Body;
use crate::state::AppState;

/// How long an authorization code may wait for its exchange.
pub const CODE_TTL: Duration = Duration::from_secs(60);

/// Codes handed out and not yet exchanged.
#[derive(Default)]
pub struct Codes(Mutex<HashMap<String, Grant>>);

/// What an authorization code stands for.
#[derive(Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    user: Name,
    role: Role,
    org: Option<Name>,
    nonce: Option<String>,
    challenge: Option<String>,
    at: Instant,
}

impl Codes {
    fn insert(&self, g: Grant) -> String {
        let code = new_secret();
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, g| g.at.elapsed() < CODE_TTL);
        m.insert(code.clone(), g);
        code
    }

    /// Takes a code out (single use), if it is still fresh.
    fn take(&self, code: &str) -> Option<Grant> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(code).filter(|g| g.at.elapsed() < CODE_TTL)
    }
}

/// `/.well-known/openid-configuration`: where everything is, for relying parties.
pub async fn discovery(State(s): State<AppState>) -> Json<serde_json::Value> {
    let iss = s.keys.issuer();
    Json(serde_json::json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "token_endpoint": format!("{iss}/oauth2/token"),
        "userinfo_endpoint": format!("{iss}/oauth2/userinfo"),
        "jwks_uri": format!("{iss}/oauth2/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["openid", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "preferred_username", "org", "role"],
    }))
}

/// `/oauth2/jwks`: the public key every platform token is signed with.
pub async fn jwks(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(s.keys.jwks())
}

/// The query of `GET /oauth2/authorize` (and the hidden fields of the login form).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// The login form's fields: the request's parameters plus the credentials.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(flatten)]
    params: AuthorizeParams,
    username: String,
    password: String,
    #[serde(default)]
    organization: Option<String>,
}

fn esc(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

/// An error shown to the user rather than sent to the client: the request cannot be trusted
/// to name where to send it (RFC 6749 §4.1.2.1).
fn error_page(status: StatusCode, message: &str) -> Response {
    let html = format!("<!doctype html><html><head><title>Sign-in error</title></head><body><h1>Sign-in error</h1><p id=\"error\">{}</p></body></html>", esc(message));
    (status, Html(html)).into_response()
}

fn login_page(p: &AuthorizeParams, client: &str, error: Option<&str>) -> Response {
    let hidden: String = serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(&k), esc(v))))
        .collect();
    let err = error.map(|e| format!("<p id=\"error\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in</title></head><body>\
         <h1>Sign in to the Operator Platform</h1><p>for <b>{}</b></p>{err}\
         <form method=\"post\" action=\"/oauth2/authorize\">{hidden}\
         <label>User <input name=\"username\" autocomplete=\"username\" required></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <label>Organization (optional) <input name=\"organization\"></label>\
         <button type=\"submit\">Sign in</button></form></body></html>",
        esc(client)
    );
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    let mut resp = (status, Html(html)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

/// The console's client id: a public client (PKCE) built in, whose one redirect URI is the
/// console on this platform's own URL, so the console signs in through the provider with no
/// registration.
pub const CONSOLE_CLIENT: &str = "op-console";

/// A registered client, or the built-in console.
async fn find_client(s: &AppState, name: &Name) -> Option<OidcClient> {
    if name.as_str() == CONSOLE_CLIENT {
        let redirect = format!("{}/console/", s.keys.issuer().trim_end_matches('/'));
        return Some(Object::new(Kind::OidcClient, None, name.clone(), OidcClientSpec { redirect_uris: vec![redirect], secret_hash: None }));
    }
    s.repo.get_by_name::<OidcClientSpec, ()>(Kind::OidcClient, None, name).await.ok().flatten()
}

/// Checks the client and redirect URI (errors shown to the user), then the rest (errors sent
/// to the client's redirect URI). Returns the client's name.
async fn check_request(s: &AppState, p: &AuthorizeParams) -> Result<OidcClient, Response> {
    let client_id = p.client_id.as_deref().ok_or_else(|| error_page(StatusCode::BAD_REQUEST, "client_id is missing"))?;
    let unknown = || error_page(StatusCode::BAD_REQUEST, "unknown client_id: the operator registers clients with `opctl oidc-client create`");
    let name = Name::new(client_id).map_err(|_| unknown())?;
    let client = find_client(s, &name).await.ok_or_else(unknown)?;
    let redirect = p.redirect_uri.as_deref().ok_or_else(|| error_page(StatusCode::BAD_REQUEST, "redirect_uri is missing"))?;
    if !client.spec.redirect_uris.iter().any(|u| u == redirect) {
        return Err(error_page(StatusCode::BAD_REQUEST, "redirect_uri is not one registered for this client"));
    }
    let fail = |error: &str, description: &str| redirect_with(redirect, &[("error", error), ("error_description", description)], p.state.as_deref());
    if p.response_type.as_deref() != Some("code") {
        return Err(fail("unsupported_response_type", "only response_type=code is supported"));
    }
    if !p.scope.as_deref().unwrap_or_default().split(' ').any(|s| s == "openid") {
        return Err(fail("invalid_scope", "scope must include openid"));
    }
    match (p.code_challenge.as_deref(), p.code_challenge_method.as_deref()) {
        (Some(c), Some("S256")) if (43..=128).contains(&c.len()) => {}
        (Some(_), Some("S256")) => return Err(fail("invalid_request", "code_challenge must be 43 to 128 characters")),
        (Some(_), _) => return Err(fail("invalid_request", "code_challenge_method must be S256")),
        (None, _) if client.spec.secret_hash.is_none() => return Err(fail("invalid_request", "public clients must use PKCE (code_challenge, S256)")),
        (None, _) => {}
    }
    Ok(client)
}

fn redirect_with(uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Response {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    if let Some(st) = state {
        q.append_pair("state", st);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{uri}{sep}{}", q.finish())).into_response()
}

/// `GET /oauth2/authorize`: the login page for a client's authorization request.
pub async fn authorize(State(s): State<AppState>, Query(p): Query<AuthorizeParams>) -> Response {
    match check_request(&s, &p).await {
        Ok(client) => login_page(&p, client.metadata.name.as_str(), None),
        Err(r) => r,
    }
}

/// `POST /oauth2/authorize`: the login form. Right credentials redirect to the client with a
/// code; wrong ones show the form again (with no hint of which part was wrong).
pub async fn login(State(s): State<AppState>, axum::Form(f): axum::Form<LoginForm>) -> Response {
    let client = match check_request(&s, &f.params).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let again = |msg: &str| login_page(&f.params, client.metadata.name.as_str(), Some(msg));
    let Ok(name) = Name::new(f.username.clone()) else { return again("wrong user name or password") };
    let user = s.repo.get_by_name::<UserSpec, ()>(Kind::User, None, &name).await.ok().flatten();
    let hash = user.as_ref().map(|u| u.spec.password_hash.clone()).or_else(|| dummy_hash().map(str::to_string)).unwrap_or_default();
    let ok = secret_matches(f.password.clone(), hash).await;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(user = %f.username, client = %client.metadata.name, "failed sign-in");
        return again("wrong user name or password");
    };
    let org = f.organization.as_deref().map(str::trim).filter(|o| !o.is_empty());
    let (role, org) = match crate::users::acting_as(&s, &user, org) {
        Ok(r) => r,
        Err(e) => return again(&e.to_string()),
    };
    let redirect = f.params.redirect_uri.clone().unwrap_or_default();
    let code = s.oidc_codes.insert(Grant {
        client_id: client.metadata.name.to_string(),
        redirect_uri: redirect.clone(),
        user: name,
        role,
        org,
        nonce: f.params.nonce.clone(),
        challenge: f.params.code_challenge.clone(),
        at: Instant::now(),
    });
    tracing::info!(user = %user.metadata.name, client = %client.metadata.name, "signed in");
    redirect_with(&redirect, &[("code", &code)], f.params.state.as_deref())
}

/// Claims of an ID token.
#[derive(Debug, Serialize, Deserialize)]
pub struct IdClaims {
    /// This platform.
    pub iss: String,
    /// The user.
    pub sub: String,
    /// The client.
    pub aud: String,
    /// Expiry.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// When the user signed in.
    pub auth_time: u64,
    /// The client's nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The user name.
    pub preferred_username: String,
    /// The organization the user acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The role there.
    pub role: Role,
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// `POST /oauth2/token`: exchanges an authorization code for an access token (the platform's
/// API token) and an ID token. Confidential clients authenticate (Basic or post); public ones
/// prove the PKCE verifier. Errors are RFC 6749 §5.2.
pub async fn token(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match parse_form(&headers, &body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let (client_id, secret, basic) = match client_credentials(&headers, &form) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let bad_client = || oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret", basic);
    let Ok(name) = Name::new(client_id.clone()) else { return bad_client() };
    let client = find_client(&s, &name).await;
    let authenticated = match (client.as_ref().and_then(|c| c.spec.secret_hash.clone()), secret) {
        (Some(hash), Some(secret)) => secret_matches(secret, hash).await,
        (None, None) => client.is_some(),
        _ => false,
    };
    if !authenticated {
        return bad_client();
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {}
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only grant_type=authorization_code is supported", false),
        None => return invalid_request("grant_type is required (authorization_code)"),
    }
    let invalid_grant = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d, false);
    let Some(code) = form.get("code") else { return invalid_request("code is required") };
    let Some(g) = s.oidc_codes.take(code) else { return invalid_grant("the code is unknown, used or expired; sign in again") };
    if g.client_id != client_id {
        return invalid_grant("the code was issued to another client");
    }
    if form.get("redirect_uri") != Some(&g.redirect_uri) {
        return invalid_grant("redirect_uri differs from the authorization request's");
    }
    if let Some(challenge) = &g.challenge {
        let Some(verifier) = form.get("code_verifier") else { return invalid_grant("code_verifier is required (PKCE)") };
        let derived = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if !crate::auth::same_secret(&derived, challenge) {
            return invalid_grant("code_verifier does not match the code_challenge");
        }
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let access = s.keys.issue(&g.user, g.role, g.org.as_ref());
    let id = s.keys.sign(&IdClaims {
        iss: s.keys.issuer().to_string(),
        sub: g.user.to_string(),
        aud: client_id,
        exp: now + TOKEN_TTL_SECS,
        iat: now,
        auth_time: now.saturating_sub(g.at.elapsed().as_secs()),
        nonce: g.nonce,
        preferred_username: g.user.to_string(),
        org: g.org.as_ref().map(ToString::to_string),
        role: g.role,
    });
    match (access, id) {
        (Ok(access_token), Ok(id_token)) => no_store(
            Json(serde_json::json!({"access_token": access_token, "token_type": "Bearer", "expires_in": TOKEN_TTL_SECS, "id_token": id_token, "scope": "openid"}))
                .into_response(),
        ),
        _ => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the token could not be issued; retry later", false),
    }
}

/// `GET /oauth2/userinfo`: who the access token's user is.
pub async fn userinfo(c: Caller) -> Json<serde_json::Value> {
    Json(serde_json::json!({"sub": c.user, "preferred_username": c.user, "org": c.org, "role": c.role}))
}

/// Register a client of the OpenID Connect provider.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateOidcClient {
    /// The client id.
    pub name: Name,
    /// Exact redirect URIs (`https://`, or `http://` on a loopback host).
    pub redirect_uris: Vec<String>,
    /// A public client (a browser app, a CLI) gets no secret and must use PKCE.
    #[serde(default)]
    pub public: bool,
}

/// A client as shown: never its secret's hash.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcClientView {
    /// The client id.
    pub client_id: Name,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Whether it has no secret.
    pub public: bool,
    /// The secret: only in the answer to its creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

fn view(c: OidcClient, secret: Option<String>) -> OidcClientView {
    OidcClientView { client_id: c.metadata.name, public: c.spec.secret_hash.is_none(), redirect_uris: c.spec.redirect_uris, client_secret: secret }
}

fn valid_redirect(u: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(u) else { return false };
    let loopback = url.host_str().is_some_and(|h| h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) || h == "[::1]");
    url.fragment().is_none() && (url.scheme() == "https" || (url.scheme() == "http" && loopback))
}

/// Register a client (operator admins). A confidential client's secret is in this answer only.
#[utoipa::path(post, path = "/op/v1/oidc/clients", tag = "auth", security(("bearer" = [])), request_body = CreateOidcClient,
    responses((status = 201, body = OidcClientView), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn create_client(State(s): State<AppState>, c: Caller, Body(req): Body<CreateOidcClient>) -> Result<(StatusCode, Json<OidcClientView>), ApiError> {
    c.require_operator_admin()?;
    if req.name.as_str() == CONSOLE_CLIENT {
        return Err(ApiError::invalid("name", format!("'{CONSOLE_CLIENT}' is the console's own client; choose another name")));
    }
    if req.redirect_uris.is_empty() || req.redirect_uris.len() > 16 {
        return Err(ApiError::invalid("redirectUris", "give 1 to 16 redirect URIs"));
    }
    if let Some((i, _)) = req.redirect_uris.iter().enumerate().find(|(_, u)| !valid_redirect(u)) {
        return Err(ApiError::invalid(format!("redirectUris[{i}]"), "must be an absolute https:// URI (http:// only on a loopback host) without a fragment"));
    }
    let secret = (!req.public).then(new_secret);
    let secret_hash = match secret.clone() {
        Some(sec) => Some(
            tokio::task::spawn_blocking(move || hash_secret(&sec))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        ),
        None => None,
    };
    let mut obj: OidcClient = Object::new(Kind::OidcClient, None, req.name, OidcClientSpec { redirect_uris: req.redirect_uris, secret_hash });
    obj.status.state = ObjState::Ready;
    s.repo.create(&mut obj).await?;
    tracing::info!(client = %obj.metadata.name, by = %c.user, "OpenID Connect client registered");
    Ok((StatusCode::CREATED, Json(view(obj, secret))))
}

/// List clients (operator).
#[utoipa::path(get, path = "/op/v1/oidc/clients", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Vec<OidcClientView>), (status = 403, body = ErrorInfo)))]
pub async fn list_clients(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<OidcClientView>>, ApiError> {
    c.require_operator()?;
    let (all, _) = s.repo.list::<OidcClientSpec, ()>(Kind::OidcClient).await?;
    Ok(Json(all.into_iter().map(|o| view(o, None)).collect()))
}

/// Remove a client (operator admins): its codes stop working; tokens already issued live out
/// their time.
#[utoipa::path(delete, path = "/op/v1/oidc/clients/{name}", tag = "auth", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorInfo)))]
pub async fn delete_client(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    c.require_operator_admin()?;
    let name = path_name(&name)?;
    let obj = s.repo.get_by_name::<OidcClientSpec, ()>(Kind::OidcClient, None, &name).await?.ok_or_else(|| ApiError::NotFound(format!("client '{name}' not found")))?;
    s.repo.delete(&obj).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris() {
        assert!(valid_redirect("https://console.example/cb"));
        assert!(valid_redirect("http://127.0.0.1:8080/cb") && valid_redirect("http://localhost/cb"));
        assert!(!valid_redirect("http://console.example/cb"), "plain http off loopback");
        assert!(!valid_redirect("https://console.example/cb#x") && !valid_redirect("/cb") && !valid_redirect("javascript:alert(1)"));
    }

    #[test]
    fn pages_escape_what_they_echo() {
        let p = AuthorizeParams { state: Some("\"><script>x</script>".into()), ..Default::default() };
        let r = login_page(&p, "<b>", Some("<i>"));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(esc("\"<&>'"), "&quot;&lt;&amp;&gt;&#39;");
    }

    #[test]
    fn codes_are_single_use() {
        let codes = Codes::default();
        let g = Grant {
            client_id: "c".into(),
            redirect_uri: "https://x/cb".into(),
            user: Name::new("alice").unwrap(),
            role: Role::Viewer,
            org: None,
            nonce: None,
            challenge: None,
            at: Instant::now(),
        };
        let code = codes.insert(g);
        assert!(codes.take(&code).is_some());
        assert!(codes.take(&code).is_none(), "a code works once");
        assert!(codes.take("made-up").is_none());
    }
}
