//! Object metadata and status, shared by every kind.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{Name, Uid};

/// The kinds of object the platform stores. The kind decides the store prefix and whether the
/// object belongs to an organization (developer-owned) or to the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub enum Kind {
    Region,
    Zone,
    Cloudlet,
    Flavor,
    Organization,
    User,
    App,
    AppInstance,
    PlacementPolicy,
    PlatformService,
    Relocation,
    AmsRegistration,
    AmsSubscription,
    /// An operator allowed to call our EWBI (partner role).
    FederationPartner,
    /// A federation context a partner created on our EWBI.
    Federation,
    /// A partner whose EWBI we call (originating role).
    FederationPeer,
    /// A file a partner uploaded.
    EwbiFile,
    /// An artefact a partner uploaded.
    EwbiArtefact,
    /// An app a partner onboarded.
    EwbiApp,
    /// An instance a partner installed.
    EwbiInstance,
    /// A resource pool a partner reserved.
    EwbiPool,
    /// One usage event recorded for settlement.
    UsageLedger,
    /// A callback to a partner, kept until it is delivered.
    EwbiOutbox,
    /// What a partner was last told about its zones.
    EwbiZoneView,
    /// A cloudlet a partner operator federated with us (`/api/v1/auth/create/cloudlet`), and
    /// how far its onboarding workflow (reserve … compliance) has got.
    FederatedCloudlet,
    /// A key a user made for scripts and CI: a bearer credential with a role no higher than the
    /// user's, stored hashed.
    ApiKey,
    /// A relying party of the platform's OpenID Connect provider (a console, a dashboard).
    OidcClient,
    /// One audited write through the management APIs.
    AuditRecord,
    /// A webhook that receives alarms (an organization's or the operator's).
    AlarmReceiver,
    /// Resource thresholds that raise alarms (an organization's or the operator's).
    AlertPolicy,
    /// An alarm raised by the platform, kept while it fires and for a while after.
    Alarm,
    /// A tag pushed to an organization's registry, with its history and pulls.
    ImageVersion,
    /// An organization's containers networked together on one cloudlet.
    Cluster,
    /// A front-end port spread over a cluster's instances of one app.
    LoadBalancer,
}

impl Kind {
    /// Every kind, for code that walks all of them (listing, GC, OpenAPI).
    pub const ALL: [Kind; 34] = [
        Kind::Region,
        Kind::Zone,
        Kind::Cloudlet,
        Kind::Flavor,
        Kind::Organization,
        Kind::User,
        Kind::App,
        Kind::AppInstance,
        Kind::PlacementPolicy,
        Kind::PlatformService,
        Kind::Relocation,
        Kind::AmsRegistration,
        Kind::AmsSubscription,
        Kind::FederationPartner,
        Kind::Federation,
        Kind::FederationPeer,
        Kind::EwbiFile,
        Kind::EwbiArtefact,
        Kind::EwbiApp,
        Kind::EwbiInstance,
        Kind::EwbiPool,
        Kind::UsageLedger,
        Kind::EwbiOutbox,
        Kind::EwbiZoneView,
        Kind::FederatedCloudlet,
        Kind::ApiKey,
        Kind::OidcClient,
        Kind::AuditRecord,
        Kind::AlarmReceiver,
        Kind::AlertPolicy,
        Kind::Alarm,
        Kind::ImageVersion,
        Kind::Cluster,
        Kind::LoadBalancer,
    ];

    /// Plural lower-case form used in store keys and operator API paths.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Region => "regions",
            Kind::Zone => "zones",
            Kind::Cloudlet => "cloudlets",
            Kind::Flavor => "flavors",
            Kind::Organization => "organizations",
            Kind::User => "users",
            Kind::App => "apps",
            Kind::AppInstance => "appinstances",
            Kind::PlacementPolicy => "placementpolicies",
            Kind::PlatformService => "platformservices",
            Kind::Relocation => "relocations",
            Kind::AmsRegistration => "amsregistrations",
            Kind::AmsSubscription => "amssubscriptions",
            Kind::FederationPartner => "federationpartners",
            Kind::Federation => "federations",
            Kind::FederationPeer => "federationpeers",
            Kind::EwbiFile => "ewbifiles",
            Kind::EwbiArtefact => "ewbiartefacts",
            Kind::EwbiApp => "ewbiapps",
            Kind::EwbiInstance => "ewbiinstances",
            Kind::EwbiPool => "ewbipools",
            Kind::UsageLedger => "usageledger",
            Kind::EwbiOutbox => "ewbioutbox",
            Kind::EwbiZoneView => "ewbizoneviews",
            Kind::FederatedCloudlet => "federatedcloudlets",
            Kind::ApiKey => "apikeys",
            Kind::OidcClient => "oidcclients",
            Kind::AuditRecord => "audit",
            Kind::AlarmReceiver => "alarmreceivers",
            Kind::AlertPolicy => "alertpolicies",
            Kind::Alarm => "alarms",
            Kind::ImageVersion => "imageversions",
            Kind::Cluster => "clusters",
            Kind::LoadBalancer => "loadbalancers",
        }
    }

    /// Which store keeps objects of this kind when the platform runs as a global plane and
    /// regional controllers: what describes the platform and its customers is global; what
    /// runs in a region and what its devices do stays in the region's store.
    pub fn home(self) -> Home {
        match self {
            Kind::Cloudlet
            | Kind::Flavor
            | Kind::AppInstance
            | Kind::PlatformService
            | Kind::Relocation
            | Kind::AmsRegistration
            | Kind::AmsSubscription
            | Kind::Alarm
            | Kind::Cluster
            | Kind::LoadBalancer => Home::Regional,
            Kind::AuditRecord => Home::Local,
            Kind::Region
            | Kind::Zone
            | Kind::Organization
            | Kind::User
            | Kind::App
            | Kind::PlacementPolicy
            | Kind::FederationPartner
            | Kind::Federation
            | Kind::FederationPeer
            | Kind::EwbiFile
            | Kind::EwbiArtefact
            | Kind::EwbiApp
            | Kind::EwbiInstance
            | Kind::EwbiPool
            | Kind::UsageLedger
            | Kind::EwbiOutbox
            | Kind::EwbiZoneView
            | Kind::FederatedCloudlet
            | Kind::ApiKey
            | Kind::OidcClient
            | Kind::AlarmReceiver
            | Kind::AlertPolicy
            | Kind::ImageVersion => Home::Global,
        }
    }

    /// Whether an object of this kind claims its name in the store: unique within its
    /// organization and found by name. An audit record's name is made from its own uid, unique
    /// by construction and never looked up, so a claim would only cost a store write per
    /// audited request.
    pub fn claims_name(self) -> bool {
        !matches!(self, Kind::AuditRecord)
    }

    /// Whether objects of this kind belong to a developer organization (and are isolated by it).
    pub fn org_scoped(self) -> bool {
        matches!(self, Kind::App | Kind::AppInstance | Kind::Relocation | Kind::AmsRegistration | Kind::AmsSubscription)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where a kind's objects are stored (see [`Kind::home`]). In the embedded default one store
/// is all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Home {
    /// The global plane's store: organizations, users, apps, regions and zones, partners.
    Global,
    /// The store of the region's controller: cloudlets, flavors, instances, clusters and what
    /// devices did there. Never leaves the region.
    Regional,
    /// The store of whichever process writes it (audit records of the writes it served).
    Local,
}

/// Metadata common to every object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// What kind of object this is.
    pub kind: Kind,
    /// Owning organization, for org-scoped kinds; `None` for operator-owned kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Name>,
    /// Unique per kind and organization.
    pub name: Name,
    /// Globally unique, never reused.
    pub uid: Uid,
    /// Store revision of the last write (etcd's `mod_revision`); the compare-and-swap token.
    #[serde(default)]
    pub revision: u64,
    /// When the object was created.
    pub created: DateTime<Utc>,
    /// When the object was last written.
    pub updated: DateTime<Utc>,
    /// Free-form labels for selection.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Set when deletion was requested and a controller still has to release what the object holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_requested: Option<DateTime<Utc>>,
}

impl Meta {
    /// Metadata for a new object of `kind`, with a fresh uid and the current time.
    pub fn new(kind: Kind, organization: Option<Name>, name: Name) -> Self {
        let now = Utc::now();
        Self {
            kind,
            organization,
            name,
            uid: Uid::random(),
            revision: 0,
            created: now,
            updated: now,
            labels: BTreeMap::new(),
            deletion_requested: None,
        }
    }
}

/// Lifecycle state of an object, as seen by its controller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum State {
    /// Accepted, not yet acted on.
    #[default]
    Pending,
    /// The controller is bringing it up.
    Creating,
    /// Up and serving.
    Ready,
    /// Could not be brought up; `message` says why. The controller keeps retrying.
    Failed,
    /// Being torn down.
    Deleting,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One observed fact about an object, Kubernetes-style: `type` is true/false since `since`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// What the condition is about, e.g. `ContainerRunning`, `EndpointReachable`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it holds.
    pub status: bool,
    /// Short machine-readable reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Since when it holds (or not).
    pub since: DateTime<Utc>,
}

/// Status written by controllers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Current state.
    pub state: State,
    /// Observed conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Human-readable detail, mostly why something failed and what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Status {
    /// Whether condition `kind` is set and true.
    pub fn holds(&self, kind: &str) -> bool {
        self.conditions.iter().any(|c| c.kind == kind && c.status)
    }

    /// Sets condition `kind` to `status`, keeping its `since` when the value did not change.
    pub fn set_condition(&mut self, kind: &str, status: bool, reason: &str) {
        match self.conditions.iter_mut().find(|c| c.kind == kind) {
            Some(c) if c.status == status && c.reason == reason => {}
            Some(c) => {
                c.status = status;
                c.reason = reason.to_string();
                c.since = Utc::now();
            }
            None => self.conditions.push(Condition {
                kind: kind.to_string(),
                status,
                reason: reason.to_string(),
                since: Utc::now(),
            }),
        }
    }
}

/// A stored object: metadata, the user's spec, and the controller's status. `X` carries
/// kind-specific observed data (e.g. an instance's endpoint) next to the generic status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", bound(deserialize = "S: Deserialize<'de>, X: Deserialize<'de> + Default"))]
pub struct Object<S, X = ()> {
    /// Identity and bookkeeping.
    pub metadata: Meta,
    /// Desired state, written by users.
    pub spec: S,
    /// Observed state, written by controllers.
    #[serde(default)]
    pub status: Status,
    /// Kind-specific observed data, written by controllers. `null` (what a kind without
    /// observed data stores) reads as the default, so a kind can gain observed data later.
    #[serde(default, deserialize_with = "null_as_default")]
    pub observed: X,
}

fn null_as_default<'de, D: serde::Deserializer<'de>, X: Deserialize<'de> + Default>(d: D) -> Result<X, D::Error> {
    Ok(Option::<X>::deserialize(d)?.unwrap_or_default())
}

impl<S, X: Default> Object<S, X> {
    /// A new object of `kind` with a fresh uid, pending status and default observed data.
    pub fn new(kind: Kind, organization: Option<Name>, name: Name, spec: S) -> Self {
        Self {
            metadata: Meta::new(kind, organization, name),
            spec,
            status: Status::default(),
            observed: X::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_keeps_since_when_unchanged() {
        let mut s = Status::default();
        s.set_condition("Running", true, "");
        let first = s.conditions[0].since;
        s.set_condition("Running", true, "");
        assert_eq!(s.conditions[0].since, first);
        s.set_condition("Running", false, "Exited");
        assert!(!s.conditions[0].status);
        assert_eq!(s.conditions.len(), 1);
    }

    #[test]
    fn null_observed_reads_as_default() {
        #[derive(Debug, Default, PartialEq, Deserialize)]
        struct Seen {
            n: u32,
        }
        let stored = serde_json::json!({"metadata": serde_json::to_value(Meta::new(Kind::Cloudlet, None, Name::new("c1").unwrap())).unwrap(),
            "spec": 1, "observed": null});
        let o: Object<u32, Seen> = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(o.observed, Seen::default());
        let mut with = stored;
        with["observed"] = serde_json::json!({"n": 3});
        assert_eq!(serde_json::from_value::<Object<u32, Seen>>(with).unwrap().observed, Seen { n: 3 });
    }

    #[test]
    fn org_scoping() {
        assert!(Kind::App.org_scoped());
        assert!(Kind::AppInstance.org_scoped());
        assert!(!Kind::Zone.org_scoped());
        assert!(Kind::AmsRegistration.org_scoped() && Kind::AmsSubscription.org_scoped());
        let plurals: std::collections::HashSet<_> = Kind::ALL.iter().map(|k| k.plural()).collect();
        assert_eq!(plurals.len(), Kind::ALL.len());
    }
}
