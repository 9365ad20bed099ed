//! ETSI GS MEC 021 Application Mobility Service (AMS): the wire shapes of `/amsi/v1` (field
//! names, enums and notification bodies as in MEC 021 and AdvantEDGE's `meep-ams`, which the
//! notifications follow), what the platform stores for registrations and subscriptions, and the
//! pure rules (validation, filter matching). No I/O.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::Uid;
use crate::validate::{ensure, max_len, FieldError};

/// Longest associate id value accepted.
pub const ASSOCIATE_VALUE_MAX: usize = 256;
/// Most devices one registration may list.
pub const DEVICES_MAX: usize = 10_000;
/// Longest callback URL accepted.
pub const CALLBACK_MAX: usize = 2048;

/// MEC 012 `AssociateId.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub enum AssociateIdType {
    /// The device's IPv4 address.
    #[serde(rename = "UE_IPv4_ADDRESS")]
    UeIpv4Address,
    /// The device's IPv6 address.
    #[serde(rename = "UE_IPV6_ADDRESS")]
    UeIpv6Address,
    /// The device's address after NAT.
    #[serde(rename = "NATED_IP_ADDRESS")]
    NatedIpAddress,
    /// A GTP tunnel endpoint id.
    #[serde(rename = "GTP_TEID")]
    GtpTeid,
}

/// MEC 012 `AssociateId`: identifies a device (or a flow of it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssociateId {
    /// Which kind of identifier `value` is.
    #[serde(rename = "type")]
    pub kind: AssociateIdType,
    /// The identifier.
    pub value: String,
}

impl AssociateId {
    /// A device by its IPv4 address.
    pub fn ipv4(addr: Ipv4Addr) -> Self {
        Self { kind: AssociateIdType::UeIpv4Address, value: addr.to_string() }
    }

    /// Checks the value against its type (addresses must parse).
    pub fn validate(&self) -> Result<(), FieldError> {
        ensure(!self.value.is_empty(), "value", "must not be empty")?;
        max_len(&self.value, ASSOCIATE_VALUE_MAX, "value")?;
        match self.kind {
            AssociateIdType::UeIpv4Address => ensure(self.value.parse::<Ipv4Addr>().is_ok(), "value", "must be an IPv4 address for type UE_IPv4_ADDRESS"),
            AssociateIdType::UeIpv6Address => ensure(self.value.parse::<Ipv6Addr>().is_ok(), "value", "must be an IPv6 address for type UE_IPV6_ADDRESS"),
            AssociateIdType::NatedIpAddress | AssociateIdType::GtpTeid => Ok(()),
        }
    }

    /// Whether both name the same device: same type and value, addresses compared as addresses
    /// (so `::1` and `0:0::1` are one).
    pub fn same(&self, other: &AssociateId) -> bool {
        if self.kind != other.kind {
            return false;
        }
        match self.kind {
            AssociateIdType::UeIpv4Address => match (self.value.parse::<Ipv4Addr>(), other.value.parse::<Ipv4Addr>()) {
                (Ok(a), Ok(b)) => a == b,
                _ => self.value == other.value,
            },
            AssociateIdType::UeIpv6Address => match (self.value.parse::<Ipv6Addr>(), other.value.parse::<Ipv6Addr>()) {
                (Ok(a), Ok(b)) => a == b,
                _ => self.value == other.value,
            },
            AssociateIdType::NatedIpAddress | AssociateIdType::GtpTeid => self.value == other.value,
        }
    }
}

/// Whether the app's instance may be changed for a device, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppMobilityServiceLevel {
    /// The serving instance keeps serving the device wherever it goes (traffic is steered).
    AppMobilityNotAllowed,
    /// The serving instance may change once the app confirms (its user context moved).
    AppMobilityWithConfirmation,
    /// The serving instance may change without asking the app.
    AppMobilityWithoutConfirmation,
}

/// Where the transfer of a device's user context to another instance stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContextTransferState {
    /// Not transferred (yet).
    NotTransferred,
    /// The app moved the device's user context to the target instance.
    UserContextTransferCompleted,
}

/// Where a device's move out of its instance's host stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MobilityStatus {
    /// A move to another host was decided.
    InterhostMoveoutTriggered,
    /// The move completed.
    InterhostMoveoutCompleted,
    /// The move failed.
    InterhostMoveoutFailed,
}

/// MEC `TimeStamp`: Unix time in seconds and nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeStamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub seconds: u64,
    /// Nanoseconds within the second (below 1,000,000,000).
    pub nano_seconds: u32,
}

impl TimeStamp {
    /// Now.
    pub fn now() -> Self {
        Self::from(Utc::now())
    }

    /// As a point in time, when in range.
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        let secs = i64::try_from(self.seconds).ok()?;
        DateTime::from_timestamp(secs, self.nano_seconds)
    }

    /// Checks the nanoseconds and the range.
    pub fn validate(&self) -> Result<(), FieldError> {
        ensure(self.nano_seconds < 1_000_000_000, "nanoSeconds", "must be below 1000000000")?;
        ensure(self.to_datetime().is_some(), "seconds", "is out of range")
    }
}

impl From<DateTime<Utc>> for TimeStamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self { seconds: u64::try_from(t.timestamp()).unwrap_or(0), nano_seconds: t.timestamp_subsec_nanos().min(999_999_999) }
    }
}

/// `RegistrationInfo.serviceConsumerId`: who registers. Only app instances register here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceConsumerId {
    /// The app instance registering (its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_id: Option<String>,
    /// A MEC platform registering: not supported (the platform registers nothing itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mep_id: Option<String>,
}

/// `RegistrationInfo.deviceInformation[]`: one device the instance serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceInformation {
    /// The device.
    pub associate_id: AssociateId,
    /// Whether and how the device may be moved to another instance (stateful apps give it;
    /// absent reads as `APP_MOBILITY_WITHOUT_CONFIRMATION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_mobility_service_level: Option<AppMobilityServiceLevel>,
    /// Where the transfer of the device's user context stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_transfer_state: Option<ContextTransferState>,
}

/// MEC 021 `RegistrationInfo`: an app instance taking part in application mobility.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrationInfo {
    /// The registration's id: absent in POST, present otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_mobility_service_id: Option<String>,
    /// Who registers: `appInstanceId`, an instance of the caller's organization (an instance
    /// calling with its own token: itself or another instance of its app).
    pub service_consumer_id: ServiceConsumerId,
    /// The devices the instance serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_information: Vec<DeviceInformation>,
    /// Seconds the registration lives from when it was accepted (POST, or the last PUT); `0` or
    /// absent: no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_time: Option<u32>,
}

impl RegistrationInfo {
    /// Checks devices (valid, listed once) and the consumer (an app instance, not a MEC
    /// platform); returns the registering instance's id as given.
    pub fn validate(&self) -> Result<&str, FieldError> {
        ensure(self.device_information.len() <= DEVICES_MAX, "deviceInformation", format!("at most {DEVICES_MAX} devices"))?;
        for (i, d) in self.device_information.iter().enumerate() {
            d.associate_id.validate().map_err(|e| e.under("associateId").under(&format!("deviceInformation[{i}]")))?;
            if self.device_information[..i].iter().any(|o| o.associate_id.same(&d.associate_id)) {
                return Err(FieldError::new(format!("deviceInformation[{i}].associateId"), "lists a device already listed"));
            }
        }
        ensure(
            self.service_consumer_id.mep_id.is_none(),
            "serviceConsumerId.mepId",
            "registration by a MEC platform is not supported; an app instance registers with appInstanceId",
        )?;
        match self.service_consumer_id.app_instance_id.as_deref() {
            Some(id) if !id.is_empty() => Ok(id),
            _ => Err(FieldError::new("serviceConsumerId.appInstanceId", "is required: the id of the app instance registering")),
        }
    }
}

/// A stored registration (kind `AmsRegistration`, org-scoped, named after its uid).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmsRegistrationSpec {
    /// The registering instance.
    pub app_instance_id: Uid,
    /// Its app.
    pub app_id: Uid,
    /// The devices it serves, as registered.
    #[serde(default)]
    pub device_information: Vec<DeviceInformation>,
    /// As registered (`0`: no expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_time: Option<u32>,
    /// When it expires, from `expiryTime` counted from its last write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl AmsRegistrationSpec {
    /// The wire form, as registration `id`.
    pub fn to_wire(&self, id: Uid) -> RegistrationInfo {
        RegistrationInfo {
            app_mobility_service_id: Some(id.to_string()),
            service_consumer_id: ServiceConsumerId { app_instance_id: Some(self.app_instance_id.to_string()), mep_id: None },
            device_information: self.device_information.clone(),
            expiry_time: self.expiry_time,
        }
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// What it holds for `associate`, if it lists that device.
    pub fn device(&self, associate: &AssociateId) -> Option<&DeviceInformation> {
        self.device_information.iter().find(|d| d.associate_id.same(associate))
    }
}

/// A hyperlink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkType {
    /// The URI.
    pub href: String,
}

/// `_links` of a subscription: its own URI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfLink {
    /// The subscription's URI.
    #[serde(rename = "self")]
    pub self_: LinkType,
}

/// `_links` of a notification: the subscription it is sent for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionLink {
    /// The subscription's URI.
    pub subscription: LinkType,
}

impl SubscriptionLink {
    /// A link to the subscription at `href`.
    pub fn to(href: &str) -> Self {
        Self { subscription: LinkType { href: href.to_string() } }
    }
}

/// `websockNotifConfig`: delivery over a WebSocket. Not supported: a request for it is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebsockNotifConfig {
    /// Set by the AMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket_uri: Option<String>,
    /// Set by the consumer to ask for WebSocket delivery (refused: use `callbackReference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_websocket_uri: Option<bool>,
}

/// The two kinds of subscription (`subscriptionType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum SubscriptionType {
    /// Mobility procedure notifications.
    MobilityProcedureSubscription,
    /// Adjacent application instance notifications.
    AdjacentAppInfoSubscription,
}

impl SubscriptionType {
    /// From a body's `subscriptionType` or the list's query value (`mobility_proc`,
    /// `adj_app_info`, as MEC 021 names them there).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "MobilityProcedureSubscription" | "mobility_proc" => Some(Self::MobilityProcedureSubscription),
            "AdjacentAppInfoSubscription" | "adj_app_info" => Some(Self::AdjacentAppInfoSubscription),
            _ => None,
        }
    }
}

/// `subscriptionType` of a [`MobilityProcedureSubscription`] (one value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum MobilityProcedureSubscriptionType {
    /// The only value.
    MobilityProcedureSubscription,
}

/// `subscriptionType` of an [`AdjacentAppInfoSubscription`] (one value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AdjacentAppInfoSubscriptionType {
    /// The only value.
    AdjacentAppInfoSubscription,
}

/// `MobilityProcedureSubscription.filterCriteria`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MobilityProcedureFilter {
    /// Only moves of devices served by this instance (of the caller's organization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_id: Option<String>,
    /// Only moves of these devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub associate_id: Vec<AssociateId>,
    /// Only these steps of a move; `[INTERHOST_MOVEOUT_TRIGGERED]` when absent (and then so in
    /// the answer, as the spec asks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mobility_status: Vec<MobilityStatus>,
}

impl MobilityProcedureFilter {
    /// The statuses it selects (the default when none is listed).
    pub fn statuses(&self) -> Vec<MobilityStatus> {
        if self.mobility_status.is_empty() {
            vec![MobilityStatus::InterhostMoveoutTriggered]
        } else {
            self.mobility_status.clone()
        }
    }

    /// Whether a move of `associate` (devices) served by `source`, at step `status`, is
    /// selected: the instance when given, one of the devices when given, the status.
    pub fn matches(&self, source: Uid, associate: &[AssociateId], status: MobilityStatus) -> bool {
        let instance_ok = match &self.app_instance_id {
            Some(id) => id.parse::<Uid>().is_ok_and(|u| u == source),
            None => true,
        };
        let device_ok = self.associate_id.is_empty() || self.associate_id.iter().any(|a| associate.iter().any(|b| a.same(b)));
        instance_ok && device_ok && self.statuses().contains(&status)
    }

    /// Checks the devices listed.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (i, a) in self.associate_id.iter().enumerate() {
            a.validate().map_err(|e| e.under(&format!("associateId[{i}]")))?;
        }
        Ok(())
    }
}

/// `AdjacentAppInfoSubscription.filterCriteria`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjacentAppInfoFilter {
    /// The instance whose adjacent instances (the other Ready instances of its app) are
    /// reported. An instance subscribing with its own token may leave it out (itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_id: Option<String>,
}

/// MEC 021 `MobilityProcedureSubscription`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MobilityProcedureSubscription {
    /// The subscription's URI (in answers; accepted and ignored in PUT).
    #[serde(rename = "_links", default, skip_serializing_if = "Option::is_none")]
    pub links: Option<SelfLink>,
    /// Where notifications are POSTed: an http(s) URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_reference: Option<String>,
    /// Asks for a `TestNotification` to the callback right after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_test_notification: Option<bool>,
    /// WebSocket delivery: not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websock_notif_config: Option<WebsockNotifConfig>,
    /// When the subscription ends (an `ExpiryNotification` is sent then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_deadline: Option<TimeStamp>,
    /// What is notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_criteria: Option<MobilityProcedureFilter>,
    /// `MobilityProcedureSubscription`.
    pub subscription_type: MobilityProcedureSubscriptionType,
}

/// MEC 021 `AdjacentAppInfoSubscription`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjacentAppInfoSubscription {
    /// The subscription's URI (in answers; accepted and ignored in PUT).
    #[serde(rename = "_links", default, skip_serializing_if = "Option::is_none")]
    pub links: Option<SelfLink>,
    /// Where notifications are POSTed: an http(s) URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_reference: Option<String>,
    /// Asks for a `TestNotification` to the callback right after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_test_notification: Option<bool>,
    /// WebSocket delivery: not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websock_notif_config: Option<WebsockNotifConfig>,
    /// When the subscription ends (an `ExpiryNotification` is sent then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_deadline: Option<TimeStamp>,
    /// Whose adjacent instances are notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_criteria: Option<AdjacentAppInfoFilter>,
    /// `AdjacentAppInfoSubscription`.
    pub subscription_type: AdjacentAppInfoSubscriptionType,
}

/// Either subscription, told apart by `subscriptionType` (what `/subscriptions` takes and
/// answers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AmsSubscription {
    /// Mobility procedure notifications.
    MobilityProcedure(MobilityProcedureSubscription),
    /// Adjacent application instance notifications.
    AdjacentAppInfo(AdjacentAppInfoSubscription),
}

impl AmsSubscription {
    /// Its type.
    pub fn kind(&self) -> SubscriptionType {
        match self {
            Self::MobilityProcedure(_) => SubscriptionType::MobilityProcedureSubscription,
            Self::AdjacentAppInfo(_) => SubscriptionType::AdjacentAppInfoSubscription,
        }
    }

    /// The callback URL.
    pub fn callback(&self) -> Option<&str> {
        match self {
            Self::MobilityProcedure(m) => m.callback_reference.as_deref(),
            Self::AdjacentAppInfo(a) => a.callback_reference.as_deref(),
        }
    }

    /// The expiry deadline.
    pub fn expiry_deadline(&self) -> Option<TimeStamp> {
        match self {
            Self::MobilityProcedure(m) => m.expiry_deadline,
            Self::AdjacentAppInfo(a) => a.expiry_deadline,
        }
    }

    /// Whether a test notification was asked for.
    pub fn wants_test(&self) -> bool {
        match self {
            Self::MobilityProcedure(m) => m.request_test_notification == Some(true),
            Self::AdjacentAppInfo(a) => a.request_test_notification == Some(true),
        }
    }

    /// The filter's instance, as given.
    pub fn filter_instance(&self) -> Option<&str> {
        match self {
            Self::MobilityProcedure(m) => m.filter_criteria.as_ref().and_then(|f| f.app_instance_id.as_deref()),
            Self::AdjacentAppInfo(a) => a.filter_criteria.as_ref().and_then(|f| f.app_instance_id.as_deref()),
        }
    }

    /// Sets the subscription's own URI.
    pub fn set_self(&mut self, href: &str) {
        let l = Some(SelfLink { self_: LinkType { href: href.to_string() } });
        match self {
            Self::MobilityProcedure(m) => m.links = l,
            Self::AdjacentAppInfo(a) => a.links = l,
        }
    }

    /// Checks what needs no lookup: a callback (http or https URL), no WebSocket delivery,
    /// an expiry deadline after `now`, a filter (with valid devices), and fills the defaults
    /// the answer shows (`mobilityStatus`).
    pub fn validate(&mut self, now: DateTime<Utc>) -> Result<(), FieldError> {
        let (callback, websock, deadline) = match self {
            Self::MobilityProcedure(m) => {
                let f = m.filter_criteria.as_mut().ok_or_else(|| FieldError::new("filterCriteria", "is required (it may be empty: {})"))?;
                f.validate().map_err(|e| e.under("filterCriteria"))?;
                if f.mobility_status.is_empty() {
                    f.mobility_status = vec![MobilityStatus::InterhostMoveoutTriggered];
                }
                (&m.callback_reference, &m.websock_notif_config, m.expiry_deadline)
            }
            Self::AdjacentAppInfo(a) => {
                ensure(a.filter_criteria.is_some(), "filterCriteria", "is required (it may be empty: {})")?;
                (&a.callback_reference, &a.websock_notif_config, a.expiry_deadline)
            }
        };
        if websock.as_ref().is_some_and(|w| w.request_websocket_uri == Some(true) || w.websocket_uri.is_some()) {
            return Err(FieldError::new("websockNotifConfig", "WebSocket delivery is not supported; notifications are POSTed to callbackReference"));
        }
        let cb = callback.as_deref().ok_or_else(|| FieldError::new("callbackReference", "is required: the http(s) URL notifications are POSTed to"))?;
        check_callback(cb).map_err(|m| FieldError::new("callbackReference", m))?;
        if let Some(d) = deadline {
            d.validate().map_err(|e| e.under("expiryDeadline"))?;
            ensure(d.to_datetime().is_some_and(|t| t > now), "expiryDeadline", "must be in the future")?;
        }
        Ok(())
    }
}

/// Why `url` is not a callback URL: an absolute `http://` or `https://` URL with a host, no
/// whitespace, at most [`CALLBACK_MAX`] long. (A full parse is the caller's; this is the
/// syntactic rule.)
pub fn check_callback(url: &str) -> Result<(), String> {
    if url.len() > CALLBACK_MAX {
        return Err(format!("must be at most {CALLBACK_MAX} characters long"));
    }
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).ok_or_else(|| "must be an http:// or https:// URL".to_string())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("must name a host".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace".into());
    }
    Ok(())
}

/// A stored subscription (kind `AmsSubscription`, org-scoped, named after its uid).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmsSubscriptionSpec {
    /// The subscription as answered (with `_links.self`).
    pub subscription: AmsSubscription,
    /// The app of the filter's instance: whose instances an adjacent-info subscription is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<Uid>,
    /// For adjacent-info subscriptions: the app's Ready instances when the subscriber was last
    /// told (or subscribed), sorted; a change against it is notified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ready_instances: Vec<Uid>,
}

impl AmsSubscriptionSpec {
    /// Its own URI.
    pub fn href(&self) -> &str {
        match &self.subscription {
            AmsSubscription::MobilityProcedure(m) => m.links.as_ref().map_or("", |l| l.self_.href.as_str()),
            AmsSubscription::AdjacentAppInfo(a) => a.links.as_ref().map_or("", |l| l.self_.href.as_str()),
        }
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.subscription.expiry_deadline().and_then(TimeStamp::to_datetime).is_some_and(|t| t <= now)
    }
}

/// `SubscriptionLinkList._links.subscription[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionLinkListSubscription {
    /// The subscription's URI.
    pub href: String,
    /// Its type.
    pub subscription_type: SubscriptionType,
}

/// `SubscriptionLinkList._links`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionLinkListLinks {
    /// This list's URI.
    #[serde(rename = "self")]
    pub self_: LinkType,
    /// The caller's subscriptions.
    #[serde(default)]
    pub subscription: Vec<SubscriptionLinkListSubscription>,
}

/// MEC 021 `SubscriptionLinkList` (AdvantEDGE's shape: the links under `_links`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionLinkList {
    /// The list.
    #[serde(rename = "_links")]
    pub links: SubscriptionLinkListLinks,
}

/// `CommunicationInterface.IpAddresses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IpAddress {
    /// Host (address) to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// MEC 021 `CommunicationInterface`: where an instance is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommunicationInterface {
    /// Its addresses.
    #[serde(default)]
    pub ip_addresses: Vec<IpAddress>,
}

/// `MobilityProcedureNotification.targetAppInfo`: the instance a device moves to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetAppInfo {
    /// The target instance.
    pub app_instance_id: Uid,
    /// Where it is reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm_interface: Option<CommunicationInterface>,
}

/// AdvantEDGE `MobilityProcedureNotification`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MobilityProcedureNotification {
    /// `MobilityProcedureNotification`.
    pub notification_type: String,
    /// When it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_stamp: Option<TimeStamp>,
    /// The devices moving.
    pub associate_id: Vec<AssociateId>,
    /// The step of the move.
    pub mobility_status: MobilityStatus,
    /// Where they move to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_app_info: Option<TargetAppInfo>,
    /// The subscription.
    #[serde(rename = "_links")]
    pub links: SubscriptionLink,
}

impl MobilityProcedureNotification {
    /// A notification made now for the subscription at `href`.
    pub fn new(href: &str, associate: Vec<AssociateId>, status: MobilityStatus, target: Option<TargetAppInfo>) -> Self {
        Self {
            notification_type: "MobilityProcedureNotification".into(),
            time_stamp: Some(TimeStamp::now()),
            associate_id: associate,
            mobility_status: status,
            target_app_info: target,
            links: SubscriptionLink::to(href),
        }
    }
}

/// The platform's extension to MEC 021 (which has no such notification): a device served by
/// the instance got a new IP address (a new PDU session), so the app can re-key its state.
/// Delivered to the instance's mobility procedure subscriptions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UeIpChangeNotification {
    /// `UeIpChangeNotification`.
    pub notification_type: String,
    /// When.
    pub time_stamp: TimeStamp,
    /// The device as the app knew it.
    pub associate_id: Vec<AssociateId>,
    /// The device now.
    pub new_associate_id: AssociateId,
    /// The subscription.
    #[serde(rename = "_links")]
    pub links: SubscriptionLink,
}

/// `AdjacentAppInfoNotification.adjacentAppInfo[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdjacentAppInfo {
    /// An adjacent instance.
    pub app_instance_id: Uid,
    /// Where it is reached.
    pub comm_interface: Vec<CommunicationInterface>,
}

/// AdvantEDGE `AdjacentAppInfoNotification`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdjacentAppInfoNotification {
    /// `AdjacentAppInfoNotification`.
    pub notification_type: String,
    /// When it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_stamp: Option<TimeStamp>,
    /// The devices concerned (none: about the app, not a device).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub associate_id: Vec<AssociateId>,
    /// The app's other Ready instances, now.
    pub adjacent_app_info: Vec<AdjacentAppInfo>,
    /// The subscription.
    #[serde(rename = "_links")]
    pub links: SubscriptionLink,
}

impl AdjacentAppInfoNotification {
    /// A notification made now for the subscription at `href`.
    pub fn new(href: &str, adjacent: Vec<AdjacentAppInfo>) -> Self {
        Self {
            notification_type: "AdjacentAppInfoNotification".into(),
            time_stamp: Some(TimeStamp::now()),
            associate_id: Vec::new(),
            adjacent_app_info: adjacent,
            links: SubscriptionLink::to(href),
        }
    }
}

/// AdvantEDGE `ExpiryNotification`: the subscription ended at its deadline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryNotification {
    /// `ExpiryNotification`.
    pub notification_type: String,
    /// When it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_stamp: Option<TimeStamp>,
    /// The subscription.
    #[serde(rename = "_links")]
    pub links: SubscriptionLink,
    /// The subscription's deadline.
    pub expiry_deadline: TimeStamp,
}

impl ExpiryNotification {
    /// A notification made now for the subscription at `href`.
    pub fn new(href: &str, deadline: TimeStamp) -> Self {
        Self {
            notification_type: "ExpiryNotification".into(),
            time_stamp: Some(TimeStamp::now()),
            links: SubscriptionLink::to(href),
            expiry_deadline: deadline,
        }
    }
}

/// AdvantEDGE `TestNotification` (MEC 009): checks the callback works.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestNotification {
    /// `TestNotification`.
    pub notification_type: String,
    /// The subscription.
    #[serde(rename = "_links")]
    pub links: SubscriptionLink,
}

impl TestNotification {
    /// A test notification for the subscription at `href`.
    pub fn new(href: &str) -> Self {
        Self { notification_type: "TestNotification".into(), links: SubscriptionLink::to(href) }
    }
}

/// MEC 021 `MECHostInformation`. Hosts are named by zone: cloudlets are the operator's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MecHostInformation {
    /// The zone's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// Key-value pairs (the spec's `KeyValuePairs`): `edgeCloudZoneId`, the zone's id.
    pub host_id: BTreeMap<String, String>,
}

/// MEC 021 `AdjacentAppInstanceInfo`: another Ready instance of the app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdjacentAppInstanceInfo {
    /// The app (its id).
    pub app_d_id: Uid,
    /// Where the instance is reached (one interface per endpoint).
    pub app_instance_comm_link: Vec<CommunicationInterface>,
    /// The instance.
    pub app_instance_id: Uid,
    /// Its host, named by zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mec_host_information: Option<MecHostInformation>,
    /// The instance again, when it registered to the AMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_instance_id: Option<Uid>,
}

/// RFC 7807 / MEC `ProblemDetails`: every AMS error body (`application/problem+json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProblemDetails {
    /// Problem type URI (`about:blank`: the status says it).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary (the status's reason phrase).
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, naming the field at fault, and what to do.
    pub detail: String,
    /// The request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ip(s: &str) -> AssociateId {
        AssociateId { kind: AssociateIdType::UeIpv4Address, value: s.into() }
    }

    #[test]
    fn mobility_filter_matching() {
        let (a, b) = (Uid::random(), Uid::random());
        let dev = [ip("10.0.0.7")];
        let any = MobilityProcedureFilter::default();
        assert!(any.matches(a, &dev, MobilityStatus::InterhostMoveoutTriggered), "empty filter: default status");
        assert!(!any.matches(a, &dev, MobilityStatus::InterhostMoveoutCompleted), "default status only");
        let inst = MobilityProcedureFilter { app_instance_id: Some(a.to_string()), ..Default::default() };
        assert!(inst.matches(a, &dev, MobilityStatus::InterhostMoveoutTriggered));
        assert!(!inst.matches(b, &dev, MobilityStatus::InterhostMoveoutTriggered), "another instance");
        let bad = MobilityProcedureFilter { app_instance_id: Some("nope".into()), ..Default::default() };
        assert!(!bad.matches(a, &dev, MobilityStatus::InterhostMoveoutTriggered));
        let devs = MobilityProcedureFilter { associate_id: vec![ip("10.0.0.8"), ip("10.0.0.7")], ..Default::default() };
        assert!(devs.matches(a, &dev, MobilityStatus::InterhostMoveoutTriggered));
        assert!(devs.matches(a, &[ip("10.0.0.9"), ip("10.0.0.8")], MobilityStatus::InterhostMoveoutTriggered), "one of them");
        assert!(!devs.matches(a, &[ip("10.0.0.9")], MobilityStatus::InterhostMoveoutTriggered), "another device");
        assert!(!devs.matches(a, &[], MobilityStatus::InterhostMoveoutTriggered), "no device");
        let nat = AssociateId { kind: AssociateIdType::NatedIpAddress, value: "10.0.0.7".into() };
        assert!(!devs.matches(a, &[nat], MobilityStatus::InterhostMoveoutTriggered), "same value, other type");
        let st = MobilityProcedureFilter {
            mobility_status: vec![MobilityStatus::InterhostMoveoutCompleted, MobilityStatus::InterhostMoveoutFailed],
            ..Default::default()
        };
        assert!(st.matches(a, &dev, MobilityStatus::InterhostMoveoutFailed));
        assert!(!st.matches(a, &dev, MobilityStatus::InterhostMoveoutTriggered), "not listed");
    }

    #[test]
    fn addresses_compare_as_addresses() {
        let v6 = |s: &str| AssociateId { kind: AssociateIdType::UeIpv6Address, value: s.into() };
        assert!(v6("2001:db8::1").same(&v6("2001:0db8:0:0::1")));
        assert!(!v6("2001:db8::1").same(&v6("2001:db8::2")));
        assert!(ip("10.0.0.7").same(&ip("10.0.0.7")));
        assert!(!ip("10.0.0.7").same(&ip("10.0.0.70")));
    }

    #[test]
    fn mobility_notification_has_advantedge_shape() {
        let target = TargetAppInfo {
            app_instance_id: Uid::random(),
            comm_interface: Some(CommunicationInterface { ip_addresses: vec![IpAddress { host: "10.1.2.3".into(), port: 8080 }] }),
        };
        let n = MobilityProcedureNotification::new(
            "http://p/amsi/v1/subscriptions/x",
            vec![ip("10.0.0.7")],
            MobilityStatus::InterhostMoveoutTriggered,
            Some(target.clone()),
        );
        let v = serde_json::to_value(&n).unwrap();
        // meep-ams swagger: MobilityProcedureNotification.required.
        for f in ["notificationType", "associateId", "mobilityStatus", "_links"] {
            assert!(v.get(f).is_some(), "required field {f} missing: {v}");
        }
        // ...and every field is one of the schema's properties.
        let props = ["notificationType", "timeStamp", "associateId", "mobilityStatus", "targetAppInfo", "_links"];
        for k in v.as_object().unwrap().keys() {
            assert!(props.contains(&k.as_str()), "{k} is not a property of the schema");
        }
        assert_eq!(v["notificationType"], "MobilityProcedureNotification");
        assert_eq!(v["mobilityStatus"], "INTERHOST_MOVEOUT_TRIGGERED");
        assert_eq!(v["associateId"], json!([{"type": "UE_IPv4_ADDRESS", "value": "10.0.0.7"}]));
        assert_eq!(v["_links"], json!({"subscription": {"href": "http://p/amsi/v1/subscriptions/x"}}));
        assert_eq!(
            v["targetAppInfo"],
            json!({"appInstanceId": target.app_instance_id.to_string(), "commInterface": {"ipAddresses": [{"host": "10.1.2.3", "port": 8080}]}})
        );
        let ts = &v["timeStamp"];
        assert!(ts["seconds"].as_u64().is_some_and(|s| s > 1_600_000_000) && ts["nanoSeconds"].as_u64().is_some(), "{ts}");
    }

    #[test]
    fn other_notifications_have_advantedge_shapes() {
        let d = TimeStamp { seconds: 1_900_000_000, nano_seconds: 5 };
        let e = serde_json::to_value(ExpiryNotification::new("h", d)).unwrap();
        assert_eq!(
            (e["notificationType"].clone(), e["expiryDeadline"].clone()),
            (json!("ExpiryNotification"), json!({"seconds": 1_900_000_000u64, "nanoSeconds": 5}))
        );
        assert_eq!(e["_links"]["subscription"]["href"], "h");
        let t = serde_json::to_value(TestNotification::new("h")).unwrap();
        assert_eq!(t, json!({"notificationType": "TestNotification", "_links": {"subscription": {"href": "h"}}}));
        let u = Uid::random();
        let a = serde_json::to_value(AdjacentAppInfoNotification::new(
            "h",
            vec![AdjacentAppInfo {
                app_instance_id: u,
                comm_interface: vec![CommunicationInterface { ip_addresses: vec![IpAddress { host: "h1".into(), port: 1 }] }],
            }],
        ))
        .unwrap();
        assert_eq!(a["notificationType"], "AdjacentAppInfoNotification");
        assert_eq!(a["adjacentAppInfo"], json!([{"appInstanceId": u.to_string(), "commInterface": [{"ipAddresses": [{"host": "h1", "port": 1}]}]}]));
        assert!(a.get("associateId").is_none());
        let info = serde_json::to_value(AdjacentAppInstanceInfo {
            app_d_id: u,
            app_instance_comm_link: vec![],
            app_instance_id: u,
            mec_host_information: None,
            registered_instance_id: None,
        })
        .unwrap();
        assert!(info.get("appDId").is_some() && info.get("appInstanceCommLink").is_some(), "{info}");
    }

    #[test]
    fn subscriptions_tell_their_type_apart() {
        let m: AmsSubscription = serde_json::from_value(json!({"subscriptionType": "MobilityProcedureSubscription",
            "callbackReference": "http://x/cb", "filterCriteria": {}}))
        .unwrap();
        assert_eq!(m.kind(), SubscriptionType::MobilityProcedureSubscription);
        let a: AmsSubscription = serde_json::from_value(json!({"subscriptionType": "AdjacentAppInfoSubscription",
            "callbackReference": "http://x/cb", "filterCriteria": {}}))
        .unwrap();
        assert_eq!(a.kind(), SubscriptionType::AdjacentAppInfoSubscription);
        // Stored and read back, each stays what it is.
        let spec = AmsSubscriptionSpec { subscription: a.clone(), app_id: None, ready_instances: vec![] };
        let back: AmsSubscriptionSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(back.subscription.kind(), SubscriptionType::AdjacentAppInfoSubscription);
        assert!(serde_json::from_value::<MobilityProcedureSubscription>(json!({"subscriptionType": "MobilityProcedureSubscription", "bogus": 1})).is_err());
        assert_eq!(SubscriptionType::parse("adj_app_info"), Some(SubscriptionType::AdjacentAppInfoSubscription));
        assert_eq!(SubscriptionType::parse("mobility_proc"), Some(SubscriptionType::MobilityProcedureSubscription));
        assert_eq!(SubscriptionType::parse("other"), None);
    }

    #[test]
    fn subscription_validation_names_fields() {
        let now = Utc::now();
        let sub = |v: serde_json::Value| -> AmsSubscription { serde_json::from_value(v).unwrap() };
        let field = |mut s: AmsSubscription| s.validate(now).err().map(|e| e.field);
        let base = json!({"subscriptionType": "MobilityProcedureSubscription", "callbackReference": "https://x.example/cb", "filterCriteria": {}});
        let mut ok = sub(base.clone());
        assert!(ok.validate(now).is_ok());
        let AmsSubscription::MobilityProcedure(m) = &ok else { panic!() };
        assert_eq!(m.filter_criteria.as_ref().unwrap().mobility_status, vec![MobilityStatus::InterhostMoveoutTriggered], "default filled in");
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            sub(b)
        };
        assert_eq!(field(with("callbackReference", json!("ftp://x/cb"))).as_deref(), Some("callbackReference"));
        assert_eq!(field(with("callbackReference", json!("http:///cb"))).as_deref(), Some("callbackReference"));
        assert_eq!(field(with("callbackReference", json!("http://a b/"))).as_deref(), Some("callbackReference"));
        let past = TimeStamp::from(now - chrono::Duration::seconds(1));
        assert_eq!(field(with("expiryDeadline", serde_json::to_value(past).unwrap())).as_deref(), Some("expiryDeadline"));
        let future = TimeStamp::from(now + chrono::Duration::seconds(60));
        assert_eq!(field(with("expiryDeadline", serde_json::to_value(future).unwrap())), None);
        assert_eq!(field(with("expiryDeadline", json!({"seconds": 1, "nanoSeconds": 2_000_000_000u64}))).as_deref(), Some("expiryDeadline.nanoSeconds"));
        assert_eq!(field(with("websockNotifConfig", json!({"requestWebsocketUri": true}))).as_deref(), Some("websockNotifConfig"));
        assert_eq!(
            field(with("filterCriteria", json!({"associateId": [{"type": "UE_IPv4_ADDRESS", "value": "x"}]}))).as_deref(),
            Some("filterCriteria.associateId[0].value")
        );
        let mut no_filter = base.clone();
        no_filter.as_object_mut().unwrap().remove("filterCriteria");
        assert_eq!(field(sub(no_filter)).as_deref(), Some("filterCriteria"));
        let mut no_cb = base;
        no_cb.as_object_mut().unwrap().remove("callbackReference");
        assert_eq!(field(sub(no_cb)).as_deref(), Some("callbackReference"));
    }

    #[test]
    fn registration_validation_names_fields() {
        let reg = |v: serde_json::Value| -> RegistrationInfo { serde_json::from_value(v).unwrap() };
        let id = Uid::random().to_string();
        let ok = reg(json!({"serviceConsumerId": {"appInstanceId": id}, "deviceInformation": [
            {"associateId": {"type": "UE_IPv4_ADDRESS", "value": "10.0.0.7"}, "appMobilityServiceLevel": "APP_MOBILITY_WITH_CONFIRMATION"}]}));
        assert_eq!(ok.validate().ok(), Some(id.as_str()));
        let err = |v| reg(v).validate().err().map(|e| e.field);
        assert_eq!(err(json!({"serviceConsumerId": {}})).as_deref(), Some("serviceConsumerId.appInstanceId"));
        assert_eq!(err(json!({"serviceConsumerId": {"appInstanceId": id, "mepId": "m"}})).as_deref(), Some("serviceConsumerId.mepId"));
        assert_eq!(
            err(json!({"serviceConsumerId": {"appInstanceId": id}, "deviceInformation": [{"associateId": {"type": "UE_IPV6_ADDRESS", "value": "10.0.0.7"}}]}))
                .as_deref(),
            Some("deviceInformation[0].associateId.value")
        );
        assert_eq!(
            err(json!({"serviceConsumerId": {"appInstanceId": id}, "deviceInformation": [
                {"associateId": {"type": "UE_IPv4_ADDRESS", "value": "10.0.0.7"}}, {"associateId": {"type": "UE_IPv4_ADDRESS", "value": "10.0.0.7"}}]}))
            .as_deref(),
            Some("deviceInformation[1].associateId")
        );
        assert!(serde_json::from_value::<RegistrationInfo>(json!({"serviceConsumerId": {"appInstanceId": id}, "extra": 1})).is_err(), "unknown fields refused");
        assert!(serde_json::from_value::<AssociateId>(json!({"type": "IMSI", "value": "1"})).is_err(), "unknown associate id type");
        let spec = AmsRegistrationSpec {
            app_instance_id: Uid::random(),
            app_id: Uid::random(),
            device_information: ok.device_information.clone(),
            expiry_time: None,
            expires_at: Some(Utc::now()),
        };
        assert!(spec.expired(Utc::now()));
        assert!(spec.device(&ip("10.0.0.7")).is_some() && spec.device(&ip("10.0.0.8")).is_none());
        let w = spec.to_wire(Uid::nil());
        assert_eq!(w.service_consumer_id.app_instance_id, Some(spec.app_instance_id.to_string()));
    }

    #[test]
    fn timestamps_roundtrip() {
        let t = Utc::now();
        let ts = TimeStamp::from(t);
        assert_eq!(ts.to_datetime(), Some(t));
        assert!(TimeStamp { seconds: u64::MAX, nano_seconds: 0 }.validate().is_err());
    }
}
