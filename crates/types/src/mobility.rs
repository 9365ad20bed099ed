//! Relocations (OPG.02 mobility management): one record per decision to move a device's
//! session of an app from one instance to another, with its timeline, so operators and
//! developers see what happened and when (`opctl relocation get`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::uni::ChangeReason;
use crate::{Object, Uid};

/// What was decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelocationSpec {
    /// The app.
    pub app_id: Uid,
    /// The device's address (the MEC 021 associate id), when known; the device's other
    /// identifiers are not recorded here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_address: Option<String>,
    /// The instance the device leaves.
    pub from_instance: Uid,
    /// The instance it goes to.
    pub to_instance: Uid,
    /// The zone of `toInstance`.
    pub to_zone: Uid,
    /// Why.
    pub reason: ChangeReason,
    /// The app is told first and says when it is ready (its mobility policy).
    pub with_notice: bool,
    /// From the trigger to the decision, ms.
    pub decision_ms: f64,
}

/// Where a relocation stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RelocationPhase {
    /// Decided; nothing done yet.
    #[default]
    Decided,
    /// The app was notified (MEC 021 INTERHOST_MOVEOUT_TRIGGERED) and moves its state.
    AppNotified,
    /// The device was switched (told on its UNI stream) and its traffic steered.
    Completed,
    /// Refused by the app, timed out or impossible: the device stays where it was.
    Cancelled,
}

/// One step of a relocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelocationStep {
    /// When (RFC 3339, ms).
    pub at: String,
    /// The phase entered.
    pub phase: RelocationPhase,
    /// What happened.
    pub detail: String,
}

/// How a relocation went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelocationObserved {
    /// Where it stands.
    pub phase: RelocationPhase,
    /// Every step, oldest first.
    pub timeline: Vec<RelocationStep>,
}

/// A stored relocation.
pub type Relocation = Object<RelocationSpec, RelocationObserved>;
