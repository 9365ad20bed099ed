//! What the partner role tells the originating operator, and how it gets there.
//!
//! [`InstanceNotifier`] watches the local app instances that realise partners' federated
//! instances. When one's GSMA state (`PENDING`, `READY`, `FAILED`, `TERMINATING`) changes it
//! first writes the change as pending on the federated instance (with the time it saw it), then
//! records the settlement event and queues the `onInstanceStatusEvent` callback, both named by
//! their content so repeating the step after a crash makes no duplicate, then marks it sent.
//! Ready instances get ingress relays, and their access points are the ingress's.
//!
//! [`deliver`] drains the outbox: per federation in creation order, deleting each entry once
//! the partner's endpoint answered 2xx and backing off otherwise, so nothing is lost across a
//! partner outage or our own restart, and nothing is delivered out of order.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use op_controller::{Action, ReconcileError, Reconciler};
use op_store::informer::Raw;
use op_types::ewbi::objects::{EwbiInstanceObserved, EwbiInstanceSpec, EwbiOutboxSpec, FederationPartnerSpec, FederationSpec, InstanceRelocation, MAX_RELOCATIONS};
use op_types::ewbi::usage::{InstanceState, InstanceStateChanged, SessionsServed, UsageEvent};
use op_types::specs::{AppInstanceSpec, FlavorSpec, InstanceObserved};
use op_types::{Kind, Name, Object, State, Uid};
use serde::de::IgnoredAny;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// Label on a local app instance naming the federated instance (its uid) it realises.
pub const LABEL_EWBI_INSTANCE: &str = "op.ewbi.instance";

/// A federated instance as stored.
pub type EwbiInstance = Object<EwbiInstanceSpec, EwbiInstanceObserved>;

/// The GSMA state of a local instance (`None` when it no longer exists).
pub fn gsma_state<X>(inst: Option<&Object<AppInstanceSpec, X>>) -> InstanceState {
    match inst {
        None => InstanceState::Terminating,
        Some(i) if i.metadata.deletion_requested.is_some() => InstanceState::Terminating,
        Some(i) => match i.status.state {
            State::Pending | State::Creating => InstanceState::Pending,
            State::Ready => InstanceState::Ready,
            State::Failed => InstanceState::Failed,
            State::Deleting => InstanceState::Terminating,
        },
    }
}

/// The wire name of a state.
pub fn state_name(s: InstanceState) -> &'static str {
    match s {
        InstanceState::Pending => "PENDING",
        InstanceState::Ready => "READY",
        InstanceState::Failed => "FAILED",
        InstanceState::Terminating => "TERMINATING",
    }
}

/// Queues `body` for `url` under federation `fed`; queuing the same body again is a no-op.
pub async fn enqueue(s: &AppState, fed: &Name, callback: &str, url: &str, body: Value, seq: DateTime<Utc>) -> Result<(), op_store::RepoError> {
    enqueue_billed(s, fed, callback, url, body, seq, None).await
}

/// [`enqueue`] of a callback that reports a settlement event: the event enters our ledger
/// when the partner has acknowledged the callback.
pub async fn enqueue_billed(s: &AppState, fed: &Name, callback: &str, url: &str, body: Value, seq: DateTime<Utc>, usage: Option<UsageEvent>) -> Result<(), op_store::RepoError> {
    let bytes = serde_json::to_vec(&(callback, url, &body)).unwrap_or_default();
    let hex: String = Sha256::digest(&bytes).iter().take(24).map(|b| format!("{b:02x}")).collect();
    let Ok(name) = Name::new(format!("o{hex}")) else { return Ok(()) };
    let spec = EwbiOutboxSpec { federation: fed.clone(), callback: callback.into(), url: url.into(), body, seq: seq.timestamp_micros(), usage };
    let mut obj: Object<EwbiOutboxSpec> = Object::new(Kind::EwbiOutbox, None, name, spec);
    match s.repo.create(&mut obj).await {
        Ok(()) | Err(op_store::RepoError::AlreadyExists { .. }) => {
            s.ewbi.wake.notify_waiters();
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Keeps partners told about the instances we run for them.
pub struct InstanceNotifier {
    state: AppState,
}

impl InstanceNotifier {
    /// A notifier over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Relays for the instance's endpoints; its access points as the partner sees them.
    async fn access_points(&self, fi: &mut EwbiInstance, local: Uid, observed: &InstanceObserved) -> Vec<Value> {
        let ewbi = &self.state.ewbi;
        let mut points = Vec::new();
        for ep in &observed.endpoints {
            let known = fi.observed.ingress_ports.get(&ep.interface_id).copied();
            let target = format!("{}:{}", ep.host, ep.port);
            if fi.observed.targets.get(&ep.interface_id).is_some_and(|t| *t != target) {
                // We moved the instance (a new container, another cloudlet of the zone); the
                // relay follows it, and the partner hears of it.
                fi.observed.relocations.push(InstanceRelocation {
                    at: Utc::now().trunc_subsecs(0),
                    interface_id: ep.interface_id.clone(),
                    reason: "the instance was moved within the zone by the serving platform; its access point is unchanged".into(),
                });
                let extra = fi.observed.relocations.len().saturating_sub(MAX_RELOCATIONS);
                fi.observed.relocations.drain(..extra);
            }
            fi.observed.targets.insert(ep.interface_id.clone(), target.clone());
            match ewbi.ingress.ensure(local, &ep.interface_id, target, known).await {
                Ok(port) => {
                    fi.observed.ingress_ports.insert(ep.interface_id.clone(), port);
                    let mut sep = json!({"port": port});
                    if ewbi.ingress_host.parse::<std::net::Ipv4Addr>().is_ok() {
                        sep["ipv4Addresses"] = json!([ewbi.ingress_host]);
                    } else {
                        sep["fqdn"] = json!(ewbi.ingress_host);
                    }
                    points.push(json!({"interfaceId": ep.interface_id, "accessPoints": sep}));
                }
                Err(e) => tracing::warn!(error = %e, "cannot open an ingress relay"),
            }
        }
        points
    }
}

/// The callback body of `onInstanceStatusEvent`, in both revisions' spellings.
pub fn instance_event_body(ctx: &str, fi: &EwbiInstanceSpec, state: InstanceState, points: &[Value], at: DateTime<Utc>) -> Value {
    let mut info = json!({"appInstanceState": state_name(state)});
    if !points.is_empty() {
        info["accesspointInfo"] = json!(points);
        info["accessPointInfo"] = json!(points);
    }
    json!({
        "federationContextId": ctx,
        "appId": fi.app_id,
        "appInstIdentifier": fi.instance_id,
        "appInstanceId": fi.instance_id,
        "zoneId": fi.zone_id,
        "appInstanceInfo": info,
        "modificationDate": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// The settlement event of a state change.
pub async fn usage_event<X>(s: &AppState, ctx: &str, fi: &EwbiInstanceSpec, local: Option<&Object<AppInstanceSpec, X>>, state: InstanceState, at: DateTime<Utc>) -> Result<UsageEvent, ReconcileError> {
    let flavor = match local {
        Some(l) => s.repo.get_by_name::<FlavorSpec, ()>(Kind::Flavor, None, &l.spec.flavor).await?,
        None => None,
    };
    let (vcpu_milli, memory_mb) = flavor.map_or((0, 0), |f| (u64::from(f.spec.vcpus) * 1000, f.spec.memory_mb));
    Ok(UsageEvent::InstanceStateChanged(InstanceStateChanged {
        federation_context_id: ctx.to_string(),
        app_provider_id: fi.app_provider_id.clone(),
        app_id: fi.app_id.clone(),
        app_instance_id: fi.instance_id.clone(),
        zone_id: fi.zone_id.clone(),
        flavour_id: fi.flavour_id.clone(),
        vcpu_milli,
        memory_mb,
        state,
        at,
    }))
}

#[async_trait]
impl Reconciler for InstanceNotifier {
    /// Driven by the local instances: their changes are what partners are told about.
    fn kind(&self) -> Kind {
        Kind::AppInstance
    }

    /// Only a partner's instances (labelled with their federated instance).
    fn wants(&self, stored: &[u8]) -> bool {
        serde_json::from_slice::<Object<IgnoredAny, IgnoredAny>>(stored).map_or(true, |o| o.metadata.labels.contains_key(LABEL_EWBI_INSTANCE))
    }

    async fn reconcile(&self, uid: Uid, stored: Option<&Raw>) -> Result<Action, ReconcileError> {
        let s = &self.state;
        let local = stored.map(Raw::decode::<AppInstanceSpec, InstanceObserved>).transpose()?;
        let fi = match local.as_ref().map(|l| l.metadata.labels.get(LABEL_EWBI_INSTANCE)) {
            // Not a partner's instance.
            Some(None) => return Ok(Action::AwaitChange),
            Some(Some(id)) => match id.parse::<Uid>() {
                Ok(id) => s.repo.get::<EwbiInstanceSpec, EwbiInstanceObserved>(Kind::EwbiInstance, id).await?,
                Err(_) => None,
            },
            // Gone: which federated instance was it?
            None => {
                let (all, _) = s.repo.list::<EwbiInstanceSpec, EwbiInstanceObserved>(Kind::EwbiInstance).await?;
                all.into_iter().find(|f| f.spec.local_instance == uid)
            }
        };
        let Some(mut fi) = fi else { return Ok(Action::AwaitChange) };
        let now_state = gsma_state(local.as_ref());
        let ctx = fi.spec.federation.as_str().strip_prefix("f-").unwrap_or_default().to_string();
        let before = fi.clone();
        let points = match (&local, now_state) {
            (Some(l), InstanceState::Ready) => self.access_points(&mut fi, l.metadata.uid, &l.observed).await,
            _ => vec![],
        };
        let sent = fi.observed.last_sent.clone();
        let moved = fi.observed.relocations != before.observed.relocations;
        let changed = sent.as_deref() != Some(state_name(now_state)) || (now_state == InstanceState::Ready && (moved || fi.observed.ingress_ports != before.observed.ingress_ports));
        if changed {
            // Settlement holds exactly what the partner was told: the event goes out with the
            // callback and enters our ledger when the partner acknowledges it. A crash before
            // `last_sent` is written repeats the callback with a later time; both sides then
            // record both, alike.
            let at = Utc::now().trunc_subsecs(0);
            if s.repo.get_by_name::<FederationSpec, ()>(Kind::Federation, None, &fi.spec.federation).await?.is_some() {
                let usage = if sent.as_deref() != Some(state_name(now_state)) { Some(usage_event(s, &ctx, &fi.spec, local.as_ref(), now_state, at).await?) } else { None };
                let body = instance_event_body(&ctx, &fi.spec, now_state, &points, at);
                enqueue_billed(s, &fi.spec.federation, "onInstanceStatusEvent", &fi.spec.callback_link, body, at, usage).await?;
            }
            fi.observed.last_sent = Some(state_name(now_state).to_string());
        }
        if fi.observed != before.observed {
            s.repo.update(&mut fi).await?;
        }
        if local.is_none() {
            report_sessions(s, &fi).await?;
            s.ewbi.ingress.remove(fi.spec.local_instance);
            s.repo.delete(&fi).await?;
            return Ok(Action::AwaitChange);
        }
        Ok(Action::AwaitChange)
    }

    fn error_policy(&self, _err: &ReconcileError, failures: u32) -> Duration {
        op_controller::backoff(failures)
    }
}

/// How often sessions served are reported.
pub const SESSIONS_PERIOD: Duration = Duration::from_secs(5);

/// The callback kind, beside `instance-status`, that carries sessions served (an `x-op`
/// extension: the GSMA file has no callback for them).
pub const SESSIONS_CALLBACK: &str = "sessions";

/// Reports the connections partners' devices opened through our ingress as sessions served,
/// every [`SESSIONS_PERIOD`], until the process ends.
pub async fn report_all_sessions(s: AppState) {
    loop {
        tokio::time::sleep(SESSIONS_PERIOD).await;
        let all = match s.repo.list::<EwbiInstanceSpec, EwbiInstanceObserved>(Kind::EwbiInstance).await {
            Ok((all, _)) => all,
            Err(e) => {
                tracing::warn!(error = %e, "sessions served: cannot list instances");
                continue;
            }
        };
        for fi in &all {
            if let Err(e) = report_sessions(&s, fi).await {
                tracing::warn!(error = %e, "sessions served not queued");
            }
        }
    }
}

/// Queues the sessions instance `fi` served since the last report (connections through our
/// ingress), billed like instance status: the event enters our ledger when the partner
/// acknowledged it, and the partner records the same. Only toward a platform whose instance
/// callback link is ours in shape (`…/instance-status`): another partner has no receiver.
/// Connections accepted in the last period before a crash are not reported.
pub async fn report_sessions(s: &AppState, fi: &EwbiInstance) -> Result<(), op_store::RepoError> {
    let Some(url) = fi.spec.callback_link.strip_suffix("/instance-status").map(|b| format!("{b}/{SESSIONS_CALLBACK}")) else { return Ok(()) };
    let n = s.ewbi.ingress.take_sessions(fi.spec.local_instance);
    if n == 0 {
        return Ok(());
    }
    let ev = SessionsServed {
        federation_context_id: fi.spec.federation.as_str().strip_prefix("f-").unwrap_or_default().to_string(),
        app_provider_id: fi.spec.app_provider_id.clone(),
        app_id: fi.spec.app_id.clone(),
        zone_id: fi.spec.zone_id.clone(),
        flavour_id: Some(fi.spec.flavour_id.clone()),
        sessions: n,
        at: Utc::now().trunc_subsecs(0),
    };
    let body = serde_json::to_value(&ev).unwrap_or_default();
    enqueue_billed(s, &fi.spec.federation, "x-op sessionsServed", &url, body, ev.at, Some(UsageEvent::SessionsServed(ev))).await
}

/// Delivers queued callbacks until the process ends.
pub async fn deliver(s: AppState) {
    let mut failures: HashMap<Name, (u32, tokio::time::Instant)> = HashMap::new();
    let mut clients: HashMap<(Uid, u64), reqwest::Client> = HashMap::new();
    loop {
        let woke = s.ewbi.wake.notified();
        if let Err(e) = deliver_once(&s, &mut failures, &mut clients).await {
            tracing::warn!(error = %e, "EWBI outbox: cannot read the queue");
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), woke).await;
    }
}

async fn deliver_once(s: &AppState, failures: &mut HashMap<Name, (u32, tokio::time::Instant)>, clients: &mut HashMap<(Uid, u64), reqwest::Client>) -> Result<(), op_store::RepoError> {
    let (mut all, _) = s.repo.list::<EwbiOutboxSpec, ()>(Kind::EwbiOutbox).await?;
    all.sort_by_key(|o| (o.spec.seq, o.metadata.created));
    let mut by_fed: BTreeMap<Name, Vec<Object<EwbiOutboxSpec>>> = BTreeMap::new();
    for o in all {
        by_fed.entry(o.spec.federation.clone()).or_default().push(o);
    }
    for (fed, entries) in by_fed {
        if failures.get(&fed).is_some_and(|(_, until)| tokio::time::Instant::now() < *until) {
            continue;
        }
        let client = match client_for(s, &fed, clients).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(federation = %fed, error = %e, "EWBI outbox: no client for the partner");
                continue;
            }
        };
        for o in entries {
            let r = client.post(&o.spec.url).json(&o.spec.body).timeout(super::client::CALL_TIMEOUT).send().await;
            match r {
                Ok(r) if r.status().is_success() => {
                    failures.remove(&fed);
                    if let Some(ev) = o.spec.usage.clone() {
                        if let Err(e) = record_delivered(s, &fed, ev).await {
                            tracing::warn!(error = %e, "EWBI outbox: cannot record the delivered event; retrying");
                            break;
                        }
                    }
                    s.repo.delete(&o).await?;
                }
                other => {
                    let why = match other {
                        Ok(r) => format!("answered {}", r.status()),
                        Err(e) => e.to_string(),
                    };
                    let n = failures.get(&fed).map_or(1, |(n, _)| n + 1);
                    let wait = op_controller::backoff(n);
                    tracing::warn!(federation = %fed, callback = %o.spec.callback, error = %why, retry_in_ms = wait.as_millis() as u64, "EWBI callback not delivered");
                    failures.insert(fed.clone(), (n, tokio::time::Instant::now() + wait));
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Records a delivered event with the federation's partner.
async fn record_delivered(s: &AppState, fed: &Name, ev: UsageEvent) -> Result<(), crate::error::ApiError> {
    let f = s.repo.get_by_name::<FederationSpec, ()>(Kind::Federation, None, fed).await?;
    match f {
        Some(f) => super::settle::record(s, &f.spec.partner, ev).await,
        None => Ok(()),
    }
}

/// An HTTPS client trusting the partner's CA.
async fn client_for(s: &AppState, fed: &Name, cache: &mut HashMap<(Uid, u64), reqwest::Client>) -> Result<reqwest::Client, String> {
    let ca = match s.repo.get_by_name::<FederationSpec, ()>(Kind::Federation, None, fed).await.map_err(|e| e.to_string())? {
        Some(f) => s.repo.get_by_name::<FederationPartnerSpec, ()>(Kind::FederationPartner, None, &f.spec.partner).await.map_err(|e| e.to_string())?,
        None => None,
    };
    let key = ca.as_ref().map_or((Uid::nil(), 0), |p| (p.metadata.uid, p.metadata.revision));
    if let Some(c) = cache.get(&key) {
        return Ok(c.clone());
    }
    let mut b = reqwest::Client::builder().https_only(true).use_rustls_tls();
    if let Some(pem) = ca.and_then(|p| p.spec.ca_pem) {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| e.to_string())?);
    }
    let c = b.build().map_err(|e| e.to_string())?;
    cache.insert(key, c.clone());
    Ok(c)
}
