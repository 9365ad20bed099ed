//! The network's view, kept in the UNI index: expected performance from each served cell to
//! each zone's user plane (NWDAF `DN_PERFORMANCE`) and each zone's network load (NWDAF
//! `NETWORK_PERFORMANCE`, devices per cell over the cell's capacity), refreshed in the
//! background through the network adapter.
//!
//! Why here and not per request: discovery, session re-evaluation and the minimum-cover plan
//! all need paths for many (cell, zone) pairs; asking the network once per period keeps the
//! hot path free of network calls while still checking every offer against the app's QoS
//! bounds, and the plan on measured paths instead of a distance model.
//!
//! A zone's network cost is the larger of its current load and the load its recorded series
//! forecasts ([`crate::usage`]): a zone filling up is avoided before it is full.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use op_network::{NetworkAdapter, NetworkError};
use op_types::Uid;
use op_uni::index::NetworkPaths;
use op_uni::select::PathInfo;

use crate::state::AppState;

/// Pairs asked for in one analytics request at most (cells x DNAIs).
const PAIRS_PER_REQUEST: usize = 20_000;
/// Cells asked for in one load request at most.
const CELLS_PER_REQUEST: usize = 2_000;

/// What the network was asked about: every cell some zone serves, every zone's DNAI.
struct Ask {
    cells: Vec<String>,
    dnais: Vec<String>,
    zone_cells: Vec<(Uid, Vec<String>)>,
}

fn ask(s: &AppState) -> Ask {
    let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
    let mut cells = BTreeSet::new();
    let mut dnais = BTreeSet::new();
    let mut zone_cells = Vec::new();
    for z in ix.zones() {
        cells.extend(z.cells.iter().cloned());
        dnais.extend(z.dnai.iter().cloned());
        zone_cells.push((z.uid, z.cells.clone()));
    }
    Ask { cells: cells.into_iter().collect(), dnais: dnais.into_iter().collect(), zone_cells }
}

/// Asks the network for paths and loads.
async fn fetch(net: &dyn NetworkAdapter, a: &Ask) -> Result<(NetworkPaths, HashMap<Uid, f64>), NetworkError> {
    let mut paths = NetworkPaths::default();
    if !a.dnais.is_empty() {
        let per = (PAIRS_PER_REQUEST / a.dnais.len()).max(1);
        for chunk in a.cells.chunks(per) {
            for e in net.path_matrix(chunk, &a.dnais).await? {
                let p = e.performance;
                paths.entry(e.cell).or_default().insert(
                    e.dnai,
                    PathInfo { latency_ms: p.latency_ms, jitter_ms: p.jitter_ms, bandwidth_mbps: p.bandwidth_mbps },
                );
            }
        }
    }
    let mut cell_load = HashMap::new();
    for chunk in a.cells.chunks(CELLS_PER_REQUEST) {
        for l in net.cell_loads(chunk).await? {
            cell_load.insert(l.cell, l.ratio);
        }
    }
    let zone_load = a
        .zone_cells
        .iter()
        .filter_map(|(z, cells)| {
            let known: Vec<f64> = cells.iter().filter_map(|c| cell_load.get(c).copied()).collect();
            (!known.is_empty()).then(|| (*z, known.iter().sum::<f64>() / known.len() as f64))
        })
        .collect();
    Ok((paths, zone_load))
}

/// One refresh: ask, then publish to the index (only a changed view touches it). Returns
/// whether the view changed.
pub async fn refresh(s: &AppState) -> Result<bool, NetworkError> {
    let Some(net) = s.uni.network.clone() else { return Ok(false) };
    let a = ask(s);
    let (paths, now) = fetch(net.as_ref(), &a).await?;
    let cost: std::collections::HashMap<Uid, f64> =
        now.iter().map(|(z, l)| (*z, l.max(s.usage.network_forecast(*z)).clamp(0.0, 1.0))).collect();
    s.usage.set_network_now(now);
    let mut ix = s.uni.index.write().unwrap_or_else(|e| e.into_inner());
    Ok(ix.set_network(paths, cost))
}

/// Refreshes the view every `every`, until the process ends; failures are logged and the last
/// view is kept.
pub async fn run(s: AppState, every: Duration) {
    loop {
        match refresh(&s).await {
            Ok(true) => tracing::debug!("network view changed"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "network view refresh failed; keeping the last one"),
        }
        tokio::time::sleep(every).await;
    }
}
