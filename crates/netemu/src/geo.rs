//! Geometry the location APIs need: great-circle distance and how much of the network's
//! location circle a requested circle covers (CAMARA location verification's match rate).

use std::f64::consts::PI;

/// Mean Earth radius, metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle (haversine) distance between two WGS84 points in degrees, metres.
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// Area of the intersection of two circles of radii `r1`, `r2` whose centres are `d` apart.
pub fn circle_overlap_area(r1: f64, r2: f64, d: f64) -> f64 {
    if d >= r1 + r2 {
        return 0.0;
    }
    if d <= (r1 - r2).abs() {
        let r = r1.min(r2);
        return PI * r * r;
    }
    let a1 = ((d * d + r1 * r1 - r2 * r2) / (2.0 * d * r1)).clamp(-1.0, 1.0).acos();
    let a2 = ((d * d + r2 * r2 - r1 * r1) / (2.0 * d * r2)).clamp(-1.0, 1.0).acos();
    let k = ((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2)).max(0.0).sqrt();
    r1 * r1 * a1 + r2 * r2 * a2 - 0.5 * k
}

/// CAMARA location verification outcome for a network circle `N` (radius `network_r`) and a
/// requested circle `R` (radius `request_r`) `d` metres apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    /// `N` lies inside `R`.
    True,
    /// `N` and `R` do not overlap.
    False,
    /// They overlap partly; `(R ∩ N) / N` in percent, 1..=99.
    Partial(u8),
}

/// Verification per the CAMARA definition: TRUE when the network's area is fully within the
/// requested one, FALSE when they do not overlap, PARTIAL with a match rate otherwise.
pub fn verify(network_r: f64, request_r: f64, d: f64) -> Match {
    if d + network_r <= request_r {
        return Match::True;
    }
    if d >= network_r + request_r {
        return Match::False;
    }
    let rate = circle_overlap_area(network_r, request_r, d) / (PI * network_r * network_r) * 100.0;
    // The rounded value is clamped into 1..=99, so the cast cannot truncate.
    Match::Partial(rate.round().clamp(1.0, 99.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_paris_lyon() {
        let d = distance_m(48.8566, 2.3522, 45.7640, 4.8357);
        assert!((d - 392_000.0).abs() < 3_000.0, "{d}");
        assert_eq!(distance_m(1.0, 2.0, 1.0, 2.0), 0.0);
    }

    #[test]
    fn overlap_limits() {
        assert_eq!(circle_overlap_area(1.0, 1.0, 3.0), 0.0);
        assert!((circle_overlap_area(1.0, 2.0, 0.5) - PI).abs() < 1e-9);
        let half = circle_overlap_area(1.0, 1.0, 1e-9);
        assert!((half - PI).abs() < 1e-6);
    }

    #[test]
    fn verification() {
        assert_eq!(verify(500.0, 2000.0, 100.0), Match::True);
        assert_eq!(verify(500.0, 500.0, 5000.0), Match::False);
        match verify(500.0, 500.0, 500.0) {
            Match::Partial(p) => assert!((30..=45).contains(&p), "{p}"),
            m => panic!("{m:?}"),
        }
        // The requested circle inside the network's: partial, by the area ratio.
        assert_eq!(verify(1000.0, 500.0, 0.0), Match::Partial(25));
    }
}
