//! Edge selection: a pure function of the index, the app's criteria, where the device is, the
//! network's path estimates and the operator's weight matrix. No I/O, so it is tested alone and
//! runs on the hot path.

use op_types::specs::{Footprint, GeoPoint};
use op_types::{Name, Uid};
use serde::{Deserialize, Serialize};

use crate::geo;
pub use op_types::uni::PathInfo;
use crate::index::{AppEntry, EdgeIndex, InstanceEntry, Slim, ZoneEntry, NEAR_LIST};

/// Where the device is, as far as the platform knows (network-confirmed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceAt {
    /// Serving cell.
    pub cell: Option<String>,
    /// Position.
    pub point: Option<GeoPoint>,
}

/// The operator's weight matrix (OPG.02 operator criteria): how much each cost counts. Costs are
/// normalized: distance per 100 km, latency per 10 ms, edge load in instances per vCPU, network
/// load as the zone's share of its cells' capacity in use (0..=1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Weights {
    /// Geographic distance device to zone.
    pub distance: f64,
    /// Network latency device to zone.
    pub latency: f64,
    /// Edge load.
    pub load: f64,
    /// Cost of a zone where the app is not deployed yet (OPG.02 "already deployed").
    pub not_deployed: f64,
    /// Network load of the zone's cells (current or forecast, whichever is higher).
    #[serde(default)]
    pub network_load: f64,
}

impl Default for Weights {
    /// The platform's default placement weights.
    fn default() -> Self {
        Weights::from(&op_types::specs::PlacementWeights::default())
    }
}

impl From<&op_types::specs::PlacementWeights> for Weights {
    /// The operator's placement weights, as far as ranking existing instances goes (forecast
    /// and mobility support weigh where new instances go, not which one serves a device).
    fn from(w: &op_types::specs::PlacementWeights) -> Self {
        Weights { distance: w.distance, latency: w.latency, load: w.edge_load, not_deployed: w.not_deployed, network_load: w.network_load }
    }
}

impl Weights {
    fn bits(&self) -> [u64; 5] {
        [self.distance, self.latency, self.load, self.not_deployed, self.network_load].map(f64::to_bits)
    }
}

/// The operator's weights for ranking `app`'s offers to a device at `at`: the policy of the
/// region of the zone serving the device (by cell, else nearest), class-aware
/// ([`EdgeIndex::weights_for`]).
pub fn weights_at(index: &EdgeIndex, app: &AppEntry, at: &DeviceAt) -> Weights {
    let zone = at.cell.as_deref().and_then(|c| index.cell_zone(c)).or_else(|| at.point.and_then(|p| index.nearest_zone(p)));
    index.weights_for(app, zone.map(|z| &z.region))
}

/// The network's expected performance from the device's cell to a zone, from the index's
/// network view (no network call): what the hot path checks the app's QoS bounds against.
pub fn network_path<'a>(index: &'a EdgeIndex, at: &'a DeviceAt) -> impl Fn(&ZoneEntry) -> Option<PathInfo> + 'a {
    move |z| index.path(at.cell.as_deref(), z)
}

/// Why an instance was not offered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Rejection {
    /// Not Ready or being deleted.
    NotReady,
    /// Its cloudlet is down or in maintenance.
    EdgeUnavailable,
    /// The operator's policy bars the app from its cloudlet.
    Barred,
    /// Outside the app's footprint.
    OutsideFootprint,
    /// In a region the app's data must not go to.
    DataGeography,
    /// The path would exceed the app's latency bound.
    Latency {
        /// Expected, ms.
        expected_ms: f64,
    },
    /// The path would exceed the app's jitter bound.
    Jitter {
        /// Expected, ms.
        expected_ms: f64,
    },
    /// The path cannot carry the app's bandwidth.
    Bandwidth {
        /// Expected, Mbit/s.
        expected_mbps: f64,
    },
}

/// An instance offered to the device, with why it ranks where it does (borrowed from the
/// index: ranking copies nothing).
#[derive(Clone, Debug, PartialEq)]
pub struct Choice<'a> {
    /// The instance.
    pub instance: &'a InstanceEntry,
    /// Its zone.
    pub zone: &'a ZoneEntry,
    /// Lower is better.
    pub score: f64,
    /// Distance device to zone, km (when the device position is known).
    pub distance_km: Option<f64>,
    /// Expected path performance, when the network gave one.
    pub path: Option<PathInfo>,
}

/// The outcome: ranked offers (best first) and the instances ruled out with their reason.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ranking<'a> {
    /// Best first.
    pub ranked: Vec<Choice<'a>>,
    /// Ruled out.
    pub rejected: Vec<(Uid, Rejection)>,
}

/// The device's position, or the location of a zone serving its cell.
pub fn device_point(index: &EdgeIndex, at: &DeviceAt) -> Option<GeoPoint> {
    at.point.or_else(|| at.cell.as_deref().and_then(|c| index.cell_zone(c)).map(|z| z.location))
}

fn in_footprint(app: &AppEntry, zone: &ZoneEntry) -> bool {
    outside_footprint(&app.requirements.footprint, zone.uid, &zone.region, &zone.cells, zone.location).is_none()
}

/// Which part of a footprint a zone falls outside of (`zones`, `regions`, `cells` or
/// `polygon`), or None when the footprint allows it: the one footprint rule, for discovery and
/// admission alike.
pub fn outside_footprint(fp: &Footprint, zone: Uid, region: &Name, cells: &[String], location: GeoPoint) -> Option<&'static str> {
    if !fp.zones.is_empty() && !fp.zones.contains(&zone) {
        Some("zones")
    } else if !fp.regions.is_empty() && !fp.regions.contains(region) {
        Some("regions")
    } else if !fp.cells.is_empty() && !cells.iter().any(|c| fp.cells.contains(c)) {
        Some("cells")
    } else if !fp.polygon.is_empty() && !geo::in_polygon(location, &fp.polygon) {
        Some("polygon")
    } else {
        None
    }
}

/// Why an app is not offered to a device at all, from the network serving it (OPG.02 customer
/// reach / MNO selection and availability in visited networks), or None when it is:
/// a roaming device needs `visitedNetworks`; a non-empty `customerReach` must list the serving
/// network (`serving`, a PLMN id; the operator's own, `own_plmn`, when the device is at home
/// and the network did not say).
pub fn reach_refusal(r: &op_types::specs::Requirements, own_plmn: &str, roaming: bool, serving: Option<&str>) -> Option<String> {
    if roaming && !r.visited_networks {
        return Some(format!(
            "the device is roaming in network {} and the app is not offered in visited networks (requirements.visitedNetworks is false)",
            serving.unwrap_or("unknown")
        ));
    }
    let serving = serving.or((!roaming).then_some(own_plmn));
    if r.customer_reach.is_empty() {
        return None;
    }
    match serving {
        Some(p) if r.customer_reach.iter().any(|c| c == p) => None,
        Some(p) => Some(format!("the app's customer reach ({}) does not include network {p}, which serves the device", r.customer_reach.join(", "))),
        None => Some("the network serving the device is unknown, and the app's customer reach is restricted".into()),
    }
}

/// Why no instance of `zone` may serve `app` over `path`: the zone's footprint, data-geography
/// and path-bound checks, the same for every instance there.
fn zone_refusal(app: &AppEntry, zone: &ZoneEntry, path: Option<PathInfo>) -> Option<Rejection> {
    if !in_footprint(app, zone) {
        return Some(Rejection::OutsideFootprint);
    }
    let r = &app.requirements;
    if !r.data_regions.is_empty() && !r.data_regions.contains(&zone.region) {
        return Some(Rejection::DataGeography);
    }
    let p = path?;
    if r.max_latency_ms.is_some_and(|m| p.latency_ms > m) {
        return Some(Rejection::Latency { expected_ms: p.latency_ms });
    }
    if r.max_jitter_ms.is_some_and(|m| p.jitter_ms > m) {
        return Some(Rejection::Jitter { expected_ms: p.jitter_ms });
    }
    if r.min_bandwidth_mbps.is_some_and(|m| p.bandwidth_mbps < m) {
        return Some(Rejection::Bandwidth { expected_mbps: p.bandwidth_mbps });
    }
    None
}

/// What a ranking knows of one zone: the same for every instance in it, so worked out once per
/// zone instead of once per instance (a zone can hold thousands).
struct ZoneFacts<'a> {
    zone: &'a ZoneEntry,
    path: Option<PathInfo>,
    refusal: Option<Rejection>,
    /// The operator's policy in the zone's region, for its bars.
    policy: Option<&'a op_types::specs::PlacementPolicySpec>,
    distance_km: Option<f64>,
    /// The zone's part of an instance's score (distance, latency, network load).
    cost: f64,
}

/// Judges candidate instances of one app for one device: each is offered with its score or
/// rejected with the reason, the first hard constraint it fails (instance ready, cloudlet up,
/// not barred, then the zone's checks).
struct Judge<'a, 'q> {
    index: &'a EdgeIndex,
    app: &'q AppEntry,
    point: Option<GeoPoint>,
    weights: &'q Weights,
    path: &'q dyn Fn(&ZoneEntry) -> Option<PathInfo>,
    /// The facts of the zones seen so far, and where each zone's are (None: not in the
    /// index); `last` is the previous candidate's zone, since candidates mostly come zone by
    /// zone.
    zones: Vec<ZoneFacts<'a>>,
    at: std::collections::HashMap<Uid, Option<usize>>,
    last: Option<(Uid, Option<usize>)>,
}

impl<'a, 'q> Judge<'a, 'q> {
    fn new(index: &'a EdgeIndex, app: &'q AppEntry, point: Option<GeoPoint>, weights: &'q Weights, path: &'q dyn Fn(&ZoneEntry) -> Option<PathInfo>) -> Self {
        Self { index, app, point, weights, path, zones: Vec::new(), at: Default::default(), last: None }
    }

    /// Where `zone`'s facts are in `zones`, worked out on first sight (None: no such zone).
    fn facts(&mut self, zone: Uid) -> Option<usize> {
        if let Some((u, k)) = self.last {
            if u == zone {
                return k;
            }
        }
        let k = match self.at.get(&zone) {
            Some(k) => *k,
            None => {
                let k = self.index.zone(zone).map(|z| {
                    let path = (self.path)(z);
                    let distance_km = self.point.map(|d| geo::distance_km(d, z.location));
                    let w = self.weights;
                    self.zones.push(ZoneFacts {
                        zone: z,
                        path,
                        refusal: zone_refusal(self.app, z, path),
                        policy: self.index.policy_for(Some(&z.region)),
                        distance_km,
                        cost: w.distance * distance_km.unwrap_or(0.0) / 100.0
                            + w.latency * path.map_or(0.0, |p| p.latency_ms) / 10.0
                            + w.network_load * self.index.network_load(z.uid),
                    });
                    self.zones.len() - 1
                });
                self.at.insert(zone, k);
                k
            }
        };
        self.last = Some((zone, k));
        k
    }

    /// The score of an instance of `zone` (lower is better) and where its zone's facts are, or
    /// why it is not offered.
    fn score(&mut self, zone: Uid, s: Slim) -> Result<(f64, usize), Rejection> {
        let (index, app, load_weight) = (self.index, self.app.uid, self.weights.load);
        let k = self.facts(zone).ok_or(Rejection::EdgeUnavailable)?;
        let z = &self.zones[k];
        if !s.offerable {
            return Err(Rejection::NotReady);
        }
        let Some((cloudlet, _)) = index.cloudlet_at(s.slot).filter(|(_, c)| c.ready && !c.maintenance) else {
            return Err(Rejection::EdgeUnavailable);
        };
        if z.policy.is_some_and(|p| p.bars(app, cloudlet)) {
            return Err(Rejection::Barred);
        }
        if let Some(why) = &z.refusal {
            return Err(why.clone());
        }
        Ok((z.cost + load_weight * index.load_at(s.slot), k))
    }

    /// The offer of `inst`, scored by [`Judge::score`] with its zone's facts at `k`.
    fn choice(&self, inst: &'a InstanceEntry, score: f64, k: usize) -> Choice<'a> {
        let z = &self.zones[k];
        Choice { instance: inst, zone: z.zone, score, distance_km: z.distance_km, path: z.path }
    }

    fn judge(&mut self, inst: &'a InstanceEntry) -> Result<Choice<'a>, Rejection> {
        let (score, k) = self.score(inst.zone, inst.slim())?;
        Ok(self.choice(inst, score, k))
    }
}

/// The order of offers: lower score first, then instance id (so equal scores rank the same on
/// every replica and every ask).
fn order(a: (f64, Uid), b: (f64, Uid)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// [`order`] of two offers.
fn better(a: &Choice<'_>, b: &Choice<'_>) -> std::cmp::Ordering {
    order((a.score, a.instance.uid), (b.score, b.instance.uid))
}

/// Ranks the instances of `app` for a device at `at`. `path` gives the network's estimate from
/// the device's cell to a zone (None when unknown: latency bounds cannot be checked then and
/// the latency cost counts as zero).
pub fn rank<'a>(
    index: &'a EdgeIndex,
    app: &AppEntry,
    at: &DeviceAt,
    weights: &Weights,
    path: &dyn Fn(&ZoneEntry) -> Option<PathInfo>,
) -> Ranking<'a> {
    rank_among(index, app, device_point(index, at), weights, path, index.instances_of(app.uid))
}

/// Apps with at most this many instances are ranked whole; larger ones near the device only.
const RANK_ALL_UP_TO: usize = 64;
const NEAR_ZONES: usize = 8;

/// Where [`rank_near`] looks: the device's point, and the zones whose instances are candidates
/// (None: all the app's instances).
fn near_zones(index: &EdgeIndex, app: &AppEntry, at: &DeviceAt) -> (Option<GeoPoint>, Option<Vec<Uid>>) {
    // A device located by its cell stands at the cell's zone.
    let cell_zone = if at.point.is_none() { at.cell.as_deref().and_then(|c| index.cell_zone(c)) } else { None };
    let point = at.point.or(cell_zone.map(|z| z.location));
    let Some(p) = point.filter(|_| index.instance_count(app.uid) > RANK_ALL_UP_TO) else {
        return (point, None);
    };
    let has_app = |z: &Uid| index.has_instances_in(app.uid, *z);
    let walk = || index.zones_near(p).filter(has_app).take(NEAR_ZONES).collect::<Vec<Uid>>();
    let zones = match cell_zone {
        Some(z) => {
            // The zone's remembered neighbours give the same zones as the walk unless fewer than
            // NEAR_ZONES of them hold the app and there are zones beyond the list.
            let list = index.zones_near_zone(z);
            let found: Vec<Uid> = list.iter().filter(|u| has_app(u)).take(NEAR_ZONES).copied().collect();
            if found.len() == NEAR_ZONES || list.len() < NEAR_LIST { found } else { walk() }
        }
        None => walk(),
    };
    (point, Some(zones))
}

/// The candidates [`near_zones`] names.
fn candidates(index: &EdgeIndex, app: Uid, zones: Option<Vec<Uid>>) -> Box<dyn Iterator<Item = &InstanceEntry> + '_> {
    match zones {
        None => Box::new(index.instances_of(app)),
        Some(zones) => Box::new(zones.into_iter().flat_map(move |z| index.instances_in(app, z))),
    }
}

/// Like [`rank`], for the hot path: an app with many instances is ranked over the instances in
/// the zones nearest to the device only (an R-tree walk), so the cost does not grow with the
/// number of instances. Falls back to [`rank`] when the device position is unknown or the app is
/// small.
pub fn rank_near<'a>(index: &'a EdgeIndex, app: &AppEntry, at: &DeviceAt, weights: &Weights, path: &dyn Fn(&ZoneEntry) -> Option<PathInfo>) -> Ranking<'a> {
    let (point, zones) = near_zones(index, app, at);
    rank_among(index, app, point, weights, path, candidates(index, app.uid, zones))
}

/// The first `n` of [`rank_near`]'s ranking, found without ranking the rest: the candidates
/// are judged one by one and only the best `n` are kept, sorted (no list of every candidate,
/// no list of rejections). What a discovery needs.
fn best_n<'a>(index: &'a EdgeIndex, app: &AppEntry, at: &DeviceAt, weights: &Weights, path: &dyn Fn(&ZoneEntry) -> Option<PathInfo>, n: usize) -> Vec<Choice<'a>> {
    let (point, zones) = near_zones(index, app, at);
    let mut judge = Judge::new(index, app, point, weights, path);
    let mut best: Vec<(f64, Uid, usize)> = Vec::with_capacity(n + 1);
    let mut keep = |score: f64, uid: Uid, k: usize| {
        let at = best.partition_point(|b| order((b.0, b.1), (score, uid)).is_lt());
        if at < n {
            best.insert(at, (score, uid, k));
            best.truncate(n);
        }
    };
    match zones {
        // Near zones: each zone's list of slims, looked up once.
        Some(zones) => {
            for z in zones {
                for s in index.slims_in(app.uid, z) {
                    if let Ok((score, k)) = judge.score(z, *s) {
                        keep(score, s.uid, k);
                    }
                }
            }
        }
        None => {
            for inst in index.instances_of(app.uid) {
                if let Ok((score, k)) = judge.score(inst.zone, inst.slim()) {
                    keep(score, inst.uid, k);
                }
            }
        }
    }
    best.into_iter().filter_map(|(score, uid, k)| Some(judge.choice(index.instance(uid)?, score, k))).collect()
}

/// The best `n` choices of [`rank_near`] with the index's network view for path estimates (the
/// hot path's question: QoS bounds are checked, no network call is made). For a device located
/// by its cell alone the answer depends only on the cell, so it is remembered per app and cell
/// in the index until the index changes; a remembered answer costs `n` lookups instead of a
/// ranking.
pub fn best_near<'a>(index: &'a EdgeIndex, app: &AppEntry, at: &DeviceAt, weights: &Weights, n: usize) -> Vec<Choice<'a>> {
    let path = network_path(index, at);
    let cell = if at.point.is_none() { at.cell.as_deref().and_then(|c| index.cell_id(c)) } else { None };
    let Some(cell) = cell.filter(|_| n <= REMEMBER_TOP) else {
        return best_n(index, app, at, weights, &path, n);
    };
    let key = (app.uid, cell, weights.bits());
    if let Some(r) = index.remembered(&key) {
        let choices: Option<Vec<Choice<'a>>> = r
            .iter()
            .take(n)
            .map(|(uid, score, distance_km)| {
                let instance = index.instance(*uid)?;
                let zone = index.zone(instance.zone)?;
                Some(Choice { instance, zone, score: *score, distance_km: *distance_km, path: path(zone) })
            })
            .collect();
        if let Some(c) = choices {
            return c;
        }
    }
    let mut best = best_n(index, app, at, weights, &path, REMEMBER_TOP);
    index.remember(key, best.iter().map(|c| (c.instance.uid, c.score, c.distance_km)).collect());
    best.truncate(n);
    best
}

/// How many choices are remembered per app and zone: the best and up to ten alternatives.
const REMEMBER_TOP: usize = 11;

fn rank_among<'a>(
    index: &'a EdgeIndex,
    app: &AppEntry,
    point: Option<GeoPoint>,
    weights: &Weights,
    path: &dyn Fn(&ZoneEntry) -> Option<PathInfo>,
    candidates: impl Iterator<Item = &'a InstanceEntry>,
) -> Ranking<'a> {
    let mut out = Ranking::default();
    let mut judge = Judge::new(index, app, point, weights, path);
    for inst in candidates {
        match judge.judge(inst) {
            Ok(c) => out.ranked.push(c),
            Err(why) => out.rejected.push((inst.uid, why)),
        }
    }
    out.ranked.sort_by(better);
    out
}

/// Zones (not instances) where the app could serve the device, best first: zones with a
/// cloudlet up, inside the app's footprint and data geography and within its path bounds.
/// What CAMARA Optimal Edge Discovery answers, and where a dynamic instance would go.
pub fn rank_zones<'a>(
    index: &'a EdgeIndex,
    app: &AppEntry,
    at: &DeviceAt,
    weights: &Weights,
    path: &dyn Fn(&ZoneEntry) -> Option<PathInfo>,
) -> Vec<(&'a ZoneEntry, f64)> {
    let point = device_point(index, at);
    let mut out: Vec<(&ZoneEntry, f64)> = index
        .zones()
        .filter(|z| index.zone_serving(z.uid) && !index.barred_zone(app, z))
        .filter_map(|z| {
            let p = path(z);
            if zone_refusal(app, z, p).is_some() {
                return None;
            }
            let distance = point.map_or(0.0, |d| geo::distance_km(d, z.location));
            let deployed = index.instances_in(app.uid, z.uid).any(|i| i.ready);
            let score = weights.distance * distance / 100.0
                + weights.latency * p.map_or(0.0, |p| p.latency_ms) / 10.0
                + weights.network_load * index.network_load(z.uid)
                + if deployed { 0.0 } else { weights.not_deployed };
            Some((z, score))
        })
        .collect();
    out.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.uid.cmp(&b.0.uid)));
    out
}

/// The closest serving zone for a device: one whose service area holds the device (shortest
/// network path), else the geographically nearest one with a cloudlet up.
pub fn closest_zone<'a>(index: &'a EdgeIndex, at: &DeviceAt) -> Option<&'a ZoneEntry> {
    let serving = index.zones_serving(at.cell.as_deref(), at.point);
    if let Some(z) = serving.iter().filter(|u| index.zone_serving(**u)).filter_map(|u| index.zone(*u)).min_by_key(|z| z.uid) {
        return Some(z);
    }
    let p = device_point(index, at)?;
    if let Some(z) = index.nearest_zone(p).filter(|z| index.zone_serving(z.uid)) {
        return Some(z);
    }
    index
        .zones()
        .filter(|z| index.zone_serving(z.uid))
        .min_by(|a, b| geo::distance_km(p, a.location).total_cmp(&geo::distance_km(p, b.location)))
}
