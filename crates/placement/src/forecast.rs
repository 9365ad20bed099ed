//! Usage forecasts from recorded series (OPG.02 operator criteria: network and edge usage
//! forecasts).
//!
//! The method is Holt's linear exponential smoothing: a level and a trend, each updated as a
//! weighted average of what the newest sample says and what was believed before,
//!
//! ```text
//! level_t = alpha * x_t + (1 - alpha) * (level_{t-1} + trend_{t-1})
//! trend_t = beta * (level_t - level_{t-1}) + (1 - beta) * trend_{t-1}
//! forecast(t + h) = level_t + h * trend_t
//! ```
//!
//! started from the first sample (level) and the first difference (trend). It follows a
//! steady rise or fall without lagging behind it as a moving average does, and forgets old
//! samples geometrically. Forecasts of a load are clamped to 0..=1.

/// Smoothing factors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Holt {
    /// Weight of the newest sample in the level, 0..=1.
    pub alpha: f64,
    /// Weight of the newest change in the trend, 0..=1.
    pub beta: f64,
}

impl Default for Holt {
    /// Responsive to a change within a few samples, steady against noise.
    fn default() -> Self {
        Self { alpha: 0.5, beta: 0.3 }
    }
}

impl Holt {
    /// The value expected `horizon` samples after the last of `series` (None when empty).
    pub fn forecast(&self, series: &[f64], horizon: f64) -> Option<f64> {
        let (&first, rest) = series.split_first()?;
        let mut level = first;
        let mut trend = rest.first().map_or(0.0, |x| x - first);
        for &x in rest {
            let prev = level;
            level = self.alpha * x + (1.0 - self.alpha) * (level + trend);
            trend = self.beta * (level - prev) + (1.0 - self.beta) * trend;
        }
        Some(level + horizon * trend)
    }

    /// A load forecast, clamped to 0..=1 (0 when there is no history).
    pub fn load(&self, series: &[f64], horizon: f64) -> f64 {
        self.forecast(series, horizon).unwrap_or(0.0).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_line_exactly() {
        let series: Vec<f64> = (0..20).map(|i| 0.1 + 0.02 * i as f64).collect();
        let f = Holt::default().forecast(&series, 5.0).unwrap();
        assert!((f - (0.1 + 0.02 * 24.0)).abs() < 1e-9, "{f}");
    }

    #[test]
    fn constant_stays_constant_and_noise_is_damped() {
        assert_eq!(Holt::default().forecast(&[0.4; 10], 3.0), Some(0.4));
        let noisy: Vec<f64> = (0..40).map(|i| if i % 2 == 0 { 0.3 } else { 0.5 }).collect();
        let f = Holt::default().forecast(&noisy, 1.0).unwrap();
        assert!((0.25..=0.55).contains(&f), "{f}");
    }

    #[test]
    fn a_rise_is_anticipated_and_loads_are_clamped() {
        let rising = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let h = Holt::default();
        assert!(h.forecast(&rising, 2.0).unwrap() > 0.6, "ahead of the last sample");
        assert_eq!(h.load(&rising, 100.0), 1.0);
        assert_eq!(h.load(&[0.5, 0.3, 0.1], 100.0), 0.0);
        assert_eq!(h.load(&[], 1.0), 0.0);
        assert_eq!(h.forecast(&[], 1.0), None);
    }
}
