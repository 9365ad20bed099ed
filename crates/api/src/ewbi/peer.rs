//! The originating role: federating with a partner whose EWBI we call, and deploying on its
//! zones for our developers.
//!
//! [`PeerReconciler`] creates the federation (the creation request is the same on every try,
//! so a partner that already made it answers with the same context), subscribes to the zones
//! the operator accepts, and keeps one ordinary [`ZoneSpec`] per partner zone, marked
//! [`FederatedZone`]. A developer deploys there through the unchanged CAMARA API;
//! [`admit_federated`] records the instance, and [`RemoteInstanceReconciler`] takes it
//! through the partner's API one recorded step at a time (image file, artefact, onboarding,
//! installation, status), so a restart resumes where it stopped and installs once. What crosses
//! is federated: ids derived per partner, never a developer's organization, app or user name.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use op_controller::{Action, ReconcileError, Reconciler};
use op_store::informer::Raw;
use op_types::ewbi::objects::{
    federated_id, federated_uuid, FederatedPlacement, FederatedProgress, FederatedZone, FederationPeerObserved, FederationPeerSpec, InstanceInsights, OfferedZoneView, PartnerFlavour,
};
use op_types::ewbi::wire;
use op_types::specs::{App, AppInstance, AppInstanceSpec, AppSpec, CloudletSpec, Endpoint, GeoPoint, InstanceObserved, PlacementNote, PlatformType, RegionSpec, ServiceArea, ZoneSpec};
use op_types::{Kind, Name, Object, State, Uid};
use reqwest::Method;
use serde::de::IgnoredAny;
use serde_json::{json, Value};

use super::client::{ClientError, PeerClient};
use crate::error::ApiError;
use crate::state::AppState;

/// A peer as stored.
pub type Peer = Object<FederationPeerSpec, FederationPeerObserved>;

/// Clients per peer (uid and registration: a changed registration gets a new client, a
/// changed status keeps the client and its token).
#[derive(Clone, Default)]
pub struct Clients(Arc<Mutex<ClientMap>>);

type ClientMap = HashMap<(Uid, String), Arc<PeerClient>>;

impl Clients {
    /// The client of `peer`.
    pub fn of(&self, peer: &Peer) -> Result<Arc<PeerClient>, ReconcileError> {
        let key = (peer.metadata.uid, serde_json::to_string(&peer.spec).unwrap_or_default());
        let mut m = self.0.lock().map_err(|_| ReconcileError::Service("client cache poisoned".into()))?;
        if let Some(c) = m.get(&key) {
            return Ok(c.clone());
        }
        let c = Arc::new(PeerClient::new(&peer.spec).map_err(remote)?);
        m.retain(|(u, _), _| *u != peer.metadata.uid);
        m.insert(key, c.clone());
        Ok(c)
    }
}

fn remote(e: ClientError) -> ReconcileError {
    ReconcileError::Service(e.to_string())
}

/// The key ids for `peer` are derived with: one per partner, so two partners cannot link the
/// same developer.
fn peer_key(s: &AppState, peer: &Name) -> Vec<u8> {
    op_types::secret::derive_hex_str(&s.ewbi.secret, "ewbi-peer/", peer.as_str()).into_bytes()
}

/// The callback URL of `kind` for a peer.
fn callback_url(s: &AppState, peer: &Peer, kind: &str) -> String {
    format!("{}/ewbi/callbacks/{}/{kind}", s.ewbi.public_url, peer.observed.callback_id.as_deref().unwrap_or("none"))
}

/// The local zone name of a partner zone.
fn zone_name(peer: &Name, zone_id: &str) -> Result<Name, ReconcileError> {
    let clean: String = zone_id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let n = format!("{peer}-{clean}");
    let n: String = n.chars().take(63).collect();
    Name::new(n.trim_end_matches(['-', '_'])).map_err(|e| ReconcileError::Dangling(format!("zone name: {e}")))
}

/// Federates with peers and keeps their zones.
pub struct PeerReconciler {
    state: AppState,
    clients: Clients,
}

impl PeerReconciler {
    /// A reconciler over `state`.
    pub fn new(state: AppState, clients: Clients) -> Self {
        Self { state, clients }
    }

    async fn save(&self, p: &mut Peer) -> Result<(), ReconcileError> {
        match self.state.repo.update(p).await {
            Ok(()) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_federation(&self, p: &mut Peer, c: &PeerClient) -> Result<(), ReconcileError> {
        let s = &self.state;
        let plmn = s.uni.plmn();
        let status = callback_url(s, p, "partner-status");
        let body = json!({
            "origOPFederationId": p.spec.federation_id,
            "origOPCountryCode": s.ewbi.country_code,
            "origOPMobileNetworkCodes": {"mcc": plmn.get(..3).unwrap_or_default(), "mncs": [plmn.get(3..).unwrap_or_default()]},
            // The same on every try: a partner that made the federation already answers with it.
            "initialDate": p.metadata.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "federationNotificationDest": status,
            "partnerStatusLink": status,
            "x-opExtensions": super::partner::EXTENSIONS,
        });
        let r = c.call(Method::POST, "/partner", Some(&body)).await.map_err(remote)?;
        let resp: wire::FederationResponseData =
            serde_json::from_value(r.body.unwrap_or(Value::Null)).map_err(|e| ReconcileError::Service(format!("the partner's CreateFederation answer: {e}")))?;
        let ctx = resp.federation_context_id.clone().ok_or_else(|| ReconcileError::Service("the partner sent no federationContextId".into()))?;
        p.observed.context_id = Some(ctx);
        p.observed.partner_federation_id = Some(resp.partner_op_federation_id.clone());
        p.observed.extensions = resp.x_op_extensions.clone().unwrap_or_default();
        p.observed.network_codes = resp
            .partner_op_mobile_network_codes
            .as_ref()
            .map(|m| m.mncs.iter().flatten().map(|n| format!("{}{n}", m.mcc.clone().unwrap_or_default())).collect())
            .unwrap_or_default();
        p.observed.offered_zones = offered(resp.offered_availability_zones.as_deref().unwrap_or_default());
        p.status.state = State::Creating;
        p.status.message = Some("federated; subscribing to zones".into());
        tracing::info!(peer = %p.metadata.name, context = ?p.observed.context_id, "federation created with partner");
        self.save(p).await
    }

    /// Our copy of partner zone `id`.
    async fn ensure_zone(&self, p: &Peer, id: &str) -> Result<Uid, ReconcileError> {
        let s = &self.state;
        let name = zone_name(&p.metadata.name, id)?;
        if let Some(z) = s.repo.get_by_name::<ZoneSpec, ()>(Kind::Zone, None, &name).await? {
            return Ok(z.metadata.uid);
        }
        super::ensure_global(s, Kind::Region, &p.spec.region, RegionSpec { description: Some(format!("zones of partner {}", p.metadata.name)), ..Default::default() }).await?;
        let view = p.observed.offered_zones.get(id).cloned().unwrap_or_default();
        let (lat, lon) = wire::check_geolocation(&view.geolocation, "geolocation").unwrap_or((0.0, 0.0));
        let spec = ZoneSpec {
            region: p.spec.region.clone(),
            location: GeoPoint { latitude: lat, longitude: lon },
            service_area: ServiceArea::default(),
            dnai: None,
            federated: Some(FederatedZone { peer: p.metadata.name.clone(), zone_id: id.to_string() }),
        };
        let mut z: Object<ZoneSpec> = Object::new(Kind::Zone, None, name, spec);
        z.metadata.labels.insert("op.federation.peer".into(), p.metadata.name.to_string());
        // A status the partner sent before we made our copy (right after its `ADD`) applies.
        match p.observed.zone_status.get(id).map(String::as_str) {
            None | Some("AVAILABLE") => {
                z.status.state = State::Ready;
                z.status.message = Some(view.geography_details);
            }
            Some(other) => {
                z.status.state = State::Failed;
                z.status.message = Some(format!("the partner reports the zone {other}"));
            }
        }
        s.repo.create(&mut z).await?;
        Ok(z.metadata.uid)
    }

    async fn subscribe(&self, p: &mut Peer, c: &PeerClient) -> Result<(), ReconcileError> {
        let ctx = p.observed.context_id.clone().unwrap_or_default();
        let wanted: Vec<String> = p
            .observed
            .offered_zones
            .keys()
            .filter(|z| p.spec.accept_zones.is_empty() || p.spec.accept_zones.contains(z))
            .filter(|z| !p.observed.subscribed.contains_key(*z))
            .cloned()
            .collect();
        if !wanted.is_empty() {
            let body = json!({"acceptedAvailabilityZones": wanted, "availZoneNotifLink": callback_url(&self.state, p, "zone-resource")});
            let r = c.call(Method::POST, &format!("/{ctx}/zones"), Some(&body)).await.map_err(remote)?;
            let resp: wire::ZoneRegistrationResponseData =
                serde_json::from_value(r.body.unwrap_or(Value::Null)).map_err(|e| ReconcileError::Service(format!("the partner's ZoneSubscribe answer: {e}")))?;
            for z in resp.accepted_zone_resource_info {
                p.observed.flavours.insert(z.zone_id.clone(), flavours(&z.flavours_supported));
            }
            for id in &wanted {
                let uid = self.ensure_zone(p, id).await?;
                p.observed.subscribed.insert(id.clone(), uid);
            }
        }
        p.status.state = State::Ready;
        p.status.message = Some(format!("{} partner zone(s) subscribed", p.observed.subscribed.len()));
        self.save(p).await
    }

    /// Apps deleted here are deleted at the partner: deboarded from each zone, then deleted
    /// (the official revision has no DeleteApp; deboarding is then all there is).
    async fn forget_deleted_apps(&self, p: &mut Peer, c: &PeerClient) -> Result<(), ReconcileError> {
        let s = &self.state;
        let ctx = p.observed.context_id.clone().unwrap_or_default();
        let mut gone = Vec::new();
        for (app, zones) in &p.observed.onboarded {
            if s.repo.get::<AppSpec, ()>(Kind::App, *app).await?.is_some() {
                continue;
            }
            let app_id = federated_id(&peer_key(s, &p.metadata.name), 'a', "app/", *app);
            for z in zones {
                match c.call(Method::DELETE, &format!("/{ctx}/application/onboarding/app/{app_id}/zone/{z}"), None).await {
                    Ok(_) => {}
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => return Err(remote(e)),
                }
            }
            match c.call(Method::DELETE, &format!("/{ctx}/application/onboarding/app/{app_id}"), None).await {
                Ok(_) => {}
                Err(e) if matches!(e.status(), Some(404) | Some(405) | Some(501)) => {}
                Err(e) => return Err(remote(e)),
            }
            gone.push(*app);
        }
        if !gone.is_empty() {
            for a in gone {
                p.observed.onboarded.remove(&a);
            }
            self.save(p).await?;
        }
        Ok(())
    }

    async fn delete(&self, mut p: Peer, c: Option<Arc<PeerClient>>) -> Result<Action, ReconcileError> {
        let s = &self.state;
        if let (Some(ctx), Some(c)) = (p.observed.context_id.clone(), c) {
            match c.call(Method::DELETE, &format!("/{ctx}/partner"), None).await {
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(remote(e)),
            }
            p.observed.context_id = None;
            self.save(&mut p).await?;
        }
        let (zones, _) = s.repo.list::<ZoneSpec, ()>(Kind::Zone).await?;
        for z in zones.iter().filter(|z| z.spec.federated.as_ref().is_some_and(|f| f.peer == p.metadata.name)) {
            s.repo.delete(z).await?;
        }
        s.repo.delete(&p).await?;
        tracing::info!(peer = %p.metadata.name, "federation with partner ended");
        Ok(Action::AwaitChange)
    }
}

fn offered(zones: &[wire::ZoneDetails]) -> BTreeMap<String, OfferedZoneView> {
    zones.iter().map(|z| (z.zone_id.clone(), OfferedZoneView { geolocation: z.geolocation.clone(), geography_details: z.geography_details.clone() })).collect()
}

fn flavours(f: &[wire::Flavour]) -> Vec<PartnerFlavour> {
    f.iter().map(|f| PartnerFlavour { flavour_id: f.flavour_id.clone(), vcpu_milli: f.num_cpu.millis(), memory_mb: u64::from(f.memory_size), disk_gb: f.storage_size }).collect()
}

#[async_trait]
impl Reconciler for PeerReconciler {
    fn kind(&self) -> Kind {
        Kind::FederationPeer
    }

    // A multi-step flow that writes as it goes and comes back at once: it reads its latest
    // from the store, which the runner's copy would lag after its own writes.
    async fn reconcile(&self, uid: Uid, _stored: Option<&Raw>) -> Result<Action, ReconcileError> {
        let s = &self.state;
        let Some(mut p) = s.repo.get::<FederationPeerSpec, FederationPeerObserved>(Kind::FederationPeer, uid).await? else { return Ok(Action::AwaitChange) };
        if p.observed.callback_id.is_none() {
            p.observed.callback_id = Some(uuid::Uuid::new_v4().simple().to_string());
            self.save(&mut p).await?;
            return Ok(Action::Requeue(Duration::ZERO));
        }
        let client = self.clients.of(&p);
        if p.metadata.deletion_requested.is_some() {
            return self.delete(p, client.ok()).await;
        }
        let c = client?;
        let result = async {
            if p.observed.context_id.is_none() {
                self.create_federation(&mut p, &c).await?;
            }
            self.subscribe(&mut p, &c).await?;
            self.forget_deleted_apps(&mut p, &c).await?;
            // Heal: the partner's zone list as it is now.
            let ctx = p.observed.context_id.clone().unwrap_or_default();
            let r = c.call(Method::GET, &format!("/{ctx}/partner"), None).await.map_err(remote)?;
            if let Some(d) = r.body.and_then(|b| serde_json::from_value::<wire::FederationDetails>(b).ok()) {
                let now = offered(d.offered_availability_zones.as_deref().unwrap_or_default());
                if now != p.observed.offered_zones {
                    p.observed.offered_zones = now;
                    self.save(&mut p).await?;
                }
            }
            Ok::<_, ReconcileError>(())
        }
        .await;
        match result {
            Ok(()) => Ok(Action::Requeue(Duration::from_secs(10))),
            Err(e) => {
                if let Ok(Some(mut fresh)) = s.repo.get::<FederationPeerSpec, FederationPeerObserved>(Kind::FederationPeer, uid).await {
                    let msg = format!("partner unreachable or refusing: {e}; retrying");
                    if fresh.status.message.as_deref() != Some(msg.as_str()) {
                        fresh.status.message = Some(msg);
                        if fresh.status.state != State::Ready {
                            fresh.status.state = State::Failed;
                        }
                        let _ = s.repo.update(&mut fresh).await;
                    }
                }
                Err(e)
            }
        }
    }

    fn error_policy(&self, _err: &ReconcileError, failures: u32) -> Duration {
        op_controller::backoff(failures)
    }
}

/// The smallest partner flavour that fits `app` (or the one it names).
fn pick_flavour<'a>(app: &App, offered: &'a [PartnerFlavour]) -> Option<&'a PartnerFlavour> {
    let need = app.spec.needs();
    let mut fitting: Vec<&PartnerFlavour> = offered
        .iter()
        .filter(|f| match &app.spec.flavor {
            Some(n) => f.flavour_id == n.as_str(),
            None => f.vcpu_milli >= u64::from(need.vcpus) * 1000 && f.memory_mb >= need.memory_mb,
        })
        .collect();
    fitting.sort_by_key(|f| (f.vcpu_milli, f.memory_mb, f.flavour_id.clone()));
    fitting.first().copied()
}

/// Admits an instance of `app` on partner zone `zone`: the partner's flavour that fits, and
/// the instance stored for [`RemoteInstanceReconciler`]. The partner's own admission decides
/// the rest.
pub async fn admit_federated(s: &AppState, app: &App, zone: &Object<ZoneSpec>, fz: &FederatedZone, name: Name, by: &str) -> Result<AppInstance, ApiError> {
    let org = app.metadata.organization.clone().ok_or_else(|| ApiError::Internal("app without organization".into()))?;
    let peer = s
        .repo
        .get_by_name::<FederationPeerSpec, FederationPeerObserved>(Kind::FederationPeer, None, &fz.peer)
        .await?
        .filter(|p| p.metadata.deletion_requested.is_none() && p.observed.subscribed.contains_key(&fz.zone_id))
        .ok_or_else(|| ApiError::invalid("edgeCloudZoneId", format!("zone {} is a partner's and the federation is not active; try another zone", zone.metadata.name)))?;
    if zone.status.state != State::Ready {
        return Err(ApiError::invalid("edgeCloudZoneId", format!("partner zone {} is not available now ({}); try another zone", zone.metadata.name, zone.status.message.clone().unwrap_or_default())));
    }
    let offered = peer.observed.flavours.get(&fz.zone_id).map(Vec::as_slice).unwrap_or_default();
    let f = pick_flavour(app, offered).ok_or_else(|| {
        let field = if app.spec.flavor.is_some() { "flavor" } else { "requiredResources" };
        ApiError::invalid(field, format!("no flavour of partner zone {} fits the app", zone.metadata.name))
    })?;
    let flavor = Name::new(f.flavour_id.clone()).or_else(|_| Name::new("federated")).map_err(|e| ApiError::Internal(e.to_string()))?;
    let cloudlet = Name::new(format!("fed-{}", fz.peer)).map_err(|e| ApiError::Internal(e.to_string()))?;
    let spec = AppInstanceSpec {
        app_id: app.metadata.uid,
        edge_cloud_zone_id: zone.metadata.uid,
        cloudlet,
        flavor,
        federated: Some(FederatedPlacement { peer: fz.peer.clone(), zone_id: fz.zone_id.clone(), flavour_id: f.flavour_id.clone() }),
        cluster: None,
        app_revision: Some(app.metadata.revision),
    };
    let mut inst: AppInstance = Object::new(Kind::AppInstance, Some(org), name, spec);
    let obs = InstanceObserved {
        placement: Some(PlacementNote {
            summary: format!("on partner {}'s zone {} with its flavour {}: the partner's placement picks the edge", fz.peer, fz.zone_id, f.flavour_id),
            edges: vec![],
        }),
        ..Default::default()
    };
    let mut stored: Object<AppInstanceSpec, InstanceObserved> = Object { metadata: inst.metadata.clone(), spec: inst.spec.clone(), status: inst.status.clone(), observed: obs };
    s.repo.create(&mut stored).await?;
    inst.metadata = stored.metadata;
    tracing::info!(instance = %inst.metadata.uid, peer = %fz.peer, by, "federated instance accepted");
    Ok(inst)
}

/// A federated instance as stored.
type Remote = Object<AppInstanceSpec, InstanceObserved>;

/// Deploys instances on partners' zones through their EWBI.
pub struct RemoteInstanceReconciler {
    state: AppState,
    clients: Clients,
}

impl RemoteInstanceReconciler {
    /// A reconciler over `state`.
    pub fn new(state: AppState, clients: Clients) -> Self {
        Self { state, clients }
    }
}

/// How often a Ready instance on a partner's zone is read back (state, statistics,
/// relocations) when no callback came.
const READY_POLL: Duration = Duration::from_secs(5);
/// How long an image upload may take.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// The ids an app and its instance have at a partner.
struct Ids {
    provider: String,
    app: String,
    file: String,
    artefact: String,
    component: String,
    instance: String,
    /// The key the peer's ids derive from.
    key: Vec<u8>,
}

fn ids(s: &AppState, peer: &Name, app: &Object<AppSpec>, inst: Uid) -> Ids {
    let k = peer_key(s, peer);
    let org = app.metadata.organization.as_ref().map(|o| o.to_string()).unwrap_or_default();
    let provider_hex = op_types::secret::derive_hex_str(&k, "provider/", &org);
    Ids {
        provider: format!("p{}", &provider_hex[..31]),
        app: federated_id(&k, 'a', "app/", app.metadata.uid),
        file: federated_uuid(&k, "file/", app.metadata.uid),
        artefact: federated_uuid(&k, "artefact/", app.metadata.uid),
        component: federated_id(&k, 'c', "component/", app.metadata.uid),
        instance: federated_id(&k, 'i', "instance/", inst),
        key: k,
    }
}

/// The federated id of interface `iface` of an app (8 to 32 characters, as the spec wants).
fn interface_id(k: &[u8], app: Uid, iface: &str) -> String {
    let h = op_types::secret::derive_hex_str(k, &format!("interface/{app}/"), iface);
    format!("f{}", &h[..15])
}

/// A version the spec's pattern accepts (`major.minor.patch`, two digits each).
fn spec_version(v: &str) -> String {
    if wire::check_version(v, "version").is_ok() {
        v.to_string()
    } else {
        "1.0".into()
    }
}

impl RemoteInstanceReconciler {
    async fn peer(&self, name: &Name) -> Result<Peer, ReconcileError> {
        self.state
            .repo
            .get_by_name::<FederationPeerSpec, FederationPeerObserved>(Kind::FederationPeer, None, name)
            .await?
            .ok_or_else(|| ReconcileError::Dangling(format!("federation peer '{name}' no longer exists")))
    }

    /// Records on the peer that `app` is onboarded on `zone` there (retrying a lost race with
    /// the peer's own reconciler).
    async fn mark_onboarded(&self, peer: &Name, app: Uid, zone: &str) -> Result<(), ReconcileError> {
        for _ in 0..8 {
            let mut p = self.peer(peer).await?;
            let zones = p.observed.onboarded.entry(app).or_default();
            if zones.iter().any(|z| z == zone) {
                return Ok(());
            }
            zones.push(zone.to_string());
            match self.state.repo.update(&mut p).await {
                Ok(()) => return Ok(()),
                Err(op_store::RepoError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ReconcileError::Service("the peer changed too often; retrying".into()))
    }

    async fn save(&self, inst: &mut Remote) -> Result<(), ReconcileError> {
        self.state.repo.update(inst).await.map_err(Into::into)
    }

    /// The app's image as a `docker save` archive, from a local runtime that has it.
    async fn export(&self, image: &str) -> Result<Vec<u8>, ReconcileError> {
        let (cloudlets, _) = self.state.repo.list::<CloudletSpec, Value>(Kind::Cloudlet).await?;
        let mut last = None;
        for cl in cloudlets.iter().filter(|c| c.spec.platform_type == PlatformType::Docker) {
            let d = self.state.drivers.for_cloudlet(&cl.spec)?;
            match d.export_image(image).await {
                Ok(bytes) => return Ok(bytes),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| ReconcileError::Dangling("no local runtime holds the app's image".into()), Into::into))
    }

    async fn upload_file(&self, c: &PeerClient, ctx: &str, ids: &Ids, app: &Object<AppSpec>) -> Result<(), ReconcileError> {
        let image = &app.spec.app_repo.image_path;
        let tar = self.export(image).await?;
        let up = json!({
            "fileId": ids.file,
            "appProviderId": ids.provider,
            "fileName": format!("{}.tar", ids.app),
            "fileVersionInfo": spec_version(&app.spec.version),
            "fileType": "DOCKER",
            "imgOSType": {"architecture": "x86_64", "distribution": "OTHER", "version": "OTHER", "license": "NOT_SPECIFIED"},
            "imgInsSetArch": "ISA_X86_64",
            "repoType": "UPLOAD",
        });
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in wire::form_fields(&up).map_err(|e| ReconcileError::Service(e.to_string()))? {
            form = form.text(k, v);
        }
        let part = reqwest::multipart::Part::bytes(tar).file_name("image.tar").mime_str("application/x-tar").map_err(|e| ReconcileError::Service(e.to_string()))?;
        form = form.part("file", part);
        match c.upload(&format!("/{ctx}/files"), form, UPLOAD_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(409) => Ok(()),
            Err(e) => Err(remote(e)),
        }
    }

    async fn upload_artefact(&self, c: &PeerClient, ctx: &str, ids: &Ids, app: &Object<AppSpec>) -> Result<(), ReconcileError> {
        let k = &ids.key;
        let need = app.spec.needs();
        let interfaces: Vec<Value> = app
            .spec
            .component_spec
            .iter()
            .flat_map(|c| c.network_interfaces.iter())
            .map(|n| {
                let id = interface_id(k, app.metadata.uid, &n.interface_id);
                json!({
                    "interfaceId": id,
                    "commProtocol": if n.protocol == op_types::specs::Protocol::UDP { "UDP" } else { "TCP" },
                    "commPort": n.port,
                    "visibilityType": if n.visibility_type == op_types::specs::Visibility::VisibilityExternal { "VISIBILITY_EXTERNAL" } else { "VISIBILITY_INTERNAL" },
                    "network": "default",
                    "InterfaceName": format!("i{}", &id[1..4]),
                    "interfaceName": format!("i{}", &id[1..4]),
                })
            })
            .collect();
        let component = json!([{
            "componentName": ids.component,
            "images": [ids.file],
            "numOfInstances": 1,
            "restartPolicy": "RESTART_POLICY_ALWAYS",
            "exposedInterfaces": interfaces,
            "computeResourceProfile": {"cpuArchType": "ISA_X86_64", "numCPU": need.vcpus.max(1), "memory": need.memory_mb.max(1), "diskStorage": 0},
            "networkResourceProfile": [],
        }]);
        let up = json!({
            "artefactId": ids.artefact,
            "appProviderId": ids.provider,
            "artefactName": ids.app,
            "artefactVersionInfo": spec_version(&app.spec.version),
            "artefactVirtType": "CONTAINER_TYPE",
            "artefactDescriptorType": "COMPONENTSPEC",
            "repoType": "UPLOAD",
            "componentSpec": component,
        });
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in wire::form_fields(&up).map_err(|e| ReconcileError::Service(e.to_string()))? {
            form = form.text(k, v);
        }
        match c.upload(&format!("/{ctx}/artefact"), form, Duration::from_secs(30)).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(409) => Ok(()),
            Err(e) => Err(remote(e)),
        }
    }

    async fn onboard(&self, c: &PeerClient, ctx: &str, ids: &Ids, app: &Object<AppSpec>, zone: &str, peer: &Peer) -> Result<(), ReconcileError> {
        let latency = match app.spec.requirements.max_latency_ms {
            Some(l) if l <= 30.0 => "ULTRALOW",
            Some(l) if l <= 50.0 => "LOW",
            _ => "NONE",
        };
        let token = op_types::secret::derive_hex_str(&peer_key(&self.state, &peer.metadata.name), "access-token/", &ids.app);
        let body = json!({
            "appId": ids.app,
            "appProviderId": ids.provider,
            "appDeploymentZones": [{"countryCode": self.state.ewbi.country_code, "zoneInfo": zone}],
            "appMetaData": {
                "appName": ids.app,
                "version": spec_version(&app.spec.version),
                "accessToken": format!("t{}", &token[..40]),
                "mobilitySupport": app.spec.requirements.mobility_policy == op_types::specs::MobilityPolicy::MoveWithPriorNotice,
            },
            "appQoSProfile": {"latencyConstraints": latency},
            "appComponentSpecs": [{"serviceNameNB": ids.component, "serviceNameEW": ids.component, "componentName": ids.component, "componentname": ids.component, "artefactId": ids.artefact}],
            "appStatusCallbackLink": callback_url(&self.state, peer, "app-status"),
        });
        match c.call(Method::POST, &format!("/{ctx}/application/onboarding"), Some(&body)).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(409) => {
                // Onboarded before (another instance, or our earlier try): make sure this zone is in.
                match c.call(Method::POST, &format!("/{ctx}/application/onboarding/app/{}/additionalZones", ids.app), Some(&json!([zone]))).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(remote(e)),
                }
            }
            Err(e) => Err(remote(e)),
        }
    }

    async fn install(&self, c: &PeerClient, ctx: &str, ids: &Ids, app: &Object<AppSpec>, fed: &FederatedPlacement, peer: &Peer) -> Result<String, ReconcileError> {
        let body = json!({
            "appId": ids.app,
            "appVersion": spec_version(&app.spec.version),
            "appProviderId": ids.provider,
            "zoneInfo": {"zoneId": fed.zone_id, "flavourId": fed.flavour_id},
            "appInstCallbackLink": callback_url(&self.state, peer, "instance-status"),
            "appInstanceId": ids.instance,
        });
        let r = c.call(Method::POST, &format!("/{ctx}/application/lcm"), Some(&body)).await.map_err(remote)?;
        Ok(r.body.as_ref().and_then(|b| b.get("appInstIdentifier")).and_then(Value::as_str).unwrap_or(&ids.instance).to_string())
    }

    /// The partner's view of the instance, as our instance's status, endpoints, statistics and
    /// relocations.
    async fn poll(&self, c: &PeerClient, ctx: &str, ids: &Ids, fed: &FederatedPlacement, inst: &mut Remote, app: &Object<AppSpec>) -> Result<Action, ReconcileError> {
        let k = &ids.key;
        let remote_id = inst.observed.federation.as_ref().and_then(|f| f.instance_id.clone()).unwrap_or_default();
        let r = c.call(Method::GET, &format!("/{ctx}/application/lcm/app/{}/instance/{remote_id}/zone/{}", ids.app, fed.zone_id), None).await;
        let body = match r {
            Ok(r) => r.body.unwrap_or(Value::Null),
            Err(e) if e.status() == Some(404) => {
                inst.status.state = State::Failed;
                inst.status.message = Some("the partner no longer has the instance".into());
                self.save(inst).await?;
                return Ok(Action::Requeue(Duration::from_secs(10)));
            }
            Err(e) => return Err(remote(e)),
        };
        let d: wire::InstanceStatusInfo = serde_json::from_value(body).map_err(|e| ReconcileError::Service(format!("the partner's instance details: {e}")))?;
        let state = d.app_instance_state.map(|s| serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()).unwrap_or_default();
        let before = (inst.status.clone(), inst.observed.endpoints.clone(), inst.observed.federation.clone());
        let endpoints = endpoints_of(app, k, d.access_point_info.as_deref().unwrap_or_default());
        let insights = if state == "READY" { self.insights(c, ctx, ids, fed, &remote_id).await } else { None };
        let (st, msg, again) = match state.as_str() {
            "READY" if !endpoints.is_empty() || app.spec.external_interfaces().next().is_none() => (State::Ready, "running on the partner's zone".to_string(), READY_POLL),
            "READY" | "PENDING" | "" => (State::Creating, "the partner is starting the instance".to_string(), Duration::from_millis(250)),
            "FAILED" => (State::Failed, "the partner reports the instance failed".to_string(), Duration::from_secs(5)),
            _ => (State::Deleting, "the partner is terminating the instance".to_string(), Duration::from_secs(2)),
        };
        inst.status.state = st;
        inst.status.message = Some(msg);
        inst.observed.endpoints = endpoints;
        if let Some(f) = inst.observed.federation.as_mut() {
            f.remote_state = Some(state);
            if let Some(i) = insights {
                if i.relocations.len() > f.relocations.len() {
                    tracing::info!(instance = %inst.metadata.uid, peer = %fed.peer, relocations = i.relocations.len(), "the partner relocated the instance");
                }
                f.statistics = Some(i.statistics);
                // The developer's own interface ids, as for the endpoints.
                f.relocations = i
                    .relocations
                    .into_iter()
                    .map(|mut r| {
                        if let Some(n) = app.spec.component_spec.iter().flat_map(|c| c.network_interfaces.iter()).find(|n| interface_id(k, app.metadata.uid, &n.interface_id) == r.interface_id) {
                            r.interface_id = n.interface_id.clone();
                        }
                        r
                    })
                    .collect();
            }
        }
        if (inst.status.clone(), inst.observed.endpoints.clone(), inst.observed.federation.clone()) != before {
            self.save(inst).await?;
        }
        Ok(Action::Requeue(again))
    }

    /// The partner's statistics and relocations of the instance (our `x-op` extension; a
    /// partner without it answers 404 and we go on without).
    async fn insights(&self, c: &PeerClient, ctx: &str, ids: &Ids, fed: &FederatedPlacement, remote_id: &str) -> Option<InstanceInsights> {
        let path = format!("/{ctx}/application/lcm/app/{}/instance/{remote_id}/zone/{}/x-op/insights", ids.app, fed.zone_id);
        match c.call(Method::GET, &path, None).await {
            Ok(r) => serde_json::from_value(r.body.unwrap_or(Value::Null)).map_err(|e| tracing::warn!(error = %e, "the partner's insights do not parse")).ok(),
            Err(e) => {
                tracing::debug!(error = %e, "no insights from the partner");
                None
            }
        }
    }

    async fn remove(&self, c: &PeerClient, ctx: &str, ids: &Ids, fed: &FederatedPlacement, inst: &Remote) -> Result<Action, ReconcileError> {
        let s = &self.state;
        if let Some(remote_id) = inst.observed.federation.as_ref().and_then(|f| f.instance_id.clone()) {
            match c.call(Method::DELETE, &format!("/{ctx}/application/lcm/app/{}/instance/{remote_id}/zone/{}", ids.app, fed.zone_id), None).await {
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(remote(e)),
            }
        }
        s.repo.delete(inst).await?;
        tracing::info!(instance = %inst.metadata.uid, peer = %fed.peer, "federated instance removed");
        Ok(Action::AwaitChange)
    }
}

#[async_trait]
impl Reconciler for RemoteInstanceReconciler {
    fn kind(&self) -> Kind {
        Kind::AppInstance
    }

    /// Only instances on a partner's zone.
    fn wants(&self, stored: &[u8]) -> bool {
        /// The one field of an instance's spec this reconciler looks at first.
        #[derive(serde::Deserialize)]
        struct Federated {
            #[serde(default)]
            federated: Option<IgnoredAny>,
        }
        serde_json::from_slice::<Object<Federated, IgnoredAny>>(stored).map_or(true, |o| o.spec.federated.is_some())
    }

    // A multi-step flow that writes as it goes and comes back at once: it reads its latest
    // from the store, which the runner's copy would lag after its own writes.
    async fn reconcile(&self, uid: Uid, _stored: Option<&Raw>) -> Result<Action, ReconcileError> {
        let s = &self.state;
        let Some(mut inst) = s.repo.get::<AppInstanceSpec, InstanceObserved>(Kind::AppInstance, uid).await? else { return Ok(Action::AwaitChange) };
        let Some(fed) = inst.spec.federated.clone() else { return Ok(Action::AwaitChange) };
        let peer = self.peer(&fed.peer).await?;
        let c = self.clients.of(&peer)?;
        let ctx = peer.observed.context_id.clone().ok_or_else(|| ReconcileError::Service(format!("no federation with peer '{}' yet", fed.peer)))?;
        let app = s.repo.get::<AppSpec, ()>(Kind::App, inst.spec.app_id).await?;
        let Some(app) = app else {
            if inst.metadata.deletion_requested.is_some() {
                s.repo.delete(&inst).await?;
            }
            return Err(ReconcileError::Dangling("the app no longer exists".into()));
        };
        let ids = ids(s, &fed.peer, &app, inst.metadata.uid);
        if inst.metadata.deletion_requested.is_some() {
            return self.remove(&c, &ctx, &ids, &fed, &inst).await;
        }
        match self.deploy(&c, &ctx, &ids, &fed, &peer, &app, &mut inst).await {
            Ok(a) => Ok(a),
            Err(e) => {
                // Say why it waits; the runner retries with backoff.
                if let Ok(Some(mut fresh)) = s.repo.get::<AppInstanceSpec, InstanceObserved>(Kind::AppInstance, uid).await {
                    let msg = format!("waiting for partner {}: {e}; retrying", fed.peer);
                    if fresh.status.message.as_deref() != Some(msg.as_str()) && fresh.status.state != State::Ready {
                        fresh.status.message = Some(msg);
                        let _ = s.repo.update(&mut fresh).await;
                    }
                }
                Err(e)
            }
        }
    }

    fn error_policy(&self, _err: &ReconcileError, failures: u32) -> Duration {
        op_controller::backoff(failures)
    }
}

impl RemoteInstanceReconciler {
    /// One step further along: image, artefact, onboarding, installation, then the partner's view.
    #[allow(clippy::too_many_arguments)]
    async fn deploy(&self, c: &PeerClient, ctx: &str, ids: &Ids, fed: &FederatedPlacement, peer: &Peer, app: &Object<AppSpec>, inst: &mut Remote) -> Result<Action, ReconcileError> {
        let mut progress = inst.observed.federation.clone().unwrap_or_default();
        if progress.instance_id.is_none() && peer.observed.onboarded.get(&app.metadata.uid).is_some_and(|z| z.contains(&fed.zone_id)) {
            // Another instance onboarded the app there: install straight away.
            progress.file_id = Some(ids.file.clone());
            progress.artefact_id = Some(ids.artefact.clone());
            progress.app_id = Some(ids.app.clone());
        }
        if progress.file_id.is_none() {
            inst.status.state = State::Creating;
            // Another instance of the app may have carried the image there already.
            if c.call(Method::GET, &format!("/{ctx}/files/{}", ids.file), None).await.is_err() {
                inst.status.message = Some("uploading the app's image to the partner".into());
                self.upload_file(c, ctx, ids, app).await?;
            }
            progress.file_id = Some(ids.file.clone());
        }
        if progress.artefact_id.is_none() {
            if c.call(Method::GET, &format!("/{ctx}/artefact/{}", ids.artefact), None).await.is_err() {
                self.upload_artefact(c, ctx, ids, app).await?;
            }
            progress.artefact_id = Some(ids.artefact.clone());
        }
        if progress.app_id.is_none() {
            self.onboard(c, ctx, ids, app, &fed.zone_id, peer).await?;
            self.mark_onboarded(&peer.metadata.name, app.metadata.uid, &fed.zone_id).await?;
            progress.app_id = Some(ids.app.clone());
        }
        if progress.instance_id.is_none() {
            let id = self.install(c, ctx, ids, app, fed, peer).await?;
            progress.instance_id = Some(id);
            // One write for every step: each is idempotent at the partner (same ids), so a
            // crash before it only repeats them.
            inst.observed.federation = Some(progress.clone());
            inst.status.state = State::Creating;
            inst.status.message = Some("installed at the partner; starting".into());
            self.save(inst).await?;
        }
        self.poll(c, ctx, ids, fed, inst, app).await
    }
}

/// How long registration waits for a partner's edge discovery before serving in the order it
/// knows.
const SHARING_BUDGET: Duration = Duration::from_millis(300);

/// Edge node sharing (originating role): a device of ours roaming in network `plmn` of a
/// peer is served by the peer's edges. The Ready instances of `app` on that peer's zones, in
/// the order the partner ranks its zones for the device's location (GetCandidateZones); `None`
/// when `plmn` is no peer's or the app runs on none of its zones.
pub async fn shared_edges(s: &AppState, app: Uid, plmn: &str, at: GeoPoint, device: &str) -> Result<Option<(Vec<op_types::uni::EdgeOffer>, op_types::uni::RoamingAuth)>, ApiError> {
    let (peers, _) = s.repo.list::<FederationPeerSpec, FederationPeerObserved>(Kind::FederationPeer).await?;
    let Some(peer) = peers.into_iter().find(|p| p.metadata.deletion_requested.is_none() && p.observed.network_codes.iter().any(|c| c == plmn)) else { return Ok(None) };
    let (insts, _) = s.repo.list::<AppInstanceSpec, InstanceObserved>(Kind::AppInstance).await?;
    let mut mine: Vec<_> = insts
        .into_iter()
        .filter(|i| i.spec.app_id == app && i.status.state == State::Ready && i.metadata.deletion_requested.is_none())
        .filter(|i| i.spec.federated.as_ref().is_some_and(|f| f.peer == peer.metadata.name) && !i.observed.endpoints.is_empty())
        .collect();
    if mine.is_empty() {
        return Ok(None);
    }
    let Some(app_obj) = s.repo.get::<AppSpec, ()>(Kind::App, app).await? else { return Ok(None) };
    // The partner's ranking for where the device is; its order of preference.
    let ids = ids(s, &peer.metadata.name, &app_obj, Uid::nil());
    let body = json!({"appProviderId": ids.provider, "appId": ids.app, "edgeDiscoveryFilters": {"location": {"geo_location": format!("{:.4},{:.4}", at.latitude, at.longitude)}}});
    let ctx = peer.observed.context_id.clone().unwrap_or_default();
    let order: Vec<String> = match s.ewbi.clients.of(&peer) {
        Ok(c) => match tokio::time::timeout(SHARING_BUDGET, c.call(Method::POST, &format!("/{ctx}/edgenodesharing/edgeDiscovery"), Some(&body))).await {
            Ok(Ok(r)) => {
                let zones: Vec<String> = r.body.and_then(|b| serde_json::from_value::<Vec<wire::DiscoveredEdgeNode>>(b).ok()).unwrap_or_default().into_iter().map(|n| n.zone_id).collect();
                // The partner bills the discovery at the time it states: record the same.
                if let (Some(at), Some(first)) = (r.date, zones.first()) {
                    let ev = op_types::ewbi::usage::UsageEvent::ServiceCalls(op_types::ewbi::usage::ServiceCalls {
                        federation_context_id: ctx.clone(),
                        app_provider_id: ids.provider.clone(),
                        app_id: ids.app.clone(),
                        zone_id: first.clone(),
                        flavour_id: None,
                        service: "edgeDiscovery".into(),
                        count: 1,
                        at,
                    });
                    super::settle::record(s, &peer.metadata.name, ev).await?;
                }
                zones
            }
            Ok(Err(e)) => {
                tracing::warn!(peer = %peer.metadata.name, error = %e, "edge discovery at the partner failed; serving in our order");
                vec![]
            }
            Err(_) => vec![],
        },
        Err(_) => vec![],
    };
    let rank = |zone: &str| order.iter().position(|z| z == zone).unwrap_or(usize::MAX);
    mine.sort_by_key(|i| i.spec.federated.as_ref().map_or(usize::MAX, |f| rank(&f.zone_id)));
    let (zones, _) = s.repo.list::<ZoneSpec, ()>(Kind::Zone).await?;
    // What the device shows the partner's edge, for the partner to check with us.
    let device_id = format!("d{}", &op_types::secret::derive_hex_str(&ids.key, "device/", device)[..31]);
    let auth = op_types::uni::RoamingAuth { home_operator: s.ewbi.federation_id.clone(), token: super::partner::roaming_token(&s.ewbi.secret, &device_id), device_id };
    Ok(Some((
        mine.into_iter()
            .map(|i| {
                let ep = &i.observed.endpoints[0];
                let zone = zones.iter().find(|z| z.metadata.uid == i.spec.edge_cloud_zone_id);
                op_types::uni::EdgeOffer {
                    app_instance_id: i.metadata.uid,
                    edge_cloud_zone_id: i.spec.edge_cloud_zone_id,
                    edge_cloud_zone_name: zone.map(|z| z.metadata.name.to_string()).unwrap_or_default(),
                    host: ep.host.clone(),
                    port: ep.port,
                    expected_qos: None,
                    distance_km: zone.map(|z| op_uni::geo::distance_km(at, z.spec.location)),
                    probe_url: None,
                }
            })
            .collect(),
        auth,
    )))
}

/// Our app's endpoints from the partner's access points (its interface ids are federated).
fn endpoints_of(app: &Object<AppSpec>, k: &[u8], points: &[wire::AccessPointInfo]) -> Vec<Endpoint> {
    let mut endpoints = Vec::new();
    for ap in points {
        let Some(local) = app.spec.component_spec.iter().flat_map(|c| c.network_interfaces.iter()).find(|n| interface_id(k, app.metadata.uid, &n.interface_id) == ap.interface_id) else { continue };
        let host = ap.access_points.fqdn.clone().or_else(|| ap.access_points.ipv4_addresses.as_ref().and_then(|a| a.first().cloned())).unwrap_or_default();
        endpoints.push(Endpoint { interface_id: local.interface_id.clone(), host, port: ap.access_points.port });
    }
    endpoints
}

/// Applies a partner's instance-status callback to our instance (one write): `READY` with its
/// access points makes it Ready at once; anything else wakes its reconciler, which asks the
/// partner.
pub async fn apply_instance_event(s: &AppState, peer: &Peer, ev: &wire::InstanceStatusEvent) -> Result<(), ApiError> {
    let (all, _) = s.repo.list::<AppInstanceSpec, InstanceObserved>(Kind::AppInstance).await?;
    let Some(mut inst) = all.into_iter().find(|i| {
        i.spec.federated.as_ref().is_some_and(|f| f.peer == peer.metadata.name) && i.observed.federation.as_ref().and_then(|f| f.instance_id.as_deref()) == Some(ev.app_inst_identifier.as_str())
    }) else {
        return Ok(());
    };
    let ready = ev.app_instance_info.app_instance_state.and_then(|st| serde_json::to_value(st).ok()).and_then(|v| v.as_str().map(str::to_string));
    let app = s.repo.get::<AppSpec, ()>(Kind::App, inst.spec.app_id).await?;
    let endpoints = app.as_ref().map(|a| endpoints_of(a, &peer_key(s, &peer.metadata.name), ev.app_instance_info.access_point_info.as_deref().unwrap_or_default())).unwrap_or_default();
    if ready.as_deref() == Some("READY") && !endpoints.is_empty() && inst.metadata.deletion_requested.is_none() {
        inst.status.state = State::Ready;
        inst.status.message = Some("running on the partner's zone".into());
        inst.observed.endpoints = endpoints;
        if let Some(f) = inst.observed.federation.as_mut() {
            f.remote_state = ready;
        }
    }
    // Wakes the instance's reconciler, which reads the partner's view (and its insights: a
    // READY with the same access points may be a relocation).
    inst.metadata.labels.insert("op.federation.notified".into(), chrono::Utc::now().timestamp_micros().to_string());
    match s.repo.update(&mut inst).await {
        Ok(()) | Err(op_store::RepoError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Records a partner's instance-status callback for settlement (originating side), with the
/// partner's clock and the flavour sizes the partner published.
pub async fn record_instance_event(s: &AppState, peer: &Peer, ev: &wire::InstanceStatusEvent) -> Result<(), ApiError> {
    use op_types::ewbi::usage::{InstanceState, InstanceStateChanged, UsageEvent};
    let Some(at) = ev.modification_date else { return Ok(()) };
    let ctx = peer.observed.context_id.clone().unwrap_or_default();
    let (all, _) = s.repo.list::<AppInstanceSpec, InstanceObserved>(Kind::AppInstance).await?;
    let state = match ev.app_instance_info.app_instance_state.map(|s| serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()).as_deref() {
        Some("READY") => InstanceState::Ready,
        Some("FAILED") => InstanceState::Failed,
        Some("TERMINATING") => InstanceState::Terminating,
        _ => InstanceState::Pending,
    };
    // The billing key: from our instance while it exists, else (its end is reported after we
    // let it go) from the instance's earlier events in our ledger.
    let inst = all.iter().find(|i| i.observed.federation.as_ref().and_then(|f| f.instance_id.as_deref()) == Some(ev.app_inst_identifier.as_str()));
    let key = match inst.and_then(|i| i.spec.federated.as_ref().map(|f| (i, f))) {
        Some((inst, fed)) => {
            let Some(app) = s.repo.get::<AppSpec, ()>(Kind::App, inst.spec.app_id).await? else { return Ok(()) };
            let f = peer.observed.flavours.get(&fed.zone_id).and_then(|fs| fs.iter().find(|f| f.flavour_id == fed.flavour_id)).cloned().unwrap_or_default();
            Some((ids(s, &peer.metadata.name, &app, inst.metadata.uid).provider, fed.flavour_id.clone(), f.vcpu_milli, f.memory_mb))
        }
        None => super::settle::instance_key(s, &peer.metadata.name, &ctx, &ev.app_inst_identifier).await?,
    };
    let Some((provider, flavour, vcpu_milli, memory_mb)) = key else { return Ok(()) };
    let event = UsageEvent::InstanceStateChanged(InstanceStateChanged {
        federation_context_id: ctx,
        app_provider_id: provider,
        app_id: ev.app_id.clone(),
        app_instance_id: ev.app_inst_identifier.clone(),
        zone_id: ev.zone_id.clone(),
        flavour_id: flavour,
        vcpu_milli,
        memory_mb,
        state,
        at,
    });
    super::settle::record(s, &peer.metadata.name, event).await
}

/// Progress as stored, for tests and `opctl`.
pub fn progress_of(inst: &Remote) -> Option<&FederatedProgress> {
    inst.observed.federation.as_ref()
}
