//! One driver connection per cloudlet endpoint, shared by every reconcile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::docker::DockerDriver;
use crate::sim::SimDriver;
use crate::{Driver, DriverError};
use op_types::specs::{CloudletSpec, PlatformType};

/// Caches driver clients by endpoint, so reconciles reuse connections.
#[derive(Clone, Default)]
pub struct Drivers {
    cache: Arc<Mutex<HashMap<String, Arc<dyn Driver>>>>,
}

impl Drivers {
    /// The driver for `cloudlet`, connecting on first use.
    pub fn for_cloudlet(&self, cloudlet: &CloudletSpec) -> Result<Arc<dyn Driver>, DriverError> {
        let mut cache = self.cache.lock().map_err(|_| DriverError::Runtime("driver cache poisoned".into()))?;
        if let Some(d) = cache.get(&cloudlet.driver_endpoint) {
            return Ok(d.clone());
        }
        let d: Arc<dyn Driver> = match cloudlet.platform_type {
            PlatformType::Docker => Arc::new(DockerDriver::connect(&cloudlet.driver_endpoint)?),
            PlatformType::Sim => Arc::new(SimDriver::from_endpoint(&cloudlet.driver_endpoint)?),
        };
        cache.insert(cloudlet.driver_endpoint.clone(), d.clone());
        Ok(d)
    }
}
