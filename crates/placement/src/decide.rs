//! Single-instance placement: which site (cloudlet) gets one instance of an app.
//!
//! Hard constraints first (the app provider's criteria and the operator's barring rules), each
//! rejection with its reason; then the admissible sites are ranked by the operator's weight
//! matrix for the app's class. The decision keeps both lists, so the platform can say why this
//! edge and why not that one.
//!
//! Candidates: with a location to be near (a device's, for dynamic instantiation) the sites
//! nearest to it are examined first, by an R-tree walk that stops once [`NEAR_ADMISSIBLE`]
//! admissible sites are ranked (so a decision's cost does not grow with the operator's size);
//! without one, every site of the footprint is.

use std::collections::{BTreeMap, BTreeSet};

use rstar::{PointDistance, RTree, RTreeObject, AABB};

/// Where a site stands (WGS84 degrees).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

impl Point {
    /// Great-circle distance in km.
    pub fn km(self, o: Point) -> f64 {
        let (a, b) = (self.lat.to_radians(), o.lat.to_radians());
        let dlat = b - a;
        let dlon = (o.lon - self.lon).to_radians();
        let h = (dlat / 2.0).sin().powi(2) + a.cos() * b.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * 6371.0 * h.sqrt().min(1.0).asin()
    }
}

/// Compute resources, in the units the platform accounts in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Thousandths of a vCPU.
    pub millicpus: u64,
    /// Memory, MiB.
    pub memory_mb: u64,
    /// Disk, GiB.
    pub disk_gb: u64,
    /// GPUs.
    pub gpus: u32,
}

impl Resources {
    /// Whether `self` fits in `other`, and if not, which resource is short.
    pub fn short_in(&self, other: &Resources) -> Option<Resource> {
        if self.millicpus > other.millicpus {
            Some(Resource::Cpu)
        } else if self.memory_mb > other.memory_mb {
            Some(Resource::Memory)
        } else if self.disk_gb > other.disk_gb {
            Some(Resource::Disk)
        } else if self.gpus > other.gpus {
            Some(Resource::Gpu)
        } else {
            None
        }
    }
}

/// A kind of resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// CPU.
    Cpu,
    /// Memory.
    Memory,
    /// Disk.
    Disk,
    /// GPUs.
    Gpu,
}

/// A site an instance can go to: a cloudlet, as placement sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// The caller's id for it.
    pub id: u32,
    /// Its zone.
    pub zone: u32,
    /// Its zone's region (for data geography).
    pub region: u32,
    /// Where it stands.
    pub location: Point,
    /// Free capacity (developers never see it; decisions use it).
    pub free: Resources,
    /// Flavors it offers.
    pub flavors: BTreeSet<u32>,
    /// Platform services it offers (e.g. a managed database), as bits.
    pub services: u64,
    /// Up and out of maintenance.
    pub available: bool,
    /// Supports device and network mobility (session continuity across edges).
    pub mobility: bool,
    /// Edge load now, 0 (idle) to 1 (full).
    pub edge_load: f64,
    /// Network load around the site now, 0 to 1.
    pub network_load: f64,
    /// Forecast edge usage, 0 to 1 (see [`crate::forecast`]).
    pub forecast: f64,
}

/// What the app needs (the app provider's criteria that bear on one instance).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Need {
    /// The app.
    pub app: u32,
    /// Its class, for the operator's weight matrix.
    pub class: u32,
    /// Resources of one instance (from its flavor or requirements).
    pub resources: Resources,
    /// A flavor the site must offer, if the app names one.
    pub flavor: Option<u32>,
    /// Platform services the site must offer, as bits.
    pub services: u64,
    /// Zones the app may run in (its footprint); empty: anywhere.
    pub zones: BTreeSet<u32>,
    /// Regions its data must stay in; empty: no restriction.
    pub regions: BTreeSet<u32>,
    /// The location to serve (a device's, or the footprint's centre), if any.
    pub near: Option<Point>,
    /// Latency bound, ms (checked with the caller's latency estimate).
    pub max_latency_ms: Option<f64>,
    /// The app must be able to move with its devices.
    pub mobility: bool,
    /// Sites (ids) where the app is already deployed.
    pub deployed: BTreeSet<u32>,
}

/// The operator's weight matrix: how much each criterion costs (lower total wins). The
/// platform's stored policy type, so what the operator writes is what the engine reads.
pub use op_types::specs::PlacementWeights as Weights;

/// The operator's policy: a weight matrix per app class and barring rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// Weights for classes without their own.
    pub weights: Weights,
    /// Weights per app class.
    pub by_class: BTreeMap<u32, Weights>,
    /// Sites no app may use.
    pub barred_sites: BTreeSet<u32>,
    /// Apps barred from every site.
    pub barred_apps: BTreeSet<u32>,
    /// Apps barred from particular sites.
    pub barred_pairs: BTreeSet<(u32, u32)>,
}

impl Policy {
    /// The weights for `class`.
    pub fn weights_for(&self, class: u32) -> &Weights {
        self.by_class.get(&class).unwrap_or(&self.weights)
    }
}

/// Why a site was ruled out.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// Down or in maintenance.
    Unavailable,
    /// The operator bars the app, the site, or the app on the site.
    Barred,
    /// Outside the app's footprint.
    OutsideFootprint,
    /// In a region the app's data must not go to.
    DataGeography,
    /// The flavor the app names is not offered there.
    NoFlavor,
    /// A platform service the app needs is not offered there.
    NoService,
    /// Not enough of a resource free.
    NoCapacity(Resource),
    /// Estimated latency above the app's bound.
    Latency {
        /// The estimate, ms.
        expected_ms: f64,
    },
    /// The app needs mobility support the site lacks.
    NoMobility,
}

/// The criteria of the weight matrix, in the order of [`Scored::parts`].
pub const CRITERIA: [&str; 7] = ["distance", "latency", "edge load", "network load", "forecast usage", "not yet deployed", "no mobility support"];

/// One admissible site and its cost, criterion by criterion.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    /// The site's id.
    pub site: u32,
    /// Total cost (lower wins): the sum of `parts`.
    pub score: f64,
    /// Each criterion's weighted cost, in the order of [`CRITERIA`].
    pub parts: [f64; 7],
    /// Distance to the location served, km.
    pub distance_km: Option<f64>,
    /// The latency estimate used, ms.
    pub latency_ms: Option<f64>,
}

/// A decision and its explanation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Admissible sites, best first (ties to the lower id).
    pub ranked: Vec<Scored>,
    /// Sites ruled out, with why.
    pub rejected: Vec<(u32, Rejection)>,
}

impl Decision {
    /// The chosen site, if any is admissible.
    pub fn chosen(&self) -> Option<u32> {
        self.ranked.first().map(|s| s.site)
    }
}

impl Scored {
    /// The cost in words: the total and its non-zero parts, largest first.
    pub fn explain(&self) -> String {
        let mut parts: Vec<(f64, &str)> = self.parts.iter().zip(CRITERIA).filter(|(v, _)| **v > 0.0).map(|(v, n)| (*v, n)).collect();
        parts.sort_by(|a, b| b.0.total_cmp(&a.0));
        let list: Vec<String> = parts.iter().map(|(v, n)| format!("{n} {v:.2}")).collect();
        if list.is_empty() { format!("cost {:.2}", self.score) } else { format!("cost {:.2} ({})", self.score, list.join(", ")) }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Unavailable => f.write_str("unavailable (down or in maintenance)"),
            Rejection::Barred => f.write_str("barred by the operator"),
            Rejection::OutsideFootprint => f.write_str("outside the app's footprint"),
            Rejection::DataGeography => f.write_str("outside the regions the app's data may go to"),
            Rejection::NoFlavor => f.write_str("does not offer the flavor"),
            Rejection::NoService => f.write_str("does not offer a platform service the app needs"),
            Rejection::NoCapacity(r) => write!(f, "no {} capacity left", match r {
                Resource::Cpu => "CPU",
                Resource::Memory => "memory",
                Resource::Disk => "disk",
                Resource::Gpu => "GPU",
            }),
            Rejection::Latency { expected_ms } => write!(f, "latency {expected_ms:.1} ms above the app's bound"),
            Rejection::NoMobility => f.write_str("no mobility support, which the app requires"),
        }
    }
}

/// How many admissible sites near the location served are ranked before the walk stops.
pub const NEAR_ADMISSIBLE: usize = 16;

#[derive(Clone, Debug, PartialEq)]
struct Located {
    xy: [f64; 2],
    index: usize,
}

impl RTreeObject for Located {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        AABB::from_point(self.xy)
    }
}

impl PointDistance for Located {
    fn distance_2(&self, p: &[f64; 2]) -> f64 {
        // Longitude degrees shrink with latitude; near enough for ordering candidates, and the
        // score uses the great-circle distance.
        let (dx, dy) = ((self.xy[0] - p[0]) * p[1].to_radians().cos(), self.xy[1] - p[1]);
        dx * dx + dy * dy
    }
}

/// The sites, indexed for decisions.
pub struct Sites {
    sites: Vec<Site>,
    /// Built on the first walk from a location: admission within one zone never walks, and
    /// would pay for the tree on every deployment.
    rtree: std::sync::OnceLock<RTree<Located>>,
    by_zone: BTreeMap<u32, Vec<usize>>,
}

impl Sites {
    /// Indexes `sites`.
    pub fn new(sites: Vec<Site>) -> Self {
        let mut by_zone: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, s) in sites.iter().enumerate() {
            by_zone.entry(s.zone).or_default().push(i);
        }
        Self { sites, rtree: std::sync::OnceLock::new(), by_zone }
    }

    /// All sites.
    pub fn all(&self) -> &[Site] {
        &self.sites
    }
}

/// Checks one site against the hard constraints.
fn admissible(site: &Site, need: &Need, policy: &Policy, latency: Option<f64>) -> Result<(), Rejection> {
    if !site.available {
        return Err(Rejection::Unavailable);
    }
    if policy.barred_sites.contains(&site.id) || policy.barred_apps.contains(&need.app) || policy.barred_pairs.contains(&(need.app, site.id)) {
        return Err(Rejection::Barred);
    }
    if !need.zones.is_empty() && !need.zones.contains(&site.zone) {
        return Err(Rejection::OutsideFootprint);
    }
    if !need.regions.is_empty() && !need.regions.contains(&site.region) {
        return Err(Rejection::DataGeography);
    }
    if need.flavor.is_some_and(|f| !site.flavors.contains(&f)) {
        return Err(Rejection::NoFlavor);
    }
    if need.services & !site.services != 0 {
        return Err(Rejection::NoService);
    }
    if let Some(r) = need.resources.short_in(&site.free) {
        return Err(Rejection::NoCapacity(r));
    }
    if let (Some(bound), Some(l)) = (need.max_latency_ms, latency) {
        if l > bound {
            return Err(Rejection::Latency { expected_ms: l });
        }
    }
    if need.mobility && !site.mobility {
        return Err(Rejection::NoMobility);
    }
    Ok(())
}

fn score(site: &Site, need: &Need, w: &Weights, latency: Option<f64>) -> Scored {
    let distance_km = need.near.map(|p| p.km(site.location));
    let parts = [
        w.distance * distance_km.unwrap_or(0.0) / 100.0,
        w.latency * latency.unwrap_or(0.0) / 10.0,
        w.edge_load * site.edge_load,
        w.network_load * site.network_load,
        w.forecast * site.forecast,
        if need.deployed.contains(&site.id) { 0.0 } else { w.not_deployed },
        if site.mobility { 0.0 } else { w.no_mobility },
    ];
    Scored { site: site.id, score: parts.iter().sum(), parts, distance_km, latency_ms: latency }
}

/// Decides where one instance of an app goes. `latency` estimates the latency to a site for
/// the location served (None when unknown: the bound cannot be checked and costs nothing).
pub fn decide(sites: &Sites, need: &Need, policy: &Policy, latency: &dyn Fn(&Site) -> Option<f64>) -> Decision {
    let w = policy.weights_for(need.class);
    let mut out = Decision::default();
    let consider = |s: &Site, out: &mut Decision| {
        let l = latency(s);
        match admissible(s, need, policy, l) {
            Ok(()) => out.ranked.push(score(s, need, w, l)),
            Err(r) => out.rejected.push((s.id, r)),
        }
    };
    match need.near {
        Some(p) => {
            // Nearest first; stop once enough admissible sites are ranked. Sites farther than
            // every ranked one cannot beat them on distance alone, but other criteria can, so
            // the walk takes NEAR_ADMISSIBLE of them rather than one.
            let rtree = sites.rtree.get_or_init(|| {
                RTree::bulk_load(sites.sites.iter().enumerate().map(|(index, s)| Located { xy: [s.location.lon, s.location.lat], index }).collect())
            });
            for loc in rtree.nearest_neighbor_iter(&[p.lon, p.lat]) {
                consider(&sites.sites[loc.index], &mut out);
                if out.ranked.len() >= NEAR_ADMISSIBLE {
                    break;
                }
            }
        }
        None if !need.zones.is_empty() => {
            for z in &need.zones {
                for i in sites.by_zone.get(z).into_iter().flatten() {
                    consider(&sites.sites[*i], &mut out);
                }
            }
        }
        None => sites.sites.iter().for_each(|s| consider(s, &mut out)),
    }
    out.ranked.sort_by(|a, b| a.score.total_cmp(&b.score).then(a.site.cmp(&b.site)));
    out
}
