//! Mobility management (OPG.02): relocating a device's app server and session as the device
//! moves, per the app's mobility policy. The MEC 021 Application Mobility Service
//! ([`crate::ams`]) is how apps take part.

use crate::state::AppState;

/// An app instance changed its MEC 021 registration (e.g. reported a device's user context
/// transferred, or refused mobility): relocations waiting on it look again.
pub fn registration_changed(s: &AppState) {
    s.mobility.notify_waiters();
}
