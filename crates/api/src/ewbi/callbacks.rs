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
            super::peer::apply_instance_event(&s, &peer, &ev).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        "app-status" => {
            let ev: wire::AppOnboardStatusEvent = crate::json::parse(&raw)?;
            tracing::info!(peer = %peer.metadata.name, app = %ev.app_id, "partner onboarding status");
            Ok(StatusCode::NO_CONTENT)
        }
        "partner-status" => {
            let ev: wire::PartnerStatusEvent = crate::json::parse(&raw)?;
            zone_status(&s, &peer, &ev).await?;
            remember_zone_status(&s, peer, &ev).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        "zone-resource" => {
            let _ev: wire::ZoneResourceUpdateEvent = crate::json::parse(&raw)?;
            wake_peer(&s, peer).await?;
            // The only callback the spec answers with 200.
            Ok(StatusCode::OK)
        }
        super::notify::SESSIONS_CALLBACK => {
            // Our `x-op` extension: sessions the partner's ingress served for our instances.
            let ev: op_types::ewbi::usage::SessionsServed = crate::json::parse(&raw)?;
            if peer.observed.context_id.as_deref() != Some(ev.federation_context_id.as_str()) {
                return Err(EwbiError(ApiError::invalid("federationContextId", "not this federation's context")));
            }
            super::settle::record(&s, &peer.metadata.name, op_types::ewbi::usage::UsageEvent::SessionsServed(ev)).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        "resource-status" => {
            let _ev: wire::ResourceStatusChangeEvent = crate::json::parse(&raw)?;
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(EwbiError(ApiError::NotFound("no such callback".into()))),
    }
}

/// Applies a partner's zone availability to our copies of its zones: a zone the partner says
/// is not available shows `inactive` to developers, and deploying there is refused.
async fn zone_status(s: &AppState, peer: &super::peer::Peer, ev: &wire::PartnerStatusEvent) -> Result<(), ApiError> {
    use op_types::specs::ZoneSpec;
    let (zones, _) = s.repo.list::<ZoneSpec, ()>(Kind::Zone).await?;
    let mine = |id: &str| zones.iter().find(|z| z.spec.federated.as_ref().is_some_and(|f| f.peer == peer.metadata.name && f.zone_id == id)).cloned();
    for st in ev.zone_status.iter().flatten() {
        let Some(mut z) = mine(&st.zone_id) else { continue };
        let text = serde_json::to_value(st.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let (state, msg) = if text == "AVAILABLE" { (op_types::State::Ready, "available".to_string()) } else { (op_types::State::Failed, format!("the partner reports the zone {text}")) };
        if z.status.state != state {
            z.status.state = state;
            z.status.message = Some(msg);
            s.repo.update(&mut z).await?;
        }
    }
    for id in ev.remove_zones.iter().flatten() {
        if let Some(mut z) = mine(id) {
            z.status.state = op_types::State::Failed;
            z.status.message = Some("the partner no longer offers this zone".into());
            s.repo.update(&mut z).await?;
        }
    }
    Ok(())
}

/// Keeps the partner's latest status per zone on the peer (and wakes its reconciler): a zone
/// we have not made our copy of yet (its `ADD` came just before) starts from that status.
async fn remember_zone_status(s: &AppState, mut peer: super::peer::Peer, ev: &wire::PartnerStatusEvent) -> Result<(), ApiError> {
    let statuses: Vec<(String, String)> = ev
        .zone_status
        .iter()
        .flatten()
        .map(|st| (st.zone_id.clone(), serde_json::to_value(st.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()))
        .collect();
    for _ in 0..10 {
        for (id, st) in &statuses {
            peer.observed.zone_status.insert(id.clone(), st.clone());
        }
        // A zone offered again later starts afresh (available, as its `ADD` says).
        for id in ev.remove_zones.iter().flatten() {
            peer.observed.zone_status.remove(id);
        }
        peer.metadata.labels.insert("op.federation.notified".into(), chrono::Utc::now().timestamp_micros().to_string());
        match s.repo.update(&mut peer).await {
            Ok(()) => return Ok(()),
            Err(op_store::RepoError::Conflict) => {
                peer = s.repo.get(Kind::FederationPeer, peer.metadata.uid).await?.ok_or_else(|| ApiError::NotFound("the peer is gone".into()))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict("the peer keeps changing; retry the callback".into()))
}

async fn wake_peer(s: &AppState, mut peer: super::peer::Peer) -> Result<(), ApiError> {
    peer.metadata.labels.insert("op.federation.notified".into(), chrono::Utc::now().timestamp_micros().to_string());
    match s.repo.update(&mut peer).await {
        Ok(()) | Err(op_store::RepoError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
