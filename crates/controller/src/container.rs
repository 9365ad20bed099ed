//! Keeping one named container running on a cloudlet: what the instance controller does for an
//! app instance and the cloudlet controller for the cloudlet's connectivity probe.

use op_driver::{ContainerInfo, ContainerSpec, ContainerState, Driver, DriverError};

/// Ensures the container exists and runs; returns what the runtime reports. `known` says
/// whether a container was seen before: if not, creation is tried first (the fast path of a
/// new container: create, start, inspect, as a client of the runtime would), and a name
/// already in use (a crash after creation) falls back to adopting it.
pub async fn ensure_running(driver: &dyn Driver, spec: &ContainerSpec, known: bool) -> Result<ContainerInfo, DriverError> {
    // Ports the driver picks can be taken between its pick and the start (another platform on
    // the same runtime): the half-made container is gone then, so a new one picks again.
    let picked = spec.ports.iter().all(|p| p.host_port.is_none());
    let mut tries = if picked { 3 } else { 1 };
    loop {
        tries -= 1;
        match ensure_running_once(driver, spec, known).await {
            Err(DriverError::PortInUse(_)) if tries > 0 => continue,
            other => return other,
        }
    }
}

async fn ensure_running_once(driver: &dyn Driver, spec: &ContainerSpec, known: bool) -> Result<ContainerInfo, DriverError> {
    if !known {
        match driver.create(spec).await {
            Ok(id) => return start_and_inspect(driver, &id, &spec.name).await,
            Err(DriverError::NameInUse(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let info = match driver.inspect(&spec.name).await? {
        Some(info) => info,
        None => {
            let id = match driver.create(spec).await {
                Ok(id) => id,
                Err(DriverError::NameInUse(_)) => spec.name.clone(),
                Err(e) => return Err(e),
            };
            return start_and_inspect(driver, &id, &spec.name).await;
        }
    };
    if info.state == ContainerState::Running {
        return Ok(info);
    }
    start_and_inspect(driver, &info.id, &spec.name).await
}

async fn start_and_inspect(driver: &dyn Driver, id: &str, name: &str) -> Result<ContainerInfo, DriverError> {
    if let Err(e) = driver.start(id).await {
        if matches!(e, DriverError::PortInUse(_)) {
            // Leave no half-made container holding the name: the next try starts clean.
            let _ = driver.remove(id).await;
        }
        return Err(e);
    }
    driver.inspect(id).await?.ok_or_else(|| DriverError::NotFound(name.to_string()))
}
