//! Callback receiver helper: turns the body of a 3GPP NEF `MonitoringNotification` (TS 29.122),
//! as POSTed to the `notificationDestination` given in [`crate::NetworkAdapter::subscribe`], into
//! [`NetworkEvent`]s. It does no I/O, so the platform can mount it on whichever HTTP server it runs
//! and answer `204 No Content` once the events are handed on.

use std::net::IpAddr;

use crate::wire::{last_segment, MonitoringEventReport, MonitoringNotification};
use crate::{DeviceRef, NetworkError, NetworkEvent, NetworkEventKind, NetworkLocation};

/// `MonitoringType` of location reports.
pub(crate) const LOCATION_REPORTING: &str = "LOCATION_REPORTING";
/// `MonitoringType` of PDN connection reports (a new IP address).
pub(crate) const PDN_CONNECTIVITY_STATUS: &str = "PDN_CONNECTIVITY_STATUS";
/// `MonitoringType` of roaming status reports (the adapter asks for one at a time and never subscribes to them).
pub(crate) const ROAMING_STATUS: &str = "ROAMING_STATUS";

fn device_of(report: &MonitoringEventReport) -> DeviceRef {
    DeviceRef {
        phone_number: report.msisdn.as_ref().map(|m| format!("+{}", m.trim_start_matches('+'))),
        network_access_identifier: report.external_id.clone(),
        ip: None,
    }
}

/// The location a report carries, when it has a geographic estimate (the adapter asks for one with
/// `reportingLocEstInd`); cell and tracking area come along.
pub(crate) fn location_of(report: &MonitoringEventReport) -> Option<NetworkLocation> {
    let info = report.location_info.as_ref()?;
    let (point, accuracy_m) = info.geographic_area.as_ref()?.circle()?;
    Some(NetworkLocation {
        cell_id: info.cell_id.clone(),
        tracking_area: info.tracking_area_id.clone(),
        point,
        accuracy_m,
    })
}

/// Decodes a `MonitoringNotification` JSON body into events, in report order.
///
/// `LOCATION_REPORTING` reports become [`NetworkEventKind::LocationChange`] (with `location` when
/// the report has a geographic area; otherwise `None`, and `locate` gives the position);
/// `PDN_CONNECTIVITY_STATUS` reports become one [`NetworkEventKind::IpChange`] per `CREATED`
/// connection with an address. Other monitoring types are skipped. The subscription id is the last
/// segment of the `subscription` link, as returned by `subscribe`.
pub fn decode_monitoring_notification(body: &[u8]) -> Result<Vec<NetworkEvent>, NetworkError> {
    let n: MonitoringNotification = serde_json::from_slice(body)
        .map_err(|e| NetworkError::Rejected(format!("not a TS 29.122 MonitoringNotification: {e}")))?;
    let subscription_id = last_segment(&n.subscription).to_string();
    let mut events = Vec::new();
    for report in &n.monitoring_event_reports {
        match report.monitoring_type.as_str() {
            LOCATION_REPORTING => events.push(NetworkEvent {
                subscription_id: subscription_id.clone(),
                device: device_of(report),
                kind: NetworkEventKind::LocationChange,
                location: location_of(report),
                ip: None,
            }),
            PDN_CONNECTIVITY_STATUS => {
                for conn in report.pdn_conn_info_list.iter().filter(|c| c.status == "CREATED") {
                    let ip = conn
                        .ipv4_addr
                        .iter()
                        .chain(conn.ipv6_addrs.iter())
                        .find_map(|a| a.parse::<IpAddr>().ok());
                    if let Some(ip) = ip {
                        events.push(NetworkEvent {
                            subscription_id: subscription_id.clone(),
                            device: device_of(report),
                            kind: NetworkEventKind::IpChange,
                            location: None,
                            ip: Some(ip),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_location_and_ip_reports() {
        let body = br#"{
          "subscription": "http://nef/3gpp-monitoring-event/v1/op/subscriptions/sub-1",
          "monitoringEventReports": [
            {"monitoringType": "LOCATION_REPORTING", "msisdn": "33612340001",
             "locationInfo": {"cellId": "c2", "trackingAreaId": "000002",
               "geographicArea": {"shape": "POINT_UNCERTAINTY_CIRCLE", "point": {"lon": 4.8, "lat": 45.7}, "uncertainty": 500}}},
            {"monitoringType": "PDN_CONNECTIVITY_STATUS", "externalId": "a@b",
             "pdnConnInfoList": [{"status": "RELEASED", "pdnType": "IPV4", "ipv4Addr": "10.45.0.1"},
                                 {"status": "CREATED", "pdnType": "IPV4", "ipv4Addr": "10.45.1.1"}]},
            {"monitoringType": "ROAMING_STATUS", "roamingStatus": true}
          ]}"#;
        let events = decode_monitoring_notification(body).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].subscription_id, "sub-1");
        assert_eq!(events[0].kind, NetworkEventKind::LocationChange);
        assert_eq!(events[0].device.phone_number.as_deref(), Some("+33612340001"));
        let loc = events[0].location.as_ref().unwrap();
        assert_eq!(loc.cell_id.as_deref(), Some("c2"));
        assert_eq!(loc.tracking_area.as_deref(), Some("000002"));
        assert_eq!(loc.accuracy_m, 500.0);
        assert_eq!(loc.point.latitude, 45.7);
        assert_eq!(events[1].kind, NetworkEventKind::IpChange);
        assert_eq!(events[1].ip, Some("10.45.1.1".parse().unwrap()));
        assert_eq!(events[1].device.network_access_identifier.as_deref(), Some("a@b"));
    }

    #[test]
    fn location_without_estimate_has_no_location() {
        let body = br#"{"subscription": "s", "monitoringEventReports": [
            {"monitoringType": "LOCATION_REPORTING", "locationInfo": {"cellId": "c1"}}]}"#;
        let events = decode_monitoring_notification(body).unwrap();
        assert_eq!(events.len(), 1);
        assert!(events[0].location.is_none());
    }

    #[test]
    fn malformed_body_is_rejected() {
        assert!(matches!(decode_monitoring_notification(b"{}"), Err(NetworkError::Rejected(_))));
        assert!(matches!(decode_monitoring_notification(b"nope"), Err(NetworkError::Rejected(_))));
    }
}
