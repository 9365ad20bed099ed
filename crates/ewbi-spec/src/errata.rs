//! Known typos in the published files, applied only in [`crate::Strictness::Lenient`].

use serde_json::Value;

use crate::Dialect;

/// What an erratum changes in the `required` array at its pointer; exists so the table states the edit exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    /// Remove this name from the `required` array (the `required` key is dropped if it becomes empty).
    DropRequired(&'static str),
    /// Replace `from` by `to` in the `required` array (used where dropping would empty an `anyOf` branch).
    RenameRequired {
        /// The misspelt name in the file.
        from: &'static str,
        /// The property name the file actually declares.
        to: &'static str,
    },
}

/// One known typo; exists so Lenient validation is an auditable table, not ad-hoc code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erratum {
    /// The file the typo is in.
    pub dialect: Dialect,
    /// RFC 6901 pointer to the `required` array to patch.
    pub pointer: &'static str,
    /// The edit.
    pub fix: Fix,
    /// Why the entry is an erratum and not a real requirement.
    pub reason: &'static str,
}

const UPDATE_APP_QOS_ANYOF0: &str = "/paths/~1{federationContextId}~1application~1onboarding~1app~1{appId}/patch/requestBody/content/application~1json/schema/properties/appUpdQoSProfile/anyOf/0/required";

/// Every known typo in `required` lists of the vendored files; exists as the single source of Lenient patches.
pub const ERRATA: &[Erratum] = &[
    Erratum {
        dialect: Dialect::Official,
        pointer: "/components/schemas/FederationResponseData/required",
        fix: Fix::DropRequired("capabilities"),
        reason: "`capabilities` is never declared; the property is `platformCaps` (katalis requires `platformCaps`). We emit both spellings outbound.",
    },
    Erratum {
        dialect: Dialect::Official,
        pointer: "/components/schemas/AppComponentSpecs/items/required",
        fix: Fix::DropRequired("componentname"),
        reason: "lower-case `componentname` is never declared; the property is `componentName` (katalis requires only `artefactId`).",
    },
    Erratum {
        dialect: Dialect::Official,
        pointer: "/components/schemas/ComponentSpec/required",
        fix: Fix::DropRequired("networkResourceProfile"),
        reason: "`networkResourceProfile` is never declared in ComponentSpec (katalis dropped it from `required`).",
    },
    Erratum {
        dialect: Dialect::Official,
        pointer: "/components/schemas/InterfaceDetails/required",
        fix: Fix::DropRequired("interfaceName"),
        reason: "the property is declared as `InterfaceName` and described as 'required only if application has to be attached to a network other than default' (katalis dropped it).",
    },
    Erratum {
        dialect: Dialect::Official,
        pointer: UPDATE_APP_QOS_ANYOF0,
        fix: Fix::RenameRequired { from: "latencyConstraint", to: "latencyConstraints" },
        reason: "UpdateApplication appUpdQoSProfile anyOf names `latencyConstraint`; the declared property is `latencyConstraints`, so a body updating only latency can never pass.",
    },
    Erratum {
        dialect: Dialect::Katalis,
        pointer: UPDATE_APP_QOS_ANYOF0,
        fix: Fix::RenameRequired { from: "latencyConstraint", to: "latencyConstraints" },
        reason: "same UpdateApplication anyOf typo as the official file, not fixed in the katalis revision.",
    },
];

/// Applies the errata of `dialect` to `doc`; an entry that no longer matches is an error (the table must stay exact).
pub(crate) fn apply(dialect: Dialect, doc: &mut Value) -> Result<(), String> {
    for e in ERRATA.iter().filter(|e| e.dialect == dialect) {
        let arr = doc.pointer_mut(e.pointer).and_then(Value::as_array_mut).ok_or_else(|| format!("erratum pointer {} is not an array", e.pointer))?;
        let (from, to) = match e.fix {
            Fix::DropRequired(n) => (n, None),
            Fix::RenameRequired { from, to } => (from, Some(to)),
        };
        let pos = arr.iter().position(|v| v.as_str() == Some(from)).ok_or_else(|| format!("erratum {}: {from:?} not found", e.pointer))?;
        match to {
            Some(to) => arr[pos] = Value::String(to.to_string()),
            None => {
                arr.remove(pos);
            }
        }
        if arr.is_empty() {
            // draft 4 forbids an empty `required`; drop the key.
            let parent = e.pointer.rsplit_once('/').map(|(p, _)| p).unwrap_or_default();
            if let Some(obj) = doc.pointer_mut(parent).and_then(Value::as_object_mut) {
                obj.remove("required");
            }
        }
    }
    Ok(())
}
