//! Wire shapes of the standard APIs the adapter reads (only the fields it uses), and conversions
//! to the crate's types. Kept apart so the adapter and the callback decoder agree on them.

use op_types::specs::GeoPoint;
use serde::Deserialize;

/// CAMARA `ErrorInfo` or 3GPP `ProblemDetails`: whichever fields the body has.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
    pub title: Option<String>,
    pub detail: Option<String>,
    pub cause: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl ErrorBody {
    /// The most useful one-line message of an error answer.
    pub fn message(body: &[u8]) -> String {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => {
                let parts: Vec<String> = [
                    e.code.map(|c| format!("{c}:")),
                    e.message,
                    e.error.map(|c| format!("{c}:")),
                    e.error_description,
                    e.detail.or(e.title),
                    e.cause.map(|c| format!("({c})")),
                ]
                .into_iter()
                .flatten()
                .collect();
                if parts.is_empty() {
                    snippet(body)
                } else {
                    parts.join(" ")
                }
            }
            Err(_) => snippet(body),
        }
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if s.is_empty() {
        s = "(empty body)".into();
    }
    s
}

/// CAMARA `Point`.
#[derive(Debug, Deserialize)]
pub(crate) struct CamaraPoint {
    pub latitude: f64,
    pub longitude: f64,
}

/// CAMARA `Area` (CIRCLE or POLYGON).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CamaraArea {
    pub area_type: String,
    pub center: Option<CamaraPoint>,
    pub radius: Option<f64>,
    #[serde(default)]
    pub boundary: Vec<CamaraPoint>,
}

/// CAMARA location retrieval answer.
#[derive(Debug, Deserialize)]
pub(crate) struct CamaraLocation {
    pub area: CamaraArea,
}

/// CAMARA location verification answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerifyLocationResponse {
    pub verification_result: String,
    pub match_rate: Option<u8>,
}

/// TS 29.572 `GeographicalCoordinates`.
#[derive(Debug, Deserialize)]
pub(crate) struct Coords {
    pub lon: f64,
    pub lat: f64,
}

/// TS 29.572 `GeographicArea` (the shapes the adapter understands).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GeographicArea {
    pub shape: String,
    pub point: Option<Coords>,
    pub uncertainty: Option<f64>,
    #[serde(default)]
    pub point_list: Vec<Coords>,
}

/// TS 29.122 `LocationInfo`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LocationInfo {
    pub cell_id: Option<String>,
    pub tracking_area_id: Option<String>,
    pub geographic_area: Option<GeographicArea>,
}

/// TS 29.122 `PdnConnectionInformation`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PdnConnectionInformation {
    pub status: String,
    pub ipv4_addr: Option<String>,
    #[serde(default)]
    pub ipv6_addrs: Vec<String>,
}

/// TS 29.122 `MonitoringEventReport`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MonitoringEventReport {
    pub monitoring_type: String,
    pub msisdn: Option<String>,
    pub external_id: Option<String>,
    pub location_info: Option<LocationInfo>,
    #[serde(default)]
    pub pdn_conn_info_list: Vec<PdnConnectionInformation>,
}

/// TS 29.122 `PlmnId` (TS29122_CommonData).
#[derive(Debug, Deserialize)]
pub(crate) struct PlmnId {
    pub mcc: String,
    pub mnc: String,
}

impl PlmnId {
    /// `mcc` followed by `mnc`, when both are digit strings of the lengths TS 29.571 allows.
    pub fn joined(&self) -> Option<String> {
        let digits = |s: &str, lens: &[usize]| {
            lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
        };
        (digits(&self.mcc, &[3]) && digits(&self.mnc, &[2, 3]))
            .then(|| format!("{}{}", self.mcc, self.mnc))
    }
}

/// The `ROAMING_STATUS` fields of a TS 29.122 `MonitoringEventReport` (kept apart from
/// [`MonitoringEventReport`] so a malformed `plmnId` never breaks location notifications).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoamingReport {
    /// Omitted means not roaming (TS 29.122: "Set to false or omitted otherwise").
    pub roaming_status: Option<bool>,
    pub plmn_id: Option<PlmnId>,
}

/// TS 29.122 `MonitoringNotification`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MonitoringNotification {
    pub subscription: String,
    #[serde(default)]
    pub monitoring_event_reports: Vec<MonitoringEventReport>,
}

/// Mean Earth radius, metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Haversine distance, metres.
pub(crate) fn distance_m(a: GeoPoint, b: GeoPoint) -> f64 {
    let (p1, p2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dp = (b.latitude - a.latitude).to_radians();
    let dl = (b.longitude - a.longitude).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// A circle covering a polygon: vertex centroid and the farthest vertex.
pub(crate) fn polygon_circle(points: &[GeoPoint]) -> Option<(GeoPoint, f64)> {
    if points.is_empty() {
        return None;
    }
    let n = points.len() as f64;
    let centre = GeoPoint {
        latitude: points.iter().map(|p| p.latitude).sum::<f64>() / n,
        longitude: points.iter().map(|p| p.longitude).sum::<f64>() / n,
    };
    let radius = points.iter().map(|p| distance_m(centre, *p)).fold(0.0, f64::max);
    Some((centre, radius))
}

impl CamaraArea {
    /// Centre and radius of the area (a polygon is covered by a circle).
    pub fn circle(&self) -> Option<(GeoPoint, f64)> {
        match self.area_type.as_str() {
            "CIRCLE" => {
                let c = self.center.as_ref()?;
                Some((GeoPoint { latitude: c.latitude, longitude: c.longitude }, self.radius?))
            }
            "POLYGON" => {
                let pts: Vec<GeoPoint> =
                    self.boundary.iter().map(|p| GeoPoint { latitude: p.latitude, longitude: p.longitude }).collect();
                polygon_circle(&pts)
            }
            _ => None,
        }
    }
}

impl GeographicArea {
    /// Centre and radius of the area (point shapes; a polygon is covered by a circle).
    pub fn circle(&self) -> Option<(GeoPoint, f64)> {
        match self.shape.as_str() {
            "POINT" | "POINT_UNCERTAINTY_CIRCLE" | "POINT_UNCERTAINTY_ELLIPSE" | "POINT_ALTITUDE"
            | "POINT_ALTITUDE_UNCERTAINTY" => {
                let p = self.point.as_ref()?;
                Some((GeoPoint { latitude: p.lat, longitude: p.lon }, self.uncertainty.unwrap_or(0.0)))
            }
            "POLYGON" => {
                let pts: Vec<GeoPoint> =
                    self.point_list.iter().map(|p| GeoPoint { latitude: p.lat, longitude: p.lon }).collect();
                polygon_circle(&pts)
            }
            _ => None,
        }
    }
}

/// The last path segment of a resource link (the id in `.../subscriptions/{id}`).
pub(crate) fn last_segment(link: &str) -> &str {
    link.trim_end_matches('/').rsplit('/').next().unwrap_or(link)
}

/// `BitRate` (TS 29.571, e.g. `"100 Mbps"`) in Mbit/s.
pub(crate) fn parse_bit_rate(s: &str) -> Option<f64> {
    let (value, unit) = s.trim().split_once(' ')?;
    let v: f64 = value.parse().ok()?;
    let factor = match unit {
        "bps" => 1e-6,
        "Kbps" => 1e-3,
        "Mbps" => 1.0,
        "Gbps" => 1e3,
        "Tbps" => 1e6,
        _ => return None,
    };
    Some(v * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_rates() {
        assert_eq!(parse_bit_rate("100 Mbps"), Some(100.0));
        assert_eq!(parse_bit_rate("1.5 Gbps"), Some(1500.0));
        assert_eq!(parse_bit_rate("500 Kbps"), Some(0.5));
        assert_eq!(parse_bit_rate("100Mbps"), None);
        assert_eq!(parse_bit_rate("1 Pbps"), None);
    }

    #[test]
    fn segments() {
        assert_eq!(last_segment("http://h/3gpp-monitoring-event/v1/op/subscriptions/abc"), "abc");
        assert_eq!(last_segment("http://h/x/abc/"), "abc");
        assert_eq!(last_segment("abc"), "abc");
    }

    #[test]
    fn error_messages() {
        let camara = br#"{"status":404,"code":"IDENTIFIER_NOT_FOUND","message":"Device identifier not found."}"#;
        assert_eq!(ErrorBody::message(camara), "IDENTIFIER_NOT_FOUND: Device identifier not found.");
        let problem = br#"{"status":400,"title":"Bad Request","detail":"/monitoringType: bad","cause":"INVALID_MSG_FORMAT"}"#;
        assert_eq!(ErrorBody::message(problem), "/monitoringType: bad (INVALID_MSG_FORMAT)");
        assert_eq!(ErrorBody::message(b"oops"), "oops");
        assert_eq!(ErrorBody::message(b""), "(empty body)");
    }

    #[test]
    fn plmn_ids() {
        let p = |mcc: &str, mnc: &str| {
            PlmnId {
                mcc: mcc.into(),
                mnc: mnc.into(),
            }
            .joined()
        };
        assert_eq!(p("208", "01").as_deref(), Some("20801"));
        assert_eq!(p("310", "410").as_deref(), Some("310410"));
        assert_eq!(p("20", "01"), None);
        assert_eq!(p("208", "1"), None);
        assert_eq!(p("208", "0a"), None);
    }

    #[test]
    fn polygon_is_covered() {
        let pts = [
            GeoPoint { latitude: 0.0, longitude: 0.0 },
            GeoPoint { latitude: 0.0, longitude: 0.01 },
            GeoPoint { latitude: 0.01, longitude: 0.0 },
            GeoPoint { latitude: 0.01, longitude: 0.01 },
        ];
        let (c, r) = polygon_circle(&pts).unwrap();
        assert!((c.latitude - 0.005).abs() < 1e-12 && (c.longitude - 0.005).abs() < 1e-12);
        assert!(pts.iter().all(|p| distance_m(c, *p) <= r + 1e-6));
        assert!(polygon_circle(&[]).is_none());
    }
}
