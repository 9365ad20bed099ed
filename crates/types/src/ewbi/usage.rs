//! Usage records for settlement between federated operators.
//!
//! When operator A (the originating OP) deploys applications on operator B's (the partner OP's)
//! edge zones through the GSMA OPG East/Westbound API, both must agree on what B bills A. Both
//! see the same events — B sends them to A in callbacks stamped with B's `modificationDate`,
//! which is the authoritative clock — and both run the same pure function, [`compute`], over
//! them. Equal event *sets* must give byte-identical records and the same [`UsageReport::digest`]
//! on both sides, whatever order the events arrived in and however many times an at-least-once
//! channel delivered each one.
//!
//! # Rules of the computation
//!
//! * **Whole seconds.** Every timestamp (event times, reservation bounds, the window) is
//!   truncated towards the past to a whole second of Unix time before any arithmetic, so
//!   sub-second clock noise cannot make the two sides disagree, and every quantity is an
//!   integer. No floating point appears anywhere in a record.
//! * **Canonical order and dedupe.** Events are sorted by `(at, event)` — `at` at full precision,
//!   ties broken by the total order derived on [`UsageEvent`] (variant, then fields in declaration
//!   order) — and exact duplicates are dropped. The *identity* of an event is therefore its
//!   whole content: a redelivered event is byte-for-byte the same event. (Two distinct counter
//!   reports that agree in every field, including `at`, are indistinguishable from a redelivery;
//!   producers aggregate per key and timestamp, so they never send such a pair.)
//! * **Instances.** An instance is identified by `(federationContextId, appInstanceId)`. It is
//!   billable from a `READY` event until the next non-`READY` event (`PENDING`, `FAILED`,
//!   `TERMINATING`); an instance still `READY` at the end of the window counts to the end.
//!   A `READY` event for an instance already `READY` with the same app, zone, flavour and
//!   resources is a no-op (a re-sent status); with different ones it ends the running segment
//!   and starts a new one (a resize or a move) at that instant. Events before the window are
//!   replayed so an instance `READY` since before `from` counts from `from`.
//! * **Periods.** Usage is cut into periods aligned on the Unix epoch (one UTC hour by
//!   default, see [`Granularity`]) and clipped to the window `[from, to)`, so a record's
//!   [`Period`] says exactly which seconds it measured.
//! * **Keys.** One [`UsageRecord`] per [`UsageKey`] `(federationContextId, period start,
//!   appProviderId, appId, zoneId, flavourId)` that has any non-zero usage. Sessions and service
//!   calls reported without a flavour use the empty flavour `""`; pool reservations belong to
//!   the federation partner, not to an application, so their records have empty
//!   `appProviderId` and `appId`.
//! * **Arithmetic** is on `u64` and saturates rather than wrapping or panicking; both sides
//!   saturate identically.
//!
//! # Canonical JSON and the digest
//!
//! [`canonical_json`] is `serde_json`'s compact serialization (no whitespace) of the records
//! array, in [`compute`]'s order (ascending [`UsageKey`]). Object members appear in the
//! declaration order of the structs below (fixed by the serde derive); maps are `BTreeMap`s, so
//! their keys appear in ascending byte order; every number is an unsigned decimal integer;
//! timestamps are RFC 3339 UTC strings with whole seconds and a `Z` suffix
//! (`"2024-05-01T10:00:00Z"`); strings use `serde_json`'s escaping (only `"`, `\` and control
//! characters are escaped; other characters are raw UTF-8). The digest is the lower-case hex
//! SHA-256 of those UTF-8 bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Serde for whole-second RFC 3339 UTC timestamps (`2024-05-01T10:00:00Z`), so record times
/// have one spelling on both sides regardless of how chrono's default would format them.
mod utc_secs {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(d)
    }
}

/// Seconds of Unix time, truncated towards the past: the unit of all arithmetic here.
fn secs(t: &DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// The instant at a whole second of Unix time. Only ever called with seconds between two real
/// instants (a window's bounds), so the fallback is unreachable; it keeps the function total.
fn at_secs(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// RFC 3339 with whole seconds, the spelling used in CSV and mismatch reports.
fn fmt_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// The GSMA OPG `InstanceState` of an application instance on a partner's zone; only `READY`
/// time is billable, so the usage computation needs exactly these four values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceState {
    /// Being instantiated: not billable.
    Pending,
    /// Running and serving: billable.
    Ready,
    /// Instantiation or run failed: ends billing.
    Failed,
    /// Being removed: ends billing.
    Terminating,
}

/// An application instance changed state on the partner's zone, as the partner reported it in
/// an instance-status callback: the source of instance, vCPU and memory seconds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStateChanged {
    /// The federation the instance was deployed through.
    pub federation_context_id: String,
    /// The application provider billed for the instance.
    pub app_provider_id: String,
    /// The onboarded application.
    pub app_id: String,
    /// The instance, unique within the federation context.
    pub app_instance_id: String,
    /// The partner's zone the instance runs in.
    pub zone_id: String,
    /// The compute flavour the instance was given.
    pub flavour_id: String,
    /// Reserved vCPU in thousandths of a vCPU (integers keep both sides bit-identical).
    pub vcpu_milli: u64,
    /// Reserved memory in MiB.
    pub memory_mb: u64,
    /// The state entered.
    pub state: InstanceState,
    /// When it was entered, on the partner's (authoritative) clock: its `modificationDate`.
    pub at: DateTime<Utc>,
}

/// Device sessions an application served on a zone, as counted by the partner: billed per
/// session.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsServed {
    /// The federation the application was deployed through.
    pub federation_context_id: String,
    /// The application provider billed.
    pub app_provider_id: String,
    /// The application that served the sessions.
    pub app_id: String,
    /// The zone that served them.
    pub zone_id: String,
    /// The flavour, if the partner attributes sessions to one; records use `""` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavour_id: Option<String>,
    /// Sessions served since the previous report for the same key.
    pub sessions: u64,
    /// When counted, on the partner's clock.
    pub at: DateTime<Utc>,
}

/// Calls an application made to the partner's additional services (edge discovery, roaming
/// authentication, location, ...): billed per call and per service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCalls {
    /// The federation the application was deployed through.
    pub federation_context_id: String,
    /// The application provider billed.
    pub app_provider_id: String,
    /// The calling application.
    pub app_id: String,
    /// The zone the calls were served for.
    pub zone_id: String,
    /// The flavour, if the partner attributes calls to one; records use `""` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavour_id: Option<String>,
    /// The service, e.g. `edgeDiscovery`, `roamingAuth`, `location`.
    pub service: String,
    /// Calls since the previous report for the same key.
    pub count: u64,
    /// When counted, on the partner's clock.
    pub at: DateTime<Utc>,
}

/// Flavours the originating operator reserved in a resource pool on a partner's zone: billed
/// for the reserved time whether used or not.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolReservation {
    /// The federation the reservation was made through.
    pub federation_context_id: String,
    /// The reserved pool.
    pub pool_id: String,
    /// The zone of the pool.
    pub zone_id: String,
    /// The reserved flavour.
    pub flavour_id: String,
    /// How many of the flavour were reserved.
    pub count: u64,
    /// Start of the reservation (inclusive).
    pub from: DateTime<Utc>,
    /// End of the reservation (exclusive); not after `from` means an empty reservation.
    pub until: DateTime<Utc>,
}

/// One billable fact seen by both operators. Tagged by `type` in JSON so a stream of mixed
/// events is self-describing; the derived total order is part of the canonical event order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UsageEvent {
    /// `{"type":"instanceStateChanged", ...}`
    InstanceStateChanged(InstanceStateChanged),
    /// `{"type":"sessionsServed", ...}`
    SessionsServed(SessionsServed),
    /// `{"type":"serviceCalls", ...}`
    ServiceCalls(ServiceCalls),
    /// `{"type":"poolReservation", ...}`
    PoolReservation(PoolReservation),
}

impl UsageEvent {
    /// When the event happened (a reservation: when it starts): the primary sort key of the
    /// canonical order.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            UsageEvent::InstanceStateChanged(e) => e.at,
            UsageEvent::SessionsServed(e) => e.at,
            UsageEvent::ServiceCalls(e) => e.at,
            UsageEvent::PoolReservation(e) => e.from,
        }
    }

    /// The event's identity: lower-case hex SHA-256 of its compact `serde_json` form (every
    /// field, `at` at full precision). A redelivered event has the same identity, a different
    /// event a different one, so it can name the stored copy and make storing idempotent; it is
    /// the same identity [`canonical_events`] dedupes on.
    pub fn identity(&self) -> String {
        // Cannot fail: no non-string map keys, no failing serializers.
        let json = serde_json::to_string(self).unwrap_or_default();
        Sha256::digest(json.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The federation the event belongs to, so a report can select one partner's events.
    pub fn federation_context_id(&self) -> &str {
        match self {
            UsageEvent::InstanceStateChanged(e) => &e.federation_context_id,
            UsageEvent::SessionsServed(e) => &e.federation_context_id,
            UsageEvent::ServiceCalls(e) => &e.federation_context_id,
            UsageEvent::PoolReservation(e) => &e.federation_context_id,
        }
    }
}

/// The events in canonical order — `(at, event)` ascending — with exact duplicates removed.
/// Exposed so both operators can check they hold the same event set before comparing reports.
pub fn canonical_events(events: &[UsageEvent]) -> Vec<&UsageEvent> {
    let mut evs: Vec<&UsageEvent> = events.iter().collect();
    evs.sort_by(|a, b| a.at().cmp(&b.at()).then_with(|| a.cmp(b)));
    evs.dedup();
    evs
}

// ---------------------------------------------------------------------------------------------
// Periods
// ---------------------------------------------------------------------------------------------

/// A half-open interval `[start, end)` of whole UTC seconds: the time a record measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    /// First second measured (inclusive).
    #[serde(with = "utc_secs")]
    pub start: DateTime<Utc>,
    /// End of the measurement (exclusive).
    #[serde(with = "utc_secs")]
    pub end: DateTime<Utc>,
}

impl Period {
    /// An arbitrary period, both bounds truncated to whole seconds; `None` when empty, so a
    /// period always measures at least one second.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Period> {
        let (s, e) = (secs(&start), secs(&end));
        (s < e).then(|| Period { start: at_secs(s), end: at_secs(e) })
    }

    /// The UTC hour containing `t`: the default settlement period.
    pub fn hour_of(t: DateTime<Utc>) -> Period {
        Period::containing(t, Granularity::HOUR)
    }

    /// The epoch-aligned period of `len` seconds containing `t` (3600: hours, 86400: UTC days).
    pub fn containing(t: DateTime<Utc>, len: NonZeroU32) -> Period {
        let len = i64::from(len.get());
        let s = secs(&t).div_euclid(len) * len;
        Period { start: at_secs(s), end: at_secs(s + len) }
    }

    /// Length in seconds (0 if malformed), so callers can pro-rate without floats.
    pub fn seconds(&self) -> u64 {
        u64::try_from(secs(&self.end) - secs(&self.start)).unwrap_or(0)
    }

    /// Whether `t` (truncated to its second) falls in `[start, end)`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let s = secs(&t);
        secs(&self.start) <= s && s < secs(&self.end)
    }
}

/// How usage is cut into periods: operators settle hourly by default, but may agree on other
/// epoch-aligned lengths or on a single period covering the whole window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Granularity {
    /// UTC hours (the default).
    #[default]
    Hourly,
    /// UTC days.
    Daily,
    /// Periods of this many seconds, aligned on the Unix epoch.
    Every(NonZeroU32),
    /// One period: the whole window `[from, to)`.
    Whole,
}

impl Granularity {
    /// One hour in seconds.
    pub const HOUR: NonZeroU32 = match NonZeroU32::new(3600) {
        Some(n) => n,
        None => unreachable!(),
    };
    /// One day in seconds.
    pub const DAY: NonZeroU32 = match NonZeroU32::new(86_400) {
        Some(n) => n,
        None => unreachable!(),
    };

    fn len(self) -> Option<i64> {
        match self {
            Granularity::Hourly => Some(i64::from(Self::HOUR.get())),
            Granularity::Daily => Some(i64::from(Self::DAY.get())),
            Granularity::Every(n) => Some(i64::from(n.get())),
            Granularity::Whole => None,
        }
    }
}

/// The window in whole seconds and the period length: cuts intervals and instants into
/// clipped periods.
struct Window {
    from: i64,
    to: i64,
    len: Option<i64>,
}

impl Window {
    /// The clipped period `[ps, pe)` containing second `t`, if `t` is in the window.
    fn period_of(&self, t: i64) -> Option<(i64, i64)> {
        if t < self.from || t >= self.to {
            return None;
        }
        Some(match self.len {
            None => (self.from, self.to),
            Some(len) => {
                let p = t.div_euclid(len) * len;
                (p.max(self.from), p.saturating_add(len).min(self.to))
            }
        })
    }

    /// The interval `[s, e)` clipped to the window and cut into periods: `(period start,
    /// period end, overlapping seconds > 0)` each.
    fn slices(&self, s: i64, e: i64) -> Vec<(i64, i64, u64)> {
        let (s, e) = (s.max(self.from), e.min(self.to));
        let mut out = Vec::new();
        let mut p = s;
        while p < e {
            let Some((ps, pe)) = self.period_of(p) else { break };
            let end = pe.min(e);
            out.push((ps, pe, u64::try_from(end - p).unwrap_or(0)));
            p = end;
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// What a record is about: the unit both operators must agree on, and the unit a dispute names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageKey {
    /// The federation.
    pub federation_context_id: String,
    /// Start of the (clipped) period.
    #[serde(with = "utc_secs")]
    pub period_start: DateTime<Utc>,
    /// The billed application provider (`""` for pool reservations).
    pub app_provider_id: String,
    /// The application (`""` for pool reservations).
    pub app_id: String,
    /// The partner's zone.
    pub zone_id: String,
    /// The flavour (`""` for sessions and calls reported without one).
    pub flavour_id: String,
}

/// Billable usage of one key in one period. Integers only, fields in a fixed order: its
/// canonical JSON is what the digest covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    /// The federation.
    pub federation_context_id: String,
    /// The seconds measured: the period clipped to the computation window.
    pub period: Period,
    /// The billed application provider (`""` for pool reservations).
    pub app_provider_id: String,
    /// The application (`""` for pool reservations).
    pub app_id: String,
    /// The partner's zone.
    pub zone_id: String,
    /// The flavour (`""` for sessions and calls reported without one).
    pub flavour_id: String,
    /// Distinct instances `READY` for at least one second of the period.
    pub instance_count: u64,
    /// `READY` seconds of all instances, clipped to the period.
    pub instance_seconds: u64,
    /// Σ vcpuMilli × `READY` seconds: thousandths of vCPU-seconds, kept exact so that records
    /// of adjacent windows add up (divide by 1000 for vCPU-seconds when pricing).
    pub vcpu_milli_seconds: u64,
    /// Σ memoryMb × `READY` seconds.
    pub memory_mb_seconds: u64,
    /// Device sessions served in the period.
    pub sessions_served: u64,
    /// Additional-service calls in the period, by service.
    pub service_calls: BTreeMap<String, u64>,
    /// Σ reserved count × reserved seconds of pool reservations in the period.
    pub pooled_flavour_seconds: u64,
}

impl UsageRecord {
    /// The record's key, for matching records between two operators' reports.
    pub fn key(&self) -> UsageKey {
        UsageKey {
            federation_context_id: self.federation_context_id.clone(),
            period_start: self.period.start,
            app_provider_id: self.app_provider_id.clone(),
            app_id: self.app_id.clone(),
            zone_id: self.zone_id.clone(),
            flavour_id: self.flavour_id.clone(),
        }
    }
}

/// A record under construction.
struct Acc {
    end: i64,
    instances: BTreeSet<String>,
    instance_seconds: u64,
    vcpu_milli_seconds: u64,
    memory_mb_seconds: u64,
    sessions_served: u64,
    service_calls: BTreeMap<String, u64>,
    pooled_flavour_seconds: u64,
}

struct Accs<'a> {
    window: &'a Window,
    accs: BTreeMap<UsageKey, Acc>,
}

impl Accs<'_> {
    fn entry(&mut self, fed: &str, (ps, pe): (i64, i64), provider: &str, app: &str, zone: &str, flavour: &str) -> &mut Acc {
        let key = UsageKey {
            federation_context_id: fed.to_owned(),
            period_start: at_secs(ps),
            app_provider_id: provider.to_owned(),
            app_id: app.to_owned(),
            zone_id: zone.to_owned(),
            flavour_id: flavour.to_owned(),
        };
        self.accs.entry(key).or_insert_with(|| Acc {
            end: pe,
            instances: BTreeSet::new(),
            instance_seconds: 0,
            vcpu_milli_seconds: 0,
            memory_mb_seconds: 0,
            sessions_served: 0,
            service_calls: BTreeMap::new(),
            pooled_flavour_seconds: 0,
        })
    }

    /// Bills a `READY` segment `[start, end)` of an instance.
    fn close(&mut self, fed: &str, instance: &str, seg: &Segment, start: i64, end: i64) {
        for (ps, pe, n) in self.window.slices(start, end) {
            let a = self.entry(fed, (ps, pe), &seg.app_provider_id, &seg.app_id, &seg.zone_id, &seg.flavour_id);
            a.instances.insert(instance.to_owned());
            a.instance_seconds = a.instance_seconds.saturating_add(n);
            a.vcpu_milli_seconds = a.vcpu_milli_seconds.saturating_add(seg.vcpu_milli.saturating_mul(n));
            a.memory_mb_seconds = a.memory_mb_seconds.saturating_add(seg.memory_mb.saturating_mul(n));
        }
    }
}

/// What a running `READY` segment bills to.
#[derive(PartialEq, Eq)]
struct Segment {
    app_provider_id: String,
    app_id: String,
    zone_id: String,
    flavour_id: String,
    vcpu_milli: u64,
    memory_mb: u64,
}

/// Hourly usage records of all federation contexts in the window `[from, to)`: the function
/// both operators run. See the module documentation for the rules. Pure and deterministic:
/// the same event set (in any order, with any duplication) gives the same records, sorted by
/// [`UsageKey`].
pub fn compute(events: &[UsageEvent], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<UsageRecord> {
    compute_with(events, from, to, Granularity::Hourly)
}

/// [`compute`] with another period length, for operators that settle daily or over the whole
/// window at once.
pub fn compute_with(events: &[UsageEvent], from: DateTime<Utc>, to: DateTime<Utc>, granularity: Granularity) -> Vec<UsageRecord> {
    let window = Window { from: secs(&from), to: secs(&to), len: granularity.len() };
    if window.from >= window.to {
        return Vec::new();
    }
    let mut accs = Accs { window: &window, accs: BTreeMap::new() };
    // (federationContextId, appInstanceId) -> (segment start, segment).
    let mut open: BTreeMap<(&str, &str), (i64, Segment)> = BTreeMap::new();

    for event in canonical_events(events) {
        match event {
            UsageEvent::InstanceStateChanged(e) => {
                let id = (e.federation_context_id.as_str(), e.app_instance_id.as_str());
                let t = secs(&e.at);
                let prev = if e.state == InstanceState::Ready {
                    let seg = Segment {
                        app_provider_id: e.app_provider_id.clone(),
                        app_id: e.app_id.clone(),
                        zone_id: e.zone_id.clone(),
                        flavour_id: e.flavour_id.clone(),
                        vcpu_milli: e.vcpu_milli,
                        memory_mb: e.memory_mb,
                    };
                    if open.get(&id).is_some_and(|(_, s)| *s == seg) {
                        continue; // a re-sent READY: the segment runs on
                    }
                    open.insert(id, (t, seg))
                } else {
                    open.remove(&id)
                };
                if let Some((start, seg)) = prev {
                    accs.close(id.0, id.1, &seg, start, t);
                }
            }
            UsageEvent::SessionsServed(e) => {
                if e.sessions == 0 {
                    continue;
                }
                if let Some(p) = window.period_of(secs(&e.at)) {
                    let a = accs.entry(&e.federation_context_id, p, &e.app_provider_id, &e.app_id, &e.zone_id, e.flavour_id.as_deref().unwrap_or(""));
                    a.sessions_served = a.sessions_served.saturating_add(e.sessions);
                }
            }
            UsageEvent::ServiceCalls(e) => {
                if e.count == 0 {
                    continue;
                }
                if let Some(p) = window.period_of(secs(&e.at)) {
                    let a = accs.entry(&e.federation_context_id, p, &e.app_provider_id, &e.app_id, &e.zone_id, e.flavour_id.as_deref().unwrap_or(""));
                    let c = a.service_calls.entry(e.service.clone()).or_insert(0);
                    *c = c.saturating_add(e.count);
                }
            }
            UsageEvent::PoolReservation(e) => {
                if e.count == 0 {
                    continue;
                }
                for (ps, pe, n) in window.slices(secs(&e.from), secs(&e.until)) {
                    let a = accs.entry(&e.federation_context_id, (ps, pe), "", "", &e.zone_id, &e.flavour_id);
                    a.pooled_flavour_seconds = a.pooled_flavour_seconds.saturating_add(e.count.saturating_mul(n));
                }
            }
        }
    }
    for ((fed, instance), (start, seg)) in open {
        accs.close(fed, instance, &seg, start, i64::MAX);
    }

    accs.accs
        .into_iter()
        .map(|(k, a)| UsageRecord {
            federation_context_id: k.federation_context_id,
            period: Period { start: k.period_start, end: at_secs(a.end) },
            app_provider_id: k.app_provider_id,
            app_id: k.app_id,
            zone_id: k.zone_id,
            flavour_id: k.flavour_id,
            instance_count: u64::try_from(a.instances.len()).unwrap_or(u64::MAX),
            instance_seconds: a.instance_seconds,
            vcpu_milli_seconds: a.vcpu_milli_seconds,
            memory_mb_seconds: a.memory_mb_seconds,
            sessions_served: a.sessions_served,
            service_calls: a.service_calls,
            pooled_flavour_seconds: a.pooled_flavour_seconds,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

/// Sums over a report's records: the figures an invoice quotes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotals {
    /// Number of records.
    pub records: u64,
    /// Σ instanceCount: instance-periods (an instance spanning two periods counts twice).
    pub instance_periods: u64,
    /// Σ instanceSeconds.
    pub instance_seconds: u64,
    /// Σ vcpuMilliSeconds.
    pub vcpu_milli_seconds: u64,
    /// Σ memoryMbSeconds.
    pub memory_mb_seconds: u64,
    /// Σ sessionsServed.
    pub sessions_served: u64,
    /// Σ serviceCalls, by service.
    pub service_calls: BTreeMap<String, u64>,
    /// Σ pooledFlavourSeconds.
    pub pooled_flavour_seconds: u64,
}

impl UsageTotals {
    /// The totals of `records` (saturating), so a received report's totals can be re-derived.
    pub fn of(records: &[UsageRecord]) -> UsageTotals {
        let mut t = UsageTotals::default();
        for r in records {
            t.records = t.records.saturating_add(1);
            t.instance_periods = t.instance_periods.saturating_add(r.instance_count);
            t.instance_seconds = t.instance_seconds.saturating_add(r.instance_seconds);
            t.vcpu_milli_seconds = t.vcpu_milli_seconds.saturating_add(r.vcpu_milli_seconds);
            t.memory_mb_seconds = t.memory_mb_seconds.saturating_add(r.memory_mb_seconds);
            t.sessions_served = t.sessions_served.saturating_add(r.sessions_served);
            for (s, n) in &r.service_calls {
                let c = t.service_calls.entry(s.clone()).or_insert(0);
                *c = c.saturating_add(*n);
            }
            t.pooled_flavour_seconds = t.pooled_flavour_seconds.saturating_add(r.pooled_flavour_seconds);
        }
        t
    }
}

/// The canonical JSON of `records` (see the module documentation): the bytes the digest
/// covers, exposed so an operator can show the other exactly what it hashed.
pub fn canonical_json(records: &[UsageRecord]) -> String {
    // Serialization of these types cannot fail: all map keys are strings and the only custom
    // serializer (timestamps) never errors. Stay panic-free regardless.
    serde_json::to_string(records).unwrap_or_default()
}

/// Lower-case hex SHA-256 of [`canonical_json`]: one string two operators compare before
/// looking at any record.
pub fn digest(records: &[UsageRecord]) -> String {
    let hash = Sha256::digest(canonical_json(records).as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// One federation's usage over a window, as exchanged between the two operators for
/// settlement: the records, their totals, and the digest that proves both computed the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    /// The federation the report settles.
    pub federation_context_id: String,
    /// Start of the window (inclusive, whole seconds).
    #[serde(with = "utc_secs")]
    pub from: DateTime<Utc>,
    /// End of the window (exclusive, whole seconds).
    #[serde(with = "utc_secs")]
    pub to: DateTime<Utc>,
    /// The records, in ascending [`UsageKey`] order.
    pub records: Vec<UsageRecord>,
    /// Sums over `records`.
    pub totals: UsageTotals,
    /// [`digest`] of `records`.
    pub digest: String,
}

impl UsageReport {
    /// A report over given records (sorted by key here), with totals and digest derived from
    /// them: for wrapping records received from, or computed for, a partner.
    pub fn from_records(federation_context_id: &str, from: DateTime<Utc>, to: DateTime<Utc>, mut records: Vec<UsageRecord>) -> UsageReport {
        records.sort_by_key(UsageRecord::key);
        UsageReport {
            federation_context_id: federation_context_id.to_owned(),
            from: at_secs(secs(&from)),
            to: at_secs(secs(&to)),
            totals: UsageTotals::of(&records),
            digest: digest(&records),
            records,
        }
    }

    /// Whether the totals and digest are those of the records and the records are in key
    /// order and belong to the report's federation: catches a report edited by hand or
    /// truncated in transit before comparing it with one's own.
    pub fn is_consistent(&self) -> bool {
        self.totals == UsageTotals::of(&self.records)
            && self.digest == digest(&self.records)
            && self.records.windows(2).all(|w| w[0].key() < w[1].key())
            && self.records.iter().all(|r| r.federation_context_id == self.federation_context_id)
    }
}

/// The hourly settlement report of one federation over `[from, to)`: [`compute`] over the
/// events of that federation context, with totals and digest.
pub fn report(federation_context_id: &str, events: &[UsageEvent], from: DateTime<Utc>, to: DateTime<Utc>) -> UsageReport {
    report_with(federation_context_id, events, from, to, Granularity::Hourly)
}

/// [`report`] with another period length.
pub fn report_with(federation_context_id: &str, events: &[UsageEvent], from: DateTime<Utc>, to: DateTime<Utc>, granularity: Granularity) -> UsageReport {
    let mine: Vec<UsageEvent> = events.iter().filter(|e| e.federation_context_id() == federation_context_id).cloned().collect();
    UsageReport::from_records(federation_context_id, from, to, compute_with(&mine, from, to, granularity))
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

/// One CSV field, quoted per RFC 4180 when it contains a comma, quote, CR or LF.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The records as RFC 4180 CSV (CRLF line ends) for finance tools: a header row, then one row
/// per record in the given order. Service calls get one column each, `serviceCalls:<service>`,
/// for every service in any record (sorted; 0 where a record has none), so cells never need
/// a nested encoding.
pub fn to_csv(records: &[UsageRecord]) -> String {
    let services: BTreeSet<&str> = records.iter().flat_map(|r| r.service_calls.keys().map(String::as_str)).collect();
    let mut header: Vec<String> = [
        "federationContextId",
        "periodStart",
        "periodEnd",
        "appProviderId",
        "appId",
        "zoneId",
        "flavourId",
        "instanceCount",
        "instanceSeconds",
        "vcpuMilliSeconds",
        "memoryMbSeconds",
        "sessionsServed",
        "pooledFlavourSeconds",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    header.extend(services.iter().map(|s| format!("serviceCalls:{s}")));
    let mut out = String::new();
    let mut push = |cells: Vec<String>| {
        let row: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    };
    push(header);
    for r in records {
        let mut row = vec![
            r.federation_context_id.clone(),
            fmt_time(&r.period.start),
            fmt_time(&r.period.end),
            r.app_provider_id.clone(),
            r.app_id.clone(),
            r.zone_id.clone(),
            r.flavour_id.clone(),
            r.instance_count.to_string(),
            r.instance_seconds.to_string(),
            r.vcpu_milli_seconds.to_string(),
            r.memory_mb_seconds.to_string(),
            r.sessions_served.to_string(),
            r.pooled_flavour_seconds.to_string(),
        ];
        row.extend(services.iter().map(|s| r.service_calls.get(*s).copied().unwrap_or(0).to_string()));
        push(row);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Diff
// ---------------------------------------------------------------------------------------------

/// One difference between two operators' reports: where to look when settling a dispute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMismatch {
    /// The record's key; `None` for report-level fields (window, totals, digest).
    pub key: Option<UsageKey>,
    /// The field: a record field (`instanceSeconds`, `serviceCalls.location`, ...), `record`
    /// when only one side has the record, or a report field (`from`, `totals.sessionsServed`,
    /// `digest`, ...).
    pub field: String,
    /// The value in the first report (`None`: absent there).
    pub a: Option<String>,
    /// The value in the second report (`None`: absent there).
    pub b: Option<String>,
}

/// A record's comparable fields (beyond its key), by name.
fn record_fields(r: &UsageRecord) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("periodEnd".to_owned(), fmt_time(&r.period.end));
    f.insert("instanceCount".to_owned(), r.instance_count.to_string());
    f.insert("instanceSeconds".to_owned(), r.instance_seconds.to_string());
    f.insert("vcpuMilliSeconds".to_owned(), r.vcpu_milli_seconds.to_string());
    f.insert("memoryMbSeconds".to_owned(), r.memory_mb_seconds.to_string());
    f.insert("sessionsServed".to_owned(), r.sessions_served.to_string());
    f.insert("pooledFlavourSeconds".to_owned(), r.pooled_flavour_seconds.to_string());
    for (s, n) in &r.service_calls {
        f.insert(format!("serviceCalls.{s}"), n.to_string());
    }
    f
}

/// The totals' fields, by name (`totals.` prefixed).
fn totals_fields(t: &UsageTotals) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("totals.records".to_owned(), t.records.to_string());
    f.insert("totals.instancePeriods".to_owned(), t.instance_periods.to_string());
    f.insert("totals.instanceSeconds".to_owned(), t.instance_seconds.to_string());
    f.insert("totals.vcpuMilliSeconds".to_owned(), t.vcpu_milli_seconds.to_string());
    f.insert("totals.memoryMbSeconds".to_owned(), t.memory_mb_seconds.to_string());
    f.insert("totals.sessionsServed".to_owned(), t.sessions_served.to_string());
    f.insert("totals.pooledFlavourSeconds".to_owned(), t.pooled_flavour_seconds.to_string());
    for (s, n) in &t.service_calls {
        f.insert(format!("totals.serviceCalls.{s}"), n.to_string());
    }
    f
}

/// Field-by-field comparison of two name→value maps; a field missing on one side is `None`.
fn diff_fields(key: Option<&UsageKey>, a: &BTreeMap<String, String>, b: &BTreeMap<String, String>, out: &mut Vec<UsageMismatch>) {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        let (va, vb) = (a.get(name), b.get(name));
        if va != vb {
            out.push(UsageMismatch { key: key.cloned(), field: name.clone(), a: va.cloned(), b: vb.cloned() });
        }
    }
}

/// Every difference between two reports of the same federation and window: first the window
/// (`federationContextId`, `from`, `to`), then records by ascending key and field name, then
/// totals, then the digest. Empty exactly when the reports are equal field for field, so a
/// digest mismatch always comes with the records that explain it.
pub fn diff(a: &UsageReport, b: &UsageReport) -> Vec<UsageMismatch> {
    let mut out = Vec::new();
    let header = |r: &UsageReport| -> BTreeMap<String, String> {
        BTreeMap::from([
            ("federationContextId".to_owned(), r.federation_context_id.clone()),
            ("from".to_owned(), fmt_time(&r.from)),
            ("to".to_owned(), fmt_time(&r.to)),
        ])
    };
    diff_fields(None, &header(a), &header(b), &mut out);

    let index = |r: &UsageReport| -> BTreeMap<UsageKey, BTreeMap<String, String>> {
        let mut m = BTreeMap::new();
        for rec in &r.records {
            // A key twice in one report (malformed): the later record's fields shadow, and the
            // mismatch still surfaces through totals and digest.
            m.insert(rec.key(), record_fields(rec));
        }
        m
    };
    let (ra, rb) = (index(a), index(b));
    let keys: BTreeSet<&UsageKey> = ra.keys().chain(rb.keys()).collect();
    for key in keys {
        match (ra.get(key), rb.get(key)) {
            (Some(fa), Some(fb)) => diff_fields(Some(key), fa, fb, &mut out),
            (fa, fb) => out.push(UsageMismatch {
                key: Some(key.clone()),
                field: "record".to_owned(),
                a: fa.map(|_| "present".to_owned()),
                b: fb.map(|_| "present".to_owned()),
            }),
        }
    }

    diff_fields(None, &totals_fields(&a.totals), &totals_fields(&b.totals), &mut out);
    if a.digest != b.digest {
        out.push(UsageMismatch { key: None, field: "digest".to_owned(), a: Some(a.digest.clone()), b: Some(b.digest.clone()) });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, h, m, s).unwrap()
    }

    fn inst(id: &str, flavour: &str, vcpu: u64, mem: u64, state: InstanceState, at: DateTime<Utc>) -> UsageEvent {
        UsageEvent::InstanceStateChanged(InstanceStateChanged {
            federation_context_id: "fc".into(),
            app_provider_id: "ap1".into(),
            app_id: "a1".into(),
            app_instance_id: id.into(),
            zone_id: "z1".into(),
            flavour_id: flavour.into(),
            vcpu_milli: vcpu,
            memory_mb: mem,
            state,
            at,
        })
    }

    fn sessions(n: u64, at: DateTime<Utc>) -> UsageEvent {
        UsageEvent::SessionsServed(SessionsServed {
            federation_context_id: "fc".into(),
            app_provider_id: "ap1".into(),
            app_id: "a1".into(),
            zone_id: "z1".into(),
            flavour_id: None,
            sessions: n,
            at,
        })
    }

    fn calls(service: &str, n: u64, at: DateTime<Utc>) -> UsageEvent {
        UsageEvent::ServiceCalls(ServiceCalls {
            federation_context_id: "fc".into(),
            app_provider_id: "ap1".into(),
            app_id: "a1".into(),
            zone_id: "z1".into(),
            flavour_id: None,
            service: service.into(),
            count: n,
            at,
        })
    }

    fn pool(count: u64, from: DateTime<Utc>, until: DateTime<Utc>) -> UsageEvent {
        UsageEvent::PoolReservation(PoolReservation {
            federation_context_id: "fc".into(),
            pool_id: "p1".into(),
            zone_id: "z1".into(),
            flavour_id: "f1".into(),
            count,
            from,
            until,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn rec(start: DateTime<Utc>, end: DateTime<Utc>, provider: &str, flavour: &str, count: u64, secs: u64, vcpu: u64, mem: u64, sessions: u64, calls: &[(&str, u64)], pooled: u64) -> UsageRecord {
        UsageRecord {
            federation_context_id: "fc".into(),
            period: Period { start, end },
            app_provider_id: provider.into(),
            app_id: if provider.is_empty() { String::new() } else { "a1".into() },
            zone_id: "z1".into(),
            flavour_id: flavour.into(),
            instance_count: count,
            instance_seconds: secs,
            vcpu_milli_seconds: vcpu,
            memory_mb_seconds: mem,
            sessions_served: sessions,
            service_calls: calls.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect(),
            pooled_flavour_seconds: pooled,
        }
    }

    use InstanceState::*;

    /// i1 (f1, 2 vCPU, 4 GiB) READY 10:30 → TERMINATING 11:15 spans the hour boundary; i2 (f2,
    /// 0.5 vCPU, 1 GiB) PENDING 10:05, READY 10:10, FAILED 10:40; sessions, calls, a pool
    /// reservation started before the window, and events outside the window.
    fn scenario() -> Vec<UsageEvent> {
        vec![
            inst("i1", "f1", 2000, 4096, Ready, t(10, 30, 0)),
            inst("i1", "f1", 2000, 4096, Terminating, t(11, 15, 0)),
            inst("i2", "f2", 500, 1024, Pending, t(10, 5, 0)),
            inst("i2", "f2", 500, 1024, Ready, t(10, 10, 0)),
            inst("i2", "f2", 500, 1024, Failed, t(10, 40, 0)),
            inst("i3", "f2", 500, 1024, Ready, t(12, 30, 0)), // after the window
            sessions(10, t(10, 20, 0)),
            sessions(5, t(11, 30, 0)),
            sessions(99, t(12, 0, 0)), // `to` is exclusive
            calls("edgeDiscovery", 3, t(10, 50, 0)),
            calls("location", 2, t(11, 5, 0)),
            pool(2, t(9, 0, 0), t(10, 30, 0)),
        ]
    }

    fn scenario_expected() -> Vec<UsageRecord> {
        vec![
            rec(t(10, 0, 0), t(11, 0, 0), "", "f1", 0, 0, 0, 0, 0, &[], 3600),
            rec(t(10, 0, 0), t(11, 0, 0), "ap1", "", 0, 0, 0, 0, 10, &[("edgeDiscovery", 3)], 0),
            rec(t(10, 0, 0), t(11, 0, 0), "ap1", "f1", 1, 1800, 3_600_000, 7_372_800, 0, &[], 0),
            rec(t(10, 0, 0), t(11, 0, 0), "ap1", "f2", 1, 1800, 900_000, 1_843_200, 0, &[], 0),
            rec(t(11, 0, 0), t(12, 0, 0), "ap1", "", 0, 0, 0, 0, 5, &[("location", 2)], 0),
            rec(t(11, 0, 0), t(12, 0, 0), "ap1", "f1", 1, 900, 1_800_000, 3_686_400, 0, &[], 0),
        ]
    }

    #[test]
    fn hand_computed_scenario() {
        let records = compute(&scenario(), t(10, 0, 0), t(12, 0, 0));
        assert_eq!(records, scenario_expected());

        let r = report("fc", &scenario(), t(10, 0, 0), t(12, 0, 0));
        assert_eq!(r.records, scenario_expected());
        assert_eq!(
            r.totals,
            UsageTotals {
                records: 6,
                instance_periods: 3,
                instance_seconds: 4500,
                vcpu_milli_seconds: 6_300_000,
                memory_mb_seconds: 12_902_400,
                sessions_served: 15,
                service_calls: BTreeMap::from([("edgeDiscovery".to_owned(), 3), ("location".to_owned(), 2)]),
                pooled_flavour_seconds: 3600,
            }
        );
        assert_eq!(r.digest.len(), 64);
        assert_eq!(r.digest, digest(&scenario_expected()));
        assert!(r.is_consistent());
        // Another federation's events are not in this report.
        assert!(report("other", &scenario(), t(10, 0, 0), t(12, 0, 0)).records.is_empty());
    }

    #[test]
    fn canonical_json_is_pinned() {
        let r = rec(t(10, 0, 0), t(11, 0, 0), "ap1", "f1", 1, 2, 3, 4, 5, &[("location", 7), ("edgeDiscovery", 6)], 8);
        assert_eq!(
            canonical_json(&[r]),
            r#"[{"federationContextId":"fc","period":{"start":"2024-05-01T10:00:00Z","end":"2024-05-01T11:00:00Z"},"appProviderId":"ap1","appId":"a1","zoneId":"z1","flavourId":"f1","instanceCount":1,"instanceSeconds":2,"vcpuMilliSeconds":3,"memoryMbSeconds":4,"sessionsServed":5,"serviceCalls":{"edgeDiscovery":6,"location":7},"pooledFlavourSeconds":8}]"#
        );
        assert_eq!(digest(&[]), "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"); // sha256("[]")
    }

    #[test]
    fn events_round_trip_as_tagged_camel_case() {
        let e = inst("i1", "f1", 2000, 4096, Ready, t(10, 30, 0));
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["type"], "instanceStateChanged");
        assert_eq!(j["appInstanceId"], "i1");
        assert_eq!(j["vcpuMilli"], 2000);
        assert_eq!(j["state"], "READY");
        assert_eq!(serde_json::from_value::<UsageEvent>(j).unwrap(), e);
        assert_eq!(e.identity(), e.clone().identity());
        assert_eq!(e.identity().len(), 64);
        assert_ne!(e.identity(), inst("i1", "f1", 2000, 4096, Ready, t(10, 30, 0) + chrono::Duration::nanoseconds(1)).identity());
        let p = pool(2, t(9, 0, 0), t(10, 0, 0));
        assert_eq!(serde_json::from_str::<UsageEvent>(&serde_json::to_string(&p).unwrap()).unwrap(), p);
    }

    #[test]
    fn ready_before_window_and_after_counts_exactly_the_window() {
        let (from, to) = (t(10, 15, 30), t(12, 40, 0));
        let events = vec![inst("i1", "f1", 1500, 100, Ready, t(8, 0, 0)), inst("i1", "f1", 1500, 100, Terminating, t(14, 0, 0))];
        for evs in [events.clone(), events[..1].to_vec()] {
            let r = report("fc", &evs, from, to);
            let window = u64::try_from((to - from).num_seconds()).unwrap();
            assert_eq!(r.totals.instance_seconds, window);
            assert_eq!(r.totals.vcpu_milli_seconds, 1500 * window);
            assert_eq!(r.totals.memory_mb_seconds, 100 * window);
            let periods: Vec<(DateTime<Utc>, DateTime<Utc>, u64)> = r.records.iter().map(|x| (x.period.start, x.period.end, x.instance_seconds)).collect();
            assert_eq!(periods, vec![(t(10, 15, 30), t(11, 0, 0), 2670), (t(11, 0, 0), t(12, 0, 0), 3600), (t(12, 0, 0), t(12, 40, 0), 2400)]);
            assert!(r.records.iter().all(|x| x.instance_count == 1));
        }
        // One period over the whole window.
        let whole = compute_with(&events, from, to, Granularity::Whole);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].period, Period::new(from, to).unwrap());
        assert_eq!(whole[0].instance_seconds, 8670);
    }

    #[test]
    fn resend_resize_and_subsecond_noise() {
        let events = vec![
            inst("i1", "f1", 1000, 10, Ready, t(10, 0, 0)),
            inst("i1", "f1", 1000, 10, Ready, t(10, 20, 0)), // re-sent status: no-op
            inst("i1", "f1", 2000, 10, Ready, t(10, 30, 0)), // resized
            inst("i1", "f1", 2000, 10, Terminating, t(10, 45, 0) + chrono::Duration::milliseconds(999)),
        ];
        let r = compute(&events, t(10, 0, 0), t(11, 0, 0));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].instance_count, 1);
        assert_eq!(r[0].instance_seconds, 2700);
        assert_eq!(r[0].vcpu_milli_seconds, 1000 * 1800 + 2000 * 900);
    }

    #[test]
    fn period_helpers() {
        let p = Period::hour_of(t(10, 59, 59));
        assert_eq!((p.start, p.end, p.seconds()), (t(10, 0, 0), t(11, 0, 0), 3600));
        assert!(p.contains(t(10, 0, 0)) && !p.contains(t(11, 0, 0)));
        assert_eq!(Period::containing(t(10, 0, 0), Granularity::DAY).start, Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap());
        assert_eq!(Period::new(t(10, 0, 0), t(10, 0, 0)), None);
        assert!(compute(&scenario(), t(12, 0, 0), t(10, 0, 0)).is_empty());
    }

    #[test]
    fn csv_has_header_and_one_line_per_record() {
        let records = scenario_expected();
        let csv = to_csv(&records);
        let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), records.len() + 1);
        assert_eq!(
            lines[0],
            "federationContextId,periodStart,periodEnd,appProviderId,appId,zoneId,flavourId,instanceCount,instanceSeconds,vcpuMilliSeconds,memoryMbSeconds,sessionsServed,pooledFlavourSeconds,serviceCalls:edgeDiscovery,serviceCalls:location"
        );
        assert_eq!(lines[2], "fc,2024-05-01T10:00:00Z,2024-05-01T11:00:00Z,ap1,a1,z1,,0,0,0,0,10,0,3,0");
        assert!(lines.iter().all(|l| l.split(',').count() == 15));
        assert_eq!(to_csv(&[]).lines().count(), 1);
        let mut odd = records[0].clone();
        odd.zone_id = "z,\"1\"".into();
        assert!(to_csv(&[odd]).contains(",\"z,\"\"1\"\"\","));
    }

    #[test]
    fn diff_finds_a_single_tampered_field() {
        let a = report("fc", &scenario(), t(10, 0, 0), t(12, 0, 0));
        assert!(diff(&a, &a.clone()).is_empty());

        let mut records = a.records.clone();
        records[5].instance_seconds += 60;
        let key = records[5].key();
        // Tampered and re-derived totals and digest: the record, totals and digest differ.
        let b = UsageReport::from_records("fc", a.from, a.to, records.clone());
        assert!(b.is_consistent());
        let d = diff(&a, &b);
        let on_records: Vec<&UsageMismatch> = d.iter().filter(|m| m.key.is_some()).collect();
        assert_eq!(on_records.len(), 1);
        assert_eq!(on_records[0].key.as_ref(), Some(&key));
        assert_eq!(on_records[0].field, "instanceSeconds");
        assert_eq!((on_records[0].a.as_deref(), on_records[0].b.as_deref()), (Some("900"), Some("960")));
        let rest: Vec<&str> = d.iter().filter(|m| m.key.is_none()).map(|m| m.field.as_str()).collect();
        assert_eq!(rest, vec!["totals.instanceSeconds", "digest"]);

        // Tampered without touching totals or digest: exactly one mismatch, and b is inconsistent.
        let mut c = a.clone();
        c.records[1].service_calls.insert("edgeDiscovery".into(), 4);
        assert!(!c.is_consistent());
        let d = diff(&a, &c);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].key, Some(a.records[1].key()));
        assert_eq!(d[0].field, "serviceCalls.edgeDiscovery");

        // A record only one side has.
        let mut e = a.clone();
        e.records.remove(0);
        let d = diff(&a, &e);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].field.as_str(), d[0].a.as_deref(), d[0].b.as_deref()), ("record", Some("present"), None));
    }

    /// Seconds after 08:00: often on a 5-minute grid so that events tie on `at` and the
    /// tie-breaking order matters, otherwise anywhere in seven hours.
    fn arb_secs() -> impl Strategy<Value = i64> {
        prop_oneof![(0..84i64).prop_map(|k| k * 300), 0..25_200i64]
    }

    /// Random events over a few instances, apps, zones and services, around 2024-05-01 08:00–15:00.
    fn arb_event() -> impl Strategy<Value = UsageEvent> {
        let base = t(8, 0, 0);
        let at = move |s: i64| base + chrono::Duration::seconds(s);
        let state = prop_oneof![Just(Pending), Just(Ready), Just(Ready), Just(Failed), Just(Terminating)];
        prop_oneof![
            4 => (0..4u8, 0..2u8, 0..2u8, prop_oneof![Just(250u64), Just(1000), Just(1500)], state, arb_secs()).prop_map(move |(i, f, z, v, st, s)| {
                UsageEvent::InstanceStateChanged(InstanceStateChanged {
                    federation_context_id: "fc".into(),
                    app_provider_id: "ap1".into(),
                    app_id: format!("a{}", i % 2),
                    app_instance_id: format!("i{i}"),
                    zone_id: format!("z{z}"),
                    flavour_id: format!("f{f}"),
                    vcpu_milli: v,
                    memory_mb: v * 2,
                    state: st,
                    at: at(s),
                })
            }),
            1 => (0..2u8, 0..50u64, arb_secs()).prop_map(move |(a, n, s)| UsageEvent::SessionsServed(SessionsServed {
                federation_context_id: "fc".into(),
                app_provider_id: "ap1".into(),
                app_id: format!("a{a}"),
                zone_id: "z0".into(),
                flavour_id: None,
                sessions: n,
                at: at(s),
            })),
            1 => (prop_oneof![Just("edgeDiscovery"), Just("roamingAuth"), Just("location")], 0..20u64, arb_secs()).prop_map(move |(sv, n, s)| UsageEvent::ServiceCalls(ServiceCalls {
                federation_context_id: "fc".into(),
                app_provider_id: "ap1".into(),
                app_id: "a0".into(),
                zone_id: "z1".into(),
                flavour_id: Some("f0".into()),
                service: sv.into(),
                count: n,
                at: at(s),
            })),
            1 => (0..3u64, arb_secs(), 0..10_000i64).prop_map(move |(n, s, d)| UsageEvent::PoolReservation(PoolReservation {
                federation_context_id: "fc".into(),
                pool_id: "p1".into(),
                zone_id: "z0".into(),
                flavour_id: "f1".into(),
                count: n,
                from: at(s),
                until: at(s + d),
            })),
        ]
    }

    /// Events, plus the same events shuffled with some delivered more than once.
    fn arb_events_and_redelivery() -> impl Strategy<Value = (Vec<UsageEvent>, Vec<UsageEvent>)> {
        proptest::collection::vec(arb_event(), 0..40).prop_flat_map(|evs| {
            let n = evs.len().max(1);
            (Just(evs.clone()), proptest::collection::vec(0..n, 0..20)).prop_flat_map(|(evs, dups)| {
                let mut all = evs.clone();
                all.extend(dups.iter().filter_map(|i| evs.get(*i).cloned()));
                (Just(evs), Just(all).prop_shuffle())
            })
        })
    }

    type Group = (String, String, String, String, String);
    type Additive = (u64, u64, u64, u64, BTreeMap<String, u64>, u64);

    /// Additive fields summed per (federation, provider, app, zone, flavour) across periods.
    fn sums(records: &[UsageRecord]) -> BTreeMap<Group, Additive> {
        let mut m = BTreeMap::new();
        for r in records {
            let e = m.entry((r.federation_context_id.clone(), r.app_provider_id.clone(), r.app_id.clone(), r.zone_id.clone(), r.flavour_id.clone())).or_insert((0, 0, 0, 0, BTreeMap::new(), 0));
            e.0 += r.instance_seconds;
            e.1 += r.vcpu_milli_seconds;
            e.2 += r.memory_mb_seconds;
            e.3 += r.sessions_served;
            for (s, n) in &r.service_calls {
                *e.4.entry(s.clone()).or_insert(0) += n;
            }
            e.5 += r.pooled_flavour_seconds;
        }
        m
    }

    proptest! {
        #[test]
        fn shuffled_and_duplicated_events_give_identical_reports((evs, redelivered) in arb_events_and_redelivery(), from_s in 0..10_000i64, len in 1..20_000i64) {
            let from = t(8, 0, 0) + chrono::Duration::seconds(from_s);
            let to = from + chrono::Duration::seconds(len);
            let a = report("fc", &evs, from, to);
            let b = report("fc", &redelivered, from, to);
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
            prop_assert!(diff(&a, &b).is_empty());
            prop_assert!(a.is_consistent());
            // Records come out in key order, with non-empty periods inside the window.
            for w in a.records.windows(2) {
                prop_assert!(w[0].key() < w[1].key());
            }
            for r in &a.records {
                prop_assert!(r.period.start >= a.from && r.period.end <= a.to && r.period.start < r.period.end);
                prop_assert!(r.instance_seconds <= r.instance_count * r.period.seconds());
            }
        }

        #[test]
        fn halves_sum_to_the_whole(evs in proptest::collection::vec(arb_event(), 0..40), from_s in 0..10_000i64, cut in 0..20_000i64, rest in 1..10_000i64) {
            let from = t(8, 0, 0) + chrono::Duration::seconds(from_s);
            let mid = from + chrono::Duration::seconds(cut);
            let to = mid + chrono::Duration::seconds(rest);
            let whole = compute(&evs, from, to);
            let (h1, h2) = (compute(&evs, from, mid), compute(&evs, mid, to));
            let mut halves = h1.clone();
            halves.extend(h2.iter().cloned());
            prop_assert_eq!(sums(&whole), sums(&halves));
            let (tw, th) = (UsageTotals::of(&whole), UsageTotals::of(&halves));
            prop_assert_eq!((tw.instance_seconds, tw.vcpu_milli_seconds, tw.memory_mb_seconds, tw.sessions_served, &tw.service_calls, tw.pooled_flavour_seconds),
                            (th.instance_seconds, th.vcpu_milli_seconds, th.memory_mb_seconds, th.sessions_served, &th.service_calls, th.pooled_flavour_seconds));
            // Cut on an hour boundary, no period straddles the cut: the records concatenate exactly.
            let hour = Period::hour_of(mid).start;
            if hour > from && hour < to {
                let mut joined = compute(&evs, from, hour);
                joined.extend(compute(&evs, hour, to));
                prop_assert_eq!(whole, joined);
            }
        }
    }
}
