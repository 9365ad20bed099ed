//! Session tokens: JWTs signed by the platform with Ed25519. A cloudlet (or its ingress) holds
//! only the public key and verifies a device's token locally, so a session costs one round trip
//! to the platform at registration and none afterwards.

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
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The platform's signing key.
pub struct SessionSigner {
    enc: EncodingKey,
    public_pem: String,
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
        Ok(Self { enc, public_pem: kp.public_key_pem() })
    }

    /// The public key (SPKI PEM) that cloudlets verify with.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &SessionClaims) -> Result<String, TokenError> {
        encode(&Header::new(Algorithm::EdDSA), claims, &self.enc).map_err(|e| TokenError::Key(e.to_string()))
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

/// Audience device-app tokens must name.
pub const UNI_AUDIENCE: &str = "op-uni";

/// An app provider's public key, for the tokens its device clients present.
#[derive(Clone)]
pub struct AppKey {
    key: DecodingKey,
    alg: Algorithm,
}

/// What a device app's token asserts (signed by the app provider).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppTokenClaims {
    /// Who the app provider says the user or device is.
    pub sub: String,
    /// Must be [`UNI_AUDIENCE`].
    pub aud: String,
    /// Expiry.
    pub exp: u64,
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
        }
    }

    #[test]
    fn edge_verifies_with_the_public_key_only() {
        let (signer, private) = SessionSigner::generate().unwrap();
        assert!(private.contains("PRIVATE KEY"));
        let edge = SessionVerifier::from_public_pem(signer.public_pem()).unwrap();
        let c = claims(now() + 60);
        assert_eq!(edge.verify(&signer.sign(&c).unwrap()).unwrap(), c);
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
        assert!(edge.verify(&signer.sign(&claims(now() - 1)).unwrap()).is_err());
        let mut wrong_issuer = claims(now() + 60);
        wrong_issuer.iss = "someone".into();
        assert!(edge.verify(&signer.sign(&wrong_issuer).unwrap()).is_err());
    }
}
