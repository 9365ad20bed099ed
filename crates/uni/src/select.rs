//! Edge selection: a pure function of the index, the app's criteria, where the device is, the
//! network's path estimates and the operator's weight matrix. No I/O, so it is tested alone and
//! runs on the hot path.

use op_types::specs::{Footprint, GeoPoint};
use op_types::{Name, Uid};
use serde::{Deserialize, Serialize};

use crate::geo;
pub use op_types::uni::PathInfo;
use crate::index::{AppEntry, EdgeIndex, InstanceEntry, ZoneEntry, NEAR_LIST};

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

/// Checks one instance against the hard constraints.
fn admissible(
    index: &EdgeIndex,
    app: &AppEntry,
    inst: &InstanceEntry,
    zone: &ZoneEntry,
    path: Option<PathInfo>,
) -> Result<(), Rejection> {
    if !inst.ready || inst.endpoint.is_none() {
        return Err(Rejection::NotReady);
    }
    if !index.cloudlet_of(inst).is_some_and(|c| c.ready && !c.maintenance) {
        return Err(Rejection::EdgeUnavailable);
    }
    if index.barred(app, inst, zone) {
        return Err(Rejection::Barred);
    }
    if !in_footprint(app, zone) {
        return Err(Rejection::OutsideFootprint);
    }
    let r = &app.requirements;
    if !r.data_regions.is_empty() && !r.data_regions.contains(&zone.region) {
        return Err(Rejection::DataGeography);
    }
    if let Some(p) = path {
        if r.max_latency_ms.is_some_and(|m| p.latency_ms > m) {
            return Err(Rejection::Latency { expected_ms: p.latency_ms });
        }
        if r.max_jitter_ms.is_some_and(|m| p.jitter_ms > m) {
            return Err(Rejection::Jitter { expected_ms: p.jitter_ms });
        }
        if r.min_bandwidth_mbps.is_some_and(|m| p.bandwidth_mbps < m) {
            return Err(Rejection::Bandwidth { expected_mbps: p.bandwidth_mbps });
        }
    }
    Ok(())
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
/// Zones holding instances of the app examined near the device before stopping.
const NEAR_ZONES: usize = 8;

/// Like [`rank`], for the hot path: an app with many instances is ranked over the instances in
/// the zones nearest to the device only (an R-tree walk), so the cost does not grow with the
/// number of instances. Falls back to [`rank`] when the device position is unknown or the app is
/// small.
pub fn rank_near<'a>(
    index: &'a EdgeIndex,
    app: &AppEntry,
    at: &DeviceAt,
    weights: &Weights,
    path: &dyn Fn(&ZoneEntry) -> Option<PathInfo>,
) -> Ranking<'a> {
    // A device located by its cell stands at the cell's zone.
    let cell_zone = if at.point.is_none() { at.cell.as_deref().and_then(|c| index.cell_zone(c)) } else { None };
    let point = at.point.or(cell_zone.map(|z| z.location));
    let Some(p) = point.filter(|_| index.instance_count(app.uid) > RANK_ALL_UP_TO) else {
        return rank_among(index, app, point, weights, path, index.instances_of(app.uid));
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
    rank_among(index, app, point, weights, path, zones.iter().flat_map(|z| index.instances_in(app.uid, *z)))
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
        return rank_near(index, app, at, weights, &path).ranked.into_iter().take(n).collect();
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
    let ranked = rank_near(index, app, at, weights, &path).ranked;
    index.remember(key, ranked.iter().take(REMEMBER_TOP).map(|c| (c.instance.uid, c.score, c.distance_km)).collect());
    ranked.into_iter().take(n).collect()
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
    for inst in candidates {
        let Some(zone) = index.zone(inst.zone) else {
            out.rejected.push((inst.uid, Rejection::EdgeUnavailable));
            continue;
        };
        let p = path(zone);
        if let Err(why) = admissible(index, app, inst, zone, p) {
            out.rejected.push((inst.uid, why));
            continue;
        }
        let distance_km = point.map(|d| geo::distance_km(d, zone.location));
        let score = weights.distance * distance_km.unwrap_or(0.0) / 100.0
            + weights.latency * p.map_or(0.0, |p| p.latency_ms) / 10.0
            + weights.load * index.load(inst)
            + weights.network_load * index.network_load(zone.uid);
        out.ranked.push(Choice { instance: inst, zone, score, distance_km, path: p });
    }
    out.ranked.sort_by(|a, b| a.score.total_cmp(&b.score).then(a.instance.uid.cmp(&b.instance.uid)));
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
    let r = &app.requirements;
    let mut out: Vec<(&ZoneEntry, f64)> = index
        .zones()
        .filter(|z| index.zone_serving(z.uid) && in_footprint(app, z) && !index.barred_zone(app, z))
        .filter(|z| r.data_regions.is_empty() || r.data_regions.contains(&z.region))
        .filter_map(|z| {
            let p = path(z);
            if let Some(p) = p {
                let too_slow = r.max_latency_ms.is_some_and(|m| p.latency_ms > m)
                    || r.max_jitter_ms.is_some_and(|m| p.jitter_ms > m)
                    || r.min_bandwidth_mbps.is_some_and(|m| p.bandwidth_mbps < m);
                if too_slow {
                    return None;
                }
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
