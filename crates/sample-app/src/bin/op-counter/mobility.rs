//! What op-counter does when the platform moves one of its devices (MEC 021 with prior notice):
//! one worker thread handles the notifications in the order they came, so a failure is never
//! handled before the trigger it cancels.
//!
//! - TRIGGERED: send the device's counter to the target (`POST /state`, the target's addresses
//!   in order until one answers 2xx), then forward the device's requests there and report
//!   `USER_CONTEXT_TRANSFER_COMPLETED`; or, with `OP_COUNTER_REFUSE=1`, report
//!   `APP_MOBILITY_NOT_ALLOWED` instead. The device's lock is held from reading the counter to
//!   switching to forwarding, so no increment happens here after the copy was taken.
//! - FAILED: take the counter back from the target (`GET /peek`; the forwarded answers' last
//!   value if the target does not answer) and serve locally again.
//! - COMPLETED: keep forwarding for the grace period, then forget the device.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use op_sample_app::client;
use op_sample_app::log;
use serde_json::{json, Value};

use crate::ams::MobilityStatus;
use crate::devices::{lock, plan, Action, Device, Mode};
use crate::App;

/// Per attempt to reach a target.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a transfer is retried (every 500 ms) before the device stays here.
const TRANSFER_PATIENCE: Duration = Duration::from_secs(10);
/// Between rounds of attempts.
const RETRY: Duration = Duration::from_millis(500);

/// A mobility notification to handle.
pub struct Move {
    /// The devices concerned.
    pub devices: Vec<String>,
    /// What happens to them.
    pub status: MobilityStatus,
    /// The target's base URLs, in the order to try.
    pub targets: Vec<String>,
}

/// Handles notifications one after the other, until the sending side is gone.
pub fn worker(app: Arc<App>, moves: Receiver<Move>) {
    for m in moves {
        for device in &m.devices {
            handle(&app, device, m.status, &m.targets);
        }
    }
}

/// The counter at `base` for `device`, if it answers.
pub fn peek(base: &str, device: &str) -> Option<u64> {
    let reply = client::request("GET", &format!("{base}/peek?device={device}"), &[], None, TRANSFER_TIMEOUT).ok()?;
    if !reply.is_success() {
        return None;
    }
    serde_json::from_slice::<Value>(&reply.body).ok()?.get("count")?.as_u64()
}

/// The device's entry, created for a trigger (a device never counted here still moves: its
/// counter is 0), looked up otherwise.
fn entry(app: &App, device: &str, create: bool) -> Option<Arc<Mutex<Device>>> {
    if !create {
        return app.table.get(device);
    }
    let (d, new) = app.table.entry(device);
    if new {
        app.registrar.mark_dirty();
    }
    Some(d)
}

fn handle(app: &App, device: &str, status: MobilityStatus, targets: &[String]) {
    // An entry forgotten between the lookup and its lock is out of the table: look again.
    for _ in 0..3 {
        let Some(dev) = entry(app, device, status == MobilityStatus::Triggered) else {
            log(&format!("{device}: {status:?} for a device not served here: nothing to do"));
            return;
        };
        if handle_entry(app, device, status, targets, &dev) {
            return;
        }
    }
}

/// `false` when the entry was forgotten meanwhile.
fn handle_entry(app: &App, device: &str, status: MobilityStatus, targets: &[String], dev: &Arc<Mutex<Device>>) -> bool {
    let mut d = lock(dev);
    if d.removed {
        return false;
    }
    let action = plan(status, &d.mode, targets, app.refuse);
    match action {
        Action::Transfer => {
            drop(d);
            transfer(app, device, dev, targets);
        }
        Action::Refuse => {
            drop(d);
            app.table.set_registration(device, Some(true), None);
            app.registrar.mark_dirty();
            log(&format!("{device}: refusing the move (OP_COUNTER_REFUSE)"));
        }
        Action::Reconfirm => {
            drop(d);
            app.table.set_registration(device, None, Some(true));
            app.registrar.mark_dirty();
            log(&format!("{device}: already transferred; reporting it again"));
        }
        Action::TakeBack { from } => {
            match peek(&from, device) {
                Some(n) => d.count = n,
                None => log(&format!("{device}: {from} does not answer; keeping the last count it gave ({})", d.count)),
            }
            d.mode = Mode::Local;
            d.epoch += 1;
            let count = d.count;
            drop(d);
            app.table.set_registration(device, None, Some(false));
            app.registrar.mark_dirty();
            log(&format!("{device}: move failed; serving it here again at {count}"));
        }
        Action::ScheduleDrop => {
            if let Mode::Forwarding { completed, .. } = &mut d.mode {
                *completed = true;
            }
            let epoch = d.epoch;
            drop(d);
            schedule_drop(app, device, dev.clone(), epoch);
        }
        Action::Nothing => log(&format!("{device}: {status:?} changes nothing here")),
    }
    true
}

/// Sends the device's counter to the first target that takes it and forwards from then on;
/// retried for [`TRANSFER_PATIENCE`]. The counter is read again at each round: between rounds
/// the device is served here.
fn transfer(app: &App, device: &str, dev: &Arc<Mutex<Device>>, targets: &[String]) {
    let deadline = Instant::now() + TRANSFER_PATIENCE;
    loop {
        let mut d = lock(dev);
        if d.removed {
            return;
        }
        if let Mode::Forwarding { target, .. } = &d.mode {
            // Moving on from an earlier target: its counter is the latest.
            if let Some(n) = peek(target, device) {
                d.count = n;
            }
        }
        let body = json!({"device": device, "count": d.count}).to_string();
        let headers = [("Content-Type", "application/json")];
        for base in targets {
            let sent =
                client::request("POST", &format!("{base}/state"), &headers, Some(body.as_bytes()), TRANSFER_TIMEOUT);
            match sent {
                Ok(r) if r.is_success() => {
                    d.mode = Mode::Forwarding { target: base.clone(), completed: false };
                    d.epoch += 1;
                    let count = d.count;
                    drop(d);
                    app.table.set_registration(device, None, Some(true));
                    app.registrar.mark_dirty();
                    log(&format!("{device}: state ({count}) sent to {base}; forwarding its requests there"));
                    return;
                }
                Ok(r) => log(&format!("{device}: {base} refused the state: {}", r.status)),
                Err(e) => log(&format!("{device}: {base} unreachable: {e}")),
            }
        }
        drop(d);
        if Instant::now() >= deadline {
            log(&format!("{device}: no target took the state; it stays here"));
            return;
        }
        std::thread::sleep(RETRY);
    }
}

/// After the grace period, forgets the device unless something happened to it meanwhile.
fn schedule_drop(app: &App, device: &str, dev: Arc<Mutex<Device>>, epoch: u64) {
    let (table, registrar, grace, device) = (app.table.clone(), app.registrar.clone(), app.grace, device.to_string());
    log(&format!("{device}: move completed; forwarding for {} ms more", grace.as_millis()));
    let spawned = std::thread::Builder::new().name("drop".into()).spawn(move || {
        std::thread::sleep(grace);
        let mut d = lock(&dev);
        if d.epoch != epoch || d.removed || !matches!(d.mode, Mode::Forwarding { .. }) {
            return;
        }
        d.removed = true;
        table.remove(&device, &dev);
        drop(d);
        registrar.mark_dirty();
        log(&format!("{device}: forgotten"));
    });
    if spawned.is_err() {
        log("out of threads: the device is kept (and forwarded)");
    }
}
