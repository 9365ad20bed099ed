//! PLACEHOLDER (being written by the driver engineer; overwrite freely).
use crate::*;
/// placeholder
pub struct DockerDriver;
impl DockerDriver {
    /// placeholder
    pub fn connect(_e: &str) -> Result<Self, DriverError> { Err(DriverError::Unavailable("placeholder".into())) }
}
#[async_trait::async_trait]
impl Driver for DockerDriver {
    async fn ping(&self) -> Result<(), DriverError> { unimplemented!() }
    async fn image_exists(&self, _i: &str) -> Result<bool, DriverError> { unimplemented!() }
    async fn create(&self, _s: &ContainerSpec) -> Result<String, DriverError> { unimplemented!() }
    async fn start(&self, _i: &str) -> Result<(), DriverError> { unimplemented!() }
    async fn remove(&self, _i: &str) -> Result<(), DriverError> { unimplemented!() }
    async fn inspect(&self, _i: &str) -> Result<Option<ContainerInfo>, DriverError> { unimplemented!() }
    async fn list(&self, _l: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, DriverError> { unimplemented!() }
    async fn logs(&self, _i: &str, _t: usize) -> Result<String, DriverError> { unimplemented!() }
}
