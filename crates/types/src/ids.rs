//! Identifiers: object uids (UUIDv4, as CAMARA's `AppId`/`AppInstanceId`/`EdgeCloudZoneId`) and
//! validated names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A globally unique object id. Every stored object has one; CAMARA's ids are these uids, so a
/// client that learned an `appId` can always address the object by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct Uid(pub Uuid);

impl Uid {
    /// A fresh random (v4) uid.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The all-zero uid: "none", where a uid field must hold something (e.g. the instance of a
    /// device sent to its app's cloud endpoint).
    pub fn nil() -> Self {
        Self(Uuid::nil())
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Uid {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// A user-chosen object name, unique per kind within its organization (or globally for
/// operator-owned kinds). Validated on construction so that a `Name` is always safe to use in a
/// store key, a container name and a URL path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[A-Za-z][A-Za-z0-9_-]{0,62}[A-Za-z0-9]$")]
pub struct Name(String);

/// Longest name accepted (CAMARA's names stop at 64).
pub const NAME_MAX: usize = 64;

/// Why a string is not a valid [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty or longer than [`NAME_MAX`].
    #[error("must be 2 to {NAME_MAX} characters long")]
    Length,
    /// Must start with a letter, end with a letter or digit, and hold only letters, digits, `_`, `-`.
    #[error("must start with a letter, end with a letter or digit, and contain only letters, digits, '_' and '-'")]
    Charset,
}

impl Name {
    /// Checks and wraps a name.
    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        if s.len() < 2 || s.len() > NAME_MAX {
            return Err(NameError::Length);
        }
        let b = s.as_bytes();
        let ok_inner = b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
        if !b[0].is_ascii_alphabetic() || !b[b.len() - 1].is_ascii_alphanumeric() || !ok_inner {
            return Err(NameError::Charset);
        }
        Ok(Self(s))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A 64-bit FNV-1a hash of `s`: the same in every build and process (unlike std's hasher), so
/// names derived from it (alarm fingerprints, image version records) are stable across restarts.
pub fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        assert!(Name::new("edge-1").is_ok());
        assert!(Name::new("acme_games").is_ok());
        assert_eq!(Name::new("1abc"), Err(NameError::Charset));
        assert_eq!(Name::new("ab-"), Err(NameError::Charset));
        assert_eq!(Name::new("a b"), Err(NameError::Charset));
        assert_eq!(Name::new("a/b"), Err(NameError::Charset));
        assert_eq!(Name::new("a"), Err(NameError::Length));
        assert_eq!(Name::new("a".repeat(65)), Err(NameError::Length));
    }

    proptest! {
        /// A valid name never contains a character that would break a store key or a path.
        #[test]
        fn valid_names_are_key_safe(s in ".{0,80}") {
            if let Ok(n) = Name::new(s) {
                prop_assert!(!n.as_str().contains('/'));
                prop_assert!(n.as_str().len() <= NAME_MAX);
            }
        }
    }
}

