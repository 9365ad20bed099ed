//! Wire shapes of the GSMA OPG East/Westbound (federation) API, both roles: the request and
//! response bodies of its 30 operations (the 29 of `FederationApi_v1.3.0-official.yaml` plus
//! `DeleteApp` of the later katalis revision) and its 5 callback bodies, with the schema names
//! and field spellings of the spec. No I/O.
//!
//! Two dialects are read: the official file (normative) and the later katalis revision.
//! Outbound bodies are valid against the **unmodified** official file, whose `required` lists
//! have typos: the misspelled names are sent too (`capabilities` next to `platformCaps`,
//! `componentname` next to `componentName`, `interfaceName` next to `InterfaceName`,
//! `latencyConstraint` next to `latencyConstraints`, an empty `networkResourceProfile`), and
//! members the katalis revision renamed are sent in both spellings (`appInstIdentifier` and
//! `appInstanceId`, `accesspointInfo` and `accessPointInfo`, `fileRepolocation` and
//! `fileRepoLocation`). Inbound, either spelling is accepted. What cannot be sent both ways (the
//! type of `ComputeResourceInfo.numCPU`, integer vs `Vcpu` string, and three respelled enum
//! values) is written in the official form by `Serialize` and in the katalis form through
//! [`Dialect::to_value`].
//!
//! [`OPERATIONS`] and [`CALLBACKS`] map each operationId and callback to its Rust types.

use std::cell::Cell;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::validate::{ensure, FieldError};

// ---------------------------------------------------------------------------------------------
// Dialects and numCPU
// ---------------------------------------------------------------------------------------------

/// Which revision of the federation API a partner speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// `FederationApi_v1.3.0-official.yaml` (GSMA OPG.04): integer `numCPU`.
    #[default]
    Official,
    /// The katalis revision (`neonephos-katalis/FederationApi_v1.3.0.yaml`): `Vcpu` strings.
    Katalis,
}

thread_local! {
    /// Set while [`Dialect::to_value`] serializes for the katalis dialect.
    static KATALIS_FORMS: Cell<bool> = const { Cell::new(false) };
}

/// Restores the dialect in force before a dialect-specific serialization.
struct DialectGuard(bool);

impl Drop for DialectGuard {
    fn drop(&mut self) {
        KATALIS_FORMS.with(|c| c.set(self.0));
    }
}

impl Dialect {
    /// The dialect being serialized on this thread: katalis inside [`Dialect::to_value`] /
    /// [`Dialect::to_vec`] for katalis, official otherwise.
    pub fn current() -> Self {
        if KATALIS_FORMS.with(Cell::get) {
            Dialect::Katalis
        } else {
            Dialect::Official
        }
    }

    /// Serializes `body` for this dialect: as its `Serialize` impl does, except that in the
    /// katalis dialect every `ComputeResourceInfo.numCPU` is a `Vcpu` string (`Flavour.numCPU`
    /// stays an integer in both) and the enum values katalis respells ([`OsVersion`],
    /// [`EnvValueType`], [`AppCategory`]) use its spelling. Member names are the same in both
    /// (both spellings are always sent); the shape of `appDeploymentZones` and the ids katalis
    /// requires are the caller's ([`DeploymentZone::for_dialect`]).
    pub fn to_value<T: Serialize + ?Sized>(self, body: &T) -> Result<Value, serde_json::Error> {
        let _guard = DialectGuard(KATALIS_FORMS.with(|c| c.replace(self == Dialect::Katalis)));
        serde_json::to_value(body)
    }

    /// As [`Dialect::to_value`], as JSON bytes.
    pub fn to_vec<T: Serialize + ?Sized>(self, body: &T) -> Result<Vec<u8>, serde_json::Error> {
        let _guard = DialectGuard(KATALIS_FORMS.with(|c| c.replace(self == Dialect::Katalis)));
        serde_json::to_vec(body)
    }
}

/// `numCPU` (`ComputeResourceInfo`, `Flavour`): an amount of CPU, held in millicpus.
///
/// Read from the official integer (whole vCPUs) or the katalis `Vcpu` string
/// (`^\d+((\.\d{1,3})|(m))?$`: `"2"`, `"0.5"`, `"500m"`). Written as the official integer,
/// rounded **up** to whole vCPUs (the official form cannot carry fractions), unless serialized
/// through [`Dialect::Katalis`] or [`NumCpu::serialize_vcpu_string`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NumCpu(u64);

impl NumCpu {
    /// `millis` thousandths of a vCPU.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// `vcpus` whole vCPUs.
    pub const fn from_vcpus(vcpus: u32) -> Self {
        Self(vcpus as u64 * 1000)
    }

    /// The amount in millicpus.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Whether the amount is a whole number of vCPUs.
    pub const fn is_whole(self) -> bool {
        self.0.is_multiple_of(1000)
    }

    /// The amount in whole vCPUs, rounded up.
    pub const fn vcpus_ceil(self) -> u64 {
        self.0.div_ceil(1000)
    }

    /// The official integer form: whole vCPUs rounded up, at most `i32::MAX` (format int32).
    pub fn to_official(self) -> u32 {
        u32::try_from(self.vcpus_ceil()).unwrap_or(u32::MAX).min(i32::MAX as u32)
    }

    /// Parses the katalis `Vcpu` form (`^\d+((\.\d{1,3})|(m))?$`); the error names `numCPU`.
    pub fn parse_vcpu(s: &str) -> Result<Self, FieldError> {
        let bad = || FieldError::new("numCPU", format!("{s:?} is not a vCPU amount: whole (\"2\"), decimal up to millicpus (\"0.5\") or millicpus (\"500m\")"));
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if let Some(m) = s.strip_suffix('m') {
            if !digits(m) {
                return Err(bad());
            }
            return m.parse::<u64>().map(Self).map_err(|_| bad());
        }
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (s, None),
        };
        if !digits(whole) {
            return Err(bad());
        }
        let whole: u64 = whole.parse().map_err(|_| bad())?;
        let frac_millis = match frac {
            None => 0,
            Some(f) if digits(f) && f.len() <= 3 => {
                let padded = format!("{f:0<3}");
                padded.parse::<u64>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        whole.checked_mul(1000).and_then(|w| w.checked_add(frac_millis)).map(Self).ok_or_else(bad)
    }

    /// The katalis `Vcpu` form: `"2"`, or a decimal without trailing zeros (`"2.5"`, `"0.125"`).
    pub fn to_vcpu_string(self) -> String {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            whole.to_string()
        } else {
            let f = format!("{frac:03}");
            format!("{whole}.{}", f.trim_end_matches('0'))
        }
    }

    /// Serializer writing the official integer form whatever the dialect (for `Flavour.numCPU`,
    /// an integer in both revisions).
    pub fn serialize_integer<S: Serializer>(value: &NumCpu, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(value.to_official())
    }

    /// Serializer writing the katalis `Vcpu` string form whatever the dialect.
    pub fn serialize_vcpu_string<S: Serializer>(value: &NumCpu, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_vcpu_string())
    }
}

impl fmt::Display for NumCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vcpu_string())
    }
}

impl Serialize for NumCpu {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if Dialect::current() == Dialect::Katalis {
            Self::serialize_vcpu_string(self, serializer)
        } else {
            Self::serialize_integer(self, serializer)
        }
    }
}

impl<'de> Deserialize<'de> for NumCpu {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumCpuVisitor;
        impl Visitor<'_> for NumCpuVisitor {
            type Value = NumCpu;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of vCPUs or a Vcpu string (\"2\", \"0.5\", \"500m\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumCpu, E> {
                v.checked_mul(1000).map(NumCpu).ok_or_else(|| E::custom("numCPU is too large"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumCpu, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("numCPU must not be negative"))?;
                self.visit_u64(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NumCpu, E> {
                NumCpu::parse_vcpu(v).map_err(|e| E::custom(e.message))
            }
        }
        deserializer.deserialize_any(NumCpuVisitor)
    }
}

// ---------------------------------------------------------------------------------------------
// Pattern checks (only those we enforce on input)
// ---------------------------------------------------------------------------------------------

/// Checks the official `Version` pattern `^(\d{1,2}\.)?(\d{1,2}\.)?(\d{1,2})$` (one to three
/// dot-separated numbers of one or two digits), as `field`.
pub fn check_version(s: &str, field: &str) -> Result<(), FieldError> {
    let parts: Vec<&str> = s.split('.').collect();
    let ok = (1..=3).contains(&parts.len()) && parts.iter().all(|p| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    ensure(ok, field, "must be a version of one to three dot-separated numbers of at most two digits (e.g. 1.2.3)")
}

/// Checks `AppMetaData.accessToken` for `dialect`: official `^[A-Za-z][A-Za-z0-9_]{31,63}$`,
/// katalis any string of 8 to 128 characters; the error names `field`.
pub fn check_access_token(s: &str, dialect: Dialect, field: &str) -> Result<(), FieldError> {
    match dialect {
        Dialect::Official => {
            let first_ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
            let rest_ok = s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            ensure(first_ok && rest_ok && (32..=64).contains(&s.len()), field, "must be 32 to 64 letters, digits or underscores, starting with a letter")
        }
        Dialect::Katalis => ensure((8..=128).contains(&s.chars().count()), field, "must be 8 to 128 characters long"),
    }
}

/// Parses `[+-]d{1,int_digits}[.d{1,max_decimals}]`, `max_decimals` `None` meaning any number.
fn parse_coordinate(s: &str, int_digits: usize, max_decimals: Option<usize>, decimals_required: bool) -> Option<f64> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || int.len() > int_digits {
        return None;
    }
    match frac {
        Some(f) if !digits(f) || max_decimals.is_some_and(|m| f.len() > m) => return None,
        None if decimals_required => return None,
        _ => {}
    }
    s.parse().ok()
}

/// Parses a zone's `geolocation` (`GeoLocation`, "Latitude,Longitude as decimal fraction up to
/// 4 digit precision"; the katalis pattern, which also allows blanks after the comma, is
/// accepted) into (latitude, longitude), checking their ranges; the error names `field`.
pub fn check_geolocation(s: &str, field: &str) -> Result<(f64, f64), FieldError> {
    let parsed = s.split_once(',').and_then(|(lat, lon)| Some((parse_coordinate(lat, 2, Some(4), false)?, parse_coordinate(lon.trim_start(), 3, Some(4), false)?)));
    match parsed {
        Some((lat, lon)) if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) => Ok((lat, lon)),
        Some(_) => Err(FieldError::new(field, "latitude must be within ±90 and longitude within ±180")),
        None => Err(FieldError::new(field, "must be \"latitude,longitude\" in decimal degrees with at most 4 decimals (e.g. \"48.8566,2.3522\")")),
    }
}

/// Formats a `GeoLocation` from degrees, rounded to `decimals` (at most 4, the spec's limit).
pub fn format_geolocation(lat: f64, lon: f64, decimals: u8) -> String {
    let d = usize::from(decimals.min(4));
    let lat = lat.clamp(-90.0, 90.0);
    let lon = lon.clamp(-180.0, 180.0);
    format!("{lat:.d$},{lon:.d$}")
}

/// Parses `ClientLocation.geo_location` (official pattern: latitude with decimals, any number
/// of them, optional blanks after the comma) into (latitude, longitude); the error names
/// `field`.
pub fn check_client_geo_location(s: &str, field: &str) -> Result<(f64, f64), FieldError> {
    let parsed = s.split_once(',').and_then(|(lat, lon)| Some((parse_coordinate(lat, 2, None, false)?, parse_coordinate(lon.trim_start(), 3, None, false)?)));
    match parsed {
        Some((lat, lon)) if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) => Ok((lat, lon)),
        Some(_) => Err(FieldError::new(field, "latitude must be within ±90 and longitude within ±180")),
        None => Err(FieldError::new(field, "must be \"latitude,longitude\" in decimal degrees")),
    }
}

/// Checks the official `FederationIdentifier`/`FederationContextId`/`ZoneIdentifier` pattern
/// `^[A-Za-z0-9][A-Za-z0-9-]*$`; the error names `field`.
pub fn check_identifier(s: &str, field: &str) -> Result<(), FieldError> {
    let ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ensure(ok, field, "must be letters, digits and hyphens, starting with a letter or digit")
}

/// Checks a `CountryCode` (`^[A-Z]{2}$`, ISO 3166-1 alpha-2); the error names `field`.
pub fn check_country_code(s: &str, field: &str) -> Result<(), FieldError> {
    ensure(s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()), field, "must be an ISO 3166-1 alpha-2 code (two capital letters)")
}

// ---------------------------------------------------------------------------------------------
// Multipart bodies
// ---------------------------------------------------------------------------------------------

/// The text parts of a multipart/form-data body (UploadArtefact, UploadFile) from its JSON
/// form: strings as they are, numbers and booleans as JSON text, objects and arrays
/// (`componentSpec`, `imgOSType`, repository locations) JSON-encoded. The binary part
/// (`artefactFile`, `file`) is not part of it.
pub fn form_fields<T: Serialize>(body: &T) -> Result<Vec<(String, String)>, serde_json::Error> {
    let value = serde_json::to_value(body)?;
    let Value::Object(map) = value else {
        return Err(de::Error::custom("a multipart body must serialize to an object"));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            other => serde_json::to_string(&other).map(|s| (k, s)),
        })
        .collect()
}

/// A multipart/form-data body's non-binary parts read back: a part whose text is a JSON
/// object or array is decoded as JSON, any other part is taken as a string. Parts the type does
/// not know (the binary part, when passed) are ignored.
pub fn from_form_fields<T, I, K, V>(parts: I) -> Result<T, serde_json::Error>
where
    T: DeserializeOwned,
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: AsRef<str>,
{
    let mut map = serde_json::Map::new();
    for (k, v) in parts {
        let text = v.as_ref();
        let value = match serde_json::from_str::<Value>(text) {
            Ok(j @ (Value::Object(_) | Value::Array(_))) => j,
            _ => Value::String(text.to_string()),
        };
        map.insert(k.into(), value);
    }
    serde_json::from_value(Value::Object(map))
}

// ---------------------------------------------------------------------------------------------
// Enumerations
// ---------------------------------------------------------------------------------------------

/// `CPUArchType` (also `ComputeResourceInfo.cpuArchType`, which allows only the 64-bit two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CpuArchType {
    /// 32-bit x86.
    #[serde(rename = "ISA_X86")]
    IsaX86,
    /// x86-64.
    #[serde(rename = "ISA_X86_64")]
    IsaX86_64,
    /// 64-bit Arm.
    #[serde(rename = "ISA_ARM_64")]
    IsaArm64,
}

/// `InstanceState`: running status of an application instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceState {
    /// Being created.
    Pending,
    /// Running and reachable.
    Ready,
    /// Could not be created or stopped working.
    Failed,
    /// Being removed.
    Terminating,
}

/// `Status`: status of a zone (`zoneStatus[].status`) or of the federation (`federationStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AvailabilityStatus {
    /// Failed for good.
    Failed,
    /// Failed, expected to recover.
    TemporaryFailure,
    /// Usable.
    Available,
    /// Locked by the operator.
    Locked,
    /// Not usable (e.g. maintenance).
    NotAvailable,
}

/// `FederationResponseData.platformCaps[]`: a capability of the partner platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PlatformCap {
    /// `homeRouting`: routes edge app traffic from its edges to devices in their home location.
    #[serde(rename = "homeRouting")]
    HomeRouting,
    /// `Anchoring`: routes roaming devices' traffic to edge apps in their home network.
    #[serde(rename = "Anchoring")]
    Anchoring,
}

impl PlatformCap {
    /// The spec's value.
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformCap::HomeRouting => "homeRouting",
            PlatformCap::Anchoring => "Anchoring",
        }
    }
}

/// `VirtImageType`: kind of an image file (`fileType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VirtImageType {
    /// QCOW2 VM image.
    #[serde(rename = "QCOW2")]
    Qcow2,
    /// Container image.
    #[serde(rename = "DOCKER")]
    Docker,
    /// OVA VM image.
    #[serde(rename = "OVA")]
    Ova,
}

/// `OSType.architecture`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OsArchitecture {
    /// `x86_64`.
    #[serde(rename = "x86_64")]
    X86_64,
    /// `x86`.
    #[serde(rename = "x86")]
    X86,
}

/// `OSType.distribution`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OsDistribution {
    /// Red Hat Enterprise Linux.
    Rhel,
    /// Ubuntu.
    Ubuntu,
    /// CoreOS.
    Coreos,
    /// Fedora.
    Fedora,
    /// Windows.
    Windows,
    /// Any other.
    Other,
}

/// `OSType.version`. The official enum spells Debian `"OS_VERSION_ DEBIAN_11"` (with a blank);
/// katalis `"OS_VERSION_DEBIAN_11"`. Either is read; the official one is written, the katalis
/// one through [`Dialect::Katalis`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum OsVersion {
    /// Ubuntu 22.04 LTS.
    #[serde(rename = "OS_VERSION_UBUNTU_2204_LTS")]
    Ubuntu2204Lts,
    /// RHEL 8.
    #[serde(rename = "OS_VERSION_RHEL_8")]
    Rhel8,
    /// RHEL 7.
    #[serde(rename = "OS_VERSION_RHEL_7")]
    Rhel7,
    /// Debian 11 (spelled with a blank in the official file).
    #[serde(rename = "OS_VERSION_ DEBIAN_11", alias = "OS_VERSION_DEBIAN_11")]
    Debian11,
    /// CoreOS stable.
    #[serde(rename = "OS_VERSION_COREOS_STABLE")]
    CoreosStable,
    /// Windows Server 2012 R2.
    #[serde(rename = "OS_MS_WINDOWS_2012_R2")]
    MsWindows2012R2,
    /// Any other.
    #[serde(rename = "OTHER")]
    Other,
}

impl OsVersion {
    /// The value in `dialect`.
    pub fn as_str(self, dialect: Dialect) -> &'static str {
        match self {
            OsVersion::Ubuntu2204Lts => "OS_VERSION_UBUNTU_2204_LTS",
            OsVersion::Rhel8 => "OS_VERSION_RHEL_8",
            OsVersion::Rhel7 => "OS_VERSION_RHEL_7",
            OsVersion::Debian11 if dialect == Dialect::Katalis => "OS_VERSION_DEBIAN_11",
            OsVersion::Debian11 => "OS_VERSION_ DEBIAN_11",
            OsVersion::CoreosStable => "OS_VERSION_COREOS_STABLE",
            OsVersion::MsWindows2012R2 => "OS_MS_WINDOWS_2012_R2",
            OsVersion::Other => "OTHER",
        }
    }
}

impl Serialize for OsVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str(Dialect::current()))
    }
}

/// `OSType.license`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OsLicense {
    /// Free.
    OsLicenseTypeFree,
    /// Licensed on demand.
    OsLicenseTypeOnDemand,
    /// Not specified.
    NotSpecified,
}

/// `GpuInfo.gpuVendorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GpuVendorType {
    /// NVIDIA.
    GpuProviderNvidia,
    /// AMD.
    GpuProviderAmd,
}

/// `HugePage.pageSize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HugePageSize {
    /// 2 MB pages.
    #[serde(rename = "2MB")]
    Mb2,
    /// 4 MB pages.
    #[serde(rename = "4MB")]
    Mb4,
    /// 1 GB pages.
    #[serde(rename = "1GB")]
    Gb1,
}

/// `InterfaceDetails.commProtocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// HTTP or HTTPS.
    HttpHttps,
}

/// `InterfaceDetails.visibilityType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VisibilityType {
    /// Exposed to clients outside the edge.
    VisibilityExternal,
    /// Reachable by the app's other components only.
    VisibilityInternal,
}

/// `ComponentSpec.restartPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RestartPolicy {
    /// Restart a failed component.
    RestartPolicyAlways,
    /// Leave a failed component stopped.
    RestartPolicyNever,
}

/// `CompEnvParams.envValueType`. The official file spells the last `PLATFRM_DEFINED_IP`, katalis
/// `PLATFORM_DEFINED_IP`. Either is read; the official one is written, the katalis one through
/// [`Dialect::Katalis`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum EnvValueType {
    /// `envVarValue` holds the value.
    #[serde(rename = "USER_DEFINED")]
    UserDefined,
    /// A port the platform assigns.
    #[serde(rename = "PLATFORM_DEFINED_DYNAMIC_PORT")]
    PlatformDefinedDynamicPort,
    /// A DNS name the platform assigns.
    #[serde(rename = "PLATFORM_DEFINED_DNS")]
    PlatformDefinedDns,
    /// An IP address the platform assigns.
    #[serde(rename = "PLATFRM_DEFINED_IP", alias = "PLATFORM_DEFINED_IP")]
    PlatformDefinedIp,
}

impl EnvValueType {
    /// The value in `dialect`.
    pub fn as_str(self, dialect: Dialect) -> &'static str {
        match self {
            EnvValueType::UserDefined => "USER_DEFINED",
            EnvValueType::PlatformDefinedDynamicPort => "PLATFORM_DEFINED_DYNAMIC_PORT",
            EnvValueType::PlatformDefinedDns => "PLATFORM_DEFINED_DNS",
            EnvValueType::PlatformDefinedIp if dialect == Dialect::Katalis => "PLATFORM_DEFINED_IP",
            EnvValueType::PlatformDefinedIp => "PLATFRM_DEFINED_IP",
        }
    }
}

impl Serialize for EnvValueType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str(Dialect::current()))
    }
}

/// `PersistentVolumeDetails.volumeSize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VolumeSize {
    /// 10 GiB.
    #[serde(rename = "10Gi")]
    Gi10,
    /// 20 GiB.
    #[serde(rename = "20Gi")]
    Gi20,
    /// 50 GiB.
    #[serde(rename = "50Gi")]
    Gi50,
    /// 100 GiB.
    #[serde(rename = "100Gi")]
    Gi100,
}

/// `PersistentVolumeDetails.accessMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VolumeAccessMode {
    /// Read/write (the default).
    Rw,
    /// Read-only.
    Ro,
}

/// `PersistentVolumeDetails.sharingPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SharingPolicy {
    /// One container (the default).
    Exclusive,
    /// Shared by the component's containers.
    Shared,
}

/// `AppQoSProfile.latencyConstraints`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LatencyConstraints {
    /// 51 ms and above.
    None,
    /// About 30–50 ms.
    Low,
    /// About 15–30 ms.
    Ultralow,
}

/// `AppQoSProfile.multiUserClients`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MultiUserClients {
    /// One client per instance (the default).
    AppTypeSingleUser,
    /// Several clients per instance.
    AppTypeMultiUser,
}

/// `AppMetaData.category`. The official file spells `SURVELIANCE` and `IDUSTRIAL`, katalis
/// `SURVEILLANCE` and `INDUSTRIAL`. Either is read; the official ones are written, the katalis
/// ones through [`Dialect::Katalis`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum AppCategory {
    /// IoT.
    #[serde(rename = "IOT")]
    Iot,
    /// Health care.
    #[serde(rename = "HEALTH_CARE")]
    HealthCare,
    /// Gaming.
    #[serde(rename = "GAMING")]
    Gaming,
    /// Virtual reality.
    #[serde(rename = "VIRTUAL_REALITY")]
    VirtualReality,
    /// Socializing.
    #[serde(rename = "SOCIALIZING")]
    Socializing,
    /// Surveillance.
    #[serde(rename = "SURVELIANCE", alias = "SURVEILLANCE")]
    Surveillance,
    /// Entertainment.
    #[serde(rename = "ENTERTAINMENT")]
    Entertainment,
    /// Connectivity.
    #[serde(rename = "CONNECTIVITY")]
    Connectivity,
    /// Productivity.
    #[serde(rename = "PRODUCTIVITY")]
    Productivity,
    /// Security.
    #[serde(rename = "SECURITY")]
    Security,
    /// Industrial.
    #[serde(rename = "IDUSTRIAL", alias = "INDUSTRIAL")]
    Industrial,
    /// Education.
    #[serde(rename = "EDUCATION")]
    Education,
    /// Others.
    #[serde(rename = "OTHERS")]
    Others,
}

impl AppCategory {
    /// The value in `dialect`.
    pub fn as_str(self, dialect: Dialect) -> &'static str {
        let katalis = dialect == Dialect::Katalis;
        match self {
            AppCategory::Iot => "IOT",
            AppCategory::HealthCare => "HEALTH_CARE",
            AppCategory::Gaming => "GAMING",
            AppCategory::VirtualReality => "VIRTUAL_REALITY",
            AppCategory::Socializing => "SOCIALIZING",
            AppCategory::Surveillance if katalis => "SURVEILLANCE",
            AppCategory::Surveillance => "SURVELIANCE",
            AppCategory::Entertainment => "ENTERTAINMENT",
            AppCategory::Connectivity => "CONNECTIVITY",
            AppCategory::Productivity => "PRODUCTIVITY",
            AppCategory::Security => "SECURITY",
            AppCategory::Industrial if katalis => "INDUSTRIAL",
            AppCategory::Industrial => "IDUSTRIAL",
            AppCategory::Education => "EDUCATION",
            AppCategory::Others => "OTHERS",
        }
    }
}

impl Serialize for AppCategory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str(Dialect::current()))
    }
}

/// `artefactVirtType` (UploadArtefact, GetArtefact).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ArtefactVirtType {
    /// Virtual machines.
    VmType,
    /// Containers.
    ContainerType,
}

/// `artefactFileFormat` (UploadArtefact, GetArtefact).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ArtefactFileFormat {
    /// Zip archive.
    Winzip,
    /// Tar archive.
    Tar,
    /// Plain text.
    Text,
    /// Gzipped tar archive.
    Targz,
}

/// `artefactDescriptorType` (UploadArtefact, GetArtefact).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ArtefactDescriptorType {
    /// Helm chart.
    Helm,
    /// Terraform script.
    Terraform,
    /// Ansible playbook.
    Ansible,
    /// Shell script.
    Shell,
    /// The `componentSpec` list itself.
    Componentspec,
}

/// `repoType` (artefacts and files): where the content comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RepoType {
    /// A private repository of the developer (`*RepoLocation` gives access).
    Privaterepo,
    /// A public repository (`*RepoLocation.repoURL`).
    Publicrepo,
    /// Uploaded in the multipart body.
    Upload,
}

/// `DeploymentConfig.configType` (katalis only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentConfigType {
    /// A Docker Compose file.
    DockerCompose,
    /// A Kubernetes manifest.
    KubernetesManifest,
    /// A cloud-init document.
    CloudInit,
    /// Helm values.
    HelmValues,
}

/// onPartnerStatusEvent `objectType`: what changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PartnerStatusObjectType {
    /// The federation (`federationStatus`).
    Federation,
    /// Zones (`zoneStatus`, `addZones`, `removeZones`).
    Zones,
    /// The edge discovery endpoint (`edgeDiscoverySvcEndPoint`).
    EdgeDiscoveryService,
    /// The LCM endpoint (`lcmSvcEndPoint`).
    LcmService,
    /// Mobile network codes (`add/removeMobileNetworkIds`).
    MobileNetworkCodes,
    /// Fixed network codes (`add/removeFixedNetworkIds`).
    FixedNetworkCodes,
}

/// onPartnerStatusEvent `operationType`: how it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PartnerStatusOperationType {
    /// A status change.
    Status,
    /// An endpoint update.
    Update,
    /// Something added.
    Add,
    /// Something removed.
    Remove,
}

/// UpdateFederation `objectType`: which codes change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpdateFederationObjectType {
    /// Mobile network codes.
    MobileNetworkCodes,
    /// Fixed network codes.
    FixedNetworkCodes,
}

/// UpdateFederation `operationType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpdateFederationOperationType {
    /// Add the `add*` codes.
    AddCodes,
    /// Remove the `remove*` codes.
    RemoveCodes,
    /// Add and remove (the spec does not define a replacement).
    UpdateCodes,
}

/// onApplicationOnboardStatusEvent `statusInfo[].onboardStatusInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnboardStatus {
    /// Onboarding in progress.
    Pending,
    /// Onboarded on the zone.
    Onboarded,
    /// Deboarding in progress.
    Deboarding,
    /// Deboarded from the zone.
    Removed,
    /// Onboarding failed.
    Failed,
}

/// InstallApp `zoneInfo.resourceConsumption`: whether pre-reserved pool resources are used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceConsumption {
    /// Only pool resources.
    ReservedResShall,
    /// Pool resources first, then others.
    ReservedResPrefer,
    /// Preferably not pool resources (the default).
    #[default]
    ReservedResAvoid,
    /// Never pool resources.
    ReservedResForbid,
}

/// UpdateISVResPool `updateType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PoolUpdateType {
    /// Raise the flavour's count to `count`.
    Add,
    /// Lower the flavour's count to `count` (`0` removes it).
    Remove,
    /// Change the reservation's duration.
    Duration,
}

/// `ClientLocation.rad_location[].carrier`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RadioCarrier {
    /// 5G NR (`cellId` is an NCGI).
    #[serde(rename = "5G")]
    Nr5g,
    /// LTE (`cellId` is a CGI).
    #[serde(rename = "LTE")]
    Lte,
}

// ---------------------------------------------------------------------------------------------
// Shared schemas
// ---------------------------------------------------------------------------------------------

/// `MobileNetworkIds`: a country code and the network codes of an operator in it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MobileNetworkIds {
    /// `Mcc` (`^\d{3}$`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcc: Option<String>,
    /// `Mnc`s (`^\d{2,3}$`, at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mncs: Option<Vec<String>>,
}

/// `ServiceEndpoint`: a port plus an FQDN and/or addresses (at least one of the three).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEndpoint {
    /// `Port`.
    pub port: u16,
    /// `Fqdn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// `Ipv4Addr`s (at least one when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_addresses: Option<Vec<String>>,
    /// `Ipv6Addr`s (at least one when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_addresses: Option<Vec<String>>,
}

impl ServiceEndpoint {
    /// An endpoint at `fqdn:port`.
    pub fn fqdn(fqdn: impl Into<String>, port: u16) -> Self {
        Self { port, fqdn: Some(fqdn.into()), ipv4_addresses: None, ipv6_addresses: None }
    }

    /// Checks the `anyOf`: an FQDN or a non-empty address list, and the addresses parse.
    pub fn validate(&self) -> Result<(), FieldError> {
        let v4 = self.ipv4_addresses.as_deref().unwrap_or_default();
        let v6 = self.ipv6_addresses.as_deref().unwrap_or_default();
        ensure(self.fqdn.as_deref().is_some_and(|f| !f.is_empty()) || !v4.is_empty() || !v6.is_empty(), "fqdn", "an FQDN, ipv4Addresses or ipv6Addresses is required")?;
        ensure(self.ipv4_addresses.as_ref().is_none_or(|a| !a.is_empty()), "ipv4Addresses", "must not be empty when present")?;
        ensure(self.ipv6_addresses.as_ref().is_none_or(|a| !a.is_empty()), "ipv6Addresses", "must not be empty when present")?;
        for (i, a) in v4.iter().enumerate() {
            ensure(a.parse::<std::net::Ipv4Addr>().is_ok(), &format!("ipv4Addresses[{i}]"), "must be an IPv4 address")?;
        }
        for (i, a) in v6.iter().enumerate() {
            ensure(a.parse::<std::net::Ipv6Addr>().is_ok(), &format!("ipv6Addresses[{i}]"), "must be an IPv6 address")?;
        }
        Ok(())
    }
}

/// `ZoneDetails`: a zone a partner offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneDetails {
    /// `ZoneIdentifier`.
    pub zone_id: String,
    /// `GeoLocation`: `"lat,lon"`, at most 4 decimals ([`check_geolocation`], [`format_geolocation`]).
    pub geolocation: String,
    /// Free text about the area the zone covers.
    pub geography_details: String,
}

impl ZoneDetails {
    /// Checks the zone id and the geolocation.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_identifier(&self.zone_id, "zoneId")?;
        check_geolocation(&self.geolocation, "geolocation").map(|_| ())
    }
}

/// `GpuInfo`: GPUs of a flavour or resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuInfo {
    /// Vendor.
    pub gpu_vendor_type: GpuVendorType,
    /// Model name (e.g. "Tesla V100"; the spec spells the member `gpuModeName`).
    pub gpu_mode_name: String,
    /// Memory in MB.
    pub gpu_memory: u64,
    /// Number of GPUs.
    #[serde(rename = "numGPU")]
    pub num_gpu: u32,
}

/// `HugePage`: huge pages of a flavour or resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HugePage {
    /// Page size.
    pub page_size: HugePageSize,
    /// Number of pages.
    pub number: u64,
}

/// `ComputeResourceInfo`: an amount of compute (reserved, quota, available, or a component's
/// requirement).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeResourceInfo {
    /// Instruction set (`ISA_X86_64` or `ISA_ARM_64` only).
    pub cpu_arch_type: CpuArchType,
    /// vCPUs (official integer, katalis `Vcpu` string).
    #[serde(rename = "numCPU")]
    pub num_cpu: NumCpu,
    /// RAM in MB.
    pub memory: u64,
    /// Disk in GB (required by the official file, optional in katalis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_storage: Option<u32>,
    /// GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Vec<GpuInfo>>,
    /// Intel VPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpu: Option<u32>,
    /// FPGAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fpga: Option<u32>,
    /// Huge pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugepages: Option<Vec<HugePage>>,
    /// Exclusive CPUs supported/required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_exclusivity: Option<bool>,
}

/// `OSType`: an operating system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OsType {
    /// Architecture.
    pub architecture: OsArchitecture,
    /// Distribution.
    pub distribution: OsDistribution,
    /// Version.
    pub version: OsVersion,
    /// License.
    pub license: OsLicense,
}

/// `Flavour`: a combination of compute resources a zone supports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flavour {
    /// `FlavourId`.
    pub flavour_id: String,
    /// Instruction set.
    pub cpu_arch_type: CpuArchType,
    /// Operating systems it supports (at least one).
    #[serde(rename = "supportedOSTypes")]
    pub supported_os_types: Vec<OsType>,
    /// vCPUs: an integer in both dialects (a `Vcpu` string is accepted).
    #[serde(rename = "numCPU", serialize_with = "NumCpu::serialize_integer")]
    pub num_cpu: NumCpu,
    /// RAM in MB.
    pub memory_size: u32,
    /// Disk in GB.
    pub storage_size: u32,
    /// GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Vec<GpuInfo>>,
    /// FPGAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fpga: Option<u32>,
    /// Intel VPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpu: Option<u32>,
    /// Huge pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugepages: Option<Vec<HugePage>>,
    /// Exclusive CPUs supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_exclusivity: Option<bool>,
}

/// `ObjectRepoLocation`: where an artefact or file can be pulled from, with credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRepoLocation {
    /// Repository URL.
    #[serde(rename = "repoURL", default, skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl ObjectRepoLocation {
    /// The same location with the password and token replaced by `"***"` (for GET views).
    pub fn redacted(&self) -> Self {
        let hide = |s: &Option<String>| s.as_ref().map(|_| "***".to_string());
        Self { repo_url: self.repo_url.clone(), user_name: self.user_name.clone(), password: hide(&self.password), token: hide(&self.token) }
    }
}

/// `InvalidParam`: one offending parameter of a `ProblemDetails`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidParam {
    /// The parameter (JSON path).
    pub param: String,
    /// What is wrong with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<FieldError> for InvalidParam {
    fn from(e: FieldError) -> Self {
        Self { param: e.field, reason: Some(e.message) }
    }
}

/// `ProblemDetails`: the error body (`application/problem+json`) of every operation and callback.
/// Unlike RFC 7807 it declares no `type`, `status` or `instance`; `status` is carried as an
/// extra member (the schema allows them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDetails {
    /// Short summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Explanation of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Offending parameters (at least one when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_params: Option<Vec<InvalidParam>>,
    /// The HTTP status (extra member, RFC 7807).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl ProblemDetails {
    /// A problem with `status` and `title`.
    pub fn new(status: u16, title: impl Into<String>) -> Self {
        Self { title: Some(title.into()), status: Some(status), ..Self::default() }
    }

    /// A 400 naming the field `err` is about.
    pub fn invalid(err: FieldError) -> Self {
        Self { detail: Some(err.to_string()), invalid_params: Some(vec![err.into()]), ..Self::new(400, "Bad request") }
    }
}

/// `ResourceReservationDuration`: how long a pool is reserved (at least one member).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceReservationDuration {
    /// Days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_of_days: Option<u32>,
    /// Months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_of_months: Option<u32>,
    /// Years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_of_years: Option<u32>,
}

impl ResourceReservationDuration {
    /// Checks `minProperties: 1`; the error names `field`.
    pub fn validate(&self, field: &str) -> Result<(), FieldError> {
        ensure(self.num_of_days.is_some() || self.num_of_months.is_some() || self.num_of_years.is_some(), field, "needs numOfDays, numOfMonths or numOfYears")
    }
}

/// `AccessPointInfo` item: where clients reach one interface of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessPointInfo {
    /// The interface id given at onboarding (`InterfaceDetails.interfaceId`).
    pub interface_id: String,
    /// Where it is reached.
    pub access_points: ServiceEndpoint,
}

// ---------------------------------------------------------------------------------------------
// FederationManagement: CreateFederation, GetFederationDetails, UpdateFederation,
// DeleteFederationDetails, onPartnerStatusEvent
// ---------------------------------------------------------------------------------------------

/// `CallbackCredentials` (katalis `partnerCallbackCredentials`): OAuth2 client credentials the
/// partner uses to call our callbacks.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackCredentials {
    /// Token endpoint.
    pub token_url: String,
    /// Client id.
    pub client_id: String,
    /// Client secret (required by katalis; optional here so a redacted view can be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl fmt::Debug for CallbackCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `FederationRequestData`: CreateFederation request body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederationRequestData {
    /// `FederationIdentifier` of the originating OP.
    #[serde(rename = "origOPFederationId")]
    pub orig_op_federation_id: String,
    /// Its country.
    #[serde(rename = "origOPCountryCode", default, skip_serializing_if = "Option::is_none")]
    pub orig_op_country_code: Option<String>,
    /// Its mobile network codes.
    #[serde(rename = "origOPMobileNetworkCodes", default, skip_serializing_if = "Option::is_none")]
    pub orig_op_mobile_network_codes: Option<MobileNetworkIds>,
    /// Its fixed network codes (`FixedNetworkIds`).
    #[serde(rename = "origOPFixedNetworkCodes", default, skip_serializing_if = "Option::is_none")]
    pub orig_op_fixed_network_codes: Option<Vec<String>>,
    /// When the federation was initiated.
    pub initial_date: DateTime<Utc>,
    /// Official: the onPartnerStatusEvent URL (required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_notification_dest: Option<String>,
    /// Katalis: the onPartnerStatusEvent URL (required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_status_link: Option<String>,
    /// Katalis: credentials for calling our callbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_callback_credentials: Option<CallbackCredentials>,
    /// Our extension: extensions the originator supports (e.g. `usage-v1`), extra member.
    #[serde(rename = "x-opExtensions", default, skip_serializing_if = "Option::is_none")]
    pub x_op_extensions: Option<Vec<String>>,
}

impl FederationRequestData {
    /// Where partner status events go: `federationNotificationDest`, else `partnerStatusLink`.
    pub fn notification_link(&self) -> Option<&str> {
        self.federation_notification_dest.as_deref().or(self.partner_status_link.as_deref()).filter(|s| !s.is_empty())
    }

    /// The dialect the originator speaks: official when it sends `federationNotificationDest`,
    /// katalis when it sends only `partnerStatusLink`.
    pub fn dialect(&self) -> Dialect {
        if self.federation_notification_dest.is_none() && self.partner_status_link.is_some() {
            Dialect::Katalis
        } else {
            Dialect::Official
        }
    }

    /// Checks the ids and that a notification link is given.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_identifier(&self.orig_op_federation_id, "origOPFederationId")?;
        if let Some(cc) = &self.orig_op_country_code {
            check_country_code(cc, "origOPCountryCode")?;
        }
        ensure(self.notification_link().is_some(), "federationNotificationDest", "a notification link (federationNotificationDest or partnerStatusLink) is required")
    }
}

/// `FederationResponseData`: CreateFederation 200 body.
///
/// Sent with both `platformCaps` and `capabilities` (same value: the official file requires the
/// undeclared `capabilities`, katalis requires `platformCaps`); read from either.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "FederationResponseDataRepr", into = "FederationResponseDataRepr")]
pub struct FederationResponseData {
    /// `partnerOPFederationId`.
    pub partner_op_federation_id: String,
    /// `partnerOPCountryCode`.
    pub partner_op_country_code: Option<String>,
    /// `federationContextId` (optional in the official file, required in katalis; always sent).
    pub federation_context_id: Option<String>,
    /// `edgeDiscoveryServiceEndPoint` (required by the official file).
    pub edge_discovery_service_end_point: Option<ServiceEndpoint>,
    /// `lcmServiceEndPoint` (required by the official file).
    pub lcm_service_end_point: Option<ServiceEndpoint>,
    /// `partnerOPMobileNetworkCodes`.
    pub partner_op_mobile_network_codes: Option<MobileNetworkIds>,
    /// `partnerOPFixedNetworkCodes`.
    pub partner_op_fixed_network_codes: Option<Vec<String>>,
    /// `offeredAvailabilityZones` (required by the official file, at least one).
    pub offered_availability_zones: Option<Vec<ZoneDetails>>,
    /// `platformCaps` (and `capabilities`).
    pub platform_caps: Vec<PlatformCap>,
    /// `x-opExtensions`: our extension, the extensions the partner supports.
    pub x_op_extensions: Option<Vec<String>>,
}

/// Wire form of [`FederationResponseData`], with both spellings of the capabilities.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FederationResponseDataRepr {
    #[serde(rename = "partnerOPFederationId")]
    partner_op_federation_id: String,
    #[serde(rename = "partnerOPCountryCode", default, skip_serializing_if = "Option::is_none")]
    partner_op_country_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    federation_context_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edge_discovery_service_end_point: Option<ServiceEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lcm_service_end_point: Option<ServiceEndpoint>,
    #[serde(rename = "partnerOPMobileNetworkCodes", default, skip_serializing_if = "Option::is_none")]
    partner_op_mobile_network_codes: Option<MobileNetworkIds>,
    #[serde(rename = "partnerOPFixedNetworkCodes", default, skip_serializing_if = "Option::is_none")]
    partner_op_fixed_network_codes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offered_availability_zones: Option<Vec<ZoneDetails>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform_caps: Option<Vec<PlatformCap>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    capabilities: Option<Value>,
    #[serde(rename = "x-opExtensions", default, skip_serializing_if = "Option::is_none")]
    x_op_extensions: Option<Vec<String>>,
}

impl From<FederationResponseDataRepr> for FederationResponseData {
    fn from(r: FederationResponseDataRepr) -> Self {
        let platform_caps = r.platform_caps.or_else(|| r.capabilities.and_then(|v| serde_json::from_value(v).ok())).unwrap_or_default();
        Self {
            partner_op_federation_id: r.partner_op_federation_id,
            partner_op_country_code: r.partner_op_country_code,
            federation_context_id: r.federation_context_id,
            edge_discovery_service_end_point: r.edge_discovery_service_end_point,
            lcm_service_end_point: r.lcm_service_end_point,
            partner_op_mobile_network_codes: r.partner_op_mobile_network_codes,
            partner_op_fixed_network_codes: r.partner_op_fixed_network_codes,
            offered_availability_zones: r.offered_availability_zones,
            platform_caps,
            x_op_extensions: r.x_op_extensions,
        }
    }
}

impl From<FederationResponseData> for FederationResponseDataRepr {
    fn from(d: FederationResponseData) -> Self {
        let caps = Value::Array(d.platform_caps.iter().map(|c| Value::String(c.as_str().to_string())).collect());
        Self {
            partner_op_federation_id: d.partner_op_federation_id,
            partner_op_country_code: d.partner_op_country_code,
            federation_context_id: d.federation_context_id,
            edge_discovery_service_end_point: d.edge_discovery_service_end_point,
            lcm_service_end_point: d.lcm_service_end_point,
            partner_op_mobile_network_codes: d.partner_op_mobile_network_codes,
            partner_op_fixed_network_codes: d.partner_op_fixed_network_codes,
            offered_availability_zones: d.offered_availability_zones,
            platform_caps: Some(d.platform_caps),
            capabilities: Some(caps),
            x_op_extensions: d.x_op_extensions,
        }
    }
}

/// GetFederationDetails 200 body (inline schema), also the UpdateFederation 200 body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederationDetails {
    /// Edge discovery service endpoint.
    pub edge_discovery_service_end_point: ServiceEndpoint,
    /// LCM service endpoint.
    pub lcm_service_end_point: ServiceEndpoint,
    /// Allowed mobile network codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_mobile_network_ids: Option<MobileNetworkIds>,
    /// Allowed fixed network codes (`FixedNetworkIds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_fixed_network_ids: Option<Vec<String>>,
    /// Offered zones (at least one when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_availability_zones: Option<Vec<ZoneDetails>>,
}

/// UpdateFederation request body (inline schema): network codes to add or remove.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFederationRequest {
    /// Which codes.
    pub object_type: UpdateFederationObjectType,
    /// Add or remove.
    pub operation_type: UpdateFederationOperationType,
    /// Mobile codes to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_mobile_network_ids: Option<MobileNetworkIds>,
    /// Mobile codes to remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_mobile_network_ids: Option<MobileNetworkIds>,
    /// Fixed codes to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_fixed_network_ids: Option<Vec<String>>,
    /// Fixed codes to remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_fixed_network_ids: Option<Vec<String>>,
    /// When the originator changed them.
    pub modification_date: DateTime<Utc>,
}

/// onPartnerStatusEvent `zoneStatus[]` item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStatusInfo {
    /// The zone.
    pub zone_id: String,
    /// Its status.
    pub status: AvailabilityStatus,
}

/// onPartnerStatusEvent callback body: a change of the federation, its zones, endpoints or codes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerStatusEvent {
    /// The federation (required by katalis; always sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_context_id: Option<String>,
    /// What changed.
    pub object_type: PartnerStatusObjectType,
    /// How.
    pub operation_type: PartnerStatusOperationType,
    /// New edge discovery endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_discovery_svc_end_point: Option<ServiceEndpoint>,
    /// New LCM endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lcm_svc_end_point: Option<ServiceEndpoint>,
    /// Mobile codes added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_mobile_network_ids: Option<MobileNetworkIds>,
    /// Mobile codes removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_mobile_network_ids: Option<MobileNetworkIds>,
    /// Fixed codes added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_fixed_network_ids: Option<Vec<String>>,
    /// Fixed codes removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_fixed_network_ids: Option<Vec<String>>,
    /// Zones newly offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_zones: Option<Vec<ZoneDetails>>,
    /// Zones no longer offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_zones: Option<Vec<String>>,
    /// Zone statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_status: Option<Vec<ZoneStatusInfo>>,
    /// Federation status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_status: Option<AvailabilityStatus>,
    /// When the partner made the change.
    pub modification_date: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// AvailabilityZoneInfoSynchronization: ZoneSubscribe, ZoneUnsubscribe, GetZoneData,
// onZoneResourceUpdateEvent
// ---------------------------------------------------------------------------------------------

/// `ZoneRegistrationRequestData`: ZoneSubscribe request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneRegistrationRequestData {
    /// Zones the originator subscribes to (at least one).
    pub accepted_availability_zones: Vec<String>,
    /// The onZoneResourceUpdateEvent URL.
    pub avail_zone_notif_link: String,
}

/// `ZoneRegistrationResponseData`: ZoneSubscribe 200 body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneRegistrationResponseData {
    /// What each subscribed zone reserves (at least one).
    pub accepted_zone_resource_info: Vec<ZoneRegisteredData>,
}

/// `ZoneRegisteredData.networkResources`: network capabilities of a zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkResources {
    /// Max downlink throughput, Mbps.
    pub egress_band_width: u32,
    /// NICs that can be dedicated to apps.
    #[serde(rename = "dedicatedNIC")]
    pub dedicated_nic: u32,
    /// SR-IOV networks supported.
    pub support_sriov: bool,
    /// DPDK networking supported.
    #[serde(rename = "supportDPDK")]
    pub support_dpdk: bool,
}

/// `ZoneRegisteredData`: GetZoneData 200 body, and an item of ZoneSubscribe's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneRegisteredData {
    /// The zone.
    pub zone_id: String,
    /// Resources reserved for the originator (at least one).
    pub reserved_compute_resources: Vec<ComputeResourceInfo>,
    /// Quota above the reservation (at least one).
    pub compute_resource_quota_limits: Vec<ComputeResourceInfo>,
    /// Flavours the zone supports (at least one).
    pub flavours_supported: Vec<Flavour>,
    /// Network capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_resources: Option<NetworkResources>,
}

/// onZoneResourceUpdateEvent `zoneResUpdInfo[].availableNetResources` (at least one member).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableNetResources {
    /// Max downlink throughput, Mbps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_band_width: Option<u32>,
    /// Dedicable NICs.
    #[serde(rename = "dedicatedNIC", default, skip_serializing_if = "Option::is_none")]
    pub dedicated_nic: Option<u32>,
    /// SR-IOV supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_sriov: Option<bool>,
    /// DPDK supported.
    #[serde(rename = "supportDPDK", default, skip_serializing_if = "Option::is_none")]
    pub support_dpdk: Option<bool>,
}

/// onZoneResourceUpdateEvent `zoneResUpdInfo[]` item (at least one member).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneResUpdInfo {
    /// Compute still available to the originator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_comp_resources: Option<Vec<ComputeResourceInfo>>,
    /// Network resources available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_net_resources: Option<AvailableNetResources>,
}

/// onZoneResourceUpdateEvent callback body. The official body has no zone or context id (its
/// declared path parameters cannot be filled); katalis requires both in the body, so they are sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneResourceUpdateEvent {
    /// The federation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_context_id: Option<String>,
    /// The zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
    /// The updates.
    pub zone_res_upd_info: Vec<ZoneResUpdInfo>,
}

// ---------------------------------------------------------------------------------------------
// ArtefactManagement: UploadArtefact, GetArtefact, RemoveArtefact, UploadFile, ViewFile,
// RemoveFile
// ---------------------------------------------------------------------------------------------

/// `CommandLineParams`: command and arguments a container component starts with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandLineParams {
    /// Commands.
    pub command: Vec<String>,
    /// Their arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_args: Option<Vec<String>>,
}

/// `CompEnvParams`: an environment variable of a component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompEnvParams {
    /// Name.
    pub env_var_name: String,
    /// Where the value comes from.
    pub env_value_type: EnvValueType,
    /// Value (`USER_DEFINED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_var_value: Option<String>,
    /// Path of the componentSpec parameter the platform derives the value from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_var_src: Option<String>,
}

/// `PersistentVolumeDetails`: a volume of a component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeDetails {
    /// Size.
    pub volume_size: VolumeSize,
    /// Mount path.
    pub volume_mount_path: String,
    /// Name.
    pub volume_name: String,
    /// Node-local storage, lost on restart (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_type: Option<bool>,
    /// Access mode (default RW).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<VolumeAccessMode>,
    /// Sharing policy (default EXCLUSIVE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_policy: Option<SharingPolicy>,
}

/// `DeploymentConfig` (katalis only): a deployment document overriding parts of the spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfig {
    /// Kind of document.
    pub config_type: DeploymentConfigType,
    /// The document.
    pub contents: String,
}

/// `InterfaceDetails`: a port a component exposes.
///
/// The official file declares `InterfaceName` but requires `interfaceName`: both are sent
/// (`InterfaceName` only when a name is set, `interfaceName` always, `""` when none), either is
/// read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "InterfaceDetailsRepr", into = "InterfaceDetailsRepr")]
pub struct InterfaceDetails {
    /// `interfaceId`: the interface's name, which clients use to find it.
    pub interface_id: String,
    /// `commProtocol`.
    pub comm_protocol: CommProtocol,
    /// `commPort`: the container port (1–65535).
    pub comm_port: u16,
    /// `visibilityType`.
    pub visibility_type: VisibilityType,
    /// `network` (required by the official file, optional in katalis).
    pub network: Option<String>,
    /// `InterfaceName` / `interfaceName` (official pattern `^[a-z][a-z0-9]{3}$`).
    pub interface_name: Option<String>,
}

/// Wire form of [`InterfaceDetails`], with both spellings of the interface name.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InterfaceDetailsRepr {
    interface_id: String,
    comm_protocol: CommProtocol,
    comm_port: u16,
    visibility_type: VisibilityType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    network: Option<String>,
    #[serde(rename = "InterfaceName", default, skip_serializing_if = "Option::is_none")]
    interface_name_declared: Option<String>,
    #[serde(rename = "interfaceName", default, skip_serializing_if = "Option::is_none")]
    interface_name_required: Option<Value>,
}

impl From<InterfaceDetailsRepr> for InterfaceDetails {
    fn from(r: InterfaceDetailsRepr) -> Self {
        let lower = match r.interface_name_required {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        };
        Self {
            interface_id: r.interface_id,
            comm_protocol: r.comm_protocol,
            comm_port: r.comm_port,
            visibility_type: r.visibility_type,
            network: r.network,
            interface_name: r.interface_name_declared.or(lower),
        }
    }
}

impl From<InterfaceDetails> for InterfaceDetailsRepr {
    fn from(d: InterfaceDetails) -> Self {
        Self {
            interface_id: d.interface_id,
            comm_protocol: d.comm_protocol,
            comm_port: d.comm_port,
            visibility_type: d.visibility_type,
            network: d.network,
            interface_name_required: Some(Value::String(d.interface_name.clone().unwrap_or_default())),
            interface_name_declared: d.interface_name,
        }
    }
}

/// `ComponentSpec`: what one component of an app needs (images, compute, ports, env, volumes).
///
/// The official file requires the undeclared `networkResourceProfile`; its `CompEnvParams.envVarSrc`
/// example (`networkResourceProfile[1]. interfaceId`) implies a list, so an empty list is sent
/// when none was received; a received value of any type is carried unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    /// Component name, unique within the app.
    pub component_name: String,
    /// OS (required by the official file, optional in katalis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<OsType>,
    /// Instruction set (`InstSetArch`; required by the official file, optional in katalis).
    #[serde(rename = "InstSetArch", default, skip_serializing_if = "Option::is_none")]
    pub inst_set_arch: Option<CpuArchType>,
    /// `FileId`s of its images (at least one).
    pub images: Vec<String>,
    /// Instances to launch.
    pub num_of_instances: u32,
    /// Restart policy.
    pub restart_policy: RestartPolicy,
    /// Command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line_params: Option<CommandLineParams>,
    /// Exposed ports (at least one when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_interfaces: Option<Vec<InterfaceDetails>>,
    /// Compute it needs.
    pub compute_resource_profile: ComputeResourceInfo,
    /// Environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comp_env_params: Option<Vec<CompEnvParams>>,
    /// Deployment document (katalis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_config: Option<DeploymentConfig>,
    /// Volumes (at least one when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volumes: Option<Vec<PersistentVolumeDetails>>,
    /// `networkResourceProfile`: required by the official file but undeclared; always sent.
    #[serde(default, serialize_with = "serialize_network_resource_profile")]
    pub network_resource_profile: Option<Value>,
}

/// Writes `networkResourceProfile`: the value carried, else an empty list.
fn serialize_network_resource_profile<S: Serializer>(value: &Option<Value>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => v.serialize(serializer),
        None => serializer.collect_seq(std::iter::empty::<Value>()),
    }
}

/// UploadArtefact request body (multipart/form-data), without the binary `artefactFile` part.
/// See [`form_fields`] and [`from_form_fields`] for the part encoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtefactUpload {
    /// `ArtefactId` (official: UUID; katalis: DNS label).
    pub artefact_id: String,
    /// `AppProviderId`.
    pub app_provider_id: String,
    /// Name.
    pub artefact_name: String,
    /// Version (`Version` pattern).
    pub artefact_version_info: String,
    /// Description (at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact_description: Option<String>,
    /// VM or container.
    pub artefact_virt_type: ArtefactVirtType,
    /// File name (8–32 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact_file_name: Option<String>,
    /// Archive format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact_file_format: Option<ArtefactFileFormat>,
    /// Kind of descriptor.
    pub artefact_descriptor_type: ArtefactDescriptorType,
    /// Where it comes from (required by the official file, optional in katalis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_type: Option<RepoType>,
    /// Repository location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact_repo_location: Option<ObjectRepoLocation>,
    /// Its components (at least one).
    pub component_spec: Vec<ComponentSpec>,
}

/// GetArtefact 200 body (inline schema).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtefactDetails {
    /// `ArtefactId`.
    pub artefact_id: String,
    /// `AppProviderId`.
    pub app_provider_id: String,
    /// Name.
    pub artefact_name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact_description: Option<String>,
    /// Version.
    pub artefact_version_info: String,
    /// VM or container.
    pub artefact_virt_type: ArtefactVirtType,
    /// File name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact_file_name: Option<String>,
    /// Archive format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact_file_format: Option<ArtefactFileFormat>,
    /// Kind of descriptor.
    pub artefact_descriptor_type: ArtefactDescriptorType,
    /// Where it came from (required by the official file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_type: Option<RepoType>,
    /// Repository location (redact credentials, [`ObjectRepoLocation::redacted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact_repo_location: Option<ObjectRepoLocation>,
    /// Its components (katalis only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_spec: Option<Vec<ComponentSpec>>,
}

/// UploadFile request body (multipart/form-data), without the binary `file` part. See
/// [`form_fields`] and [`from_form_fields`] for the part encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileUpload {
    /// `FileId` (official: UUID; katalis: any string).
    pub file_id: String,
    /// `AppProviderId`.
    pub app_provider_id: String,
    /// Name.
    pub file_name: String,
    /// Description (8–128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_description: Option<String>,
    /// Version (`Version` pattern).
    pub file_version_info: String,
    /// Image kind.
    pub file_type: VirtImageType,
    /// MD5 (VM images) or sha256 digest (containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// OS of the image.
    #[serde(rename = "imgOSType")]
    pub img_os_type: OsType,
    /// Instruction set of the image.
    pub img_ins_set_arch: CpuArchType,
    /// Where it comes from (required by the official file, optional in katalis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_type: Option<RepoType>,
    /// Repository location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_repo_location: Option<ObjectRepoLocation>,
}

/// ViewFile 200 body (inline schema). The official file spells the location `fileRepolocation`,
/// katalis `fileRepoLocation`: both are sent, either is read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "FileDetailsRepr", into = "FileDetailsRepr")]
pub struct FileDetails {
    /// `fileId`.
    pub file_id: String,
    /// `appProviderId`.
    pub app_provider_id: String,
    /// `fileName`.
    pub file_name: String,
    /// `fileDescription`.
    pub file_description: Option<String>,
    /// `fileVersionInfo`.
    pub file_version_info: String,
    /// `fileType`.
    pub file_type: VirtImageType,
    /// `checksum`.
    pub checksum: Option<String>,
    /// `imgOSType`.
    pub img_os_type: OsType,
    /// `imgInsSetArch`.
    pub img_ins_set_arch: CpuArchType,
    /// `repoType` (required by the official file).
    pub repo_type: Option<RepoType>,
    /// `fileRepolocation` / `fileRepoLocation` (redact credentials).
    pub file_repo_location: Option<ObjectRepoLocation>,
}

/// Wire form of [`FileDetails`], with both spellings of the repository location.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileDetailsRepr {
    file_id: String,
    app_provider_id: String,
    file_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_description: Option<String>,
    file_version_info: String,
    file_type: VirtImageType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<String>,
    #[serde(rename = "imgOSType")]
    img_os_type: OsType,
    img_ins_set_arch: CpuArchType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repo_type: Option<RepoType>,
    #[serde(rename = "fileRepolocation", default, skip_serializing_if = "Option::is_none")]
    file_repolocation: Option<ObjectRepoLocation>,
    #[serde(rename = "fileRepoLocation", default, skip_serializing_if = "Option::is_none")]
    file_repo_location: Option<ObjectRepoLocation>,
}

impl From<FileDetailsRepr> for FileDetails {
    fn from(r: FileDetailsRepr) -> Self {
        Self {
            file_id: r.file_id,
            app_provider_id: r.app_provider_id,
            file_name: r.file_name,
            file_description: r.file_description,
            file_version_info: r.file_version_info,
            file_type: r.file_type,
            checksum: r.checksum,
            img_os_type: r.img_os_type,
            img_ins_set_arch: r.img_ins_set_arch,
            repo_type: r.repo_type,
            file_repo_location: r.file_repolocation.or(r.file_repo_location),
        }
    }
}

impl From<FileDetails> for FileDetailsRepr {
    fn from(d: FileDetails) -> Self {
        Self {
            file_id: d.file_id,
            app_provider_id: d.app_provider_id,
            file_name: d.file_name,
            file_description: d.file_description,
            file_version_info: d.file_version_info,
            file_type: d.file_type,
            checksum: d.checksum,
            img_os_type: d.img_os_type,
            img_ins_set_arch: d.img_ins_set_arch,
            repo_type: d.repo_type,
            file_repolocation: d.file_repo_location.clone(),
            file_repo_location: d.file_repo_location,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ApplicationOnboardingManagement: OnboardApplication, UpdateApplication, ViewApplication,
// DeboardApplication, OnboardExistingAppNewZones, LockUnlockApplicationZone, DeleteApp,
// onApplicationOnboardStatusEvent
// ---------------------------------------------------------------------------------------------

/// `AppMetaData`: name, version and access token of an app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppMetaData {
    /// Human-readable name.
    pub app_name: String,
    /// Version (official `Version` pattern, [`check_version`]).
    pub version: String,
    /// Description (16–256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_description: Option<String>,
    /// Whether the app may be relocated as users move (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobility_support: Option<bool>,
    /// Access key for the UNI ([`check_access_token`]).
    pub access_token: String,
    /// Category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<AppCategory>,
}

impl AppMetaData {
    /// Checks `version` and `accessToken` for `dialect`, and the description's length.
    pub fn validate(&self, dialect: Dialect) -> Result<(), FieldError> {
        check_version(&self.version, "appMetaData.version")?;
        check_access_token(&self.access_token, dialect, "appMetaData.accessToken")?;
        if let Some(d) = &self.app_description {
            ensure((16..=256).contains(&d.chars().count()), "appMetaData.appDescription", "must be 16 to 256 characters long")?;
        }
        Ok(())
    }
}

/// `AppQoSProfile`: latency, bandwidth and tenancy of an app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppQoSProfile {
    /// Latency class.
    pub latency_constraints: LatencyConstraints,
    /// Minimum bandwidth, Mbit/s (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_required: Option<u32>,
    /// Single- or multi-user (default single).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_user_clients: Option<MultiUserClients>,
    /// Clients per instance (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_of_users_per_app_inst: Option<u32>,
    /// Whether the app may be instantiated (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_provisioning: Option<bool>,
}

/// `AppComponentSpecs` item: a component of an app, its DNS names and its artefact.
///
/// The official file declares `componentName` but requires `componentname`: both are sent, either
/// is read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AppComponentSpecRepr", into = "AppComponentSpecRepr")]
pub struct AppComponentSpec {
    /// `serviceNameNB`: DNS name clients use (required by the official file).
    pub service_name_nb: Option<String>,
    /// `serviceNameEW`: DNS name the app's other components use.
    pub service_name_ew: Option<String>,
    /// `componentName` / `componentname` (required by the official file, in its typo'd spelling).
    pub component_name: Option<String>,
    /// `artefactId`.
    pub artefact_id: String,
}

/// Wire form of [`AppComponentSpec`], with both spellings of the component name.
#[derive(Clone, Serialize, Deserialize)]
struct AppComponentSpecRepr {
    #[serde(rename = "serviceNameNB", default, skip_serializing_if = "Option::is_none")]
    service_name_nb: Option<String>,
    #[serde(rename = "serviceNameEW", default, skip_serializing_if = "Option::is_none")]
    service_name_ew: Option<String>,
    #[serde(rename = "componentName", default, skip_serializing_if = "Option::is_none")]
    component_name: Option<String>,
    #[serde(rename = "componentname", default, skip_serializing_if = "Option::is_none")]
    componentname: Option<Value>,
    #[serde(rename = "artefactId")]
    artefact_id: String,
}

impl From<AppComponentSpecRepr> for AppComponentSpec {
    fn from(r: AppComponentSpecRepr) -> Self {
        let lower = match r.componentname {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        Self { service_name_nb: r.service_name_nb, service_name_ew: r.service_name_ew, component_name: r.component_name.or(lower), artefact_id: r.artefact_id }
    }
}

impl From<AppComponentSpec> for AppComponentSpecRepr {
    fn from(d: AppComponentSpec) -> Self {
        Self {
            service_name_nb: d.service_name_nb,
            service_name_ew: d.service_name_ew,
            componentname: d.component_name.clone().map(Value::String),
            component_name: d.component_name,
            artefact_id: d.artefact_id,
        }
    }
}

/// `appDeploymentZones[]` item (OnboardApplication, ViewApplication): an object
/// `{countryCode, zoneInfo}` in the official file, a bare `ZoneIdentifier` in katalis. Either is
/// read and written back in the form read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeploymentZone {
    /// Official form.
    Zone {
        /// `CountryCode` of the zone.
        #[serde(rename = "countryCode")]
        country_code: String,
        /// `ZoneIdentifier`.
        #[serde(rename = "zoneInfo")]
        zone_info: String,
    },
    /// Katalis form: the zone id.
    Id(String),
}

impl DeploymentZone {
    /// The zone id.
    pub fn zone_id(&self) -> &str {
        match self {
            DeploymentZone::Zone { zone_info, .. } => zone_info,
            DeploymentZone::Id(id) => id,
        }
    }

    /// The form `dialect` expects (the katalis form drops the country code; the official form
    /// takes it from `country_code` when the item has none).
    pub fn for_dialect(&self, dialect: Dialect, country_code: &str) -> Self {
        match (dialect, self) {
            (Dialect::Katalis, z) => DeploymentZone::Id(z.zone_id().to_string()),
            (Dialect::Official, z @ DeploymentZone::Zone { .. }) => z.clone(),
            (Dialect::Official, DeploymentZone::Id(id)) => DeploymentZone::Zone { country_code: country_code.to_string(), zone_info: id.clone() },
        }
    }
}

/// OnboardApplication request body (inline schema).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnboardApplicationRequest {
    /// `AppIdentifier`.
    pub app_id: String,
    /// `AppProviderId`.
    pub app_provider_id: String,
    /// Zones the app is restricted to (at least one when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_deployment_zones: Option<Vec<DeploymentZone>>,
    /// Metadata.
    pub app_meta_data: AppMetaData,
    /// QoS profile.
    #[serde(rename = "appQoSProfile")]
    pub app_qos_profile: AppQoSProfile,
    /// Components (at least one).
    pub app_component_specs: Vec<AppComponentSpec>,
    /// The onApplicationOnboardStatusEvent URL.
    pub app_status_callback_link: String,
}

/// UpdateApplication `appUpdQoSProfile`: QoS members to change.
///
/// The official `anyOf` requires the misspelled `latencyConstraint`, so a latency change is sent
/// as both `latencyConstraints` and `latencyConstraint`; either is read. A body holding only
/// `noOfUsersPerAppInst` fails the official `anyOf` whatever is done ([`AppUpdQoSProfile::validate`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AppUpdQoSProfileRepr", into = "AppUpdQoSProfileRepr")]
pub struct AppUpdQoSProfile {
    /// `latencyConstraints` / `latencyConstraint`.
    pub latency_constraints: Option<LatencyConstraints>,
    /// `bandwidthRequired`.
    pub bandwidth_required: Option<u32>,
    /// `mobilitySupport`.
    pub mobility_support: Option<bool>,
    /// `multiUserClients`.
    pub multi_user_clients: Option<MultiUserClients>,
    /// `noOfUsersPerAppInst`.
    pub no_of_users_per_app_inst: Option<u32>,
    /// `appProvisioning`.
    pub app_provisioning: Option<bool>,
}

impl AppUpdQoSProfile {
    /// Checks the official `anyOf`: at least one of latency, bandwidth, mobility, multi-user or
    /// provisioning; the error names `appUpdQoSProfile`.
    pub fn validate(&self) -> Result<(), FieldError> {
        let any = self.latency_constraints.is_some() || self.bandwidth_required.is_some() || self.mobility_support.is_some() || self.multi_user_clients.is_some() || self.app_provisioning.is_some();
        ensure(any, "appUpdQoSProfile", "needs latencyConstraints, bandwidthRequired, mobilitySupport, multiUserClients or appProvisioning")
    }
}

/// Wire form of [`AppUpdQoSProfile`], with both spellings of the latency member.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppUpdQoSProfileRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latency_constraints: Option<LatencyConstraints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latency_constraint: Option<LatencyConstraints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bandwidth_required: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mobility_support: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multi_user_clients: Option<MultiUserClients>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    no_of_users_per_app_inst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_provisioning: Option<bool>,
}

impl From<AppUpdQoSProfileRepr> for AppUpdQoSProfile {
    fn from(r: AppUpdQoSProfileRepr) -> Self {
        Self {
            latency_constraints: r.latency_constraints.or(r.latency_constraint),
            bandwidth_required: r.bandwidth_required,
            mobility_support: r.mobility_support,
            multi_user_clients: r.multi_user_clients,
            no_of_users_per_app_inst: r.no_of_users_per_app_inst,
            app_provisioning: r.app_provisioning,
        }
    }
}

impl From<AppUpdQoSProfile> for AppUpdQoSProfileRepr {
    fn from(d: AppUpdQoSProfile) -> Self {
        Self {
            latency_constraints: d.latency_constraints,
            latency_constraint: d.latency_constraints,
            bandwidth_required: d.bandwidth_required,
            mobility_support: d.mobility_support,
            multi_user_clients: d.multi_user_clients,
            no_of_users_per_app_inst: d.no_of_users_per_app_inst,
            app_provisioning: d.app_provisioning,
        }
    }
}

/// UpdateApplication `appComponentSpecs[]` item: a component's new DNS names or artefact
/// (`componentName` and at least one other member).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppComponentSpecUpdate {
    /// DNS name for clients.
    #[serde(rename = "serviceNameNB", default, skip_serializing_if = "Option::is_none")]
    pub service_name_nb: Option<String>,
    /// DNS name for the app's other components.
    #[serde(rename = "serviceNameEW", default, skip_serializing_if = "Option::is_none")]
    pub service_name_ew: Option<String>,
    /// The component.
    pub component_name: String,
    /// New artefact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact_id: Option<String>,
}

/// UpdateApplication request body (inline schema, at least one member).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateApplicationRequest {
    /// QoS changes.
    #[serde(rename = "appUpdQoSProfile", default, skip_serializing_if = "Option::is_none")]
    pub app_upd_qos_profile: Option<AppUpdQoSProfile>,
    /// Component changes (at least one when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_component_specs: Option<Vec<AppComponentSpecUpdate>>,
}

impl UpdateApplicationRequest {
    /// Checks `minProperties: 1` and the `anyOf`s of the QoS profile and components.
    pub fn validate(&self) -> Result<(), FieldError> {
        ensure(self.app_upd_qos_profile.is_some() || self.app_component_specs.is_some(), "appUpdQoSProfile", "appUpdQoSProfile or appComponentSpecs is required")?;
        if let Some(q) = &self.app_upd_qos_profile {
            q.validate()?;
        }
        if let Some(specs) = &self.app_component_specs {
            ensure(!specs.is_empty(), "appComponentSpecs", "must not be empty")?;
            for (i, s) in specs.iter().enumerate() {
                ensure(s.service_name_nb.is_some() || s.service_name_ew.is_some() || s.artefact_id.is_some(), &format!("appComponentSpecs[{i}]"), "needs serviceNameNB, serviceNameEW or artefactId")?;
            }
        }
        Ok(())
    }
}

/// ViewApplication 200 body (inline schema).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDetails {
    /// `AppIdentifier`.
    pub app_id: String,
    /// `AppProviderId`.
    pub app_provider_id: String,
    /// Zones (objects officially, ids in katalis).
    pub app_deployment_zones: Vec<DeploymentZone>,
    /// Metadata.
    pub app_meta_data: AppMetaData,
    /// QoS profile.
    #[serde(rename = "appQoSProfile")]
    pub app_qos_profile: AppQoSProfile,
    /// Components.
    pub app_component_specs: Vec<AppComponentSpec>,
}

/// LockUnlockApplicationZone request body item: forbid or allow new instances on a zone. (The
/// official schema puts `required`/`properties` on the array, so it constrains nothing; this is
/// the intended item.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneForbid {
    /// The zone.
    pub zone_id: String,
    /// `true` forbids new instances there.
    pub forbid: bool,
}

/// onApplicationOnboardStatusEvent `statusInfo[]` item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppOnboardStatusInfo {
    /// The zone.
    pub zone_id: String,
    /// The app's status there.
    pub onboard_status_info: OnboardStatus,
}

/// onApplicationOnboardStatusEvent callback body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppOnboardStatusEvent {
    /// The federation (required by katalis; always sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_context_id: Option<String>,
    /// The app.
    pub app_id: String,
    /// Status per zone (at least one).
    pub status_info: Vec<AppOnboardStatusInfo>,
}

// ---------------------------------------------------------------------------------------------
// ApplicationDeploymentManagement: InstallApp, GetAppInstanceDetails, RemoveApp,
// GetAllAppInstances, onInstanceStatusEvent
// ---------------------------------------------------------------------------------------------

/// InstallApp `zoneInfo`: where and on which flavour to instantiate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallZoneInfo {
    /// The zone.
    pub zone_id: String,
    /// The flavour.
    pub flavour_id: String,
    /// Use of pool resources (default `RESERVED_RES_AVOID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_consumption: Option<ResourceConsumption>,
    /// The pool to draw from (with `RESERVED_RES_SHALL`/`PREFER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub res_pool: Option<String>,
}

/// InstallApp request body (inline schema).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallAppRequest {
    /// `AppIdentifier`.
    pub app_id: String,
    /// `Version` ([`check_version`]; a plain string in katalis).
    pub app_version: String,
    /// `AppProviderId`.
    pub app_provider_id: String,
    /// Where.
    pub zone_info: InstallZoneInfo,
    /// The onInstanceStatusEvent URL.
    pub app_inst_callback_link: String,
    /// Katalis: the instance id the originator chose (required there; the official partner
    /// names the instance in its 202 answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_id: Option<String>,
}

impl InstallAppRequest {
    /// Checks `appVersion`.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_version(&self.app_version, "appVersion")
    }
}

/// InstallApp 202 body (inline schema, official; katalis answers without a body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallAppResponse {
    /// The zone.
    pub zone_id: String,
    /// `InstanceIdentifier` of the new instance.
    pub app_inst_identifier: String,
}

/// GetAppInstanceDetails 200 body (inline schema, at least one member).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInstanceDetails {
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_state: Option<InstanceState>,
    /// Access points (at least one when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accesspoint_info: Option<Vec<AccessPointInfo>>,
}

/// GetAllAppInstances 200 body item `appInstanceInfo[]` item: one instance and its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInstanceSummary {
    /// `InstanceIdentifier`.
    pub app_inst_identifier: String,
    /// State.
    pub app_instance_state: InstanceState,
}

/// GetAllAppInstances 200 body item: the app's instances on one zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneAppInstances {
    /// The zone.
    pub zone_id: String,
    /// Its instances (at least one).
    pub app_instance_info: Vec<AppInstanceSummary>,
}

/// onInstanceStatusEvent `appInstanceInfo` (at least one member). The official file spells the
/// access points `accesspointInfo`, katalis `accessPointInfo`: both are sent, either is read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "InstanceStatusInfoRepr", into = "InstanceStatusInfoRepr")]
pub struct InstanceStatusInfo {
    /// `appInstanceState`.
    pub app_instance_state: Option<InstanceState>,
    /// `message` (katalis): event information or failure message.
    pub message: Option<String>,
    /// `accesspointInfo` / `accessPointInfo`.
    pub access_point_info: Option<Vec<AccessPointInfo>>,
}

/// Wire form of [`InstanceStatusInfo`], with both spellings of the access points.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceStatusInfoRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_instance_state: Option<InstanceState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(rename = "accesspointInfo", default, skip_serializing_if = "Option::is_none")]
    accesspoint_info: Option<Vec<AccessPointInfo>>,
    #[serde(rename = "accessPointInfo", default, skip_serializing_if = "Option::is_none")]
    access_point_info: Option<Vec<AccessPointInfo>>,
}

impl From<InstanceStatusInfoRepr> for InstanceStatusInfo {
    fn from(r: InstanceStatusInfoRepr) -> Self {
        Self { app_instance_state: r.app_instance_state, message: r.message, access_point_info: r.accesspoint_info.or(r.access_point_info) }
    }
}

impl From<InstanceStatusInfo> for InstanceStatusInfoRepr {
    fn from(d: InstanceStatusInfo) -> Self {
        Self { app_instance_state: d.app_instance_state, message: d.message, accesspoint_info: d.access_point_info.clone(), access_point_info: d.access_point_info }
    }
}

/// onInstanceStatusEvent callback body. The official file names the instance
/// `appInstIdentifier`, katalis `appInstanceId`: both are sent, either is read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "InstanceStatusEventRepr", into = "InstanceStatusEventRepr")]
pub struct InstanceStatusEvent {
    /// `federationContextId` (required by katalis; always sent).
    pub federation_context_id: Option<String>,
    /// `appId`.
    pub app_id: String,
    /// `appInstIdentifier` / `appInstanceId`.
    pub app_inst_identifier: String,
    /// `zoneId`.
    pub zone_id: String,
    /// `appInstanceInfo`.
    pub app_instance_info: InstanceStatusInfo,
    /// `modificationDate`: when the partner changed the instance.
    pub modification_date: Option<DateTime<Utc>>,
}

/// Wire form of [`InstanceStatusEvent`], with both names of the instance id.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceStatusEventRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    federation_context_id: Option<String>,
    app_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_inst_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_instance_id: Option<String>,
    zone_id: String,
    app_instance_info: InstanceStatusInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modification_date: Option<DateTime<Utc>>,
}

impl TryFrom<InstanceStatusEventRepr> for InstanceStatusEvent {
    type Error = String;
    fn try_from(r: InstanceStatusEventRepr) -> Result<Self, String> {
        let id = r.app_inst_identifier.or(r.app_instance_id).ok_or_else(|| "missing field `appInstIdentifier` (or `appInstanceId`)".to_string())?;
        Ok(Self { federation_context_id: r.federation_context_id, app_id: r.app_id, app_inst_identifier: id, zone_id: r.zone_id, app_instance_info: r.app_instance_info, modification_date: r.modification_date })
    }
}

impl From<InstanceStatusEvent> for InstanceStatusEventRepr {
    fn from(d: InstanceStatusEvent) -> Self {
        Self {
            federation_context_id: d.federation_context_id,
            app_id: d.app_id,
            app_instance_id: Some(d.app_inst_identifier.clone()),
            app_inst_identifier: Some(d.app_inst_identifier),
            zone_id: d.zone_id,
            app_instance_info: d.app_instance_info,
            modification_date: d.modification_date,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AppProviderResourceManagement: CreateResourcePools, ViewISVResPool, UpdateISVResPool,
// RemoveISVResPool, onResourceStatusChangeEvent
// ---------------------------------------------------------------------------------------------

/// CreateResourcePools `resRequest.flavours[]` item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolFlavourRequest {
    /// The flavour.
    pub flavour_id: String,
    /// How many to reserve.
    pub num_flavour: u32,
    /// Fewest acceptable (else the request fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_num_of_flavours: Option<u32>,
}

/// CreateResourcePools `resRequest`: flavours to reserve and for how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequest {
    /// `PoolName` chosen by the ISV.
    pub pool_name: String,
    /// Katalis: the `PoolId` the originator chose (required there; the official partner names
    /// the pool in its 200 answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_id: Option<String>,
    /// Flavours (at least one).
    pub flavours: Vec<PoolFlavourRequest>,
    /// Duration.
    pub reserve_duration: ResourceReservationDuration,
}

/// CreateResourcePools request body (inline schema).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateResourcePoolsRequest {
    /// The reservation.
    pub res_request: ResourceRequest,
    /// The onResourceStatusChangeEvent URL.
    pub resource_reservation_callback_link: String,
}

/// CreateResourcePools 200 body (inline schema, official; katalis answers without a body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateResourcePoolsResponse {
    /// `PoolName`.
    pub pool_name: String,
    /// `PoolId` the partner assigned.
    pub pool_id: String,
}

/// onResourceStatusChangeEvent `grantedFlavours[]` item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantedFlavour {
    /// The flavour.
    pub flavour_id: String,
    /// How many were granted.
    pub num_flavour: u32,
}

/// onResourceStatusChangeEvent callback body: what a pool reservation was granted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatusChangeEvent {
    /// The federation (required by katalis; always sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_context_id: Option<String>,
    /// `AppProviderId`.
    pub app_provider_id: String,
    /// The zone.
    pub zone_id: String,
    /// The pool.
    pub pool_id: String,
    /// Granted flavours (at least one).
    pub granted_flavours: Vec<GrantedFlavour>,
}

/// ViewISVResPool 200 body item `reservedFlavours[]` item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservedFlavour {
    /// The flavour.
    pub flavour_id: String,
    /// How many are reserved.
    pub count: u32,
}

/// ViewISVResPool 200 body item: one pool of the ISV on the zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservedPool {
    /// `PoolName`.
    pub pool_name: String,
    /// `PoolId`.
    pub reserved_pool_id: String,
    /// Reserved flavours (at least one).
    pub reserved_flavours: Vec<ReservedFlavour>,
    /// Duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_duration: Option<ResourceReservationDuration>,
    /// When it was reserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_time: Option<DateTime<Utc>>,
}

/// UpdateISVResPool request body item: the new count of one flavour, or a new duration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolUpdate {
    /// Kind of update.
    pub update_type: PoolUpdateType,
    /// The flavour.
    pub flavour_id: String,
    /// The final total of that flavour (`0` removes it).
    pub count: u32,
    /// New duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_duration: Option<ResourceReservationDuration>,
}

// ---------------------------------------------------------------------------------------------
// EdgeNodeSharing: GetCandidateZones
// ---------------------------------------------------------------------------------------------

/// `ClientLocation.rad_location[]` item: a serving cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RadLocation {
    /// Radio technology.
    pub carrier: RadioCarrier,
    /// Mobile country code (1–999).
    pub mcc: u16,
    /// Mobile network code (1–999).
    pub mnc: u16,
    /// CGI (LTE) or NCGI (5G).
    pub cell_id: u64,
    /// Routing or tracking area code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_code: Option<u32>,
}

/// `ClientLocation`: where a client is (at least one member; the spec spells them in snake case).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientLocation {
    /// `"lat, lon"` ([`check_client_geo_location`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_location: Option<String>,
    /// Serving cells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rad_location: Option<Vec<RadLocation>>,
}

/// GetCandidateZones `edgeDiscoveryFilters` (at least one member).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeDiscoveryFilters {
    /// The client's location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ClientLocation>,
}

/// GetCandidateZones request body (inline schema).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateZonesRequest {
    /// `AppProviderId`.
    pub app_provider_id: String,
    /// `AppIdentifier`.
    pub app_id: String,
    /// Filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_discovery_filters: Option<EdgeDiscoveryFilters>,
}

/// `DiscoveredEdgeNodes` item (GetCandidateZones 200 body is a non-empty list of them): a
/// candidate zone and the endpoint clients measure latency against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredEdgeNode {
    /// The zone.
    pub zone_id: String,
    /// Latency measurement endpoint.
    pub latency_service_end_points: ServiceEndpoint,
}

// ---------------------------------------------------------------------------------------------
// Operation and callback index
// ---------------------------------------------------------------------------------------------

/// One operation of the federation API: how it is called and the Rust types of its bodies
/// (`None`: no body; `Vec<T>`: a JSON array of `T`; multipart bodies name their text parts' type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationInfo {
    /// The spec's `operationId`.
    pub operation_id: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// Path template below `{apiRoot}/operatorplatform/federation/v1`.
    pub path: &'static str,
    /// Request body type.
    pub request: Option<&'static str>,
    /// Success status.
    pub status: u16,
    /// Success body type (official dialect).
    pub response: Option<&'static str>,
    /// Only in the katalis revision.
    pub katalis_only: bool,
}

/// One callback of the federation API (all `POST`, partner to originator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallbackInfo {
    /// The spec's callback name.
    pub name: &'static str,
    /// The operation that declares it.
    pub declared_on: &'static str,
    /// The request member giving its URL (official; katalis in parentheses where it differs).
    pub url_from: &'static str,
    /// Body type.
    pub body: &'static str,
    /// Success status.
    pub status: u16,
}

const fn op(operation_id: &'static str, method: &'static str, path: &'static str, request: Option<&'static str>, status: u16, response: Option<&'static str>) -> OperationInfo {
    OperationInfo { operation_id, method, path, request, status, response, katalis_only: false }
}

/// Every operation: the 29 of the official file and katalis `DeleteApp`.
pub const OPERATIONS: [OperationInfo; 30] = [
    op("CreateFederation", "POST", "/partner", Some("FederationRequestData"), 200, Some("FederationResponseData")),
    op("GetFederationDetails", "GET", "/{federationContextId}/partner", None, 200, Some("FederationDetails")),
    op("UpdateFederation", "PATCH", "/{federationContextId}/partner", Some("UpdateFederationRequest"), 200, Some("FederationDetails")),
    op("DeleteFederationDetails", "DELETE", "/{federationContextId}/partner", None, 200, None),
    op("ZoneSubscribe", "POST", "/{federationContextId}/zones", Some("ZoneRegistrationRequestData"), 200, Some("ZoneRegistrationResponseData")),
    op("ZoneUnsubscribe", "DELETE", "/{federationContextId}/zones/{zoneId}", None, 200, None),
    op("GetZoneData", "GET", "/{federationContextId}/zones/{zoneId}", None, 200, Some("ZoneRegisteredData")),
    op("UploadArtefact", "POST", "/{federationContextId}/artefact", Some("ArtefactUpload"), 200, None),
    op("GetArtefact", "GET", "/{federationContextId}/artefact/{artefactId}", None, 200, Some("ArtefactDetails")),
    op("RemoveArtefact", "DELETE", "/{federationContextId}/artefact/{artefactId}", None, 200, None),
    op("UploadFile", "POST", "/{federationContextId}/files", Some("FileUpload"), 200, None),
    op("RemoveFile", "DELETE", "/{federationContextId}/files/{fileId}", None, 200, None),
    op("ViewFile", "GET", "/{federationContextId}/files/{fileId}", None, 200, Some("FileDetails")),
    op("OnboardApplication", "POST", "/{federationContextId}/application/onboarding", Some("OnboardApplicationRequest"), 202, None),
    op("UpdateApplication", "PATCH", "/{federationContextId}/application/onboarding/app/{appId}", Some("UpdateApplicationRequest"), 202, None),
    op("ViewApplication", "GET", "/{federationContextId}/application/onboarding/app/{appId}", None, 200, Some("ApplicationDetails")),
    op("DeboardApplication", "DELETE", "/{federationContextId}/application/onboarding/app/{appId}/zone/{zoneId}", None, 202, None),
    op("OnboardExistingAppNewZones", "POST", "/{federationContextId}/application/onboarding/app/{appId}/additionalZones", Some("Vec<String>"), 202, None),
    op("LockUnlockApplicationZone", "POST", "/{federationContextId}/application/onboarding/app/{appId}/zoneForbid", Some("Vec<ZoneForbid>"), 200, None),
    op("InstallApp", "POST", "/{federationContextId}/application/lcm", Some("InstallAppRequest"), 202, Some("InstallAppResponse")),
    op("GetAppInstanceDetails", "GET", "/{federationContextId}/application/lcm/app/{appId}/instance/{appInstanceId}/zone/{zoneId}", None, 200, Some("AppInstanceDetails")),
    op("RemoveApp", "DELETE", "/{federationContextId}/application/lcm/app/{appId}/instance/{appInstanceId}/zone/{zoneId}", None, 200, None),
    op("GetAllAppInstances", "GET", "/{federationContextId}/application/lcm/app/{appId}/appProvider/{appProviderId}", None, 200, Some("Vec<ZoneAppInstances>")),
    op("CreateResourcePools", "POST", "/{federationContextId}/isv/resource/zone/{zoneId}/appProvider/{appProviderId}", Some("CreateResourcePoolsRequest"), 200, Some("CreateResourcePoolsResponse")),
    op("ViewISVResPool", "GET", "/{federationContextId}/isv/resource/zone/{zoneId}/appProvider/{appProviderId}", None, 200, Some("Vec<ReservedPool>")),
    op("UpdateISVResPool", "PATCH", "/{federationContextId}/isv/resource/zone/{zoneId}/appProvider/{appProviderId}/pool/{poolId}", Some("Vec<PoolUpdate>"), 200, None),
    op("RemoveISVResPool", "DELETE", "/{federationContextId}/isv/resource/zone/{zoneId}/appProvider/{appProviderId}/pool/{poolId}", None, 200, None),
    op("GetCandidateZones", "POST", "/{federationContextId}/edgenodesharing/edgeDiscovery", Some("CandidateZonesRequest"), 200, Some("Vec<DiscoveredEdgeNode>")),
    op("AuthenticateDevice", "GET", "/{federationContextId}/roaminguserauth/device/{deviceId}/token/{authToken}", None, 200, None),
    OperationInfo { katalis_only: true, ..op("DeleteApp", "DELETE", "/{federationContextId}/application/onboarding/app/{appId}", None, 200, None) },
];

/// Every callback.
pub const CALLBACKS: [CallbackInfo; 5] = [
    CallbackInfo { name: "onPartnerStatusEvent", declared_on: "CreateFederation", url_from: "federationNotificationDest (partnerStatusLink)", body: "PartnerStatusEvent", status: 204 },
    CallbackInfo { name: "onZoneResourceUpdateEvent", declared_on: "ZoneSubscribe", url_from: "availZoneNotifLink", body: "ZoneResourceUpdateEvent", status: 200 },
    CallbackInfo { name: "onApplicationOnboardStatusEvent", declared_on: "OnboardApplication", url_from: "appStatusCallbackLink", body: "AppOnboardStatusEvent", status: 204 },
    CallbackInfo { name: "onInstanceStatusEvent", declared_on: "InstallApp", url_from: "appInstCallbackLink", body: "InstanceStatusEvent", status: 204 },
    CallbackInfo { name: "onResourceStatusChangeEvent", declared_on: "CreateResourcePools", url_from: "resourceReservationCallbackLink", body: "ResourceStatusChangeEvent", status: 204 },
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    // Shared fragments of the golden samples, in the form we send (both spellings where the
    // official file has a typo), with values valid against the official patterns.
    macro_rules! endpoint {
        () => {
            r#"{"port": 443, "fqdn": "ewbi.partner.example", "ipv4Addresses": ["198.51.100.1"], "ipv6Addresses": ["2001:db8:85a3::8a2e:370:7334"]}"#
        };
    }
    macro_rules! zone {
        () => {
            r#"{"zoneId": "zone-paris-1", "geolocation": "48.85,2.35", "geographyDetails": "Paris, urban"}"#
        };
    }
    macro_rules! mnc {
        () => {
            r#"{"mcc": "208", "mncs": ["01", "10"]}"#
        };
    }
    macro_rules! gpu {
        () => {
            r#"[{"gpuVendorType": "GPU_PROVIDER_NVIDIA", "gpuModeName": "Tesla V100", "gpuMemory": 16384, "numGPU": 1}]"#
        };
    }
    macro_rules! compute {
        () => {
            concat!(r#"{"cpuArchType": "ISA_X86_64", "numCPU": 4, "memory": 8192, "diskStorage": 100, "gpu": "#, gpu!(), r#", "vpu": 0, "fpga": 1, "hugepages": [{"pageSize": "2MB", "number": 512}], "cpuExclusivity": false}"#)
        };
    }
    macro_rules! os_type {
        () => {
            r#"{"architecture": "x86_64", "distribution": "UBUNTU", "version": "OS_VERSION_UBUNTU_2204_LTS", "license": "OS_LICENSE_TYPE_FREE"}"#
        };
    }
    macro_rules! flavour {
        () => {
            concat!(r#"{"flavourId": "small-x86", "cpuArchType": "ISA_X86_64", "supportedOSTypes": ["#, os_type!(), r#"], "numCPU": 2, "memorySize": 4096, "storageSize": 20, "gpu": "#, gpu!(), r#", "fpga": 1, "vpu": 1, "hugepages": [{"pageSize": "1GB", "number": 2}], "cpuExclusivity": true}"#)
        };
    }
    macro_rules! zone_registered {
        () => {
            concat!(
                r#"{"zoneId": "zone-paris-1", "reservedComputeResources": ["#,
                compute!(),
                r#"], "computeResourceQuotaLimits": ["#,
                compute!(),
                r#"], "flavoursSupported": ["#,
                flavour!(),
                r#"], "networkResources": {"egressBandWidth": 1000, "dedicatedNIC": 2, "supportSriov": true, "supportDPDK": false}}"#
            )
        };
    }
    macro_rules! repo {
        () => {
            r#"{"repoURL": "https://registry.example/app", "userName": "deployer_01", "password": "s3cret", "token": "t0ken"}"#
        };
    }
    macro_rules! component_spec {
        () => {
            concat!(
                r#"{"componentName": "c1a2b3c4d5", "osType": "#,
                os_type!(),
                r#", "InstSetArch": "ISA_X86_64", "images": ["3fa85f64-5717-4562-b3fc-2c963f66afa6"], "numOfInstances": 1, "restartPolicy": "RESTART_POLICY_ALWAYS","#,
                r#" "commandLineParams": {"command": ["/bin/server"], "commandArgs": ["--port", "8080"]},"#,
                r#" "exposedInterfaces": [{"interfaceId": "f1a2b3c4d5", "commProtocol": "TCP", "commPort": 8080, "visibilityType": "VISIBILITY_EXTERNAL", "network": "default_net", "InterfaceName": "eth0", "interfaceName": "eth0"}],"#,
                r#" "computeResourceProfile": "#,
                compute!(),
                r#", "compEnvParams": [{"envVarName": "LOG_LEVEL", "envValueType": "USER_DEFINED", "envVarValue": "verbose_mode"}, {"envVarName": "PUBLIC_IP", "envValueType": "PLATFRM_DEFINED_IP", "envVarSrc": "exposedInterfaces[0].interfaceId"}],"#,
                r#" "persistentVolumes": [{"volumeSize": "10Gi", "volumeMountPath": "/data", "volumeName": "data", "ephemeralType": false, "accessMode": "RW", "sharingPolicy": "EXCLUSIVE"}],"#,
                r#" "networkResourceProfile": []}"#
            )
        };
    }
    macro_rules! app_meta {
        () => {
            r#"{"appName": "a0b1c2d3e4f5", "version": "1.2.3", "appDescription": "A sample edge application", "mobilitySupport": true, "accessToken": "Tk0123456789abcdef0123456789abcdef", "category": "GAMING"}"#
        };
    }
    macro_rules! qos {
        () => {
            r#"{"latencyConstraints": "LOW", "bandwidthRequired": 10, "multiUserClients": "APP_TYPE_MULTI_USER", "noOfUsersPerAppInst": 20, "appProvisioning": true}"#
        };
    }
    macro_rules! app_component {
        () => {
            r#"[{"serviceNameNB": "s1a2b3c4d5", "serviceNameEW": "e1a2b3c4d5", "componentName": "c1a2b3c4d5", "componentname": "c1a2b3c4d5", "artefactId": "9b2c7c1e-6d3a-4b8e-9f1a-2c3d4e5f6a7b"}]"#
        };
    }
    macro_rules! access_points {
        () => {
            concat!(r#"[{"interfaceId": "f1a2b3c4d5", "accessPoints": "#, endpoint!(), "}]")
        };
    }

    /// Deserializes `json` as `T`, serializes it back and requires the same JSON value; returns
    /// the value written.
    fn round_trip<T: Serialize + DeserializeOwned>(json: &str) -> Value {
        let input: Value = serde_json::from_str(json).expect("sample is JSON");
        let typed: T = serde_json::from_value(input.clone()).unwrap_or_else(|e| panic!("sample does not deserialize: {e}\n{json}"));
        let output = serde_json::to_value(&typed).expect("serializes");
        assert_eq!(output, input, "round trip changed the body");
        output
    }

    type Check = fn(&str) -> Value;

    /// (operationId or callback, which body, sample, check). Every body of [`OPERATIONS`] and
    /// [`CALLBACKS`] has one; `error` is the ProblemDetails every operation may answer.
    fn golden() -> Vec<(&'static str, &'static str, &'static str, Check)> {
        vec![
            (
                "CreateFederation",
                "request",
                concat!(
                    r#"{"origOPFederationId": "op-alpha", "origOPCountryCode": "FR", "origOPMobileNetworkCodes": "#,
                    mnc!(),
                    r#", "origOPFixedNetworkCodes": ["fixed-1"], "initialDate": "2024-05-01T12:00:00Z","#,
                    r#" "federationNotificationDest": "https://op-a.example/ewbi/callbacks/abc/partner", "partnerStatusLink": "https://op-a.example/ewbi/callbacks/abc/partner","#,
                    r#" "partnerCallbackCredentials": {"tokenUrl": "https://op-a.example/oauth2/token", "clientId": "op-b", "clientSecret": "cb-secret"}, "x-opExtensions": ["usage-v1"]}"#
                ),
                round_trip::<FederationRequestData>,
            ),
            (
                "CreateFederation",
                "response",
                concat!(
                    r#"{"partnerOPFederationId": "op-beta", "partnerOPCountryCode": "DE", "federationContextId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "edgeDiscoveryServiceEndPoint": "#,
                    endpoint!(),
                    r#", "lcmServiceEndPoint": "#,
                    endpoint!(),
                    r#", "partnerOPMobileNetworkCodes": "#,
                    mnc!(),
                    r#", "partnerOPFixedNetworkCodes": ["fixed-2"], "offeredAvailabilityZones": ["#,
                    zone!(),
                    r#"], "platformCaps": ["homeRouting", "Anchoring"], "capabilities": ["homeRouting", "Anchoring"], "x-opExtensions": ["usage-v1", "telemetry-v1"]}"#
                ),
                round_trip::<FederationResponseData>,
            ),
            (
                "GetFederationDetails",
                "response",
                concat!(r#"{"edgeDiscoveryServiceEndPoint": "#, endpoint!(), r#", "lcmServiceEndPoint": "#, endpoint!(), r#", "allowedMobileNetworkIds": "#, mnc!(), r#", "allowedFixedNetworkIds": ["fixed-1"], "offeredAvailabilityZones": ["#, zone!(), "]}"),
                round_trip::<FederationDetails>,
            ),
            (
                "UpdateFederation",
                "request",
                concat!(r#"{"objectType": "MOBILE_NETWORK_CODES", "operationType": "UPDATE_CODES", "addMobileNetworkIds": "#, mnc!(), r#", "removeMobileNetworkIds": {"mcc": "208", "mncs": ["15"]}, "addFixedNetworkIds": ["fixed-3"], "removeFixedNetworkIds": ["fixed-1"], "modificationDate": "2024-05-02T08:30:00.250Z"}"#),
                round_trip::<UpdateFederationRequest>,
            ),
            ("UpdateFederation", "response", concat!(r#"{"edgeDiscoveryServiceEndPoint": "#, endpoint!(), r#", "lcmServiceEndPoint": {"port": 8443, "ipv4Addresses": ["198.51.100.2"]}}"#), round_trip::<FederationDetails>),
            ("ZoneSubscribe", "request", r#"{"acceptedAvailabilityZones": ["zone-paris-1", "zone-lyon-2"], "availZoneNotifLink": "https://op-a.example/ewbi/callbacks/abc/zones"}"#, round_trip::<ZoneRegistrationRequestData>),
            ("ZoneSubscribe", "response", concat!(r#"{"acceptedZoneResourceInfo": ["#, zone_registered!(), "]}"), round_trip::<ZoneRegistrationResponseData>),
            ("GetZoneData", "response", zone_registered!(), round_trip::<ZoneRegisteredData>),
            (
                "UploadArtefact",
                "request",
                concat!(
                    r#"{"artefactId": "9b2c7c1e-6d3a-4b8e-9f1a-2c3d4e5f6a7b", "appProviderId": "p1a2b3c4d5e6", "artefactName": "artefact_main", "artefactVersionInfo": "1.0", "artefactDescription": "main artefact","#,
                    r#" "artefactVirtType": "CONTAINER_TYPE", "artefactFileName": "artefact.tgz", "artefactFileFormat": "TARGZ", "artefactDescriptorType": "COMPONENTSPEC", "repoType": "UPLOAD", "artefactRepoLocation": "#,
                    repo!(),
                    r#", "componentSpec": ["#,
                    component_spec!(),
                    "]}"
                ),
                round_trip::<ArtefactUpload>,
            ),
            (
                "GetArtefact",
                "response",
                concat!(
                    r#"{"artefactId": "9b2c7c1e-6d3a-4b8e-9f1a-2c3d4e5f6a7b", "appProviderId": "p1a2b3c4d5e6", "artefactName": "artefact_main", "artefactDescription": "main artefact", "artefactVersionInfo": "1.0","#,
                    r#" "artefactVirtType": "CONTAINER_TYPE", "artefactFileName": "artefact.tgz", "artefactFileFormat": "TARGZ", "artefactDescriptorType": "HELM", "repoType": "PUBLICREPO", "artefactRepoLocation": {"repoURL": "https://charts.example/app", "password": "***"}}"#
                ),
                round_trip::<ArtefactDetails>,
            ),
            (
                "UploadFile",
                "request",
                concat!(
                    r#"{"fileId": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "appProviderId": "p1a2b3c4d5e6", "fileName": "image_main", "fileDescription": "server image", "fileVersionInfo": "2.1", "fileType": "DOCKER","#,
                    r#" "checksum": "sha256:0123abcd", "imgOSType": "#,
                    os_type!(),
                    r#", "imgInsSetArch": "ISA_X86_64", "repoType": "PRIVATEREPO", "fileRepoLocation": "#,
                    repo!(),
                    "}"
                ),
                round_trip::<FileUpload>,
            ),
            (
                "ViewFile",
                "response",
                concat!(
                    r#"{"fileId": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "appProviderId": "p1a2b3c4d5e6", "fileName": "image_main", "fileDescription": "server image", "fileVersionInfo": "2.1", "fileType": "QCOW2","#,
                    r#" "checksum": "0123abcd", "imgOSType": {"architecture": "x86", "distribution": "OTHER", "version": "OS_VERSION_ DEBIAN_11", "license": "NOT_SPECIFIED"}, "imgInsSetArch": "ISA_X86", "repoType": "UPLOAD","#,
                    r#" "fileRepolocation": {"repoURL": "https://registry.example/img"}, "fileRepoLocation": {"repoURL": "https://registry.example/img"}}"#
                ),
                round_trip::<FileDetails>,
            ),
            (
                "OnboardApplication",
                "request",
                concat!(
                    r#"{"appId": "a3f9c2e1b7d4", "appProviderId": "p1a2b3c4d5e6", "appDeploymentZones": [{"countryCode": "DE", "zoneInfo": "zone-paris-1"}], "appMetaData": "#,
                    app_meta!(),
                    r#", "appQoSProfile": "#,
                    qos!(),
                    r#", "appComponentSpecs": "#,
                    app_component!(),
                    r#", "appStatusCallbackLink": "https://op-a.example/ewbi/callbacks/abc/app"}"#
                ),
                round_trip::<OnboardApplicationRequest>,
            ),
            (
                "UpdateApplication",
                "request",
                r#"{"appUpdQoSProfile": {"latencyConstraints": "ULTRALOW", "latencyConstraint": "ULTRALOW", "bandwidthRequired": 20, "mobilitySupport": false, "multiUserClients": "APP_TYPE_SINGLE_USER", "noOfUsersPerAppInst": 1, "appProvisioning": true}, "appComponentSpecs": [{"serviceNameNB": "s1a2b3c4d5", "serviceNameEW": "e1a2b3c4d5", "componentName": "c1a2b3c4d5", "artefactId": "9b2c7c1e-6d3a-4b8e-9f1a-2c3d4e5f6a7b"}]}"#,
                round_trip::<UpdateApplicationRequest>,
            ),
            (
                "ViewApplication",
                "response",
                concat!(
                    r#"{"appId": "a3f9c2e1b7d4", "appProviderId": "p1a2b3c4d5e6", "appDeploymentZones": [{"countryCode": "DE", "zoneInfo": "zone-paris-1"}], "appMetaData": "#,
                    app_meta!(),
                    r#", "appQoSProfile": "#,
                    qos!(),
                    r#", "appComponentSpecs": "#,
                    app_component!(),
                    "}"
                ),
                round_trip::<ApplicationDetails>,
            ),
            ("OnboardExistingAppNewZones", "request", r#"["zone-lyon-2", "zone-nice-3"]"#, round_trip::<Vec<String>>),
            ("LockUnlockApplicationZone", "request", r#"[{"zoneId": "zone-paris-1", "forbid": true}, {"zoneId": "zone-lyon-2", "forbid": false}]"#, round_trip::<Vec<ZoneForbid>>),
            (
                "InstallApp",
                "request",
                r#"{"appId": "a3f9c2e1b7d4", "appVersion": "1.2.3", "appProviderId": "p1a2b3c4d5e6", "zoneInfo": {"zoneId": "zone-paris-1", "flavourId": "small-x86", "resourceConsumption": "RESERVED_RES_SHALL", "resPool": "r0a1b2c3d4"}, "appInstCallbackLink": "https://op-a.example/ewbi/callbacks/abc/instance"}"#,
                round_trip::<InstallAppRequest>,
            ),
            ("InstallApp", "response", r#"{"zoneId": "zone-paris-1", "appInstIdentifier": "i0123456789abcdef"}"#, round_trip::<InstallAppResponse>),
            ("GetAppInstanceDetails", "response", concat!(r#"{"appInstanceState": "READY", "accesspointInfo": "#, access_points!(), "}"), round_trip::<AppInstanceDetails>),
            (
                "GetAllAppInstances",
                "response",
                r#"[{"zoneId": "zone-paris-1", "appInstanceInfo": [{"appInstIdentifier": "i0123456789abcdef", "appInstanceState": "PENDING"}, {"appInstIdentifier": "i1123456789abcdef", "appInstanceState": "TERMINATING"}]}]"#,
                round_trip::<Vec<ZoneAppInstances>>,
            ),
            (
                "CreateResourcePools",
                "request",
                r#"{"resRequest": {"poolName": "pool_gold_1", "flavours": [{"flavourId": "small-x86", "numFlavour": 4, "minNumOfFlavours": 2}], "reserveDuration": {"numOfDays": 10, "numOfMonths": 1, "numOfYears": 0}}, "resourceReservationCallbackLink": "https://op-a.example/ewbi/callbacks/abc/pool"}"#,
                round_trip::<CreateResourcePoolsRequest>,
            ),
            ("CreateResourcePools", "response", r#"{"poolName": "pool_gold_1", "poolId": "r0a1b2c3d4"}"#, round_trip::<CreateResourcePoolsResponse>),
            (
                "ViewISVResPool",
                "response",
                r#"[{"poolName": "pool_gold_1", "reservedPoolId": "r0a1b2c3d4", "reservedFlavours": [{"flavourId": "small-x86", "count": 3}], "reserveDuration": {"numOfDays": 10}, "reservationTime": "2024-05-01T12:00:00Z"}]"#,
                round_trip::<Vec<ReservedPool>>,
            ),
            ("UpdateISVResPool", "request", r#"[{"updateType": "ADD", "flavourId": "small-x86", "count": 6}, {"updateType": "DURATION", "flavourId": "small-x86", "count": 6, "reserveDuration": {"numOfMonths": 2}}]"#, round_trip::<Vec<PoolUpdate>>),
            (
                "GetCandidateZones",
                "request",
                r#"{"appProviderId": "p1a2b3c4d5e6", "appId": "a3f9c2e1b7d4", "edgeDiscoveryFilters": {"location": {"geo_location": "48.8566, 2.3522", "rad_location": [{"carrier": "5G", "mcc": 208, "mnc": 1, "cellId": 123456789, "areaCode": 42}]}}}"#,
                round_trip::<CandidateZonesRequest>,
            ),
            ("GetCandidateZones", "response", concat!(r#"[{"zoneId": "zone-paris-1", "latencyServiceEndPoints": "#, endpoint!(), "}]"), round_trip::<Vec<DiscoveredEdgeNode>>),
            ("*", "error", r#"{"title": "Bad request", "detail": "appVersion: must be a version", "cause": "validation", "invalidParams": [{"param": "appVersion", "reason": "must be a version"}], "status": 400}"#, round_trip::<ProblemDetails>),
            (
                "onPartnerStatusEvent",
                "callback",
                concat!(
                    r#"{"federationContextId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "objectType": "ZONES", "operationType": "STATUS", "edgeDiscoverySvcEndPoint": "#,
                    endpoint!(),
                    r#", "lcmSvcEndPoint": "#,
                    endpoint!(),
                    r#", "addMobileNetworkIds": "#,
                    mnc!(),
                    r#", "removeMobileNetworkIds": "#,
                    mnc!(),
                    r#", "addFixedNetworkIds": ["fixed-4"], "removeFixedNetworkIds": ["fixed-2"], "addZones": ["#,
                    zone!(),
                    r#"], "removeZones": ["zone-lyon-2"], "zoneStatus": [{"zoneId": "zone-paris-1", "status": "TEMPORARY_FAILURE"}], "federationStatus": "AVAILABLE", "modificationDate": "2024-05-03T10:00:00Z"}"#
                ),
                round_trip::<PartnerStatusEvent>,
            ),
            (
                "onZoneResourceUpdateEvent",
                "callback",
                concat!(
                    r#"{"federationContextId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "zoneId": "zone-paris-1", "zoneResUpdInfo": [{"availableCompResources": ["#,
                    compute!(),
                    r#"], "availableNetResources": {"egressBandWidth": 500, "dedicatedNIC": 1, "supportSriov": false, "supportDPDK": true}}]}"#
                ),
                round_trip::<ZoneResourceUpdateEvent>,
            ),
            (
                "onApplicationOnboardStatusEvent",
                "callback",
                r#"{"federationContextId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "appId": "a3f9c2e1b7d4", "statusInfo": [{"zoneId": "zone-paris-1", "onboardStatusInfo": "ONBOARDED"}, {"zoneId": "zone-lyon-2", "onboardStatusInfo": "FAILED"}]}"#,
                round_trip::<AppOnboardStatusEvent>,
            ),
            (
                "onInstanceStatusEvent",
                "callback",
                concat!(
                    r#"{"federationContextId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "appId": "a3f9c2e1b7d4", "appInstIdentifier": "i0123456789abcdef", "appInstanceId": "i0123456789abcdef", "zoneId": "zone-paris-1","#,
                    r#" "appInstanceInfo": {"appInstanceState": "READY", "message": "running", "accesspointInfo": "#,
                    access_points!(),
                    r#", "accessPointInfo": "#,
                    access_points!(),
                    r#"}, "modificationDate": "2024-05-03T10:00:05Z"}"#
                ),
                round_trip::<InstanceStatusEvent>,
            ),
            (
                "onResourceStatusChangeEvent",
                "callback",
                r#"{"federationContextId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "appProviderId": "p1a2b3c4d5e6", "zoneId": "zone-paris-1", "poolId": "r0a1b2c3d4", "grantedFlavours": [{"flavourId": "small-x86", "numFlavour": 3}]}"#,
                round_trip::<ResourceStatusChangeEvent>,
            ),
        ]
    }

    #[test]
    fn every_golden_sample_round_trips() {
        let dump = std::env::var_os("EWBI_WIRE_DUMP").map(std::path::PathBuf::from);
        for (name, part, json, check) in golden() {
            let out = check(json);
            if let Some(dir) = &dump {
                // For checking against the spec files outside the test (see the report of the
                // change): the official form, and the same value serialized for katalis.
                std::fs::write(dir.join(format!("{name}.{part}.json")), serde_json::to_vec_pretty(&out).expect("json")).expect("dump");
                std::fs::create_dir_all(dir.join("katalis")).expect("dir");
                let value: Value = serde_json::from_str(json).expect("json");
                let katalis = katalis_form(name, part, value);
                std::fs::write(dir.join("katalis").join(format!("{name}.{part}.json")), serde_json::to_vec_pretty(&katalis).expect("json")).expect("dump");
            }
        }
    }

    /// `value` (a golden sample of `name`/`part`) re-serialized through [`Dialect::Katalis`].
    fn katalis_form(name: &str, part: &str, value: Value) -> Value {
        fn via<T: Serialize + DeserializeOwned>(v: Value) -> Value {
            Dialect::Katalis.to_value(&serde_json::from_value::<T>(v).expect("reads")).expect("writes")
        }
        match (name, part) {
            ("UploadArtefact", _) => via::<ArtefactUpload>(value),
            ("GetZoneData", _) => via::<ZoneRegisteredData>(value),
            ("ZoneSubscribe", "response") => via::<ZoneRegistrationResponseData>(value),
            ("onZoneResourceUpdateEvent", _) => via::<ZoneResourceUpdateEvent>(value),
            ("OnboardApplication", _) => via::<OnboardApplicationRequest>(value),
            ("ViewApplication", _) => via::<ApplicationDetails>(value),
            ("ViewFile", _) => via::<FileDetails>(value),
            _ => value,
        }
    }

    #[test]
    fn golden_samples_cover_every_body() {
        let samples = golden();
        let has = |name: &str, part: &str| samples.iter().any(|(n, p, _, _)| *n == name && *p == part);
        for op in OPERATIONS {
            if op.request.is_some() {
                assert!(has(op.operation_id, "request"), "no request sample for {}", op.operation_id);
            }
            if op.response.is_some() {
                assert!(has(op.operation_id, "response"), "no response sample for {}", op.operation_id);
            }
        }
        for cb in CALLBACKS {
            assert!(has(cb.name, "callback"), "no sample for {}", cb.name);
        }
        assert!(has("*", "error"));
    }

    #[test]
    fn operation_index_is_complete_and_matches_the_spec_files() {
        let mut ids: Vec<&str> = OPERATIONS.iter().map(|o| o.operation_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 30);
        assert_eq!(OPERATIONS.iter().filter(|o| o.katalis_only).count(), 1);
        let dir = std::path::Path::new("/work/shared/specs/gsma-opg-ewbi");
        let (Ok(official), Ok(katalis)) = (std::fs::read_to_string(dir.join("FederationApi_v1.3.0-official.yaml")), std::fs::read_to_string(dir.join("neonephos-katalis/FederationApi_v1.3.0.yaml"))) else {
            eprintln!("spec files not present; skipping the comparison");
            return;
        };
        let op_ids = |text: &str| -> Vec<String> { text.lines().filter_map(|l| l.trim().strip_prefix("operationId:")).map(|s| s.trim().to_string()).collect() };
        let (off, kat) = (op_ids(&official), op_ids(&katalis));
        assert_eq!(off.len(), 29);
        assert_eq!(kat.len(), 30);
        for op in OPERATIONS {
            let text = if op.katalis_only { &katalis } else { &official };
            assert!((if op.katalis_only { &kat } else { &off }).iter().any(|i| i == op.operation_id), "{} not in the spec", op.operation_id);
            assert!(text.lines().any(|l| l.trim_end().trim_end_matches(':') == format!("  {}", op.path)), "path {} not in the spec", op.path);
        }
        for cb in CALLBACKS {
            assert!(official.contains(&format!("{}:", cb.name)), "{} not in the spec", cb.name);
        }
    }

    #[test]
    fn typo_spellings_are_read_alone_and_both_written() {
        // FederationResponseData: only the undeclared `capabilities`.
        let r: FederationResponseData = serde_json::from_value(json!({"partnerOPFederationId": "op-b", "capabilities": ["Anchoring"]})).expect("reads");
        assert_eq!(r.platform_caps, vec![PlatformCap::Anchoring]);
        let out = serde_json::to_value(&r).expect("writes");
        assert_eq!(out["platformCaps"], json!(["Anchoring"]));
        assert_eq!(out["capabilities"], json!(["Anchoring"]));
        // Neither: both written, empty.
        let r: FederationResponseData = serde_json::from_value(json!({"partnerOPFederationId": "op-b"})).expect("reads");
        assert_eq!(serde_json::to_value(&r).expect("writes"), json!({"partnerOPFederationId": "op-b", "platformCaps": [], "capabilities": []}));

        // InterfaceDetails: only the required `interfaceName`, and neither.
        let i: InterfaceDetails = serde_json::from_value(json!({"interfaceId": "f1a2b3c4d5", "commProtocol": "UDP", "commPort": 5000, "visibilityType": "VISIBILITY_INTERNAL", "interfaceName": "net1"})).expect("reads");
        assert_eq!(i.interface_name.as_deref(), Some("net1"));
        let out = serde_json::to_value(&i).expect("writes");
        assert_eq!((&out["InterfaceName"], &out["interfaceName"]), (&json!("net1"), &json!("net1")));
        let i = InterfaceDetails { interface_name: None, ..i };
        let out = serde_json::to_value(&i).expect("writes");
        assert_eq!(out.get("InterfaceName"), None);
        assert_eq!(out["interfaceName"], json!(""));
        assert_eq!(serde_json::from_value::<InterfaceDetails>(out).expect("reads").interface_name, None);

        // AppComponentSpecs item: only `componentname`.
        let c: AppComponentSpec = serde_json::from_value(json!({"serviceNameNB": "s1a2b3c4d5", "componentname": "c1a2b3c4d5", "artefactId": "x"})).expect("reads");
        assert_eq!(c.component_name.as_deref(), Some("c1a2b3c4d5"));
        let out = serde_json::to_value(&c).expect("writes");
        assert_eq!((&out["componentName"], &out["componentname"]), (&json!("c1a2b3c4d5"), &json!("c1a2b3c4d5")));

        // ComponentSpec without networkResourceProfile: an empty list is written.
        let mut spec: Value = serde_json::from_str(component_spec!()).expect("json");
        spec.as_object_mut().expect("object").remove("networkResourceProfile");
        let typed: ComponentSpec = serde_json::from_value(spec.clone()).expect("reads");
        assert_eq!(typed.network_resource_profile, None);
        let out = serde_json::to_value(&typed).expect("writes");
        assert_eq!(out["networkResourceProfile"], json!([]));
        spec["networkResourceProfile"] = json!([]);
        assert_eq!(out, spec);
        // A received value of another type is carried unchanged.
        spec["networkResourceProfile"] = json!({"bandwidth": 10});
        let typed: ComponentSpec = serde_json::from_value(spec.clone()).expect("reads");
        assert_eq!(serde_json::to_value(&typed).expect("writes"), spec);

        // ViewFile: only the katalis `fileRepoLocation`.
        let mut f: Value = serde_json::from_str(golden().into_iter().find(|(n, ..)| *n == "ViewFile").expect("sample").2).expect("json");
        f.as_object_mut().expect("object").remove("fileRepolocation");
        let typed: FileDetails = serde_json::from_value(f).expect("reads");
        let out = serde_json::to_value(&typed).expect("writes");
        assert_eq!(out["fileRepolocation"], json!({"repoURL": "https://registry.example/img"}));

        // UpdateApplication: only the typo'd `latencyConstraint`.
        let q: AppUpdQoSProfile = serde_json::from_value(json!({"latencyConstraint": "LOW"})).expect("reads");
        assert_eq!(q.latency_constraints, Some(LatencyConstraints::Low));
        assert_eq!(serde_json::to_value(&q).expect("writes"), json!({"latencyConstraints": "LOW", "latencyConstraint": "LOW"}));
    }

    #[test]
    fn katalis_bodies_are_read() {
        // numCPU as a Vcpu string; diskStorage absent.
        let c: ComputeResourceInfo = serde_json::from_value(json!({"cpuArchType": "ISA_ARM_64", "numCPU": "2.5", "memory": 1024})).expect("reads");
        assert_eq!(c.num_cpu, NumCpu::from_millis(2500));
        assert_eq!(serde_json::to_value(&c).expect("writes")["numCPU"], json!(3));
        assert_eq!(Dialect::Katalis.to_value(&c).expect("writes")["numCPU"], json!("2.5"));
        // The form is restored after a katalis serialization.
        assert_eq!(serde_json::to_value(&c).expect("writes")["numCPU"], json!(3));
        // Flavour.numCPU stays an integer in both dialects.
        let f: Flavour = serde_json::from_str(flavour!()).expect("reads");
        assert_eq!(Dialect::Katalis.to_value(&f).expect("writes")["numCPU"], json!(2));

        // CreateFederation with partnerStatusLink and credentials only.
        let req: FederationRequestData = serde_json::from_value(json!({
            "origOPFederationId": "op-kat", "initialDate": "2025-01-01T00:00:00Z",
            "partnerStatusLink": "https://kat.example/cb/status",
            "partnerCallbackCredentials": {"tokenUrl": "https://kat.example/token", "clientId": "cid", "clientSecret": "csec"}
        }))
        .expect("reads");
        assert_eq!(req.dialect(), Dialect::Katalis);
        assert_eq!(req.notification_link(), Some("https://kat.example/cb/status"));
        assert_eq!(req.partner_callback_credentials.as_ref().map(|c| c.client_id.as_str()), Some("cid"));
        assert!(req.validate().is_ok());
        assert!(!format!("{req:?}").contains("csec"), "the secret must not be in Debug output");
        let none = FederationRequestData { partner_status_link: None, ..req.clone() };
        assert_eq!(none.validate().map_err(|e| e.field), Err("federationNotificationDest".to_string()));

        // CreateFederation answer: platformCaps and federationContextId, no endpoints.
        let resp: FederationResponseData = serde_json::from_value(json!({"partnerOPFederationId": "op-kat", "federationContextId": "ctx-1", "platformCaps": ["homeRouting"]})).expect("reads");
        assert_eq!(resp.edge_discovery_service_end_point, None);
        assert_eq!(serde_json::to_value(&resp).expect("writes")["capabilities"], json!(["homeRouting"]));

        // InstallApp with the originator's instance id and a free-form version.
        let install: InstallAppRequest = serde_json::from_value(json!({
            "appId": "app-1", "appVersion": "v1.0-beta", "appProviderId": "prov-1", "appInstanceId": "inst-1",
            "zoneInfo": {"zoneId": "zone-1", "flavourId": "fl-1"}, "appInstCallbackLink": "https://kat.example/cb/inst"
        }))
        .expect("reads");
        assert_eq!(install.app_instance_id.as_deref(), Some("inst-1"));
        assert_eq!(install.validate().map_err(|e| e.field), Err("appVersion".to_string()));

        // ViewApplication / OnboardApplication with bare zone ids, katalis enum spellings.
        let mut view: Value = serde_json::from_str(golden().into_iter().find(|(n, ..)| *n == "ViewApplication").expect("sample").2).expect("json");
        view["appDeploymentZones"] = json!(["zone-1", "zone-2"]);
        view["appMetaData"]["category"] = json!("SURVEILLANCE");
        view["appComponentSpecs"] = json!([{"artefactId": "art-1"}]);
        let typed: ApplicationDetails = serde_json::from_value(view).expect("reads");
        assert_eq!(typed.app_deployment_zones.iter().map(DeploymentZone::zone_id).collect::<Vec<_>>(), vec!["zone-1", "zone-2"]);
        assert_eq!(typed.app_meta_data.category, Some(AppCategory::Surveillance));
        let out = serde_json::to_value(&typed).expect("writes");
        assert_eq!(out["appDeploymentZones"], json!(["zone-1", "zone-2"]));
        assert_eq!(out["appMetaData"]["category"], json!("SURVELIANCE"));
        assert_eq!(typed.app_deployment_zones[0].for_dialect(Dialect::Official, "DE"), DeploymentZone::Zone { country_code: "DE".into(), zone_info: "zone-1".into() });
        assert_eq!(DeploymentZone::Zone { country_code: "DE".into(), zone_info: "z".into() }.for_dialect(Dialect::Katalis, "FR"), DeploymentZone::Id("z".into()));

        // onInstanceStatusEvent with appInstanceId, accessPointInfo and message.
        let ev: InstanceStatusEvent = serde_json::from_value(json!({
            "federationContextId": "ctx-1", "appId": "app-1", "appInstanceId": "inst-1", "zoneId": "zone-1",
            "appInstanceInfo": {"appInstanceState": "FAILED", "message": "image pull failed", "accessPointInfo": [{"interfaceId": "web", "accessPoints": {"port": 80, "fqdn": "x.example"}}]}
        }))
        .expect("reads");
        assert_eq!(ev.app_inst_identifier, "inst-1");
        assert_eq!(ev.app_instance_info.access_point_info.as_ref().map(Vec::len), Some(1));
        let out = serde_json::to_value(&ev).expect("writes");
        assert_eq!((&out["appInstIdentifier"], &out["appInstanceId"]), (&json!("inst-1"), &json!("inst-1")));
        assert_eq!(out["appInstanceInfo"]["accesspointInfo"], out["appInstanceInfo"]["accessPointInfo"]);
        assert!(serde_json::from_value::<InstanceStatusEvent>(json!({"appId": "a", "zoneId": "z", "appInstanceInfo": {"appInstanceState": "READY"}})).is_err(), "an instance id is required");

        // Zone callback with ids and a millicpu amount.
        let z: ZoneResourceUpdateEvent = serde_json::from_value(json!({"federationContextId": "ctx-1", "zoneId": "zone-1", "zoneResUpdInfo": [{"availableCompResources": [{"cpuArchType": "ISA_X86_64", "numCPU": "500m", "memory": 512}]}]})).expect("reads");
        let cpu = z.zone_res_upd_info[0].available_comp_resources.as_ref().map(|c| c[0].num_cpu);
        assert_eq!(cpu, Some(NumCpu::from_millis(500)));
        assert_eq!(Dialect::Katalis.to_value(&z).expect("writes")["zoneResUpdInfo"][0]["availableCompResources"][0]["numCPU"], json!("0.5"));

        // CreateResourcePools with the originator's pool id; artefact without repoType.
        let pools: CreateResourcePoolsRequest = serde_json::from_value(json!({"resRequest": {"poolName": "p", "poolId": "pool-1", "flavours": [{"flavourId": "f", "numFlavour": 1}], "reserveDuration": {"numOfDays": 1}}, "resourceReservationCallbackLink": "u"})).expect("reads");
        assert_eq!(pools.res_request.pool_id.as_deref(), Some("pool-1"));
        let env: CompEnvParams = serde_json::from_value(json!({"envVarName": "IP", "envValueType": "PLATFORM_DEFINED_IP"})).expect("reads");
        assert_eq!(serde_json::to_value(&env).expect("writes")["envValueType"], json!("PLATFRM_DEFINED_IP"));
        let os: OsType = serde_json::from_value(json!({"architecture": "x86_64", "distribution": "OTHER", "version": "OS_VERSION_DEBIAN_11", "license": "NOT_SPECIFIED"})).expect("reads");
        assert_eq!(serde_json::to_value(os).expect("writes")["version"], json!("OS_VERSION_ DEBIAN_11"));
        // The katalis spellings are written through Dialect::Katalis.
        assert_eq!(Dialect::Katalis.to_value(&os).expect("writes")["version"], json!("OS_VERSION_DEBIAN_11"));
        assert_eq!(Dialect::Katalis.to_value(&env).expect("writes")["envValueType"], json!("PLATFORM_DEFINED_IP"));
        assert_eq!(Dialect::Katalis.to_value(&typed.app_meta_data).expect("writes")["category"], json!("SURVEILLANCE"));
        assert_eq!(Dialect::Katalis.to_value(&AppCategory::Industrial).expect("writes"), json!("INDUSTRIAL"));
        assert_eq!(serde_json::to_value(AppCategory::Industrial).expect("writes"), json!("IDUSTRIAL"));
        assert_eq!(Dialect::current(), Dialect::Official);
    }

    #[test]
    fn multipart_parts_round_trip() {
        let sample = golden().into_iter().find(|(n, ..)| *n == "UploadArtefact").expect("sample").2;
        let upload: ArtefactUpload = serde_json::from_str(sample).expect("reads");
        let mut parts = form_fields(&upload).expect("parts");
        let spec = parts.iter().find(|(k, _)| k == "componentSpec").map(|(_, v)| v.clone()).expect("componentSpec part");
        assert!(spec.starts_with('['), "componentSpec is JSON-encoded: {spec}");
        assert!(parts.iter().any(|(k, v)| k == "artefactName" && v == "artefact_main"), "strings are sent raw");
        parts.push(("artefactFile".into(), "\u{1}binary".into()));
        let back: ArtefactUpload = from_form_fields(parts).expect("reads back");
        assert_eq!(back, upload);

        let sample = golden().into_iter().find(|(n, ..)| *n == "UploadFile").expect("sample").2;
        let file: FileUpload = serde_json::from_str(sample).expect("reads");
        let back: FileUpload = from_form_fields(form_fields(&file).expect("parts")).expect("reads back");
        assert_eq!(back, file);
    }

    #[test]
    fn pattern_checks() {
        for ok in ["1", "1.2", "1.2.3", "10.20.30"] {
            assert!(check_version(ok, "version").is_ok(), "{ok}");
        }
        for bad in ["", "1.", ".1", "1.2.3.4", "100", "v1", "1.2-beta"] {
            assert_eq!(check_version(bad, "appMetaData.version").map_err(|e| e.field), Err("appMetaData.version".to_string()), "{bad}");
        }
        let token = "Tk0123456789abcdef0123456789abcdef";
        assert!(check_access_token(token, Dialect::Official, "accessToken").is_ok());
        assert!(check_access_token("0k0123456789abcdef0123456789abcdef", Dialect::Official, "accessToken").is_err());
        assert!(check_access_token("short_token", Dialect::Official, "accessToken").is_err());
        assert!(check_access_token("short-token!", Dialect::Katalis, "accessToken").is_ok());
        assert!(check_access_token("short", Dialect::Katalis, "accessToken").is_err());

        assert_eq!(check_geolocation("48.8566,2.3522", "geolocation"), Ok((48.8566, 2.3522)));
        assert_eq!(check_geolocation("-33,151.2", "geolocation"), Ok((-33.0, 151.2)));
        assert!(check_geolocation("48.8566, 2.3522", "geolocation").is_ok(), "katalis allows a blank");
        for bad in ["48.85661,2.35", "48.85", "95.0,2.0", "48.8,181", "a,b", "123.4,5"] {
            assert_eq!(check_geolocation(bad, "geolocation").map_err(|e| e.field), Err("geolocation".to_string()), "{bad}");
        }
        assert_eq!(format_geolocation(48.856_61, 2.352_22, 2), "48.86,2.35");
        assert_eq!(format_geolocation(48.856_61, 2.352_22, 9), "48.8566,2.3522");
        assert!(check_geolocation(&format_geolocation(-89.99999, 179.99999, 4), "g").is_ok());
        assert_eq!(check_client_geo_location("48.856613, 2.352222", "geo_location"), Ok((48.856613, 2.352222)));
        assert!(check_client_geo_location("48.8", "geo_location").is_err());
        assert!(check_identifier("zone-paris-1", "zoneId").is_ok());
        assert!(check_identifier("-zone", "zoneId").is_err());
        assert!(check_country_code("FR", "c").is_ok() && check_country_code("fr", "c").is_err());

        let meta: AppMetaData = serde_json::from_str(app_meta!()).expect("reads");
        assert!(meta.validate(Dialect::Official).is_ok());
        let bad = AppMetaData { access_token: "tooshort".into(), ..meta.clone() };
        assert_eq!(bad.validate(Dialect::Official).map_err(|e| e.field), Err("appMetaData.accessToken".to_string()));
        assert!(bad.validate(Dialect::Katalis).is_ok());

        let ep: ServiceEndpoint = serde_json::from_str(endpoint!()).expect("reads");
        assert!(ep.validate().is_ok());
        assert_eq!(ServiceEndpoint { port: 1, ..ServiceEndpoint::default() }.validate().map_err(|e| e.field), Err("fqdn".to_string()));
        assert!(ServiceEndpoint { ipv4_addresses: Some(vec!["300.1.1.1".into()]), ..ServiceEndpoint::default() }.validate().is_err());
        let zone: ZoneDetails = serde_json::from_str(zone!()).expect("reads");
        assert!(zone.validate().is_ok());

        assert!(UpdateApplicationRequest::default().validate().is_err());
        let only_users = UpdateApplicationRequest { app_upd_qos_profile: Some(AppUpdQoSProfile { no_of_users_per_app_inst: Some(3), ..Default::default() }), app_component_specs: None };
        assert_eq!(only_users.validate().map_err(|e| e.field), Err("appUpdQoSProfile".to_string()));
        assert!(ResourceReservationDuration::default().validate("resRequest.reserveDuration").is_err());

        let p = ProblemDetails::invalid(FieldError::new("appVersion", "bad"));
        let v = serde_json::to_value(&p).expect("writes");
        assert_eq!(v["invalidParams"], json!([{"param": "appVersion", "reason": "bad"}]));
        assert_eq!(v["status"], json!(400));
    }

    #[test]
    fn num_cpu_forms() {
        for (s, millis) in [("2", 2000), ("0.5", 500), ("0.125", 125), ("1.05", 1050), ("500m", 500), ("0", 0), ("0m", 0)] {
            assert_eq!(NumCpu::parse_vcpu(s), Ok(NumCpu::from_millis(millis)), "{s}");
        }
        for bad in ["", ".5", "1.", "1.2345", "5mm", "m", "-1", "+1", "1e3", " 1", "1.5m", "99999999999999999999"] {
            assert_eq!(NumCpu::parse_vcpu(bad).map_err(|e| e.field), Err("numCPU".to_string()), "{bad:?}");
        }
        assert_eq!(NumCpu::from_millis(2500).to_vcpu_string(), "2.5");
        assert_eq!(NumCpu::from_millis(125).to_vcpu_string(), "0.125");
        assert_eq!(NumCpu::from_millis(1050).to_vcpu_string(), "1.05");
        assert_eq!(NumCpu::from_vcpus(3).to_vcpu_string(), "3");
        assert_eq!(NumCpu::from_millis(1).to_official(), 1);
        assert_eq!(NumCpu::from_millis(0).to_official(), 0);
        assert_eq!(NumCpu::from_millis(u64::MAX).to_official(), i32::MAX as u32);
        assert!(serde_json::from_value::<NumCpu>(json!(-1)).is_err());
        assert!(serde_json::from_value::<NumCpu>(json!(1.5)).is_err());
        assert!(serde_json::from_value::<NumCpu>(json!(u64::MAX)).is_err());
        assert_eq!(serde_json::from_value::<NumCpu>(json!(4)).expect("reads"), NumCpu::from_vcpus(4));
        assert_eq!(Dialect::Official.to_value(&NumCpu::from_millis(1500)).expect("writes"), json!(2));
        let bytes = Dialect::Katalis.to_vec(&NumCpu::from_millis(1500)).expect("writes");
        assert_eq!(bytes, b"\"1.5\"");
    }

    proptest! {
        #[test]
        fn num_cpu_round_trips(millis in 0u64..=u64::MAX / 1000, vcpus in 0u32..=i32::MAX as u32) {
            let n = NumCpu::from_millis(millis);
            prop_assert_eq!(NumCpu::parse_vcpu(&n.to_vcpu_string()), Ok(n));
            let v = Dialect::Katalis.to_value(&n).expect("writes");
            prop_assert_eq!(serde_json::from_value::<NumCpu>(v).expect("reads"), n);
            let w = NumCpu::from_vcpus(vcpus);
            let v = serde_json::to_value(w).expect("writes");
            prop_assert_eq!(&v, &json!(vcpus));
            prop_assert_eq!(serde_json::from_value::<NumCpu>(v).expect("reads"), w);
            prop_assert!(u64::from(n.to_official()) * 1000 >= n.millis().min(i32::MAX as u64 * 1000));
        }
    }
}
