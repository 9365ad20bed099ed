//! Zone updates pushed to partners (partner role). Every [`PERIOD`] the pusher computes, per
//! federation, the zones offered to the partner as it may see them (details, availability,
//! the resources left of its reservation) and compares them with what it last told it
//! (stored per federation, so a restart neither repeats nor forgets an update). Differences go
//! through the outbox: a zone added to or removed from the offer (`onPartnerStatusEvent`,
//! `ZONES` `ADD`/`REMOVE`), a zone's availability (`ZONES` `STATUS`: a zone all of whose edges
//! are in maintenance is `NOT_AVAILABLE`, one with no ready edge `TEMPORARY_FAILURE`), and, to
//! subscribers of a zone, its resources (`onZoneResourceUpdateEvent`: new flavours such as GPU
//! ones, or the reservation's use). Everything is built from zones and the offer, never
//! from a cloudlet's name or capacity.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use op_types::ewbi::objects::{EwbiInstanceObserved, EwbiInstanceSpec, EwbiZoneViewSpec, FederationPartnerSpec, FederationSpec};
use op_types::specs::{AppInstanceSpec, CloudletSpec, FlavorSpec};
use op_types::{Kind, Object, State};
use serde_json::{json, Value};

use super::notify::enqueue;
use crate::error::ApiError;
use crate::state::AppState;

/// How often zones are compared with what partners were told.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Runs the pusher until the process ends.
pub async fn run(s: AppState) {
    loop {
        if let Err(e) = push_once(&s).await {
            tracing::warn!(error = %e, "EWBI zone pusher");
        }
        tokio::time::sleep(PERIOD).await;
    }
}

/// One comparison of every federation's zones; returns how many callbacks were queued.
pub async fn push_once(s: &AppState) -> Result<usize, ApiError> {
    let (feds, _) = s.repo.list::<FederationSpec, ()>(Kind::Federation).await?;
    let mut queued = 0;
    for fed in feds.into_iter().filter(|f| f.metadata.deletion_requested.is_none()) {
        let Some(partner) = s.repo.get_by_name::<FederationPartnerSpec, ()>(Kind::FederationPartner, None, &fed.spec.partner).await? else { continue };
        let now = view(s, &partner, &fed).await?;
        let stored = s.repo.get_by_name::<EwbiZoneViewSpec, ()>(Kind::EwbiZoneView, None, &fed.metadata.name).await?;
        let Some(mut stored) = stored else {
            // A federation created before baselines were written at creation.
            baseline(s, &partner, &fed).await?;
            continue;
        };
        if stored.spec == now {
            continue;
        }
        let before = told(s, &partner, &stored.spec, &now).await?;
        queued += notify(s, &fed, &before, &now).await?;
        stored.spec = now;
        s.repo.update(&mut stored).await?;
    }
    Ok(queued)
}

/// Records what the partner learnt of the zones when it federated (the answer to
/// CreateFederation): the baseline later changes are told against. Written when the
/// federation is created, so that a change in the pusher's first second is not lost.
pub async fn baseline(s: &AppState, partner: &Object<FederationPartnerSpec>, fed: &Object<FederationSpec>) -> Result<(), ApiError> {
    let mut told = view(s, partner, fed).await?;
    // Resources are told at subscription, not at federation.
    told.resources.clear();
    let mut o: Object<EwbiZoneViewSpec> = Object::new(Kind::EwbiZoneView, None, fed.metadata.name.clone(), told);
    o.status.state = State::Ready;
    match s.repo.create(&mut o).await {
        Ok(()) | Err(op_store::RepoError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `stored` completed with what the partner was told of each zone it subscribed to since:
/// the ZoneSubscribe answer shows the whole reservation as left.
async fn told(s: &AppState, partner: &Object<FederationPartnerSpec>, stored: &EwbiZoneViewSpec, now: &EwbiZoneViewSpec) -> Result<EwbiZoneViewSpec, ApiError> {
    let mut before = stored.clone();
    for id in now.resources.keys().filter(|id| !stored.resources.contains_key(*id)) {
        if let Some(oz) = partner.spec.zones.iter().find(|z| z.remote_id() == *id) {
            before.resources.insert(id.clone(), left(s, oz, 0, 0).await?);
        }
    }
    Ok(before)
}

/// The zones of `partner`'s offer as it may see them now.
async fn view(s: &AppState, partner: &Object<FederationPartnerSpec>, fed: &Object<FederationSpec>) -> Result<EwbiZoneViewSpec, ApiError> {
    let details = super::partner::zone_details(s, partner).await.map_err(|e| e.0)?;
    let (cloudlets, _) = s.repo.list::<CloudletSpec, Value>(Kind::Cloudlet).await?;
    let mut v = EwbiZoneViewSpec::default();
    for d in details {
        let Some(oz) = partner.spec.zones.iter().find(|z| z.remote_id() == d.zone_id) else { continue };
        let here: Vec<_> = cloudlets.iter().filter(|c| c.spec.zone == oz.zone).collect();
        let status = if here.is_empty() || here.iter().all(|c| c.spec.maintenance) {
            "NOT_AVAILABLE"
        } else if here.iter().any(|c| !c.spec.maintenance && c.status.state == State::Ready) {
            "AVAILABLE"
        } else {
            "TEMPORARY_FAILURE"
        };
        v.status.insert(d.zone_id.clone(), status.to_string());
        if fed.spec.subscriptions.contains_key(&d.zone_id) {
            v.resources.insert(d.zone_id.clone(), resources(s, fed, oz).await?);
        }
        v.details.insert(d.zone_id.clone(), serde_json::to_value(&d).map_err(|e| ApiError::Internal(e.to_string()))?);
    }
    Ok(v)
}

/// What is left of the federation's reservation in zone `oz` (reserved minus what its
/// instances there take), and the flavours it may use: a `ZoneResUpdInfo`.
async fn resources(s: &AppState, fed: &Object<FederationSpec>, oz: &op_types::ewbi::objects::OfferedZone) -> Result<Value, ApiError> {
    let (insts, _) = s.repo.list::<EwbiInstanceSpec, EwbiInstanceObserved>(Kind::EwbiInstance).await?;
    let (mut cpu, mut mem) = (0u64, 0u64);
    for fi in insts.iter().filter(|i| i.spec.federation == fed.metadata.name && i.spec.zone_id == oz.remote_id()) {
        let Some(local) = s.repo.get::<AppInstanceSpec, Value>(Kind::AppInstance, fi.spec.local_instance).await? else { continue };
        if local.metadata.deletion_requested.is_some() {
            continue;
        }
        if let Some(f) = s.repo.get_by_name::<FlavorSpec, ()>(Kind::Flavor, None, &local.spec.flavor).await? {
            cpu += u64::from(f.spec.vcpus) * 1000;
            mem += f.spec.memory_mb;
        }
    }
    left(s, oz, cpu, mem).await
}

/// The reservation in zone `oz` less `cpu_milli` and `mem_mb` taken, with the zone's flavours.
async fn left(s: &AppState, oz: &op_types::ewbi::objects::OfferedZone, cpu_milli: u64, mem_mb: u64) -> Result<Value, ApiError> {
    let reg = super::partner::zone_registered(s, oz).await.map_err(|e| e.0)?;
    let left_cpu = (u64::from(oz.reserved_vcpus) * 1000).saturating_sub(cpu_milli);
    let left_mem = oz.reserved_memory_mb.saturating_sub(mem_mb);
    let flavours: Vec<&str> = reg.flavours_supported.iter().map(|f| f.flavour_id.as_str()).collect();
    Ok(json!({
        "availableCompResources": [{"cpuArchType": "ISA_X86_64", "numCPU": left_cpu / 1000, "memory": left_mem, "diskStorage": 0}],
        "flavours": flavours,
    }))
}

/// Queues the callbacks that tell the partner how `now` differs from `before`.
async fn notify(s: &AppState, fed: &Object<FederationSpec>, before: &EwbiZoneViewSpec, now: &EwbiZoneViewSpec) -> Result<usize, ApiError> {
    let ctx = fed.metadata.name.as_str().trim_start_matches("f-").to_string();
    let at = Utc::now().trunc_subsecs(0);
    let date = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut n = 0;
    let status_link = fed.spec.notification_link.clone().unwrap_or_default();
    let added: Vec<&Value> = now.details.iter().filter(|(id, d)| before.details.get(*id) != Some(*d)).map(|(_, d)| d).collect();
    let removed: Vec<&String> = before.details.keys().filter(|id| !now.details.contains_key(*id)).collect();
    let changed: Vec<Value> = now
        .status
        .iter()
        // A partner takes a zone it has just been told of (`ADD`) as available.
        .filter(|(id, st)| before.status.get(*id).map_or("AVAILABLE", String::as_str) != st.as_str())
        .map(|(id, st)| json!({"zoneId": id, "status": st}))
        .collect();
    let mut events = Vec::new();
    if !added.is_empty() {
        events.push(json!({"federationContextId": ctx, "objectType": "ZONES", "operationType": "ADD", "addZones": added, "modificationDate": date}));
    }
    if !removed.is_empty() {
        events.push(json!({"federationContextId": ctx, "objectType": "ZONES", "operationType": "REMOVE", "removeZones": removed, "modificationDate": date}));
    }
    if !changed.is_empty() {
        events.push(json!({"federationContextId": ctx, "objectType": "ZONES", "operationType": "STATUS", "zoneStatus": changed, "modificationDate": date}));
    }
    for ev in events {
        enqueue(s, &fed.metadata.name, "onPartnerStatusEvent", &status_link, ev, at).await?;
        n += 1;
    }
    let links: BTreeMap<&String, &String> = fed.spec.subscriptions.iter().collect();
    for (id, res) in &now.resources {
        if before.resources.get(id) == Some(res) {
            continue;
        }
        let Some(link) = links.get(id) else { continue };
        let mut info = res.clone();
        if let Some(o) = info.as_object_mut() {
            o.remove("flavours");
        }
        let info: op_types::ewbi::wire::ZoneResUpdInfo = serde_json::from_value(info).map_err(|e| ApiError::Internal(e.to_string()))?;
        let ev = op_types::ewbi::wire::ZoneResourceUpdateEvent { federation_context_id: Some(ctx.clone()), zone_id: Some(id.clone()), zone_res_upd_info: vec![info] };
        // The partner's revision decides how numCPU is written.
        let ev = fed.spec.dialect.to_value(&ev).map_err(|e| ApiError::Internal(e.to_string()))?;
        enqueue(s, &fed.metadata.name, "onZoneResourceUpdateEvent", link, ev, at).await?;
        n += 1;
    }
    Ok(n)
}
