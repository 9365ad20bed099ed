//! Recorded usage, for placement's forecasts (OPG.02 operator criteria: network and edge usage
//! forecasts). Two families of series, sampled at one fixed period and kept for the last
//! [`KEEP`] samples:
//!
//! - **edge**: each cloudlet's load, the vCPUs of its instances' flavors over its capacity;
//! - **network**: each zone's network load, the mean load of its cells as the network's
//!   analytics last reported it ([`crate::netview`]).
//!
//! The forecast is Holt's linear smoothing ([`op_placement::forecast`]) over a series,
//! [`HORIZON`] samples ahead. Series are durable: every sample is written to the store under
//! `/usage/{family}/{key}` in one transaction, and read back at start, so a restart does not
//! forget where usage was heading.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use op_placement::forecast::Holt;
use op_store::{Engine, Op, StoreError};
use op_types::{Name, Uid};

use crate::error::ApiError;
use crate::state::AppState;

/// Samples kept per series.
pub const KEEP: usize = 288;
/// How many sample periods ahead placement looks.
pub const HORIZON: f64 = 5.0;
/// Where series live in the store.
const PREFIX: &str = "/usage/";

/// One series: its samples and their forecast, worked out when a sample comes (once a
/// period) rather than when asked (a hundred times per deployment in a zone of a hundred).
#[derive(Default)]
struct History {
    samples: VecDeque<f64>,
    forecast: f64,
}

impl History {
    fn with(samples: VecDeque<f64>) -> Self {
        let mut h = History { samples, forecast: 0.0 };
        h.forecast_again();
        h
    }

    fn forecast_again(&mut self) {
        self.forecast = Holt::default().load(self.samples.make_contiguous(), HORIZON);
    }
}

/// One family of series, by key.
struct Series {
    family: &'static str,
    data: Mutex<HashMap<String, History>>,
}

impl Series {
    fn new(family: &'static str) -> Self {
        Series { family, data: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, History>> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, key: &str, load: f64) {
        let mut m = self.lock();
        let h = m.entry(key.to_string()).or_default();
        if h.samples.len() == KEEP {
            h.samples.pop_front();
        }
        h.samples.push_back(if load.is_finite() { load.clamp(0.0, 1.0) } else { 0.0 });
        h.forecast_again();
    }

    fn forecast(&self, key: &str) -> f64 {
        self.lock().get(key).map_or(0.0, |h| h.forecast)
    }

    /// Drops the series whose key is not in `live`; the store operations that persist what is
    /// left (and remove what was dropped).
    fn retain_and_persist(&self, live: &HashSet<String>) -> Vec<Op> {
        let mut m = self.lock();
        let mut ops: Vec<Op> = m.keys().filter(|k| !live.contains(*k)).map(|k| Op::Delete(self.key(k))).collect();
        m.retain(|k, _| live.contains(k));
        for (k, s) in m.iter() {
            // Three decimals are plenty for a load and keep the value small.
            let rounded: Vec<f64> = s.samples.iter().map(|v| (v * 1000.0).round() / 1000.0).collect();
            if let Ok(bytes) = serde_json::to_vec(&rounded) {
                ops.push(Op::Put(self.key(k), bytes));
            }
        }
        ops
    }

    fn key(&self, k: &str) -> String {
        format!("{PREFIX}{}/{k}", self.family)
    }

    fn restore(&self, key: &str, bytes: &[u8]) -> bool {
        let Ok(values) = serde_json::from_slice::<Vec<f64>>(bytes) else { return false };
        let start = values.len().saturating_sub(KEEP);
        self.lock().insert(key.to_string(), History::with(values[start..].iter().copied().collect()));
        true
    }
}

/// Edge and network usage series, and the network's latest load per zone.
pub struct Usage {
    edge: Series,
    network: Series,
    network_now: Mutex<HashMap<Uid, f64>>,
}

impl Default for Usage {
    fn default() -> Self {
        Usage { edge: Series::new("edge"), network: Series::new("network"), network_now: Mutex::default() }
    }
}

impl Usage {
    /// The series recorded before, read back from the store (undecodable ones are skipped
    /// with a warning: they fill again).
    pub async fn restore(engine: &dyn Engine) -> Result<Usage, StoreError> {
        let u = Usage::default();
        let (kvs, _) = engine.range(PREFIX).await?;
        for kv in kvs {
            let rest = kv.key.trim_start_matches(PREFIX);
            let ok = match rest.split_once('/') {
                Some(("edge", key)) => u.edge.restore(key, &kv.value),
                Some(("network", key)) => u.network.restore(key, &kv.value),
                _ => false,
            };
            if !ok {
                tracing::warn!(key = %kv.key, "skipping an unreadable usage series");
            }
        }
        Ok(u)
    }

    /// Appends a load sample (0..=1) for `cloudlet`.
    pub fn record(&self, cloudlet: &Name, load: f64) {
        self.edge.record(cloudlet.as_str(), load);
    }

    /// The cloudlet's load expected [`HORIZON`] samples ahead (0 without history).
    pub fn forecast(&self, cloudlet: &Name) -> f64 {
        self.edge.forecast(cloudlet.as_str())
    }

    /// The zone's network load expected [`HORIZON`] samples ahead (0 without history).
    pub fn network_forecast(&self, zone: Uid) -> f64 {
        self.network.forecast(&zone.to_string())
    }

    /// The network's latest report of zone loads (what the next sample records).
    pub fn set_network_now(&self, loads: HashMap<Uid, f64>) {
        *self.network_now.lock().unwrap_or_else(|e| e.into_inner()) = loads;
    }

    /// Appends one sample to every series; drops those of cloudlets and zones that are gone.
    fn sample(&self, cloudlets: &[(Name, f64)], zones: &[Uid]) -> Vec<Op> {
        for (name, load) in cloudlets {
            self.record(name, *load);
        }
        let now = self.network_now.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for z in zones {
            self.network.record(&z.to_string(), now.get(z).copied().unwrap_or(0.0));
        }
        let mut ops = self.edge.retain_and_persist(&cloudlets.iter().map(|(n, _)| n.to_string()).collect());
        ops.extend(self.network.retain_and_persist(&zones.iter().map(Uid::to_string).collect()));
        ops
    }
}

/// Samples every cloudlet's and zone's load every `every`, until the process ends.
pub async fn run(s: AppState, every: Duration) {
    loop {
        if let Err(e) = sample(&s).await {
            tracing::warn!(error = %e, "usage sample failed");
        }
        tokio::time::sleep(every).await;
    }
}

async fn sample(s: &AppState) -> Result<(), ApiError> {
    // From memory, as admission reads them (a list from the store would decode every instance).
    let cloudlets = s.inventory.cloudlets();
    let flavors = s.inventory.flavors();
    let zones = s.inventory.zone_uids();
    let instances = s.inventory.instances();
    // One pass over the instances, not one per cloudlet.
    let vcpus_of: HashMap<&Name, u32> = flavors.iter().map(|f| (&f.metadata.name, f.spec.vcpus)).collect();
    let mut used: HashMap<&Name, u32> = HashMap::new();
    for i in &instances {
        *used.entry(&i.spec.cloudlet).or_default() += vcpus_of.get(&i.spec.flavor).copied().unwrap_or(0);
    }
    let loads: Vec<(Name, f64)> = cloudlets
        .iter()
        .map(|cl| {
            let vcpus = used.get(&cl.metadata.name).copied().unwrap_or(0);
            (cl.metadata.name.clone(), f64::from(vcpus) / f64::from(cl.spec.capacity.vcpus.max(1)))
        })
        .collect();
    let ops = s.usage.sample(&loads, &zones);
    s.repo.engine(op_types::Home::Regional).txn(Vec::new(), ops).await.map_err(op_store::RepoError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_bounded_and_forecast_ahead() {
        let u = Usage::default();
        let c = Name::new("c1").unwrap();
        assert_eq!(u.forecast(&c), 0.0, "no history");
        for i in 0..(KEEP + 50) {
            u.record(&c, (i % 10) as f64 / 100.0);
        }
        assert_eq!(u.edge.lock()[c.as_str()].samples.len(), KEEP);
        let d = Name::new("d1").unwrap();
        for i in 0..10 {
            u.record(&d, 0.1 * i as f64 / 2.0);
        }
        assert!(u.forecast(&d) > 0.45, "a rising load is anticipated: {}", u.forecast(&d));
        let ops = u.sample(&[(d.clone(), 0.5)], &[]);
        assert!(ops.iter().any(|o| matches!(o, Op::Delete(k) if k == "/usage/edge/c1")), "a deleted cloudlet's series is removed from the store");
        assert_eq!(u.forecast(&c), 0.0, "a deleted cloudlet's series is dropped");
    }

    #[tokio::test]
    async fn series_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let engine = op_store::RedbEngine::open(&dir.path().join("s.redb")).unwrap();
        let u = Usage::default();
        let (c, z) = (Name::new("c1").unwrap(), Uid::random());
        for i in 0..20 {
            u.set_network_now([(z, 0.02 * f64::from(i))].into_iter().collect());
            let ops = u.sample(&[(c.clone(), 0.01 * f64::from(i))], &[z]);
            engine.txn(Vec::new(), ops).await.unwrap();
        }
        let (edge, net) = (u.forecast(&c), u.network_forecast(z));
        assert!(edge > 0.19 && net > 0.38, "rising series forecast higher: {edge} {net}");
        let again = Usage::restore(engine.as_ref()).await.unwrap();
        assert!((again.forecast(&c) - edge).abs() < 0.01, "edge forecast after restart");
        assert!((again.network_forecast(z) - net).abs() < 0.01, "network forecast after restart");
        assert_eq!(Usage::restore(engine.as_ref()).await.unwrap().edge.lock()[c.as_str()].samples.len(), 20);
    }
}
