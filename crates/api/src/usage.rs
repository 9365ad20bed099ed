//! Recorded edge usage: each cloudlet's load (vCPUs of its instances' flavors over its
//! capacity), sampled at a fixed period and kept for the last [`KEEP`] samples, so placement
//! can weigh where usage is heading, not only where it is (OPG.02 operator criteria: usage
//! forecasts). The forecast is Holt's linear smoothing ([`op_placement::forecast`]) over the
//! series, [`HORIZON`] samples ahead. In memory: after a restart the series fills again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use op_placement::forecast::Holt;
use op_types::specs::{CloudletObserved, CloudletSpec, FlavorSpec};
use op_types::{Kind, Name};

use crate::error::ApiError;
use crate::state::AppState;

/// Samples kept per cloudlet.
pub const KEEP: usize = 288;
/// How many sample periods ahead placement looks.
pub const HORIZON: f64 = 5.0;

/// Usage series per cloudlet.
#[derive(Default)]
pub struct Usage {
    series: Mutex<HashMap<Name, VecDeque<f64>>>,
}

impl Usage {
    /// Appends a load sample (0..=1) for `cloudlet`.
    pub fn record(&self, cloudlet: &Name, load: f64) {
        let mut m = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = m.entry(cloudlet.clone()).or_default();
        if s.len() == KEEP {
            s.pop_front();
        }
        s.push_back(load.clamp(0.0, 1.0));
    }

    /// The load expected [`HORIZON`] samples ahead (0 without history).
    pub fn forecast(&self, cloudlet: &Name) -> f64 {
        let mut m = self.series.lock().unwrap_or_else(|e| e.into_inner());
        m.get_mut(cloudlet).map_or(0.0, |s| Holt::default().load(s.make_contiguous(), HORIZON))
    }

    /// Forgets cloudlets that no longer exist.
    fn retain(&self, live: &[Name]) {
        self.series.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| live.contains(k));
    }
}

/// Samples every cloudlet's load every `every`, until the process ends.
pub async fn run(s: AppState, every: Duration) {
    loop {
        if let Err(e) = sample(&s).await {
            tracing::warn!(error = %e, "usage sample failed");
        }
        tokio::time::sleep(every).await;
    }
}

async fn sample(s: &AppState) -> Result<(), ApiError> {
    let (cloudlets, _) = s.repo.list::<CloudletSpec, CloudletObserved>(Kind::Cloudlet).await?;
    let (flavors, _) = s.repo.list::<FlavorSpec, ()>(Kind::Flavor).await?;
    let instances = crate::infra::all_instances(s).await?;
    // One pass over the instances, not one per cloudlet.
    let vcpus_of: HashMap<&Name, u32> = flavors.iter().map(|f| (&f.metadata.name, f.spec.vcpus)).collect();
    let mut used: HashMap<&Name, u32> = HashMap::new();
    for i in &instances {
        *used.entry(&i.spec.cloudlet).or_default() += vcpus_of.get(&i.spec.flavor).copied().unwrap_or(0);
    }
    for cl in &cloudlets {
        let vcpus = used.get(&cl.metadata.name).copied().unwrap_or(0);
        s.usage.record(&cl.metadata.name, f64::from(vcpus) / f64::from(cl.spec.capacity.vcpus.max(1)));
    }
    s.usage.retain(&cloudlets.iter().map(|c| c.metadata.name.clone()).collect::<Vec<_>>());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_bounded_and_forecast_ahead() {
        let u = Usage::default();
        let c = Name::new("c1").unwrap();
        assert_eq!(u.forecast(&c), 0.0, "no history");
        for i in 0..(KEEP + 50) {
            u.record(&c, (i % 10) as f64 / 100.0);
        }
        assert_eq!(u.series.lock().unwrap()[&c].len(), KEEP);
        let d = Name::new("d1").unwrap();
        for i in 0..10 {
            u.record(&d, 0.1 * i as f64 / 2.0);
        }
        assert!(u.forecast(&d) > 0.45, "a rising load is anticipated: {}", u.forecast(&d));
        u.retain(std::slice::from_ref(&d));
        assert_eq!(u.forecast(&c), 0.0, "a deleted cloudlet's series is dropped");
    }
}
