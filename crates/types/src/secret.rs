//! Credentials derived from the platform's secret and an object's uid, so a restart derives the
//! same ones and none is stored: the password of an instance's managed database, and the token
//! an app instance presents to the platform's APIs (MEC 021 Application Mobility Service, QoS
//! reports). Pure: the secret comes from the caller.

use hmac::{KeyInit, Mac};

use crate::Uid;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn mac(secret: &[u8], label: &str, uid: Uid) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail, but stay panic-free.
    let mut m = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| HmacSha256::new_from_slice(&[0u8; 32]).unwrap_or_else(|_| unreachable!()));
    m.update(label.as_bytes());
    m.update(uid.to_string().as_bytes());
    m
}

/// HMAC-SHA256 of `label` then `uid` under `secret`, in lower-case hex.
pub fn derive_hex(secret: &[u8], label: &str, uid: Uid) -> String {
    mac(secret, label, uid).finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 of `label` then `data` under `secret`, in lower-case hex: for credentials
/// keyed by something other than a uid (e.g. a roaming device's token in one federation).
pub fn derive_hex_str(secret: &[u8], label: &str, data: &str) -> String {
    let mut m = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| HmacSha256::new_from_slice(&[0u8; 32]).unwrap_or_else(|_| unreachable!()));
    m.update(label.as_bytes());
    m.update(data.as_bytes());
    m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

const INSTANCE_LABEL: &str = "op-instance-token/";
const INSTANCE_PREFIX: &str = "opi.";

/// The bearer token of app instance `uid`: `opi.<uid>.<hex HMAC>`. Given to its container as
/// `OP_INSTANCE_TOKEN`; valid while the instance exists.
pub fn instance_token(secret: &[u8], uid: Uid) -> String {
    format!("{INSTANCE_PREFIX}{uid}.{}", derive_hex(secret, INSTANCE_LABEL, uid))
}

/// The instance a token was derived for, when it was derived under `secret` (checked in
/// constant time).
pub fn instance_of_token(secret: &[u8], token: &str) -> Option<Uid> {
    let (uid, hex) = token.strip_prefix(INSTANCE_PREFIX)?.split_once('.')?;
    let uid: Uid = uid.parse().ok()?;
    if hex.len() != 64 {
        return None;
    }
    let bytes: Vec<u8> = (0..32).map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect::<Option<_>>()?;
    mac(secret, INSTANCE_LABEL, uid).verify_slice(&bytes).ok().map(|_| uid)
}

/// Whether `token` looks like an instance token (so the caller knows which check to apply).
pub fn is_instance_token(token: &str) -> bool {
    token.starts_with(INSTANCE_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_tokens_verify_only_under_their_secret_and_uid() {
        let (a, b) = (Uid::random(), Uid::random());
        let t = instance_token(b"k1", a);
        assert!(is_instance_token(&t));
        assert_eq!(instance_of_token(b"k1", &t), Some(a));
        assert_eq!(instance_of_token(b"k2", &t), None, "another platform's secret");
        let forged = t.replace(&a.to_string(), &b.to_string());
        assert_eq!(instance_of_token(b"k1", &forged), None, "another instance's uid");
        let mut flipped = t.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(instance_of_token(b"k1", &flipped), None);
        for junk in ["", "opi.", "opi.x.y", "Bearer x", &t[..t.len() - 2]] {
            assert_eq!(instance_of_token(b"k1", junk), None, "{junk}");
        }
        assert_eq!(derive_hex(b"k1", "l/", a), derive_hex(b"k1", "l/", a), "deterministic");
        assert_ne!(derive_hex(b"k1", "l/", a), derive_hex(b"k1", "m/", a), "labels separate uses");
    }

    #[test]
    fn the_mac_is_standard_hmac_sha256() {
        // RFC 4231, test case 2.
        let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        let hex: String = m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
