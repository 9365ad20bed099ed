//! Session tokens: JWTs signed by the platform with Ed25519. A cloudlet (or its ingress) holds
//! only the public key and verifies a device's token locally, so a session costs one round trip
//! to the platform at registration and none afterwards.
//!
//! The claims also carry `mac`, an HMAC-SHA256 of the other claims under a key only the platform
//! holds. When a device comes back to the platform (revalidation, the hot path), the platform
//! checks that MAC (about a microsecond) instead of the Ed25519 signature (about thirty): the
//! signature is for edges, the MAC for the issuer itself.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use op_types::Uid;
use serde::{Deserialize, Serialize};

/// Issuer claim of session tokens.
pub const SESSION_ISSUER: &str = "opd-uni";

/// Token errors.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key material is unusable.
    #[error("bad key: {0}")]
    Key(String),
    /// The token is malformed, forged, expired or for another issuer.
    #[error("invalid session token: {0}")]
    Invalid(String),
}

/// What a session token asserts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// Session id.
    pub sub: String,
    /// The app the session is for.
    pub app: Uid,
    /// The instance chosen for the device.
    pub inst: Uid,
    /// The zone of that instance.
    pub zone: Uid,
    /// Issued at (s since epoch).
    pub iat: u64,
    /// Expiry (s since epoch).
    pub exp: u64,
    /// Issuer.
    pub iss: String,
    /// A pseudonym of the device (keyed hash: the same device, the same pseudonym; never its
    /// number or address), so that an edge counts distinct devices without learning who they are.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dev: String,
    /// HMAC of the other claims under the platform's own key (set by [`SessionSigner::sign`]).
    #[serde(default)]
    pub mac: String,
}

impl SessionClaims {
    /// The bytes the MAC covers: every claim but `mac`, in a fixed order.
    fn mac_input(&self) -> String {
        let base = format!("{}|{}|{}|{}|{}|{}|{}", self.sub, self.app, self.inst, self.zone, self.iat, self.exp, self.iss);
        if self.dev.is_empty() {
            base
        } else {
            format!("{base}|{}", self.dev)
        }
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The platform's signing key.
pub struct SessionSigner {
    enc: EncodingKey,
    public_pem: String,
    mac_key: ring::hmac::Key,
}

impl SessionSigner {
    /// A fresh Ed25519 key; returns the signer and the private key (PKCS#8 PEM) to persist.
    pub fn generate() -> Result<(Self, String), TokenError> {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| TokenError::Key(e.to_string()))?;
        let private = kp.serialize_pem();
        Ok((Self::from_private_pem(&private)?, private))
    }

    /// The signer for a persisted private key (PKCS#8 PEM).
    pub fn from_private_pem(pem: &str) -> Result<Self, TokenError> {
        let kp = rcgen::KeyPair::from_pem(pem).map_err(|e| TokenError::Key(e.to_string()))?;
        let enc = EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| TokenError::Key(e.to_string()))?;
        // The MAC key is derived from the private key: as secret, and the same after a restart.
        let mut material = b"op-uni-session-mac\n".to_vec();
        material.extend_from_slice(&kp.serialize_der());
        let seed = ring::digest::digest(&ring::digest::SHA256, &material);
        let mac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, seed.as_ref());
        Ok(Self { enc, public_pem: kp.public_key_pem(), mac_key })
    }

    /// The pseudonym of device `key` in session tokens (16 hex digits of a keyed hash).
    pub fn pseudonym(&self, key: &str) -> String {
        let tag = ring::hmac::sign(&self.mac_key, format!("device|{key}").as_bytes());
        tag.as_ref().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The public key (SPKI PEM) that cloudlets verify with.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// Signs `claims` (and sets their `mac`).
    pub fn sign(&self, claims: &SessionClaims) -> Result<String, TokenError> {
        use base64::Engine;
        let mut c = claims.clone();
        let tag = ring::hmac::sign(&self.mac_key, c.mac_input().as_bytes());
        c.mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref());
        encode(&Header::new(Algorithm::EdDSA), &c, &self.enc).map_err(|e| TokenError::Key(e.to_string()))
    }

    /// The issuer's own check of a token it signed: the claims' MAC, expiry and issuer. Not a
    /// substitute for the signature anywhere but at the issuer (only it holds the MAC key).
    pub fn verify_own(&self, token: &str) -> Result<SessionClaims, TokenError> {
        use base64::Engine;
        let bad = |m: &str| TokenError::Invalid(m.to_string());
        let payload = token.split('.').nth(1).ok_or_else(|| bad("not a JWT"))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad("bad payload encoding"))?;
        let c: SessionClaims = serde_json::from_slice(&bytes).map_err(|_| bad("bad claims"))?;
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&c.mac).map_err(|_| bad("bad mac"))?;
        ring::hmac::verify(&self.mac_key, c.mac_input().as_bytes(), &tag).map_err(|_| bad("InvalidSignature"))?;
        if c.iss != SESSION_ISSUER {
            return Err(bad("InvalidIssuer"));
        }
        if c.exp <= now() {
            return Err(bad("ExpiredSignature"));
        }
        Ok(c)
    }
}

/// What an edge holds to check session tokens: the public key only.
pub struct SessionVerifier {
    dec: DecodingKey,
}

impl SessionVerifier {
    /// A verifier for the platform's public key (SPKI PEM).
    pub fn from_public_pem(pem: &str) -> Result<Self, TokenError> {
        DecodingKey::from_ed_pem(pem.as_bytes()).map(|dec| Self { dec }).map_err(|e| TokenError::Key(e.to_string()))
    }

    /// Checks signature, expiry and issuer.
    pub fn verify(&self, token: &str) -> Result<SessionClaims, TokenError> {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[SESSION_ISSUER]);
        v.leeway = 0;
        decode::<SessionClaims>(token, &self.dec, &v).map(|d| d.claims).map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

pub use op_types::uni::{AppTokenClaims, UNI_AUDIENCE};

/// An app provider's public key, for the tokens its device clients present.
#[derive(Clone)]
pub struct AppKey {
    key: DecodingKey,
    alg: Algorithm,
}


impl AppKey {
    /// Parses an SPKI PEM: Ed25519, ECDSA P-256 or RSA.
    pub fn from_pem(pem: &str) -> Result<Self, TokenError> {
        let b = pem.as_bytes();
        if let Ok(key) = DecodingKey::from_ed_pem(b) {
            return Ok(Self { key, alg: Algorithm::EdDSA });
        }
        if let Ok(key) = DecodingKey::from_ec_pem(b) {
            return Ok(Self { key, alg: Algorithm::ES256 });
        }
        DecodingKey::from_rsa_pem(b)
            .map(|key| Self { key, alg: Algorithm::RS256 })
            .map_err(|e| TokenError::Key(format!("not an Ed25519, P-256 or RSA public key: {e}")))
    }

    /// Checks a device app's token: signature by the provider, audience, expiry.
    pub fn verify(&self, token: &str) -> Result<AppTokenClaims, TokenError> {
        let mut v = Validation::new(self.alg);
        v.set_audience(&[UNI_AUDIENCE]);
        v.leeway = 5;
        decode::<AppTokenClaims>(token, &self.key, &v).map(|d| d.claims).map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> SessionClaims {
        SessionClaims {
            sub: "s1".into(),
            app: Uid::random(),
            inst: Uid::random(),
            zone: Uid::random(),
            iat: now(),
            exp,
            iss: SESSION_ISSUER.into(),
            dev: String::new(),
            mac: String::new(),
        }
    }

    #[test]
    fn edge_verifies_with_the_public_key_only() {
        let (signer, private) = SessionSigner::generate().unwrap();
        assert!(private.contains("PRIVATE KEY"));
        let edge = SessionVerifier::from_public_pem(signer.public_pem()).unwrap();
        let c = claims(now() + 60);
        let t = signer.sign(&c).unwrap();
        let got = edge.verify(&t).unwrap();
        assert_eq!((got.sub.as_str(), got.inst, got.exp), (c.sub.as_str(), c.inst, c.exp));
        // The issuer checks its own tokens by MAC, with the same verdicts.
        assert_eq!(signer.verify_own(&t).unwrap(), got);
        // The same key reloaded from its PEM signs tokens the edge accepts.
        let again = SessionSigner::from_private_pem(&private).unwrap();
        assert!(edge.verify(&again.sign(&c).unwrap()).is_ok());
    }

    #[test]
    fn app_tokens_are_checked_with_the_providers_key() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let key = AppKey::from_pem(&kp.public_key_pem()).unwrap();
        let enc = EncodingKey::from_ed_pem(kp.serialize_pem().as_bytes()).unwrap();
        let sign = |aud: &str, exp: u64| {
            let c = AppTokenClaims { sub: "player-1".into(), aud: aud.into(), exp };
            encode(&Header::new(Algorithm::EdDSA), &c, &enc).unwrap()
        };
        assert_eq!(key.verify(&sign(UNI_AUDIENCE, now() + 60)).unwrap().sub, "player-1");
        assert!(key.verify(&sign("elsewhere", now() + 60)).is_err());
        assert!(key.verify(&sign(UNI_AUDIENCE, now() - 60)).is_err());
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        assert!(AppKey::from_pem(&other.public_key_pem()).is_ok());
        assert!(AppKey::from_pem("nonsense").is_err());
    }

    #[test]
    fn forged_and_expired_tokens_are_refused() {
        let (signer, _) = SessionSigner::generate().unwrap();
        let (other, _) = SessionSigner::generate().unwrap();
        let edge = SessionVerifier::from_public_pem(signer.public_pem()).unwrap();
        assert!(edge.verify(&other.sign(&claims(now() + 60)).unwrap()).is_err());
        assert!(signer.verify_own(&other.sign(&claims(now() + 60)).unwrap()).is_err(), "another key's MAC fails");
        assert!(edge.verify(&signer.sign(&claims(now() - 1)).unwrap()).is_err());
        assert!(signer.verify_own(&signer.sign(&claims(now() - 1)).unwrap()).is_err(), "expired");
        // Claims altered after signing (here: another instance) fail the MAC.
        use base64::Engine;
        let t = signer.sign(&claims(now() + 60)).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        let mut c: SessionClaims = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        c.inst = Uid::random();
        let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        assert!(signer.verify_own(&format!("{}.{}.{}", parts[0], forged_payload, parts[2])).is_err());
        let mut wrong_issuer = claims(now() + 60);
        wrong_issuer.iss = "someone".into();
        assert!(edge.verify(&signer.sign(&wrong_issuer).unwrap()).is_err());
    }
}
