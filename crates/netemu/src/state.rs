//! The emulated network's live state: where each device is and which address it has, the
//! resources clients created (NEF subscriptions, traffic influences, QoD sessions), the event
//! script's clock, and delivery of NEF notifications when devices move or change address.
//!
//! Everything is in memory: the emulator is a test double, and `POST /emulator/v1/reset` puts it
//! back to the scenario's start.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::auth::TokenIssuer;
use crate::error::CamaraError;
use crate::nef::{self, MonSub};
use crate::qod::QodSession;
use crate::scenario::{is_plmn_id, Action, Cell, Scenario};
use crate::traffic::Influence;

/// Locks a mutex, also after a panic elsewhere poisoned it (the data stays usable for a test double).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why the emulator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The HTTP client used for notifications cannot be built.
    #[error("cannot build the HTTP client for notifications: {0}")]
    Http(String),
}

/// A device's changing state.
#[derive(Clone, Debug)]
pub(crate) struct DeviceRt {
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub cell: String,
    pub located_at: DateTime<Utc>,
    /// PLMN id (`mcc` + `mnc`) of the network serving the device.
    pub serving_plmn: String,
}

/// One applied event, for `GET /emulator/v1/history`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When it was applied.
    pub time: DateTime<Utc>,
    /// `script` or `admin`.
    pub source: String,
    /// The device's label.
    pub device: String,
    /// What happened.
    pub action: Action,
    /// How many NEF notifications it queued.
    pub notifications: usize,
}

/// One NEF notification delivery attempt series, for `GET /emulator/v1/notifications`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// When the last attempt ended.
    pub time: DateTime<Utc>,
    /// `notificationDestination`.
    pub destination: String,
    /// The subscription link.
    pub subscription: String,
    /// Final HTTP status or error.
    pub outcome: String,
    /// Whether the destination accepted it (2xx).
    pub delivered: bool,
}

/// Everything that changes.
pub(crate) struct World {
    pub devices: Vec<DeviceRt>,
    pub subscriptions: BTreeMap<String, MonSub>,
    pub influences: BTreeMap<String, Influence>,
    pub sessions: BTreeMap<String, QodSession>,
    pub history: VecDeque<HistoryEntry>,
    pub seq: u64,
    /// Background UEs per cell id (the scenario's `backgroundUes`, changed by the admin API).
    pub background_ues: HashMap<String, u64>,
}

impl World {
    fn initial(s: &Scenario) -> World {
        let now = Utc::now();
        World {
            devices: s
                .devices
                .iter()
                .enumerate()
                .map(|(i, d)| DeviceRt {
                    ipv4: d.ipv4_addresses.clone(),
                    ipv6: d.ipv6_address,
                    cell: d.cell.clone(),
                    located_at: now,
                    serving_plmn: s.initial_serving_plmn(i),
                })
                .collect(),
            subscriptions: BTreeMap::new(),
            influences: BTreeMap::new(),
            sessions: BTreeMap::new(),
            history: VecDeque::new(),
            seq: 0,
            background_ues: s
                .cells
                .iter()
                .map(|c| (c.id.clone(), c.background_ues))
                .collect(),
        }
    }

    /// UEs attached to a cell: the devices it serves now plus its background UEs.
    pub fn cell_ues(&self, cell: &Cell) -> (u64, u64) {
        let devices = self.devices.iter().filter(|d| d.cell == cell.id).count() as u64;
        let background = self
            .background_ues
            .get(&cell.id)
            .copied()
            .unwrap_or(cell.background_ues);
        (devices, background)
    }

    /// A monotonically increasing number (ordering of traffic influences).
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The device using this IPv4 address.
    pub fn find_ipv4(&self, ip: Ipv4Addr) -> Option<usize> {
        self.devices.iter().position(|d| d.ipv4.contains(&ip))
    }

    /// The device whose IPv6 /64 contains this address.
    pub fn find_ipv6(&self, ip: Ipv6Addr) -> Option<usize> {
        let prefix = |a: Ipv6Addr| -> [u16; 4] {
            let s = a.segments();
            [s[0], s[1], s[2], s[3]]
        };
        self.devices.iter().position(|d| d.ipv6.is_some_and(|a| prefix(a) == prefix(ip)))
    }
}

/// A device as the admin API shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    /// Scenario name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E.164 number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// NAI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_access_identifier: Option<String>,
    /// Current IPv4 addresses.
    pub ipv4_addresses: Vec<Ipv4Addr>,
    /// IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<Ipv6Addr>,
    /// Serving cell.
    pub cell: String,
    /// Tracking area of the serving cell.
    pub tracking_area: String,
    /// Centre of the serving cell.
    pub latitude: f64,
    /// Centre of the serving cell.
    pub longitude: f64,
    /// Cell radius, metres.
    pub radius_m: f64,
    /// DNAIs whose UPF serves the cell.
    pub serving_dnais: Vec<String>,
    /// The DNAI the device's traffic breaks out at: the latest traffic influence's, else the
    /// first serving DNAI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_dnai: Option<String>,
    /// The traffic influence deciding `trafficDnai`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_influence_id: Option<String>,
    /// When the device last changed cell (or the emulator started).
    pub located_at: DateTime<Utc>,
    /// PLMN serving the device, `mcc` followed by `mnc`.
    pub serving_plmn: String,
    /// Whether that is not the operator's own PLMN.
    pub roaming: bool,
}

/// A cell's load as the admin API shows it (and `NETWORK_PERFORMANCE` analytics report it).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CellView {
    /// Cell id.
    pub id: String,
    /// Tracking area code.
    pub tracking_area: String,
    /// UEs the cell serves at full load.
    pub capacity_ues: u64,
    /// Scenario devices the cell serves now.
    pub devices: u64,
    /// UEs attached besides the scenario's devices.
    pub background_ues: u64,
    /// `devices + backgroundUes`: the `NUM_OF_UE` `absoluteNum`.
    pub ues: u64,
    /// The `NUM_OF_UE` `relativeRatio`: see [`relative_ratio`].
    pub relative_ratio: u8,
}

/// `ues` relative to `capacity` in percent, rounded, as a TS 29.571 `SamplingRatio` (1..=100: an
/// idle cell reads 1, an overloaded one 100). A zero capacity counts as 1.
pub fn relative_ratio(ues: u64, capacity: u64) -> u8 {
    let capacity = u128::from(capacity.max(1));
    let percent = (u128::from(ues) * 100 + capacity / 2) / capacity;
    u8::try_from(percent.clamp(1, 100)).unwrap_or(100)
}

/// The emulator: scenario, live state, token issuer, notification sender.
pub struct Emulator {
    /// The scenario it runs.
    pub scenario: Scenario,
    /// Its own base URL (`apiRoot`), for resource links.
    pub base_url: String,
    /// OAuth2 token issuer.
    pub tokens: TokenIssuer,
    pub(crate) world: Mutex<World>,
    http: reqwest::Client,
    deliveries: Arc<Mutex<VecDeque<Delivery>>>,
    script: Mutex<Option<JoinHandle<()>>>,
}

const HISTORY_MAX: usize = 1000;

impl Emulator {
    /// A network in the scenario's initial state; call [`Emulator::start_script`] to run events.
    pub fn new(scenario: Scenario, base_url: String) -> Result<Arc<Emulator>, EmulatorError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| EmulatorError::Http(e.to_string()))?;
        Ok(Arc::new(Emulator {
            tokens: TokenIssuer::new(&scenario.oauth),
            world: Mutex::new(World::initial(&scenario)),
            scenario,
            base_url: base_url.trim_end_matches('/').to_string(),
            http,
            deliveries: Arc::new(Mutex::new(VecDeque::new())),
            script: Mutex::new(None),
        }))
    }

    /// (Re)starts the scenario's event clock: events fire at their `at` seconds from now.
    pub fn start_script(self: &Arc<Self>) {
        let mut events: Vec<(f64, usize, Action)> = self
            .scenario
            .events
            .iter()
            .filter_map(|e| Some((e.at, self.scenario.device_index(&e.device)?, e.action()?)))
            .collect();
        events.sort_by(|a, b| a.0.total_cmp(&b.0));
        let weak = Arc::downgrade(self);
        let start = tokio::time::Instant::now();
        let handle = tokio::spawn(async move {
            for (at, idx, action) in events {
                tokio::time::sleep_until(start + Duration::from_secs_f64(at)).await;
                let Some(emu) = weak.upgrade() else { return };
                if let Err(e) = emu.apply(idx, &action, "script") {
                    warn!(device = idx, error = %e.message, "scripted event not applied");
                }
            }
        });
        if let Some(old) = lock(&self.script).replace(handle) {
            old.abort();
        }
    }

    /// Back to the scenario's start: devices where (and in the PLMN) they began, cells' background
    /// load as the scenario sets it, no subscriptions, influences or sessions, empty history,
    /// event clock restarted.
    pub fn reset(self: &Arc<Self>) {
        *lock(&self.world) = World::initial(&self.scenario);
        lock(&self.deliveries).clear();
        self.start_script();
    }

    /// The device a CAMARA phone number designates.
    pub fn find_phone(&self, phone: &str) -> Option<usize> {
        self.scenario.devices.iter().position(|d| d.phone_number.as_deref() == Some(phone))
    }

    /// The device a NAI designates.
    pub fn find_nai(&self, nai: &str) -> Option<usize> {
        self.scenario.devices.iter().position(|d| d.network_access_identifier.as_deref() == Some(nai))
    }

    /// The device an admin reference designates: name, phone number, NAI or current IP address.
    pub(crate) fn find_any(&self, world: &World, reference: &str) -> Option<usize> {
        self.scenario.device_index(reference).or_else(|| match reference.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => world.find_ipv4(ip),
            Ok(std::net::IpAddr::V6(ip)) => world.find_ipv6(ip),
            Err(_) => None,
        })
    }

    /// The traffic DNAI of a device and the influence that decided it.
    pub(crate) fn traffic_dnai(&self, world: &World, idx: usize) -> (Option<String>, Option<String>) {
        let latest = world
            .influences
            .values()
            .filter(|i| i.device == Some(idx) && i.dnai.is_some())
            .max_by_key(|i| i.seq);
        match latest {
            Some(i) => (i.dnai.clone(), Some(i.id.clone())),
            None => (self.scenario.dnais_serving(&world.devices[idx].cell).into_iter().next(), None),
        }
    }

    /// The admin view of a device.
    pub(crate) fn view(&self, world: &World, idx: usize) -> DeviceView {
        let d = &self.scenario.devices[idx];
        let rt = &world.devices[idx];
        let cell = self.scenario.cell(&rt.cell);
        let (traffic_dnai, traffic_influence_id) = self.traffic_dnai(world, idx);
        DeviceView {
            name: d.name.clone(),
            phone_number: d.phone_number.clone(),
            network_access_identifier: d.network_access_identifier.clone(),
            ipv4_addresses: rt.ipv4.clone(),
            ipv6_address: rt.ipv6,
            cell: rt.cell.clone(),
            tracking_area: cell.map(|c| c.tracking_area.clone()).unwrap_or_default(),
            latitude: cell.map(|c| c.lat).unwrap_or_default(),
            longitude: cell.map(|c| c.lon).unwrap_or_default(),
            radius_m: cell.map(|c| self.scenario.cell_radius(c)).unwrap_or(self.scenario.default_cell_radius_m),
            serving_dnais: self.scenario.dnais_serving(&rt.cell),
            traffic_dnai,
            traffic_influence_id,
            located_at: rt.located_at,
            serving_plmn: rt.serving_plmn.clone(),
            roaming: rt.serving_plmn != self.scenario.operator.plmn_id(),
        }
    }

    /// The admin view of a cell's load.
    pub(crate) fn cell_view(&self, world: &World, cell: &Cell) -> CellView {
        let (devices, background_ues) = world.cell_ues(cell);
        let ues = devices.saturating_add(background_ues);
        CellView {
            id: cell.id.clone(),
            tracking_area: cell.tracking_area.clone(),
            capacity_ues: cell.capacity_ues,
            devices,
            background_ues,
            ues,
            relative_ratio: relative_ratio(ues, cell.capacity_ues),
        }
    }

    /// Every cell's load, in scenario order.
    pub fn cells(&self) -> Vec<CellView> {
        let world = lock(&self.world);
        self.scenario
            .cells
            .iter()
            .map(|c| self.cell_view(&world, c))
            .collect()
    }

    /// One cell's load; `None` for an unknown cell.
    pub fn cell(&self, id: &str) -> Option<CellView> {
        let cell = self.scenario.cell(id)?;
        let world = lock(&self.world);
        Some(self.cell_view(&world, cell))
    }

    /// Sets the background UEs of a cell now (until a reset); `None` for an unknown cell.
    pub fn set_background_ues(&self, id: &str, background_ues: u64) -> Option<CellView> {
        let cell = self.scenario.cell(id)?;
        let mut world = lock(&self.world);
        world.background_ues.insert(cell.id.clone(), background_ues);
        info!(cell = %cell.id, background_ues, "cell load changed");
        Some(self.cell_view(&world, cell))
    }

    /// Every device's admin view.
    pub fn devices(&self) -> Vec<DeviceView> {
        let world = lock(&self.world);
        (0..world.devices.len()).map(|i| self.view(&world, i)).collect()
    }

    /// Applied events, oldest first.
    pub fn history(&self) -> Vec<HistoryEntry> {
        lock(&self.world).history.iter().cloned().collect()
    }

    /// Notification deliveries, oldest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.deliveries).iter().cloned().collect()
    }

    /// Applies a move, an IP change or a change of serving PLMN to device `idx` now and queues the
    /// NEF notifications it causes; `source` is recorded in the history.
    pub fn apply(&self, idx: usize, action: &Action, source: &str) -> Result<DeviceView, CamaraError> {
        let mut world = lock(&self.world);
        if idx >= world.devices.len() {
            return Err(CamaraError::identifier_not_found("no such device"));
        }
        let now = Utc::now();
        world.subscriptions.retain(|_, s| s.expires.is_none_or(|e| e > now));
        let changed;
        let monitoring_type = match action {
            Action::Move { cell } => {
                if self.scenario.cell(cell).is_none() {
                    return Err(CamaraError::invalid_argument(format!("cell: unknown cell '{cell}'")));
                }
                let rt = &mut world.devices[idx];
                changed = rt.cell != *cell;
                rt.cell = cell.clone();
                rt.located_at = now;
                nef::LOCATION_REPORTING
            }
            Action::IpChange { ipv4_address } => {
                if let Some(other) = world.find_ipv4(*ipv4_address).filter(|o| *o != idx) {
                    return Err(CamaraError::conflict(
                        "CONFLICT",
                        format!("ipv4Address: {ipv4_address} is in use by {}", self.scenario.devices[other].label()),
                    ));
                }
                let rt = &mut world.devices[idx];
                changed = rt.ipv4.first() != Some(ipv4_address);
                rt.ipv4 = vec![*ipv4_address];
                nef::PDN_CONNECTIVITY_STATUS
            }
            Action::Roam { serving_plmn } => {
                if !is_plmn_id(serving_plmn) {
                    return Err(CamaraError::invalid_argument(format!(
                        "servingPlmn: must be mcc followed by mnc (5 or 6 digits), got '{serving_plmn}'"
                    )));
                }
                let rt = &mut world.devices[idx];
                changed = rt.serving_plmn != *serving_plmn;
                rt.serving_plmn = serving_plmn.clone();
                nef::ROAMING_STATUS
            }
        };
        let mut sent = 0;
        if changed {
            let targets: Vec<String> = world
                .subscriptions
                .values()
                .filter(|s| s.device == idx && s.types.iter().any(|t| t == monitoring_type))
                .map(|s| s.id.clone())
                .collect();
            for id in targets {
                let Some(sub) = world.subscriptions.get(&id) else { continue };
                let report = match action {
                    Action::Move { .. } => nef::location_report(self, &world, sub, now),
                    Action::IpChange { .. } => nef::pdn_report(self, &world, sub, now),
                    Action::Roam { .. } => nef::roaming_report(self, &world, sub, now),
                };
                let body = nef::notification(sub, vec![report]);
                if sub.tx.send(body).is_ok() {
                    sent += 1;
                }
                let exhausted = match world.subscriptions.get_mut(&id) {
                    Some(sub) => match sub.remaining.as_mut() {
                        Some(n) => {
                            *n = n.saturating_sub(1);
                            *n == 0
                        }
                        None => false,
                    },
                    None => false,
                };
                if exhausted {
                    world.subscriptions.remove(&id);
                }
            }
        }
        let label = self.scenario.devices[idx].label();
        info!(device = %label, source, ?action, notifications = sent, "event applied");
        world.history.push_back(HistoryEntry { time: now, source: source.into(), device: label, action: action.clone(), notifications: sent });
        while world.history.len() > HISTORY_MAX {
            world.history.pop_front();
        }
        Ok(self.view(&world, idx))
    }

    /// A queue whose bodies are POSTed in order to `destination` (three attempts each).
    pub(crate) fn delivery_queue(&self, destination: &str) -> mpsc::UnboundedSender<Value> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
        let http = self.http.clone();
        let log = Arc::clone(&self.deliveries);
        let destination = destination.to_string();
        tokio::spawn(async move {
            while let Some(body) = rx.recv().await {
                let mut outcome = String::new();
                let mut delivered = false;
                for attempt in 0..3u32 {
                    match http.post(&destination).json(&body).send().await {
                        Ok(r) if r.status().is_success() => {
                            outcome = r.status().to_string();
                            delivered = true;
                            break;
                        }
                        Ok(r) => outcome = format!("HTTP {}", r.status()),
                        Err(e) => outcome = format!("error: {e}"),
                    }
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                if !delivered {
                    warn!(%destination, %outcome, "notification not delivered");
                }
                let subscription = body.get("subscription").and_then(Value::as_str).unwrap_or_default().to_string();
                let mut log = lock(&log);
                log.push_back(Delivery { time: Utc::now(), destination: destination.clone(), subscription, outcome, delivered });
                while log.len() > HISTORY_MAX {
                    log.pop_front();
                }
            }
        });
        tx
    }
}

#[cfg(test)]
mod tests {
    use super::relative_ratio;

    #[test]
    fn relative_ratio_is_a_sampling_ratio() {
        assert_eq!(
            relative_ratio(0, 100),
            1,
            "an idle cell reads the SamplingRatio minimum"
        );
        assert_eq!(relative_ratio(3, 100), 3);
        assert_eq!(relative_ratio(1, 3), 33);
        assert_eq!(relative_ratio(2, 3), 67);
        assert_eq!(relative_ratio(1, 200), 1);
        assert_eq!(relative_ratio(3, 200), 2, "1.5 % rounds up");
        assert_eq!(relative_ratio(45, 50), 90);
        assert_eq!(
            relative_ratio(500, 100),
            100,
            "an overloaded cell reads 100"
        );
        assert_eq!(relative_ratio(u64::MAX, 1), 100);
        assert_eq!(relative_ratio(1, 0), 100, "a zero capacity counts as one");
    }
}
