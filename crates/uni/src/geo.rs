//! Small geodesy helpers on WGS84 points.

use op_types::specs::GeoPoint;

/// Mean Earth radius, km.
const EARTH_KM: f64 = 6371.0088;

/// Great-circle distance in km (haversine).
pub fn distance_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let (la1, la2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dla = la2 - la1;
    let dlo = (b.longitude - a.longitude).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * EARTH_KM * h.sqrt().min(1.0).asin()
}

/// Whether `p` lies inside `polygon` (ray casting on lat/lon; fine for zone-sized areas).
pub fn in_polygon(p: GeoPoint, polygon: &[GeoPoint]) -> bool {
    if polygon.len() < 3 {
        return false;
    }
    let mut inside = false;
    let mut j = polygon.len() - 1;
    for i in 0..polygon.len() {
        let (a, b) = (polygon[i], polygon[j]);
        if (a.latitude > p.latitude) != (b.latitude > p.latitude) {
            let x = (b.longitude - a.longitude) * (p.latitude - a.latitude) / (b.latitude - a.latitude) + a.longitude;
            if p.longitude < x {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(latitude: f64, longitude: f64) -> GeoPoint {
        GeoPoint { latitude, longitude }
    }

    #[test]
    fn distances() {
        let paris = p(48.8566, 2.3522);
        let london = p(51.5074, -0.1278);
        let d = distance_km(paris, london);
        assert!((d - 343.5).abs() < 2.0, "{d}");
        assert_eq!(distance_km(paris, paris), 0.0);
    }

    #[test]
    fn polygons() {
        let square = [p(0.0, 0.0), p(0.0, 1.0), p(1.0, 1.0), p(1.0, 0.0)];
        assert!(in_polygon(p(0.5, 0.5), &square));
        assert!(!in_polygon(p(1.5, 0.5), &square));
        assert!(!in_polygon(p(0.5, 0.5), &square[..2]));
    }
}
