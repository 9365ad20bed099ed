//! Authentication (bearer JWTs signed by `opd`, passwords hashed with argon2id) and the caller
//! identity every handler receives. Authorization decisions are methods on [`Caller`], so each
//! handler states its rule in one line.

use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use op_types::specs::Role;
use op_types::Name;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

/// How long a login token lives.
pub const TOKEN_TTL_SECS: u64 = 12 * 3600;

/// Token claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User name.
    pub sub: String,
    /// Role at issue time.
    pub role: Role,
    /// Organization for developer roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// Issuer: this platform.
    pub iss: String,
}

/// Signs and checks tokens with the platform's key (HS256; the key never leaves the data dir).
#[derive(Clone)]
pub struct TokenKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    issuer: String,
}

/// Issuer name put in and required of every token.
pub const ISSUER: &str = "opd";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl TokenKeys {
    /// Keys from a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Self {
        Self { enc: EncodingKey::from_secret(secret), dec: DecodingKey::from_secret(secret), issuer: ISSUER.into() }
    }

    /// A token for `user` with `role` in `org`, valid for [`TOKEN_TTL_SECS`].
    pub fn issue(&self, user: &Name, role: Role, org: Option<&Name>) -> Result<String, ApiError> {
        let iat = now();
        let claims = Claims {
            sub: user.to_string(),
            role,
            org: org.map(ToString::to_string),
            exp: iat + TOKEN_TTL_SECS,
            iat,
            iss: self.issuer.clone(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.enc).map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Checks signature, expiry and issuer.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[&self.issuer]);
        v.leeway = 0;
        decode::<Claims>(token, &self.dec, &v)
            .map(|d| d.claims)
            .map_err(|e| ApiError::Unauthenticated(format!("invalid or expired token ({e}); log in again")))
    }
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("hashing failed: {e}")))
}

/// Checks `password` against a stored argon2 hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// User name.
    pub user: String,
    /// Role.
    pub role: Role,
    /// Organization, for developer roles.
    pub org: Option<Name>,
}

impl Caller {
    /// Operator-only writes (infrastructure, organizations).
    pub fn require_operator_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::OperatorAdmin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this call is reserved to the operator".into()))
        }
    }

    /// Operator-only reads.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.role.is_operator() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this call is reserved to the operator".into()))
        }
    }

    /// Whether the caller may see objects of `org`.
    pub fn can_read(&self, org: Option<&Name>) -> bool {
        self.role.is_operator() || (self.org.is_some() && self.org.as_ref() == org)
    }

    /// Fails unless the caller may change objects of `org`.
    pub fn require_write(&self, org: &Name) -> Result<(), ApiError> {
        match self.role {
            Role::OperatorAdmin => Ok(()),
            Role::Manager | Role::Contributor if self.org.as_ref() == Some(org) => Ok(()),
            Role::Viewer | Role::OperatorViewer => Err(ApiError::Forbidden(format!("role {:?} is read-only", self.role))),
            _ => Err(ApiError::Forbidden(format!("no write access to organization '{org}'"))),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthenticated("missing bearer token; log in with `opctl login`".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| ApiError::Unauthenticated("Authorization must be `Bearer <token>`".into()))?;
        let c = state.keys.verify(token.trim())?;
        let org = match c.org {
            Some(o) => Some(Name::new(o).map_err(|_| ApiError::Unauthenticated("token names a bad organization".into()))?),
            None => None,
        };
        if !c.role.is_operator() && org.is_none() {
            return Err(ApiError::Unauthenticated("developer token without organization".into()));
        }
        Ok(Caller { user: c.sub, role: c.role, org })
    }
}

/// An app instance calling the platform with its `OP_INSTANCE_TOKEN` (derived from the
/// platform's secret and the instance's uid): valid while the instance exists and is not being
/// deleted.
#[derive(Debug, Clone)]
pub struct InstanceCaller {
    /// The instance.
    pub instance: op_types::Uid,
    /// Its app.
    pub app: op_types::Uid,
    /// Its organization.
    pub org: Name,
}

impl FromRequestParts<AppState> for InstanceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::Unauthenticated("missing bearer token: present the instance's OP_INSTANCE_TOKEN".into()))?;
        let uid = op_types::secret::instance_of_token(&state.instance_secret, token.trim())
            .ok_or_else(|| ApiError::Unauthenticated("not a valid instance token (OP_INSTANCE_TOKEN)".into()))?;
        let inst = state
            .repo
            .get::<op_types::specs::AppInstanceSpec, serde_json::Value>(op_types::Kind::AppInstance, uid)
            .await?
            .filter(|i| i.metadata.deletion_requested.is_none())
            .ok_or_else(|| ApiError::Unauthenticated("the instance this token was given to no longer exists".into()))?;
        let org = inst.metadata.organization.clone().ok_or_else(|| ApiError::Internal("instance without organization".into()))?;
        Ok(InstanceCaller { instance: uid, app: inst.spec.app_id, org })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_roundtrip_and_reject_tampering() {
        let k = TokenKeys::new(&[7u8; 32]);
        let user = Name::new("alice").unwrap();
        let t = k.issue(&user, Role::Manager, Some(&Name::new("acme_games").unwrap())).unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!(c.sub, "alice");
        assert_eq!(c.org.as_deref(), Some("acme_games"));
        let other = TokenKeys::new(&[8u8; 32]);
        assert!(other.verify(&t).is_err());
        let mut bad = t.clone();
        bad.push('x');
        assert!(k.verify(&bad).is_err());
    }

    #[test]
    fn passwords() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!h.contains("correct horse"));
    }

    #[test]
    fn roles() {
        let org = Name::new("acme_games").unwrap();
        let other = Name::new("evil_corp").unwrap();
        let dev = Caller { user: "d".into(), role: Role::Contributor, org: Some(org.clone()) };
        assert!(dev.require_write(&org).is_ok());
        assert!(dev.require_write(&other).is_err());
        assert!(dev.can_read(Some(&org)));
        assert!(!dev.can_read(Some(&other)));
        assert!(dev.require_operator().is_err());
        let viewer = Caller { user: "v".into(), role: Role::Viewer, org: Some(org.clone()) };
        assert!(viewer.require_write(&org).is_err());
        assert!(viewer.can_read(Some(&org)));
        let op = Caller { user: "admin".into(), role: Role::OperatorAdmin, org: None };
        assert!(op.require_write(&other).is_ok());
        let opv = Caller { user: "ov".into(), role: Role::OperatorViewer, org: None };
        assert!(opv.require_operator().is_ok());
        assert!(opv.require_operator_admin().is_err());
        assert!(opv.require_write(&org).is_err());
    }
}
