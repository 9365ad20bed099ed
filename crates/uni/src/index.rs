//! The in-memory edge index. Writers are the store watches ([`crate::feed`]); readers are
//! discovery requests, which take a read lock and never touch the store.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use op_types::specs::{App, AppInstance, Cloudlet, Endpoint, GeoPoint, Organization, PlacementPolicy, PlacementPolicySpec, Requirements, Zone};
use op_types::uni::PathInfo;
use op_types::{Name, State, Uid};
use rstar::{PointDistance, RTree, RTreeObject, AABB};

use crate::geo;
use crate::token::AppKey;

/// A zone as discovery needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneEntry {
    /// Zone id (CAMARA `edgeCloudZoneId`).
    pub uid: Uid,
    /// Zone name.
    pub name: Name,
    /// Region.
    pub region: Name,
    /// Representative location.
    pub location: GeoPoint,
    /// Served cells.
    pub cells: Vec<String>,
    /// Served polygon.
    pub polygon: Vec<GeoPoint>,
    /// Its user plane's DNAI.
    pub dnai: Option<String>,
}

/// A cloudlet as discovery needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudletEntry {
    /// Its zone's name.
    pub zone: Name,
    /// Runtime reachable.
    pub ready: bool,
    /// In maintenance: no new sessions.
    pub maintenance: bool,
    /// Capacity in vCPUs, for load.
    pub vcpus: u32,
    /// Base URL of its connectivity probe, once running.
    pub probe_url: Option<String>,
}

/// An app instance as discovery needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceEntry {
    /// Instance id.
    pub uid: Uid,
    /// Its app.
    pub app: Uid,
    /// Its zone.
    pub zone: Uid,
    /// Its cloudlet's name.
    pub cloudlet: Name,
    /// Its cloudlet's slot in the index (see [`EdgeIndex::cloudlet_of`]).
    pub slot: u32,
    /// Ready and reachable.
    pub ready: bool,
    /// First external endpoint.
    pub endpoint: Option<Endpoint>,
    /// Its container's network namespace file and, in it, the address of the first external
    /// endpoint's interface: where an ingress on the same host reaches it without the
    /// published port's bridge and NAT.
    pub inside: Option<(String, std::net::SocketAddr)>,
    /// Being removed: takes no new connections.
    pub deleting: bool,
}

impl InstanceEntry {
    /// What ranking reads of it.
    pub fn slim(&self) -> Slim {
        Slim { uid: self.uid, slot: self.slot, offerable: self.ready && self.endpoint.is_some() }
    }
}

/// What ranking needs of an instance, kept in its app's list for its zone: ranking a zone
/// reads one contiguous list (a thousand instances in tens of kilobytes) instead of looking
/// each instance up in the map of them all, and looks up only the instances it offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slim {
    /// Instance id.
    pub uid: Uid,
    /// Its cloudlet's slot.
    pub slot: u32,
    /// Ready, with an endpoint to offer.
    pub offerable: bool,
}

/// See [`InstanceEntry::inside`].
fn inside(i: &AppInstance) -> Option<(String, std::net::SocketAddr)> {
    let netns = i.observed.network_namespace.clone()?;
    let first = i.observed.endpoints.first()?;
    let e = i.observed.internal_endpoints.iter().find(|e| e.interface_id == first.interface_id)?;
    Some((netns, std::net::SocketAddr::new(e.host.parse().ok()?, e.port)))
}

/// An app as discovery needs it.
#[derive(Clone)]
pub struct AppEntry {
    /// App id.
    pub uid: Uid,
    /// Owning organization.
    pub org: Name,
    /// Name.
    pub name: Name,
    /// Version.
    pub version: String,
    /// OPG.02 criteria.
    pub requirements: Requirements,
    /// The key its device clients' tokens are checked with, parsed once here.
    pub device_key: Option<AppKey>,
}

impl std::fmt::Debug for AppEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppEntry").field("uid", &self.uid).field("org", &self.org).field("name", &self.name).finish()
    }
}

/// A zone's location in the R-tree (x = longitude, y = latitude).
#[derive(Clone, Debug, PartialEq)]
struct ZonePoint {
    xy: [f64; 2],
    uid: Uid,
}

impl RTreeObject for ZonePoint {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        AABB::from_point(self.xy)
    }
}

impl PointDistance for ZonePoint {
    fn distance_2(&self, p: &[f64; 2]) -> f64 {
        let (dx, dy) = (self.xy[0] - p[0], self.xy[1] - p[1]);
        dx * dx + dy * dy
    }
}

/// A cloudlet name's place in the index: the cloudlet of that name (while one exists) and the
/// instances placed on it.
struct Slot {
    name: Name,
    cloudlet: Option<(Uid, CloudletEntry)>,
    instances: usize,
}

/// Everything discovery reads, kept current by watches.
#[derive(Default)]
pub struct EdgeIndex {
    /// Counts applied changes.
    pub generation: u64,
    zones: HashMap<Uid, ZoneEntry>,
    zones_by_cell: HashMap<String, Vec<Uid>>,
    zone_by_name: HashMap<Name, Uid>,
    rtree: RTree<ZonePoint>,
    /// Cloudlets by slot: a cloudlet name is interned to a slot once, so the hot path reaches
    /// an instance's cloudlet by index instead of hashing its name.
    slots: Vec<Slot>,
    slot_by_name: HashMap<Name, u32>,
    slot_by_uid: HashMap<Uid, u32>,
    instances: HashMap<Uid, InstanceEntry>,
    instances_by_app: HashMap<Uid, Vec<Uid>>,
    instances_by_app_zone: HashMap<(Uid, Uid), Vec<Slim>>,
    cloudlets_by_zone: HashMap<Name, Vec<u32>>,
    apps: HashMap<Uid, AppEntry>,
    app_by_key: HashMap<(Name, Name, String), Uid>,
    /// The zones nearest to each zone, computed on first use and dropped whenever a zone
    /// changes: a device located by its cell stands at its zone, and this list spares the hot
    /// path an R-tree walk.
    near_lists: std::sync::RwLock<HashMap<Uid, Arc<[Uid]>>>,
    /// Rankings remembered for devices located by their cell (see
    /// [`crate::select::best_near`]), dropped on every change to the index.
    rankings: std::sync::RwLock<HashMap<RankKey, Remembered>>,
    /// Cells seen in zones' service areas, numbered once (the remembered rankings' key).
    cell_ids: HashMap<String, u32>,
    /// The network's view: expected performance from a cell to a DNAI, refreshed in the
    /// background from the network's analytics, so the hot path checks QoS bounds without a
    /// network call.
    paths: NetworkPaths,
    /// Each zone's network load (0..=1), from the same refresh.
    network_load: HashMap<Uid, f64>,
    /// The operator's placement policies by name (the one named after a region applies
    /// there, else `default`): their weights rank offers, their barring rules rule out.
    policies: HashMap<String, PlacementPolicySpec>,
    policy_names: HashMap<Uid, Name>,
    /// Organizations (uid -> name, parent) and each one's groups: the API's access checks
    /// read them per request (a role in an organization holds in its groups).
    org_names: HashMap<Uid, Name>,
    org_parent: HashMap<Name, Name>,
    org_children: HashMap<Name, BTreeSet<Name>>,
}

/// Expected performance by cell, then by DNAI.
pub type NetworkPaths = HashMap<String, HashMap<String, PathInfo>>;

/// What a remembered ranking is keyed by: app, the device's cell, and the weights' bits.
pub type RankKey = (Uid, u32, [u64; 5]);
/// A remembered ranking, best first: instance, score, distance in km.
pub type Remembered = Arc<[(Uid, f64, Option<f64>)]>;
/// Rankings remembered at most (then all are forgotten and relearnt).
const RANKINGS_MAX: usize = 1 << 20;

/// How many neighbours a zone's near list holds.
pub const NEAR_LIST: usize = 32;

impl EdgeIndex {
    /// Adds or replaces a zone.
    pub fn upsert_zone(&mut self, z: &Zone) {
        self.changed();
        self.remove_zone(z.metadata.uid);
        self.near_lists.get_mut().unwrap_or_else(|e| e.into_inner()).clear();
        let e = ZoneEntry {
            uid: z.metadata.uid,
            name: z.metadata.name.clone(),
            region: z.spec.region.clone(),
            location: z.spec.location,
            cells: z.spec.service_area.cells.clone(),
            polygon: z.spec.service_area.polygon.clone(),
            dnai: z.spec.dnai.clone(),
        };
        for c in &e.cells {
            self.zones_by_cell.entry(c.clone()).or_default().push(e.uid);
            let next = u32::try_from(self.cell_ids.len()).unwrap_or(u32::MAX);
            self.cell_ids.entry(c.clone()).or_insert(next);
        }
        self.zone_by_name.insert(e.name.clone(), e.uid);
        self.rtree.insert(ZonePoint { xy: [e.location.longitude, e.location.latitude], uid: e.uid });
        self.zones.insert(e.uid, e);
    }

    /// Removes a zone.
    pub fn remove_zone(&mut self, uid: Uid) {
        self.changed();
        let Some(old) = self.zones.remove(&uid) else { return };
        self.near_lists.get_mut().unwrap_or_else(|e| e.into_inner()).clear();
        for c in &old.cells {
            if let Some(v) = self.zones_by_cell.get_mut(c) {
                v.retain(|u| *u != uid);
                if v.is_empty() {
                    self.zones_by_cell.remove(c);
                }
            }
        }
        self.zone_by_name.remove(&old.name);
        self.rtree.remove(&ZonePoint { xy: [old.location.longitude, old.location.latitude], uid });
    }

    /// Every change may change a ranking: forget the remembered ones.
    fn changed(&mut self) {
        self.rankings.get_mut().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// A remembered ranking.
    pub fn remembered(&self, key: &RankKey) -> Option<Remembered> {
        self.rankings.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// Remembers a ranking until the index changes.
    pub fn remember(&self, key: RankKey, ranking: Remembered) {
        let mut r = self.rankings.write().unwrap_or_else(|e| e.into_inner());
        if r.len() >= RANKINGS_MAX {
            r.clear();
        }
        r.insert(key, ranking);
    }

    /// The slot of cloudlet name `name`, allocated on first sight.
    fn slot(&mut self, name: &Name) -> u32 {
        if let Some(s) = self.slot_by_name.get(name) {
            return *s;
        }
        let s = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot { name: name.clone(), cloudlet: None, instances: 0 });
        self.slot_by_name.insert(name.clone(), s);
        s
    }

    /// Adds or replaces a cloudlet.
    pub fn upsert_cloudlet(&mut self, c: &Cloudlet) {
        self.changed();
        self.remove_cloudlet(c.metadata.uid);
        let slot = self.slot(&c.metadata.name);
        // Names are unique: a cloudlet recreated under the same name replaces the old one.
        if let Some(old) = self.slots[slot as usize].cloudlet.as_ref().map(|(u, _)| *u) {
            self.remove_cloudlet(old);
        }
        let e = CloudletEntry {
            zone: c.spec.zone.clone(),
            ready: c.status.state == State::Ready,
            maintenance: c.spec.maintenance,
            vcpus: c.spec.capacity.vcpus,
            probe_url: c.observed.probe.as_ref().map(|p| format!("http://{}:{}", p.host, p.port)),
        };
        self.slot_by_uid.insert(c.metadata.uid, slot);
        self.cloudlets_by_zone.entry(e.zone.clone()).or_default().push(slot);
        self.slots[slot as usize].cloudlet = Some((c.metadata.uid, e));
    }

    /// Removes a cloudlet.
    pub fn remove_cloudlet(&mut self, uid: Uid) {
        self.changed();
        let Some(slot) = self.slot_by_uid.remove(&uid) else { return };
        if let Some((_, e)) = self.slots[slot as usize].cloudlet.take() {
            if let Some(v) = self.cloudlets_by_zone.get_mut(&e.zone) {
                v.retain(|s| *s != slot);
                if v.is_empty() {
                    self.cloudlets_by_zone.remove(&e.zone);
                }
            }
        }
    }

    /// Adds or replaces an app instance.
    pub fn upsert_instance(&mut self, i: &AppInstance) {
        self.changed();
        let slot = self.slot(&i.spec.cloudlet);
        let e = InstanceEntry {
            uid: i.metadata.uid,
            app: i.spec.app_id,
            zone: i.spec.edge_cloud_zone_id,
            cloudlet: i.spec.cloudlet.clone(),
            slot,
            ready: i.status.state == State::Ready && i.metadata.deletion_requested.is_none(),
            endpoint: i.observed.endpoints.first().cloned(),
            inside: inside(i),
            deleting: i.metadata.deletion_requested.is_some(),
        };
        // A change of state (the usual update) keeps the instance where the lists have it:
        // taking it out of an app's list is a walk through all its instances.
        if let Some(old) = self.instances.get_mut(&e.uid) {
            if (old.app, old.zone, old.slot) == (e.app, e.zone, e.slot) {
                let (slim, key) = (e.slim(), (e.app, e.zone));
                *old = e;
                if let Some(s) = self.instances_by_app_zone.get_mut(&key).and_then(|v| v.iter_mut().find(|s| s.uid == slim.uid)) {
                    *s = slim;
                }
                return;
            }
        }
        self.remove_instance(e.uid);
        self.instances_by_app.entry(e.app).or_default().push(e.uid);
        self.instances_by_app_zone.entry((e.app, e.zone)).or_default().push(e.slim());
        self.slots[slot as usize].instances += 1;
        self.instances.insert(e.uid, e);
    }

    /// Removes an app instance.
    pub fn remove_instance(&mut self, uid: Uid) {
        self.changed();
        let Some(old) = self.instances.remove(&uid) else { return };
        if let Some(v) = self.instances_by_app.get_mut(&old.app) {
            v.retain(|u| *u != uid);
            if v.is_empty() {
                self.instances_by_app.remove(&old.app);
            }
        }
        let key = (old.app, old.zone);
        if let Some(v) = self.instances_by_app_zone.get_mut(&key) {
            v.retain(|s| s.uid != uid);
            if v.is_empty() {
                self.instances_by_app_zone.remove(&key);
            }
        }
        if let Some(s) = self.slots.get_mut(old.slot as usize) {
            s.instances = s.instances.saturating_sub(1);
        }
    }

    /// Adds or replaces an app.
    pub fn upsert_app(&mut self, a: &App) {
        self.changed();
        self.remove_app(a.metadata.uid);
        let Some(org) = a.metadata.organization.clone() else { return };
        let e = AppEntry {
            uid: a.metadata.uid,
            org,
            name: a.metadata.name.clone(),
            version: a.spec.version.clone(),
            requirements: a.spec.requirements.clone(),
            device_key: a.spec.device_auth.as_ref().and_then(|d| AppKey::from_pem(&d.public_key_pem).ok()),
        };
        self.app_by_key.insert((e.org.clone(), e.name.clone(), e.version.clone()), e.uid);
        self.apps.insert(e.uid, e);
    }

    /// Removes an app.
    pub fn remove_app(&mut self, uid: Uid) {
        self.changed();
        if let Some(old) = self.apps.remove(&uid) {
            self.app_by_key.remove(&(old.org, old.name, old.version));
        }
    }

    /// A zone by id.
    pub fn zone(&self, uid: Uid) -> Option<&ZoneEntry> {
        self.zones.get(&uid)
    }

    /// All zones.
    pub fn zones(&self) -> impl Iterator<Item = &ZoneEntry> {
        self.zones.values()
    }

    /// An app by id.
    pub fn app(&self, uid: Uid) -> Option<&AppEntry> {
        self.apps.get(&uid)
    }

    /// An app by organization, name and version.
    pub fn app_by(&self, org: &Name, name: &Name, version: &str) -> Option<&AppEntry> {
        self.app_by_key.get(&(org.clone(), name.clone(), version.to_string())).and_then(|u| self.apps.get(u))
    }

    /// The instances of an app.
    pub fn instances_of(&self, app: Uid) -> impl Iterator<Item = &InstanceEntry> {
        self.instances_by_app.get(&app).into_iter().flatten().filter_map(|u| self.instances.get(u))
    }

    /// A cloudlet by name.
    pub fn cloudlet(&self, name: &Name) -> Option<&CloudletEntry> {
        self.slot_by_name.get(name).and_then(|s| self.slot_cloudlet(*s))
    }

    /// The cloudlet an instance runs on: one index, the hot path's way.
    pub fn cloudlet_of(&self, inst: &InstanceEntry) -> Option<&CloudletEntry> {
        self.slot_cloudlet(inst.slot)
    }

    /// The cloudlet in `slot` and its name, while one exists.
    pub fn cloudlet_at(&self, slot: u32) -> Option<(&Name, &CloudletEntry)> {
        self.slots.get(slot as usize).and_then(|s| s.cloudlet.as_ref().map(|(_, e)| (&s.name, e)))
    }

    /// The name of the cloudlet of `slot`, while one exists.
    fn slot_name(&self, slot: u32) -> Option<&Name> {
        self.slots.get(slot as usize).filter(|s| s.cloudlet.is_some()).map(|s| &s.name)
    }

    fn slot_cloudlet(&self, slot: u32) -> Option<&CloudletEntry> {
        self.slots.get(slot as usize).and_then(|s| s.cloudlet.as_ref()).map(|(_, e)| e)
    }

    /// Every app.
    pub fn apps(&self) -> impl Iterator<Item = &AppEntry> {
        self.apps.values()
    }

    /// An instance by id.
    pub fn instance(&self, uid: Uid) -> Option<&InstanceEntry> {
        self.instances.get(&uid)
    }

    /// The instances of an app in one zone.
    pub fn instances_in(&self, app: Uid, zone: Uid) -> impl Iterator<Item = &InstanceEntry> {
        self.instances_by_app_zone.get(&(app, zone)).into_iter().flatten().filter_map(|s| self.instances.get(&s.uid))
    }

    /// What ranking reads of the instances of an app in one zone, in one list.
    pub fn slims_in(&self, app: Uid, zone: Uid) -> &[Slim] {
        self.instances_by_app_zone.get(&(app, zone)).map_or(&[], Vec::as_slice)
    }

    /// Whether an app has instances in a zone (one lookup, touching no instance).
    pub fn has_instances_in(&self, app: Uid, zone: Uid) -> bool {
        self.instances_by_app_zone.contains_key(&(app, zone))
    }

    /// How many instances an app has.
    pub fn instance_count(&self, app: Uid) -> usize {
        self.instances_by_app.get(&app).map_or(0, Vec::len)
    }

    /// Zone ids by increasing distance from `p`.
    pub fn zones_near(&self, p: GeoPoint) -> impl Iterator<Item = Uid> + '_ {
        self.rtree.nearest_neighbor_iter(&[p.longitude, p.latitude]).map(|z| z.uid)
    }

    /// The [`NEAR_LIST`] zones nearest to `zone` (itself first), nearest first: what
    /// [`Self::zones_near`] yields from its location, remembered until zones change.
    pub fn zones_near_zone(&self, zone: &ZoneEntry) -> Arc<[Uid]> {
        if let Some(l) = self.near_lists.read().unwrap_or_else(|e| e.into_inner()).get(&zone.uid) {
            return l.clone();
        }
        let l: Arc<[Uid]> = self.zones_near(zone.location).take(NEAR_LIST).collect();
        self.near_lists.write().unwrap_or_else(|e| e.into_inner()).insert(zone.uid, l.clone());
        l
    }

    /// Adds or replaces a placement policy.
    pub fn upsert_policy(&mut self, p: &PlacementPolicy) {
        self.changed();
        self.remove_policy(p.metadata.uid);
        self.policy_names.insert(p.metadata.uid, p.metadata.name.clone());
        self.policies.insert(p.metadata.name.to_string(), p.spec.clone());
    }

    /// Removes a placement policy.
    pub fn remove_policy(&mut self, uid: Uid) {
        self.changed();
        if let Some(name) = self.policy_names.remove(&uid) {
            self.policies.remove(name.as_str());
        }
    }

    /// Adds or replaces an organization.
    pub fn upsert_org(&mut self, o: &Organization) {
        self.remove_org(o.metadata.uid);
        if let Some(parent) = &o.spec.parent {
            self.org_children.entry(parent.clone()).or_default().insert(o.metadata.name.clone());
            self.org_parent.insert(o.metadata.name.clone(), parent.clone());
        }
        self.org_names.insert(o.metadata.uid, o.metadata.name.clone());
    }

    /// Removes an organization.
    pub fn remove_org(&mut self, uid: Uid) {
        let Some(name) = self.org_names.remove(&uid) else { return };
        if let Some(parent) = self.org_parent.remove(&name) {
            if let Some(c) = self.org_children.get_mut(&parent) {
                c.remove(&name);
                if c.is_empty() {
                    self.org_children.remove(&parent);
                }
            }
        }
    }

    /// The organizations above `org`, nearest first (a parent chain is acyclic: a parent is
    /// set at creation and must exist then; the bound guards a corrupt store).
    pub fn org_ancestors(&self, org: &Name) -> Vec<Name> {
        let mut out = Vec::new();
        let mut at = org;
        while let Some(p) = self.org_parent.get(at) {
            if out.len() >= 64 || out.contains(p) {
                break;
            }
            out.push(p.clone());
            at = p;
        }
        out
    }

    /// `org` and every organization below it (its groups, theirs, ...): where a role held in
    /// `org` applies.
    pub fn org_scope(&self, org: &Name) -> BTreeSet<Name> {
        let mut scope = BTreeSet::from([org.clone()]);
        let mut todo = vec![org.clone()];
        while let Some(o) = todo.pop() {
            for c in self.org_children.get(&o).into_iter().flatten() {
                if scope.insert(c.clone()) {
                    todo.push(c.clone());
                }
            }
        }
        scope
    }

    /// The policy that applies in `region`: the one named after it, else `default` (also
    /// when no region is given).
    pub fn policy_for(&self, region: Option<&Name>) -> Option<&PlacementPolicySpec> {
        region.and_then(|r| self.policies.get(r.as_str())).or_else(|| self.policies.get("default"))
    }

    /// The weights that rank offers of `app` to a device in `region` (the region of the zone
    /// serving it; `None`: the `default` policy): the policy's weights for the app's class,
    /// else its base weights, else the platform's defaults. The same matrix admission uses.
    pub fn weights_for(&self, app: &AppEntry, region: Option<&Name>) -> crate::select::Weights {
        let w = self.policy_for(region).map_or_else(op_types::specs::PlacementWeights::default, |p| {
            app.requirements.app_class.as_ref().and_then(|c| p.by_class.get(c)).copied().unwrap_or(p.weights)
        });
        crate::select::Weights::from(&w)
    }

    /// Whether the operator bars `app` from every cloudlet of `zone` (no dynamic instance there).
    pub fn barred_zone(&self, app: &AppEntry, zone: &ZoneEntry) -> bool {
        let Some(p) = self.policy_for(Some(&zone.region)) else { return false };
        if p.barred_apps.contains(&app.uid) {
            return true;
        }
        let mut cloudlets = self.cloudlets_by_zone.get(&zone.name).into_iter().flatten().filter_map(|s| self.slot_name(*s)).peekable();
        cloudlets.peek().is_some() && cloudlets.all(|c| p.bars(app.uid, c))
    }

    /// Whether a device (any of its identifiers) is barred by the policy of `region` (its
    /// serving zone's; `None`: the `default` policy).
    pub fn device_barred(&self, ids: &[&str], region: Option<&Name>) -> bool {
        self.policy_for(region).is_some_and(|p| p.barred_devices.iter().any(|d| ids.contains(&d.as_str())))
    }

    /// The number of a cell named in some zone's service area.
    pub fn cell_id(&self, cell: &str) -> Option<u32> {
        self.cell_ids.get(cell).copied()
    }

    /// Replaces the network's view (paths and zones' network load); returns whether anything
    /// changed (only then are remembered rankings forgotten).
    pub fn set_network(&mut self, paths: NetworkPaths, network_load: std::collections::HashMap<Uid, f64>) -> bool {
        let load: HashMap<Uid, f64> = network_load.into_iter().collect();
        if paths == self.paths && load == self.network_load {
            return false;
        }
        self.changed();
        self.generation += 1;
        self.paths = paths;
        self.network_load = load;
        true
    }

    /// The expected performance from `cell` to `zone`'s user plane, when the network said.
    pub fn path(&self, cell: Option<&str>, zone: &ZoneEntry) -> Option<PathInfo> {
        self.paths.get(cell?)?.get(zone.dnai.as_deref()?).copied()
    }

    /// Whether the network's view has any path from `cell`.
    pub fn knows_paths_from(&self, cell: &str) -> bool {
        self.paths.contains_key(cell)
    }

    /// A zone's network load (0..=1; 0 when the network has not said).
    pub fn network_load(&self, zone: Uid) -> f64 {
        self.network_load.get(&zone).copied().unwrap_or(0.0)
    }

    /// Instances on an instance's cloudlet per vCPU of capacity: the edge-load criterion.
    pub fn load(&self, inst: &InstanceEntry) -> f64 {
        self.load_at(inst.slot)
    }

    /// [`EdgeIndex::load`] of the cloudlet in `slot`.
    pub fn load_at(&self, slot: u32) -> f64 {
        let Some(s) = self.slots.get(slot as usize) else { return 0.0 };
        let cap = s.cloudlet.as_ref().map_or(1, |(_, c)| c.vcpus.max(1)) as f64;
        s.instances as f64 / cap
    }

    /// Whether zone `uid` has a cloudlet up and out of maintenance.
    pub fn zone_serving(&self, uid: Uid) -> bool {
        let Some(z) = self.zones.get(&uid) else { return false };
        self.cloudlets_by_zone
            .get(&z.name)
            .into_iter()
            .flatten()
            .filter_map(|s| self.slot_cloudlet(*s))
            .any(|c| c.ready && !c.maintenance)
    }

    /// Whether any zone's service area contains the device (what [`Self::zones_serving`] finds,
    /// without collecting it).
    pub fn covers(&self, cell: Option<&str>, point: Option<GeoPoint>) -> bool {
        if cell.is_some_and(|c| self.zones_by_cell.contains_key(c)) {
            return true;
        }
        point.is_some_and(|p| self.zones.values().any(|z| geo::in_polygon(p, &z.polygon)))
    }

    /// The zones whose service area contains the device: by cell first, else by polygon.
    pub fn zones_serving(&self, cell: Option<&str>, point: Option<GeoPoint>) -> Vec<Uid> {
        if let Some(v) = cell.and_then(|c| self.zones_by_cell.get(c)) {
            return v.clone();
        }
        match point {
            Some(p) => self.zones.values().filter(|z| geo::in_polygon(p, &z.polygon)).map(|z| z.uid).collect(),
            None => Vec::new(),
        }
    }

    /// The zone nearest to `p` by location.
    pub fn nearest_zone(&self, p: GeoPoint) -> Option<&ZoneEntry> {
        self.rtree.nearest_neighbor(&[p.longitude, p.latitude]).and_then(|z| self.zones.get(&z.uid))
    }

    /// The location of a cell: the location of a zone serving it (the index knows cells only
    /// through zones' service areas).
    pub fn cell_zone(&self, cell: &str) -> Option<&ZoneEntry> {
        self.zones_by_cell.get(cell).and_then(|v| v.first()).and_then(|u| self.zones.get(u))
    }
}
