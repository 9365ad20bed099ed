//! Resource use of what runs: CPU, memory, disk and network per instance, summed per app,
//! per tenant (organization) and per cloudlet, with a health state per instance and app
//! (`Healthy`, `Stressed`, `Exited`).
//!
//! A collector reads every local instance's container counters through its cloudlet's driver
//! once per period and keeps the latest reading in memory; rates (CPU, network) come from two
//! readings. The API answers from that memory; only the collector reaches the runtimes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::Json;
use futures::StreamExt;
use op_driver::{ContainerStats, DriverError};
use op_types::observe::{Health, InstanceUsage, ResourceAmounts, UsageTotals};
use op_types::specs::Cloudlet;
use op_types::{Name, Uid};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorInfo};
use crate::state::AppState;

/// CPU use, as a share of the flavor's vCPUs, from which an instance is `Stressed`.
pub const STRESSED_CPU: f64 = 0.8;
/// Memory use, as a share of its limit, from which an instance is `Stressed`.
pub const STRESSED_MEMORY: f64 = 0.9;
/// Readings of the runtime made at once, across cloudlets.
const CONCURRENT_READS: usize = 16;

/// The state an instance's numbers put it in.
pub fn health(running: bool, cpu_share: f64, memory_share: f64) -> Health {
    if !running {
        Health::Exited
    } else if cpu_share >= STRESSED_CPU || memory_share >= STRESSED_MEMORY {
        Health::Stressed
    } else {
        Health::Healthy
    }
}

/// One instance's last reading and what the collector needs to turn the next into rates.
struct Sample {
    usage: InstanceUsage,
    counters: ContainerStats,
    at: Instant,
}

/// The latest readings, by instance.
#[derive(Clone, Default)]
pub struct Resources(Arc<RwLock<HashMap<Uid, Sample>>>);

impl Resources {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uid, Sample>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `f` with every instance's latest reading, in no order, copying none (the alarm
    /// evaluator walks them all on every tick; `f` runs under the readings' lock, so it must
    /// be quick and must not wait).
    pub fn each(&self, mut f: impl FnMut(&InstanceUsage)) {
        self.read().values().for_each(|s| f(&s.usage));
    }

    /// Whether instance `uid` has a reading.
    pub fn has(&self, uid: Uid) -> bool {
        self.read().contains_key(&uid)
    }

    /// Every instance's latest reading that passes `keep`.
    pub fn instances(&self, keep: impl Fn(&InstanceUsage) -> bool) -> Vec<InstanceUsage> {
        let mut v: Vec<InstanceUsage> = self.read().values().map(|s| s.usage.clone()).filter(|u| keep(u)).collect();
        v.sort_by(|a, b| (a.organization.as_str(), a.name.as_str()).cmp(&(b.organization.as_str(), b.name.as_str())));
        v
    }
}

/// Every instance's latest reading on `/metrics` (CPU, memory and its limit, network rates
/// and byte counts, disk byte counts, health), labelled by organization, app, instance and
/// cloudlet; Prometheus sums them per tenant or cloudlet.
pub struct ResourceMetrics(pub Resources);

impl std::fmt::Debug for ResourceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResourceMetrics")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct UsageLabels {
    organization: String,
    app_id: String,
    instance: String,
    cloudlet: String,
}

impl prometheus_client::collector::Collector for ResourceMetrics {
    fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::MetricType;
        let rows: Vec<(UsageLabels, InstanceUsage)> = self
            .0
            .instances(|_| true)
            .into_iter()
            .map(|u| (UsageLabels { organization: u.organization.to_string(), app_id: u.app_id.to_string(), instance: u.name.clone(), cloudlet: u.cloudlet.clone() }, u))
            .collect();
        type Read = fn(&InstanceUsage) -> u64;
        let gauges: [(&str, &str, Read); 6] = [
            ("op_instance_cpu_millicores", "CPU an instance uses, millicores", |u| u.amounts.cpu_millicores),
            ("op_instance_memory_bytes", "Memory an instance uses", |u| u.amounts.memory_bytes),
            ("op_instance_memory_limit_bytes", "Memory limit of an instance", |u| u.amounts.memory_limit_bytes),
            ("op_instance_network_receive_bytes_per_second", "Bytes an instance received per second", |u| u.amounts.net_rx_bytes_per_sec),
            ("op_instance_network_transmit_bytes_per_second", "Bytes an instance sent per second", |u| u.amounts.net_tx_bytes_per_sec),
            ("op_instance_stressed", "1 when an instance is Stressed or Exited, else 0", |u| u64::from(u.health != Health::Healthy)),
        ];
        for (name, help, read) in gauges {
            let mut d = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (l, u) in &rows {
                ConstGauge::new(i64::try_from(read(u)).unwrap_or(i64::MAX)).encode(d.encode_family(l)?)?;
            }
        }
        let counters: [(&str, &str, Read); 4] = [
            ("op_instance_network_receive_bytes", "Bytes an instance received since its container started", |u| u.amounts.net_rx_bytes),
            ("op_instance_network_transmit_bytes", "Bytes an instance sent since its container started", |u| u.amounts.net_tx_bytes),
            ("op_instance_disk_read_bytes", "Bytes an instance read from disk since its container started", |u| u.amounts.disk_read_bytes),
            ("op_instance_disk_write_bytes", "Bytes an instance wrote to disk since its container started", |u| u.amounts.disk_write_bytes),
        ];
        for (name, help, read) in counters {
            let mut d = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (l, u) in &rows {
                ConstCounter::new(read(u)).encode(d.encode_family(l)?)?;
            }
        }
        Ok(())
    }
}

/// Sums readings by `key`; the group's health is its worst instance's.
pub fn totals(usages: &[InstanceUsage], key: impl Fn(&InstanceUsage) -> String) -> Vec<UsageTotals> {
    let mut by: BTreeMap<String, UsageTotals> = BTreeMap::new();
    for u in usages {
        let t = by.entry(key(u)).or_insert_with_key(|k| UsageTotals { key: k.clone(), ..UsageTotals::default() });
        t.instances += 1;
        match u.health {
            Health::Healthy => t.healthy += 1,
            Health::Stressed => t.stressed += 1,
            Health::Exited => t.exited += 1,
        }
        t.health = t.health.max(u.health);
        t.amounts += u.amounts;
    }
    by.into_values().collect()
}

/// What the collector knows of an instance before reading it.
struct Target {
    uid: Uid,
    name: String,
    organization: Name,
    app: Uid,
    cloudlet: Name,
    vcpus: u32,
    ready: bool,
    /// Its cloudlet (shared: a copy per instance would be 100,000 copies per pass).
    host: Arc<Cloudlet>,
}

/// Reads every local instance once per `every`, for ever.
pub async fn run(s: AppState, every: Duration) {
    loop {
        if let Err(e) = collect(&s).await {
            tracing::warn!(error = %e, "resource collection failed");
        }
        tokio::time::sleep(every).await;
    }
}

async fn collect(s: &AppState) -> Result<(), ApiError> {
    // From memory: at 100,000 instances a list from the store every few seconds costs more
    // than the readings.
    let cloudlets = s.inventory.cloudlets();
    let flavors = s.inventory.flavors();
    let instances = s.inventory.instances();
    let cloudlet_of: HashMap<&Name, &Arc<Cloudlet>> = cloudlets.iter().map(|c| (&c.metadata.name, c)).collect();
    let vcpus_of: HashMap<&Name, u32> = flavors.iter().map(|f| (&f.metadata.name, f.spec.vcpus)).collect();
    let targets: Vec<Target> = instances
        .iter()
        .filter(|i| i.spec.federated.is_none() && i.metadata.deletion_requested.is_none())
        .filter_map(|i| {
            Some(Target {
                uid: i.metadata.uid,
                name: i.metadata.name.to_string(),
                organization: i.metadata.organization.clone()?,
                app: i.spec.app_id,
                cloudlet: i.spec.cloudlet.clone(),
                vcpus: vcpus_of.get(&i.spec.flavor).copied().unwrap_or(0),
                ready: i.status.holds("ContainerRunning"),
                host: Arc::clone(cloudlet_of.get(&i.spec.cloudlet)?),
            })
        })
        .collect();
    let readings: Vec<(Target, Result<ContainerStats, DriverError>)> = futures::stream::iter(targets)
        .map(|t| async move {
            let r = match s.drivers.for_cloudlet(&t.host.spec) {
                Ok(d) => d.stats(&op_controller::container_name(t.uid)).await,
                Err(e) => Err(e),
            };
            (t, r)
        })
        .buffer_unordered(CONCURRENT_READS)
        .collect()
        .await;
    let now = Instant::now();
    let mut next = HashMap::with_capacity(readings.len());
    {
        let before = s.resources.read();
        for (t, r) in readings {
            let prev = before.get(&t.uid);
            let (counters, running) = match r {
                Ok(c) => (c, t.ready && c.pids > 0),
                // Unreachable runtime: keep the last counters, say nothing new about health.
                Err(DriverError::Unavailable(_)) if prev.is_some() => continue,
                Err(_) => (ContainerStats::default(), false),
            };
            let secs = prev.map_or(0.0, |p| now.duration_since(p.at).as_secs_f64());
            let rate = |new: u64, old: Option<u64>| match old {
                Some(o) if secs > 0.0 && new >= o => (new - o) as f64 / secs,
                _ => 0.0,
            };
            let cpu_ns_per_sec = rate(counters.cpu_ns, prev.map(|p| p.counters.cpu_ns));
            let cpu_millicores = (cpu_ns_per_sec / 1e6).round() as u64;
            let cpu_share = if t.vcpus == 0 { 0.0 } else { cpu_ns_per_sec / 1e9 / f64::from(t.vcpus) };
            let mem_share = if counters.memory_limit_bytes == 0 { 0.0 } else { counters.memory_bytes as f64 / counters.memory_limit_bytes as f64 };
            let usage = InstanceUsage {
                app_instance_id: t.uid,
                name: t.name,
                organization: t.organization,
                app_id: t.app,
                cloudlet: t.cloudlet.to_string(),
                health: health(running, cpu_share, mem_share),
                amounts: ResourceAmounts {
                    cpu_millicores,
                    vcpus: t.vcpus,
                    memory_bytes: counters.memory_bytes,
                    memory_limit_bytes: counters.memory_limit_bytes,
                    disk_read_bytes: counters.disk_read_bytes,
                    disk_write_bytes: counters.disk_write_bytes,
                    net_rx_bytes: counters.net_rx_bytes,
                    net_tx_bytes: counters.net_tx_bytes,
                    net_rx_bytes_per_sec: rate(counters.net_rx_bytes, prev.map(|p| p.counters.net_rx_bytes)).round() as u64,
                    net_tx_bytes_per_sec: rate(counters.net_tx_bytes, prev.map(|p| p.counters.net_tx_bytes)).round() as u64,
                },
                sampled_at: chrono::Utc::now(),
            };
            next.insert(t.uid, Sample { usage, counters, at: now });
        }
    }
    *s.resources.0.write().unwrap_or_else(|e| e.into_inner()) = next;
    Ok(())
}

/// Filters of the resource views.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ResourceQuery {
    /// Only this app's instances.
    pub app_id: Option<Uid>,
    /// Only this organization's instances.
    pub organization: Option<String>,
}

fn visible(s: &AppState, c: &Caller, q: &ResourceQuery) -> Vec<InstanceUsage> {
    s.resources.instances(|u| {
        c.can_read(Some(&u.organization))
            && q.app_id.is_none_or(|a| a == u.app_id)
            && q.organization.as_ref().is_none_or(|o| u.organization.as_str() == o)
    })
}

/// Hides the cloudlet from developers: they see zones, the operator sees cloudlets.
fn for_caller(c: &Caller, mut v: Vec<InstanceUsage>) -> Vec<InstanceUsage> {
    if !c.role.is_operator() {
        for u in &mut v {
            u.cloudlet = op_types::specs::HIDDEN_CLOUDLET.to_string();
        }
    }
    v
}

/// The latest resource use and health of each instance the caller may see.
#[utoipa::path(get, path = "/op/v1/resources/instances", tag = "resources", security(("bearer" = [])), params(ResourceQuery),
    responses((status = 200, body = Vec<InstanceUsage>), (status = 401, body = ErrorInfo)))]
pub async fn instances(State(s): State<AppState>, c: Caller, Query(q): Query<ResourceQuery>) -> Json<Vec<InstanceUsage>> {
    Json(for_caller(&c, visible(&s, &c, &q)))
}

/// Resource use and health per app (its worst instance's health).
#[utoipa::path(get, path = "/op/v1/resources/apps", tag = "resources", security(("bearer" = [])), params(ResourceQuery),
    responses((status = 200, body = Vec<UsageTotals>), (status = 401, body = ErrorInfo)))]
pub async fn apps(State(s): State<AppState>, c: Caller, Query(q): Query<ResourceQuery>) -> Json<Vec<UsageTotals>> {
    Json(totals(&visible(&s, &c, &q), |u| u.app_id.to_string()))
}

/// Resource use per tenant (organization): compute, memory, storage and bandwidth. The
/// operator sees every tenant; a developer, the organizations it may read.
#[utoipa::path(get, path = "/op/v1/resources/tenants", tag = "resources", security(("bearer" = [])), params(ResourceQuery),
    responses((status = 200, body = Vec<UsageTotals>), (status = 401, body = ErrorInfo)))]
pub async fn tenants(State(s): State<AppState>, c: Caller, Query(q): Query<ResourceQuery>) -> Json<Vec<UsageTotals>> {
    Json(totals(&visible(&s, &c, &q), |u| u.organization.to_string()))
}

/// Resource use per cloudlet (the operator's).
#[utoipa::path(get, path = "/op/v1/resources/cloudlets", tag = "resources", security(("bearer" = [])),
    responses((status = 200, body = Vec<UsageTotals>), (status = 401, body = ErrorInfo), (status = 403, body = ErrorInfo)))]
pub async fn cloudlets(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<UsageTotals>>, ApiError> {
    if !c.role.is_operator() {
        return Err(ApiError::Forbidden("cloudlets are the operator's; developers see their instances, apps and organizations".into()));
    }
    Ok(Json(totals(&s.resources.instances(|_| true), |u| u.cloudlet.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_states() {
        assert_eq!(health(false, 0.0, 0.0), Health::Exited);
        assert_eq!(health(true, 0.1, 0.2), Health::Healthy);
        assert_eq!(health(true, STRESSED_CPU, 0.0), Health::Stressed);
        assert_eq!(health(true, 0.0, STRESSED_MEMORY + 0.01), Health::Stressed);
        assert_eq!(health(false, 1.0, 1.0), Health::Exited, "an exited instance is not merely stressed");
    }

    #[test]
    fn totals_sum_and_take_the_worst_health() {
        let u = |org: &str, h: Health, cpu: u64| InstanceUsage {
            app_instance_id: Uid::random(),
            name: "i".into(),
            organization: Name::new(org).unwrap(),
            app_id: Uid::random(),
            cloudlet: "edge".into(),
            health: h,
            amounts: ResourceAmounts { cpu_millicores: cpu, vcpus: 1, memory_bytes: 10, memory_limit_bytes: 100, net_rx_bytes_per_sec: 5, ..ResourceAmounts::default() },
            sampled_at: chrono::Utc::now(),
        };
        let t = totals(&[u("org_a", Health::Healthy, 100), u("org_a", Health::Stressed, 900), u("org_b", Health::Healthy, 1)], |x| x.organization.to_string());
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].key.as_str(), t[0].instances, t[0].amounts.cpu_millicores, t[0].amounts.memory_bytes, t[0].amounts.net_rx_bytes_per_sec), ("org_a", 2, 1000, 20, 10));
        assert_eq!((t[0].health, t[0].healthy, t[0].stressed), (Health::Stressed, 1, 1));
        assert_eq!(t[1].health, Health::Healthy);
    }
}
