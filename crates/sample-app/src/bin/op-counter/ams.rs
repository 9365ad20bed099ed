//! The MEC 021 (Application Mobility Service) bodies op-counter sends and receives, as pure
//! functions: registration and subscription bodies, and parsing of notifications (the
//! AdvantEDGE variant: `associateId` a list, `targetAppInfo.commInterface.ipAddresses`).
//! Parsing is lenient where variants differ (a status as its name or its number 1..3, a port as
//! a number or a string, one associate id instead of a list) and strict where input would reach
//! a URL (hosts and device addresses).

use std::net::IpAddr;

use serde_json::{json, Value};

/// The statuses op-counter subscribes to.
pub const SUBSCRIBED_STATUSES: [&str; 3] =
    ["INTERHOST_MOVEOUT_TRIGGERED", "INTERHOST_MOVEOUT_COMPLETED", "INTERHOST_MOVEOUT_FAILED"];

/// Where a device's move stands (MEC 021 MobilityStatus).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MobilityStatus {
    /// The platform is about to move the device: transfer its state (or refuse).
    Triggered,
    /// The device was switched to the target.
    Completed,
    /// The move was cancelled: the device stays here.
    Failed,
}

impl MobilityStatus {
    fn parse(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => match s.as_str() {
                "INTERHOST_MOVEOUT_TRIGGERED" => Some(Self::Triggered),
                "INTERHOST_MOVEOUT_COMPLETED" => Some(Self::Completed),
                "INTERHOST_MOVEOUT_FAILED" => Some(Self::Failed),
                _ => None,
            },
            // MEC 021 v2.1.1 numbers them.
            Value::Number(n) => match n.as_u64() {
                Some(1) => Some(Self::Triggered),
                Some(2) => Some(Self::Completed),
                Some(3) => Some(Self::Failed),
                _ => None,
            },
            _ => None,
        }
    }
}

/// One address of the target instance's communication interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    /// `http://host:port`, the base of the target's URLs.
    pub fn base_url(&self) -> String {
        format!("http://{}", op_sample_app::client::authority(&self.host, self.port))
    }
}

/// A notification, as far as op-counter cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// A `TestNotification` (the subscription works).
    Test,
    /// Another notification type, ignored.
    Other(String),
    /// The platform's `UeIpChangeNotification`: a device got a new address.
    Readdressed {
        /// Its address as known here.
        old: String,
        /// Its new address.
        new: String,
    },
    /// A `MobilityProcedureNotification`.
    Mobility {
        /// The devices concerned (normalized addresses); associate ids of other kinds are left out.
        devices: Vec<String>,
        /// What happens to them.
        status: MobilityStatus,
        /// The target instance's id, when given.
        target_instance: Option<String>,
        /// The target's addresses, in the order given (to try in that order).
        targets: Vec<Endpoint>,
    },
}

/// A device's address in its normalized form, or `None` if `s` is not an IP address.
pub fn normalize_device(s: &str) -> Option<String> {
    s.trim().parse::<IpAddr>().ok().map(|ip| ip.to_string())
}

/// Whether `host` may go in a URL's authority as it is: an IP address or a DNS name.
fn valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

fn parse_port(v: &Value) -> Option<u16> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    u16::try_from(n).ok().filter(|p| *p > 0)
}

/// Parses a notification body. `Err` (answered 400): not JSON, no `notificationType`, or a
/// mobility notification without a known `mobilityStatus` or with malformed parts.
pub fn parse_notification(body: &[u8]) -> Result<Notification, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let kind = v.get("notificationType").and_then(Value::as_str).ok_or("no notificationType")?;
    match kind {
        "TestNotification" => return Ok(Notification::Test),
        "UeIpChangeNotification" => {
            let address = |v: Option<&Value>| v.and_then(|a| a.get("value")).and_then(Value::as_str).and_then(normalize_device);
            let old = address(v.get("associateId").and_then(|a| a.get(0))).ok_or("associateId: no device address")?;
            let new = address(v.get("newAssociateId")).ok_or("newAssociateId: no device address")?;
            return Ok(Notification::Readdressed { old, new });
        }
        "MobilityProcedureNotification" => {}
        other => return Ok(Notification::Other(other.to_string())),
    }
    let status = v
        .get("mobilityStatus")
        .and_then(MobilityStatus::parse)
        .ok_or("mobilityStatus: missing or not one of INTERHOST_MOVEOUT_TRIGGERED, _COMPLETED, _FAILED")?;
    let ids: Vec<&Value> = match v.get("associateId") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        Some(_) => return Err("associateId: not a list".into()),
    };
    let mut devices = Vec::new();
    for id in ids {
        let value = id.get("value").and_then(Value::as_str).ok_or("associateId: an entry without a value")?;
        // Identifiers other than addresses (GTP TEIDs, ...) do not name a device here.
        if let Some(d) = normalize_device(value) {
            if !devices.contains(&d) {
                devices.push(d);
            }
        }
    }
    let target = v.get("targetAppInfo").filter(|t| !t.is_null());
    let target_instance = target.and_then(|t| t.get("appInstanceId")).and_then(Value::as_str).map(str::to_string);
    let mut targets = Vec::new();
    let addresses = target.and_then(|t| t.get("commInterface")).and_then(|c| c.get("ipAddresses"));
    match addresses {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for addr in a {
                let host = addr.get("host").and_then(Value::as_str).map(str::trim).unwrap_or("");
                let port = addr.get("port").and_then(parse_port);
                match (valid_host(host), port) {
                    (true, Some(port)) => targets.push(Endpoint { host: host.to_string(), port }),
                    _ => return Err(format!("targetAppInfo.commInterface.ipAddresses: bad address {addr}")),
                }
            }
        }
        Some(_) => return Err("targetAppInfo.commInterface.ipAddresses: not a list".into()),
    }
    Ok(Notification::Mobility { devices, status, target_instance, targets })
}

/// What the registration says about one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceReg {
    /// The device's address.
    pub device: String,
    /// The app refused to move it (`APP_MOBILITY_NOT_ALLOWED`).
    pub refused: bool,
    /// Its state was handed to the target (`USER_CONTEXT_TRANSFER_COMPLETED`).
    pub transferred: bool,
}

/// The MEC 021 AssociateId of a device address.
pub fn associate_id(device: &str) -> Value {
    let kind = match device.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => "UE_IPv6_ADDRESS",
        _ => "UE_IPv4_ADDRESS",
    };
    json!({"type": kind, "value": device})
}

/// One entry of a registration's `deviceInformation`.
pub fn device_information(d: &DeviceReg) -> Value {
    json!({
        "associateId": associate_id(&d.device),
        "appMobilityServiceLevel": if d.refused { "APP_MOBILITY_NOT_ALLOWED" } else { "APP_MOBILITY_WITH_CONFIRMATION" },
        "contextTransferState": if d.transferred { "USER_CONTEXT_TRANSFER_COMPLETED" } else { "NOT_TRANSFERRED" },
    })
}

/// The whole RegistrationInfo: without `id` the body that creates the registration, with it the
/// body that replaces it. Devices are listed in address order, so equal states give equal bodies.
pub fn registration_body(instance: &str, id: Option<&str>, devices: &[DeviceReg]) -> Value {
    let mut sorted: Vec<&DeviceReg> = devices.iter().collect();
    sorted.sort_by(|a, b| a.device.cmp(&b.device));
    let mut body = json!({
        "serviceConsumerId": {"appInstanceId": instance},
        "deviceInformation": sorted.into_iter().map(device_information).collect::<Vec<_>>(),
    });
    if let Some(id) = id {
        body["appMobilityServiceId"] = json!(id);
    }
    body
}

/// The subscription to this instance's mobility procedures.
pub fn subscription_body(instance: &str, callback: &str) -> Value {
    json!({
        "subscriptionType": "MobilityProcedureSubscription",
        "callbackReference": callback,
        "filterCriteria": {"appInstanceId": instance, "mobilityStatus": SUBSCRIBED_STATUSES},
    })
}

/// Where notifications reach this instance.
pub fn callback_url(host: &str, port: u16) -> String {
    format!("http://{}/ams/notify", op_sample_app::client::authority(host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triggered() -> Value {
        json!({
            "notificationType": "MobilityProcedureNotification",
            "timeStamp": {"seconds": 1, "nanoSeconds": 0},
            "associateId": [{"type": "UE_IPv4_ADDRESS", "value": "10.0.0.7"}, {"type": "UE_IPv4_ADDRESS", "value": " 10.0.0.8"}],
            "mobilityStatus": "INTERHOST_MOVEOUT_TRIGGERED",
            "targetAppInfo": {"appInstanceId": "b", "commInterface": {"ipAddresses": [{"host": "10.88.0.5", "port": 8080}, {"host": "edge-b.local", "port": "9090"}]}},
        })
    }

    fn parse(v: &Value) -> Result<Notification, String> {
        parse_notification(v.to_string().as_bytes())
    }

    #[test]
    fn parses_a_trigger() {
        let n = parse(&triggered()).unwrap();
        assert_eq!(
            n,
            Notification::Mobility {
                devices: vec!["10.0.0.7".into(), "10.0.0.8".into()],
                status: MobilityStatus::Triggered,
                target_instance: Some("b".into()),
                targets: vec![
                    Endpoint { host: "10.88.0.5".into(), port: 8080 },
                    Endpoint { host: "edge-b.local".into(), port: 9090 }
                ],
            }
        );
        let Notification::Mobility { targets, .. } = n else { unreachable!() };
        assert_eq!(targets[0].base_url(), "http://10.88.0.5:8080");
    }

    #[test]
    fn parses_variants() {
        // Numbered statuses (MEC 021 v2.1.1), one associate id, IPv6, no target.
        for (status, want) in
            [(1, MobilityStatus::Triggered), (2, MobilityStatus::Completed), (3, MobilityStatus::Failed)]
        {
            let v = json!({"notificationType": "MobilityProcedureNotification", "mobilityStatus": status,
                "associateId": {"type": 2, "value": "FD00::0:1"}});
            let Ok(Notification::Mobility { devices, status, targets, target_instance }) = parse(&v) else {
                panic!("{v}")
            };
            assert_eq!((devices, status, targets, target_instance), (vec!["fd00::1".to_string()], want, vec![], None));
        }
        // Other identifiers are no devices; duplicates count once.
        let v = json!({"notificationType": "MobilityProcedureNotification", "mobilityStatus": "INTERHOST_MOVEOUT_FAILED",
            "associateId": [{"type": "GTP_TEID", "value": "0x12"}, {"type": "UE_IPv4_ADDRESS", "value": "10.0.0.1"}, {"type": "UE_IPv4_ADDRESS", "value": "10.0.0.1"}]});
        let Ok(Notification::Mobility { devices, .. }) = parse(&v) else { panic!() };
        assert_eq!(devices, vec!["10.0.0.1".to_string()]);
        assert_eq!(parse(&json!({"notificationType": "TestNotification"})), Ok(Notification::Test));
        assert_eq!(
            parse(&json!({"notificationType": "UeIpChangeNotification", "associateId": [{"type": "UE_IPv4_ADDRESS", "value": "10.45.0.5"}],
                "newAssociateId": {"type": "UE_IPv4_ADDRESS", "value": "10.45.1.5"}})),
            Ok(Notification::Readdressed { old: "10.45.0.5".into(), new: "10.45.1.5".into() })
        );
        assert!(parse(&json!({"notificationType": "UeIpChangeNotification", "associateId": []})).is_err());
        assert_eq!(
            parse(&json!({"notificationType": "AdjacentAppInfoNotification"})),
            Ok(Notification::Other("AdjacentAppInfoNotification".into()))
        );
    }

    #[test]
    fn refuses_bad_notifications() {
        let mut bad = vec![json!({}), json!([1]), json!({"notificationType": 3})];
        for (path, value) in [
            ("/mobilityStatus", json!("MOVED")),
            ("/mobilityStatus", json!(4)),
            ("/associateId", json!("10.0.0.7")),
            ("/associateId/0", json!({"type": "UE_IPv4_ADDRESS"})),
            ("/targetAppInfo/commInterface/ipAddresses", json!({"host": "h", "port": 1})),
            ("/targetAppInfo/commInterface/ipAddresses/0/port", json!(0)),
            ("/targetAppInfo/commInterface/ipAddresses/0/port", json!(70000)),
            ("/targetAppInfo/commInterface/ipAddresses/0/host", json!("evil/path")),
            ("/targetAppInfo/commInterface/ipAddresses/0/host", json!("a@b")),
            ("/targetAppInfo/commInterface/ipAddresses/0/host", json!("")),
        ] {
            let mut v = triggered();
            *v.pointer_mut(path).unwrap() = value;
            bad.push(v);
        }
        let mut v = triggered();
        v.as_object_mut().unwrap().remove("mobilityStatus");
        bad.push(v);
        for v in bad {
            assert!(parse(&v).is_err(), "{v}");
        }
        assert!(parse_notification(b"{not json").is_err());
        assert!(parse_notification(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn builds_registrations() {
        let devices = [
            DeviceReg { device: "10.0.0.9".into(), refused: false, transferred: true },
            DeviceReg { device: "10.0.0.10".into(), refused: true, transferred: false },
            DeviceReg { device: "fd00::1".into(), refused: false, transferred: false },
        ];
        assert_eq!(
            registration_body("inst-a", Some("ams-1"), &devices),
            json!({
                "appMobilityServiceId": "ams-1",
                "serviceConsumerId": {"appInstanceId": "inst-a"},
                "deviceInformation": [
                    {"associateId": {"type": "UE_IPv4_ADDRESS", "value": "10.0.0.10"},
                     "appMobilityServiceLevel": "APP_MOBILITY_NOT_ALLOWED", "contextTransferState": "NOT_TRANSFERRED"},
                    {"associateId": {"type": "UE_IPv4_ADDRESS", "value": "10.0.0.9"},
                     "appMobilityServiceLevel": "APP_MOBILITY_WITH_CONFIRMATION", "contextTransferState": "USER_CONTEXT_TRANSFER_COMPLETED"},
                    {"associateId": {"type": "UE_IPv6_ADDRESS", "value": "fd00::1"},
                     "appMobilityServiceLevel": "APP_MOBILITY_WITH_CONFIRMATION", "contextTransferState": "NOT_TRANSFERRED"},
                ],
            })
        );
        assert_eq!(
            registration_body("inst-a", None, &[]),
            json!({"serviceConsumerId": {"appInstanceId": "inst-a"}, "deviceInformation": []})
        );
    }

    #[test]
    fn builds_subscriptions() {
        assert_eq!(callback_url("10.88.0.7", 8080), "http://10.88.0.7:8080/ams/notify");
        assert_eq!(callback_url("fd00::7", 80), "http://[fd00::7]:80/ams/notify");
        assert_eq!(
            subscription_body("inst-a", "http://h:1/ams/notify"),
            json!({
                "subscriptionType": "MobilityProcedureSubscription",
                "callbackReference": "http://h:1/ams/notify",
                "filterCriteria": {"appInstanceId": "inst-a", "mobilityStatus": [
                    "INTERHOST_MOVEOUT_TRIGGERED", "INTERHOST_MOVEOUT_COMPLETED", "INTERHOST_MOVEOUT_FAILED"]},
            })
        );
    }
}
