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
/// normalized: distance per 100 km, latency per 10 ms, load in instances per vCPU.
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
}

impl Default for Weights {
    fn default() -> Self {
        Weights { distance: 1.0, latency: 2.0, load: 0.5, not_deployed: 0.5 }
    }
}

/// Why an instance was not offered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Rejection {
    /// Not Ready or being deleted.
    NotReady,
    /// Its cloudlet is down or in maintenance.
    EdgeUnavailable,
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

/// The best `n` choices of [`rank_near`] with no path estimates (the hot path's question). For
/// a device located by its cell alone the answer depends only on the cell's zone, so it is
/// remembered per app and zone in the index until the index changes; a remembered answer costs
/// `n` lookups instead of a ranking.
pub fn best_near<'a>(index: &'a EdgeIndex, app: &AppEntry, at: &DeviceAt, weights: &Weights, n: usize) -> Vec<Choice<'a>> {
    let zone = if at.point.is_none() { at.cell.as_deref().and_then(|c| index.cell_zone(c)) } else { None };
    let Some(zone) = zone.filter(|_| n <= REMEMBER_TOP) else {
        return rank_near(index, app, at, weights, &|_| None).ranked.into_iter().take(n).collect();
    };
    let key = (app.uid, zone.uid, [weights.distance, weights.latency, weights.load, weights.not_deployed].map(f64::to_bits));
    if let Some(r) = index.remembered(&key) {
        let choices: Option<Vec<Choice<'a>>> = r
            .iter()
            .take(n)
            .map(|(uid, score, distance_km)| {
                let instance = index.instance(*uid)?;
                let zone = index.zone(instance.zone)?;
                Some(Choice { instance, zone, score: *score, distance_km: *distance_km, path: None })
            })
            .collect();
        if let Some(c) = choices {
            return c;
        }
    }
    let ranked = rank_near(index, app, at, weights, &|_| None).ranked;
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
            + weights.load * index.load(inst);
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
        .filter(|z| index.zone_serving(z.uid) && in_footprint(app, z))
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
