//! Semantic validation beyond what deserialization checks. Each failure names the offending
//! field by its JSON path, so the API can answer a 400 that tells the user what to fix.

use std::fmt;

/// A validation failure: which field (JSON path, e.g. `componentSpec[0].networkInterfaces[0].port`)
/// and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the offending field.
    pub field: String,
    /// What is wrong, phrased so the user knows what to change.
    pub message: String,
}

impl FieldError {
    /// A failure of `field` with `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }

    /// The same failure, with `prefix.` in front of the field path.
    pub fn under(self, prefix: &str) -> Self {
        let field = if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        Self { field, ..self }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Implemented by every spec a user can write.
pub trait Validate {
    /// Checks the semantic rules of the value; the first broken rule is returned.
    fn validate(&self) -> Result<(), FieldError>;
}

/// Fails with `field` when `ok` is false.
pub fn ensure(ok: bool, field: &str, message: impl Into<String>) -> Result<(), FieldError> {
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, message))
    }
}

/// Fails when `s` is longer than `max` bytes.
pub fn max_len(s: &str, max: usize, field: &str) -> Result<(), FieldError> {
    ensure(s.len() <= max, field, format!("must be at most {max} characters long"))
}
