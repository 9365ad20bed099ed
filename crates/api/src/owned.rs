//! Objects developers and the operator own alike (alarm receivers, alert policies, clusters,
//! load balancers): whose a new one is, and finding one by id for a caller (hidden when the
//! caller may not read it, refused when it may not write it).

use op_types::{Kind, Name, Object, Uid};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The organization a new object belongs to: an operator's is its own (none)
/// unless it names one; a developer's is the one it names or acts for, where it may write.
pub(crate) fn owner(c: &Caller, named: Option<Name>) -> Result<Option<Name>, ApiError> {
    if c.role.is_operator() {
        c.require_operator_admin()?;
        return Ok(named);
    }
    let org = named.or_else(|| c.org.clone()).ok_or_else(|| ApiError::invalid("organization", "name the organization it belongs to"))?;
    c.require_write(&org)?;
    Ok(Some(org))
}

/// Object `id` of `kind` as `c` may see it (404 when it may not); with `write`, only if `c`
/// may change it.
pub(crate) async fn find<S: DeserializeOwned, X: DeserializeOwned + Default>(s: &AppState, c: &Caller, kind: Kind, id: &str, write: bool) -> Result<Object<S, X>, ApiError> {
    let not_found = || ApiError::NotFound(format!("{kind} '{id}' not found"));
    let uid: Uid = id.parse().map_err(|_| not_found())?;
    let o = s.repo.get::<S, X>(kind, uid).await?.filter(|o| o.metadata.kind == kind && c.can_read(o.metadata.organization.as_ref())).ok_or_else(not_found)?;
    if write {
        match &o.metadata.organization {
            Some(org) => c.require_write(org)?,
            None => c.require_operator_admin()?,
        }
    }
    Ok(o)
}


/// Body of the create calls of owned objects.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOwned<S> {
    /// Unique in the organization.
    pub name: Name,
    /// Default: the caller's organization.
    #[serde(default)]
    pub organization: Option<Name>,
    /// What it is.
    pub spec: S,
}

