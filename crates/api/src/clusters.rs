//! Clusters and load balancers (the developers' workflow): create, update, report, delete.
//!
//! A cluster is placed on one cloudlet of its zone when it is created (developers see the
//! zone, never the cloudlet); the cluster controller makes its network there. Instances join
//! it with `clusterRef` at deployment. A load balancer listens on the platform's ingress (one
//! point of presence per cloudlet address, `op-ingress`'s pipeline: least connections, health
//! checks from the front end to each backend) and spreads its front-end port over the
//! cluster's ready instances of one app on their cluster addresses; its table is rebuilt from
//! the store every second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use op_ingress::{AppRoute, Backend, Mesh, PopHandle, Table};
use op_types::cluster::{ClusterMember, ClusterObserved, ClusterSpec, ClusterView, LbBackend, LoadBalancerSpec, LoadBalancerView};
use op_types::observe::Health;
use op_types::serverless::ServerlessProtocol;
use op_types::specs::{AppInstance, AppSpec, CloudletObserved, CloudletSpec, ZoneSpec, HIDDEN_CLOUDLET};
use op_types::{Kind, Name, Object, State as ObjState, Uid, Validate};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::json::Body;
use crate::owned::{find, owner, CreateOwned};
use crate::state::AppState;

/// A stored cluster.
pub type Cluster = Object<ClusterSpec, ClusterObserved>;
/// A stored load balancer.
pub type LoadBalancer = Object<LoadBalancerSpec>;

/// Body of the update calls.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSpec<S> {
    /// The new spec, replacing the old one.
    pub spec: S,
}

async fn instances_of_cluster(s: &AppState, cluster: Uid) -> Result<Vec<AppInstance>, ApiError> {
    Ok(crate::infra::all_instances(s).await?.into_iter().filter(|i| i.spec.cluster == Some(cluster)).collect())
}

fn view(s: &AppState, c: &Caller, cl: Cluster, members: Vec<AppInstance>) -> ClusterView {
    let readings = s.resources.instances(|u| members.iter().any(|m| m.metadata.uid == u.app_instance_id));
    let members: Vec<ClusterMember> = members
        .into_iter()
        .map(|m| ClusterMember {
            health: readings.iter().find(|u| u.app_instance_id == m.metadata.uid).map_or(Health::Exited, |u| u.health),
            app_instance_id: m.metadata.uid,
            name: m.metadata.name.to_string(),
            app_id: m.spec.app_id,
            state: m.status.state.to_string(),
        })
        .collect();
    ClusterView {
        id: cl.metadata.uid,
        health: members.iter().map(|m| m.health).max().unwrap_or(Health::Healthy),
        name: cl.metadata.name,
        organization: cl.metadata.organization,
        spec: cl.spec,
        state: if cl.metadata.deletion_requested.is_some() { "Deleting".to_string() } else { cl.status.state.to_string() },
        message: cl.status.message,
        cloudlet: if c.role.is_operator() { cl.observed.cloudlet.map(|n| n.to_string()).unwrap_or_default() } else { HIDDEN_CLOUDLET.to_string() },
        egress: cl.observed.egress,
        members,
    }
}

/// Refuses a cluster that asks to let traffic out (`outbound`) where the regulation of
/// `zone`'s region lets nothing out.
fn region_lets_something_out(s: &AppState, zone: &Object<ZoneSpec>) -> Result<(), ApiError> {
    if s.inventory.region_egress(&zone.spec.region).lets_anything_out() {
        Ok(())
    } else {
        Err(ApiError::invalid("spec.outboundAllowed", format!("the regulation of region {} lets nothing out of its cloudlets", zone.spec.region)))
    }
}

/// The cloudlet of zone `zone` a new cluster goes to: not failed (one still being checked
/// is fine: the cluster waits for it), not in maintenance, whose privacy policy lets
/// something out if the cluster asks to (`outbound`), with the most capacity. What leaves is
/// then what the cluster, the cloudlet's policy and the region's regulation all let out.
async fn place(s: &AppState, zone: &Object<ZoneSpec>, outbound: bool) -> Result<Name, ApiError> {
    crate::infra::served_here(s, zone)?;
    let cloudlets = s.inventory.cloudlets_in(&zone.metadata.name);
    if outbound {
        region_lets_something_out(s, zone)?;
    }
    let lets_out = |c: &std::sync::Arc<op_types::specs::Cloudlet>| c.spec.egress().lets_anything_out();
    if outbound && !cloudlets.is_empty() && !cloudlets.iter().any(lets_out) {
        return Err(ApiError::invalid("spec.outboundAllowed", format!("the privacy policy of zone {}'s cloudlets lets nothing out", zone.metadata.name)));
    }
    cloudlets
        .into_iter()
        .filter(|c| c.status.state != ObjState::Failed && !c.spec.maintenance && (!outbound || lets_out(c)))
        .max_by_key(|c| c.spec.capacity.vcpus)
        .map(|c| c.metadata.name.clone())
        .ok_or_else(|| ApiError::invalid("spec.edgeCloudZoneId", format!("zone {} has no cloudlet that can take a cluster now (all failed or in maintenance)", zone.metadata.name)))
}

/// Create a cluster in a zone: the organization's containers there, networked together and
/// reaching each other by instance name, with no outbound traffic unless `outboundAllowed`.
#[utoipa::path(post, path = "/op/v1/clusters", tag = "clusters", security(("bearer" = [])), request_body = CreateOwned<ClusterSpec>,
    responses((status = 201, body = ClusterView), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn create_cluster(State(s): State<AppState>, c: Caller, Body(req): Body<CreateOwned<ClusterSpec>>) -> Result<(StatusCode, Json<ClusterView>), ApiError> {
    let org = owner(&c, req.organization)?.ok_or_else(|| ApiError::invalid("organization", "a cluster belongs to an organization; name it"))?;
    req.spec.validate().map_err(|e| e.under("spec"))?;
    let zone = s
        .repo
        .get::<ZoneSpec, ()>(Kind::Zone, req.spec.edge_cloud_zone_id)
        .await?
        .ok_or_else(|| ApiError::invalid("spec.edgeCloudZoneId", "no such zone"))?;
    if zone.spec.federated.is_some() {
        return Err(ApiError::invalid("spec.edgeCloudZoneId", "clusters run on this operator's zones, not a partner's"));
    }
    let cloudlet = place(&s, &zone, req.spec.egress().lets_anything_out()).await?;
    let mut cl: Cluster = Object::new(Kind::Cluster, Some(org), req.name, req.spec);
    cl.observed.cloudlet = Some(cloudlet);
    s.repo.create(&mut cl).await?;
    tracing::info!(cluster = %cl.metadata.name, by = %c.user, "cluster created");
    Ok((StatusCode::CREATED, Json(view(&s, &c, cl, Vec::new()))))
}

/// The clusters the caller may see, each with its members and health.
#[utoipa::path(get, path = "/op/v1/clusters", tag = "clusters", security(("bearer" = [])),
    responses((status = 200, body = Vec<ClusterView>), (status = 401, body = ErrorInfo)))]
pub async fn list_clusters(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<ClusterView>>, ApiError> {
    let (all, _) = s.repo.list::<ClusterSpec, ClusterObserved>(Kind::Cluster).await?;
    let insts = crate::infra::all_instances(&s).await?;
    let mut out = Vec::new();
    for cl in all.into_iter().filter(|x| c.can_read(x.metadata.organization.as_ref())) {
        let members = insts.iter().filter(|i| i.spec.cluster == Some(cl.metadata.uid)).cloned().collect();
        out.push(view(&s, &c, cl, members));
    }
    Ok(Json(out))
}

/// One cluster's report.
#[utoipa::path(get, path = "/op/v1/clusters/{id}", tag = "clusters", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ClusterView), (status = 404, body = ErrorInfo)))]
pub async fn get_cluster(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<ClusterView>, ApiError> {
    let cl: Cluster = find(&s, &c, Kind::Cluster, &id, false).await?;
    let members = instances_of_cluster(&s, cl.metadata.uid).await?;
    Ok(Json(view(&s, &c, cl, members)))
}

/// Change a cluster: allow or deny outbound traffic (its members are connected or cut off
/// within seconds), its description. Its zone stays.
#[utoipa::path(put, path = "/op/v1/clusters/{id}", tag = "clusters", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateSpec<ClusterSpec>,
    responses((status = 200, body = ClusterView), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn update_cluster(State(s): State<AppState>, c: Caller, Path(id): Path<String>, Body(req): Body<UpdateSpec<ClusterSpec>>) -> Result<Json<ClusterView>, ApiError> {
    req.spec.validate().map_err(|e| e.under("spec"))?;
    loop {
        let mut cl: Cluster = find(&s, &c, Kind::Cluster, &id, true).await?;
        if cl.spec.edge_cloud_zone_id != req.spec.edge_cloud_zone_id {
            return Err(ApiError::invalid("spec.edgeCloudZoneId", "a cluster stays in its zone; create another cluster there"));
        }
        if req.spec.egress().lets_anything_out() && !cl.spec.egress().lets_anything_out() {
            if let Some(z) = s.inventory.zone(cl.spec.edge_cloud_zone_id) {
                region_lets_something_out(&s, &z)?;
            }
            if let Some(name) = &cl.observed.cloudlet {
                if s.inventory.cloudlet(name).is_some_and(|h| !h.spec.egress().lets_anything_out()) {
                    return Err(ApiError::invalid("spec.outboundAllowed", "the privacy policy of the cluster's cloudlet lets nothing out"));
                }
            }
        }
        cl.spec = req.spec.clone();
        match s.repo.update(&mut cl).await {
            Ok(()) => {
                let members = instances_of_cluster(&s, cl.metadata.uid).await?;
                return Ok(Json(view(&s, &c, cl, members)));
            }
            Err(op_store::RepoError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Delete a cluster once it has no instances and no load balancers; its networks go with it.
#[utoipa::path(delete, path = "/op/v1/clusters/{id}", tag = "clusters", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 202), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn delete_cluster(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let cl: Cluster = find(&s, &c, Kind::Cluster, &id, true).await?;
    let members = instances_of_cluster(&s, cl.metadata.uid).await?;
    if let Some(m) = members.first() {
        return Err(ApiError::Aborted(format!("instance {} still runs in the cluster; delete its instances first", m.metadata.name)));
    }
    let (lbs, _) = s.repo.list::<LoadBalancerSpec, ()>(Kind::LoadBalancer).await?;
    if let Some(lb) = lbs.iter().find(|l| l.spec.cluster_id == cl.metadata.uid) {
        return Err(ApiError::Aborted(format!("load balancer {} serves the cluster; delete it first", lb.metadata.name)));
    }
    crate::camara::request_deletion(&s, Kind::Cluster, cl.metadata.uid, &c.user).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Checks that an instance of organization `org` in `zone` may join cluster `id` and returns
/// the cloudlet it must run on.
pub(crate) async fn member_of(s: &AppState, c: &Caller, id: Uid, org: &Name, zone: &Object<ZoneSpec>) -> Result<Name, ApiError> {
    let field = "clusterRef";
    let cl: Cluster = find(s, c, Kind::Cluster, &id.to_string(), false).await.map_err(|_| ApiError::invalid(field, "no such cluster"))?;
    if cl.metadata.organization.as_ref() != Some(org) {
        return Err(ApiError::invalid(field, "the cluster belongs to another organization than the app"));
    }
    if cl.spec.edge_cloud_zone_id != zone.metadata.uid {
        return Err(ApiError::invalid(field, format!("the cluster is in another zone than {}", zone.metadata.name)));
    }
    // A cluster still being made is fine: its members wait for its network.
    if cl.metadata.deletion_requested.is_some() || cl.status.state == ObjState::Failed {
        return Err(ApiError::invalid(field, format!("the cluster is {}; it takes no new instances", if cl.status.state == ObjState::Failed { "failed" } else { "being deleted" })));
    }
    cl.observed.cloudlet.ok_or_else(|| ApiError::Internal("cluster without cloudlet".into()))
}

// ---------------------------------------------------------------------------------------------
// Load balancers

async fn check_lb(s: &AppState, c: &Caller, spec: &LoadBalancerSpec, org: &Name) -> Result<(), ApiError> {
    spec.validate().map_err(|e| e.under("spec"))?;
    let cl: Cluster = find(s, c, Kind::Cluster, &spec.cluster_id.to_string(), false).await.map_err(|_| ApiError::invalid("spec.clusterId", "no such cluster"))?;
    if cl.metadata.organization.as_ref() != Some(org) {
        return Err(ApiError::invalid("spec.clusterId", "the cluster belongs to another organization"));
    }
    let app = s.repo.get::<AppSpec, ()>(Kind::App, spec.app_id).await?.filter(|a| a.metadata.organization.as_ref() == Some(org));
    let app = app.ok_or_else(|| ApiError::invalid("spec.appId", "no such app in the organization"))?;
    if !app.spec.component_spec.iter().flat_map(|c| &c.network_interfaces).any(|n| n.port == spec.backend_port) {
        return Err(ApiError::invalid("spec.backendPort", format!("the app listens on no port {}", spec.backend_port)));
    }
    Ok(())
}

fn lb_view(s: &AppState, lb: LoadBalancer, members: &[AppInstance]) -> LoadBalancerView {
    let frontend = s.lbs.frontend(lb.metadata.uid);
    let backends = members
        .iter()
        .filter(|m| m.spec.cluster == Some(lb.spec.cluster_id) && m.spec.app_id == lb.spec.app_id)
        .map(|m| {
            let (active, up) = s.lbs.mesh.backend_state(m.metadata.uid).unwrap_or((0, false));
            LbBackend { app_instance_id: m.metadata.uid, name: m.metadata.name.to_string(), healthy: up && m.status.state == ObjState::Ready, active_connections: active }
        })
        .collect();
    LoadBalancerView { id: lb.metadata.uid, name: lb.metadata.name, organization: lb.metadata.organization, spec: lb.spec, frontend, backends }
}

/// Create a load balancer: a front-end port spread over the cluster's ready instances of an
/// app (least connections, health-checked).
#[utoipa::path(post, path = "/op/v1/loadbalancers", tag = "clusters", security(("bearer" = [])), request_body = CreateOwned<LoadBalancerSpec>,
    responses((status = 201, body = LoadBalancerView), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn create_lb(State(s): State<AppState>, c: Caller, Body(req): Body<CreateOwned<LoadBalancerSpec>>) -> Result<(StatusCode, Json<LoadBalancerView>), ApiError> {
    let org = owner(&c, req.organization)?.ok_or_else(|| ApiError::invalid("organization", "a load balancer belongs to an organization; name it"))?;
    check_lb(&s, &c, &req.spec, &org).await?;
    let mut lb: LoadBalancer = Object::new(Kind::LoadBalancer, Some(org), req.name, req.spec);
    lb.status.state = ObjState::Ready;
    s.repo.create(&mut lb).await?;
    sync(&s).await?;
    let members = instances_of_cluster(&s, lb.spec.cluster_id).await?;
    Ok((StatusCode::CREATED, Json(lb_view(&s, lb, &members))))
}

/// The load balancers the caller may see, with their front ends and backends' health.
#[utoipa::path(get, path = "/op/v1/loadbalancers", tag = "clusters", security(("bearer" = [])),
    responses((status = 200, body = Vec<LoadBalancerView>), (status = 401, body = ErrorInfo)))]
pub async fn list_lbs(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<LoadBalancerView>>, ApiError> {
    let (all, _) = s.repo.list::<LoadBalancerSpec, ()>(Kind::LoadBalancer).await?;
    let insts = crate::infra::all_instances(&s).await?;
    Ok(Json(all.into_iter().filter(|l| c.can_read(l.metadata.organization.as_ref())).map(|l| lb_view(&s, l, &insts)).collect()))
}

/// One load balancer's report.
#[utoipa::path(get, path = "/op/v1/loadbalancers/{id}", tag = "clusters", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = LoadBalancerView), (status = 404, body = ErrorInfo)))]
pub async fn get_lb(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<LoadBalancerView>, ApiError> {
    let lb: LoadBalancer = find(&s, &c, Kind::LoadBalancer, &id, false).await?;
    let members = instances_of_cluster(&s, lb.spec.cluster_id).await?;
    Ok(Json(lb_view(&s, lb, &members)))
}

/// Change what a load balancer serves (app, backend port, front-end port).
#[utoipa::path(put, path = "/op/v1/loadbalancers/{id}", tag = "clusters", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateSpec<LoadBalancerSpec>,
    responses((status = 200, body = LoadBalancerView), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn update_lb(State(s): State<AppState>, c: Caller, Path(id): Path<String>, Body(req): Body<UpdateSpec<LoadBalancerSpec>>) -> Result<Json<LoadBalancerView>, ApiError> {
    loop {
        let mut lb: LoadBalancer = find(&s, &c, Kind::LoadBalancer, &id, true).await?;
        let org = lb.metadata.organization.clone().ok_or_else(|| ApiError::Internal("load balancer without organization".into()))?;
        check_lb(&s, &c, &req.spec, &org).await?;
        lb.spec = req.spec.clone();
        match s.repo.update(&mut lb).await {
            Ok(()) => {
                sync(&s).await?;
                let members = instances_of_cluster(&s, lb.spec.cluster_id).await?;
                return Ok(Json(lb_view(&s, lb, &members)));
            }
            Err(op_store::RepoError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Remove a load balancer: its front-end port closes.
#[utoipa::path(delete, path = "/op/v1/loadbalancers/{id}", tag = "clusters", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn delete_lb(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let lb: LoadBalancer = find(&s, &c, Kind::LoadBalancer, &id, true).await?;
    s.repo.delete(&lb).await?;
    sync(&s).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The load balancers' data plane: one ingress point of presence per cloudlet address, and
/// the front end of each load balancer on its cloudlet's.
pub struct LoadBalancers {
    /// The routing state (least connections, backends' health).
    pub mesh: Arc<Mesh>,
    pops: tokio::sync::Mutex<HashMap<String, PopHandle>>,
    frontends: Mutex<HashMap<Uid, String>>,
    sync: tokio::sync::Mutex<()>,
}

impl Default for LoadBalancers {
    fn default() -> Self {
        // Connections wait this long for a backend when none is ready (no instance is
        // started for them: a load balancer serves what the cluster runs).
        let (mesh, _wake) = Mesh::spreading(Duration::from_secs(2));
        tokio::spawn(op_ingress::proxy::health(mesh.clone(), Duration::from_secs(1)));
        Self { mesh, pops: Default::default(), frontends: Default::default(), sync: Default::default() }
    }
}

impl LoadBalancers {
    /// Where load balancer `lb` listens (`host:port`).
    pub fn frontend(&self, lb: Uid) -> Option<String> {
        self.frontends.lock().unwrap_or_else(|e| e.into_inner()).get(&lb).cloned()
    }
}

/// Rebuilds the load balancers' table and front ends from the store.
pub async fn sync(s: &AppState) -> Result<(), ApiError> {
    let lbs_state = &s.lbs;
    let _one = lbs_state.sync.lock().await;
    let (lbs, _) = s.repo.list::<LoadBalancerSpec, ()>(Kind::LoadBalancer).await?;
    if lbs.is_empty() && lbs_state.frontends.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
        // None now and none before: nothing to read or close.
        return Ok(());
    }
    let (clusters, _) = s.repo.list::<ClusterSpec, ClusterObserved>(Kind::Cluster).await?;
    let (cloudlets, _) = s.repo.list::<CloudletSpec, CloudletObserved>(Kind::Cloudlet).await?;
    let insts = crate::infra::all_instances(s).await?;
    let mut table = Table::default();
    let mut want: Vec<(Uid, String, u16)> = Vec::new();
    for lb in &lbs {
        let Some(cl) = clusters.iter().find(|c| c.metadata.uid == lb.spec.cluster_id) else { continue };
        let host = cl.observed.cloudlet.as_ref().and_then(|n| cloudlets.iter().find(|c| &c.metadata.name == n)).map_or_else(|| "127.0.0.1".to_string(), |c| c.spec.public_host.clone());
        table.apps.push(AppRoute {
            app: lb.metadata.uid,
            label: format!("{}/{}", lb.metadata.organization.as_ref().map_or("", Name::as_str), lb.metadata.name),
            host: String::new(),
            path_prefix: None,
            protocol: ServerlessProtocol::Tcp,
            require_session: false,
            concurrency: u32::MAX,
        });
        let backends = insts
            .iter()
            .filter(|i| i.spec.cluster == Some(lb.spec.cluster_id) && i.spec.app_id == lb.spec.app_id && i.metadata.deletion_requested.is_none())
            .filter_map(|i| {
                let addr = i.observed.internal_endpoints.iter().find(|e| e.port == lb.spec.backend_port)?;
                Some(Backend { instance: i.metadata.uid, pop: host.clone(), addr: format!("{}:{}", addr.host, addr.port), ready: i.status.state == ObjState::Ready, inside: None })
            })
            .collect();
        table.backends.insert(lb.metadata.uid, backends);
        want.push((lb.metadata.uid, host, lb.spec.frontend_port.unwrap_or(0)));
    }
    lbs_state.mesh.set_table(table);
    let mut pops = lbs_state.pops.lock().await;
    let mut open = HashMap::new();
    for (lb, host, port) in &want {
        if !pops.contains_key(host) {
            let pop = PopHandle::start(lbs_state.mesh.clone(), host, host, 0).await.map_err(|e| ApiError::Unavailable(format!("load balancer ingress on {host}: {e}")))?;
            pops.insert(host.clone(), pop);
        }
        let pop = &pops[host];
        match pop.ensure_tcp_on(*lb, *port).await {
            Ok(p) => {
                open.insert(*lb, format!("{host}:{p}"));
            }
            Err(e) => tracing::warn!(load_balancer = %lb, port, error = %e, "load balancer front end cannot listen"),
        }
    }
    let keep: Vec<Uid> = want.iter().map(|w| w.0).collect();
    for pop in pops.values() {
        pop.retain_tcp(&keep);
    }
    *lbs_state.frontends.lock().unwrap_or_else(|e| e.into_inner()) = open;
    Ok(())
}

/// Keeps the load balancers in step with the store, every `every`.
pub async fn run(s: AppState, every: Duration) {
    loop {
        if let Err(e) = sync(&s).await {
            tracing::warn!(error = %e, "load balancer sync failed");
        }
        tokio::time::sleep(every).await;
    }
}
