//! The admission inventory: every cloudlet by zone, every app instance by cloudlet, the
//! regions whose regulation does not let everything out, and the zones, flavors, placement
//! policies and platform services, in memory, kept current by informers. Admission is a hot
//! path (each deployment places against
//! the zone's cloudlets and what already runs on them); reading those from the store per
//! request costs a range over every instance of the region, which at 100,000 instances is
//! tens of megabytes per deployment. Admission writes through: an instance it creates is in
//! the inventory before the next admission runs, whatever the watch's delay; so do the
//! operator's writes of the small kinds (a policy replaced applies to the next deployment).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use op_store::informer::{Change, Informer};
use op_store::{Repo, RepoError};
use op_types::egress::Egress;
use op_types::specs::{
    AppInstance, AppInstanceSpec, Cloudlet, CloudletObserved, CloudletSpec, FlavorSpec, InstanceObserved, PlacementPolicySpec, PlatformServiceSpec, PlatformType, RegionSpec, ZoneSpec,
};
use op_types::{Kind, Name, Object, Uid};

#[derive(Default)]
struct Inner {
    cloudlets: HashMap<Uid, Arc<Cloudlet>>,
    /// Each zone's cloudlets, by name (the order admission weighs them in).
    zone_cloudlets: HashMap<Name, BTreeMap<Name, Uid>>,
    /// Each zone's cloudlets as admission takes them, listed on the first deployment after a
    /// change of the zone's cloudlets: a deployment copies one list instead of looking up a
    /// hundred cloudlets, each somewhere else in memory.
    zone_lists: HashMap<Name, Arc<[Arc<Cloudlet>]>>,
    instances: HashMap<Uid, Arc<AppInstance>>,
    cloudlet_instances: HashMap<Name, BTreeSet<Uid>>,
    /// What the instances on each cloudlet (by name) take: admission weighs a zone's
    /// cloudlets from these counts instead of walking every instance there. Shared, so that
    /// admission takes a zone's hundred without copying them; a count changes its own copy
    /// when an admission still holds the old one.
    loads: HashMap<Name, Arc<Load>>,
    /// Regions that do not let everything out of their cloudlets, by uid: their names (for
    /// admission) and what they let out.
    sealed_regions: HashMap<Uid, (Name, Egress)>,
    /// Cloudlets by name.
    cloudlet_names: HashMap<Name, Uid>,
    /// The Docker cloudlets that accept instances (the serverless points of presence), with
    /// their zones, and a count of the changes to that set: the serverless ingress looks
    /// again only when it moved, not on every update of ten thousand cloudlets.
    docker: BTreeMap<Name, Name>,
    docker_changes: u64,
    /// The small kinds admission reads on every deployment, by uid.
    zones: HashMap<Uid, Arc<Object<ZoneSpec>>>,
    flavors: HashMap<Uid, Arc<Object<FlavorSpec>>>,
    policies: HashMap<Uid, Arc<Object<PlacementPolicySpec>>>,
    services: HashMap<Uid, Arc<Object<PlatformServiceSpec>>>,
}

/// What the instances on one cloudlet take: how many of each flavor, and of each app.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// Instances by flavor name.
    pub flavors: HashMap<Name, u32>,
    /// Instances by app.
    pub apps: HashMap<Uid, u32>,
}

impl Inner {
    /// Takes instance `uid` out, with its count.
    fn remove_instance(&mut self, uid: Uid) {
        if let Some(i) = self.instances.remove(&uid) {
            self.cloudlet_instances.entry(i.spec.cloudlet.clone()).or_default().remove(&uid);
            self.count(&i, false);
        }
    }

    /// Counts instance `i` on its cloudlet (`add`) or takes it off; a count that reaches zero
    /// goes, and so does a cloudlet with nothing counted.
    fn count(&mut self, i: &AppInstance, add: bool) {
        fn bump<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, key: K, add: bool) {
            use std::collections::hash_map::Entry;
            match (counts.entry(key), add) {
                (e, true) => *e.or_default() += 1,
                (Entry::Occupied(mut e), false) => {
                    *e.get_mut() -= 1;
                    if *e.get() == 0 {
                        e.remove();
                    }
                }
                (Entry::Vacant(_), false) => {}
            }
        }
        let load = Arc::make_mut(self.loads.entry(i.spec.cloudlet.clone()).or_default());
        bump(&mut load.flavors, i.spec.flavor.clone(), add);
        bump(&mut load.apps, i.spec.app_id, add);
        if load.flavors.is_empty() && load.apps.is_empty() {
            self.loads.remove(&i.spec.cloudlet);
        }
    }
}

/// The kinds the inventory holds.
const HELD: [Kind; 7] = [Kind::Cloudlet, Kind::AppInstance, Kind::Region, Kind::Zone, Kind::Flavor, Kind::PlacementPolicy, Kind::PlatformService];

/// Puts `o` in `map` unless the map holds a newer version (a watch event older than what the
/// API wrote through changes nothing).
fn put_newer<T>(map: &mut HashMap<Uid, Arc<Object<T>>>, o: Object<T>) {
    if map.get(&o.metadata.uid).is_none_or(|old| old.metadata.revision <= o.metadata.revision) {
        map.insert(o.metadata.uid, Arc::new(o));
    }
}

/// Cloudlets by zone and by name, instances by cloudlet, regions' regulations, and the small
/// kinds every deployment reads (zones, flavors, placement policies, platform services), so
/// that admission reads memory, not the store. Cheap to clone.
#[derive(Clone, Default)]
pub struct Inventory {
    inner: Arc<RwLock<Inner>>,
}

impl Inventory {
    /// Lists what it holds, then follows it in the background.
    pub async fn start(repo: Repo) -> Result<Self, RepoError> {
        let inv = Self::default();
        for kind in HELD {
            let informer = Informer::start(repo.clone(), kind, &mut |c| inv.apply(kind, c)).await?;
            let me = inv.clone();
            tokio::spawn(informer.run(move |c| me.apply(kind, c)));
        }
        Ok(inv)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, kind: Kind, change: Change<'_>) {
        match (kind, change) {
            (Kind::Cloudlet, Change::Put(o)) => {
                if let Ok(c) = o.decode::<CloudletSpec, CloudletObserved>() {
                    let mut inner = self.write();
                    if let Some((zone, name)) = inner.cloudlets.get(&c.metadata.uid).map(|o| (o.spec.zone.clone(), o.metadata.name.clone())) {
                        inner.zone_lists.remove(&zone);
                        inner.zone_cloudlets.entry(zone).or_default().remove(&name);
                    }
                    inner.zone_lists.remove(&c.spec.zone);
                    inner.zone_cloudlets.entry(c.spec.zone.clone()).or_default().insert(c.metadata.name.clone(), c.metadata.uid);
                    inner.cloudlet_names.insert(c.metadata.name.clone(), c.metadata.uid);
                    let moved = if c.spec.platform_type == PlatformType::Docker && c.metadata.deletion_requested.is_none() {
                        inner.docker.insert(c.metadata.name.clone(), c.spec.zone.clone()).as_ref() != Some(&c.spec.zone)
                    } else {
                        inner.docker.remove(&c.metadata.name).is_some()
                    };
                    inner.docker_changes += u64::from(moved);
                    inner.cloudlets.insert(c.metadata.uid, Arc::new(c));
                }
            }
            (Kind::Cloudlet, Change::Deleted(uid)) => {
                let mut inner = self.write();
                if let Some(c) = inner.cloudlets.remove(&uid) {
                    inner.zone_lists.remove(&c.spec.zone);
                    inner.zone_cloudlets.entry(c.spec.zone.clone()).or_default().remove(&c.metadata.name);
                    inner.cloudlet_names.remove(&c.metadata.name);
                    let moved = inner.docker.remove(&c.metadata.name).is_some();
                    inner.docker_changes += u64::from(moved);
                }
            }
            (Kind::AppInstance, Change::Put(o)) => {
                if let Ok(i) = o.decode::<AppInstanceSpec, InstanceObserved>() {
                    self.put_instance(&i);
                }
            }
            (Kind::AppInstance, Change::Deleted(uid)) => self.write().remove_instance(uid),
            (Kind::Region, Change::Put(o)) => {
                if let Ok(r) = o.decode::<RegionSpec, ()>() {
                    let mut inner = self.write();
                    match r.spec.egress() {
                        Egress::All => inner.sealed_regions.remove(&r.metadata.uid),
                        egress => inner.sealed_regions.insert(r.metadata.uid, (r.metadata.name, egress)),
                    };
                }
            }
            (Kind::Region, Change::Deleted(uid)) => {
                self.write().sealed_regions.remove(&uid);
            }
            (Kind::Zone, c) => self.keep(c, |i| &mut i.zones),
            (Kind::Flavor, c) => self.keep(c, |i| &mut i.flavors),
            (Kind::PlacementPolicy, c) => self.keep(c, |i| &mut i.policies),
            (Kind::PlatformService, c) => self.keep(c, |i| &mut i.services),
            _ => {}
        }
    }

    /// Applies a change of one of the small kinds to its map (decoded before the lock is
    /// taken; a version older than the one held changes nothing).
    fn keep<T: serde::de::DeserializeOwned>(&self, change: Change<'_>, map: impl FnOnce(&mut Inner) -> &mut HashMap<Uid, Arc<Object<T>>>) {
        match change {
            Change::Put(o) => {
                if let Ok(o) = o.decode::<T, ()>() {
                    put_newer(map(&mut self.write()), o);
                }
            }
            Change::Deleted(uid) => {
                map(&mut self.write()).remove(&uid);
            }
        }
    }

    /// Records what the API just stored (or, with `None`, removed), so that the next request
    /// sees it even before the store's watch tells the inventory; kinds it does not hold are
    /// ignored.
    pub fn wrote<S: serde::Serialize, X: serde::Serialize>(&self, kind: Kind, uid: Uid, obj: Option<&Object<S, X>>) {
        if !HELD.contains(&kind) {
            return;
        }
        match obj.map(op_store::informer::Raw::of) {
            Some(Ok(raw)) => self.apply(kind, Change::Put(&raw)),
            Some(Err(_)) => {}
            None => self.apply(kind, Change::Deleted(uid)),
        }
    }

    /// Zone `uid`.
    pub fn zone(&self, uid: Uid) -> Option<Arc<Object<ZoneSpec>>> {
        self.read().zones.get(&uid).cloned()
    }

    /// Every zone's uid.
    pub fn zone_uids(&self) -> Vec<Uid> {
        self.read().zones.keys().copied().collect()
    }

    /// Every instance (shared, not copied: the resource and usage samplers walk them all).
    pub fn instances(&self) -> Vec<Arc<AppInstance>> {
        self.read().instances.values().cloned().collect()
    }

    /// Every flavor.
    pub fn flavors(&self) -> Vec<Arc<Object<FlavorSpec>>> {
        self.read().flavors.values().cloned().collect()
    }

    /// The placement policy named `name`.
    pub fn placement_policy(&self, name: &Name) -> Option<Arc<Object<PlacementPolicySpec>>> {
        self.read().policies.values().find(|p| &p.metadata.name == name).cloned()
    }

    /// The platform service named `name`.
    pub fn platform_service(&self, name: &Name) -> Option<Arc<Object<PlatformServiceSpec>>> {
        self.read().services.values().find(|p| &p.metadata.name == name).cloned()
    }

    /// The cloudlet named `name`.
    pub fn cloudlet(&self, name: &Name) -> Option<Arc<Cloudlet>> {
        let inner = self.read();
        inner.cloudlet_names.get(name).and_then(|u| inner.cloudlets.get(u)).cloned()
    }

    /// Records an instance (admission calls this right after storing one).
    pub fn put_instance(&self, i: &AppInstance) {
        let mut inner = self.write();
        if let Some(old) = inner.instances.get(&i.metadata.uid).cloned() {
            // A watch event older than what admission wrote through changes nothing.
            if old.metadata.revision > i.metadata.revision {
                return;
            }
            inner.cloudlet_instances.entry(old.spec.cloudlet.clone()).or_default().remove(&i.metadata.uid);
            inner.count(&old, false);
        }
        inner.cloudlet_instances.entry(i.spec.cloudlet.clone()).or_default().insert(i.metadata.uid);
        inner.count(i, true);
        inner.instances.insert(i.metadata.uid, Arc::new(i.clone()));
    }

    /// Takes back an instance admission counted before storing it, when the store refused it
    /// (an instance the store holds, which has a revision, is left alone).
    pub fn forget_unstored(&self, uid: Uid) {
        let mut inner = self.write();
        if inner.instances.get(&uid).is_some_and(|i| i.metadata.revision == 0) {
            inner.remove_instance(uid);
        }
    }

    /// The Docker cloudlets that accept instances, with their zones, and how many times that
    /// set has changed (equal counts: the same set).
    pub fn docker_cloudlets(&self) -> (u64, BTreeMap<Name, Name>) {
        let inner = self.read();
        (inner.docker_changes, inner.docker.clone())
    }

    /// The cloudlets of `zone`, by name (shared, not copied).
    pub fn cloudlets_in(&self, zone: &Name) -> Vec<Arc<Cloudlet>> {
        if let Some(listed) = self.read().zone_lists.get(zone) {
            return listed.to_vec();
        }
        // Listed under the write lock, so that no change of the zone's cloudlets falls between
        // the listing and its keeping.
        let mut inner = self.write();
        let listed: Arc<[Arc<Cloudlet>]> = inner.zone_cloudlets.get(zone).into_iter().flatten().filter_map(|(_, u)| inner.cloudlets.get(u).cloned()).collect();
        inner.zone_lists.insert(zone.clone(), listed.clone());
        listed.to_vec()
    }

    /// What the instances on each of `cloudlets` take, in their order.
    pub fn loads(&self, cloudlets: &[Arc<Cloudlet>]) -> Vec<Arc<Load>> {
        let inner = self.read();
        cloudlets.iter().map(|c| inner.loads.get(&c.metadata.name).cloned().unwrap_or_default()).collect()
    }

    /// Whether region `name`'s regulation lets instances open connections out of their
    /// cloudlet (a region that does not exist regulates nothing).
    pub fn region_lets_out(&self, name: &Name) -> bool {
        self.region_egress(name) == Egress::All
    }

    /// What region `name`'s regulation lets out of its cloudlets (through a cluster's egress
    /// gateway, unless everything).
    pub fn region_egress(&self, name: &Name) -> Egress {
        self.read().sealed_regions.values().find(|(n, _)| n == name).map_or(Egress::All, |(_, e)| e.clone())
    }

    /// Every cloudlet (shared, not copied: the serverless ingress checks them on every change
    /// of the index).
    pub fn cloudlets(&self) -> Vec<Arc<Cloudlet>> {
        self.read().cloudlets.values().cloned().collect()
    }

    /// The instances placed on `cloudlet` (shared, not copied: admission reads every
    /// instance of a zone per deployment).
    pub fn instances_on(&self, cloudlet: &Name) -> Vec<Arc<AppInstance>> {
        let inner = self.read();
        inner.cloudlet_instances.get(cloudlet).into_iter().flatten().filter_map(|u| inner.instances.get(u).cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use op_types::specs::AppInstanceSpec;
    use op_types::Object;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn instance(cloudlet: &str, revision: u64) -> AppInstance {
        let spec = AppInstanceSpec { app_id: Uid::random(), edge_cloud_zone_id: Uid::random(), cloudlet: name(cloudlet), flavor: name("small"), federated: None, cluster: None, app_revision: None };
        let mut i: AppInstance = Object::new(Kind::AppInstance, Some(name("org")), name("i1"), spec);
        i.metadata.revision = revision;
        i
    }

    fn raw(i: &AppInstance) -> op_store::informer::Raw {
        op_store::informer::Raw::of(i).unwrap()
    }

    fn cloudlet(n: &str, zone: &str, maintenance: bool) -> Cloudlet {
        let spec: CloudletSpec = serde_json::from_value(serde_json::json!({"zone": zone, "location": {"latitude": 45.0, "longitude": 5.0}, "platformType": "sim",
            "driverEndpoint": format!("sim://{n}"), "capacity": {"vcpus": 8, "memoryMb": 8192, "diskGb": 100}, "flavors": ["small"], "maintenance": maintenance}))
        .unwrap();
        Object::new(Kind::Cloudlet, None, name(n), spec)
    }

    /// A zone's list of cloudlets, kept after the first deployment there, follows every
    /// change of them: one added, one changed, one moved to another zone, one deleted.
    #[test]
    fn a_zones_kept_cloudlets_follow_their_changes() {
        let inv = Inventory::default();
        let listed = |zone: &str| inv.cloudlets_in(&name(zone)).iter().map(|c| (c.metadata.name.to_string(), c.spec.maintenance)).collect::<Vec<_>>();
        let (a, mut b) = (cloudlet("edge-a", "z1", false), cloudlet("edge-b", "z1", false));
        inv.apply(Kind::Cloudlet, Change::Put(&op_store::informer::Raw::of(&a).unwrap()));
        assert_eq!(listed("z1"), [("edge-a".to_string(), false)]);
        inv.apply(Kind::Cloudlet, Change::Put(&op_store::informer::Raw::of(&b).unwrap()));
        assert_eq!(listed("z1"), [("edge-a".to_string(), false), ("edge-b".to_string(), false)], "one added");
        b.spec.maintenance = true;
        inv.apply(Kind::Cloudlet, Change::Put(&op_store::informer::Raw::of(&b).unwrap()));
        assert_eq!(listed("z1"), [("edge-a".to_string(), false), ("edge-b".to_string(), true)], "one changed");
        assert!(listed("z2").is_empty());
        b.spec.zone = name("z2");
        inv.apply(Kind::Cloudlet, Change::Put(&op_store::informer::Raw::of(&b).unwrap()));
        assert_eq!((listed("z1"), listed("z2")), (vec![("edge-a".to_string(), false)], vec![("edge-b".to_string(), true)]), "one moved");
        inv.apply(Kind::Cloudlet, Change::Deleted(a.metadata.uid));
        assert!(listed("z1").is_empty(), "one deleted");
    }

    #[test]
    fn written_through_instances_count_until_deleted_and_older_events_change_nothing() {
        let inv = Inventory::default();
        let mut i = instance("edge-a", 10);
        inv.put_instance(&i);
        assert_eq!(inv.instances_on(&name("edge-a")).len(), 1);
        // The watch delivers an older version of it (before admission's own write was seen).
        let mut old = i.clone();
        old.metadata.revision = 9;
        old.spec.cloudlet = name("edge-b");
        inv.apply(Kind::AppInstance, Change::Put(&raw(&old)));
        assert_eq!(inv.instances_on(&name("edge-a")).len(), 1, "an older event does not move it");
        assert!(inv.instances_on(&name("edge-b")).is_empty());
        // A newer one does.
        i.metadata.revision = 11;
        i.spec.cloudlet = name("edge-b");
        inv.apply(Kind::AppInstance, Change::Put(&raw(&i)));
        assert!(inv.instances_on(&name("edge-a")).is_empty());
        assert_eq!(inv.instances_on(&name("edge-b")).len(), 1);
        let load = |cl: &str| inv.read().loads.get(&name(cl)).map(|l| Load::clone(l)).unwrap_or_default();
        assert_eq!(load("edge-a"), Load::default(), "moved off: counted off");
        assert_eq!((load("edge-b").flavors.get(&name("small")), load("edge-b").apps.get(&i.spec.app_id)), (Some(&1), Some(&1)));
        // A second instance of the same app, another flavor.
        let mut j = instance("edge-b", 12);
        (j.metadata.uid, j.spec.app_id, j.spec.flavor) = (Uid::random(), i.spec.app_id, name("large"));
        // What an admission took before is not changed under it.
        let held = inv.read().loads.get(&name("edge-b")).cloned().unwrap();
        inv.put_instance(&j);
        inv.put_instance(&j);
        assert_eq!((held.flavors.len(), held.apps.get(&i.spec.app_id)), (1, Some(&1)), "an admission's copy stays as it was");
        assert_eq!((load("edge-b").flavors.len(), load("edge-b").apps.get(&i.spec.app_id)), (2, Some(&2)), "counted once however often told");
        inv.apply(Kind::AppInstance, Change::Deleted(i.metadata.uid));
        assert_eq!(inv.instances_on(&name("edge-b")).len(), 1);
        assert_eq!((load("edge-b").flavors.get(&name("small")), load("edge-b").apps.get(&i.spec.app_id)), (None, Some(&1)));
        inv.apply(Kind::AppInstance, Change::Deleted(j.metadata.uid));
        assert!(inv.instances_on(&name("edge-b")).is_empty());
        assert!(inv.read().loads.is_empty(), "nothing left counted");
    }

    /// An admission counted before the store commits is taken back when the store refuses
    /// it; an instance the store holds is not.
    #[test]
    fn an_unstored_admission_is_taken_back_and_a_stored_one_kept() {
        let inv = Inventory::default();
        let reserved = instance("edge-a", 0);
        inv.put_instance(&reserved);
        assert_eq!(inv.instances_on(&name("edge-a")).len(), 1, "counted while the store commits");
        inv.forget_unstored(reserved.metadata.uid);
        assert!(inv.instances_on(&name("edge-a")).is_empty() && inv.read().loads.is_empty(), "taken back");
        let stored = instance("edge-a", 5);
        inv.put_instance(&stored);
        inv.forget_unstored(stored.metadata.uid);
        assert_eq!(inv.instances_on(&name("edge-a")).len(), 1, "a stored instance stays");
    }

    #[test]
    fn a_sealed_regions_regulation_holds_until_it_changes_or_goes() {
        let inv = Inventory::default();
        let mut r: op_types::specs::Region =
            Object::new(Kind::Region, None, name("eu"), RegionSpec { privacy_policy: Some(op_types::specs::PrivacyPolicy::default()), ..Default::default() });
        assert!(inv.region_lets_out(&name("eu")), "an unknown region regulates nothing");
        inv.apply(Kind::Region, Change::Put(&op_store::informer::Raw::of(&r).unwrap()));
        assert!(!inv.region_lets_out(&name("eu")));
        assert_eq!(inv.region_egress(&name("eu")), Egress::Nothing);
        assert!(inv.region_lets_out(&name("us")));
        let web = op_types::egress::OutboundRule { protocol: op_types::specs::Protocol::TCP, remote_cidr: "0.0.0.0/0".into(), port_min: 443, port_max: None };
        r.spec.privacy_policy = Some(op_types::specs::PrivacyPolicy { outbound_allowed: false, outbound_rules: vec![web.clone()] });
        inv.apply(Kind::Region, Change::Put(&op_store::informer::Raw::of(&r).unwrap()));
        assert!(!inv.region_lets_out(&name("eu")), "selective rules hold plain instances back");
        assert_eq!(inv.region_egress(&name("eu")), Egress::Rules(vec![web]));
        r.spec.privacy_policy = None;
        inv.apply(Kind::Region, Change::Put(&op_store::informer::Raw::of(&r).unwrap()));
        assert!(inv.region_lets_out(&name("eu")), "opened up");
        r.spec.privacy_policy = Some(op_types::specs::PrivacyPolicy::default());
        inv.apply(Kind::Region, Change::Put(&op_store::informer::Raw::of(&r).unwrap()));
        inv.apply(Kind::Region, Change::Deleted(r.metadata.uid));
        assert!(inv.region_lets_out(&name("eu")), "deleted");
    }
}
