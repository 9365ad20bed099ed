//! The devices op-counter serves: each one's counter and whether it is served here or forwarded
//! to the instance its state went to, and what the registration says about it; plus the pure
//! decisions (where a request goes, what a notification means for a device).
//!
//! Locking: the table's map lock is held only for short lookups and never while waiting for a
//! device's lock, so a device lock may be held across a network call (a forwarded count, a
//! state transfer) without stalling other devices. Holding a device's lock across its forwarded
//! requests and its transfer is what keeps every increment in exactly one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ams::{DeviceReg, MobilityStatus};

/// Locks, ignoring poisoning: no code path leaves a device half-updated on panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a device's counter lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Here.
    Local,
    /// At `target` (`http://host:port`): its state was sent there, requests are forwarded.
    Forwarding {
        /// The base URL of the instance holding the state.
        target: String,
        /// The platform said the device was switched (INTERHOST_MOVEOUT_COMPLETED).
        completed: bool,
    },
}

/// One device.
#[derive(Debug)]
pub struct Device {
    /// Its counter; while forwarding, the last value the target answered.
    pub count: u64,
    /// Where the counter lives.
    pub mode: Mode,
    /// Bumped at every change of `mode`, so a delayed action can tell it is stale.
    pub epoch: u64,
    /// Taken out of the table: a request that still holds it forwards, a new one starts afresh.
    pub removed: bool,
}

/// Where a `/count` or `/peek` goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// Served from the local counter.
    Local,
    /// Forwarded to this base URL.
    Forward(&'a str),
}

/// The forwarding decision: a device whose state went elsewhere is served there, until the
/// move fails (its state comes back) or new state arrives here.
pub fn route(mode: &Mode) -> Route<'_> {
    match mode {
        Mode::Local => Route::Local,
        Mode::Forwarding { target, .. } => Route::Forward(target),
    }
}

/// What a mobility notification asks of one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the state to one of the targets, then forward.
    Transfer,
    /// Tell the platform the app does not allow the move.
    Refuse,
    /// The state is already at one of the targets: report the transfer again.
    Reconfirm,
    /// The move failed: take the state back from `from` and serve locally.
    TakeBack {
        /// The base URL the state went to.
        from: String,
    },
    /// The move completed: forward for the grace period, then forget the device.
    ScheduleDrop,
    /// Nothing to do.
    Nothing,
}

/// Decides what a notification with `status` and target base URLs `targets` means for a device
/// in `mode`, for an app that refuses every move when `refuse`.
pub fn plan(status: MobilityStatus, mode: &Mode, targets: &[String], refuse: bool) -> Action {
    match (status, mode) {
        (MobilityStatus::Triggered, _) if refuse => Action::Refuse,
        (MobilityStatus::Triggered, Mode::Forwarding { target, .. }) if targets.contains(target) => Action::Reconfirm,
        (MobilityStatus::Triggered, _) if targets.is_empty() => Action::Nothing,
        (MobilityStatus::Triggered, _) => Action::Transfer,
        (MobilityStatus::Completed, Mode::Forwarding { completed: false, .. }) => Action::ScheduleDrop,
        (MobilityStatus::Failed, Mode::Forwarding { target, .. }) => Action::TakeBack { from: target.clone() },
        (MobilityStatus::Completed | MobilityStatus::Failed, _) => Action::Nothing,
    }
}

/// A device's entry in the table.
struct Slot {
    device: Arc<Mutex<Device>>,
    refused: bool,
    transferred: bool,
}

/// Every device served.
#[derive(Default)]
pub struct Table {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Table {
    /// The device, created (counter 0, local) when first seen; `true` when created.
    pub fn entry(&self, device: &str) -> (Arc<Mutex<Device>>, bool) {
        let mut slots = lock(&self.slots);
        if let Some(s) = slots.get(device) {
            return (s.device.clone(), false);
        }
        let d = Arc::new(Mutex::new(Device { count: 0, mode: Mode::Local, epoch: 0, removed: false }));
        slots.insert(device.to_string(), Slot { device: d.clone(), refused: false, transferred: false });
        (d, true)
    }

    /// The device, if served.
    pub fn get(&self, device: &str) -> Option<Arc<Mutex<Device>>> {
        lock(&self.slots).get(device).map(|s| s.device.clone())
    }

    /// Sets what the registration says about the device (`None`: unchanged); `true` when that
    /// changed.
    pub fn set_registration(&self, device: &str, refused: Option<bool>, transferred: Option<bool>) -> bool {
        let mut slots = lock(&self.slots);
        let Some(s) = slots.get_mut(device) else { return false };
        let before = (s.refused, s.transferred);
        s.refused = refused.unwrap_or(s.refused);
        s.transferred = transferred.unwrap_or(s.transferred);
        before != (s.refused, s.transferred)
    }

    /// Forgets the device if `entry` is still its entry. The caller holds `entry`'s lock (and
    /// marks it removed).
    pub fn remove(&self, device: &str, entry: &Arc<Mutex<Device>>) -> bool {
        let mut slots = lock(&self.slots);
        match slots.get(device) {
            Some(s) if Arc::ptr_eq(&s.device, entry) => {
                slots.remove(device);
                true
            }
            _ => false,
        }
    }

    /// The device now known by address `new` (its address changed): its entry moves there,
    /// unless `new` is already served. `true` when it moved.
    pub fn rename(&self, old: &str, new: &str) -> bool {
        let mut slots = lock(&self.slots);
        if slots.contains_key(new) {
            return false;
        }
        match slots.remove(old) {
            Some(s) => {
                slots.insert(new.to_string(), s);
                true
            }
            None => false,
        }
    }

    /// What the registration lists: every device served.
    pub fn registration(&self) -> Vec<DeviceReg> {
        lock(&self.slots)
            .iter()
            .map(|(d, s)| DeviceReg { device: d.clone(), refused: s.refused, transferred: s.transferred })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(target: &str, completed: bool) -> Mode {
        Mode::Forwarding { target: target.into(), completed }
    }

    #[test]
    fn routes_requests() {
        assert_eq!(route(&Mode::Local), Route::Local);
        assert_eq!(route(&fwd("http://b:1", false)), Route::Forward("http://b:1"));
        assert_eq!(route(&fwd("http://b:1", true)), Route::Forward("http://b:1"));
    }

    #[test]
    fn plans_notifications() {
        use MobilityStatus::*;
        let b = vec!["http://b:1".to_string()];
        let c = vec!["http://c:1".to_string(), "http://b:1".to_string()];
        let none: Vec<String> = vec![];
        assert_eq!(plan(Triggered, &Mode::Local, &b, false), Action::Transfer);
        assert_eq!(plan(Triggered, &Mode::Local, &b, true), Action::Refuse);
        assert_eq!(plan(Triggered, &Mode::Local, &none, false), Action::Nothing);
        // Already there (any of the target's addresses): report again, do not send twice.
        assert_eq!(plan(Triggered, &fwd("http://b:1", false), &c, false), Action::Reconfirm);
        // Forwarding elsewhere: move on to the new target.
        assert_eq!(plan(Triggered, &fwd("http://d:1", false), &b, false), Action::Transfer);
        assert_eq!(plan(Completed, &fwd("http://b:1", false), &none, false), Action::ScheduleDrop);
        assert_eq!(plan(Completed, &fwd("http://b:1", true), &none, false), Action::Nothing);
        assert_eq!(plan(Completed, &Mode::Local, &b, false), Action::Nothing);
        assert_eq!(
            plan(Failed, &fwd("http://b:1", true), &none, false),
            Action::TakeBack { from: "http://b:1".into() }
        );
        assert_eq!(plan(Failed, &Mode::Local, &b, true), Action::Nothing);
    }

    #[test]
    fn a_new_address_keeps_the_count() {
        let t = Table::default();
        let (a, _) = t.entry("10.0.0.1");
        lock(&a).count = 7;
        assert!(t.rename("10.0.0.1", "10.0.1.1"));
        assert!(t.get("10.0.0.1").is_none());
        assert_eq!(lock(&t.get("10.0.1.1").unwrap()).count, 7);
        assert!(!t.rename("10.0.0.1", "10.0.2.1"), "no longer known by the old address");
        t.entry("10.0.3.1");
        assert!(!t.rename("10.0.1.1", "10.0.3.1"), "the new address is another device's");
        assert_eq!(t.registration().len(), 2);
    }

    #[test]
    fn keeps_the_registration() {
        let t = Table::default();
        let (a, new) = t.entry("10.0.0.1");
        assert!(new);
        let (a2, new) = t.entry("10.0.0.1");
        assert!(!new && Arc::ptr_eq(&a, &a2));
        t.entry("10.0.0.2");
        assert!(t.set_registration("10.0.0.1", None, Some(true)));
        assert!(!t.set_registration("10.0.0.1", None, Some(true)), "unchanged");
        assert!(!t.set_registration("10.0.0.3", Some(true), None), "unknown device");
        let mut reg = t.registration();
        reg.sort_by(|x, y| x.device.cmp(&y.device));
        assert_eq!(
            reg,
            vec![
                DeviceReg { device: "10.0.0.1".into(), refused: false, transferred: true },
                DeviceReg { device: "10.0.0.2".into(), refused: false, transferred: false },
            ]
        );
        // Only the entry itself is removed, not a newer one under the same name.
        let (b, _) = t.entry("10.0.0.2");
        assert!(!t.remove("10.0.0.2", &a));
        assert!(t.remove("10.0.0.2", &b));
        assert!(t.get("10.0.0.2").is_none());
        assert_eq!(t.registration().len(), 1);
    }
}
