//! Alarms: a cloudlet down, an instance down, resource use over an alert policy's threshold;
//! raised and resolved by the platform, stored (kind `Alarm`, named by fingerprint), and POSTed
//! to webhook receivers in Alertmanager's webhook format.
//!
//! One evaluator (where the controllers run) keeps the alarms that *should* fire in memory,
//! from informers on instances and cloudlets (the pure rules of `op_types::alarm`) and from
//! the resource collector's readings (alert policies, with a `forSeconds` timer), and
//! reconciles the stored alarms toward that set: it raises what is missing and resolves what
//! no longer holds, retried every tick, so a failed write or a restart loses nothing. Each
//! stored alarm records what every receiver was last told; delivery sends each receiver the
//! alarm's current state until it has acknowledged it with a 2xx (backing off per receiver),
//! so a receiver is told once per change, also across restarts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::de::IgnoredAny;
use op_store::informer::{Change, Informer};
use op_store::RepoError;
use op_types::alarm::{
    cloudlet_down, fingerprint, instance_down, AlarmName, AlarmObserved, AlarmReceiverSpec, AlarmSeverity, AlarmSpec, AlarmState, AlertPolicySpec,
    AlarmReceiverView, AlarmView, WebhookAlert, WebhookMessage, ZERO_TIME,
};
use op_types::views::Delivery;
use op_types::specs::{AppInstanceSpec, HIDDEN_CLOUDLET};
use op_types::{Kind, Name, Object, State as ObjState, Uid, Validate};
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::owned::{find, owner, CreateOwned};
use crate::error::{ApiError, ErrorInfo};
use crate::json::Body;
use crate::state::AppState;

/// A stored alarm.
pub type Alarm = Object<AlarmSpec, AlarmObserved>;
/// A stored receiver (its `secret` sealed).
pub type AlarmReceiver = Object<AlarmReceiverSpec>;
/// A stored alert policy.
pub type AlertPolicy = Object<AlertPolicySpec>;

/// How long a resolved alarm is kept (listed, and delivered to receivers that were down).
pub const KEEP_RESOLVED: Duration = Duration::from_secs(3600);
/// The longest wait between deliveries to a receiver that fails.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The header carrying a delivery's signature when the receiver has a secret.
pub const SIGNATURE_HEADER: &str = "X-OP-Signature-256";

// ---------------------------------------------------------------------------------------------
// Evaluation

/// What the evaluator knows of an instance, for labels and for the thresholds.
#[derive(Clone, Debug)]
struct InstanceFacts {
    name: String,
    organization: Option<Name>,
    app: Uid,
    zone: Uid,
    cloudlet: String,
}

impl InstanceFacts {
    /// An alarm about this instance, beginning now.
    fn alarm(&self, uid: Uid, alertname: AlarmName, severity: AlarmSeverity, summary: String) -> AlarmSpec {
        AlarmSpec {
            alertname,
            severity,
            object_kind: Kind::AppInstance,
            object_id: uid,
            object_name: self.name.clone(),
            app_id: Some(self.app),
            zone_id: Some(self.zone),
            cloudlet: self.cloudlet.clone(),
            policy: None,
            operator_only: false,
            summary,
            starts_at: Utc::now(),
        }
    }
}

/// One observation of a followed object.
enum Seen {
    Instance { uid: Uid, facts: InstanceFacts, down: Option<String> },
    Cloudlet { uid: Uid, name: String, down: Option<String> },
    Gone(Uid),
    /// Every object stored at start has been seen once.
    Synced,
}

fn seen_of(kind: Kind, change: Change<'_>) -> Option<Seen> {
    match change {
        Change::Deleted(uid) => Some(Seen::Gone(uid)),
        Change::Put(raw) if kind == Kind::Cloudlet => {
            let o: Object<IgnoredAny, IgnoredAny> = raw.decode().ok()?;
            Some(Seen::Cloudlet { uid: o.metadata.uid, name: o.metadata.name.to_string(), down: cloudlet_down(&o.status) })
        }
        Change::Put(raw) => {
            let o: Object<AppInstanceSpec, IgnoredAny> = raw.decode().ok()?;
            let spec = &o.spec;
            Some(Seen::Instance {
                uid: o.metadata.uid,
                down: instance_down(&o.status, o.metadata.deletion_requested.is_some()),
                facts: InstanceFacts {
                    name: o.metadata.name.to_string(),
                    organization: o.metadata.organization.clone(),
                    app: spec.app_id,
                    zone: spec.edge_cloud_zone_id,
                    cloudlet: spec.cloudlet.to_string(),
                },
            })
        }
    }
}

/// The evaluator's memory: what should fire, and what is stored.
struct Evaluator {
    s: AppState,
    client: reqwest::Client,
    /// Alarms whose condition holds now, by fingerprint.
    desired: HashMap<String, AlarmSpec>,
    /// Stored alarms, by fingerprint.
    stored: HashMap<String, Alarm>,
    instances: HashMap<Uid, InstanceFacts>,
    /// Since when each threshold has been passed (the `forSeconds` timer).
    over_since: HashMap<String, DateTime<Utc>>,
    /// Receivers that failed: not tried again before the instant; failures in a row.
    backoff: HashMap<Uid, (tokio::time::Instant, u32)>,
    /// Whether every object stored at start has been seen (before, nothing is resolved).
    synced: u8,
}

/// Raises and resolves alarms and delivers them, every `tick` and on every change, for ever.
pub async fn run(s: AppState, tick: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    for kind in [Kind::AppInstance, Kind::Cloudlet] {
        let tx = tx.clone();
        let repo = s.repo.clone();
        tokio::spawn(async move {
            let mut on = |c: Change<'_>| {
                if let Some(seen) = seen_of(kind, c) {
                    let _ = tx.send(seen);
                }
            };
            let informer = loop {
                match Informer::start(repo.clone(), kind, &mut on).await {
                    Ok(i) => break i,
                    Err(e) => {
                        tracing::warn!(%kind, error = %e, "alarms cannot list; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            let _ = tx.send(Seen::Synced);
            informer.run(on).await;
        });
    }
    drop(tx);
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "alarms disabled: no HTTP client");
            return;
        }
    };
    let mut ev = Evaluator {
        s,
        client,
        desired: HashMap::new(),
        stored: HashMap::new(),
        instances: HashMap::new(),
        over_since: HashMap::new(),
        backoff: HashMap::new(),
        synced: 0,
    };
    loop {
        match ev.s.repo.list::<AlarmSpec, AlarmObserved>(Kind::Alarm).await {
            Ok((all, _)) => {
                ev.stored = all.into_iter().map(|a| (a.metadata.name.to_string(), a)).collect();
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read stored alarms; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticked = false;
    loop {
        tokio::select! {
            seen = rx.recv() => match seen {
                Some(seen) => {
                    ev.observe(seen);
                    // Take whatever else is queued before writing.
                    while let Ok(more) = rx.try_recv() {
                        ev.observe(more);
                    }
                }
                None => return,
            },
            _ = ticker.tick() => {
                ev.thresholds().await;
                ticked = true;
            }
        }
        if ev.synced >= 2 {
            // Receivers are read (and told) when an alarm was written, and every tick for new
            // receivers and retries: not on each of the many changes that alter no alarm.
            let wrote = ev.reconcile().await;
            if wrote || ticked {
                ev.deliver().await;
                ticked = false;
            }
        }
    }
}

impl Evaluator {
    fn observe(&mut self, seen: Seen) {
        match seen {
            Seen::Synced => self.synced += 1,
            Seen::Gone(uid) => {
                self.instances.remove(&uid);
                self.desired.retain(|_, a| a.object_id != uid);
            }
            Seen::Cloudlet { uid, name, down } => {
                let alarm = down.map(|summary| AlarmSpec {
                    alertname: AlarmName::CloudletDown,
                    severity: AlarmSeverity::Critical,
                    object_kind: Kind::Cloudlet,
                    object_id: uid,
                    object_name: name.clone(),
                    app_id: None,
                    zone_id: None,
                    cloudlet: name,
                    policy: None,
                    operator_only: true,
                    summary,
                    starts_at: Utc::now(),
                });
                self.hold(fingerprint(AlarmName::CloudletDown, uid, None), alarm);
            }
            Seen::Instance { uid, facts, down } => {
                let alarm = down.map(|summary| facts.alarm(uid, AlarmName::InstanceDown, AlarmSeverity::Critical, summary));
                self.hold(fingerprint(AlarmName::InstanceDown, uid, None), alarm);
                self.instances.insert(uid, facts);
            }
        }
    }

    /// Records whether the alarm `fp` should fire (keeping when it began).
    fn hold(&mut self, fp: String, alarm: Option<AlarmSpec>) {
        match alarm {
            Some(a) => {
                self.desired.entry(fp).or_insert(a);
            }
            None => {
                self.desired.remove(&fp);
            }
        }
    }

    /// Compares the latest readings with every alert policy.
    async fn thresholds(&mut self) {
        let policies = match self.s.repo.list::<AlertPolicySpec, ()>(Kind::AlertPolicy).await {
            Ok((p, _)) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read alert policies");
                return;
            }
        };
        let scope = |org: &Name| self.s.uni.index.read().unwrap_or_else(|e| e.into_inner()).org_scope(org);
        let scopes: HashMap<Uid, Option<std::collections::BTreeSet<Name>>> =
            policies.iter().map(|p| (p.metadata.uid, p.metadata.organization.as_ref().map(scope))).collect();
        let now = Utc::now();
        let mut holding = HashSet::new();
        let (instances, over_since, desired) = (&self.instances, &mut self.over_since, &mut self.desired);
        // With no policy there is nothing to compare: the readings are not walked.
        if !policies.is_empty() {
            self.s.resources.each(|u| {
                let Some(facts) = instances.get(&u.app_instance_id) else { return };
                let (cpu_share, mem_share) = (u.amounts.cpu_share(), u.amounts.memory_share());
                for p in &policies {
                    let covered = match scopes.get(&p.metadata.uid) {
                        Some(Some(orgs)) => orgs.contains(&u.organization),
                        _ => true,
                    };
                    if !covered || p.spec.app_id.is_some_and(|a| a != u.app_id) {
                        continue;
                    }
                    for (name, what) in p.spec.passed(cpu_share, mem_share) {
                        let fp = fingerprint(name, u.app_instance_id, Some(p.metadata.uid));
                        holding.insert(fp.clone());
                        let since = *over_since.entry(fp.clone()).or_insert(now);
                        if (now - since).num_seconds() < i64::from(p.spec.for_seconds) || desired.contains_key(&fp) {
                            continue;
                        }
                        let description = p.spec.description.as_ref().map_or_else(String::new, |d| format!(" ({d})"));
                        let summary = format!("{what} under alert policy {}{description}", p.metadata.name);
                        let alarm = AlarmSpec {
                            policy: Some(p.metadata.uid),
                            operator_only: p.metadata.organization.is_none(),
                            starts_at: since,
                            ..facts.alarm(u.app_instance_id, name, p.spec.severity, summary)
                        };
                        desired.insert(fp, alarm);
                    }
                }
            });
        }
        self.over_since.retain(|fp, _| holding.contains(fp));
        self.desired.retain(|fp, a| a.policy.is_none() || holding.contains(fp));
    }

    /// Raises what should fire and is not stored as firing; resolves what is stored as firing
    /// and should not; forgets resolved alarms after [`KEEP_RESOLVED`].
    /// Writes what changed; whether it wrote (or tried to write) anything.
    async fn reconcile(&mut self) -> bool {
        let raise: Vec<(String, AlarmSpec)> = self
            .desired
            .iter()
            .filter(|(fp, _)| self.stored.get(*fp).is_none_or(|a| a.observed.state == AlarmState::Resolved))
            .map(|(fp, a)| (fp.clone(), a.clone()))
            .collect();
        let mut wrote = !raise.is_empty();
        for (fp, spec) in raise {
            let org = spec.object_kind.eq(&Kind::AppInstance).then(|| self.instances.get(&spec.object_id).and_then(|f| f.organization.clone())).flatten();
            let result = match self.stored.get(&fp).cloned() {
                Some(mut a) => {
                    a.spec = spec;
                    a.observed.state = AlarmState::Firing;
                    a.observed.ends_at = None;
                    self.s.repo.update(&mut a).await.map(|()| a)
                }
                None => match Name::new(fp.clone()) {
                    Ok(name) => {
                        let mut a: Alarm = Object::new(Kind::Alarm, org, name, spec);
                        a.status.state = ObjState::Ready;
                        self.s.repo.create(&mut a).await.map(|()| a)
                    }
                    Err(e) => {
                        tracing::error!(%fp, error = %e, "alarm fingerprint is not a name");
                        continue;
                    }
                },
            };
            match result {
                Ok(a) => {
                    tracing::warn!(alarm = %a.spec.alertname.as_str(), object = %a.spec.object_name, summary = %a.spec.summary, "alarm raised");
                    self.stored.insert(fp, a);
                }
                Err(e) => self.write_failed(&fp, e).await,
            }
        }
        let resolve: Vec<String> = self
            .stored
            .iter()
            .filter(|(fp, a)| a.observed.state == AlarmState::Firing && !self.desired.contains_key(*fp))
            .filter(|(_, a)| a.spec.policy.is_none() || !self.instances.contains_key(&a.spec.object_id) || self.readings_cover(a))
            .map(|(fp, _)| fp.clone())
            .collect();
        wrote |= !resolve.is_empty();
        for fp in resolve {
            let Some(mut a) = self.stored.get(&fp).cloned() else { continue };
            a.observed.state = AlarmState::Resolved;
            a.observed.ends_at = Some(Utc::now());
            match self.s.repo.update(&mut a).await {
                Ok(()) => {
                    tracing::info!(alarm = %a.spec.alertname.as_str(), object = %a.spec.object_name, "alarm resolved");
                    self.stored.insert(fp, a);
                }
                Err(e) => self.write_failed(&fp, e).await,
            }
        }
        let keep = chrono::Duration::from_std(KEEP_RESOLVED).unwrap_or_else(|_| chrono::Duration::hours(1));
        let old: Vec<Alarm> =
            self.stored.values().filter(|a| a.observed.ends_at.is_some_and(|t| Utc::now() - t > keep) && !self.desired.contains_key(a.metadata.name.as_str())).cloned().collect();
        wrote |= !old.is_empty();
        for a in old {
            match self.s.repo.delete(&a).await {
                Ok(()) => {
                    self.stored.remove(a.metadata.name.as_str());
                }
                Err(e) => self.write_failed(a.metadata.name.as_str(), e).await,
            }
        }
        wrote
    }

    /// Whether the resource readings have caught up with a threshold alarm's instance since
    /// this process started: a threshold alarm stored by an earlier run is resolved only on a
    /// reading that says so, not for want of one.
    fn readings_cover(&self, a: &Alarm) -> bool {
        self.s.resources.has(a.spec.object_id)
    }

    /// After a failed write (a conflict, or a name already taken): read the stored alarms
    /// again, so the next pass starts from what is there.
    async fn write_failed(&mut self, fp: &str, e: RepoError) {
        tracing::warn!(%fp, error = %e, "alarm not written; retried next pass");
        if let Ok((all, _)) = self.s.repo.list::<AlarmSpec, AlarmObserved>(Kind::Alarm).await {
            self.stored = all.into_iter().map(|a| (a.metadata.name.to_string(), a)).collect();
        }
    }

    /// Tells every receiver what it has not been told yet.
    async fn deliver(&mut self) {
        let receivers = match self.s.repo.list::<AlarmReceiverSpec, ()>(Kind::AlarmReceiver).await {
            Ok((r, _)) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read alarm receivers");
                return;
            }
        };
        let now = tokio::time::Instant::now();
        for r in &receivers {
            if self.backoff.get(&r.metadata.uid).is_some_and(|(until, _)| *until > now) {
                continue;
            }
            let scope = r.metadata.organization.as_ref().map(|o| self.s.uni.index.read().unwrap_or_else(|e| e.into_inner()).org_scope(o));
            let due: Vec<String> = self
                .stored
                .iter()
                .filter(|(_, a)| match &scope {
                    None => true,
                    Some(orgs) => !a.spec.operator_only && a.metadata.organization.as_ref().is_some_and(|o| orgs.contains(o)),
                })
                .filter(|(_, a)| r.spec.wants(&a.spec) && a.observed.delivered.get(&r.metadata.uid) != Some(&a.observed.state))
                // A receiver made after an alarm ended is not told of it.
                .filter(|(_, a)| a.observed.ends_at.is_none_or(|t| t > r.metadata.created))
                .map(|(fp, _)| fp.clone())
                .collect();
            for fp in due {
                let Some(a) = self.stored.get(&fp) else { continue };
                let message = message(&self.s, r, a);
                let outcome = post(&self.s, &self.client, r, &message).await;
                self.s.alarm_deliveries.put(r.metadata.uid, 0, outcome.clone());
                if !outcome.delivered {
                    let failures = self.backoff.get(&r.metadata.uid).map_or(0, |b| b.1) + 1;
                    let wait = Duration::from_millis(500u64.saturating_mul(1 << failures.min(7))).min(MAX_BACKOFF);
                    tracing::info!(receiver = %r.metadata.name, outcome = %outcome.outcome, retry_in_ms = wait.as_millis() as u64, "alarm not delivered");
                    self.backoff.insert(r.metadata.uid, (now + wait, failures));
                    break;
                }
                self.backoff.remove(&r.metadata.uid);
                let state = a.observed.state;
                let mut updated = a.clone();
                updated.observed.delivered.insert(r.metadata.uid, state);
                match self.s.repo.update(&mut updated).await {
                    Ok(()) => {
                        self.stored.insert(fp, updated);
                    }
                    Err(e) => self.write_failed(&fp, e).await,
                }
            }
        }
        // Receivers deleted: forget what they were told.
        let live: HashSet<Uid> = receivers.iter().map(|r| r.metadata.uid).collect();
        self.backoff.retain(|u, _| live.contains(u));
    }
}

/// The webhook message telling receiver `r` of alarm `a`: an organization's receiver never
/// sees a cloudlet's name.
fn message(s: &AppState, r: &AlarmReceiver, a: &Alarm) -> WebhookMessage {
    let operator = r.metadata.organization.is_none();
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), a.spec.alertname.as_str().to_string()),
        ("severity".to_string(), a.spec.severity.as_str().to_string()),
        ("object_kind".to_string(), a.spec.object_kind.to_string()),
        ("object_id".to_string(), a.spec.object_id.to_string()),
    ]);
    if a.spec.object_kind == Kind::AppInstance {
        labels.insert("instance".into(), a.spec.object_name.clone());
    }
    if let Some(o) = &a.metadata.organization {
        labels.insert("organization".into(), o.to_string());
    }
    if let Some(app) = a.spec.app_id {
        labels.insert("app_id".into(), app.to_string());
    }
    if let Some(z) = a.spec.zone_id {
        let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
        labels.insert("zone".into(), ix.zone(z).map_or_else(|| z.to_string(), |z| z.name.to_string()));
    }
    labels.insert("cloudlet".into(), if operator { a.spec.cloudlet.clone() } else { HIDDEN_CLOUDLET.to_string() });
    if let Some(p) = a.spec.policy {
        labels.insert("policy".into(), p.to_string());
    }
    let annotations = BTreeMap::from([
        ("summary".to_string(), format!("{}: {} {}", a.spec.alertname.as_str(), a.spec.object_kind, a.spec.object_name)),
        ("description".to_string(), if operator { a.spec.summary.clone() } else { hide_cloudlet(&a.spec.summary, &a.spec.cloudlet) }),
    ]);
    let base = s.keys.issuer().trim_end_matches('/').to_string();
    let alert = WebhookAlert {
        status: a.observed.state,
        labels: labels.clone(),
        annotations: annotations.clone(),
        starts_at: a.spec.starts_at,
        ends_at: a.observed.ends_at.map_or_else(|| ZERO_TIME.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        generator_url: format!("{base}/op/v1/alarms/{}", a.metadata.name),
        fingerprint: a.metadata.name.to_string(),
    };
    let group = BTreeMap::from([("alertname".to_string(), a.spec.alertname.as_str().to_string())]);
    WebhookMessage {
        version: "4".into(),
        group_key: format!("{{}}:{{alertname=\"{}\", fingerprint=\"{}\"}}", a.spec.alertname.as_str(), a.metadata.name),
        truncated_alerts: 0,
        status: a.observed.state,
        receiver: r.metadata.name.to_string(),
        group_labels: group,
        common_labels: labels,
        common_annotations: annotations,
        external_url: base,
        alerts: vec![alert],
    }
}

/// A message that names a cloudlet, with the name hidden (for developers).
fn hide_cloudlet(text: &str, cloudlet: &str) -> String {
    if cloudlet.is_empty() {
        text.to_string()
    } else {
        text.replace(cloudlet, HIDDEN_CLOUDLET)
    }
}

/// POSTs `m` to receiver `r`, signed when it has a secret.
async fn post(s: &AppState, client: &reqwest::Client, r: &AlarmReceiver, m: &WebhookMessage) -> Delivery {
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = match serde_json::to_vec(m) {
        Ok(b) => b,
        Err(e) => return Delivery { at, delivered: false, outcome: format!("not encoded: {e}") },
    };
    let mut req = client.post(&r.spec.url).header(reqwest::header::CONTENT_TYPE, "application/json");
    if let Some(sealed) = &r.spec.secret {
        match crate::ewbi::cloudlets::unseal(&s.ewbi.secret, sealed) {
            Ok(key) => req = req.header(SIGNATURE_HEADER, signature(&key, &body)),
            Err(e) => return Delivery { at, delivered: false, outcome: format!("receiver secret unreadable: {e}") },
        }
    }
    match req.body(body).send().await {
        Ok(resp) => Delivery { at, delivered: resp.status().is_success(), outcome: format!("HTTP {}", resp.status().as_u16()) },
        Err(e) => Delivery { at, delivered: false, outcome: format!("not delivered: {}", op_types::error_chain(&e)) },
    }
}

/// `sha256=<hex HMAC-SHA256 of body under key>`, what [`SIGNATURE_HEADER`] carries.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), body);
    format!("sha256={}", tag.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

// ---------------------------------------------------------------------------------------------
// API

fn receiver_view(s: &AppState, mut r: AlarmReceiver) -> AlarmReceiverView {
    let has_secret = r.spec.secret.take().is_some();
    AlarmReceiverView {
        id: r.metadata.uid,
        last_delivery: s.alarm_deliveries.last(r.metadata.uid).map(|(_, d)| d),
        name: r.metadata.name,
        organization: r.metadata.organization,
        spec: r.spec,
        has_secret,
    }
}

async fn check_app(s: &AppState, c: &Caller, app: Option<Uid>, org: Option<&Name>) -> Result<(), ApiError> {
    let Some(app) = app else { return Ok(()) };
    let found = s.repo.get::<serde_json::Value, serde_json::Value>(Kind::App, app).await?;
    match found {
        Some(a) if c.can_read(a.metadata.organization.as_ref()) && org.is_none_or(|o| a.metadata.organization.as_ref() == Some(o)) => Ok(()),
        _ => Err(ApiError::invalid("spec.appId", "no such app in this organization")),
    }
}

/// Register a webhook receiver of alarms. The operator's (no organization) receives every
/// alarm; an organization's, its instances' alarms. The `secret`, when given, signs each
/// delivery and is never returned.
#[utoipa::path(post, path = "/op/v1/alarmreceivers", tag = "alarms", security(("bearer" = [])), request_body = CreateOwned<AlarmReceiverSpec>,
    responses((status = 201, body = AlarmReceiverView), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn create_receiver(
    State(s): State<AppState>,
    c: Caller,
    Body(req): Body<CreateOwned<AlarmReceiverSpec>>,
) -> Result<(StatusCode, Json<AlarmReceiverView>), ApiError> {
    let org = owner(&c, req.organization)?;
    let mut spec = req.spec;
    spec.validate().map_err(|e| e.under("spec"))?;
    check_app(&s, &c, spec.app_id, org.as_ref()).await?;
    if let Some(secret) = spec.secret.take() {
        spec.secret = Some(crate::ewbi::cloudlets::seal(&s.ewbi.secret, secret.as_bytes())?);
    }
    let mut obj: AlarmReceiver = Object::new(Kind::AlarmReceiver, org, req.name, spec);
    obj.status.state = ObjState::Ready;
    s.repo.create(&mut obj).await?;
    tracing::info!(receiver = %obj.metadata.name, by = %c.user, "alarm receiver registered");
    Ok((StatusCode::CREATED, Json(receiver_view(&s, obj))))
}

/// The alarm receivers the caller may see.
#[utoipa::path(get, path = "/op/v1/alarmreceivers", tag = "alarms", security(("bearer" = [])),
    responses((status = 200, body = Vec<AlarmReceiverView>), (status = 401, body = ErrorInfo)))]
pub async fn list_receivers(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<AlarmReceiverView>>, ApiError> {
    let (all, _) = s.repo.list::<AlarmReceiverSpec, ()>(Kind::AlarmReceiver).await?;
    Ok(Json(all.into_iter().filter(|r| c.can_read(r.metadata.organization.as_ref())).map(|r| receiver_view(&s, r)).collect()))
}

/// Body of `PUT /op/v1/alarmreceivers/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiverUpdate {
    /// The new spec, replacing the old one whole, except that an omitted `secret` keeps the
    /// stored one.
    pub spec: AlarmReceiverSpec,
}

/// Replace a receiver's spec.
#[utoipa::path(put, path = "/op/v1/alarmreceivers/{id}", tag = "alarms", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = ReceiverUpdate,
    responses((status = 200, body = AlarmReceiverView), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn update_receiver(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    Body(req): Body<ReceiverUpdate>,
) -> Result<Json<AlarmReceiverView>, ApiError> {
    let mut spec = req.spec;
    spec.validate().map_err(|e| e.under("spec"))?;
    let sealed = match spec.secret.take() {
        Some(secret) => Some(crate::ewbi::cloudlets::seal(&s.ewbi.secret, secret.as_bytes())?),
        None => None,
    };
    loop {
        let mut obj = find::<AlarmReceiverSpec, ()>(&s, &c, Kind::AlarmReceiver, &id, true).await?;
        check_app(&s, &c, spec.app_id, obj.metadata.organization.as_ref()).await?;
        let keep = obj.spec.secret.take();
        obj.spec = AlarmReceiverSpec { secret: sealed.clone().or(keep), ..spec.clone() };
        match s.repo.update(&mut obj).await {
            Ok(()) => return Ok(Json(receiver_view(&s, obj))),
            Err(RepoError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Remove a receiver.
#[utoipa::path(delete, path = "/op/v1/alarmreceivers/{id}", tag = "alarms", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn delete_receiver(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let obj = find::<AlarmReceiverSpec, ()>(&s, &c, Kind::AlarmReceiver, &id, true).await?;
    s.repo.delete(&obj).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a test alarm (`alertname` `Test`, resolved at once) to a receiver now, and say how it
/// went: what a developer runs after registering one.
#[utoipa::path(post, path = "/op/v1/alarmreceivers/{id}/test", tag = "alarms", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn test_receiver(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<Delivery>, ApiError> {
    let r = find::<AlarmReceiverSpec, ()>(&s, &c, Kind::AlarmReceiver, &id, true).await?;
    let now = Utc::now();
    let mut test: Alarm = Object::new(
        Kind::Alarm,
        r.metadata.organization.clone(),
        r.metadata.name.clone(),
        AlarmSpec {
            alertname: AlarmName::InstanceDown,
            severity: AlarmSeverity::Info,
            object_kind: Kind::AlarmReceiver,
            object_id: r.metadata.uid,
            object_name: r.metadata.name.to_string(),
            app_id: None,
            zone_id: None,
            cloudlet: String::new(),
            policy: None,
            operator_only: false,
            summary: format!("a test of receiver {} asked by {}", r.metadata.name, c.user),
            starts_at: now,
        },
    );
    test.observed = AlarmObserved { state: AlarmState::Resolved, ends_at: Some(now), delivered: BTreeMap::new() };
    let mut m = message(&s, &r, &test);
    for labels in std::iter::once(&mut m.common_labels).chain(std::iter::once(&mut m.group_labels)).chain(m.alerts.iter_mut().map(|a| &mut a.labels)) {
        labels.insert("alertname".into(), "Test".into());
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| ApiError::Internal(e.to_string()))?;
    let outcome = post(&s, &client, &r, &m).await;
    s.alarm_deliveries.put(r.metadata.uid, 0, outcome.clone());
    Ok(Json(outcome))
}

/// Create an alert policy: CPU and memory thresholds on instances that raise `CpuHigh` and
/// `MemoryHigh` when passed for `forSeconds`.
#[utoipa::path(post, path = "/op/v1/alertpolicies", tag = "alarms", security(("bearer" = [])), request_body = CreateOwned<AlertPolicySpec>,
    responses((status = 201, body = Object<AlertPolicySpec>), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn create_policy(
    State(s): State<AppState>,
    c: Caller,
    Body(req): Body<CreateOwned<AlertPolicySpec>>,
) -> Result<(StatusCode, Json<AlertPolicy>), ApiError> {
    let org = owner(&c, req.organization)?;
    req.spec.validate().map_err(|e| e.under("spec"))?;
    check_app(&s, &c, req.spec.app_id, org.as_ref()).await?;
    let mut obj: AlertPolicy = Object::new(Kind::AlertPolicy, org, req.name, req.spec);
    obj.status.state = ObjState::Ready;
    s.repo.create(&mut obj).await?;
    Ok((StatusCode::CREATED, Json(obj)))
}

/// The alert policies the caller may see.
#[utoipa::path(get, path = "/op/v1/alertpolicies", tag = "alarms", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object<AlertPolicySpec>>), (status = 401, body = ErrorInfo)))]
pub async fn list_policies(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<AlertPolicy>>, ApiError> {
    let (all, _) = s.repo.list::<AlertPolicySpec, ()>(Kind::AlertPolicy).await?;
    Ok(Json(all.into_iter().filter(|p| c.can_read(p.metadata.organization.as_ref())).collect()))
}

/// Remove an alert policy: the alarms it raised resolve.
#[utoipa::path(delete, path = "/op/v1/alertpolicies/{id}", tag = "alarms", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn delete_policy(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let obj = find::<AlertPolicySpec, ()>(&s, &c, Kind::AlertPolicy, &id, true).await?;
    s.repo.delete(&obj).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Filters of `GET /op/v1/alarms`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct AlarmQuery {
    /// Only `firing` or only `resolved` ones.
    pub state: Option<AlarmState>,
}

fn alarm_view(c: &Caller, a: Alarm) -> AlarmView {
    let mut spec = a.spec;
    if !c.role.is_operator() {
        spec.summary = hide_cloudlet(&spec.summary, &spec.cloudlet);
        spec.cloudlet = HIDDEN_CLOUDLET.to_string();
    }
    AlarmView {
        fingerprint: a.metadata.name.to_string(),
        state: a.observed.state,
        ends_at: a.observed.ends_at,
        organization: a.metadata.organization,
        delivered_to: a.observed.delivered.iter().filter(|(_, s)| **s == a.observed.state).map(|(u, _)| *u).collect(),
        spec,
    }
}

fn visible(c: &Caller, a: &Alarm) -> bool {
    c.role.is_operator() || (!a.spec.operator_only && c.can_read(a.metadata.organization.as_ref()))
}

/// Alarms firing now and those resolved in the last hour, newest first: the operator's are
/// all; a developer's, its organizations' instances'.
#[utoipa::path(get, path = "/op/v1/alarms", tag = "alarms", security(("bearer" = [])), params(AlarmQuery),
    responses((status = 200, body = Vec<AlarmView>), (status = 401, body = ErrorInfo)))]
pub async fn list(State(s): State<AppState>, c: Caller, Query(q): Query<AlarmQuery>) -> Result<Json<Vec<AlarmView>>, ApiError> {
    let (all, _) = s.repo.list::<AlarmSpec, AlarmObserved>(Kind::Alarm).await?;
    let mut v: Vec<AlarmView> =
        all.into_iter().filter(|a| visible(&c, a) && q.state.is_none_or(|st| st == a.observed.state)).map(|a| alarm_view(&c, a)).collect();
    v.sort_by_key(|a| std::cmp::Reverse(a.last_change()));
    Ok(Json(v))
}

/// One alarm by fingerprint.
#[utoipa::path(get, path = "/op/v1/alarms/{fingerprint}", tag = "alarms", security(("bearer" = [])), params(("fingerprint" = String, Path)),
    responses((status = 200, body = AlarmView), (status = 404, body = ErrorInfo)))]
pub async fn get(State(s): State<AppState>, c: Caller, Path(fp): Path<String>) -> Result<Json<AlarmView>, ApiError> {
    let (all, _) = s.repo.list::<AlarmSpec, AlarmObserved>(Kind::Alarm).await?;
    let a = all.into_iter().find(|a| a.metadata.name.as_str() == fp && visible(&c, a));
    a.map(|a| Json(alarm_view(&c, a))).ok_or_else(|| ApiError::NotFound(format!("alarm '{fp}' not found")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn developers_never_read_a_cloudlet_name() {
        assert_eq!(hide_cloudlet("starting on cloudlet edge-paris-1 failed", "edge-paris-1"), "starting on cloudlet hidden failed");
        assert_eq!(hide_cloudlet("text", ""), "text");
    }
}
