//! The admission inventory: every cloudlet by zone, every app instance by cloudlet and the
//! regions whose regulation lets nothing out, in memory, kept current by informers. Admission is a hot path (each deployment places against
//! the zone's cloudlets and what already runs on them); reading those from the store per
//! request costs a range over every instance of the region, which at 100,000 instances is
//! tens of megabytes per deployment. Admission writes through: an instance it creates is in
//! the inventory before the next admission runs, whatever the watch's delay.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use op_store::informer::{Change, Informer};
use op_store::{Repo, RepoError};
use op_types::specs::{AppInstance, AppInstanceSpec, Cloudlet, CloudletObserved, CloudletSpec, InstanceObserved, RegionSpec};
use op_types::{Kind, Name, Uid};

#[derive(Default)]
struct Inner {
    cloudlets: HashMap<Uid, Arc<Cloudlet>>,
    zone_cloudlets: HashMap<Name, BTreeSet<Uid>>,
    instances: HashMap<Uid, Arc<AppInstance>>,
    cloudlet_instances: HashMap<Name, BTreeSet<Uid>>,
    /// Regions that let nothing out of their cloudlets, by uid (their names, for admission).
    sealed_regions: HashMap<Uid, Name>,
}

/// Cloudlets by zone and instances by cloudlet. Cheap to clone.
#[derive(Clone, Default)]
pub struct Inventory {
    inner: Arc<RwLock<Inner>>,
}

impl Inventory {
    /// Lists cloudlets, instances and regions, then follows them in the background.
    pub async fn start(repo: Repo) -> Result<Self, RepoError> {
        let inv = Self::default();
        for kind in [Kind::Cloudlet, Kind::AppInstance, Kind::Region] {
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
                    if let Some(old) = inner.cloudlets.get(&c.metadata.uid).map(|o| o.spec.zone.clone()) {
                        inner.zone_cloudlets.entry(old).or_default().remove(&c.metadata.uid);
                    }
                    inner.zone_cloudlets.entry(c.spec.zone.clone()).or_default().insert(c.metadata.uid);
                    inner.cloudlets.insert(c.metadata.uid, Arc::new(c));
                }
            }
            (Kind::Cloudlet, Change::Deleted(uid)) => {
                let mut inner = self.write();
                if let Some(c) = inner.cloudlets.remove(&uid) {
                    inner.zone_cloudlets.entry(c.spec.zone.clone()).or_default().remove(&uid);
                }
            }
            (Kind::AppInstance, Change::Put(o)) => {
                if let Ok(i) = o.decode::<AppInstanceSpec, InstanceObserved>() {
                    self.put_instance(&i);
                }
            }
            (Kind::AppInstance, Change::Deleted(uid)) => {
                let mut inner = self.write();
                if let Some(i) = inner.instances.remove(&uid) {
                    inner.cloudlet_instances.entry(i.spec.cloudlet.clone()).or_default().remove(&uid);
                }
            }
            (Kind::Region, Change::Put(o)) => {
                if let Ok(r) = o.decode::<RegionSpec, ()>() {
                    let mut inner = self.write();
                    if r.spec.outbound_allowed() {
                        inner.sealed_regions.remove(&r.metadata.uid);
                    } else {
                        inner.sealed_regions.insert(r.metadata.uid, r.metadata.name);
                    }
                }
            }
            (Kind::Region, Change::Deleted(uid)) => {
                self.write().sealed_regions.remove(&uid);
            }
            _ => {}
        }
    }

    /// Records an instance (admission calls this right after storing one).
    pub fn put_instance(&self, i: &AppInstance) {
        let mut inner = self.write();
        if let Some(old) = inner.instances.get(&i.metadata.uid) {
            // A watch event older than what admission wrote through changes nothing.
            if old.metadata.revision > i.metadata.revision {
                return;
            }
            let was = old.spec.cloudlet.clone();
            inner.cloudlet_instances.entry(was).or_default().remove(&i.metadata.uid);
        }
        inner.cloudlet_instances.entry(i.spec.cloudlet.clone()).or_default().insert(i.metadata.uid);
        inner.instances.insert(i.metadata.uid, Arc::new(i.clone()));
    }

    /// The cloudlets of `zone`, by name.
    pub fn cloudlets_in(&self, zone: &Name) -> Vec<Cloudlet> {
        let inner = self.read();
        let mut out: Vec<Cloudlet> =
            inner.zone_cloudlets.get(zone).into_iter().flatten().filter_map(|u| inner.cloudlets.get(u).map(|c| Cloudlet::clone(c))).collect();
        out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        out
    }

    /// Whether region `name`'s regulation lets instances open connections out of their
    /// cloudlet (a region that does not exist regulates nothing).
    pub fn region_lets_out(&self, name: &Name) -> bool {
        !self.read().sealed_regions.values().any(|n| n == name)
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
        let spec = AppInstanceSpec { app_id: Uid::random(), edge_cloud_zone_id: Uid::random(), cloudlet: name(cloudlet), flavor: name("small"), federated: None, cluster: None };
        let mut i: AppInstance = Object::new(Kind::AppInstance, Some(name("org")), name("i1"), spec);
        i.metadata.revision = revision;
        i
    }

    fn raw(i: &AppInstance) -> op_store::informer::Raw {
        op_store::informer::Raw::of(i).unwrap()
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
        inv.apply(Kind::AppInstance, Change::Deleted(i.metadata.uid));
        assert!(inv.instances_on(&name("edge-b")).is_empty());
    }

    #[test]
    fn a_sealed_regions_regulation_holds_until_it_changes_or_goes() {
        let inv = Inventory::default();
        let mut r: op_types::specs::Region =
            Object::new(Kind::Region, None, name("eu"), RegionSpec { privacy_policy: Some(op_types::specs::PrivacyPolicy::default()), ..Default::default() });
        assert!(inv.region_lets_out(&name("eu")), "an unknown region regulates nothing");
        inv.apply(Kind::Region, Change::Put(&op_store::informer::Raw::of(&r).unwrap()));
        assert!(!inv.region_lets_out(&name("eu")));
        assert!(inv.region_lets_out(&name("us")));
        r.spec.privacy_policy = None;
        inv.apply(Kind::Region, Change::Put(&op_store::informer::Raw::of(&r).unwrap()));
        assert!(inv.region_lets_out(&name("eu")), "opened up");
        r.spec.privacy_policy = Some(op_types::specs::PrivacyPolicy::default());
        inv.apply(Kind::Region, Change::Put(&op_store::informer::Raw::of(&r).unwrap()));
        inv.apply(Kind::Region, Change::Deleted(r.metadata.uid));
        assert!(inv.region_lets_out(&name("eu")), "deleted");
    }
}
