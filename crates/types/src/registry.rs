//! The organizations' image registry as the platform tracks it: versions pushed (tag, digest,
//! who, when, the digests a tag had before) and who pulled them (each cloudlet once; its
//! runtime caches the image after).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{Name, Uid};

/// One push of a tag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushRecord {
    /// The manifest digest pushed.
    pub digest: String,
    /// Who pushed it (the registry token's subject).
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A tag of a repository (kind `ImageVersion`, stored under the repository's organization),
/// written from the registry's notifications.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageVersionSpec {
    /// `organization/name`.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The digest the tag names now.
    pub digest: String,
    /// The manifest's size, bytes.
    pub size: u64,
    /// Pushes of this tag, oldest first (the last ones).
    pub history: Vec<PushRecord>,
    /// Manifest pulls by puller (`cloudlet-<name>` for cloudlets' runtimes).
    #[serde(default)]
    pub pulls: BTreeMap<String, u64>,
}

/// An image version as answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageVersionView {
    /// Its organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Name>,
    /// What an app names as `appRepo.imagePath`.
    pub reference: String,
    /// `organization/name`.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The digest the tag names now.
    pub digest: String,
    /// The manifest's size, bytes.
    pub size: u64,
    /// Who pushed the current digest.
    pub pushed_by: String,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<DateTime<Utc>>,
    /// Every push remembered, oldest first.
    pub history: Vec<PushRecord>,
    /// Pulls by cloudlets' runtimes in all.
    pub cloudlet_pulls: u64,
    /// Pulls per cloudlet (the operator's view; empty for developers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cloudlets: BTreeMap<String, u64>,
    /// Apps whose image this is.
    pub used_by: Vec<Uid>,
}

/// One organization's part of the registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryNamespace {
    /// The organization.
    pub organization: Name,
    /// What its image references start with.
    pub prefix: String,
    /// Whether the caller may push there.
    pub push: bool,
}

/// Where the registry is and what the caller may do in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryInfo {
    /// `host:port`, for `podman login`.
    pub host: String,
    /// The service its tokens name.
    pub service: String,
    /// The organizations whose repositories the caller may read.
    pub namespaces: Vec<RegistryNamespace>,
}
