//! Authentication (bearer JWTs signed by `opd` with ES256, API keys, passwords hashed with
//! argon2id) and the caller identity every handler receives. Authorization decisions are
//! methods on [`Caller`], so each handler states its rule in one line.
//!
//! A caller acts for one organization at a time (the token's); a role held there holds in the
//! organizations below it, read per request from the in-memory index (never the store).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use sha2::{Digest, Sha256};

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use op_types::specs::{ApiKeySpec, Role, UserSpec};
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
    /// Issuer: this platform's URL (the OpenID Connect issuer).
    pub iss: String,
}

/// The platform's token signing key: ECDSA P-256 (ES256), so that anyone (the registry, a
/// relying party of the OpenID Connect provider) verifies tokens with the public key from
/// `/oauth2/jwks` and nothing else. The private key never leaves the data directory.
#[derive(Clone)]
pub struct TokenKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    issuer: String,
    kid: String,
    x: String,
    y: String,
    /// Tokens already verified, with their claims: checking an ES256 signature costs more
    /// than the rest of a typical request, and a client sends the same token many times.
    verified: Arc<Mutex<HashMap<String, Claims>>>,
}

/// Verified tokens kept at most (a few megabytes).
const VERIFIED_MAX: usize = 10_000;

/// DER prefix of a P-256 public key's `SubjectPublicKeyInfo` (id-ecPublicKey, prime256v1),
/// before the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
    0x07, 0x03, 0x42, 0x00,
];

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The key id Docker's libtrust gives a public key (what CNCF distribution's token
/// authentication looks a token's `kid` up by): the first 240 bits of the SHA-256 of its
/// `SubjectPublicKeyInfo`, in base32, in groups of four joined by `:`.
fn libtrust_kid(spki: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(spki);
    let bits: Vec<u8> = digest[..30].iter().flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1)).collect();
    let chars: Vec<char> = bits.chunks(5).map(|c| ALPHABET[usize::from(c.iter().fold(0u8, |a, b| (a << 1) | b))] as char).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join(":")
}

impl TokenKeys {
    /// A new private key, as a PKCS#8 PEM to keep in the data directory.
    pub fn generate_pem() -> Result<String, ApiError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|e| ApiError::Internal(format!("key generation: {e}")))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
        Ok(format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n")))
    }

    /// Keys from a PKCS#8 PEM private key (from [`TokenKeys::generate_pem`]); tokens name
    /// `issuer` and must name it to be accepted.
    pub fn from_pem(pem: &str, issuer: &str) -> Result<Self, ApiError> {
        let bad = |e: &dyn std::fmt::Display| ApiError::Internal(format!("token signing key: {e}"));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(body.trim()).map_err(|e| bad(&e))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &ring::rand::SystemRandom::new()).map_err(|e| bad(&e))?;
        let point = pair.public_key().as_ref();
        let (x, y) = (&point[1..33], &point[33..65]);
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let (x, y) = (b64(x), b64(y));
        let spki: Vec<u8> = P256_SPKI_PREFIX.iter().chain(point).copied().collect();
        Ok(Self {
            enc: EncodingKey::from_ec_der(&der),
            dec: DecodingKey::from_ec_components(&x, &y).map_err(|e| bad(&e))?,
            issuer: issuer.to_string(),
            kid: libtrust_kid(&spki),
            x,
            y,
            verified: Arc::default(),
        })
    }

    /// The issuer every token names.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public key as a JSON Web Key Set (`/oauth2/jwks`).
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y, "kid": self.kid, "use": "sig", "alg": "ES256"}]})
    }

    /// Signs any claims with the platform's key (ES256, with the key id).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, ApiError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.enc).map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// A token for `user` with `role` in `org`, valid for [`TOKEN_TTL_SECS`].
    pub fn issue(&self, user: &Name, role: Role, org: Option<&Name>) -> Result<String, ApiError> {
        self.issue_for(user, role, org, TOKEN_TTL_SECS)
    }

    /// A token like [`TokenKeys::issue`]'s that lives `ttl_secs` (credentials handed to a
    /// runtime for one pull).
    pub fn issue_for(&self, user: &Name, role: Role, org: Option<&Name>, ttl_secs: u64) -> Result<String, ApiError> {
        let iat = now();
        self.sign(&Claims { sub: user.to_string(), role, org: org.map(ToString::to_string), exp: iat + ttl_secs, iat, iss: self.issuer.clone() })
    }

    /// Checks signature, expiry and issuer. A token seen before is not checked again, but
    /// its expiry is: the same bytes carry the same signature and claims.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let t = now();
        if let Some(c) = self.verified.lock().unwrap_or_else(|e| e.into_inner()).get(token).filter(|c| c.exp > t) {
            return Ok(c.clone());
        }
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[&self.issuer]);
        v.leeway = 0;
        let claims = decode::<Claims>(token, &self.dec, &v)
            .map(|d| d.claims)
            .map_err(|e| ApiError::Unauthenticated(format!("invalid or expired token ({e}); log in again")))?;
        let mut kept = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= VERIFIED_MAX {
            kept.retain(|_, c| c.exp > t);
            if kept.len() >= VERIFIED_MAX {
                kept.clear();
            }
        }
        kept.insert(token.to_string(), claims.clone());
        Ok(claims)
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
    /// `org` and the organizations below it: where the role holds.
    pub scope: BTreeSet<Name>,
}

/// The prefix of API keys (`opk_<key id>_<secret>`), so they are told from JWTs and found by
/// secret scanners.
pub const API_KEY_PREFIX: &str = "opk_";

impl Caller {
    /// A caller acting in `org` only (no organizations below it).
    pub fn new(user: impl Into<String>, role: Role, org: Option<Name>) -> Self {
        let scope = org.iter().cloned().collect();
        Self { user: user.into(), role, org, scope }
    }

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
        self.role.is_operator() || org.is_some_and(|o| self.scope.contains(o))
    }

    /// Fails unless the caller may change objects of `org`.
    pub fn require_write(&self, org: &Name) -> Result<(), ApiError> {
        match self.role {
            Role::OperatorAdmin => Ok(()),
            Role::Manager | Role::Contributor if self.scope.contains(org) => Ok(()),
            Role::Viewer | Role::OperatorViewer => Err(ApiError::Forbidden(format!("role {:?} is read-only", self.role))),
            _ => Err(ApiError::Forbidden(format!("no write access to organization '{org}'"))),
        }
    }

    /// Fails unless the caller manages `org` (its users, members, groups): the operator, or a
    /// Manager of it or of an organization above it.
    pub fn require_manager(&self, org: &Name) -> Result<(), ApiError> {
        if self.role == Role::OperatorAdmin || (self.role == Role::Manager && self.scope.contains(org)) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("only the operator or a Manager of '{org}' may do this")))
        }
    }
}

fn bearer(parts: &Parts, hint: &str) -> Result<String, ApiError> {
    // A browser cannot set headers on a WebSocket; it offers the token as a subprotocol.
    let offered = parts.headers.get(axum::http::header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok());
    if parts.headers.get(axum::http::header::AUTHORIZATION).is_none() {
        if let Some(t) = offered.and_then(|v| v.split(',').find_map(|p| p.trim().strip_prefix("bearer."))) {
            return Ok(t.to_string());
        }
    }
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Unauthenticated(format!("missing bearer token; {hint}")))?;
    header
        .strip_prefix("Bearer ")
        .map(|t| t.trim().to_string())
        .ok_or_else(|| ApiError::Unauthenticated("Authorization must be `Bearer <token>`".into()))
}

/// Hex SHA-256, for secrets with enough entropy that a slow hash adds nothing (API keys,
/// client secrets): a lookup per request stays cheap.
pub fn sha256_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two strings in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The role `user` holds in `org`: there, else in the nearest organization above it that it
/// belongs to (a role in a company holds in its teams). Developer roles only.
pub fn effective_role(state: &AppState, user: &UserSpec, org: &Name) -> Option<(Role, Name)> {
    if let Some(r) = user.role_in(org) {
        return Some((r, org.clone()));
    }
    let ancestors = state.uni.index.read().unwrap_or_else(|e| e.into_inner()).org_ancestors(org);
    ancestors.into_iter().find_map(|a| user.role_in(&a).map(|r| (r, a)))
}

/// Resolves an API key: it exists, its secret matches, it has not expired, and its user still
/// exists and still holds (at least) its role where it acts.
pub(crate) async fn api_key_caller(state: &AppState, key: &str) -> Result<(String, Role, Option<Name>), ApiError> {
    let bad = || ApiError::Unauthenticated("not a valid API key; create one with `opctl apikey create`".into());
    let rest = key.strip_prefix(API_KEY_PREFIX).ok_or_else(bad)?;
    let (id, secret) = rest.split_once('_').ok_or_else(bad)?;
    let uid: op_types::Uid = id.parse().map_err(|_| bad())?;
    let k = state.repo.get::<ApiKeySpec, ()>(op_types::Kind::ApiKey, uid).await?.ok_or_else(bad)?;
    if !same_secret(&sha256_hex(secret), &k.spec.secret_sha256) {
        return Err(bad());
    }
    if k.spec.expires_at.is_some_and(|t| t <= chrono::Utc::now()) {
        return Err(ApiError::Unauthenticated(format!("API key '{}' has expired; create a new one", k.metadata.name)));
    }
    let user = state.repo.get_by_name::<UserSpec, ()>(op_types::Kind::User, None, &k.spec.user).await?.ok_or_else(bad)?;
    let held = match &k.spec.organization {
        Some(org) => effective_role(state, &user.spec, org).map(|(r, _)| r),
        None => Some(user.spec.role).filter(|r| r.is_operator()),
    };
    if !held.is_some_and(|r| r.covers(k.spec.role)) {
        return Err(ApiError::Unauthenticated(format!("API key '{}': its user no longer holds its role", k.metadata.name)));
    }
    Ok((k.spec.user.to_string(), k.spec.role, k.spec.organization))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts, "log in with `opctl login`")?;
        let (user, role, org) = if token.starts_with(API_KEY_PREFIX) {
            api_key_caller(state, &token).await?
        } else {
            let c = state.keys.verify(&token)?;
            let org = match c.org {
                Some(o) => Some(Name::new(o).map_err(|_| ApiError::Unauthenticated("token names a bad organization".into()))?),
                None => None,
            };
            (c.sub, c.role, org)
        };
        if !role.is_operator() && org.is_none() {
            return Err(ApiError::Unauthenticated("developer token without organization".into()));
        }
        let scope = match &org {
            Some(o) => state.uni.index.read().unwrap_or_else(|e| e.into_inner()).org_scope(o),
            None => BTreeSet::new(),
        };
        let caller = Caller { user, role, org, scope };
        if let Some(slot) = parts.extensions.get::<crate::audit::Slot>() {
            slot.set(&caller);
        }
        Ok(caller)
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
        let token = bearer(parts, "present the instance's OP_INSTANCE_TOKEN")?;
        let uid = op_types::secret::instance_of_token(&state.instance_secret, &token)
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
        let k = TokenKeys::from_pem(&TokenKeys::generate_pem().unwrap(), "http://op.example").unwrap();
        let user = Name::new("alice").unwrap();
        let t = k.issue(&user, Role::Manager, Some(&Name::new("acme_games").unwrap())).unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!(c.sub, "alice");
        assert_eq!(c.org.as_deref(), Some("acme_games"));
        let other = TokenKeys::from_pem(&TokenKeys::generate_pem().unwrap(), "http://op.example").unwrap();
        assert!(other.verify(&t).is_err(), "another platform's key");
        let same_key_other_issuer = TokenKeys::from_pem(&TokenKeys::generate_pem().unwrap(), "http://elsewhere").unwrap();
        assert!(same_key_other_issuer.verify(&t).is_err());
        let mut bad = t.clone();
        bad.push('x');
        assert!(k.verify(&bad).is_err());
    }

    #[test]
    fn a_token_seen_before_is_taken_from_memory_until_it_expires() {
        let k = TokenKeys::from_pem(&TokenKeys::generate_pem().unwrap(), "http://op.example").unwrap();
        let t = k.issue(&Name::new("alice").unwrap(), Role::Manager, None).unwrap();
        assert_eq!(k.verify(&t).unwrap().sub, "alice");
        assert!(k.verified.lock().unwrap().contains_key(&t), "kept once verified");
        assert_eq!(k.clone().verify(&t).unwrap().sub, "alice", "from memory, in a clone too");
        // An entry past its expiry is not used: the token is checked again (a real one passes
        // and is kept anew, one that was never signed fails), and a tampered one is never
        // served from memory.
        k.verified.lock().unwrap().get_mut(&t).unwrap().exp = now() - 1;
        assert!(k.verify(&t).is_ok());
        assert!(k.verified.lock().unwrap()[&t].exp > now(), "kept anew with its own expiry");
        k.verified.lock().unwrap().insert("forged".into(), Claims { sub: "mallory".into(), role: Role::OperatorAdmin, org: None, exp: now() - 1, iat: 0, iss: "http://op.example".into() });
        assert!(k.verify("forged").is_err());
        let mut bad = t.clone();
        bad.pop();
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
        let dev = Caller::new("d", Role::Contributor, Some(org.clone()));
        assert!(dev.require_write(&org).is_ok());
        assert!(dev.require_write(&other).is_err());
        assert!(dev.can_read(Some(&org)));
        assert!(!dev.can_read(Some(&other)));
        assert!(dev.require_operator().is_err());
        let viewer = Caller::new("v", Role::Viewer, Some(org.clone()));
        assert!(viewer.require_write(&org).is_err());
        assert!(viewer.can_read(Some(&org)));
        let op = Caller::new("admin", Role::OperatorAdmin, None);
        assert!(op.require_write(&other).is_ok());
        let opv = Caller::new("ov", Role::OperatorViewer, None);
        assert!(opv.require_operator().is_ok());
        assert!(opv.require_operator_admin().is_err());
        assert!(opv.require_write(&org).is_err());
        // A Manager of a parent organization manages its groups; a Contributor writes there.
        let team = Name::new("acme_games_eu").unwrap();
        let mut boss = Caller::new("m", Role::Manager, Some(org.clone()));
        assert!(boss.require_manager(&team).is_err(), "no scope, no rights below");
        boss.scope.insert(team.clone());
        assert!(boss.require_manager(&team).is_ok() && boss.require_write(&team).is_ok() && boss.can_read(Some(&team)));
        assert!(boss.require_manager(&other).is_err());
        assert!(dev.require_manager(&org).is_err(), "a Contributor manages nothing");
    }

    #[test]
    fn libtrust_key_ids() {
        // The example key id of Docker's libtrust documentation has this shape.
        let kid = libtrust_kid(b"anything");
        assert_eq!(kid.len(), 12 * 4 + 11, "{kid}");
        assert!(kid.split(':').all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))), "{kid}");
        let k = TokenKeys::from_pem(&TokenKeys::generate_pem().unwrap(), "http://op.example").unwrap();
        let jwks = k.jwks();
        assert_eq!(jwks["keys"][0]["kid"], k.kid.as_str());
        let t = k.issue(&Name::new("alice").unwrap(), Role::Viewer, Some(&Name::new("acme_games").unwrap())).unwrap();
        let header = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(header.kid.as_deref(), Some(k.kid.as_str()));
        assert_eq!(header.alg, Algorithm::ES256);
    }

    #[test]
    fn role_coverage() {
        assert!(Role::Manager.covers(Role::Contributor) && Role::Manager.covers(Role::Viewer) && Role::Contributor.covers(Role::Viewer));
        assert!(!Role::Viewer.covers(Role::Contributor) && !Role::Contributor.covers(Role::Manager));
        assert!(!Role::Manager.covers(Role::OperatorViewer), "no developer role reaches the operator's");
        assert!(Role::OperatorAdmin.covers(Role::Manager) && Role::OperatorAdmin.covers(Role::OperatorViewer));
        assert!(!Role::OperatorViewer.covers(Role::OperatorAdmin));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("abc", "ab"));
    }
}
