//! The EWBI's own OAuth2 authorization server: partner operators exchange their client
//! credentials for a bearer token (RFC 6749 §4.4, client credentials grant) at the GSMA
//! federation API's `tokenUrl` (`/oauth2/token`, scope `fed-mgmt`), then present it on every
//! federation call.
//!
//! Storage is not decided here: [`token_endpoint`] takes any [`ClientStore`], so the caller wires
//! registered partners in. Tokens are HS256 JWTs with audience [`AUDIENCE`], signed with a key
//! of the EWBI's own: an NBI token never passes [`EwbiTokens::verify`], and an EWBI token never
//! passes the NBI's check (it carries an `aud` the NBI does not accept, and no role).
//!
//! Secrets are only ever handled as argon2 hashes at rest and are never logged.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The `aud` of every EWBI token: keeps tokens of this interface and of the NBI apart even if
/// the two were ever (mis)configured with the same key.
pub const AUDIENCE: &str = "ewbi";

/// The only grant this endpoint supports: partners are machines, not users.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";

/// A partner operator's OAuth client registration, as the [`ClientStore`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// The client id the partner authenticates with.
    pub client_id: String,
    /// Argon2 PHC string of the client secret ([`hash_secret`]); the secret itself is never
    /// stored.
    pub secret_hash: String,
    /// The scopes the client may be granted (e.g. `fed-mgmt`); a token request may narrow them.
    pub scopes: Vec<String>,
    /// A disabled client cannot obtain tokens (its registration is kept, e.g. while suspended).
    pub enabled: bool,
}

/// Where the token endpoint looks clients up, so storage (the platform's store, a test map)
/// is the caller's choice. Implementations may use `async fn`.
pub trait ClientStore: Send + Sync {
    /// The registration of `client_id`, or `None` if there is none (or it cannot be read: the
    /// endpoint then answers `invalid_client`, revealing nothing).
    fn client(&self, client_id: &str) -> impl Future<Output = Option<ClientRecord>> + Send;
}

/// Hashes a client secret for storage (argon2id, random salt), reusing the NBI's password
/// hashing so both interfaces keep credentials the same way.
pub fn hash_secret(secret: &str) -> Result<String, OAuthError> {
    crate::auth::hash_password(secret).map_err(|e| OAuthError::Hashing(e.to_string()))
}

/// A new client secret to hand to a partner once: 32 random bytes from the OS, base64url
/// without padding (43 characters, safe in URLs, forms and Basic credentials).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Why a token could not be issued or was refused. The messages say what was wrong with the
/// token (so a partner can fix its client) without echoing the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OAuthError {
    /// The token's `exp` has passed: the partner must get a new one.
    #[error("access token expired; get a new one at /oauth2/token")]
    Expired,
    /// The signature does not match this interface's key (forged, or issued by another
    /// platform or by the NBI).
    #[error("access token signature is not valid for this interface")]
    BadSignature,
    /// The token was issued for another audience (e.g. an NBI token).
    #[error("access token is not meant for the federation interface (wrong audience)")]
    WrongAudience,
    /// The token was issued by another issuer.
    #[error("access token was issued by another issuer")]
    WrongIssuer,
    /// Not a JWT of ours at all, or a required claim is missing.
    #[error("access token is malformed: {0}")]
    Malformed(String),
    /// Signing a new token failed.
    #[error("cannot sign token: {0}")]
    Signing(String),
    /// Hashing a secret failed.
    #[error("cannot hash secret: {0}")]
    Hashing(String),
}

/// The claims of an EWBI access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EwbiClaims {
    /// Issuer: this platform's EWBI.
    pub iss: String,
    /// The client id the token was issued to (the partner).
    pub sub: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// Granted scopes, space-separated (RFC 6749 §3.3).
    pub scope: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Unique token id, so a token can be traced or denied individually.
    pub jti: String,
}

impl EwbiClaims {
    /// Whether the token grants `scope`, for handlers that check authorization in one line.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Granted scopes, space-separated.
    pub scope: String,
}

impl std::fmt::Debug for TokenResponse {
    // Hand-written so a debug log of a response never prints a usable token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Issues and checks EWBI access tokens (HS256 with a key of the EWBI's own).
pub struct EwbiTokens {
    key: Vec<u8>,
    issuer: String,
    ttl: Duration,
}

impl std::fmt::Debug for EwbiTokens {
    // Hand-written so the signing key is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwbiTokens").field("issuer", &self.issuer).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl EwbiTokens {
    /// Tokens signed with `key` (use at least 32 random bytes, distinct from the NBI's key),
    /// naming `issuer` (e.g. our federation id or EWBI URL), valid for `ttl`.
    pub fn new(key: impl Into<Vec<u8>>, issuer: impl Into<String>, ttl: Duration) -> Self {
        EwbiTokens { key: key.into(), issuer: issuer.into(), ttl }
    }

    /// The issuer put in and required of every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A new bearer token for `client_id` granting `scopes`.
    pub fn issue(&self, client_id: &str, scopes: &[String]) -> Result<TokenResponse, OAuthError> {
        let iat = now();
        let expires_in = self.ttl.as_secs();
        let claims = EwbiClaims {
            iss: self.issuer.clone(),
            sub: client_id.to_string(),
            aud: AUDIENCE.to_string(),
            scope: scopes.join(" "),
            exp: iat.saturating_add(expires_in),
            iat,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let access_token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&self.key))
            .map_err(|e| OAuthError::Signing(e.to_string()))?;
        Ok(TokenResponse { access_token, token_type: "Bearer".into(), expires_in, scope: claims.scope })
    }

    /// Checks a bearer token: HS256 signature with our key, not expired (no leeway), our
    /// issuer, audience [`AUDIENCE`], and all of `sub`, `exp`, `aud`, `iss` present.
    pub fn verify(&self, token: &str) -> Result<EwbiClaims, OAuthError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_audience(&[AUDIENCE]);
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        jsonwebtoken::decode::<EwbiClaims>(token, &DecodingKey::from_secret(&self.key), &v).map(|d| d.claims).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => OAuthError::Expired,
                ErrorKind::InvalidSignature => OAuthError::BadSignature,
                ErrorKind::InvalidAudience => OAuthError::WrongAudience,
                ErrorKind::InvalidIssuer => OAuthError::WrongIssuer,
                _ => OAuthError::Malformed(e.to_string()),
            }
        })
    }
}

/// An RFC 6749 §5.2 error response. `challenge` adds `WWW-Authenticate: Basic`, which §5.2
/// requires when the client tried the Authorization header (and which tells a client that sent
/// no credentials how to).
pub(crate) fn oauth_error(status: StatusCode, error: &'static str, description: &str, challenge: bool) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    let mut resp = (status, Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if challenge {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"ewbi\""));
    }
    resp
}

pub(crate) fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description, false)
}

/// `application/x-www-form-urlencoded` decoding of one Basic credential half (RFC 6749 §2.3.1).
fn form_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8().ok().map(|c| c.into_owned())
}

/// Client id and secret from an `Authorization: Basic` header; `Err` describes a malformed one.
fn basic_credentials(value: &HeaderValue) -> Result<(String, String), &'static str> {
    let value = value.to_str().map_err(|_| "Authorization header is not ASCII")?;
    let (scheme, encoded) = value.split_once(' ').ok_or("Authorization must be `Basic <credentials>`")?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("only HTTP Basic client authentication (or client_secret_post) is supported");
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("Basic credentials are not valid base64 of UTF-8")?;
    let (id, secret) = decoded.split_once(':').ok_or("Basic credentials must be client_id:client_secret")?;
    match (form_decode(id), form_decode(secret)) {
        (Some(id), Some(secret)) if !id.is_empty() => Ok((id, secret)),
        _ => Err("Basic credentials must be form-encoded client_id:client_secret"),
    }
}

/// Whether `s` is a valid scope-token (RFC 6749 §3.3: %x21 / %x23-5B / %x5D-7E).
fn valid_scope_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// A hash to verify against when the client is unknown or disabled, so the answer takes as long
/// as for a wrong secret and timing does not reveal which client ids exist.
pub(crate) fn dummy_hash() -> Option<&'static str> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY.get_or_init(|| hash_secret(&new_secret()).ok()).as_deref()
}

/// Argon2 verification off the async runtime (it takes tens of milliseconds by design).
pub(crate) async fn secret_matches(secret: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || crate::auth::verify_password(&secret, &hash)).await.unwrap_or(false)
}

/// The parameters of an `application/x-www-form-urlencoded` body (RFC 6749 §3.1, §3.2: a
/// parameter without a value counts as omitted, none may repeat); `Err` is the error answer.
pub(crate) fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<BTreeMap<String, String>, Box<Response>> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(Box::new(invalid_request("the body must be application/x-www-form-urlencoded")));
    }
    let mut form = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if value.is_empty() {
            continue;
        }
        if form.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(Box::new(invalid_request(&format!("parameter `{name}` is repeated"))));
        }
    }
    Ok(form)
}

/// The client's id and secret (RFC 6749 §2.3.1): HTTP Basic or `client_id` and
/// `client_secret` in the form, never both; a public client sends `client_id` alone (secret
/// `None`). The flag says whether Basic was used (errors then carry a challenge). `Err` is the
/// error answer.
pub(crate) fn client_credentials(headers: &HeaderMap, form: &BTreeMap<String, String>) -> Result<(String, Option<String>, bool), Box<Response>> {
    let mut auth_headers = headers.get_all(header::AUTHORIZATION).iter();
    let basic = auth_headers.next();
    if auth_headers.next().is_some() {
        return Err(Box::new(invalid_request("more than one Authorization header")));
    }
    let (body_id, body_secret) = (form.get("client_id"), form.get("client_secret"));
    match basic {
        Some(value) => {
            let (id, secret) = basic_credentials(value).map_err(|m| Box::new(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", m, true)))?;
            if body_secret.is_some() {
                return Err(Box::new(invalid_request("use one client authentication method: HTTP Basic or client_secret in the body, not both")));
            }
            if body_id.is_some_and(|b| *b != id) {
                return Err(Box::new(invalid_request("client_id in the body differs from the one in the Authorization header")));
            }
            Ok((id, Some(secret), true))
        }
        None => match (body_id, body_secret) {
            (Some(id), secret) => Ok((id.clone(), secret.cloned(), false)),
            (None, Some(_)) => Err(Box::new(invalid_request("client_id is missing (client_secret_post needs client_id and client_secret)"))),
            (None, None) => Err(Box::new(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is required: HTTP Basic or client_id and client_secret in the body",
                true,
            ))),
        },
    }
}

/// `POST /oauth2/token`: the client credentials grant (RFC 6749 §4.4) for partner operators.
///
/// Takes the raw request pieces so the caller decides where clients are stored: `headers` for
/// `Content-Type` and `Authorization`, `body` the `application/x-www-form-urlencoded` form.
/// Client authentication is `client_secret_basic` or `client_secret_post`, never both. The
/// requested `scope` must be a subset of the client's scopes (default: all of them). Errors are
/// RFC 6749 §5.2 JSON (`invalid_request`, `invalid_client` 401, `unsupported_grant_type`,
/// `invalid_scope`); every answer carries `Cache-Control: no-store`. Neither secrets nor
/// tokens are logged.
pub async fn token_endpoint<S: ClientStore + ?Sized>(store: &S, tokens: &EwbiTokens, headers: &HeaderMap, body: &[u8]) -> Response {
    let form = match parse_form(headers, body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let (grant_type, scope) = (form.get("grant_type").cloned(), form.get("scope").cloned());
    let (client_id, secret, used_basic) = match client_credentials(headers, &form) {
        Ok((id, Some(secret), basic)) => (id, secret, basic),
        Ok((_, None, _)) => return invalid_request("client_secret is missing (client_secret_post needs client_id and client_secret)"),
        Err(r) => return *r,
    };

    match grant_type.as_deref() {
        Some(GRANT_CLIENT_CREDENTIALS) => {}
        Some(_) => {
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only grant_type=client_credentials is supported", false)
        }
        None => return invalid_request("grant_type is required (client_credentials)"),
    }
    let requested: Option<Vec<String>> = scope.map(|s| {
        let mut scopes: Vec<String> = Vec::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            if !scopes.iter().any(|t| t == token) {
                scopes.push(token.to_string());
            }
        }
        scopes
    });
    if requested.as_ref().is_some_and(|r| r.iter().any(|t| !valid_scope_token(t))) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "scope is malformed (RFC 6749 §3.3)", false);
    }

    let record = store.client(&client_id).await.filter(|r| r.enabled);
    let authenticated = match &record {
        Some(r) => secret_matches(secret, r.secret_hash.clone()).await,
        None => {
            if let Some(dummy) = dummy_hash() {
                secret_matches(secret, dummy.to_string()).await;
            }
            false
        }
    };
    let record = match record {
        Some(r) if authenticated => r,
        _ => {
            tracing::info!(client_id = ?client_id, "EWBI token refused: client authentication failed");
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client, disabled client or wrong secret", used_basic);
        }
    };

    let granted = match requested {
        None => record.scopes.clone(),
        Some(r) => {
            if let Some(extra) = r.iter().find(|s| !record.scopes.contains(s)) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!("scope `{extra}` is not granted to this client"),
                    false,
                );
            }
            r
        }
    };
    match tokens.issue(&record.client_id, &granted) {
        Ok(token) => {
            tracing::info!(client_id = ?record.client_id, scope = %token.scope, "EWBI token issued");
            let mut resp = Json(token).into_response();
            let h = resp.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "EWBI token could not be issued");
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the token could not be issued; retry later", false)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    const SECRET: &str = "s3cret:with+odd&chars";

    struct Clients(HashMap<String, ClientRecord>);

    impl ClientStore for Clients {
        async fn client(&self, client_id: &str) -> Option<ClientRecord> {
            self.0.get(client_id).cloned()
        }
    }

    fn secret_hash() -> String {
        static HASH: OnceLock<String> = OnceLock::new();
        HASH.get_or_init(|| hash_secret(SECRET).unwrap()).clone()
    }

    fn tokens() -> EwbiTokens {
        EwbiTokens::new(vec![1u8; 32], "op-test", Duration::from_secs(600))
    }

    fn app() -> Router {
        let rec = |id: &str, enabled| ClientRecord {
            client_id: id.into(),
            secret_hash: secret_hash(),
            scopes: vec!["fed-mgmt".into(), "x-read".into()],
            enabled,
        };
        let store = Arc::new(Clients(HashMap::from([
            ("partner-a".to_string(), rec("partner-a", true)),
            ("part:ner".to_string(), rec("part:ner", true)),
            ("off".to_string(), rec("off", false)),
        ])));
        let tokens = Arc::new(tokens());
        Router::new().route(
            "/oauth2/token",
            post(move |headers: HeaderMap, body: axum::body::Bytes| async move {
                token_endpoint(store.as_ref(), &tokens, &headers, &body).await
            }),
        )
    }

    fn basic(id: &str, secret: &str) -> String {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
    }

    fn form(pairs: &[(&str, &str)]) -> String {
        form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
    }

    async fn call(auth: Option<&str>, body: &str) -> (StatusCode, HeaderMap, serde_json::Value) {
        let mut req = Request::post("/oauth2/token").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resp = app().oneshot(req.body(Body::from(body.to_string())).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    fn assert_error(r: &(StatusCode, HeaderMap, serde_json::Value), status: StatusCode, error: &str, challenge: bool) {
        assert_eq!(r.0, status, "{:?}", r.2);
        assert_eq!(r.2["error"], error, "{:?}", r.2);
        assert!(r.2["error_description"].is_string());
        assert_eq!(r.1.get(header::CACHE_CONTROL).unwrap(), "no-store");
        assert_eq!(r.1.contains_key(header::WWW_AUTHENTICATE), challenge, "WWW-Authenticate presence");
    }

    #[tokio::test]
    async fn basic_credentials_get_a_token_with_all_scopes() {
        let r = call(Some(&basic("partner-a", SECRET)), &form(&[("grant_type", "client_credentials")])).await;
        assert_eq!(r.0, StatusCode::OK, "{:?}", r.2);
        assert_eq!(r.1.get(header::CACHE_CONTROL).unwrap(), "no-store");
        assert_eq!(r.2["token_type"], "Bearer");
        assert_eq!(r.2["expires_in"], 600);
        assert_eq!(r.2["scope"], "fed-mgmt x-read");
        let claims = tokens().verify(r.2["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims.sub, "partner-a");
        assert_eq!(claims.aud, AUDIENCE);
        assert!(claims.has_scope("fed-mgmt") && claims.has_scope("x-read"));
        assert_eq!(claims.exp, claims.iat + 600);
    }

    #[tokio::test]
    async fn basic_credentials_are_form_decoded() {
        // A client id with ':' must be percent-encoded before Basic (RFC 6749 §2.3.1).
        let r = call(Some(&basic("part:ner", SECRET)), &form(&[("grant_type", "client_credentials")])).await;
        assert_eq!(r.0, StatusCode::OK, "{:?}", r.2);
        assert_eq!(tokens().verify(r.2["access_token"].as_str().unwrap()).unwrap().sub, "part:ner");
    }

    #[tokio::test]
    async fn post_credentials_and_narrowed_scope() {
        let body = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "partner-a"),
            ("client_secret", SECRET),
            ("scope", "fed-mgmt"),
        ]);
        let r = call(None, &body).await;
        assert_eq!(r.0, StatusCode::OK, "{:?}", r.2);
        assert_eq!(r.2["scope"], "fed-mgmt");
        let claims = tokens().verify(r.2["access_token"].as_str().unwrap()).unwrap();
        assert!(claims.has_scope("fed-mgmt") && !claims.has_scope("x-read"));
    }

    #[tokio::test]
    async fn wrong_secret_is_invalid_client_with_challenge_only_for_basic() {
        let r = call(Some(&basic("partner-a", "wrong")), &form(&[("grant_type", "client_credentials")])).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client", true);
        let body = form(&[("grant_type", "client_credentials"), ("client_id", "partner-a"), ("client_secret", "wrong")]);
        assert_error(&call(None, &body).await, StatusCode::UNAUTHORIZED, "invalid_client", false);
    }

    #[tokio::test]
    async fn unknown_disabled_and_malformed_clients_are_refused() {
        let grant = form(&[("grant_type", "client_credentials")]);
        assert_error(&call(Some(&basic("nobody", SECRET)), &grant).await, StatusCode::UNAUTHORIZED, "invalid_client", true);
        assert_error(&call(Some(&basic("off", SECRET)), &grant).await, StatusCode::UNAUTHORIZED, "invalid_client", true);
        assert_error(&call(Some("Basic !!notbase64"), &grant).await, StatusCode::UNAUTHORIZED, "invalid_client", true);
        assert_error(&call(Some("Bearer abc"), &grant).await, StatusCode::UNAUTHORIZED, "invalid_client", true);
        // No client authentication at all (§5.2: invalid_client).
        assert_error(&call(None, &grant).await, StatusCode::UNAUTHORIZED, "invalid_client", true);
    }

    #[tokio::test]
    async fn missing_or_duplicate_credentials_are_invalid_request() {
        let both = form(&[("grant_type", "client_credentials"), ("client_secret", SECRET)]);
        assert_error(&call(Some(&basic("partner-a", SECRET)), &both).await, StatusCode::BAD_REQUEST, "invalid_request", false);
        let other_id = form(&[("grant_type", "client_credentials"), ("client_id", "someone-else")]);
        assert_error(&call(Some(&basic("partner-a", SECRET)), &other_id).await, StatusCode::BAD_REQUEST, "invalid_request", false);
        let no_secret = form(&[("grant_type", "client_credentials"), ("client_id", "partner-a")]);
        assert_error(&call(None, &no_secret).await, StatusCode::BAD_REQUEST, "invalid_request", false);
        let no_id = form(&[("grant_type", "client_credentials"), ("client_secret", SECRET)]);
        assert_error(&call(None, &no_id).await, StatusCode::BAD_REQUEST, "invalid_request", false);
        let repeated = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "partner-a"),
            ("client_id", "partner-a"),
            ("client_secret", SECRET),
        ]);
        assert_error(&call(None, &repeated).await, StatusCode::BAD_REQUEST, "invalid_request", false);
    }

    #[tokio::test]
    async fn same_id_in_body_and_basic_is_accepted() {
        let body = form(&[("grant_type", "client_credentials"), ("client_id", "partner-a")]);
        let r = call(Some(&basic("partner-a", SECRET)), &body).await;
        assert_eq!(r.0, StatusCode::OK, "{:?}", r.2);
    }

    #[tokio::test]
    async fn grant_type_is_checked() {
        let auth = basic("partner-a", SECRET);
        let pw = form(&[("grant_type", "password"), ("username", "u"), ("password", "p")]);
        assert_error(&call(Some(&auth), &pw).await, StatusCode::BAD_REQUEST, "unsupported_grant_type", false);
        assert_error(&call(Some(&auth), "").await, StatusCode::BAD_REQUEST, "invalid_request", false);
    }

    #[tokio::test]
    async fn scope_outside_the_clients_is_invalid_scope() {
        let auth = basic("partner-a", SECRET);
        let body = form(&[("grant_type", "client_credentials"), ("scope", "fed-mgmt admin")]);
        assert_error(&call(Some(&auth), &body).await, StatusCode::BAD_REQUEST, "invalid_scope", false);
        let body = form(&[("grant_type", "client_credentials"), ("scope", "fed\"mgmt")]);
        assert_error(&call(Some(&auth), &body).await, StatusCode::BAD_REQUEST, "invalid_scope", false);
    }

    #[tokio::test]
    async fn body_must_be_a_form() {
        let req = Request::post("/oauth2/token")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, basic("partner-a", SECRET))
            .body(Body::from(r#"{"grant_type":"client_credentials"}"#))
            .unwrap();
        let resp = app().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"], "invalid_request");
    }

    #[test]
    fn verify_rejects_expired_foreign_and_misaddressed_tokens() {
        let t = tokens();
        let ok = t.issue("partner-a", &["fed-mgmt".into()]).unwrap();
        assert_eq!(t.verify(&ok.access_token).unwrap().scope, "fed-mgmt");
        assert!(!format!("{ok:?}").contains(&ok.access_token), "Debug must not print the token");

        let sign = |claims: &EwbiClaims, key: &[u8]| {
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(key)).unwrap()
        };
        let base = t.verify(&ok.access_token).unwrap();
        let expired = EwbiClaims { exp: now() - 5, iat: now() - 100, ..base.clone() };
        assert_eq!(t.verify(&sign(&expired, &[1u8; 32])), Err(OAuthError::Expired));
        let other_aud = EwbiClaims { aud: "nbi".into(), ..base.clone() };
        assert_eq!(t.verify(&sign(&other_aud, &[1u8; 32])), Err(OAuthError::WrongAudience));
        let other_iss = EwbiClaims { iss: "someone".into(), ..base.clone() };
        assert_eq!(t.verify(&sign(&other_iss, &[1u8; 32])), Err(OAuthError::WrongIssuer));
        assert_eq!(t.verify(&sign(&base, &[2u8; 32])), Err(OAuthError::BadSignature));
        assert!(matches!(t.verify("not.a.jwt"), Err(OAuthError::Malformed(_))));
    }

    #[test]
    fn nbi_and_ewbi_tokens_never_cross() {
        use op_types::specs::Role;
        let user = op_types::Name::new("alice").unwrap();
        // Different algorithms (ES256 and HS256) and issuers: neither side takes the other's.
        {
            let pem = crate::auth::TokenKeys::generate_pem().unwrap();
            let nbi = crate::auth::TokenKeys::from_pem(&pem, "http://127.0.0.1:8080").unwrap();
            let nbi_token = nbi.issue(&user, Role::OperatorAdmin, None).unwrap();
            assert!(tokens().verify(&nbi_token).is_err(), "NBI token accepted by the EWBI");
            let ewbi_token = tokens().issue("partner-a", &["fed-mgmt".into()]).unwrap().access_token;
            assert!(nbi.verify(&ewbi_token).is_err(), "EWBI token accepted by the NBI");
        }
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = new_secret();
        assert!(a.len() >= 43 && !a.contains(['+', '/', '=']));
        assert_ne!(a, new_secret());
        let h = hash_secret(&a).unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(!h.contains(&a));
        assert!(crate::auth::verify_password(&a, &h));
        assert!(!crate::auth::verify_password("other", &h));
    }
}
