//! The partner role: the GSMA federation API as a partner operator calls it. Every handler
//! takes a [`PartnerCaller`] (a valid `fed-mgmt` token of a registered partner) and a
//! federation context that partner owns; an unknown context, zone, file, artefact, app or
//! instance, or one of another partner, answers 404 alike.
//!
//! What a partner sends is realised with ordinary local objects, so our own admission,
//! placement policies, quotas, controllers and telemetry apply unchanged: one organization per
//! (federation, app provider), an app per onboarded app, an app instance per installed
//! instance. Answers are built from zones and the offer, never from cloudlets.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use op_types::ewbi::objects::{
    EwbiAppSpec, EwbiArtefactSpec, EwbiFileSpec, EwbiInstanceObserved, EwbiInstanceSpec, FederationPartnerSpec, FederationSpec, OfferedZone,
};
use op_types::ewbi::wire::{self, ComputeResourceInfo, CpuArchType, Flavour, NumCpu, OsType, ServiceEndpoint, ZoneDetails, ZoneRegisteredData};
use op_types::specs::{CloudletSpec, FlavorSpec, ZoneSpec};
use op_types::{Kind, Name, Object, State as ObjState};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::{federation_name, EwbiError, EwbiResult, PartnerCaller};
use crate::error::ApiError;
use crate::state::AppState;

/// Largest upload accepted on the EWBI (a container image archive).
pub const MAX_UPLOAD: usize = 512 * 1024 * 1024;

/// Parses a JSON body, naming the failing field in a 400 `ProblemDetails`.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> EwbiResult<T> {
    crate::json::parse(bytes).map_err(|e| EwbiError(name_missing_field(e)))
}

/// A missing member is reported at its parent's path (`body` at the top): name the member
/// itself in `invalidParams[].param`, e.g. `initialDate` or `appMetaData.version`.
fn name_missing_field(e: ApiError) -> ApiError {
    if let ApiError::Invalid(f) = &e {
        if let Some(missing) = f.message.split("missing field `").nth(1).and_then(|rest| rest.split('`').next()) {
            let field = if f.field == "body" { missing.to_string() } else { format!("{}.{missing}", f.field) };
            return ApiError::invalid(field, f.message.clone());
        }
    }
    e
}

/// Checks an `AppProviderId` or `AppIdentifier` a partner sends: the official pattern
/// `^[A-Za-z][A-Za-z0-9_]{7,63}$` or the katalis one `^[a-z0-9]([-a-z0-9]{0,62}[a-z0-9])?$`
/// (ids are hashed into our names, never used verbatim). `check_identifier` (the
/// `FederationIdentifier` pattern) refused the official ids' underscores.
fn check_app_id(s: &str, field: &str) -> EwbiResult<()> {
    let b = s.as_bytes();
    let official = (8..=64).contains(&b.len()) && b[0].is_ascii_alphabetic() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    let dns = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let katalis = (1..=64).contains(&b.len()) && dns(&b[0]) && dns(&b[b.len() - 1]) && b.iter().all(|c| dns(c) || *c == b'-');
    if official || katalis {
        Ok(())
    } else {
        Err(EwbiError(ApiError::invalid(field, "must match ^[A-Za-z][A-Za-z0-9_]{7,63}$ (or be a DNS label)")))
    }
}

fn not_found(what: &str) -> EwbiError {
    EwbiError(ApiError::NotFound(format!("no {what}")))
}

/// The offered zone `id` of `partner`, or 404 (a zone not offered is not there).
fn offered<'a>(partner: &'a Object<FederationPartnerSpec>, id: &str) -> EwbiResult<&'a OfferedZone> {
    partner.spec.zones.iter().find(|z| z.remote_id() == id).ok_or_else(|| not_found(&format!("zone {id}")))
}

/// Our zone behind an offered zone.
async fn local_zone(s: &AppState, z: &OfferedZone) -> EwbiResult<Object<ZoneSpec>> {
    s.repo.get_by_name::<ZoneSpec, ()>(Kind::Zone, None, &z.zone).await?.ok_or_else(|| not_found(&format!("zone {}", z.remote_id())))
}

/// `ZoneDetails` of every zone offered to `partner`: ids, rounded locations, the operator's text.
pub async fn zone_details(s: &AppState, partner: &Object<FederationPartnerSpec>) -> EwbiResult<Vec<ZoneDetails>> {
    let mut out = Vec::new();
    for z in &partner.spec.zones {
        let Some(zone) = s.repo.get_by_name::<ZoneSpec, ()>(Kind::Zone, None, &z.zone).await? else { continue };
        out.push(ZoneDetails {
            zone_id: z.remote_id().to_string(),
            geolocation: wire::format_geolocation(zone.spec.location.latitude, zone.spec.location.longitude, partner.spec.location_decimals),
            geography_details: if z.geography.is_empty() { "edge zone".into() } else { z.geography.clone() },
        });
    }
    Ok(out)
}

fn default_os() -> OsType {
    serde_json::from_value(json!({"architecture": "x86_64", "distribution": "OTHER", "version": "OTHER", "license": "NOT_SPECIFIED"}))
        .unwrap_or_else(|_| unreachable!("a valid OSType literal"))
}

/// The flavor as the spec's `Flavour`: sizes only.
pub fn flavour(name: &Name, f: &FlavorSpec) -> Flavour {
    Flavour {
        flavour_id: name.to_string(),
        cpu_arch_type: CpuArchType::IsaX86_64,
        supported_os_types: vec![default_os()],
        num_cpu: NumCpu::from_vcpus(f.vcpus),
        memory_size: u32::try_from(f.memory_mb).unwrap_or(u32::MAX),
        storage_size: u32::try_from(f.disk_gb).unwrap_or(u32::MAX),
        gpu: None,
        fpga: None,
        vpu: None,
        hugepages: None,
        cpu_exclusivity: None,
    }
}

fn compute(vcpus: u32, memory_mb: u64) -> ComputeResourceInfo {
    ComputeResourceInfo {
        cpu_arch_type: CpuArchType::IsaX86_64,
        num_cpu: NumCpu::from_vcpus(vcpus),
        memory: memory_mb,
        disk_storage: Some(0),
        gpu: None,
        vpu: None,
        fpga: None,
        hugepages: None,
        cpu_exclusivity: None,
    }
}

/// What `partner` may know of offered zone `z`: the reservation and quota the operator
/// offered, and the flavors some cloudlet of the zone offers. Never cloudlet capacities.
pub async fn zone_registered(s: &AppState, z: &OfferedZone) -> EwbiResult<ZoneRegisteredData> {
    let (cloudlets, _) = s.repo.list::<CloudletSpec, Value>(Kind::Cloudlet).await?;
    let names: BTreeSet<&Name> = cloudlets.iter().filter(|c| c.spec.zone == z.zone).flat_map(|c| c.spec.flavors.iter()).collect();
    let (flavors, _) = s.repo.list::<FlavorSpec, ()>(Kind::Flavor).await?;
    let mut supported: Vec<Flavour> = flavors.iter().filter(|f| names.contains(&f.metadata.name)).map(|f| flavour(&f.metadata.name, &f.spec)).collect();
    supported.sort_by(|a, b| a.flavour_id.cmp(&b.flavour_id));
    let quota = if z.quota_vcpus == 0 { (z.reserved_vcpus, z.reserved_memory_mb) } else { (z.quota_vcpus, z.quota_memory_mb) };
    Ok(ZoneRegisteredData {
        zone_id: z.remote_id().to_string(),
        reserved_compute_resources: vec![compute(z.reserved_vcpus, z.reserved_memory_mb)],
        compute_resource_quota_limits: vec![compute(quota.0, quota.1)],
        flavours_supported: supported,
        network_resources: None,
    })
}

/// Our EWBI listener as a `ServiceEndpoint` (both the edge-discovery and LCM services are
/// served there).
fn our_endpoint(s: &AppState) -> ServiceEndpoint {
    let url = reqwest::Url::parse(&s.ewbi.public_url).ok();
    let host = url.as_ref().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| "localhost".into());
    let port = url.as_ref().and_then(|u| u.port_or_known_default()).unwrap_or(443);
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        ServiceEndpoint { port, fqdn: None, ipv4_addresses: Some(vec![host]), ipv6_addresses: None }
    } else {
        ServiceEndpoint::fqdn(host, port)
    }
}

fn federation_details(s: &AppState, partner: &Object<FederationPartnerSpec>, fed: &Object<FederationSpec>, zones: Vec<ZoneDetails>) -> wire::FederationDetails {
    let mcc_mnc = mobile_ids(&fed.spec.mobile_network_ids);
    let _ = partner;
    wire::FederationDetails {
        edge_discovery_service_end_point: our_endpoint(s),
        lcm_service_end_point: our_endpoint(s),
        allowed_mobile_network_ids: mcc_mnc,
        allowed_fixed_network_ids: None,
        offered_availability_zones: Some(zones),
    }
}

/// `MobileNetworkIds` from `mccmnc` codes (one MCC: the spec's shape has one).
fn mobile_ids(codes: &[String]) -> Option<wire::MobileNetworkIds> {
    let first = codes.first()?;
    let mcc = first.get(..3)?.to_string();
    let mncs: Vec<String> = codes.iter().filter(|c| c.starts_with(&mcc)).filter_map(|c| c.get(3..).map(str::to_string)).collect();
    Some(wire::MobileNetworkIds { mcc: Some(mcc), mncs: Some(mncs) })
}

fn codes_of(ids: &wire::MobileNetworkIds) -> Vec<String> {
    let mcc = ids.mcc.clone().unwrap_or_default();
    ids.mncs.iter().flatten().map(|m| format!("{mcc}{m}")).collect()
}

/// The extensions we speak beyond the GSMA file.
pub const EXTENSIONS: &[&str] = &["usage-v1"];

/// `POST /partner` (CreateFederation).
pub async fn create_federation(State(s): State<AppState>, caller: PartnerCaller, raw: Bytes) -> EwbiResult<Response> {
    let req: wire::FederationRequestData = body(&raw)?;
    req.validate()?;
    let partner = &caller.partner;
    if req.orig_op_federation_id != partner.spec.federation_id {
        return Err(EwbiError(ApiError::invalid("origOPFederationId", "is not the federation id registered for your client")));
    }
    let link = req.notification_link().unwrap_or_default().to_string();
    if !link.starts_with("https://") {
        return Err(EwbiError(ApiError::invalid("federationNotificationDest", "must be an https:// URL")));
    }
    let (feds, _) = s.repo.list::<FederationSpec, ()>(Kind::Federation).await?;
    let existing = feds.into_iter().find(|f| f.spec.partner == partner.metadata.name && f.metadata.deletion_requested.is_none());
    let fed = match existing {
        // The same request again (its answer was lost): the same federation.
        Some(f) if f.spec.initial_date == req.initial_date && f.spec.notification_link.as_deref() == Some(link.as_str()) => f,
        Some(_) => return Err(EwbiError(ApiError::AlreadyExists("a federation with this partner already exists; delete it first".into()))),
        None => {
            let ctx = uuid::Uuid::new_v4().to_string();
            let mut codes: Vec<String> = req.orig_op_mobile_network_codes.as_ref().map(codes_of).unwrap_or_default();
            codes.retain(|c| partner.spec.network_codes.is_empty() || partner.spec.network_codes.contains(c));
            let wanted: Vec<String> = req.x_op_extensions.clone().unwrap_or_default();
            let spec = FederationSpec {
                partner: partner.metadata.name.clone(),
                dialect: req.dialect(),
                notification_link: Some(link),
                initial_date: req.initial_date,
                mobile_network_ids: codes,
                subscriptions: Default::default(),
                extensions: EXTENSIONS.iter().filter(|e| wanted.iter().any(|w| w == *e)).map(|e| e.to_string()).collect(),
            };
            let mut f: Object<FederationSpec> = Object::new(Kind::Federation, None, federation_name(&ctx)?, spec);
            f.status.state = ObjState::Ready;
            s.repo.create(&mut f).await?;
            super::zones::baseline(&s, partner, &f).await?;
            tracing::info!(partner = %partner.metadata.name, context = %ctx, "federation created");
            f
        }
    };
    let ctx = fed.metadata.name.as_str().trim_start_matches("f-").to_string();
    let zones = zone_details(&s, partner).await?;
    let resp = wire::FederationResponseData {
        partner_op_federation_id: s.ewbi.federation_id.clone(),
        partner_op_country_code: Some(s.ewbi.country_code.clone()),
        federation_context_id: Some(ctx.clone()),
        edge_discovery_service_end_point: Some(our_endpoint(&s)),
        lcm_service_end_point: Some(our_endpoint(&s)),
        partner_op_mobile_network_codes: mobile_ids(&[s.uni.plmn()]),
        partner_op_fixed_network_codes: None,
        offered_availability_zones: Some(zones),
        platform_caps: vec![wire::PlatformCap::HomeRouting],
        x_op_extensions: Some(fed.spec.extensions.clone()),
    };
    let location = format!("{}{}/{ctx}/partner", s.ewbi.public_url, super::BASE);
    let value = fed.spec.dialect.to_value(&resp).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((StatusCode::OK, [(header::LOCATION, location)], Json(value)).into_response())
}

/// `GET /{ctx}/partner` (GetFederationDetails).
pub async fn get_federation(State(s): State<AppState>, caller: PartnerCaller, Path(ctx): Path<String>) -> EwbiResult<Json<Value>> {
    let fed = caller.federation(&s, &ctx).await?;
    let zones = zone_details(&s, &caller.partner).await?;
    let d = federation_details(&s, &caller.partner, &fed, zones);
    Ok(Json(fed.spec.dialect.to_value(&d).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// `PATCH /{ctx}/partner` (UpdateFederation): the partner's network codes.
pub async fn update_federation(State(s): State<AppState>, caller: PartnerCaller, Path(ctx): Path<String>, raw: Bytes) -> EwbiResult<Json<Value>> {
    let mut fed = caller.federation(&s, &ctx).await?;
    let req: wire::UpdateFederationRequest = body(&raw)?;
    use wire::{UpdateFederationObjectType as O, UpdateFederationOperationType as Op};
    if req.object_type == O::FixedNetworkCodes {
        return Err(EwbiError(ApiError::Unprocessable("UNSUPPORTED", "fixed network codes are not supported by this platform".into())));
    }
    let add = req.add_mobile_network_ids.as_ref().map(codes_of).unwrap_or_default();
    let remove = req.remove_mobile_network_ids.as_ref().map(codes_of).unwrap_or_default();
    for (i, c) in add.iter().enumerate() {
        if !op_types::specs::is_plmn_id(c) {
            return Err(EwbiError(ApiError::invalid(format!("addMobileNetworkIds.mncs[{i}]"), "MCC and MNC must be 3 and 2-3 digits")));
        }
    }
    let codes = &mut fed.spec.mobile_network_ids;
    match req.operation_type {
        Op::AddCodes => {
            if add.is_empty() {
                return Err(EwbiError(ApiError::invalid("addMobileNetworkIds", "is required for ADD_CODES")));
            }
            codes.extend(add);
        }
        Op::RemoveCodes => {
            if remove.is_empty() {
                return Err(EwbiError(ApiError::invalid("removeMobileNetworkIds", "is required for REMOVE_CODES")));
            }
            codes.retain(|c| !remove.contains(c));
        }
        Op::UpdateCodes => {
            codes.retain(|c| !remove.contains(c));
            codes.extend(add);
        }
    }
    codes.sort();
    codes.dedup();
    s.repo.update(&mut fed).await?;
    let zones = zone_details(&s, &caller.partner).await?;
    let d = federation_details(&s, &caller.partner, &fed, zones);
    Ok(Json(fed.spec.dialect.to_value(&d).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// `DELETE /{ctx}/partner` (DeleteFederationDetails): ends the federation; every instance,
/// app, artefact and file it brought is removed.
pub async fn delete_federation(State(s): State<AppState>, caller: PartnerCaller, Path(ctx): Path<String>) -> EwbiResult<StatusCode> {
    let mut fed = caller.federation(&s, &ctx).await?;
    fed.metadata.deletion_requested = Some(Utc::now());
    s.repo.update(&mut fed).await?;
    teardown(&s, &fed.metadata.name).await?;
    s.repo.delete(&fed).await?;
    tracing::info!(partner = %caller.partner.metadata.name, context = %ctx, "federation deleted");
    Ok(StatusCode::OK)
}

/// Removes everything federation `fed` brought: instances (their containers go with the
/// instance controller), apps, artefacts, files.
async fn teardown(s: &AppState, fed: &Name) -> Result<(), ApiError> {
    let (insts, _) = s.repo.list::<EwbiInstanceSpec, EwbiInstanceObserved>(Kind::EwbiInstance).await?;
    for i in insts.into_iter().filter(|i| &i.spec.federation == fed) {
        remove_local_instance(s, i.spec.local_instance).await?;
    }
    let (apps, _) = s.repo.list::<EwbiAppSpec, ()>(Kind::EwbiApp).await?;
    for a in apps.into_iter().filter(|a| &a.spec.federation == fed) {
        remove_app(s, &a).await?;
    }
    let (arts, _) = s.repo.list::<EwbiArtefactSpec, ()>(Kind::EwbiArtefact).await?;
    for a in arts.into_iter().filter(|a| &a.spec.federation == fed) {
        s.repo.delete(&a).await?;
    }
    let (files, _) = s.repo.list::<EwbiFileSpec, ()>(Kind::EwbiFile).await?;
    for f in files.into_iter().filter(|f| &f.spec.federation == fed) {
        forget_file(s, &f).await?;
    }
    Ok(())
}

/// Removes an uploaded file: its archive, the image it was loaded as on the cloudlets (best
/// effort: a runtime that is down or an image still in use keeps it), its record.
async fn forget_file(s: &AppState, f: &Object<EwbiFileSpec>) -> Result<(), ApiError> {
    let _ = tokio::fs::remove_file(s.ewbi.files_dir.join(format!("{}.tar", f.metadata.uid))).await;
    if let Some(image) = &f.spec.image {
        let (cloudlets, _) = s.repo.list::<CloudletSpec, Value>(Kind::Cloudlet).await?;
        for cl in &cloudlets {
            if let Ok(d) = s.drivers.for_cloudlet(&cl.spec) {
                if let Err(e) = d.remove_image(image).await {
                    tracing::info!(cloudlet = %cl.metadata.name, image, error = %e, "partner image kept");
                }
            }
        }
    }
    s.repo.delete(f).await?;
    Ok(())
}

/// `POST /{ctx}/zones` (ZoneSubscribe).
pub async fn zone_subscribe(State(s): State<AppState>, caller: PartnerCaller, Path(ctx): Path<String>, raw: Bytes) -> EwbiResult<Json<Value>> {
    let mut fed = caller.federation(&s, &ctx).await?;
    let req: wire::ZoneRegistrationRequestData = body(&raw)?;
    if req.accepted_availability_zones.is_empty() {
        return Err(EwbiError(ApiError::invalid("acceptedAvailabilityZones", "must name at least one zone")));
    }
    if !req.avail_zone_notif_link.starts_with("https://") {
        return Err(EwbiError(ApiError::invalid("availZoneNotifLink", "must be an https:// URL")));
    }
    let mut info = Vec::new();
    for id in &req.accepted_availability_zones {
        let z = offered(&caller.partner, id)?;
        local_zone(&s, z).await?;
        info.push(zone_registered(&s, z).await?);
    }
    for id in &req.accepted_availability_zones {
        fed.spec.subscriptions.insert(id.clone(), req.avail_zone_notif_link.clone());
    }
    s.repo.update(&mut fed).await?;
    let resp = wire::ZoneRegistrationResponseData { accepted_zone_resource_info: info };
    Ok(Json(fed.spec.dialect.to_value(&resp).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// `DELETE /{ctx}/zones/{zoneId}` (ZoneUnsubscribe): refused while the partner's instances run
/// there.
pub async fn zone_unsubscribe(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, zone)): Path<(String, String)>) -> EwbiResult<StatusCode> {
    let mut fed = caller.federation(&s, &ctx).await?;
    if fed.spec.subscriptions.remove(&zone).is_none() {
        return Err(not_found(&format!("subscription to zone {zone}")));
    }
    let (insts, _) = s.repo.list::<EwbiInstanceSpec, EwbiInstanceObserved>(Kind::EwbiInstance).await?;
    if insts.iter().any(|i| i.spec.federation == fed.metadata.name && i.spec.zone_id == zone) {
        return Err(EwbiError(ApiError::Aborted(format!("instances still run in zone {zone}; remove them first"))));
    }
    s.repo.update(&mut fed).await?;
    Ok(StatusCode::OK)
}

/// `GET /{ctx}/zones/{zoneId}` (GetZoneData).
pub async fn get_zone(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, zone)): Path<(String, String)>) -> EwbiResult<Json<Value>> {
    let fed = caller.federation(&s, &ctx).await?;
    if !fed.spec.subscriptions.contains_key(&zone) {
        return Err(not_found(&format!("subscription to zone {zone}")));
    }
    let z = offered(&caller.partner, &zone)?;
    let d = zone_registered(&s, z).await?;
    Ok(Json(fed.spec.dialect.to_value(&d).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// The parts of a multipart body: text parts as `(name, text)`, and the one binary part (named
/// `binary_part`) written to `file` when given.
async fn read_multipart(mut m: Multipart, binary_part: &str, file: Option<&std::path::Path>) -> EwbiResult<(Vec<(String, String)>, u64)> {
    use tokio::io::AsyncWriteExt;
    let mut texts = Vec::new();
    let mut written = 0u64;
    while let Some(mut field) = m.next_field().await.map_err(|e| EwbiError(ApiError::invalid("body", format!("not a valid multipart/form-data body: {e}"))))? {
        let name = field.name().unwrap_or_default().to_string();
        if name == binary_part {
            let Some(path) = file else {
                // Accepted but not kept (an artefact's descriptor file: the component specs say it all).
                while field.chunk().await.map_err(|e| EwbiError(ApiError::invalid(binary_part, e.to_string())))?.is_some() {}
                continue;
            };
            let mut out = tokio::fs::File::create(path).await.map_err(|e| ApiError::Internal(format!("storing the upload: {e}")))?;
            while let Some(chunk) = field.chunk().await.map_err(|e| EwbiError(ApiError::invalid(binary_part, format!("upload interrupted: {e}"))))? {
                written += chunk.len() as u64;
                out.write_all(&chunk).await.map_err(|e| ApiError::Internal(format!("storing the upload: {e}")))?;
            }
            out.flush().await.map_err(|e| ApiError::Internal(format!("storing the upload: {e}")))?;
        } else {
            let text = field.text().await.map_err(|e| EwbiError(ApiError::invalid(name.clone(), format!("not text: {e}"))))?;
            texts.push((name, text));
        }
    }
    Ok((texts, written))
}

/// Parses the text parts of a multipart body as `T`, naming the failing part.
fn parts_as<T: DeserializeOwned>(texts: &[(String, String)]) -> EwbiResult<T> {
    wire::from_form_fields(texts.iter().map(|(k, v)| (k.clone(), v.as_str()))).map_err(|e| {
        let msg = e.to_string();
        let field = msg.split('`').nth(1).unwrap_or("body").to_string();
        EwbiError(ApiError::invalid(field, format!("invalid form part: {msg}")))
    })
}

/// A stored record of federation `fed` named after the partner's id, or 404.
async fn record_of<S: DeserializeOwned>(s: &AppState, kind: Kind, fed: &Name, id: &str) -> EwbiResult<Object<S>> {
    let name = record_name(fed, id)?;
    s.repo.get_by_name::<S, ()>(kind, None, &name).await?.ok_or_else(|| not_found(&format!("{kind} {id}")))
}

/// The store name of a partner's record `id` under federation `fed`: a digest, so any id the
/// partner picks maps to a valid, unique name.
fn record_name(fed: &Name, id: &str) -> EwbiResult<Name> {
    use sha2::{Digest, Sha256};
    let hex: String = Sha256::digest(format!("{fed}/{id}").as_bytes()).iter().take(20).map(|b| format!("{b:02x}")).collect();
    Name::new(format!("r{hex}")).map_err(|e| EwbiError(ApiError::Internal(e.to_string())))
}

/// `POST /{ctx}/files` (UploadFile): a container image archive (`DOCKER`), loaded into the
/// runtimes of the offered zones' cloudlets under a name of the federation's own.
pub async fn upload_file(State(s): State<AppState>, caller: PartnerCaller, Path(ctx): Path<String>, m: Multipart) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    tokio::fs::create_dir_all(&s.ewbi.files_dir).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let tmp = s.ewbi.files_dir.join(format!("upload-{}.part", uuid::Uuid::new_v4()));
    let result = store_file(&s, &caller, &fed, m, &tmp).await;
    let _ = tokio::fs::remove_file(&tmp).await;
    result
}

async fn store_file(s: &AppState, caller: &PartnerCaller, fed: &Object<FederationSpec>, m: Multipart, tmp: &std::path::Path) -> EwbiResult<StatusCode> {
    let (texts, size) = read_multipart(m, "file", Some(tmp)).await?;
    let up: wire::FileUpload = parts_as(&texts)?;
    check_app_id(&up.app_provider_id, "appProviderId")?;
    if up.file_id.is_empty() || up.file_id.len() > 64 {
        return Err(EwbiError(ApiError::invalid("fileId", "must be 1 to 64 characters")));
    }
    if up.file_type != wire::VirtImageType::Docker {
        return Err(EwbiError(ApiError::Unprocessable("UNSUPPORTED", "fileType: only DOCKER images run on this platform's edges".into())));
    }
    if size == 0 {
        let what = if up.repo_type.is_some_and(|r| r != wire::RepoType::Upload) { "images are not pulled from repositories here; upload the image" } else { "the file part is missing or empty" };
        return Err(EwbiError(ApiError::Unprocessable("UNSUPPORTED", format!("file: {what}"))));
    }
    let name = record_name(&fed.metadata.name, &up.file_id)?;
    if s.repo.get_by_name::<EwbiFileSpec, ()>(Kind::EwbiFile, None, &name).await?.is_some() {
        return Err(EwbiError(ApiError::AlreadyExists(format!("file {} already exists", up.file_id))));
    }
    let bytes = tokio::fs::read(tmp).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut obj: Object<EwbiFileSpec> = Object::new(
        Kind::EwbiFile,
        None,
        name,
        EwbiFileSpec {
            federation: fed.metadata.name.clone(),
            file_id: up.file_id.clone(),
            app_provider_id: up.app_provider_id.clone(),
            view: file_view(&up)?,
            image: None,
        },
    );
    let image = format!("localhost/ewbi/{}:latest", obj.metadata.uid);
    load_everywhere(s, &caller.partner, &bytes, &image).await?;
    obj.spec.image = Some(image);
    obj.status.state = ObjState::Ready;
    let keep = s.ewbi.files_dir.join(format!("{}.tar", obj.metadata.uid));
    tokio::fs::write(&keep, &bytes).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    s.repo.create(&mut obj).await?;
    tracing::info!(partner = %caller.partner.metadata.name, file = %up.file_id, bytes = size, "EWBI file uploaded and loaded");
    Ok(StatusCode::OK)
}

/// Loads an image archive into every cloudlet runtime of the zones offered to `partner` and
/// names it `image` there. An archive the runtime refuses is the partner's fault (400).
async fn load_everywhere(s: &AppState, partner: &Object<FederationPartnerSpec>, tar: &[u8], image: &str) -> EwbiResult<()> {
    let zones: BTreeSet<&Name> = partner.spec.zones.iter().map(|z| &z.zone).collect();
    let (cloudlets, _) = s.repo.list::<CloudletSpec, Value>(Kind::Cloudlet).await?;
    let mut loaded_somewhere = false;
    for cl in cloudlets.iter().filter(|c| zones.contains(&c.spec.zone)) {
        let driver = s.drivers.for_cloudlet(&cl.spec).map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let refs = driver.load_image(tar.to_vec()).await.map_err(|e| match e {
            op_driver::DriverError::Runtime(m) => EwbiError(ApiError::invalid("file", format!("not a container image archive the runtime accepts: {m}"))),
            other => EwbiError(ApiError::Unavailable(other.to_string())),
        })?;
        let source = refs.first().ok_or_else(|| EwbiError(ApiError::invalid("file", "the archive holds no image")))?;
        driver.tag_image(source, image).await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
        loaded_somewhere = true;
    }
    if !loaded_somewhere {
        return Err(EwbiError(ApiError::Unavailable("no edge of the offered zones can take images now".into())));
    }
    Ok(())
}

/// The ViewFile answer of an upload: everything but the bytes, credentials redacted.
fn file_view(up: &wire::FileUpload) -> EwbiResult<Value> {
    let d = wire::FileDetails {
        file_id: up.file_id.clone(),
        app_provider_id: up.app_provider_id.clone(),
        file_name: up.file_name.clone(),
        file_description: up.file_description.clone(),
        file_version_info: up.file_version_info.clone(),
        file_type: up.file_type,
        checksum: up.checksum.clone(),
        img_os_type: up.img_os_type,
        img_ins_set_arch: up.img_ins_set_arch,
        repo_type: up.repo_type,
        file_repo_location: up.file_repo_location.as_ref().map(wire::ObjectRepoLocation::redacted),
    };
    serde_json::to_value(d).map_err(|e| EwbiError(ApiError::Internal(e.to_string())))
}

/// `GET /{ctx}/files/{fileId}` (ViewFile).
pub async fn view_file(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, id)): Path<(String, String)>) -> EwbiResult<Json<Value>> {
    let fed = caller.federation(&s, &ctx).await?;
    let f: Object<EwbiFileSpec> = record_of(&s, Kind::EwbiFile, &fed.metadata.name, &id).await?;
    Ok(Json(f.spec.view))
}

/// `DELETE /{ctx}/files/{fileId}` (RemoveFile): refused while an artefact uses it.
pub async fn remove_file(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, id)): Path<(String, String)>) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    let f: Object<EwbiFileSpec> = record_of(&s, Kind::EwbiFile, &fed.metadata.name, &id).await?;
    let (arts, _) = s.repo.list::<EwbiArtefactSpec, ()>(Kind::EwbiArtefact).await?;
    if arts.iter().any(|a| a.spec.federation == fed.metadata.name && images_of(&a.spec).contains(&id)) {
        return Err(EwbiError(ApiError::Aborted(format!("file {id} is used by an artefact; remove the artefact first"))));
    }
    forget_file(&s, &f).await?;
    Ok(StatusCode::OK)
}

/// The file ids an artefact's components run.
fn images_of(a: &EwbiArtefactSpec) -> Vec<String> {
    serde_json::from_value::<Vec<wire::ComponentSpec>>(a.component_spec.clone()).map(|cs| cs.into_iter().flat_map(|c| c.images).collect()).unwrap_or_default()
}

/// `POST /{ctx}/artefact` (UploadArtefact): the app's component specs (COMPONENTSPEC
/// descriptors), whose images are files uploaded before.
pub async fn upload_artefact(State(s): State<AppState>, caller: PartnerCaller, Path(ctx): Path<String>, m: Multipart) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    let (texts, _) = read_multipart(m, "artefactFile", None).await?;
    let up: wire::ArtefactUpload = parts_as(&texts)?;
    check_app_id(&up.app_provider_id, "appProviderId")?;
    if up.artefact_id.is_empty() || up.artefact_id.len() > 64 {
        return Err(EwbiError(ApiError::invalid("artefactId", "must be 1 to 64 characters")));
    }
    if up.artefact_virt_type != wire::ArtefactVirtType::ContainerType {
        return Err(EwbiError(ApiError::Unprocessable("UNSUPPORTED", "artefactVirtType: only CONTAINER_TYPE runs on this platform's edges".into())));
    }
    if up.component_spec.is_empty() {
        return Err(EwbiError(ApiError::invalid("componentSpec", "must hold at least one component")));
    }
    for (i, c) in up.component_spec.iter().enumerate() {
        if c.images.is_empty() {
            return Err(EwbiError(ApiError::invalid(format!("componentSpec[{i}].images"), "must name an uploaded file")));
        }
        for (j, img) in c.images.iter().enumerate() {
            let f: EwbiResult<Object<EwbiFileSpec>> = record_of(&s, Kind::EwbiFile, &fed.metadata.name, img).await;
            if f.is_err() {
                return Err(EwbiError(ApiError::invalid(format!("componentSpec[{i}].images[{j}]"), format!("file {img} was not uploaded; upload it first"))));
            }
        }
    }
    let name = record_name(&fed.metadata.name, &up.artefact_id)?;
    if s.repo.get_by_name::<EwbiArtefactSpec, ()>(Kind::EwbiArtefact, None, &name).await?.is_some() {
        return Err(EwbiError(ApiError::AlreadyExists(format!("artefact {} already exists", up.artefact_id))));
    }
    let view = wire::ArtefactDetails {
        artefact_id: up.artefact_id.clone(),
        app_provider_id: up.app_provider_id.clone(),
        artefact_name: up.artefact_name.clone(),
        artefact_description: up.artefact_description.clone(),
        artefact_version_info: up.artefact_version_info.clone(),
        artefact_virt_type: up.artefact_virt_type,
        artefact_file_name: up.artefact_file_name.clone(),
        artefact_file_format: up.artefact_file_format,
        artefact_descriptor_type: up.artefact_descriptor_type,
        repo_type: up.repo_type,
        artefact_repo_location: up.artefact_repo_location.as_ref().map(wire::ObjectRepoLocation::redacted),
        component_spec: None,
    };
    let mut obj: Object<EwbiArtefactSpec> = Object::new(
        Kind::EwbiArtefact,
        None,
        name,
        EwbiArtefactSpec {
            federation: fed.metadata.name.clone(),
            artefact_id: up.artefact_id.clone(),
            app_provider_id: up.app_provider_id.clone(),
            view: fed.spec.dialect.to_value(&view).map_err(|e| ApiError::Internal(e.to_string()))?,
            component_spec: serde_json::to_value(&up.component_spec).map_err(|e| ApiError::Internal(e.to_string()))?,
        },
    );
    obj.status.state = ObjState::Ready;
    s.repo.create(&mut obj).await?;
    Ok(StatusCode::OK)
}

/// `GET /{ctx}/artefact/{artefactId}` (GetArtefact).
pub async fn get_artefact(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, id)): Path<(String, String)>) -> EwbiResult<Json<Value>> {
    let fed = caller.federation(&s, &ctx).await?;
    let a: Object<EwbiArtefactSpec> = record_of(&s, Kind::EwbiArtefact, &fed.metadata.name, &id).await?;
    Ok(Json(a.spec.view))
}

/// `DELETE /{ctx}/artefact/{artefactId}` (RemoveArtefact): refused while an onboarded app
/// uses it.
pub async fn remove_artefact(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, id)): Path<(String, String)>) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    let a: Object<EwbiArtefactSpec> = record_of(&s, Kind::EwbiArtefact, &fed.metadata.name, &id).await?;
    let (apps, _) = s.repo.list::<EwbiAppSpec, ()>(Kind::EwbiApp).await?;
    let used = apps.iter().any(|app| {
        app.spec.federation == fed.metadata.name && app.spec.view.get("appComponentSpecs").and_then(Value::as_array).is_some_and(|cs| cs.iter().any(|c| c.get("artefactId").and_then(Value::as_str) == Some(id.as_str())))
    });
    if used {
        return Err(EwbiError(ApiError::Aborted(format!("artefact {id} is used by an onboarded app; delete the app first"))));
    }
    s.repo.delete(&a).await?;
    Ok(StatusCode::OK)
}

/// The local organization of a partner's app provider under a federation: created on first
/// use, named by a digest so no partner id shows in our names.
async fn provider_org(s: &AppState, fed: &Name, provider: &str) -> EwbiResult<Name> {
    use op_types::specs::OrganizationSpec;
    let name = record_name(fed, &format!("provider/{provider}"))?;
    let org = Name::new(format!("fed-{}", &name.as_str()[1..21])).map_err(|e| ApiError::Internal(e.to_string()))?;
    super::ensure_global(s, Kind::Organization, &org, OrganizationSpec { parent: None, description: Some(format!("app provider of federation {fed}")) }).await?;
    Ok(org)
}

/// The offered zone ids an onboarding names (every subscribed zone when it names none); each
/// must be offered to the partner and subscribed.
fn onboard_zones(fed: &Object<FederationSpec>, partner: &Object<FederationPartnerSpec>, zones: Option<&[wire::DeploymentZone]>) -> EwbiResult<Vec<String>> {
    let ids: Vec<String> = match zones {
        Some(z) if !z.is_empty() => z.iter().map(|z| z.zone_id().to_string()).collect(),
        _ => fed.spec.subscriptions.keys().cloned().collect(),
    };
    if ids.is_empty() {
        return Err(EwbiError(ApiError::invalid("appDeploymentZones", "subscribe to a zone first, or name one")));
    }
    for (i, id) in ids.iter().enumerate() {
        offered(partner, id)?;
        if !fed.spec.subscriptions.contains_key(id) {
            return Err(EwbiError(ApiError::invalid(format!("appDeploymentZones[{i}]"), format!("zone {id} is not subscribed; subscribe to it first"))));
        }
    }
    Ok(ids)
}

/// The local app manifest of a partner's single-component app.
fn manifest(org: &Name, meta: &wire::AppMetaData, qos: &wire::AppQoSProfile, c: &wire::ComponentSpec, image: &str) -> EwbiResult<op_types::specs::AppSpec> {
    let interfaces: Vec<Value> = c
        .exposed_interfaces
        .iter()
        .flatten()
        .map(|i| {
            json!({
                "interfaceId": i.interface_id,
                "protocol": if i.comm_protocol == wire::CommProtocol::Udp { "UDP" } else { "TCP" },
                "port": i.comm_port,
                "visibilityType": if i.visibility_type == wire::VisibilityType::VisibilityExternal { "VISIBILITY_EXTERNAL" } else { "VISIBILITY_INTERNAL" },
            })
        })
        .collect();
    let env: serde_json::Map<String, Value> = c
        .comp_env_params
        .iter()
        .flatten()
        .filter(|p| p.env_value_type == wire::EnvValueType::UserDefined)
        .map(|p| (p.env_var_name.clone(), Value::String(p.env_var_value.clone().unwrap_or_default())))
        .collect();
    let latency = match qos.latency_constraints {
        wire::LatencyConstraints::Ultralow => Some(30.0),
        wire::LatencyConstraints::Low => Some(50.0),
        wire::LatencyConstraints::None => None,
    };
    let millicpus = c.compute_resource_profile.num_cpu.millis().max(1);
    let mut requirements = json!({});
    if let Some(l) = latency {
        requirements["maxLatencyMs"] = json!(l);
    }
    if meta.mobility_support == Some(true) {
        requirements["mobilityPolicy"] = json!("moveWithPriorNotice");
    }
    let m = json!({
        "version": meta.version,
        "appProvider": org,
        "packageType": "CONTAINER",
        "appRepo": {"type": "PRIVATEREPO", "imagePath": image},
        "requiredResources": {"infraKind": "container", "numCPU": format!("{millicpus}m"), "memory": c.compute_resource_profile.memory.max(1)},
        "componentSpec": [{"componentName": c.component_name, "networkInterfaces": interfaces}],
        "env": env,
        "requirements": requirements,
    });
    let spec: op_types::specs::AppSpec = serde_json::from_value(m).map_err(|e| EwbiError(ApiError::invalid("appComponentSpecs", format!("the component cannot run here: {e}"))))?;
    op_types::Validate::validate(&spec).map_err(|e| EwbiError(ApiError::Invalid(e.under("appComponentSpecs[0]"))))?;
    Ok(spec)
}

/// `POST /{ctx}/application/onboarding` (OnboardApplication): the partner's app becomes a local
/// app of its provider's organization; onboarding status goes to `appStatusCallbackLink`.
pub async fn onboard_app(State(s): State<AppState>, caller: PartnerCaller, Path(ctx): Path<String>, raw: Bytes) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    let req: wire::OnboardApplicationRequest = body(&raw)?;
    check_app_id(&req.app_id, "appId")?;
    check_app_id(&req.app_provider_id, "appProviderId")?;
    req.app_meta_data.validate(fed.spec.dialect)?;
    if !req.app_status_callback_link.starts_with("https://") {
        return Err(EwbiError(ApiError::invalid("appStatusCallbackLink", "must be an https:// URL")));
    }
    let zones = onboard_zones(&fed, &caller.partner, req.app_deployment_zones.as_deref())?;
    if req.app_component_specs.len() != 1 {
        return Err(EwbiError(ApiError::Unprocessable("UNSUPPORTED", "appComponentSpecs: this platform runs apps of exactly one component".into())));
    }
    let art: Object<EwbiArtefactSpec> = record_of(&s, Kind::EwbiArtefact, &fed.metadata.name, &req.app_component_specs[0].artefact_id)
        .await
        .map_err(|_| EwbiError(ApiError::invalid("appComponentSpecs[0].artefactId", "no such artefact; upload it first")))?;
    let comps: Vec<wire::ComponentSpec> = serde_json::from_value(art.spec.component_spec.clone()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let [comp] = comps.as_slice() else {
        return Err(EwbiError(ApiError::Unprocessable("UNSUPPORTED", "componentSpec: the artefact must hold exactly one component".into())));
    };
    let file: Object<EwbiFileSpec> = record_of(&s, Kind::EwbiFile, &fed.metadata.name, &comp.images[0]).await?;
    let image = file.spec.image.clone().ok_or_else(|| EwbiError(ApiError::Unavailable("the image is still being loaded".into())))?;
    let record = record_name(&fed.metadata.name, &format!("app/{}", req.app_id))?;
    if s.repo.get_by_name::<EwbiAppSpec, ()>(Kind::EwbiApp, None, &record).await?.is_some() {
        return Err(EwbiError(ApiError::AlreadyExists(format!("app {} is already onboarded", req.app_id))));
    }
    let org = provider_org(&s, &fed.metadata.name, &req.app_provider_id).await?;
    let spec = manifest(&org, &req.app_meta_data, &req.app_qos_profile, comp, &image)?;
    let app_name = Name::new(format!("a{}", &record.as_str()[1..])).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut app: op_types::specs::App = Object::new(Kind::App, Some(org), app_name, spec);
    app.status.state = ObjState::Ready;
    s.repo.create(&mut app).await?;
    let view = wire::ApplicationDetails {
        app_id: req.app_id.clone(),
        app_provider_id: req.app_provider_id.clone(),
        app_deployment_zones: zones.iter().map(|z| wire::DeploymentZone::Id(z.clone()).for_dialect(fed.spec.dialect, &s.ewbi.country_code)).collect(),
        app_meta_data: req.app_meta_data.clone(),
        app_qos_profile: req.app_qos_profile.clone(),
        app_component_specs: req.app_component_specs.clone(),
    };
    let mut rec: Object<EwbiAppSpec> = Object::new(
        Kind::EwbiApp,
        None,
        record,
        EwbiAppSpec {
            federation: fed.metadata.name.clone(),
            app_id: req.app_id.clone(),
            app_provider_id: req.app_provider_id.clone(),
            local_app: app.metadata.uid,
            zones: zones.clone(),
            forbidden: vec![],
            status_link: req.app_status_callback_link.clone(),
            view: fed.spec.dialect.to_value(&view).map_err(|e| ApiError::Internal(e.to_string()))?,
        },
    );
    rec.status.state = ObjState::Ready;
    s.repo.create(&mut rec).await?;
    onboard_status(&s, &fed, &rec.spec, &zones, wire::OnboardStatus::Onboarded).await?;
    tracing::info!(partner = %caller.partner.metadata.name, app = %req.app_id, "EWBI app onboarded");
    Ok(StatusCode::ACCEPTED)
}

/// Queues an `onApplicationOnboardStatusEvent` for `zones`.
async fn onboard_status(s: &AppState, fed: &Object<FederationSpec>, app: &EwbiAppSpec, zones: &[String], status: wire::OnboardStatus) -> EwbiResult<()> {
    // `statusInfo` needs at least one zone: nothing changed (zones added again, or an app
    // deleted after being deboarded everywhere) means nothing to tell.
    if zones.is_empty() {
        return Ok(());
    }
    let ctx = fed.metadata.name.as_str().trim_start_matches("f-").to_string();
    let ev = wire::AppOnboardStatusEvent {
        federation_context_id: Some(ctx),
        app_id: app.app_id.clone(),
        status_info: zones.iter().map(|z| wire::AppOnboardStatusInfo { zone_id: z.clone(), onboard_status_info: status }).collect(),
    };
    let body = fed.spec.dialect.to_value(&ev).map_err(|e| ApiError::Internal(e.to_string()))?;
    super::notify::enqueue(s, &fed.metadata.name, "onApplicationOnboardStatusEvent", &app.status_link, body, Utc::now()).await?;
    Ok(())
}

async fn ewbi_app(s: &AppState, fed: &Object<FederationSpec>, app_id: &str) -> EwbiResult<Object<EwbiAppSpec>> {
    let name = record_name(&fed.metadata.name, &format!("app/{app_id}"))?;
    s.repo.get_by_name::<EwbiAppSpec, ()>(Kind::EwbiApp, None, &name).await?.ok_or_else(|| not_found(&format!("app {app_id}")))
}

/// `GET .../onboarding/app/{appId}` (ViewApplication).
pub async fn view_app(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, app)): Path<(String, String)>) -> EwbiResult<Json<Value>> {
    let fed = caller.federation(&s, &ctx).await?;
    let a = ewbi_app(&s, &fed, &app).await?;
    let mut view = a.spec.view.clone();
    view["appDeploymentZones"] = json!(a
        .spec
        .zones
        .iter()
        .map(|z| wire::DeploymentZone::Id(z.clone()).for_dialect(fed.spec.dialect, &s.ewbi.country_code))
        .collect::<Vec<_>>());
    Ok(Json(view))
}

/// `PATCH .../onboarding/app/{appId}` (UpdateApplication): QoS (latency bound, mobility).
pub async fn update_app(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, app)): Path<(String, String)>, raw: Bytes) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    let mut a = ewbi_app(&s, &fed, &app).await?;
    let req: wire::UpdateApplicationRequest = body(&raw)?;
    req.validate()?;
    if req.app_component_specs.is_some() {
        return Err(EwbiError(ApiError::Unprocessable("UNSUPPORTED", "appComponentSpecs: onboard a new app to change its components".into())));
    }
    let Some(q) = req.app_upd_qos_profile else { return Ok(StatusCode::ACCEPTED) };
    let mut local = s.repo.get::<op_types::specs::AppSpec, ()>(Kind::App, a.spec.local_app).await?.ok_or_else(|| not_found(&format!("app {app}")))?;
    if let Some(l) = q.latency_constraints {
        local.spec.requirements.max_latency_ms = match l {
            wire::LatencyConstraints::Ultralow => Some(30.0),
            wire::LatencyConstraints::Low => Some(50.0),
            wire::LatencyConstraints::None => None,
        };
        a.spec.view["appQoSProfile"]["latencyConstraints"] = serde_json::to_value(l).unwrap_or(Value::Null);
    }
    if let Some(m) = q.mobility_support {
        local.spec.requirements.mobility_policy = if m { op_types::specs::MobilityPolicy::MoveWithPriorNotice } else { op_types::specs::MobilityPolicy::default() };
        a.spec.view["appMetaData"]["mobilitySupport"] = json!(m);
    }
    s.repo.update(&mut local).await?;
    s.repo.update(&mut a).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Instances of federated app `app` (all zones, or one).
async fn instances_of(s: &AppState, fed: &Name, app: &str, zone: Option<&str>) -> Result<Vec<Object<EwbiInstanceSpec, EwbiInstanceObserved>>, ApiError> {
    let (all, _) = s.repo.list::<EwbiInstanceSpec, EwbiInstanceObserved>(Kind::EwbiInstance).await?;
    Ok(all.into_iter().filter(|i| &i.spec.federation == fed && i.spec.app_id == app && zone.is_none_or(|z| i.spec.zone_id == z)).collect())
}

/// `DELETE .../onboarding/app/{appId}/zone/{zoneId}` (DeboardApplication): refused while
/// instances of the app run there.
pub async fn deboard_app(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, app, zone)): Path<(String, String, String)>) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    let mut a = ewbi_app(&s, &fed, &app).await?;
    if !a.spec.zones.contains(&zone) {
        return Err(not_found(&format!("onboarding of app {app} on zone {zone}")));
    }
    if !instances_of(&s, &fed.metadata.name, &app, Some(&zone)).await?.is_empty() {
        return Err(EwbiError(ApiError::Aborted(format!("instances of app {app} run in zone {zone}; remove them first"))));
    }
    a.spec.zones.retain(|z| z != &zone);
    s.repo.update(&mut a).await?;
    onboard_status(&s, &fed, &a.spec, &[zone], wire::OnboardStatus::Removed).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `DELETE .../onboarding/app/{appId}` (DeleteApp, later revision): deboards from every zone
/// and deletes the app; refused while instances run.
pub async fn delete_app(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, app)): Path<(String, String)>) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    let a = ewbi_app(&s, &fed, &app).await?;
    if !instances_of(&s, &fed.metadata.name, &app, None).await?.is_empty() {
        return Err(EwbiError(ApiError::Aborted(format!("instances of app {app} still run; remove them first"))));
    }
    onboard_status(&s, &fed, &a.spec, &a.spec.zones, wire::OnboardStatus::Removed).await?;
    remove_app(&s, &a).await?;
    Ok(StatusCode::OK)
}

async fn remove_app(s: &AppState, a: &Object<EwbiAppSpec>) -> Result<(), ApiError> {
    if let Some(local) = s.repo.get::<op_types::specs::AppSpec, ()>(Kind::App, a.spec.local_app).await? {
        s.repo.delete(&local).await?;
    }
    s.repo.delete(a).await?;
    Ok(())
}

/// `POST .../onboarding/app/{appId}/additionalZones` (OnboardExistingAppNewZones).
pub async fn additional_zones(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, app)): Path<(String, String)>, raw: Bytes) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    let mut a = ewbi_app(&s, &fed, &app).await?;
    let zones: Vec<String> = body(&raw)?;
    if zones.is_empty() {
        return Err(EwbiError(ApiError::invalid("body", "name at least one zone")));
    }
    let ids: Vec<wire::DeploymentZone> = zones.iter().map(|z| wire::DeploymentZone::Id(z.clone())).collect();
    let ids = onboard_zones(&fed, &caller.partner, Some(&ids))?;
    let new: Vec<String> = ids.into_iter().filter(|z| !a.spec.zones.contains(z)).collect();
    a.spec.zones.extend(new.iter().cloned());
    s.repo.update(&mut a).await?;
    onboard_status(&s, &fed, &a.spec, &new, wire::OnboardStatus::Onboarded).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST .../onboarding/app/{appId}/zoneForbid` (LockUnlockApplicationZone): a forbidden zone
/// takes no new instance of the app.
pub async fn zone_forbid(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, app)): Path<(String, String)>, raw: Bytes) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    let mut a = ewbi_app(&s, &fed, &app).await?;
    let items: Vec<wire::ZoneForbid> = body(&raw)?;
    if items.is_empty() {
        return Err(EwbiError(ApiError::invalid("body", "name at least one zone")));
    }
    for (i, z) in items.iter().enumerate() {
        if !a.spec.zones.contains(&z.zone_id) {
            return Err(EwbiError(ApiError::invalid(format!("[{i}].zoneId"), format!("app {app} is not onboarded on zone {}", z.zone_id))));
        }
    }
    for z in items {
        a.spec.forbidden.retain(|f| f != &z.zone_id);
        if z.forbid {
            a.spec.forbidden.push(z.zone_id);
        }
    }
    s.repo.update(&mut a).await?;
    Ok(StatusCode::OK)
}

/// `POST /{ctx}/application/lcm` (InstallApp): our own admission and placement choose the edge
/// in the zone. The instance id is the partner's (`appInstanceId`, later revision) when given,
/// so a retried request installs once; otherwise ours.
pub async fn install_app(State(s): State<AppState>, caller: PartnerCaller, Path(ctx): Path<String>, raw: Bytes) -> EwbiResult<(StatusCode, Json<Value>)> {
    let fed = caller.federation(&s, &ctx).await?;
    let req: wire::InstallAppRequest = body(&raw)?;
    req.validate()?;
    if !req.app_inst_callback_link.starts_with("https://") {
        return Err(EwbiError(ApiError::invalid("appInstCallbackLink", "must be an https:// URL")));
    }
    let a = ewbi_app(&s, &fed, &req.app_id).await?;
    if a.spec.app_provider_id != req.app_provider_id {
        return Err(not_found(&format!("app {} of provider {}", req.app_id, req.app_provider_id)));
    }
    let zone_id = &req.zone_info.zone_id;
    if !a.spec.zones.contains(zone_id) {
        return Err(EwbiError(ApiError::Unprocessable("NOT_ONBOARDED", format!("zoneInfo.zoneId: app {} is not onboarded on zone {zone_id}", req.app_id))));
    }
    if a.spec.forbidden.contains(zone_id) {
        return Err(EwbiError(ApiError::Unprocessable("ZONE_FORBIDDEN", format!("zoneInfo.zoneId: zone {zone_id} is forbidden for app {}", req.app_id))));
    }
    if req.zone_info.resource_consumption == Some(wire::ResourceConsumption::ReservedResShall) {
        return Err(EwbiError(ApiError::Unprocessable("NO_POOL", "zoneInfo.resourceConsumption: no resource pool can serve this instance; reserve one first".into())));
    }
    let oz = offered(&caller.partner, zone_id)?;
    let zone = local_zone(&s, oz).await?;
    let app = s.repo.get::<op_types::specs::AppSpec, ()>(Kind::App, a.spec.local_app).await?.ok_or_else(|| not_found(&format!("app {}", req.app_id)))?;
    let flavor = Name::new(req.zone_info.flavour_id.clone()).map_err(|_| EwbiError(ApiError::invalid("zoneInfo.flavourId", "no such flavour in this zone")))?;
    let zr = zone_registered(&s, oz).await?;
    if !zr.flavours_supported.iter().any(|f| f.flavour_id == flavor.as_str()) {
        return Err(EwbiError(ApiError::invalid("zoneInfo.flavourId", format!("flavour {flavor} is not supported in zone {zone_id}"))));
    }
    let instance_id = match &req.app_instance_id {
        Some(id) => {
            wire::check_identifier(id, "appInstanceId")?;
            id.clone()
        }
        None => op_types::ewbi::objects::federated_id(&s.ewbi.secret, 'i', "ewbi-instance/", op_types::Uid::random()),
    };
    let record = record_name(&fed.metadata.name, &format!("instance/{instance_id}"))?;
    if let Some(existing) = s.repo.get_by_name::<EwbiInstanceSpec, EwbiInstanceObserved>(Kind::EwbiInstance, None, &record).await? {
        if existing.spec.app_id == req.app_id && &existing.spec.zone_id == zone_id {
            return Ok((StatusCode::ACCEPTED, Json(json!({"zoneId": zone_id, "appInstIdentifier": instance_id}))));
        }
        return Err(EwbiError(ApiError::AlreadyExists(format!("appInstanceId {instance_id} is in use"))));
    }
    // The app's flavor for this instance: the one the partner asked for.
    let mut app = app;
    app.spec.flavor = Some(flavor.clone());
    let local_name = Name::new(format!("i{}", &record.as_str()[1..])).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut fi: Object<EwbiInstanceSpec, EwbiInstanceObserved> = Object::new(
        Kind::EwbiInstance,
        None,
        record,
        EwbiInstanceSpec {
            federation: fed.metadata.name.clone(),
            app_id: req.app_id.clone(),
            app_provider_id: req.app_provider_id.clone(),
            instance_id: instance_id.clone(),
            zone_id: zone_id.clone(),
            flavour_id: flavor.to_string(),
            local_instance: op_types::Uid::nil(),
            callback_link: req.app_inst_callback_link.clone(),
        },
    );
    let labels = [(super::notify::LABEL_EWBI_INSTANCE.to_string(), fi.metadata.uid.to_string())].into_iter().collect();
    let inst = crate::camara::create_instance_labelled(&s, &app, &zone, local_name, &format!("partner {}", caller.partner.metadata.name), labels)
        .await
        .map_err(|e| match e {
            // Admission errors name our edges to our operator; the partner gets the zone's answer.
            ApiError::Invalid(_) | ApiError::Aborted(_) | ApiError::Forbidden(_) => EwbiError(ApiError::Unprocessable("NO_CAPACITY", format!("zone {zone_id} cannot take this instance now"))),
            other => EwbiError(other),
        })?;
    fi.spec.local_instance = inst.metadata.uid;
    fi.status.state = ObjState::Ready;
    s.repo.create(&mut fi).await?;
    tracing::info!(partner = %caller.partner.metadata.name, instance = %instance_id, "EWBI instance installed");
    Ok((StatusCode::ACCEPTED, Json(json!({"zoneId": zone_id, "appInstIdentifier": instance_id}))))
}

async fn ewbi_instance(s: &AppState, fed: &Object<FederationSpec>, app: &str, inst: &str, zone: &str) -> EwbiResult<Object<EwbiInstanceSpec, EwbiInstanceObserved>> {
    let name = record_name(&fed.metadata.name, &format!("instance/{inst}"))?;
    s.repo
        .get_by_name::<EwbiInstanceSpec, EwbiInstanceObserved>(Kind::EwbiInstance, None, &name)
        .await?
        .filter(|i| i.spec.app_id == app && i.spec.zone_id == zone)
        .ok_or_else(|| not_found(&format!("instance {inst} of app {app} in zone {zone}")))
}

/// The access points of a Ready instance: the ingress relays, never a cloudlet address.
fn access_points(s: &AppState, fi: &EwbiInstanceObserved) -> Vec<wire::AccessPointInfo> {
    fi.ingress_ports
        .iter()
        .map(|(iface, port)| {
            let host = &s.ewbi.ingress_host;
            let ep = if host.parse::<std::net::Ipv4Addr>().is_ok() {
                ServiceEndpoint { port: *port, fqdn: None, ipv4_addresses: Some(vec![host.clone()]), ipv6_addresses: None }
            } else {
                ServiceEndpoint::fqdn(host.clone(), *port)
            };
            wire::AccessPointInfo { interface_id: iface.clone(), access_points: ep }
        })
        .collect()
}

/// `GET .../lcm/app/{appId}/instance/{appInstanceId}/zone/{zoneId}` (GetAppInstanceDetails).
pub async fn instance_details(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, app, inst, zone)): Path<(String, String, String, String)>) -> EwbiResult<Json<Value>> {
    let fed = caller.federation(&s, &ctx).await?;
    let fi = ewbi_instance(&s, &fed, &app, &inst, &zone).await?;
    let local = s.repo.get::<op_types::specs::AppInstanceSpec, Value>(Kind::AppInstance, fi.spec.local_instance).await?;
    let state = super::notify::gsma_state(local.as_ref());
    let points = if state == op_types::ewbi::usage::InstanceState::Ready { access_points(&s, &fi.observed) } else { vec![] };
    let mut v = json!({"appInstanceState": super::notify::state_name(state)});
    if !points.is_empty() {
        let p = serde_json::to_value(&points).map_err(|e| ApiError::Internal(e.to_string()))?;
        v["accesspointInfo"] = p.clone();
        v["accessPointInfo"] = p;
    }
    Ok(Json(v))
}

/// `GET .../lcm/app/{appId}/instance/{appInstanceId}/zone/{zoneId}/x-op/insights` (our
/// extension): the instance's traffic through our ingress and the relocations we made, for the
/// originating platform to pass on to its developer. Zone-level only: no address, no cloudlet.
pub async fn instance_insights(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, app, inst, zone)): Path<(String, String, String, String)>) -> EwbiResult<Json<op_types::ewbi::objects::InstanceInsights>> {
    let fed = caller.federation(&s, &ctx).await?;
    let fi = ewbi_instance(&s, &fed, &app, &inst, &zone).await?;
    Ok(Json(op_types::ewbi::objects::InstanceInsights { statistics: s.ewbi.ingress.statistics(fi.spec.local_instance), relocations: fi.observed.relocations.clone() }))
}

/// `DELETE .../lcm/app/{appId}/instance/{appInstanceId}/zone/{zoneId}` (RemoveApp): the
/// instance terminates; its status callbacks say when it is gone.
pub async fn remove_instance(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, app, inst, zone)): Path<(String, String, String, String)>) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    let fi = ewbi_instance(&s, &fed, &app, &inst, &zone).await?;
    remove_local_instance(&s, fi.spec.local_instance).await?;
    Ok(StatusCode::OK)
}

async fn remove_local_instance(s: &AppState, uid: op_types::Uid) -> Result<(), ApiError> {
    if let Some(mut local) = s.repo.get::<op_types::specs::AppInstanceSpec, Value>(Kind::AppInstance, uid).await? {
        if local.metadata.deletion_requested.is_none() {
            local.metadata.deletion_requested = Some(Utc::now());
            s.repo.update(&mut local).await?;
        }
    }
    Ok(())
}

/// `GET .../lcm/app/{appId}/appProvider/{appProviderId}` (GetAllAppInstances).
pub async fn all_instances(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, app, provider)): Path<(String, String, String)>) -> EwbiResult<Json<Value>> {
    let fed = caller.federation(&s, &ctx).await?;
    let a = ewbi_app(&s, &fed, &app).await?;
    if a.spec.app_provider_id != provider {
        return Err(not_found(&format!("app {app} of provider {provider}")));
    }
    let mut by_zone: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for fi in instances_of(&s, &fed.metadata.name, &app, None).await? {
        let local = s.repo.get::<op_types::specs::AppInstanceSpec, Value>(Kind::AppInstance, fi.spec.local_instance).await?;
        let state = super::notify::gsma_state(local.as_ref());
        by_zone.entry(fi.spec.zone_id.clone()).or_default().push(json!({"appInstIdentifier": fi.spec.instance_id, "appInstanceState": super::notify::state_name(state)}));
    }
    if by_zone.is_empty() {
        return Err(not_found(&format!("instances of app {app}")));
    }
    Ok(Json(Value::Array(by_zone.into_iter().map(|(z, i)| json!({"zoneId": z, "appInstanceInfo": i})).collect())))
}

/// A pool as stored.
type Pool = Object<op_types::ewbi::objects::EwbiPoolSpec>;

async fn pools_of(s: &AppState, fed: &Name, zone: &str, provider: &str) -> Result<Vec<Pool>, ApiError> {
    let (all, _) = s.repo.list::<op_types::ewbi::objects::EwbiPoolSpec, ()>(Kind::EwbiPool).await?;
    Ok(all.into_iter().filter(|p| &p.spec.federation == fed && p.spec.zone_id == zone && p.spec.app_provider_id == provider).collect())
}

fn duration_secs(d: &wire::ResourceReservationDuration) -> u64 {
    let days = u64::from(d.num_of_days.unwrap_or(0)) + 30 * u64::from(d.num_of_months.unwrap_or(0)) + 365 * u64::from(d.num_of_years.unwrap_or(0));
    days * 86_400
}

/// What can be granted of `wanted` flavours in zone `z` within the partner's quota there, given
/// what its other pools hold: each flavour's count, cut to what fits, and 422 below
/// `minNumOfFlavours`.
async fn grant(s: &AppState, z: &OfferedZone, others: &[Pool], wanted: &[wire::PoolFlavourRequest]) -> EwbiResult<std::collections::BTreeMap<String, u32>> {
    let zr = zone_registered(s, z).await?;
    let quota: u64 = zr.compute_resource_quota_limits.first().map_or(0, |c| c.num_cpu.millis());
    let size = |id: &str| zr.flavours_supported.iter().find(|f| f.flavour_id == id).map(|f| f.num_cpu.millis());
    let mut used: u64 = others.iter().flat_map(|p| p.spec.flavours.iter()).map(|(f, n)| size(f).unwrap_or(0) * u64::from(*n)).sum();
    let mut out = std::collections::BTreeMap::new();
    for (i, w) in wanted.iter().enumerate() {
        let each = size(&w.flavour_id).ok_or_else(|| EwbiError(ApiError::invalid(format!("resRequest.flavours[{i}].flavourId"), format!("flavour {} is not supported in zone {}", w.flavour_id, z.remote_id()))))?;
        let fits = quota.saturating_sub(used).checked_div(each).map_or(w.num_flavour, |n| u32::try_from(n).unwrap_or(u32::MAX).min(w.num_flavour));
        if fits < w.min_num_of_flavours.unwrap_or(w.num_flavour).min(w.num_flavour) {
            return Err(EwbiError(ApiError::Unprocessable("NO_CAPACITY", format!("resRequest.flavours[{i}]: only {fits} of flavour {} fit in the quota of zone {}", w.flavour_id, z.remote_id()))));
        }
        used += each * u64::from(fits);
        out.insert(w.flavour_id.clone(), fits);
    }
    Ok(out)
}

async fn pool_status(s: &AppState, fed: &Object<FederationSpec>, p: &Pool) -> EwbiResult<()> {
    let ev = wire::ResourceStatusChangeEvent {
        federation_context_id: Some(fed.metadata.name.as_str().trim_start_matches("f-").to_string()),
        app_provider_id: p.spec.app_provider_id.clone(),
        zone_id: p.spec.zone_id.clone(),
        pool_id: p.spec.pool_id.clone(),
        granted_flavours: p.spec.flavours.iter().map(|(f, n)| wire::GrantedFlavour { flavour_id: f.clone(), num_flavour: *n }).collect(),
    };
    let body = fed.spec.dialect.to_value(&ev).map_err(|e| ApiError::Internal(e.to_string()))?;
    super::notify::enqueue(s, &fed.metadata.name, "onResourceStatusChangeEvent", &p.spec.callback_link, body, Utc::now()).await?;
    Ok(())
}

/// `POST .../isv/resource/zone/{zoneId}/appProvider/{appProviderId}` (CreateResourcePools): a
/// share of the partner's quota in the zone reserved for one of its app providers.
pub async fn create_pool(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, zone, provider)): Path<(String, String, String)>, raw: Bytes) -> EwbiResult<(StatusCode, Json<Value>)> {
    let fed = caller.federation(&s, &ctx).await?;
    let z = offered(&caller.partner, &zone)?;
    check_app_id(&provider, "appProviderId")?;
    let req: wire::CreateResourcePoolsRequest = body(&raw)?;
    req.res_request.reserve_duration.validate("resRequest.reserveDuration")?;
    if req.res_request.flavours.is_empty() {
        return Err(EwbiError(ApiError::invalid("resRequest.flavours", "name at least one flavour")));
    }
    if !req.resource_reservation_callback_link.starts_with("https://") {
        return Err(EwbiError(ApiError::invalid("resourceReservationCallbackLink", "must be an https:// URL")));
    }
    let others = pools_of(&s, &fed.metadata.name, &zone, &provider).await?;
    let pool_id = req.res_request.pool_id.clone().unwrap_or_else(|| op_types::ewbi::objects::federated_id(&s.ewbi.secret, 'r', "ewbi-pool/", op_types::Uid::random()));
    if others.iter().any(|p| p.spec.pool_id == pool_id || p.spec.pool_name == req.res_request.pool_name) {
        return Err(EwbiError(ApiError::AlreadyExists("a pool with this id or name exists".into())));
    }
    let flavours = grant(&s, z, &others, &req.res_request.flavours).await?;
    let mut p: Pool = Object::new(
        Kind::EwbiPool,
        None,
        record_name(&fed.metadata.name, &format!("pool/{pool_id}"))?,
        op_types::ewbi::objects::EwbiPoolSpec {
            federation: fed.metadata.name.clone(),
            app_provider_id: provider,
            zone_id: zone,
            pool_name: req.res_request.pool_name.clone(),
            pool_id: pool_id.clone(),
            flavours,
            reserve_duration_secs: duration_secs(&req.res_request.reserve_duration),
            reserved_at: Utc::now(),
            callback_link: req.resource_reservation_callback_link.clone(),
        },
    );
    p.status.state = ObjState::Ready;
    s.repo.create(&mut p).await?;
    pool_status(&s, &fed, &p).await?;
    Ok((StatusCode::OK, Json(json!({"poolName": p.spec.pool_name, "poolId": pool_id}))))
}

fn pool_view(p: &Pool) -> wire::ReservedPool {
    let days = u32::try_from(p.spec.reserve_duration_secs / 86_400).unwrap_or(u32::MAX);
    wire::ReservedPool {
        pool_name: p.spec.pool_name.clone(),
        reserved_pool_id: p.spec.pool_id.clone(),
        reserved_flavours: p.spec.flavours.iter().map(|(f, n)| wire::ReservedFlavour { flavour_id: f.clone(), count: *n }).collect(),
        reserve_duration: Some(wire::ResourceReservationDuration { num_of_days: Some(days), num_of_months: None, num_of_years: None }),
        reservation_time: Some(p.spec.reserved_at),
    }
}

/// `GET .../isv/resource/zone/{zoneId}/appProvider/{appProviderId}` (ViewISVResPool).
pub async fn view_pools(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, zone, provider)): Path<(String, String, String)>) -> EwbiResult<Json<Vec<wire::ReservedPool>>> {
    let fed = caller.federation(&s, &ctx).await?;
    offered(&caller.partner, &zone)?;
    let pools = pools_of(&s, &fed.metadata.name, &zone, &provider).await?;
    if pools.is_empty() {
        return Err(not_found(&format!("pool of provider {provider} in zone {zone}")));
    }
    Ok(Json(pools.iter().map(pool_view).collect()))
}

async fn the_pool(s: &AppState, fed: &Object<FederationSpec>, zone: &str, provider: &str, pool: &str) -> EwbiResult<Pool> {
    pools_of(s, &fed.metadata.name, zone, provider).await?.into_iter().find(|p| p.spec.pool_id == pool).ok_or_else(|| not_found(&format!("pool {pool}")))
}

/// `PATCH .../pool/{poolId}` (UpdateISVResPool): add or remove flavours, change the duration.
pub async fn update_pool(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, zone, provider, pool)): Path<(String, String, String, String)>, raw: Bytes) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    let z = offered(&caller.partner, &zone)?;
    let mut p = the_pool(&s, &fed, &zone, &provider, &pool).await?;
    let updates: Vec<wire::PoolUpdate> = body(&raw)?;
    let others: Vec<Pool> = pools_of(&s, &fed.metadata.name, &zone, &provider).await?.into_iter().filter(|o| o.spec.pool_id != pool).collect();
    for (i, u) in updates.iter().enumerate() {
        match u.update_type {
            wire::PoolUpdateType::Add => {
                let mut all = others.clone();
                all.push(p.clone());
                let got = grant(&s, z, &all, &[wire::PoolFlavourRequest { flavour_id: u.flavour_id.clone(), num_flavour: u.count, min_num_of_flavours: None }]).await?;
                *p.spec.flavours.entry(u.flavour_id.clone()).or_insert(0) += got.values().sum::<u32>();
            }
            wire::PoolUpdateType::Remove => {
                let have = p.spec.flavours.get(&u.flavour_id).copied().ok_or_else(|| EwbiError(ApiError::invalid(format!("[{i}].flavourId"), "not in the pool")))?;
                if have <= u.count {
                    p.spec.flavours.remove(&u.flavour_id);
                } else {
                    p.spec.flavours.insert(u.flavour_id.clone(), have - u.count);
                }
            }
            wire::PoolUpdateType::Duration => {
                let d = u.reserve_duration.as_ref().ok_or_else(|| EwbiError(ApiError::invalid(format!("[{i}].reserveDuration"), "is required for DURATION")))?;
                p.spec.reserve_duration_secs = duration_secs(d);
            }
        }
    }
    s.repo.update(&mut p).await?;
    pool_status(&s, &fed, &p).await?;
    Ok(StatusCode::OK)
}

/// `DELETE .../pool/{poolId}` (RemoveISVResPool).
pub async fn remove_pool(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, zone, provider, pool)): Path<(String, String, String, String)>) -> EwbiResult<StatusCode> {
    let fed = caller.federation(&s, &ctx).await?;
    let p = the_pool(&s, &fed, &zone, &provider, &pool).await?;
    s.repo.delete(&p).await?;
    Ok(StatusCode::OK)
}

/// Records an additional-service call for settlement and returns the time both sides use (sent
/// back in the `Date` header).
async fn service_call(s: &AppState, caller: &PartnerCaller, ctx: &str, provider: &str, app: &str, zone: &str, service: &str) -> EwbiResult<chrono::DateTime<Utc>> {
    use chrono::SubsecRound;
    let at = Utc::now().trunc_subsecs(0);
    let ev = op_types::ewbi::usage::UsageEvent::ServiceCalls(op_types::ewbi::usage::ServiceCalls {
        federation_context_id: ctx.to_string(),
        app_provider_id: provider.to_string(),
        app_id: app.to_string(),
        zone_id: zone.to_string(),
        flavour_id: None,
        service: service.to_string(),
        count: 1,
        at,
    });
    super::settle::record(s, &caller.partner.metadata.name, ev).await?;
    Ok(at)
}

/// `POST /{ctx}/edgenodesharing/edgeDiscovery` (GetCandidateZones): the app's zones nearest
/// the device, each with a latency test endpoint on the ingress (relayed to a probe in the
/// zone).
pub async fn candidate_zones(State(s): State<AppState>, caller: PartnerCaller, Path(ctx): Path<String>, raw: Bytes) -> EwbiResult<Response> {
    let fed = caller.federation(&s, &ctx).await?;
    let req: wire::CandidateZonesRequest = body(&raw)?;
    let a = ewbi_app(&s, &fed, &req.app_id).await?;
    if a.spec.app_provider_id != req.app_provider_id {
        return Err(not_found(&format!("app {} of provider {}", req.app_id, req.app_provider_id)));
    }
    let at = match req.edge_discovery_filters.as_ref().and_then(|f| f.location.as_ref()).and_then(|l| l.geo_location.as_deref()) {
        Some(g) => Some(wire::check_client_geo_location(g, "edgeDiscoveryFilters.location.geo_location")?),
        None => None,
    };
    let mut ranked = Vec::new();
    for id in a.spec.zones.iter().filter(|z| !a.spec.forbidden.contains(z)) {
        let oz = offered(&caller.partner, id)?;
        let zone = local_zone(&s, oz).await?;
        let d = at.map_or(0.0, |(lat, lon)| op_uni::geo::distance_km(op_types::specs::GeoPoint { latitude: lat, longitude: lon }, zone.spec.location));
        ranked.push((d, id.clone(), zone));
    }
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let mut out = Vec::new();
    for (_, id, zone) in ranked {
        let Some(probe) = zone_probe(&s, &zone).await? else { continue };
        let port = s.ewbi.ingress.ensure(zone.metadata.uid, "probe", probe, None).await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let host = s.ewbi.ingress_host.clone();
        let ep = if host.parse::<std::net::Ipv4Addr>().is_ok() { ServiceEndpoint { port, fqdn: None, ipv4_addresses: Some(vec![host]), ipv6_addresses: None } } else { ServiceEndpoint::fqdn(host, port) };
        out.push(wire::DiscoveredEdgeNode { zone_id: id, latency_service_end_points: ep });
    }
    if out.is_empty() {
        return Err(not_found("zone of the app that can serve now"));
    }
    let first = out[0].zone_id.clone();
    let when = service_call(&s, &caller, &ctx, &req.app_provider_id, &req.app_id, &first, "edgeDiscovery").await?;
    Ok(([(header::DATE, httpdate(when))], Json(out)).into_response())
}

/// The connectivity probe of some ready cloudlet of `zone` (`host:port`).
async fn zone_probe(s: &AppState, zone: &Object<ZoneSpec>) -> Result<Option<String>, ApiError> {
    let (cloudlets, _) = s.repo.list::<CloudletSpec, op_types::specs::CloudletObserved>(Kind::Cloudlet).await?;
    Ok(cloudlets
        .into_iter()
        .filter(|c| c.spec.zone == zone.metadata.name && !c.spec.maintenance && c.status.state == ObjState::Ready)
        .find_map(|c| c.observed.probe.map(|p| format!("{}:{}", p.host, p.port))))
}

/// An HTTP date (RFC 7231 IMF-fixdate).
pub fn httpdate(t: chrono::DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The roaming token of device `device` (its federated id): what a device of ours roaming in
/// a partner's network presents there, and what the partner checks with us (AuthenticateDevice).
/// Derived from our secret, so nothing is stored; it says nothing of the subscriber.
pub fn roaming_token(secret: &[u8], device: &str) -> String {
    op_types::secret::derive_hex_str(secret, "ewbi-roaming/", device)[..48].to_string()
}

/// `GET /{ctx}/roaminguserauth/device/{deviceId}/token/{authToken}` (AuthenticateDevice): is
/// this a device of ours with a token we issued for this federation? 200 or 404 alike for an
/// unknown device or a wrong token.
pub async fn authenticate_device(State(s): State<AppState>, caller: PartnerCaller, Path((ctx, device, token)): Path<(String, String, String)>) -> EwbiResult<Response> {
    caller.federation(&s, &ctx).await?;
    let ok_id = device.len() >= 8 && device.len() <= 130 && device.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok_id {
        return Err(EwbiError(ApiError::Unprocessable("INVALID_DEVICE", "deviceId: 8 to 130 letters, digits or '_'".into())));
    }
    let want = roaming_token(&s.ewbi.secret, &device);
    let same = want.len() == token.len() && want.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        return Err(not_found("device with this token"));
    }
    let when = service_call(&s, &caller, &ctx, "roaming", "roaming", "home", "roamingAuth").await?;
    Ok(([(header::DATE, httpdate(when))], StatusCode::OK).into_response())
}
