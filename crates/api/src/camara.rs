//! CAMARA Edge Application Management: apps, app instances and edge cloud zones, with the
//! spec's paths, fields and error bodies, under [`BASE`].

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use op_types::specs::{App, AppInstance, AppInstanceSpec, AppSpec, CloudletObserved, CloudletSpec, EdgeOutcome, FlavorSpec, PlacementNote, Resources, ZoneSpec};
use op_types::{Kind, Name, Object, State as ObjState, Uid, Validate};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::infra::all_instances;
use crate::json::{parse, Body};
use op_types::views::{AppInfo, AppInstanceInfo, AppManifest, EdgeCloudZone, SubmittedApp};
use crate::state::AppState;

/// Where the CAMARA API is served (the spec's server URL path).
pub const BASE: &str = "/edge-application-management/v0.1alpha1";

/// CAMARA names (`AppInstanceName`, app `name`): `^[A-Za-z][A-Za-z0-9_]{1,63}$`.
fn camara_name(s: &str, field: &str) -> Result<Name, ApiError> {
    let b = s.as_bytes();
    let ok = (2..=64).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && b[b.len() - 1].is_ascii_alphanumeric();
    if !ok {
        return Err(ApiError::invalid(field, "must match ^[A-Za-z][A-Za-z0-9_]{1,63}$ and not end with '_'"));
    }
    Name::new(s).map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn parse_uid(s: &str, field: &str) -> Result<Uid, ApiError> {
    s.parse().map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

/// The organization the caller acts for when naming `provider`.
async fn acting_org(state: &AppState, c: &Caller, provider: &str) -> Result<Name, ApiError> {
    let org = Name::new(provider).map_err(|e| ApiError::invalid("appProvider", e.to_string()))?;
    if !c.can_read(Some(&org)) {
        return Err(ApiError::invalid("appProvider", format!("must be your organization '{}' or one of its groups", c.org.as_ref().map_or("", Name::as_str))));
    }
    c.require_write(&org)?;
    if state.repo.get_by_name::<serde_json::Value, ()>(Kind::Organization, None, &org).await?.is_none() {
        return Err(ApiError::invalid("appProvider", format!("organization '{org}' does not exist")));
    }
    Ok(org)
}

/// Submit (onboard) an app.
#[utoipa::path(post, path = "/edge-application-management/v0.1alpha1/apps", tag = "Application", operation_id = "submitApp",
    security(("bearer" = [])), request_body = AppManifest,
    responses((status = 201, body = SubmittedApp), (status = 400, body = ErrorInfo), (status = 401, body = ErrorInfo),
        (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn submit_app(
    State(s): State<AppState>,
    c: Caller,
    Body(mut raw): Body<serde_json::Value>,
) -> Result<(StatusCode, Json<SubmittedApp>), ApiError> {
    let obj = raw.as_object_mut().ok_or_else(|| ApiError::invalid("body", "must be a JSON object"))?;
    let name = match obj.remove("name") {
        Some(serde_json::Value::String(n)) => camara_name(&n, "name")?,
        Some(_) => return Err(ApiError::invalid("name", "must be a string")),
        None => return Err(ApiError::invalid("name", "is required")),
    };
    obj.remove("appId");
    let bytes = serde_json::to_vec(&raw).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut spec: AppSpec = parse(&bytes)?;
    spec.validate()?;
    if let Some(d) = &spec.device_auth {
        op_uni::token::AppKey::from_pem(&d.public_key_pem)
            .map_err(|e| ApiError::invalid("deviceAuth.publicKeyPem", e.to_string()))?;
    }
    let org = acting_org(&s, &c, &spec.app_provider).await?;
    if let Some(f) = &spec.flavor {
        let flavor = s.repo.get_by_name::<FlavorSpec, ()>(Kind::Flavor, None, f).await?;
        let flavor = flavor.ok_or_else(|| ApiError::invalid("flavor", format!("flavor '{f}' does not exist")))?;
        if !spec.needs().fits_in(&flavor.spec) {
            return Err(ApiError::invalid("flavor", format!("flavor '{f}' is smaller than requiredResources")));
        }
    }
    for (i, r) in spec.requirements.data_regions.iter().enumerate() {
        if s.repo.get_by_name::<serde_json::Value, ()>(Kind::Region, None, r).await?.is_none() {
            return Err(ApiError::invalid(format!("requirements.dataRegions[{i}]"), format!("region '{r}' does not exist")));
        }
    }
    for (i, p) in spec.requirements.platform_services.iter().enumerate() {
        if s.repo.get_by_name::<serde_json::Value, ()>(Kind::PlatformService, None, p).await?.is_none() {
            return Err(ApiError::invalid(
                format!("requirements.platformServices[{i}]"),
                format!("the operator offers no platform service '{p}' (see GET /op/v1/platformservices)"),
            ));
        }
    }
    let own = s.uni.plmn();
    // Partners: the configured ones and those of federation peers.
    let mut partners = s.uni.partner_plmns.clone();
    let (peers, _) = s.repo.list::<op_types::ewbi::objects::FederationPeerSpec, op_types::ewbi::objects::FederationPeerObserved>(Kind::FederationPeer).await?;
    partners.extend(peers.into_iter().flat_map(|p| p.observed.network_codes));
    for (i, p) in spec.requirements.customer_reach.iter().enumerate() {
        if *p != own && !partners.contains(p) {
            return Err(ApiError::invalid(
                format!("requirements.customerReach[{i}]"),
                format!("network {p} is neither this operator's ({own}) nor a partner's ({})", if partners.is_empty() { "none".to_string() } else { partners.join(", ") }),
            ));
        }
    }
    if spec.requirements.instantiation == op_types::specs::InstantiationType::Serverless {
        let mut p = spec.requirements.serverless.take().unwrap_or_default();
        crate::serverless::admit_policy(&s, &spec, &org, &name, None, &mut p, "requirements.serverless").await?;
        spec.requirements.serverless = Some(p);
    }
    let mut app: App = Object::new(Kind::App, Some(org), name, spec);
    app.status.state = ObjState::Ready;
    s.repo.create(&mut app).await.map_err(|e| match e {
        op_store::RepoError::AlreadyExists { .. } => ApiError::AlreadyExists("App already exists".into()),
        e => e.into(),
    })?;
    tracing::info!(app = %app.metadata.uid, name = %app.metadata.name, user = %c.user, "app submitted");
    Ok((StatusCode::CREATED, Json(SubmittedApp { app_id: app.metadata.uid })))
}

/// List the apps the caller may see.
#[utoipa::path(get, path = "/edge-application-management/v0.1alpha1/apps", tag = "Application", operation_id = "getApps",
    security(("bearer" = [])), responses((status = 200, body = Vec<AppManifest>), (status = 401, body = ErrorInfo)))]
pub async fn get_apps(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<AppManifest>>, ApiError> {
    let (apps, _) = s.repo.list::<AppSpec, ()>(Kind::App).await?;
    Ok(Json(apps.iter().filter(|a| c.can_read(a.metadata.organization.as_ref())).map(AppManifest::from).collect()))
}

async fn visible_app(s: &AppState, c: &Caller, id: Uid) -> Result<Option<App>, ApiError> {
    Ok(s.repo.get::<AppSpec, ()>(Kind::App, id).await?.filter(|a| c.can_read(a.metadata.organization.as_ref())))
}

/// Read one app.
#[utoipa::path(get, path = "/edge-application-management/v0.1alpha1/apps/{appId}", tag = "Application", operation_id = "getApp",
    security(("bearer" = [])), params(("appId" = String, Path)),
    responses((status = 200, body = AppInfo), (status = 404, body = ErrorInfo)))]
pub async fn get_app(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<AppInfo>, ApiError> {
    let id = parse_uid(&id, "appId")?;
    let app = visible_app(&s, &c, id).await?.ok_or_else(|| ApiError::NotFound("App not found".into()))?;
    Ok(Json(AppInfo { app_manifest: AppManifest::from(&app) }))
}

/// Delete an app; refused while it has instances.
#[utoipa::path(delete, path = "/edge-application-management/v0.1alpha1/apps/{appId}", tag = "Application", operation_id = "deleteApp",
    security(("bearer" = [])), params(("appId" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn delete_app(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = parse_uid(&id, "appId")?;
    let app = visible_app(&s, &c, id).await?.ok_or_else(|| ApiError::NotFound("App not found".into()))?;
    if let Some(org) = &app.metadata.organization {
        c.require_write(org)?;
    }
    let _admission = s.admission.every_zone().await;
    let live = all_instances(&s).await?.into_iter().filter(|i| i.spec.app_id == id).count();
    if live > 0 {
        return Err(ApiError::Aborted(format!(
            "App with a running application instance cannot be deleted ({live} instance(s) left; delete them first)"
        )));
    }
    s.repo.delete(&app).await?;
    tracing::info!(app = %id, user = %c.user, "app deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// CAMARA `createAppInstance` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppInstanceCreate {
    /// `^[A-Za-z][A-Za-z0-9_]{1,63}$`, unique within the organization.
    pub name: String,
    /// The app.
    pub app_id: Uid,
    /// The zone.
    pub edge_cloud_zone_id: Uid,
    /// Not supported: this platform's cloudlets are container hosts, not Kubernetes clusters.
    #[serde(default)]
    pub kubernetes_cluster_ref: Option<Uid>,
    /// The platform's extension: a cluster of the organization (its uid) in this zone to run
    /// the instance in (`/op/v1/clusters`).
    #[serde(default)]
    pub cluster_ref: Option<Uid>,
}

/// How many edges an instance's placement note lists (the chosen one first).
const MAX_NOTED_EDGES: usize = 8;

/// Where admission puts an instance, and why.
pub(crate) struct Admitted {
    cloudlet: Name,
    flavor: Name,
    note: PlacementNote,
}

/// Picks the cloudlet and flavor for `app` in zone `zone` with the placement engine: the
/// smallest flavor that fits the app (or the one it names) on the cloudlet the operator's
/// weights prefer among those that are out of maintenance, offer it and have the room left;
/// a cloudlet where a fixed port of the app is taken is passed over. Errors name the field a
/// developer can change; the decision is explained in the instance.
async fn admit(s: &AppState, app: &App, zone: &Object<ZoneSpec>, pin: Pin<'_>) -> Result<Admitted, ApiError> {
    use op_placement::decide::{decide, Need, Point, Site, Sites};
    crate::infra::served_here(s, zone)?;
    let mut cloudlets = s.inventory.cloudlets_in(&zone.metadata.name);
    if let Some(only) = pin.cloudlet {
        cloudlets.retain(|c| &c.metadata.name == only);
    }
    // A cloudlet whose privacy policy (or whose region's regulation) does not let everything
    // out takes instances only in clusters, whose egress gateway applies it (the cluster's own
    // checks see to the rest).
    if pin.cluster.is_none() {
        if !s.inventory.region_lets_out(&zone.spec.region) {
            return Err(ApiError::invalid(
                "clusterRef",
                format!("the regulation of region {} does not let everything out of its cloudlets: deploy into a cluster there (its egress gateway lets out what the regulation allows)", zone.spec.region),
            ));
        }
        let before = cloudlets.len();
        cloudlets.retain(|c| c.spec.outbound_allowed());
        if cloudlets.is_empty() && before > 0 {
            return Err(ApiError::invalid(
                "clusterRef",
                format!("the privacy policy of zone {}'s cloudlets does not let everything out: deploy into a cluster there (its egress gateway lets out what the policy allows)", zone.metadata.name),
            ));
        }
    }
    // A cloudlet's security group must let in every port the app exposes.
    let exposed: Vec<(op_types::specs::Protocol, u16)> = app.spec.external_interfaces().map(|n| (n.protocol, n.port)).collect();
    let before = cloudlets.len();
    cloudlets.retain(|c| c.spec.security_group.as_ref().is_none_or(|sg| exposed.iter().all(|(p, port)| sg.admits(*p, *port))));
    if cloudlets.is_empty() && before > 0 {
        let ports: Vec<String> = exposed.iter().map(|(p, port)| format!("{port}/{p:?}")).collect();
        return Err(ApiError::invalid(
            "componentSpec",
            format!("the security groups of zone {}'s cloudlets let no traffic in on {}; expose a port they allow, or choose another zone", zone.metadata.name, ports.join(", ")),
        ));
    }
    if cloudlets.iter().all(|c| c.spec.maintenance) {
        return Err(ApiError::invalid("edgeCloudZoneId", "the zone has no cloudlet accepting instances"));
    }
    let mut flavors = s.inventory.flavors();
    flavors.sort_by(|a, b| {
        let key = |f: &Object<FlavorSpec>| (f.spec.vcpus, f.spec.memory_mb, f.spec.gpus, f.spec.disk_gb);
        key(a).cmp(&key(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    // What each cloudlet's instances take, counted by the inventory as they come and go.
    let loads = s.inventory.loads(&cloudlets);
    let services = offered_services(s, app, &cloudlets, zone).await?;
    let to_placement = |r: &Resources| op_placement::decide::Resources {
        millicpus: u64::from(r.vcpus) * 1000,
        memory_mb: r.memory_mb,
        disk_gb: r.disk_gb,
        gpus: r.gpus,
    };
    // The zone's network cost from the network's view: the same for every cloudlet of the zone,
    // it shows in the explanation.
    let network_load = s.uni.index.read().unwrap_or_else(|e| e.into_inner()).network_load(zone.metadata.uid);
    let sites: Vec<Site> = cloudlets
        .iter()
        .enumerate()
        .map(|(i, cl)| {
            let used = loads[i].flavors.iter().fold(Resources::default(), |acc, (flavor, n)| {
                flavors.iter().find(|f| &f.metadata.name == flavor).map_or(acc, |f| acc.plus(&f.spec.times(*n)))
            });
            let (cap, used) = (to_placement(&cl.spec.capacity), to_placement(&used));
            Site {
                id: i as u32,
                zone: 0,
                region: 0,
                location: Point { lat: cl.spec.location.latitude, lon: cl.spec.location.longitude },
                free: op_placement::decide::Resources {
                    millicpus: cap.millicpus.saturating_sub(used.millicpus),
                    memory_mb: cap.memory_mb.saturating_sub(used.memory_mb),
                    disk_gb: cap.disk_gb.saturating_sub(used.disk_gb),
                    gpus: cap.gpus.saturating_sub(used.gpus),
                },
                flavors: {
                    // Inserted one by one: for the one or two flavors a cloudlet offers, cheaper than collecting and sorting.
                    let mut offered = std::collections::BTreeSet::new();
                    for (k, f) in flavors.iter().enumerate() {
                        if cl.spec.flavors.contains(&f.metadata.name) {
                            offered.insert(k as u32);
                        }
                    }
                    offered
                },
                services: services[i],
                available: !cl.spec.maintenance,
                // Network mobility support: the zone's user plane has a DNAI the network can
                // steer a device's traffic to (what relocating a session needs).
                mobility: zone.spec.dnai.is_some(),
                edge_load: used.millicpus as f64 / cap.millicpus.max(1) as f64,
                network_load,
                forecast: s.usage.forecast(&cl.metadata.name),
            }
        })
        .collect();
    let index = Sites::new(sites);
    let needs = app.spec.needs();
    let candidates: Vec<usize> = (0..flavors.len())
        .filter(|k| match &app.spec.flavor {
            Some(name) => &flavors[*k].metadata.name == name,
            None => needs.fits_in(&flavors[*k].spec),
        })
        .collect();
    let deployed: std::collections::BTreeSet<u32> = cloudlets
        .iter()
        .enumerate()
        .filter(|(i, _)| loads[*i].apps.contains_key(&app.metadata.uid))
        .map(|(i, _)| i as u32)
        .collect();
    let (policy, class) = placement_policy(s, &zone.spec.region, app, &cloudlets).await?;
    let mut too_big = true;
    let mut port_clash = None;
    let mut barred = false;
    let mut why_not: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut service_edges_out = false;
    for k in candidates {
        let flavor = &flavors[k];
        if cloudlets.iter().any(|cl| cl.spec.flavors.contains(&flavor.metadata.name) && flavor.spec.fits_in(&cl.spec.capacity)) {
            too_big = false;
        }
        let need = Need {
            app: 0,
            class,
            resources: to_placement(&flavor.spec),
            flavor: Some(k as u32),
            services: needed_services(app),
            // An app moved with prior notice needs its sessions steered: a hard criterion;
            // other apps pay the operator's `noMobility` weight where support lacks.
            mobility: app.spec.requirements.mobility_policy == op_types::specs::MobilityPolicy::MoveWithPriorNotice,
            deployed: deployed.clone(),
            ..Need::default()
        };
        let decision = decide(&index, &need, &policy, &|_| None);
        why_not.extend(decision.rejected.iter().map(|(_, r)| r.to_string()));
        barred |= decision.ranked.is_empty()
            && !decision.rejected.is_empty()
            && decision.rejected.iter().all(|(_, r)| matches!(r, op_placement::decide::Rejection::Barred | op_placement::decide::Rejection::Unavailable));
        {
            use op_placement::decide::Rejection::{Barred, NoService, Unavailable};
            service_edges_out |= decision.ranked.is_empty()
                && decision.rejected.iter().any(|(_, r)| *r == NoService)
                && decision.rejected.iter().all(|(_, r)| matches!(r, NoService | Barred | Unavailable));
        }
        for (rank, choice) in decision.ranked.iter().enumerate() {
            let cl = &cloudlets[choice.site as usize];
            let on_it = s.inventory.instances_on(&cl.metadata.name);
            if let Some(p) = clashing_port(s, app, &on_it).await? {
                port_clash = Some(p);
                continue;
            }
            // The chosen edge first, then the others from the closest call to the farthest,
            // at most MAX_NOTED_EDGES of them: a zone of a hundred edges does not make every
            // instance carry a hundred lines. Ordered first, worded only for those listed.
            let mut ranks: Vec<Option<usize>> = vec![None; cloudlets.len()];
            for (p, r) in decision.ranked.iter().enumerate() {
                if let Some(slot) = ranks.get_mut(r.site as usize) {
                    *slot = Some(p);
                }
            }
            let mut ruled_out: Vec<Option<&op_placement::decide::Rejection>> = vec![None; cloudlets.len()];
            for (site, why) in &decision.rejected {
                if let Some(slot) = ruled_out.get_mut(*site as usize) {
                    slot.get_or_insert(why);
                }
            }
            let order = |i: usize| match (ranks[i], ruled_out[i]) {
                (Some(p), _) if p == rank => 0,
                (Some(p), _) => 1 + p,
                (None, Some(_)) => usize::MAX - 1,
                (None, None) => usize::MAX,
            };
            let mut listed: Vec<usize> = (0..cloudlets.len()).collect();
            listed.sort_by_key(|i| order(*i));
            let unlisted = listed.len().saturating_sub(MAX_NOTED_EDGES);
            let edges: Vec<EdgeOutcome> = listed
                .into_iter()
                .take(MAX_NOTED_EDGES)
                .map(|i| {
                    let outcome = match (ranks[i], ruled_out[i]) {
                        (Some(p), _) if p == rank => format!("chosen: {}", choice.explain()),
                        (Some(p), _) if p < rank => "passed over: a fixed port of the app is taken there".to_string(),
                        (Some(p), _) => format!("admissible: {}", decision.ranked[p].explain()),
                        (None, Some(why)) => format!("ruled out: {why}"),
                        (None, None) => "not considered".to_string(),
                    };
                    EdgeOutcome { cloudlet: cloudlets[i].metadata.name.clone(), outcome }
                })
                .collect();
            let summary = format!(
                "flavor {} on one of {} edges of zone {} ({} admissible{}), chosen by the operator's weights: {}",
                flavor.metadata.name,
                cloudlets.len(),
                zone.metadata.name,
                decision.ranked.len(),
                if decision.rejected.is_empty() {
                    String::new()
                } else {
                    let mut why: Vec<String> = decision.rejected.iter().map(|(_, r)| r.to_string()).collect();
                    why.sort();
                    why.dedup();
                    format!("; ruled out: {}", why.join(", "))
                },
                choice.explain()
            ) + &if unlisted > 0 { format!(" ({unlisted} more edges not listed)") } else { String::new() };
            return Ok(Admitted { cloudlet: cl.metadata.name.clone(), flavor: flavor.metadata.name.clone(), note: PlacementNote { summary, edges } });
        }
    }
    if let Some((field, port)) = port_clash {
        return Err(ApiError::AlreadyExists(format!("{field}: port {port} is already taken in this zone")));
    }
    if service_edges_out {
        return Err(ApiError::Aborted(format!(
            "requirements.platformServices: the edges of zone {} that offer the app's platform services are in maintenance or barred to it; try another zone",
            zone.metadata.name
        )));
    }
    if barred {
        return Err(ApiError::Forbidden("the operator's placement policy bars this app from every edge of this zone; try another zone".into()));
    }
    if too_big {
        let what = app.spec.flavor.as_ref().map_or("requiredResources".to_string(), |f| format!("flavor '{f}'"));
        let field = if app.spec.flavor.is_some() { "flavor" } else { "requiredResources" };
        return Err(ApiError::invalid(field, format!("{what} is larger than any cloudlet of this zone offers")));
    }
    let why: Vec<String> = why_not.into_iter().collect();
    Err(ApiError::Aborted(format!("no edge of the zone can take this app ({}); try another zone", why.join("; "))))
}

/// The platform services `app` needs, as the placement engine's bits: bit `i` is
/// `requirements.platformServices[i]` (at most 16, by validation).
fn needed_services(app: &App) -> u64 {
    (0..app.spec.requirements.platform_services.len().min(64)).fold(0, |bits, i| bits | 1 << i)
}

/// Which of the services `app` needs each of `cloudlets` offers, in [`needed_services`]' bits;
/// a 400 naming `requirements.platformServices[i]` when no cloudlet of the zone offers
/// service `i`, so the developer knows which one is missing here.
async fn offered_services(s: &AppState, app: &App, cloudlets: &[std::sync::Arc<op_types::specs::Cloudlet>], zone: &Object<ZoneSpec>) -> Result<Vec<u64>, ApiError> {
    let mut bits = vec![0u64; cloudlets.len()];
    for (i, name) in app.spec.requirements.platform_services.iter().enumerate().take(64) {
        let svc = s.inventory.platform_service(name);
        let mut anywhere = false;
        for (k, cl) in cloudlets.iter().enumerate() {
            if svc.as_ref().is_some_and(|p| p.spec.offered_on(&cl.metadata.name)) {
                bits[k] |= 1 << i;
                anywhere = true;
            }
        }
        if !anywhere {
            return Err(ApiError::invalid(
                format!("requirements.platformServices[{i}]"),
                format!("platform service '{name}' is not offered in zone {}; deploy to a zone that offers it", zone.metadata.name),
            ));
        }
    }
    Ok(bits)
}

/// A fixed `extPort` of `app` already used by an instance in `here`, with its field path.
async fn clashing_port(s: &AppState, app: &App, here: &[std::sync::Arc<AppInstance>]) -> Result<Option<(String, u16)>, ApiError> {
    let wanted: Vec<(String, u16)> = app
        .spec
        .component_spec
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            c.network_interfaces.iter().enumerate().filter_map(move |(j, n)| {
                n.ext_port.map(|p| (format!("componentSpec[{i}].networkInterfaces[{j}].extPort"), p))
            })
        })
        .collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    for inst in here {
        let Some(other) = s.repo.get::<AppSpec, ()>(Kind::App, inst.spec.app_id).await? else { continue };
        for n in other.spec.external_interfaces() {
            if let Some(p) = n.ext_port {
                if let Some(hit) = wanted.iter().find(|(_, w)| *w == p) {
                    return Ok(Some(hit.clone()));
                }
            }
        }
    }
    Ok(None)
}

/// Deploy an app to a zone.
#[utoipa::path(post, path = "/edge-application-management/v0.1alpha1/appinstances", tag = "Application",
    operation_id = "createAppInstance", security(("bearer" = [])), request_body = AppInstanceCreate,
    responses((status = 202, body = AppInstanceInfo), (status = 400, body = ErrorInfo), (status = 401, body = ErrorInfo),
        (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn create_app_instance(
    State(s): State<AppState>,
    c: Caller,
    Body(req): Body<AppInstanceCreate>,
) -> Result<Response, ApiError> {
    let name = camara_name(&req.name, "name")?;
    if req.kubernetes_cluster_ref.is_some() {
        return Err(ApiError::invalid("kubernetesClusterRef", "this platform's cloudlets are not Kubernetes clusters; omit it"));
    }
    // From memory where the platform follows apps (the store's copy on a miss): the instance
    // names the app revision it was admitted with, and its controller deploys that revision
    // or a later one.
    let app = s
        .repo
        .get_cached::<AppSpec, ()>(Kind::App, req.app_id)
        .await?
        .filter(|a| c.can_read(a.metadata.organization.as_ref()))
        .ok_or_else(|| ApiError::invalid("appId", format!("app {} does not exist", req.app_id)))?;
    let org = app.metadata.organization.clone().ok_or_else(|| ApiError::Internal("app without organization".into()))?;
    c.require_write(&org)?;
    let zone = match s.inventory.zone(req.edge_cloud_zone_id) {
        Some(z) => Object::clone(&z),
        None => s.repo.get::<ZoneSpec, ()>(Kind::Zone, req.edge_cloud_zone_id).await?.ok_or_else(|| ApiError::invalid("edgeCloudZoneId", format!("zone {} does not exist", req.edge_cloud_zone_id)))?,
    };
    let inst = match req.cluster_ref {
        None => create_instance(&s, &app, &zone, name, &c.user).await?,
        Some(cluster) => {
            let cl = crate::clusters::member_of(&s, &c, cluster, &org, &zone).await?;
            let pin = Pin { cloudlet: Some(&cl), cluster: Some(cluster) };
            create_instance_on(&s, &app, &zone, pin, name, &c.user, Default::default()).await?
        }
    };
    let location = format!("{BASE}/appinstances?appInstanceId={}", inst.metadata.uid);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(AppInstanceInfo::from(&inst))).into_response())
}

/// The name of an instance the platform makes for `app` on its own (a strategy, the UNI, the
/// scaler): `<app>_<tag>_<12 hex of uid>`, a valid CAMARA instance name. With a zone's uid it is
/// the same on every try, so a second request fails on the name instead of duplicating.
pub(crate) fn platform_instance_name(app: &Name, tag: &str, uid: Uid) -> Result<Name, ApiError> {
    let u: String = uid.to_string().chars().filter(char::is_ascii_hexdigit).take(12).collect();
    let room = op_types::ids::NAME_MAX - u.len() - tag.len() - 2;
    let a: String = app.as_str().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(room).collect();
    Name::new(format!("{a}_{tag}_{u}")).map_err(|e| ApiError::Internal(format!("instance name: {e}")))
}

/// Admits an instance of `app` in `zone` (a cloudlet with room, the flavor, the image) and
/// stores it; the instance controller does the rest. The one way instances are created, by a
/// developer's request or by the UNI for a dynamically instantiated app.
pub(crate) async fn create_instance(s: &AppState, app: &App, zone: &Object<ZoneSpec>, name: Name, by: &str) -> Result<AppInstance, ApiError> {
    create_instance_labelled(s, app, zone, name, by, Default::default()).await
}

/// [`create_instance`] with labels on the instance (e.g. the federated instance it realises).
pub(crate) async fn create_instance_labelled(
    s: &AppState,
    app: &App,
    zone: &Object<ZoneSpec>,
    name: Name,
    by: &str,
    labels: std::collections::BTreeMap<String, String>,
) -> Result<AppInstance, ApiError> {
    create_instance_on(s, app, zone, Pin::default(), name, by, labels).await
}

/// Where an instance must go, beyond its zone: one cloudlet (a serverless point of
/// presence's), or a cluster (its cloudlet and network).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pin<'a> {
    /// Only this cloudlet of the zone.
    pub cloudlet: Option<&'a Name>,
    /// In this cluster.
    pub cluster: Option<Uid>,
}

/// [`create_instance_labelled`] where `pin` says (a serverless point of presence's cloudlet,
/// a cluster), through the same admission.
pub(crate) async fn create_instance_on(
    s: &AppState,
    app: &App,
    zone: &Object<ZoneSpec>,
    pin: Pin<'_>,
    name: Name,
    by: &str,
    labels: std::collections::BTreeMap<String, String>,
) -> Result<AppInstance, ApiError> {
    let org = app.metadata.organization.clone().ok_or_else(|| ApiError::Internal("app without organization".into()))?;
    zone_allowed(app, zone)?;
    if let Some(fz) = &zone.spec.federated {
        return crate::ewbi::peer::admit_federated(s, app, zone, fz, name, by).await;
    }
    let _admission = s.admission.zone(zone.metadata.uid).await;
    let Admitted { cloudlet, flavor, note } = admit(s, app, zone, pin).await?;
    check_image(s, app, &cloudlet).await?;
    let spec = AppInstanceSpec { app_id: app.metadata.uid, edge_cloud_zone_id: zone.metadata.uid, cloudlet, flavor, federated: None, cluster: pin.cluster, app_revision: Some(app.metadata.revision) };
    let mut inst: AppInstance = Object::new(Kind::AppInstance, Some(org), name, spec);
    inst.metadata.labels = labels;
    inst.observed.placement = Some(note);
    // Counted before it is stored, so that the zone's next admission, which may start now,
    // sees its share of the cloudlet while the store commits; taken back if the store refuses.
    s.inventory.put_instance(&inst);
    drop(_admission);
    // A developer's deployment request is audited in the instance's own transaction: one
    // commit answers it (the record says 202, what the CAMARA create answers; a request that
    // answers otherwise has its record corrected by the audit layer).
    let stored = match crate::audit::record_for_write(StatusCode::ACCEPTED) {
        Some(mut rec) => s.repo.create_with(&mut inst, &mut rec).await.map(|together| {
            if together {
                crate::audit::stored_with_write(rec);
            }
        }),
        None => s.repo.create(&mut inst).await,
    };
    if let Err(e) = stored {
        s.inventory.forget_unstored(inst.metadata.uid);
        return Err(e.into());
    }
    s.inventory.put_instance(&inst);
    tracing::info!(instance = %inst.metadata.uid, cloudlet = %inst.spec.cloudlet, by, "instance accepted");
    Ok(inst)
}

/// The operator's placement policy for a zone of `region`, in the engine's terms for `app`
/// (which is app 0, and whose class is returned) on `cloudlets` (site ids are their indices):
/// the policy named after the region, else `default`, else the platform's defaults.
async fn placement_policy(
    s: &AppState,
    region: &Name,
    app: &App,
    cloudlets: &[std::sync::Arc<op_types::specs::Cloudlet>],
) -> Result<(op_placement::decide::Policy, u32), ApiError> {
    let default = Name::new("default").map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut spec = None;
    for name in [region, &default] {
        if let Some(p) = s.inventory.placement_policy(name) {
            spec = Some(p.spec.clone());
            break;
        }
    }
    let spec = spec.unwrap_or_default();
    let site = |name: &Name| cloudlets.iter().position(|c| &c.metadata.name == name).map(|i| i as u32);
    let uid = app.metadata.uid;
    let policy = op_placement::decide::Policy {
        weights: spec.weights,
        by_class: spec.by_class.values().enumerate().map(|(i, w)| (i as u32 + 1, *w)).collect(),
        barred_sites: spec.barred_cloudlets.iter().filter_map(site).collect(),
        barred_apps: if spec.barred_apps.contains(&uid) { [0].into() } else { Default::default() },
        barred_pairs: spec.barred_pairs.iter().filter(|b| b.app == uid).filter_map(|b| site(&b.cloudlet)).map(|c| (0, c)).collect(),
    };
    let class = app.spec.requirements.app_class.as_ref().and_then(|c| spec.by_class.keys().position(|k| k == c)).map_or(0, |i| i as u32 + 1);
    Ok((policy, class))
}

/// Refuses a zone outside the app's footprint or data geography (OPG.02 criteria a and g).
fn zone_allowed(app: &App, zone: &Object<ZoneSpec>) -> Result<(), ApiError> {
    let r = &app.spec.requirements;
    let z = &zone.spec;
    if let Some(part) = op_uni::select::outside_footprint(&r.footprint, zone.metadata.uid, &z.region, &z.service_area.cells, z.location) {
        return Err(ApiError::invalid(
            "edgeCloudZoneId",
            format!("zone {} is outside the app's footprint (requirements.footprint.{part}); choose a zone inside it or widen the footprint", zone.metadata.name),
        ));
    }
    if !r.data_regions.is_empty() && !r.data_regions.contains(&z.region) {
        return Err(ApiError::invalid(
            "edgeCloudZoneId",
            format!("zone {} is in region {}, where the app's data may not go (requirements.dataRegions)", zone.metadata.name, z.region),
        ));
    }
    Ok(())
}

/// Refuses an image the cloudlet does not have (no image can be pulled from outside), or one
/// of the platform's registry that was never pushed or belongs to another organization. A runtime
/// that is down does not block the request: the instance reports the outage and recovers.
async fn check_image(s: &AppState, app: &App, cloudlet: &Name) -> Result<(), ApiError> {
    let image = &app.spec.app_repo.image_path;
    // The platform's registry is asked, not the cloudlet: the cloudlet pulls what it lacks.
    if let (Some(r), Some(org)) = (&s.images, &app.metadata.organization) {
        if crate::registry::in_registry(&r.host, image).is_some() {
            return crate::registry::check_pushed(s, image, org).await;
        }
    }
    let Some(cl) = s.inventory.cloudlet(cloudlet) else { return Ok(()) };
    let checked = match s.drivers.for_cloudlet(&cl.spec) {
        Ok(driver) => driver.image_exists(image).await,
        Err(e) => Err(e),
    };
    match checked {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::invalid(
            "appRepo.imagePath",
            format!("image '{image}' is not available on the zone's cloudlet; load or push it first, then deploy again"),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "could not check the image; admitting anyway");
            Ok(())
        }
    }
}

/// Filters of `GET /appinstances`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct InstanceQuery {
    /// Only this app's instances.
    pub app_id: Option<String>,
    /// Only this instance.
    pub app_instance_id: Option<String>,
    /// Only instances in zones of this region.
    pub region: Option<String>,
}

/// List instances the caller may see.
#[utoipa::path(get, path = "/edge-application-management/v0.1alpha1/appinstances", tag = "Application",
    operation_id = "getAppInstance", security(("bearer" = [])), params(InstanceQuery),
    responses((status = 200, body = Vec<AppInstanceInfo>), (status = 400, body = ErrorInfo)))]
pub async fn get_app_instances(
    State(s): State<AppState>,
    c: Caller,
    Query(q): Query<InstanceQuery>,
) -> Result<Json<Vec<AppInstanceInfo>>, ApiError> {
    let app_id = q.app_id.as_deref().map(|a| parse_uid(a, "appId")).transpose()?;
    let inst_id = q.app_instance_id.as_deref().map(|a| parse_uid(a, "appInstanceId")).transpose()?;
    let zones_in_region: Option<Vec<Uid>> = match &q.region {
        Some(r) => {
            let (zones, _) = s.repo.list::<ZoneSpec, ()>(Kind::Zone).await?;
            Some(zones.into_iter().filter(|z| z.spec.region.as_str() == r).map(|z| z.metadata.uid).collect())
        }
        None => None,
    };
    let out = all_instances(&s)
        .await?
        .iter()
        .filter(|i| c.can_read(i.metadata.organization.as_ref()))
        .filter(|i| app_id.is_none_or(|a| i.spec.app_id == a))
        .filter(|i| inst_id.is_none_or(|a| i.metadata.uid == a))
        .filter(|i| zones_in_region.as_ref().is_none_or(|z| z.contains(&i.spec.edge_cloud_zone_id)))
        .map(AppInstanceInfo::from)
        .collect();
    Ok(Json(out))
}

pub(crate) async fn visible_instance(s: &AppState, c: &Caller, id: &str) -> Result<AppInstance, ApiError> {
    let id = parse_uid(id, "appInstanceId")?;
    s.repo
        .get::<_, _>(Kind::AppInstance, id)
        .await?
        .filter(|i: &AppInstance| c.can_read(i.metadata.organization.as_ref()))
        .ok_or_else(|| ApiError::NotFound("App instance not found".into()))
}

/// Terminate an instance: accepted at once, the container is removed by the controller.
#[utoipa::path(delete, path = "/edge-application-management/v0.1alpha1/appinstances/{appInstanceId}", tag = "Application",
    operation_id = "deleteAppInstance", security(("bearer" = [])), params(("appInstanceId" = String, Path)),
    responses((status = 202), (status = 404, body = ErrorInfo)))]
pub async fn delete_app_instance(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let inst = visible_instance(&s, &c, &id).await?;
    if let Some(org) = &inst.metadata.organization {
        c.require_write(org)?;
    }
    request_deletion(&s, Kind::AppInstance, inst.metadata.uid, &c.user).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Marks an object (an instance, a cluster) for deletion: its controller releases what it
/// holds, then removes it. Marking one already marked, or gone, is not an error.
pub(crate) async fn request_deletion(s: &AppState, kind: Kind, uid: Uid, by: &str) -> Result<(), ApiError> {
    loop {
        let Some(mut obj) = s.repo.get::<serde_json::Value, serde_json::Value>(kind, uid).await? else { return Ok(()) };
        if obj.metadata.deletion_requested.is_some() {
            return Ok(());
        }
        obj.metadata.deletion_requested = Some(chrono::Utc::now());
        match s.repo.update(&mut obj).await {
            Ok(()) => {
                tracing::info!(%kind, %uid, by, "deletion requested");
                return Ok(());
            }
            Err(op_store::RepoError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Full instance object (status, conditions, endpoints): the platform's extension for
/// `opctl` and debugging.
#[utoipa::path(get, path = "/op/v1/appinstances/{appInstanceId}", tag = "instances", security(("bearer" = [])),
    params(("appInstanceId" = String, Path)), responses((status = 200, body = AppInstance), (status = 404, body = ErrorInfo)))]
pub async fn get_instance_detail(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Json<AppInstance>, ApiError> {
    let mut inst = visible_instance(&s, &c, &id).await?;
    // Developers see the zone-level account only: edge names and costs are the operator's.
    if !c.role.is_operator() {
        if let Some(p) = inst.observed.placement.as_mut() {
            p.edges.clear();
        }
        inst.observed.network_namespace = None;
        inst.spec.cloudlet = Name::new(op_types::specs::HIDDEN_CLOUDLET).map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    Ok(Json(inst))
}

/// Filters of `GET /edge-cloud-zones`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ZoneQuery {
    /// Only zones of this region.
    pub region: Option<String>,
    /// Only zones with this status: `active`, `inactive`, `unknown`.
    pub status: Option<String>,
}

/// List the edge cloud zones.
#[utoipa::path(get, path = "/edge-application-management/v0.1alpha1/edge-cloud-zones", tag = "Edge Cloud",
    operation_id = "getEdgeCloudZones", security(("bearer" = [])), params(ZoneQuery),
    responses((status = 200, body = Vec<EdgeCloudZone>), (status = 400, body = ErrorInfo)))]
pub async fn get_edge_cloud_zones(
    State(s): State<AppState>,
    _c: Caller,
    Query(q): Query<ZoneQuery>,
) -> Result<Json<Vec<EdgeCloudZone>>, ApiError> {
    if let Some(st) = &q.status {
        if !["active", "inactive", "unknown"].contains(&st.as_str()) {
            return Err(ApiError::invalid("status", "must be active, inactive or unknown"));
        }
    }
    let (zones, _) = s.repo.list::<ZoneSpec, ()>(Kind::Zone).await?;
    let (cloudlets, _) = s.repo.list::<CloudletSpec, CloudletObserved>(Kind::Cloudlet).await?;
    let out = zones
        .into_iter()
        .filter(|z| q.region.as_ref().is_none_or(|r| z.spec.region.as_str() == r))
        // A region's controller answers for its own zones (the global plane joins the regions').
        .filter(|z| s.region.as_ref().is_none_or(|r| &z.spec.region == r))
        .map(|z| {
            let mine: Vec<_> = cloudlets.iter().filter(|c| c.spec.zone == z.metadata.name).collect();
            let status = if z.spec.federated.is_some() {
                // A partner's zone: as the partner last said.
                if z.status.state == ObjState::Ready { "active" } else { "inactive" }
            } else if mine.is_empty() {
                "unknown"
            } else if mine.iter().any(|c| c.status.state == ObjState::Ready && !c.spec.maintenance) {
                "active"
            } else {
                "inactive"
            };
            EdgeCloudZone {
                edge_cloud_zone_id: z.metadata.uid,
                edge_cloud_zone_name: z.metadata.name.to_string(),
                edge_cloud_zone_status: status.to_string(),
                edge_cloud_provider: z.spec.federated.as_ref().map_or_else(|| s.provider.clone(), |f| f.peer.to_string()),
                edge_cloud_region: z.spec.region.to_string(),
            }
        })
        .filter(|z| q.status.as_ref().is_none_or(|st| &z.edge_cloud_zone_status == st))
        .collect();
    Ok(Json(out))
}

