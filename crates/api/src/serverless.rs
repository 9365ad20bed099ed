//! Serverless apps (OPG.02 serverless): a point of presence (an [`op_ingress`] listener) at
//! every Docker cloudlet, its routing table rebuilt from the UNI index whenever it changes, the
//! orchestrator that starts and stops instances on the developer's policies
//! ([`op_placement::serverless::plan`]), and the developer's API: policy (validated, bounded by
//! the operator, versioned), where the app runs now and why, connection events.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use chrono::Utc;
use op_ingress::{AppRoute, Backend, Inside, Mesh, PopHandle, Table, Wake};
use op_placement::serverless::{plan, Inst, Policy, Pop, Step};
use op_types::serverless::{PointOfPresence, PopTraffic, ServerlessBounds, ServerlessEvent, ServerlessInstance, ServerlessPolicy, ServerlessProtocol, ServerlessStatus, ZoneEndpoint, ZoneTraffic};
use op_types::specs::{AppSpec, InstantiationType, PlacementPolicySpec, ZoneSpec};
use op_types::validate::Validate;
use op_types::{Kind, Name, Uid};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::json::Body;
use crate::state::AppState;

/// How often the orchestrator looks at every serverless app (and at once when a connection
/// waits for an instance).
const TICK: Duration = Duration::from_millis(250);
/// Events kept per app.
const EVENTS_KEPT: usize = 200;
/// The label on the instances the orchestrator starts.
pub const LABEL: &str = "op.serverless";

/// A running point of presence.
struct PopEntry {
    handle: PopHandle,
    zone: Name,
    zone_id: Uid,
}

/// A point of presence as reads see it.
#[derive(Clone)]
struct PopView {
    cloudlet: Name,
    zone: Name,
    zone_id: Uid,
    http: std::net::SocketAddr,
    /// The port of each TCP app.
    tcp: HashMap<Uid, u16>,
}

impl PopView {
    /// Where devices send `app`'s traffic here (`None`: a TCP app with no port yet).
    fn address(&self, app: Uid, protocol: ServerlessProtocol) -> Option<std::net::SocketAddr> {
        match protocol {
            ServerlessProtocol::Http => Some(self.http),
            ServerlessProtocol::Tcp => self.tcp.get(&app).map(|p| std::net::SocketAddr::new(self.http.ip(), *p)),
        }
    }
}

/// The serverless side of the platform.
pub struct Serverless {
    /// The routing state of every point of presence.
    pub mesh: Arc<Mesh>,
    wakes: Mutex<Option<UnboundedReceiver<Wake>>>,
    pops: tokio::sync::Mutex<BTreeMap<Name, PopEntry>>,
    /// The points of presence as reads see them (the UNI hot path, status): never waits on `pops`.
    view: Mutex<Vec<PopView>>,
    /// What the last sync saw.
    synced: tokio::sync::Mutex<Synced>,
    events: Mutex<HashMap<Uid, VecDeque<ServerlessEvent>>>,
    reasons: Mutex<HashMap<Uid, String>>,
    /// The port of the first point of presence's HTTP listener (0: any), then the next ones.
    http_port: u16,
}

impl Serverless {
    /// Points of presence hold a connection for `hold` while an instance starts; the first
    /// listens for HTTP on `http_port` (0: any free port), the next ones on the ports after.
    pub fn new(hold: Duration, http_port: u16) -> Self {
        let (mesh, wakes) = Mesh::new(hold);
        Self {
            mesh,
            wakes: Mutex::new(Some(wakes)),
            pops: tokio::sync::Mutex::default(),
            view: Mutex::default(),
            synced: tokio::sync::Mutex::default(),
            events: Mutex::default(),
            reasons: Mutex::default(),
            http_port,
        }
    }

    fn record(&self, app: Uid, kind: &str, zone: Option<Name>, inst: Option<Uid>, reason: String) {
        let mut ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let q = ev.entry(app).or_default();
        if q.len() >= EVENTS_KEPT {
            q.pop_front();
        }
        q.push_back(ServerlessEvent { at: Utc::now(), kind: kind.to_string(), zone, app_instance_id: inst, reason });
    }
}

/// The operator's bounds (from its `default` placement policy).
async fn bounds(s: &AppState) -> Result<ServerlessBounds, ApiError> {
    let name = Name::new("default").map_err(|e| ApiError::Internal(e.to_string()))?;
    let p = s.repo.get_by_name::<PlacementPolicySpec, ()>(Kind::PlacementPolicy, None, &name).await?;
    Ok(p.and_then(|p| p.spec.serverless).unwrap_or_default())
}

/// Checks a serverless policy for app `name` of `org` (new when `current` is `None`): its
/// rules, the operator's bounds, the homebase zone, a host no other app answers on; sets its
/// version. Field names in errors are under `prefix`.
pub(crate) async fn admit_policy(
    s: &AppState,
    spec: &AppSpec,
    org: &Name,
    name: &Name,
    current: Option<&ServerlessPolicy>,
    p: &mut ServerlessPolicy,
    prefix: &str,
) -> Result<(), ApiError> {
    let field = |f: &str| if prefix.is_empty() { f.to_string() } else { format!("{prefix}.{f}") };
    p.validate().map_err(|e| ApiError::invalid(field(&e.field), e.message))?;
    p.within(&bounds(s).await?).map_err(|e| ApiError::invalid(field(&e.field), e.message))?;
    if p.protocol == ServerlessProtocol::Tcp && p.require_session {
        return Err(ApiError::invalid(field("requireSession"), "a plain TCP app cannot carry a session token; use protocol http"));
    }
    if spec.external_interfaces().next().is_none() {
        return Err(ApiError::invalid("componentSpec", "a serverless app needs an external network interface for its ingress to reach"));
    }
    if let Some(z) = &p.homebase {
        if s.repo.get_by_name::<ZoneSpec, ()>(Kind::Zone, None, z).await?.is_none() {
            return Err(ApiError::invalid(field("homebase"), format!("zone '{z}' does not exist (see GET /edge-application-management/v0.1alpha1/edge-cloud-zones)")));
        }
    }
    let host = p.host_for(org, name);
    let (apps, _) = s.repo.list::<AppSpec, ()>(Kind::App).await?;
    let clash = apps.iter().any(|a| {
        let (Some(ao), Some(o)) = (&a.metadata.organization, &a.spec.requirements.serverless) else { return false };
        (ao, &a.metadata.name) != (org, name) && o.host_for(ao, &a.metadata.name) == host && o.path_prefix == p.path_prefix
    });
    if clash {
        return Err(ApiError::AlreadyExists(format!("another serverless app already answers on host {host}; choose another host or pathPrefix")));
    }
    p.version = current.map_or(1, |c| c.version + 1);
    Ok(())
}

/// Starts the points of presence, the table feed, the orchestrator and the health checks.
pub fn start(s: &AppState, changes: tokio::sync::watch::Receiver<u64>) {
    if let Ok(v) = op_uni::token::SessionVerifier::from_public_pem(s.uni.signer.public_pem()) {
        s.serverless.mesh.set_verifier(v);
    }
    tokio::spawn(feed(s.clone(), changes));
    let wakes = s.serverless.wakes.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(w) = wakes {
        tokio::spawn(orchestrate(s.clone(), w));
    }
    tokio::spawn(op_ingress::proxy::health(s.serverless.mesh.clone(), Duration::from_secs(2)));
}

/// Rebuilds the points of presence and the routing table whenever the index changes.
async fn feed(s: AppState, mut changes: tokio::sync::watch::Receiver<u64>) {
    loop {
        if let Err(e) = sync(&s).await {
            tracing::warn!(error = %e, "serverless ingress: cannot sync with the index; retrying");
        }
        // Also every few seconds: cloudlets come and go without an index change of their own.
        let _ = tokio::time::timeout(Duration::from_secs(3), changes.changed()).await;
    }
}

/// Points of presence for the Docker cloudlets accepting instances, TCP ports for TCP apps,
/// and the table. This runs on every change of the index, which at scale is mostly instances
/// of other apps: the points of presence are looked at only when the set of Docker cloudlets
/// or of TCP apps moved, and the table is replaced only when it differs.
async fn sync(s: &AppState) -> Result<(), ApiError> {
    let (apps, backends) = {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        let mut apps = Vec::new();
        let mut backends: HashMap<Uid, Vec<Backend>> = HashMap::new();
        for a in ix.apps().filter(|a| a.requirements.instantiation == InstantiationType::Serverless) {
            let p = a.requirements.serverless.clone().unwrap_or_default();
            apps.push(AppRoute {
                app: a.uid,
                label: format!("{}/{}", a.org, a.name),
                host: p.host_for(&a.org, &a.name).to_ascii_lowercase(),
                path_prefix: p.path_prefix.clone(),
                protocol: p.protocol,
                require_session: p.require_session,
                concurrency: p.concurrency_per_instance,
            });
            let bs = ix
                .instances_of(a.uid)
                .filter(|i| !i.deleting)
                .filter_map(|i| {
                    i.endpoint.as_ref().map(|e| Backend {
                        instance: i.uid,
                        pop: i.cloudlet.to_string(),
                        addr: format!("{}:{}", e.host, e.port),
                        ready: i.ready,
                        inside: i.inside.as_ref().map(|(netns, addr)| Inside { netns: netns.into(), addr: *addr }),
                    })
                })
                .collect();
            backends.insert(a.uid, bs);
        }
        (apps, backends)
    };
    let tcp: Vec<Uid> = apps.iter().filter(|a| a.protocol == ServerlessProtocol::Tcp).map(|a| a.app).collect();
    // From memory: a region has thousands of cloudlets.
    let (changes, wanted) = s.inventory.docker_cloudlets();
    let seen = (changes, tcp.clone());
    let mut pops = s.serverless.pops.lock().await;
    let mut last = s.serverless.synced.lock().await;
    if last.0.as_ref() != Some(&seen) {
        pops.retain(|name, _| wanted.contains_key(name));
        let mut complete = true;
        for (name, zone) in &wanted {
            if pops.contains_key(name) {
                continue;
            }
            let Some(zone) = s.repo.get_by_name::<ZoneSpec, ()>(Kind::Zone, None, zone).await? else {
                complete = false;
                continue;
            };
            let port = match s.serverless.http_port {
                0 => 0,
                p => p.saturating_add(pops.len() as u16),
            };
            let handle = match PopHandle::start(s.serverless.mesh.clone(), name.as_str(), "127.0.0.1", port).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(cloudlet = %name, port, error = %e, "cannot open the point of presence's ingress; retrying");
                    complete = false;
                    continue;
                }
            };
            tracing::info!(cloudlet = %name, http = %handle.http, "point of presence open");
            pops.insert(name.clone(), PopEntry { handle, zone: zone.metadata.name.clone(), zone_id: zone.metadata.uid });
        }
        for p in pops.values() {
            p.handle.retain_tcp(&tcp);
            for app in &tcp {
                if let Err(e) = p.handle.ensure_tcp(*app).await {
                    tracing::warn!(app = %app, error = %e, "cannot open a TCP port for the app");
                    complete = false;
                }
            }
        }
        let view = pops
            .iter()
            .map(|(n, p)| PopView {
                cloudlet: n.clone(),
                zone: p.zone.clone(),
                zone_id: p.zone_id,
                http: p.handle.http,
                tcp: tcp.iter().filter_map(|a| Some((*a, p.handle.tcp_port(*a)?))).collect(),
            })
            .collect();
        *s.serverless.view.lock().unwrap_or_else(|e| e.into_inner()) = view;
        // What could not be done is tried again on the next change or tick.
        last.0 = complete.then_some(seen);
    }
    drop(pops);
    let table = Table { apps, backends };
    if last.1.as_ref() != Some(&table) {
        s.serverless.mesh.set_table(table.clone());
        last.1 = Some(table);
    }
    Ok(())
}

/// What the last sync saw: the Docker cloudlets' change count and the TCP apps (when the
/// points of presence were all set up for them), and the table it gave the mesh.
type Synced = (Option<(u64, Vec<Uid>)>, Option<Table>);

/// Instances the orchestrator started that the index may not show yet.
type Pending = HashMap<Uid, (Uid, Name, tokio::time::Instant)>;

/// Runs the orchestrator until the process ends.
async fn orchestrate(s: AppState, mut wakes: UnboundedReceiver<Wake>) {
    let mut waiting: HashSet<(Uid, String)> = HashSet::new();
    let mut pending: Pending = HashMap::new();
    loop {
        tokio::select! {
            w = wakes.recv() => {
                let Some(w) = w else { return };
                waiting.insert((w.app, w.pop));
                while let Ok(w) = wakes.try_recv() {
                    waiting.insert((w.app, w.pop));
                }
            }
            _ = tokio::time::sleep(TICK) => {}
        }
        if let Err(e) = tick(&s, &mut waiting, &mut pending).await {
            tracing::warn!(error = %e, "serverless orchestrator: this round failed; retrying");
        }
    }
}

/// One look at every serverless app: plan, then carry the steps out.
async fn tick(s: &AppState, waiting: &mut HashSet<(Uid, String)>, pending: &mut Pending) -> Result<(), ApiError> {
    let sv = &s.serverless;
    for ev in sv.mesh.stats.drain_events() {
        let zone = sv.view.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|v| v.cloudlet.as_str() == ev.pop).map(|v| v.zone.clone());
        let (kind, what) = match ev.kind {
            op_ingress::EventKind::SessionStarted => ("sessionStarted", "a session opened its first connection"),
            op_ingress::EventKind::SessionEnded => ("sessionEnded", "a session closed its last connection"),
        };
        sv.record(ev.app, kind, zone, None, format!("{what}; {} concurrent sessions there", ev.sessions));
    }
    let default_home = bounds(s).await?.default_homebase;
    let pops: Vec<(Name, Name)> = sv.view.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|v| (v.cloudlet.clone(), v.zone.clone())).collect();
    if pops.is_empty() {
        return Ok(());
    }
    let traffic = sv.mesh.stats.snapshot();
    let now = tokio::time::Instant::now();
    let now_ms = sv.mesh.now_ms();
    // Facts from the index, outside its lock for the awaits below.
    struct AppFacts {
        uid: Uid,
        policy: ServerlessPolicy,
        instances: Vec<(Uid, Name)>,
    }
    let facts: Vec<AppFacts> = {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        pending.retain(|uid, (_, _, at)| ix.instance(*uid).is_none() && now.duration_since(*at) < Duration::from_secs(60));
        ix.apps()
            .filter(|a| a.requirements.instantiation == InstantiationType::Serverless)
            .map(|a| {
                let mut instances: Vec<(Uid, Name)> = ix.instances_of(a.uid).filter(|i| !i.deleting).map(|i| (i.uid, i.cloudlet.clone())).collect();
                instances.extend(pending.iter().filter(|(_, (app, _, _))| *app == a.uid).map(|(u, (_, c, _))| (*u, c.clone())));
                AppFacts { uid: a.uid, policy: a.requirements.serverless.clone().unwrap_or_default(), instances }
            })
            .collect()
    };
    waiting.retain(|(app, _)| facts.iter().any(|f| f.uid == *app && f.instances.is_empty()));
    for f in facts {
        let home = f.policy.homebase.clone().or_else(|| default_home.clone());
        let mut ids: Vec<Uid> = Vec::new();
        let input: Vec<Pop> = pops
            .iter()
            .map(|(pop, zone)| {
                let instances = f
                    .instances
                    .iter()
                    .filter(|(_, c)| c == pop)
                    .map(|(u, _)| {
                        ids.push(*u);
                        let (active, last) = sv.mesh.load(*u).unwrap_or((0, now_ms));
                        Inst { id: (ids.len() - 1) as u32, connections: active, idle_ms: if active > 0 { 0 } else { now_ms.saturating_sub(last) } }
                    })
                    .collect();
                let sessions = traffic.iter().find(|(a, p, _)| *a == f.uid && p == pop.as_str()).map_or(0, |(_, _, t)| t.sessions);
                Pop { instances, sessions, waiting: waiting.contains(&(f.uid, pop.to_string())), homebase: home.as_ref() == Some(zone) }
            })
            .collect();
        let p = Policy {
            concurrency: f.policy.concurrency_per_instance,
            trigger: f.policy.pop_session_trigger,
            min: f.policy.min_instances,
            max: f.policy.max_instances,
            idle_ms: u64::from(f.policy.idle_seconds) * 1000,
        };
        for step in plan(&p, &input) {
            match step {
                Step::Start { pop, why } => {
                    let (cloudlet, zone) = &pops[pop];
                    match start_instance(s, f.uid, cloudlet, zone).await {
                        Ok(uid) => {
                            sv.mesh.touch(uid);
                            pending.insert(uid, (f.uid, cloudlet.clone(), now));
                            sv.reasons.lock().unwrap_or_else(|e| e.into_inner()).insert(uid, why.to_string());
                            sv.record(f.uid, why.kind(), Some(zone.clone()), Some(uid), why.to_string());
                            tracing::info!(app = %f.uid, zone = %zone, instance = %uid, reason = %why, "serverless instance started");
                        }
                        Err(e) => {
                            tracing::warn!(app = %f.uid, zone = %zone, error = %e, "serverless instance could not start");
                            sv.record(f.uid, "startFailed", Some(zone.clone()), None, format!("{why}, but: {e}"));
                        }
                    }
                }
                Step::Stop { id, why } => {
                    let Some(uid) = ids.get(id as usize).copied() else { continue };
                    let zone = f.instances.iter().find(|(u, _)| *u == uid).and_then(|(_, c)| pops.iter().find(|(p, _)| p == c)).map(|(_, z)| z.clone());
                    crate::camara::request_deletion(s, Kind::AppInstance, uid, "serverless orchestrator").await?;
                    pending.remove(&uid);
                    sv.reasons.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid);
                    sv.record(f.uid, why.kind(), zone, Some(uid), why.to_string());
                    tracing::info!(app = %f.uid, instance = %uid, reason = %why, "serverless instance stopped");
                }
            }
        }
    }
    Ok(())
}

/// Starts an instance of `app` on point of presence `cloudlet` (in `zone`), through admission.
async fn start_instance(s: &AppState, app: Uid, cloudlet: &Name, zone: &Name) -> Result<Uid, ApiError> {
    let a = s.repo.get::<AppSpec, ()>(Kind::App, app).await?.ok_or_else(|| ApiError::NotFound("the app is gone".into()))?;
    let z = s.repo.get_by_name::<ZoneSpec, ()>(Kind::Zone, None, zone).await?.ok_or_else(|| ApiError::NotFound(format!("zone {zone} is gone")))?;
    let name = crate::camara::platform_instance_name(&a.metadata.name, "sl", Uid::random())?;
    let labels = [(LABEL.to_string(), cloudlet.to_string())].into();
    let inst = crate::camara::create_instance_on(s, &a, &z, crate::camara::Pin { cloudlet: Some(cloudlet), cluster: None }, name, "serverless orchestrator", labels).await?;
    Ok(inst.metadata.uid)
}

/// The serverless app `id` as `c` may see it.
async fn serverless_app(s: &AppState, c: &Caller, id: &str) -> Result<op_types::specs::App, ApiError> {
    let id: Uid = id.parse().map_err(|_| ApiError::invalid("appId", "not an app id"))?;
    let app = s.repo.get::<AppSpec, ()>(Kind::App, id).await?.filter(|a| c.can_read(a.metadata.organization.as_ref())).ok_or_else(|| ApiError::NotFound("App not found".into()))?;
    if app.spec.requirements.instantiation != InstantiationType::Serverless {
        return Err(ApiError::invalid("requirements.instantiation", "the app is not serverless; onboard it with instantiation: serverless"));
    }
    Ok(app)
}

/// The points of presence: where devices send a serverless app's traffic (zones and
/// addresses; the cloudlet behind each is shown to the operator only).
#[utoipa::path(get, path = "/op/v1/serverless/pops", tag = "serverless", security(("bearer" = [])),
    responses((status = 200, body = Vec<PointOfPresence>), (status = 401, body = ErrorInfo)))]
pub async fn pops(State(s): State<AppState>, c: Caller) -> Json<Vec<PointOfPresence>> {
    let operator = c.require_operator().is_ok();
    let view = s.serverless.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Json(view.into_iter().map(|v| PointOfPresence { name: operator.then_some(v.cloudlet), zone: v.zone, zone_id: v.zone_id, http: v.http.to_string() }).collect())
}

/// The points of presence a device at `at` sends serverless `app`'s traffic to, closest first,
/// one per zone, at most `n`: zones whose service area holds the device, then the operator's
/// ranking (footprint, data geography, path bounds) with deployment left out, since every point
/// of presence reaches every instance. No instance is named: the ingress picks or starts one.
pub(crate) fn offers(
    s: &AppState,
    ix: &op_uni::index::EdgeIndex,
    app: &op_uni::index::AppEntry,
    at: &op_uni::select::DeviceAt,
    path: &dyn Fn(&op_uni::index::ZoneEntry) -> Option<op_types::uni::PathInfo>,
    n: usize,
) -> Vec<op_types::uni::EdgeOffer> {
    let protocol = app.requirements.serverless.as_ref().map(|p| p.protocol).unwrap_or_default();
    let weights = op_uni::select::Weights { not_deployed: 0.0, ..op_uni::select::weights_at(ix, app, at) };
    let mut zones = op_uni::select::rank_zones(ix, app, at, &weights, path);
    let local = ix.zones_serving(at.cell.as_deref(), at.point);
    zones.sort_by_key(|(z, _)| !local.contains(&z.uid));
    let point = op_uni::select::device_point(ix, at);
    let view = s.serverless.view.lock().unwrap_or_else(|e| e.into_inner());
    zones
        .into_iter()
        .filter_map(|(z, _)| {
            let addr = view.iter().filter(|v| v.zone_id == z.uid).find_map(|v| v.address(app.uid, protocol))?;
            Some(op_types::uni::EdgeOffer {
                app_instance_id: Uid::nil(),
                edge_cloud_zone_id: z.uid,
                edge_cloud_zone_name: z.name.to_string(),
                host: addr.ip().to_string(),
                port: addr.port(),
                expected_qos: path(z),
                distance_km: point.map(|p| op_uni::geo::distance_km(p, z.location)),
                probe_url: None,
            })
        })
        .take(n)
        .collect()
}

/// Where a serverless app runs now and why: its instances (with the orchestrator's reason
/// for each), its traffic at each point of presence, and the latest events.
#[utoipa::path(get, path = "/op/v1/apps/{appId}/serverless", tag = "serverless", security(("bearer" = [])),
    params(("appId" = String, Path)),
    responses((status = 200, body = ServerlessStatus), (status = 400, body = ErrorInfo), (status = 401, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn status(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<ServerlessStatus>, ApiError> {
    let app = serverless_app(&s, &c, &id).await?;
    let uid = app.metadata.uid;
    let policy = app.spec.requirements.serverless.clone().unwrap_or_default();
    let org = app.metadata.organization.clone().ok_or_else(|| ApiError::Internal("app without organization".into()))?;
    let view = s.serverless.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let zone_of = |cloudlet: &str| view.iter().find(|v| v.cloudlet.as_str() == cloudlet).map(|v| v.zone.clone());
    let instances: Vec<ServerlessInstance> = {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        let reasons = s.serverless.reasons.lock().unwrap_or_else(|e| e.into_inner());
        ix.instances_of(uid)
            .filter_map(|i| {
                let zone = zone_of(i.cloudlet.as_str()).or_else(|| ix.zone(i.zone).map(|z| z.name.clone()))?;
                Some(ServerlessInstance {
                    app_instance_id: i.uid,
                    zone,
                    state: if i.deleting { "stopping" } else if i.ready { "ready" } else { "pending" }.into(),
                    connections: s.serverless.mesh.load(i.uid).map_or(0, |(a, _)| a),
                    reason: reasons.get(&i.uid).cloned().unwrap_or_else(|| "started before the platform's last restart".into()),
                })
            })
            .collect()
    };
    let mut by_zone: BTreeMap<Name, PopTraffic> = BTreeMap::new();
    for (a, pop, t) in s.serverless.mesh.stats.snapshot() {
        let Some(zone) = zone_of(&pop).filter(|_| a == uid) else { continue };
        let z = by_zone.entry(zone).or_default();
        z.connections += t.connections;
        z.connections_total += t.connections_total;
        z.sessions += t.sessions;
        z.devices += t.devices;
        z.held_total += t.held_total;
        z.forwarded_total += t.forwarded_total;
    }
    let endpoints = view.iter().filter_map(|v| Some(ZoneEndpoint { zone: v.zone.clone(), address: v.address(uid, policy.protocol)?.to_string() })).collect();
    let events = s.serverless.events.lock().unwrap_or_else(|e| e.into_inner()).get(&uid).map(|q| q.iter().cloned().collect()).unwrap_or_default();
    let homebase = match &policy.homebase {
        Some(h) => Some(h.clone()),
        None => bounds(&s).await?.default_homebase,
    };
    Ok(Json(ServerlessStatus {
        app_id: uid,
        host: policy.host_for(&org, &app.metadata.name),
        homebase,
        policy,
        endpoints,
        instances,
        traffic: by_zone.into_iter().map(|(zone, traffic)| ZoneTraffic { zone, traffic }).collect(),
        events,
    }))
}

/// Replaces a serverless app's policy. `version` must be the current one (another change in
/// between is a conflict, not a silent overwrite); the answer carries the new version.
#[utoipa::path(put, path = "/op/v1/apps/{appId}/serverless", tag = "serverless", security(("bearer" = [])),
    params(("appId" = String, Path)), request_body = ServerlessPolicy,
    responses((status = 200, body = ServerlessPolicy), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn put_policy(State(s): State<AppState>, c: Caller, Path(id): Path<String>, Body(mut p): Body<ServerlessPolicy>) -> Result<Json<ServerlessPolicy>, ApiError> {
    let mut app = serverless_app(&s, &c, &id).await?;
    let org = app.metadata.organization.clone().ok_or_else(|| ApiError::Internal("app without organization".into()))?;
    c.require_write(&org)?;
    let current = app.spec.requirements.serverless.clone().unwrap_or_default();
    if p.version != current.version {
        return Err(ApiError::Aborted(format!("the policy is at version {}, not {}: read it again and apply your change to it", current.version, p.version)));
    }
    admit_policy(&s, &app.spec, &org, &app.metadata.name, Some(&current), &mut p, "").await?;
    app.spec.requirements.serverless = Some(p.clone());
    s.repo.update(&mut app).await.map_err(|e| match e {
        op_store::RepoError::Conflict => ApiError::Conflict("the app changed meanwhile; retry".into()),
        e => e.into(),
    })?;
    s.serverless.record(app.metadata.uid, "policyChanged", None, None, format!("policy version {} by {}", p.version, c.user));
    tracing::info!(app = %app.metadata.uid, version = p.version, user = %c.user, "serverless policy changed");
    Ok(Json(p))
}

/// Labels of the serverless traffic series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct TrafficLabels {
    /// `org/name`.
    app: String,
    app_id: String,
    zone: String,
    pop: String,
}

/// The ingresses' counts per app and point of presence on `/metrics` (connections, sessions
/// and distinct devices now; connections, held and forwarded ones in all), and connections
/// joined in the kernel, read from the ingress's counters at each scrape.
pub struct TrafficMetrics(pub Arc<Serverless>);

impl std::fmt::Debug for TrafficMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrafficMetrics")
    }
}

impl prometheus_client::collector::Collector for TrafficMetrics {
    fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::MetricType;
        let zones: HashMap<String, String> =
            self.0.view.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|v| (v.cloudlet.to_string(), v.zone.to_string())).collect();
        let rows: Vec<(TrafficLabels, PopTraffic)> = self
            .0
            .mesh
            .stats
            .snapshot()
            .into_iter()
            .map(|(app, pop, t)| {
                let labels = TrafficLabels {
                    app: self.0.mesh.label(app).unwrap_or_default(),
                    app_id: app.to_string(),
                    zone: zones.get(&pop).cloned().unwrap_or_default(),
                    pop,
                };
                (labels, t)
            })
            .collect();
        type Read = fn(&PopTraffic) -> u64;
        let gauges: [(&str, &str, Read); 3] = [
            ("op_serverless_connections", "Open connections of a serverless app at a point of presence", |t| t.connections),
            ("op_serverless_sessions", "Concurrent sessions of a serverless app at a point of presence", |t| t.sessions),
            ("op_serverless_devices", "Distinct devices connected to a serverless app at a point of presence", |t| t.devices),
        ];
        for (name, help, read) in gauges {
            let mut d = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (l, t) in &rows {
                ConstGauge::new(i64::try_from(read(t)).unwrap_or(i64::MAX)).encode(d.encode_family(l)?)?;
            }
        }
        let counters: [(&str, &str, Read); 3] = [
            ("op_serverless_connections_opened", "Connections a point of presence took for a serverless app", |t| t.connections_total),
            ("op_serverless_held", "Connections held while an instance started", |t| t.held_total),
            ("op_serverless_forwarded", "Connections forwarded to another point of presence", |t| t.forwarded_total),
        ];
        for (name, help, read) in counters {
            let mut d = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (l, t) in &rows {
                ConstCounter::new(read(t)).encode(d.encode_family(l)?)?;
            }
        }
        // Whether the ingress joins connections in the kernel (absent: it copies them).
        if let Some((total, open)) = self.0.mesh.kernel_spliced() {
            let d = enc.encode_descriptor("op_serverless_kernel_spliced", "Connections the ingress joined to their instance in the kernel", None, MetricType::Counter)?;
            ConstCounter::new(total).encode(d)?;
            let d = enc.encode_descriptor("op_serverless_kernel_spliced_open", "Connections joined in the kernel now", None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(open).unwrap_or(i64::MAX)).encode(d)?;
        }
        let d = enc.encode_descriptor("op_serverless_entered", "Connections the ingress opened inside their instance's network namespace", None, MetricType::Counter)?;
        ConstCounter::new(self.0.mesh.entered()).encode(d)?;
        Ok(())
    }
}
