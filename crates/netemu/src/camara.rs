//! What the CAMARA APIs share: the `Device` object, its validation, and finding the device it
//! designates (CAMARA Commonalities: with a two-legged token the `device` is mandatory; with
//! several identifiers the implementation picks one and says which in the response).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::CamaraError;
use crate::scenario::is_e164;
use crate::state::{Emulator, World};

/// CAMARA `Device`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CamaraDevice {
    /// E.164 phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// NAI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access_identifier: Option<String>,
    /// IPv4 identification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<DeviceIpv4Addr>,
    /// IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
}

/// CAMARA `DeviceIpv4Addr`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceIpv4Addr {
    /// Observed address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_address: Option<String>,
    /// Local address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_address: Option<String>,
    /// Observed port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
}

/// The device a request designates and the single identifier used (`DeviceResponse`).
pub(crate) struct Resolved {
    /// Index in the scenario's devices.
    pub idx: usize,
    /// `DeviceResponse` to echo.
    pub response: Value,
}

fn not_found() -> CamaraError {
    CamaraError::identifier_not_found("Device identifier not found.")
}

/// Finds the device; errors are those the CAMARA specs list: 422 MISSING_IDENTIFIER without a
/// device, 400 INVALID_ARGUMENT for malformed identifiers, 404 IDENTIFIER_NOT_FOUND.
pub(crate) fn resolve(emu: &Emulator, world: &World, device: Option<&CamaraDevice>) -> Result<Resolved, CamaraError> {
    let Some(d) = device else {
        return Err(CamaraError::unprocessable(
            "MISSING_IDENTIFIER",
            "The device cannot be identified: a two-legged access token needs 'device' in the request.",
        ));
    };
    if let Some(p) = &d.phone_number {
        if !is_e164(p) {
            return Err(CamaraError::invalid_argument(format!(
                "device.phoneNumber: '{p}' does not match ^\\+[1-9][0-9]{{4,14}}$"
            )));
        }
        let idx = emu.find_phone(p).ok_or_else(not_found)?;
        return Ok(Resolved { idx, response: json!({"phoneNumber": p}) });
    }
    if let Some(n) = &d.network_access_identifier {
        let idx = emu.find_nai(n).ok_or_else(not_found)?;
        return Ok(Resolved { idx, response: json!({"networkAccessIdentifier": n}) });
    }
    if let Some(v4) = &d.ipv4_address {
        let Some(public) = &v4.public_address else {
            return Err(CamaraError::invalid_argument("device.ipv4Address.publicAddress: is required"));
        };
        if v4.private_address.is_none() && v4.public_port.is_none() {
            return Err(CamaraError::invalid_argument(
                "device.ipv4Address: publicAddress needs privateAddress or publicPort",
            ));
        }
        let parse = |s: &str, field: &str| {
            s.parse::<Ipv4Addr>()
                .map_err(|_| CamaraError::invalid_argument(format!("device.ipv4Address.{field}: '{s}' is not an IPv4 address")))
        };
        let public = parse(public, "publicAddress")?;
        let private = v4.private_address.as_deref().map(|p| parse(p, "privateAddress")).transpose()?;
        // The emulated network does no NAT: a device is found by either address.
        let idx = world
            .find_ipv4(public)
            .or_else(|| private.and_then(|p| world.find_ipv4(p)))
            .ok_or_else(not_found)?;
        let echo = serde_json::to_value(v4).unwrap_or(Value::Null);
        return Ok(Resolved { idx, response: json!({"ipv4Address": echo}) });
    }
    if let Some(v6) = &d.ipv6_address {
        let ip = v6
            .parse::<Ipv6Addr>()
            .map_err(|_| CamaraError::invalid_argument(format!("device.ipv6Address: '{v6}' is not an IPv6 address")))?;
        let idx = world.find_ipv6(ip).ok_or_else(not_found)?;
        return Ok(Resolved { idx, response: json!({"ipv6Address": v6}) });
    }
    Err(CamaraError::invalid_argument(
        "device: at least one of phoneNumber, networkAccessIdentifier, ipv4Address, ipv6Address is required",
    ))
}

/// RFC 3339 timestamp with milliseconds and `Z`, as CAMARA examples write them.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
