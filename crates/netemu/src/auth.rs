//! OAuth2 client credentials (RFC 6749 §4.4): `POST /oauth2/token` issues bearer tokens to the
//! scenario's clients, and the extractors [`CamaraClient`] / [`NefClient`] make every standard API
//! require one (401 in the API family's own error body otherwise).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{CamaraError, ProblemError};
use crate::scenario::{OAuthConfig, TokenFormat};
use crate::state::{lock, Emulator};

const ISSUER: &str = "op-netemu";

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    iat: i64,
    exp: i64,
    jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Issues and checks bearer tokens for the scenario's clients.
pub struct TokenIssuer {
    format: TokenFormat,
    lifetime_s: u64,
    clients: HashMap<String, String>,
    jwt_key: Mutex<Vec<u8>>,
    opaque: Mutex<HashMap<String, (String, i64)>>,
}

fn random_bytes() -> Vec<u8> {
    let mut b = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

impl TokenIssuer {
    /// From the scenario's `oauth` section, with a fresh signing key.
    pub fn new(cfg: &OAuthConfig) -> Self {
        TokenIssuer {
            format: cfg.token_format,
            lifetime_s: cfg.token_lifetime_seconds,
            clients: cfg.clients.iter().map(|c| (c.client_id.clone(), c.client_secret.clone())).collect(),
            jwt_key: Mutex::new(random_bytes()),
            opaque: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the client exists and the secret is its own.
    pub fn authenticate(&self, client_id: &str, secret: &str) -> bool {
        self.clients.get(client_id).is_some_and(|s| s == secret)
    }

    /// A new access token for `client_id` and its lifetime in seconds.
    pub fn issue(&self, client_id: &str, scope: Option<String>) -> Result<(String, u64), String> {
        let now = chrono::Utc::now().timestamp();
        let lifetime = i64::try_from(self.lifetime_s).unwrap_or(i64::MAX / 4);
        let exp = now.saturating_add(lifetime);
        match self.format {
            TokenFormat::Jwt => {
                let claims = Claims {
                    iss: ISSUER.into(),
                    sub: client_id.into(),
                    iat: now,
                    exp,
                    jti: uuid::Uuid::new_v4().to_string(),
                    scope,
                };
                let key = lock(&self.jwt_key).clone();
                let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&key))
                    .map_err(|e| format!("cannot sign token: {e}"))?;
                Ok((token, self.lifetime_s))
            }
            TokenFormat::Opaque => {
                let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes());
                let mut tokens = lock(&self.opaque);
                tokens.retain(|_, (_, e)| *e > now);
                tokens.insert(token.clone(), (client_id.to_string(), exp));
                Ok((token, self.lifetime_s))
            }
        }
    }

    /// The client a bearer token was issued to, or why it is not valid.
    pub fn verify(&self, token: &str) -> Result<String, String> {
        match self.format {
            TokenFormat::Jwt => {
                let key = lock(&self.jwt_key).clone();
                let mut v = Validation::new(Algorithm::HS256);
                v.leeway = 0;
                v.set_issuer(&[ISSUER]);
                jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&key), &v)
                    .map(|d| d.claims.sub)
                    .map_err(|e| format!("access token is not valid: {e}"))
            }
            TokenFormat::Opaque => {
                let now = chrono::Utc::now().timestamp();
                match lock(&self.opaque).get(token) {
                    Some((client, exp)) if *exp > now => Ok(client.clone()),
                    Some(_) => Err("access token expired".into()),
                    None => Err("access token is not known".into()),
                }
            }
        }
    }

    /// Invalidates every token issued so far (emulator admin: exercise clients' re-authentication).
    pub fn revoke_all(&self) {
        *lock(&self.jwt_key) = random_bytes();
        lock(&self.opaque).clear();
    }
}

fn bearer(parts: &Parts, emu: &Emulator) -> Result<String, String> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or("missing Authorization header; get a token at POST /oauth2/token (client credentials)")?;
    let value = value.to_str().map_err(|_| "Authorization header is not ASCII")?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or("Authorization header must be 'Bearer <token>'")?;
    emu.tokens.verify(token.trim())
}

/// The OAuth2 client calling a CAMARA API; rejects with CAMARA 401 UNAUTHENTICATED.
pub struct CamaraClient(pub String);

impl FromRequestParts<Arc<Emulator>> for CamaraClient {
    type Rejection = CamaraError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Emulator>) -> Result<Self, Self::Rejection> {
        bearer(parts, state).map(CamaraClient).map_err(|m| {
            CamaraError::unauthenticated(format!(
                "Request not authenticated due to missing, invalid, or expired credentials: {m}"
            ))
        })
    }
}

/// The OAuth2 client calling a 3GPP API; rejects with a 401 ProblemDetails.
pub struct NefClient(pub String);

impl FromRequestParts<Arc<Emulator>> for NefClient {
    type Rejection = ProblemError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Emulator>) -> Result<Self, Self::Rejection> {
        bearer(parts, state).map(NefClient).map_err(ProblemError::unauthenticated)
    }
}

/// Token request form (RFC 6749 §4.4.2, client credentials in the body per §2.3.1 allowed).
#[derive(Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str, basic: bool) -> Response {
    let mut resp = (status, Json(json!({"error": error, "error_description": description}))).into_response();
    if basic && status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"op-netemu\""));
    }
    resp
}

fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), &'static str>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Some(encoded) = value.to_str().ok().and_then(|v| v.strip_prefix("Basic ")) else {
        return Some(Err("Authorization header must be 'Basic <base64(client_id:client_secret)>'"));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    Some(match decoded.as_deref().and_then(|s| s.split_once(':')) {
        Some((id, secret)) => Ok((id.to_string(), secret.to_string())),
        None => Err("Basic credentials must be base64(client_id:client_secret)"),
    })
}

/// `POST /oauth2/token`: client credentials grant, HTTP Basic or form credentials.
pub async fn token(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "body must be application/x-www-form-urlencoded with grant_type=client_credentials",
            false,
        );
    };
    let basic = basic_credentials(&headers);
    let used_basic = basic.is_some();
    let creds = match (basic, &form.client_id) {
        (Some(_), Some(_)) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "use one client authentication method, not both", false)
        }
        (Some(Err(m)), None) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", m, true),
        (Some(Ok(c)), None) => c,
        (None, Some(id)) => (id.clone(), form.client_secret.clone().unwrap_or_default()),
        (None, None) => {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication is required", true)
        }
    };
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only client_credentials is supported", false)
        }
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required", false),
    }
    if !emu.tokens.authenticate(&creds.0, &creds.1) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret", used_basic);
    }
    match emu.tokens.issue(&creds.0, form.scope.clone()) {
        Ok((token, expires_in)) => {
            let mut body = json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in});
            if let Some(scope) = form.scope {
                body["scope"] = json!(scope);
            }
            let mut resp = Json(body).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(m) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &m, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::OAuthClient;

    fn issuer(format: TokenFormat, lifetime: u64) -> TokenIssuer {
        TokenIssuer::new(&OAuthConfig {
            clients: vec![OAuthClient { client_id: "op".into(), client_secret: "s3cret".into() }],
            token_lifetime_seconds: lifetime,
            token_format: format,
        })
    }

    #[test]
    fn clients_are_authenticated() {
        let t = issuer(TokenFormat::Jwt, 60);
        assert!(t.authenticate("op", "s3cret"));
        assert!(!t.authenticate("op", "wrong"));
        assert!(!t.authenticate("other", "s3cret"));
    }

    #[test]
    fn tokens_verify_until_revoked() {
        for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
            let t = issuer(format, 60);
            let (token, expires_in) = t.issue("op", None).unwrap();
            assert_eq!(expires_in, 60);
            assert_eq!(t.verify(&token).unwrap(), "op");
            assert!(t.verify("garbage").is_err());
            t.revoke_all();
            assert!(t.verify(&token).is_err(), "{format:?} token survived revocation");
        }
    }

    #[test]
    fn jwt_of_another_issuer_key_is_refused() {
        let a = issuer(TokenFormat::Jwt, 60);
        let b = issuer(TokenFormat::Jwt, 60);
        let (token, _) = a.issue("op", Some("x".into())).unwrap();
        assert!(b.verify(&token).is_err());
    }
}
