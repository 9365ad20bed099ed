//! Operator resources: regions, zones, cloudlets, flavors, organizations, placement policies
//! and platform services. The operator writes them; developers may read regions, zones,
//! flavors and platform services (never cloudlets: they would show nodes and capacity), and
//! only their own organization. Secrets in a spec (a platform service's `adminUrl`) are never
//! returned.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use op_types::specs::{
    AppInstance, AppSpec, CloudletObserved, CloudletSpec, FlavorSpec, OrganizationSpec, PlacementPolicySpec, PlatformServiceSpec,
    RegionSpec, ZoneSpec,
};
use op_types::{Kind, Name, Object, State as ObjState, Validate};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::json::Body;
use crate::state::AppState;

/// Body of every operator create call: a name, optional labels, and the kind's spec.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest<S> {
    /// Unique name.
    pub name: Name,
    /// Optional labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The kind's spec.
    pub spec: S,
}

/// Parses a path name, answering a 400 naming `name` when it is not a valid name.
pub fn path_name(s: &str) -> Result<Name, ApiError> {
    Name::new(s).map_err(|e| ApiError::invalid("name", e.to_string()))
}

/// Checks that operator object `name` of `kind` exists, for references in specs.
async fn must_exist(state: &AppState, kind: Kind, name: &Name, field: &str) -> Result<(), ApiError> {
    let found = state.repo.get_by_name::<serde_json::Value, serde_json::Value>(kind, None, name).await?;
    found.map(|_| ()).ok_or_else(|| ApiError::invalid(field, format!("{kind} '{name}' does not exist")))
}

/// Per-kind rules: who reads, what a spec must reference, what blocks a delete.
trait InfraKind: Serialize + DeserializeOwned + Validate + Send + Sync + 'static {
    const KIND: Kind;
    /// What the kind's controller observes (`()` for kinds no controller watches).
    type Observed: Serialize + DeserializeOwned + Default + Send + Sync + 'static;
    /// Whether developers may read this kind.
    const DEVELOPERS_READ: bool;
    /// Checks references to other objects.
    fn check_refs(&self, _state: &AppState) -> impl Future<Output = Result<(), ApiError>> + Send {
        async { Ok(()) }
    }
    /// The objects of this kind a developer may see, when not all: `None` means all.
    fn developer_view(_state: &AppState) -> impl Future<Output = Result<Option<BTreeSet<Name>>, ApiError>> + Send {
        async { Ok(None) }
    }
    /// Fails with `Aborted` if something still uses `name`.
    fn check_unused(_state: &AppState, _name: &Name) -> impl Future<Output = Result<(), ApiError>> + Send {
        async { Ok(()) }
    }
    /// Removes from an object what the caller may not see, before any answer: secrets for
    /// everyone, operator-only details for developers (`operator` false).
    fn redact(_obj: &mut Object<Self, Self::Observed>, _operator: bool) {}
    /// The organization an object of this kind is a group of, when it is one (whose Manager
    /// may then create and delete it).
    fn parent(&self) -> Option<&Name> {
        None
    }
}

async fn used_by<S: DeserializeOwned>(
    state: &AppState,
    kind: Kind,
    what: &str,
    uses: impl Fn(&S) -> bool,
) -> Result<(), ApiError> {
    let (objs, _) = state.repo.list::<S, serde_json::Value>(kind).await?;
    match objs.iter().find(|o| uses(&o.spec)) {
        Some(o) => Err(ApiError::Aborted(format!("still used by {kind} '{}'; delete it first ({what})", o.metadata.name))),
        None => Ok(()),
    }
}

impl InfraKind for RegionSpec {
    type Observed = ();
    const KIND: Kind = Kind::Region;
    const DEVELOPERS_READ: bool = true;
    async fn check_unused(state: &AppState, name: &Name) -> Result<(), ApiError> {
        used_by::<ZoneSpec>(state, Kind::Zone, "zone in this region", |z| &z.region == name).await
    }
}

/// Refuses work on `zone` in a regional controller of another region: its cloudlets, and the
/// data of what runs there, are kept by that region's controller.
pub(crate) fn served_here(s: &AppState, zone: &Object<ZoneSpec>) -> Result<(), ApiError> {
    match &s.region {
        Some(here) if here != &zone.spec.region => Err(ApiError::Misdirected(format!(
            "zone {} is in region {}; this controller serves region {here}: call the global plane, or region {}'s controller",
            zone.metadata.name, zone.spec.region, zone.spec.region
        ))),
        _ => Ok(()),
    }
}

impl InfraKind for ZoneSpec {
    type Observed = ();
    const KIND: Kind = Kind::Zone;
    const DEVELOPERS_READ: bool = true;
    async fn check_refs(&self, state: &AppState) -> Result<(), ApiError> {
        must_exist(state, Kind::Region, &self.region, "spec.region").await
    }
    async fn check_unused(state: &AppState, name: &Name) -> Result<(), ApiError> {
        used_by::<CloudletSpec>(state, Kind::Cloudlet, "cloudlet in this zone", |c| &c.zone == name).await
    }
}

impl InfraKind for CloudletSpec {
    type Observed = CloudletObserved;
    const KIND: Kind = Kind::Cloudlet;
    const DEVELOPERS_READ: bool = false;
    async fn check_refs(&self, state: &AppState) -> Result<(), ApiError> {
        let zone = state.repo.get_by_name::<ZoneSpec, ()>(Kind::Zone, None, &self.zone).await?;
        served_here(state, &zone.ok_or_else(|| ApiError::invalid("spec.zone", format!("{} '{}' does not exist", Kind::Zone, self.zone)))?)?;
        for (i, f) in self.flavors.iter().enumerate() {
            let field = format!("spec.flavors[{i}]");
            let flavor = state
                .repo
                .get_by_name::<FlavorSpec, ()>(Kind::Flavor, None, f)
                .await?
                .ok_or_else(|| ApiError::invalid(&field, format!("flavor '{f}' does not exist")))?;
            if !flavor.spec.fits_in(&self.capacity) {
                return Err(ApiError::invalid(field, format!("flavor '{f}' ({}) is larger than the cloudlet's capacity ({})", flavor.spec, self.capacity)));
            }
        }
        Ok(())
    }
    async fn check_unused(state: &AppState, name: &Name) -> Result<(), ApiError> {
        let (insts, _) = state.repo.list::<_, serde_json::Value>(Kind::AppInstance).await?;
        let insts: Vec<Object<op_types::specs::AppInstanceSpec, serde_json::Value>> = insts;
        match insts.iter().find(|i| &i.spec.cloudlet == name) {
            Some(i) => Err(ApiError::Aborted(format!(
                "cloudlet still runs app instance {}; delete it first",
                i.metadata.uid
            ))),
            None => Ok(()),
        }
    }
}

impl InfraKind for FlavorSpec {
    type Observed = ();
    const KIND: Kind = Kind::Flavor;
    const DEVELOPERS_READ: bool = true;
    /// The flavors some cloudlet out of maintenance offers: a flavor no site has is no choice.
    async fn developer_view(state: &AppState) -> Result<Option<BTreeSet<Name>>, ApiError> {
        let (cls, _) = state.repo.list::<CloudletSpec, CloudletObserved>(Kind::Cloudlet).await?;
        Ok(Some(cls.into_iter().filter(|c| !c.spec.maintenance).flat_map(|c| c.spec.flavors).collect()))
    }
    async fn check_unused(state: &AppState, name: &Name) -> Result<(), ApiError> {
        used_by::<CloudletSpec>(state, Kind::Cloudlet, "cloudlet offering this flavor", |c| c.flavors.contains(name)).await
    }
}

/// Organization names double as CAMARA `appProvider`, whose pattern is
/// `^[A-Za-z][A-Za-z0-9_]{7,63}$`.
pub fn valid_org_name(name: &Name) -> Result<(), ApiError> {
    let s = name.as_str();
    let ok = s.len() >= 8 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid("name", "organization names are 8 to 64 letters, digits or '_' (CAMARA appProvider), starting with a letter"))
    }
}

impl InfraKind for PlacementPolicySpec {
    type Observed = ();
    const KIND: Kind = Kind::PlacementPolicy;
    const DEVELOPERS_READ: bool = false;
}

impl InfraKind for PlatformServiceSpec {
    type Observed = ();
    const KIND: Kind = Kind::PlatformService;
    const DEVELOPERS_READ: bool = true;
    /// The cloudlets named exist, and the admin URL works: connecting and `SELECT 1` succeed,
    /// so an operator learns of a wrong URL at once rather than from failing instances.
    async fn check_refs(&self, state: &AppState) -> Result<(), ApiError> {
        for (i, c) in self.cloudlets.iter().enumerate() {
            must_exist(state, Kind::Cloudlet, c, &format!("spec.cloudlets[{i}]")).await?;
        }
        let admin = self.admin().map_err(|e| ApiError::Invalid(e.under("spec")))?;
        op_driver::postgres::check(&admin)
            .await
            .map_err(|e| ApiError::invalid("spec.adminUrl", format!("connecting and running SELECT 1 failed: {e}")))
    }
    async fn check_unused(state: &AppState, name: &Name) -> Result<(), ApiError> {
        used_by::<AppSpec>(state, Kind::App, "app needing this service", |a| a.requirements.platform_services.contains(name)).await
    }
    /// Answers show where instances reach the service (defaults filled in), never `adminUrl`.
    fn redact(obj: &mut Object<Self>, operator: bool) {
        if let Ok(admin) = obj.spec.admin() {
            let (host, port) = obj.spec.reach(&admin);
            (obj.spec.host, obj.spec.port) = (Some(host), Some(port));
        }
        obj.spec.admin_url = None;
        if !operator {
            obj.spec.cloudlets.clear();
        }
    }
}

impl InfraKind for OrganizationSpec {
    type Observed = ();
    const KIND: Kind = Kind::Organization;
    const DEVELOPERS_READ: bool = false;
    fn parent(&self) -> Option<&Name> {
        self.parent.as_ref()
    }
    async fn check_refs(&self, state: &AppState) -> Result<(), ApiError> {
        match &self.parent {
            Some(p) => must_exist(state, Kind::Organization, p, "spec.parent").await,
            None => Ok(()),
        }
    }
    async fn check_unused(state: &AppState, name: &Name) -> Result<(), ApiError> {
        used_by::<OrganizationSpec>(state, Kind::Organization, "group of this organization", |o| o.parent.as_ref() == Some(name)).await?;
        let (apps, _) = state.repo.list::<serde_json::Value, serde_json::Value>(Kind::App).await?;
        if apps.iter().any(|a| a.metadata.organization.as_ref() == Some(name)) {
            return Err(ApiError::Aborted("the organization still has apps; delete them first".into()));
        }
        used_by::<op_types::specs::UserSpec>(state, Kind::User, "user or member of this organization", |u| {
            u.role_in(name).is_some()
        })
        .await
    }
}

async fn list<S: InfraKind>(state: &AppState, caller: &Caller) -> Result<Vec<Object<S, S::Observed>>, ApiError> {
    if !S::DEVELOPERS_READ && S::KIND != Kind::Organization {
        caller.require_operator()?;
    }
    let (objs, _) = state.repo.list::<S, S::Observed>(S::KIND).await?;
    let view = developer_view::<S>(state, caller).await?;
    Ok(objs
        .into_iter()
        .filter(|o| S::KIND != Kind::Organization || caller.can_read(Some(&o.metadata.name)))
        .filter(|o| view.as_ref().is_none_or(|v| v.contains(&o.metadata.name)))
        .map(|mut o| {
            S::redact(&mut o, caller.role.is_operator());
            o
        })
        .collect())
}

/// What of kind `S` the caller may see when not all (operators see all).
async fn developer_view<S: InfraKind>(state: &AppState, caller: &Caller) -> Result<Option<BTreeSet<Name>>, ApiError> {
    if caller.role.is_operator() {
        return Ok(None);
    }
    S::developer_view(state).await
}

async fn create<S: InfraKind>(state: &AppState, caller: &Caller, req: CreateRequest<S>) -> Result<Object<S, S::Observed>, ApiError> {
    match S::parent(&req.spec) {
        // A group of an organization: its Manager makes it.
        Some(parent) => caller.require_manager(parent)?,
        None => caller.require_operator_admin()?,
    }
    req.spec.validate().map_err(|e| e.under("spec"))?;
    if S::KIND == Kind::Organization {
        valid_org_name(&req.name)?;
    }
    req.spec.check_refs(state).await?;
    let mut obj: Object<S, S::Observed> = Object::new(S::KIND, None, req.name, req.spec);
    obj.metadata.labels = req.labels;
    if S::KIND != Kind::Cloudlet {
        obj.status.state = ObjState::Ready;
    }
    state.repo.create(&mut obj).await?;
    state.inventory.wrote(S::KIND, obj.metadata.uid, Some(&obj));
    tracing::info!(kind = %S::KIND, name = %obj.metadata.name, user = %caller.user, "created");
    S::redact(&mut obj, true);
    Ok(obj)
}

async fn get<S: InfraKind>(state: &AppState, caller: &Caller, name: &str) -> Result<Object<S, S::Observed>, ApiError> {
    let name = path_name(name)?;
    let visible = match S::KIND {
        Kind::Organization => caller.can_read(Some(&name)),
        _ => S::DEVELOPERS_READ || caller.role.is_operator(),
    };
    let not_found = || ApiError::NotFound(format!("{} '{name}' not found", S::KIND));
    if !visible {
        return Err(not_found());
    }
    if developer_view::<S>(state, caller).await?.is_some_and(|v| !v.contains(&name)) {
        return Err(not_found());
    }
    let mut obj = state.repo.get_by_name::<S, S::Observed>(S::KIND, None, &name).await?.ok_or_else(not_found)?;
    S::redact(&mut obj, caller.role.is_operator());
    Ok(obj)
}

async fn delete<S: InfraKind>(state: &AppState, caller: &Caller, name: &str) -> Result<StatusCode, ApiError> {
    let name = path_name(name)?;
    let not_found = || ApiError::NotFound(format!("{} '{name}' not found", S::KIND));
    if S::KIND == Kind::Organization && !caller.can_read(Some(&name)) {
        return Err(not_found());
    }
    let obj = state.repo.get_by_name::<S, S::Observed>(S::KIND, None, &name).await?.ok_or_else(not_found)?;
    match S::parent(&obj.spec) {
        Some(parent) => caller.require_manager(parent)?,
        None => caller.require_operator_admin()?,
    }
    S::check_unused(state, &name).await?;
    state.repo.delete(&obj).await?;
    state.inventory.wrote::<S, S::Observed>(S::KIND, obj.metadata.uid, None);
    tracing::info!(kind = %S::KIND, %name, user = %caller.user, "deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Generates the four annotated handlers of one operator resource.
macro_rules! resource {
    ($spec:ty, $obs:ty, $list:ident, $create:ident, $get:ident, $delete:ident, $path:literal, $item:literal, $tag:literal) => {
        #[doc = concat!("List ", $tag, ".")]
        #[utoipa::path(get, path = $path, tag = $tag, security(("bearer" = [])),
            responses((status = 200, body = Vec<Object<$spec, $obs>>), (status = 401, body = ErrorInfo), (status = 403, body = ErrorInfo)))]
        pub async fn $list(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<Object<$spec, $obs>>>, ApiError> {
            list::<$spec>(&s, &c).await.map(Json)
        }

        #[doc = concat!("Create one of ", $tag, " (operator only).")]
        #[utoipa::path(post, path = $path, tag = $tag, security(("bearer" = [])), request_body = CreateRequest<$spec>,
            responses((status = 201, body = Object<$spec, $obs>), (status = 400, body = ErrorInfo), (status = 401, body = ErrorInfo),
                (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
        pub async fn $create(
            State(s): State<AppState>,
            c: Caller,
            Body(req): Body<CreateRequest<$spec>>,
        ) -> Result<(StatusCode, Json<Object<$spec, $obs>>), ApiError> {
            create::<$spec>(&s, &c, req).await.map(|o| (StatusCode::CREATED, Json(o)))
        }

        #[doc = concat!("Read one of ", $tag, " by name.")]
        #[utoipa::path(get, path = $item, tag = $tag, security(("bearer" = [])), params(("name" = String, Path)),
            responses((status = 200, body = Object<$spec, $obs>), (status = 404, body = ErrorInfo)))]
        pub async fn $get(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> Result<Json<Object<$spec, $obs>>, ApiError> {
            get::<$spec>(&s, &c, &name).await.map(Json)
        }

        #[doc = concat!("Delete one of ", $tag, " by name; refused while something uses it.")]
        #[utoipa::path(delete, path = $item, tag = $tag, security(("bearer" = [])), params(("name" = String, Path)),
            responses((status = 204), (status = 404, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
        pub async fn $delete(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
            delete::<$spec>(&s, &c, &name).await
        }
    };
}

resource!(RegionSpec, (), list_regions, create_region, get_region, delete_region, "/op/v1/regions", "/op/v1/regions/{name}", "regions");
resource!(ZoneSpec, (), list_zones, create_zone, get_zone, delete_zone, "/op/v1/zones", "/op/v1/zones/{name}", "zones");
resource!(CloudletSpec, CloudletObserved, list_cloudlets, create_cloudlet, get_cloudlet, delete_cloudlet, "/op/v1/cloudlets", "/op/v1/cloudlets/{name}", "cloudlets");
resource!(
    PlacementPolicySpec,
    (),
    list_placement_policies,
    create_placement_policy,
    get_placement_policy,
    delete_placement_policy,
    "/op/v1/placementpolicies",
    "/op/v1/placementpolicies/{name}",
    "placement policies"
);
resource!(
    PlatformServiceSpec,
    (),
    list_platform_services,
    create_platform_service,
    get_platform_service,
    delete_platform_service,
    "/op/v1/platformservices",
    "/op/v1/platformservices/{name}",
    "platform services"
);
resource!(FlavorSpec, (), list_flavors, create_flavor, get_flavor, delete_flavor, "/op/v1/flavors", "/op/v1/flavors/{name}", "flavors");
resource!(
    OrganizationSpec,
    (),
    list_organizations,
    create_organization,
    get_organization,
    delete_organization,
    "/op/v1/organizations",
    "/op/v1/organizations/{name}",
    "organizations"
);

/// Body of `PUT /op/v1/placementpolicies/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    /// The new policy, replacing the old one whole.
    pub spec: PlacementPolicySpec,
}

/// Replace a placement policy (operator admins only); the next placement uses it.
#[utoipa::path(put, path = "/op/v1/placementpolicies/{name}", tag = "placement policies", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = PolicyUpdate,
    responses((status = 200, body = Object<PlacementPolicySpec>), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn update_placement_policy(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    Body(req): Body<PolicyUpdate>,
) -> Result<Json<Object<PlacementPolicySpec>>, ApiError> {
    c.require_operator_admin()?;
    let name = path_name(&name)?;
    req.spec.validate().map_err(|e| e.under("spec"))?;
    loop {
        let mut obj = s
            .repo
            .get_by_name::<PlacementPolicySpec, ()>(Kind::PlacementPolicy, None, &name)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("placement policy '{name}' not found")))?;
        obj.spec = req.spec.clone();
        match s.repo.update(&mut obj).await {
            Ok(()) => {
                s.inventory.wrote(Kind::PlacementPolicy, obj.metadata.uid, Some(&obj));
                tracing::info!(%name, user = %c.user, "placement policy replaced");
                return Ok(Json(obj));
            }
            Err(op_store::RepoError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Body of `PUT /op/v1/cloudlets/{name}/policies`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloudletPolicies {
    /// The traffic let in to instances there; none: every published port.
    #[serde(default)]
    pub security_group: Option<op_types::specs::SecurityGroup>,
    /// What may leave instances there; none: anything.
    #[serde(default)]
    pub privacy_policy: Option<op_types::specs::PrivacyPolicy>,
}

/// Replace a cloudlet's security group and privacy policy (operator admins only). Clusters
/// there follow the new privacy policy within seconds (their egress gateways are restarted
/// with it); new deployments are admitted under both. A policy that no longer lets everything
/// out is refused while an instance outside a cluster runs there (it would keep its way out).
#[utoipa::path(put, path = "/op/v1/cloudlets/{name}/policies", tag = "cloudlets", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = CloudletPolicies,
    responses((status = 200, body = Object<CloudletSpec, CloudletObserved>), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo),
        (status = 404, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn update_cloudlet_policies(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    Body(req): Body<CloudletPolicies>,
) -> Result<Json<Object<CloudletSpec, CloudletObserved>>, ApiError> {
    c.require_operator_admin()?;
    let name = path_name(&name)?;
    if let Some(sg) = &req.security_group {
        sg.validate().map_err(|e| e.under("securityGroup"))?;
    }
    if let Some(p) = &req.privacy_policy {
        p.validate().map_err(|e| e.under("privacyPolicy"))?;
    }
    let lets_all_out = req.privacy_policy.as_ref().is_none_or(|p| p.outbound_allowed);
    if !lets_all_out {
        if let Some(i) = s.inventory.instances_on(&name).iter().find(|i| i.spec.cluster.is_none()) {
            return Err(ApiError::Aborted(format!(
                "instance {} runs on cloudlet {name} outside a cluster and would keep its way out: delete it (or redeploy it into a cluster) first",
                i.metadata.name
            )));
        }
    }
    loop {
        let mut obj = s
            .repo
            .get_by_name::<CloudletSpec, CloudletObserved>(Kind::Cloudlet, None, &name)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("cloudlet '{name}' not found")))?;
        obj.spec.security_group = req.security_group.clone();
        obj.spec.privacy_policy = req.privacy_policy.clone();
        match s.repo.update(&mut obj).await {
            Ok(()) => {
                s.inventory.wrote(Kind::Cloudlet, obj.metadata.uid, Some(&obj));
                tracing::info!(cloudlet = %name, user = %c.user, "cloudlet policies replaced");
                return Ok(Json(obj));
            }
            Err(op_store::RepoError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Body of `PUT /op/v1/platformservices/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformServiceUpdate {
    /// The new spec, replacing the old one whole, except that an omitted `adminUrl` keeps the
    /// stored one.
    pub spec: PlatformServiceSpec,
}

/// Replace a platform service (operator admins only), checked as at creation; instances
/// already attached keep their databases, new ones use the new spec.
#[utoipa::path(put, path = "/op/v1/platformservices/{name}", tag = "platform services", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = PlatformServiceUpdate,
    responses((status = 200, body = Object<PlatformServiceSpec>), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn update_platform_service(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    Body(req): Body<PlatformServiceUpdate>,
) -> Result<Json<Object<PlatformServiceSpec>>, ApiError> {
    c.require_operator_admin()?;
    let name = path_name(&name)?;
    let not_found = || ApiError::NotFound(format!("platform service '{name}' not found"));
    let stored = s.repo.get_by_name::<PlatformServiceSpec, ()>(Kind::PlatformService, None, &name).await?.ok_or_else(not_found)?;
    let mut spec = req.spec;
    if spec.admin_url.is_none() {
        spec.admin_url = stored.spec.admin_url;
    }
    spec.validate().map_err(|e| e.under("spec"))?;
    spec.check_refs(&s).await?;
    loop {
        let mut obj = s.repo.get_by_name::<PlatformServiceSpec, ()>(Kind::PlatformService, None, &name).await?.ok_or_else(not_found)?;
        obj.spec = spec.clone();
        match s.repo.update(&mut obj).await {
            Ok(()) => {
                s.inventory.wrote(Kind::PlatformService, obj.metadata.uid, Some(&obj));
                tracing::info!(%name, user = %c.user, "platform service replaced");
                PlatformServiceSpec::redact(&mut obj, true);
                return Ok(Json(obj));
            }
            Err(op_store::RepoError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Every app instance (any organization), for capacity accounting.
pub async fn all_instances(state: &AppState) -> Result<Vec<AppInstance>, ApiError> {
    Ok(state.repo.list(Kind::AppInstance).await?.0)
}

/// The flavors offered where: per zone (what a developer can deploy there: the flavors some
/// cloudlet of the zone out of maintenance offers) and per cloudlet (the operator's view).
async fn offered_flavors(state: &AppState, offered: impl Fn(&Object<CloudletSpec, CloudletObserved>) -> bool) -> Result<Vec<Object<FlavorSpec>>, ApiError> {
    let (cls, _) = state.repo.list::<CloudletSpec, CloudletObserved>(Kind::Cloudlet).await?;
    let names: BTreeSet<Name> = cls.into_iter().filter(|c| offered(c)).flat_map(|c| c.spec.flavors).collect();
    let (flavors, _) = state.repo.list::<FlavorSpec, ()>(Kind::Flavor).await?;
    let mut out: Vec<Object<FlavorSpec>> = flavors.into_iter().filter(|f| names.contains(&f.metadata.name)).collect();
    out.sort_by_key(|f| (f.spec.vcpus, f.spec.memory_mb, f.spec.gpus, f.spec.disk_gb, f.metadata.name.clone()));
    Ok(out)
}

/// The flavors one can deploy in a zone now: a flavor no cloudlet of the zone offers (out of
/// maintenance) is not a choice there.
#[utoipa::path(get, path = "/op/v1/zones/{name}/flavors", tag = "zones", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 200, body = Vec<Object<FlavorSpec>>), (status = 401, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn zone_flavors(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> Result<Json<Vec<Object<FlavorSpec>>>, ApiError> {
    let zone = get::<ZoneSpec>(&s, &c, &name).await?;
    offered_flavors(&s, |cl| cl.spec.zone == zone.metadata.name && !cl.spec.maintenance).await.map(Json)
}

/// The flavors a cloudlet offers (operator only).
#[utoipa::path(get, path = "/op/v1/cloudlets/{name}/flavors", tag = "cloudlets", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 200, body = Vec<Object<FlavorSpec>>), (status = 401, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn cloudlet_flavors(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> Result<Json<Vec<Object<FlavorSpec>>>, ApiError> {
    c.require_operator()?;
    let cloudlet = get::<CloudletSpec>(&s, &c, &name).await?;
    offered_flavors(&s, |cl| cl.metadata.uid == cloudlet.metadata.uid).await.map(Json)
}
