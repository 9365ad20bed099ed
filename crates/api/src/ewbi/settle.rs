//! Settlement between federated operators. Both sides record the same usage events in their
//! ledgers: the partner when an instance it runs for the originator changes state (the event
//! carries the partner's clock, `modificationDate`, and goes out in the same callback), and the
//! originator when that callback arrives; edge-discovery and roaming-authentication calls are
//! recorded by both at the time the partner states in its `Date` header. Each side computes its
//! report with the same pure function ([`op_types::ewbi::usage::report`]); the digests must be
//! equal, and the partner serves its report at `{ctx}/x-op/usage` so the originator can check.

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Duration, DurationRound, Utc};
use op_types::ewbi::objects::{FederationPeerObserved, FederationPeerSpec, FederationSpec, UsageLedgerSpec};
use op_types::ewbi::usage::{report, UsageEvent, UsageReport};
use op_types::{Kind, Name, Object};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{EwbiResult, PartnerCaller};
use crate::error::ApiError;
use crate::state::AppState;

/// The identity of an event: the hash of its canonical JSON, so the same event recorded twice
/// (a callback delivered again) is one ledger entry.
fn entry_name(e: &UsageEvent) -> Result<Name, ApiError> {
    let json = serde_json::to_vec(e).map_err(|e| ApiError::Internal(e.to_string()))?;
    let hex: String = Sha256::digest(&json).iter().take(24).map(|b| format!("{b:02x}")).collect();
    Name::new(format!("u{hex}")).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Records `event` with `counterpart` (a partner's or peer's name); recording it again is a
/// no-op.
pub async fn record(s: &AppState, counterpart: &Name, event: UsageEvent) -> Result<(), ApiError> {
    let name = entry_name(&event)?;
    let spec = UsageLedgerSpec { federation: event.federation_context_id().to_string(), counterpart: counterpart.clone(), event };
    let mut obj: Object<UsageLedgerSpec> = Object::new(Kind::UsageLedger, None, name, spec);
    match s.repo.create(&mut obj).await {
        Ok(()) | Err(op_store::RepoError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The events recorded with `counterpart` under federation `ctx`.
async fn events(s: &AppState, counterpart: &Name, ctx: &str) -> Result<Vec<UsageEvent>, ApiError> {
    let (all, _) = s.repo.list::<UsageLedgerSpec, ()>(Kind::UsageLedger).await?;
    Ok(all.into_iter().filter(|e| &e.spec.counterpart == counterpart && e.spec.federation == ctx).map(|e| e.spec.event).collect())
}

/// The billing key (provider, flavour, milli-vCPUs, MiB) of instance `instance` from its
/// earlier events with `counterpart`: what its later events carry once the instance is gone.
pub async fn instance_key(s: &AppState, counterpart: &Name, ctx: &str, instance: &str) -> Result<Option<(String, String, u64, u64)>, ApiError> {
    Ok(events(s, counterpart, ctx).await?.into_iter().find_map(|e| match e {
        UsageEvent::InstanceStateChanged(i) if i.app_instance_id == instance => Some((i.app_provider_id, i.flavour_id, i.vcpu_milli, i.memory_mb)),
        _ => None,
    }))
}

/// The settlement window from a query: `to` defaults to the start of the current hour, `from`
/// to 24 h before `to`.
pub fn window(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = match to {
        Some(t) => t,
        None => Utc::now().duration_trunc(Duration::hours(1)).map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    let from = from.unwrap_or(to - Duration::hours(24));
    if from >= to {
        return Err(ApiError::invalid("from", "must be before `to`"));
    }
    if to - from > Duration::days(93) {
        return Err(ApiError::invalid("from", "a report covers at most 93 days"));
    }
    Ok((from, to))
}

/// The federation context with `who`: the one a peer gave us (originating role) or the newest
/// one a partner created (partner role).
async fn context_with(s: &AppState, who: &Name, role: Role) -> Result<String, ApiError> {
    if role != Role::Partner {
        if let Some(p) = s.repo.get_by_name::<FederationPeerSpec, FederationPeerObserved>(Kind::FederationPeer, None, who).await? {
            return p.observed.context_id.ok_or_else(|| ApiError::NotFound(format!("peer '{who}' has no federation yet")));
        }
        if role == Role::Peer {
            return Err(ApiError::NotFound(format!("no peer '{who}'")));
        }
    }
    let (feds, _) = s.repo.list::<FederationSpec, ()>(Kind::Federation).await?;
    feds.into_iter()
        .filter(|f| &f.spec.partner == who)
        .max_by_key(|f| f.metadata.created)
        .and_then(|f| f.metadata.name.as_str().strip_prefix("f-").map(str::to_string))
        .ok_or_else(|| ApiError::NotFound(format!("no peer or partner '{who}' with a federation")))
}

/// Which side of a federation with a counterpart a report is about: an operator may be both
/// our peer (we deploy there) and our partner (it deploys here) under the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The federation where we originate.
    Peer,
    /// The federation where we are the partner.
    Partner,
    /// The peer's if there is one, else the partner's.
    Either,
}

/// Our report of usage with `who` over `[from, to)`.
pub async fn local_report(s: &AppState, who: &Name, role: Role, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<UsageReport, ApiError> {
    let ctx = context_with(s, who, role).await?;
    let evs = events(s, who, &ctx).await?;
    Ok(report(&ctx, &evs, from, to))
}

/// The `x-op/usage` query.
#[derive(Debug, Deserialize)]
pub struct Window {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// `GET {ctx}/x-op/usage` (extension `usage-v1`): the partner's report for the calling
/// originator, to compare digests with its own.
pub async fn partner_usage(State(s): State<AppState>, caller: PartnerCaller, Path(ctx): Path<String>, Query(w): Query<Window>) -> EwbiResult<Json<UsageReport>> {
    caller.federation(&s, &ctx).await?;
    let (from, to) = window(w.from, w.to)?;
    let evs = events(&s, &caller.partner.metadata.name, &ctx).await?;
    Ok(Json(report(&ctx, &evs, from, to)))
}
