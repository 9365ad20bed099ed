//! The originating role's callback receivers: `POST /ewbi/callbacks/{callbackId}/{kind}` on the
//! EWBI listener. The callback id is 128 random bits per peer, given only to that partner in
//! our requests (a capability URL): it says which peer is calling, and a wrong one answers 404
//! like any unknown path. Bodies are checked against the GSMA callback schemas (either
//! revision's spelling); instance status is recorded for settlement, and every callback wakes
//! the reconciler of what it is about, which then reads the partner's state itself.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use op_types::ewbi::objects::{FederationPeerObserved, FederationPeerSpec};
use op_types::ewbi::wire;
use op_types::specs::{AppInstanceSpec, InstanceObserved};
use op_types::Kind;

use super::{EwbiError, EwbiResult};
use crate::error::ApiError;
use crate::state::AppState;

/// The peer whose callback id is `cb`.
async fn peer_of(s: &AppState, cb: &str) -> EwbiResult<super::peer::Peer> {
    let (peers, _) = s.repo.list::<FederationPeerSpec, FederationPeerObserved>(Kind::FederationPeer).await?;
    let same = |a: &str| a.len() == cb.len() && a.bytes().zip(cb.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    peers.into_iter().find(|p| p.observed.callback_id.as_deref().is_some_and(same)).ok_or_else(|| EwbiError(ApiError::NotFound("no such callback".into())))
}

/// `POST /ewbi/callbacks/{callbackId}/{kind}`.
pub async fn receive(State(s): State<AppState>, Path((cb, kind)): Path<(String, String)>, raw: Bytes) -> EwbiResult<StatusCode> {
    let peer = peer_of(&s, &cb).await?;
    match kind.as_str() {
        "instance-status" => {
            let ev: wire::InstanceStatusEvent = crate::json::parse(&raw)?;
            super::peer::record_instance_event(&s, &peer, &ev).await?;
            touch_instance(&s, &ev.app_inst_identifier).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        "app-status" => {
            let ev: wire::AppOnboardStatusEvent = crate::json::parse(&raw)?;
            tracing::info!(peer = %peer.metadata.name, app = %ev.app_id, "partner onboarding status");
            Ok(StatusCode::NO_CONTENT)
        }
        "partner-status" => {
            let _ev: wire::PartnerStatusEvent = crate::json::parse(&raw)?;
            wake_peer(&s, peer).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        "zone-resource" => {
            let _ev: wire::ZoneResourceUpdateEvent = crate::json::parse(&raw)?;
            wake_peer(&s, peer).await?;
            // The only callback the spec answers with 200.
            Ok(StatusCode::OK)
        }
        "resource-status" => {
            let _ev: wire::ResourceStatusChangeEvent = crate::json::parse(&raw)?;
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(EwbiError(ApiError::NotFound("no such callback".into()))),
    }
}

/// Makes the instance's reconciler look at the partner now (a store write is what wakes it).
async fn touch_instance(s: &AppState, remote_id: &str) -> Result<(), ApiError> {
    let (all, _) = s.repo.list::<AppInstanceSpec, InstanceObserved>(Kind::AppInstance).await?;
    if let Some(mut inst) = all.into_iter().find(|i| i.observed.federation.as_ref().and_then(|f| f.instance_id.as_deref()) == Some(remote_id)) {
        inst.metadata.labels.insert("op.federation.notified".into(), chrono::Utc::now().timestamp_micros().to_string());
        match s.repo.update(&mut inst).await {
            Ok(()) | Err(op_store::RepoError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn wake_peer(s: &AppState, mut peer: super::peer::Peer) -> Result<(), ApiError> {
    peer.metadata.labels.insert("op.federation.notified".into(), chrono::Utc::now().timestamp_micros().to_string());
    match s.repo.update(&mut peer).await {
        Ok(()) | Err(op_store::RepoError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
