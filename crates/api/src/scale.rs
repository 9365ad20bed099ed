//! Capacity-based instantiation at run time: every tick, for each app onboarded with
//! `instantiation: capacityBased`, count its users (live UNI sessions) per zone where they are,
//! plan with [`op_placement::scale::plan`], start the instances missing (through admission, like
//! any deployment) and remove the ones serving nobody once they have been surplus for a while.
//! For apps instantiated dynamically, the instances the platform started for devices (the UNI
//! at registration, mobility as devices move) are released the same way once nobody uses them;
//! the developer's own instances are never touched.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use op_placement::scale::{plan, Running};
use op_types::specs::{AppSpec, InstantiationType, ZoneSpec};
use op_types::{Kind, Uid};

use crate::error::ApiError;
use crate::state::AppState;

/// What one tick decided for one app.
struct AppWork {
    app: Uid,
    add: Vec<Uid>,
    surplus: Vec<Uid>,
    /// A dynamic app: only the instances the platform started are released.
    dynamic: bool,
}

/// Runs the scaler until the process ends: a tick every `every`; an instance is removed once
/// it has been surplus (serving nobody, beyond what its zone's users need) for `scale_in_after`.
pub async fn run(s: AppState, every: Duration, scale_in_after: Duration) {
    let mut surplus_since: HashMap<Uid, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = tick(&s, scale_in_after, &mut surplus_since).await {
            tracing::warn!(error = %e, "capacity-based scaling failed this round; retrying next tick");
        }
    }
}

/// Plans from the in-memory index and sessions (no lock held across an await).
fn plan_all(s: &AppState) -> Vec<AppWork> {
    let now = op_uni::token::now();
    let ix = s.uni.index.read().unwrap_or_else(|e| e.into_inner());
    let mut work = Vec::new();
    for app in ix.apps().filter(|a| a.requirements.instantiation == InstantiationType::Dynamic) {
        let sessions = s.uni.sessions.users_of(app.uid, now);
        let idle: Vec<Uid> = ix.instances_of(app.uid).filter(|i| !sessions.iter().any(|(_, _, u)| *u == i.uid)).map(|i| i.uid).collect();
        if !idle.is_empty() {
            work.push(AppWork { app: app.uid, add: Vec::new(), surplus: idle, dynamic: true });
        }
    }
    for app in ix.apps().filter(|a| a.requirements.instantiation == InstantiationType::CapacityBased) {
        let per = app.requirements.users_per_instance.unwrap_or(1);
        let mut zones: Vec<Uid> = Vec::new();
        let mut zone_id = |z: Uid| match zones.iter().position(|x| *x == z) {
            Some(i) => i as u32,
            None => {
                zones.push(z);
                (zones.len() - 1) as u32
            }
        };
        let sessions = s.uni.sessions.users_of(app.uid, now);
        let mut users: BTreeMap<u32, usize> = BTreeMap::new();
        for (_, at, inst) in &sessions {
            // Counted where the user is: the zone serving its cell, else its instance's zone.
            let zone = ix.zones_serving(at.cell.as_deref(), at.point).first().copied().or_else(|| ix.instance(*inst).map(|i| i.zone));
            if let Some(z) = zone {
                *users.entry(zone_id(z)).or_default() += 1;
            }
        }
        let instances: Vec<Uid> = ix.instances_of(app.uid).map(|i| i.uid).collect();
        let running: Vec<Running> = ix
            .instances_of(app.uid)
            .enumerate()
            .map(|(k, i)| Running { id: k as u32, zone: zone_id(i.zone), users: sessions.iter().filter(|(_, _, u)| *u == i.uid).count() })
            .collect();
        let p = plan(per, &users, &running);
        if !p.add.is_empty() || !p.remove.is_empty() {
            work.push(AppWork {
                app: app.uid,
                add: p.add.iter().map(|z| zones[*z as usize]).collect(),
                surplus: p.remove.iter().map(|k| instances[*k as usize]).collect(),
                dynamic: false,
            });
        }
    }
    work
}

async fn tick(s: &AppState, scale_in_after: Duration, surplus_since: &mut HashMap<Uid, Instant>) -> Result<(), ApiError> {
    let work = plan_all(s);
    let mut still_surplus = Vec::new();
    for w in work {
        let Some(app) = s.repo.get::<AppSpec, ()>(Kind::App, w.app).await? else { continue };
        for zone in &w.add {
            let Some(zone) = s.repo.get::<ZoneSpec, ()>(Kind::Zone, *zone).await? else { continue };
            let name = crate::camara::platform_instance_name(&app.metadata.name, "cap", Uid::random())?;
            match crate::camara::create_instance(s, &app, &zone, name, "capacity scaler").await {
                Ok(i) => tracing::info!(app = %app.metadata.name, zone = %zone.metadata.name, instance = %i.metadata.uid, "scaled out for users"),
                Err(e) => tracing::warn!(app = %app.metadata.name, zone = %zone.metadata.name, error = %e, "could not scale out"),
            }
        }
        for inst in w.surplus {
            if w.dynamic && !platform_started(s, &app.metadata.name, inst).await? {
                continue;
            }
            still_surplus.push(inst);
            let since = *surplus_since.entry(inst).or_insert_with(Instant::now);
            if since.elapsed() >= scale_in_after {
                crate::camara::request_deletion(s, Kind::AppInstance, inst, "capacity scaler").await?;
                tracing::info!(app = %app.metadata.name, instance = %inst, "scaled in: no users");
            }
        }
    }
    surplus_since.retain(|i, _| still_surplus.contains(i));
    Ok(())
}

/// Whether instance `inst` of app `app` was started by the platform for devices (its name is
/// the one [`crate::camara::platform_instance_name`] gives dynamic instances).
async fn platform_started(s: &AppState, app: &op_types::Name, inst: Uid) -> Result<bool, ApiError> {
    let Some(i) = s.repo.get::<op_types::specs::AppInstanceSpec, serde_json::Value>(Kind::AppInstance, inst).await? else { return Ok(false) };
    let expected = crate::camara::platform_instance_name(app, "dyn", i.spec.edge_cloud_zone_id)?;
    Ok(i.metadata.name == expected)
}
