//! The GSMA OPG East/Westbound interface (federation between operator platforms), in both
//! roles, served on its own HTTPS listener ([`router`], [`tls::serve`]):
//!
//! - **partner role** ([`partner`]): another operator, registered by ours as a
//!   `FederationPartner`, gets an OAuth2 token at `/oauth2/token` ([`oauth`], scope
//!   `fed-mgmt`) and calls `/operatorplatform/federation/v1/...` to federate, subscribe to the
//!   zones we offer it, upload images, onboard apps and install instances on our edges; our own
//!   admission and placement decide where, and [`notify`] tells it how its instances are doing.
//! - **originating role** ([`peer`]): our operator registers a partner as a `FederationPeer`;
//!   [`peer`] federates with it, subscribes to its zones and makes them ordinary zones here, and
//!   deploys a developer's instance on such a zone through the partner's API. The partner's
//!   callbacks arrive at [`callbacks`].
//!
//! Topology hiding: no EWBI body is built from a cloudlet; partners see zone ids, rounded zone
//! locations and the resources offered to them, and every id that crosses is federated
//! ([`op_types::ewbi::objects::federated_id`]). Errors are the spec's `ProblemDetails`, and a
//! 5xx says nothing about our internals.
//!
//! Cloudlet federation ([`cloudlets`], `/api/v1/auth/{create,show,update,delete}/cloudlet`): a
//! partner hands us a cloudlet of its own; it joins placement once it passed compliance.
//!
//! Settlement ([`settle`]): both sides record the same usage events and compute the same
//! records with [`op_types::ewbi::usage`].

pub mod callbacks;
pub mod client;
pub mod cloudlets;
pub mod ingress;
pub mod notify;
pub mod oauth;
pub mod operator;
pub mod partner;
pub mod peer;
pub mod settle;
pub mod tls;
pub mod zones;

use std::path::PathBuf;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use op_types::ewbi::objects::{FederationPartnerSpec, FederationSpec};
use op_types::{Kind, Name, Object};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// The API's root under the listener (`servers[0].url` of the GSMA file).
pub const BASE: &str = "/operatorplatform/federation/v1";

/// Where partners get tokens (the GSMA file's `tokenUrl`).
pub const TOKEN_PATH: &str = "/oauth2/token";

/// What the EWBI shares between handlers and background tasks.
pub struct EwbiState {
    /// Issues and checks partners' access tokens (a key of its own: NBI tokens never pass).
    pub tokens: oauth::EwbiTokens,
    /// Our EWBI listener as partners reach it (`https://host:port`): the root of our
    /// callback URLs and of `Location` headers.
    pub public_url: String,
    /// Where uploaded files are kept, so a cloudlet added later can load them too.
    pub files_dir: PathBuf,
    /// The host partners' devices reach our federated instances on (the zone ingress).
    pub ingress_host: String,
    /// The key federated ids are derived from.
    pub secret: Vec<u8>,
    /// Our `partnerOPFederationId` / `origOPFederationId`.
    pub federation_id: String,
    /// Our country code (ISO 3166-1 alpha-2), sent to partners.
    pub country_code: String,
    /// Relays from the ingress to federated instances.
    pub ingress: ingress::Ingress,
    /// Wakes the outbox when a callback is queued.
    pub wake: tokio::sync::Notify,
    /// Clients of our peers' EWBIs, with their cached tokens.
    pub clients: peer::Clients,
}

/// A GSMA `ProblemDetails` body: `title`, `detail`, `invalidParams`, plus `status` (extra
/// members are allowed).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Problem {
    title: String,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    invalid_params: Vec<InvalidParam>,
}

#[derive(Debug, Serialize)]
struct InvalidParam {
    param: String,
    reason: String,
}

/// An EWBI error: the platform's [`ApiError`] answered as the spec's `ProblemDetails`
/// (`application/problem+json`). The one place EWBI errors become HTTP.
#[derive(Debug)]
pub struct EwbiError(pub ApiError);

impl<E: Into<ApiError>> From<E> for EwbiError {
    fn from(e: E) -> Self {
        EwbiError(e.into())
    }
}

/// What EWBI handlers return.
pub type EwbiResult<T> = Result<T, EwbiError>;

impl IntoResponse for EwbiError {
    fn into_response(self) -> Response {
        let code = self.0.status();
        let (title, cause) = match &self.0 {
            ApiError::Invalid(_) => ("Bad Request", "INVALID_ARGUMENT"),
            ApiError::Unauthenticated(_) => ("Unauthorized", "UNAUTHENTICATED"),
            ApiError::Forbidden(_) => ("Forbidden", "PERMISSION_DENIED"),
            ApiError::NotFound(_) | ApiError::IdentifierNotFound(_) => ("Not Found", "NOT_FOUND"),
            ApiError::AlreadyExists(_) | ApiError::Aborted(_) | ApiError::Conflict(_) => ("Conflict", "CONFLICT"),
            ApiError::Unprocessable(_, _) => ("Unprocessable Entity", "UNPROCESSABLE"),
            ApiError::Misdirected(_) => ("Misdirected Request", "MISDIRECTED_REQUEST"),
            ApiError::TooManyRequests(_) => ("Too Many Requests", "TOO_MANY_REQUESTS"),
            ApiError::Unavailable(_) => ("Service Unavailable", "UNAVAILABLE"),
            ApiError::Internal(_) => ("Internal Server Error", "INTERNAL"),
        };
        // A 5xx's message may name internals (a cloudlet, a store path): log it, send nothing.
        let detail = if code.is_server_error() {
            tracing::error!(error = %self.0, "EWBI request failed");
            Some("the platform could not complete the request; retry later".to_string())
        } else {
            Some(self.0.to_string())
        };
        let invalid_params = match &self.0 {
            ApiError::Invalid(f) => vec![InvalidParam { param: f.field.clone(), reason: f.message.clone() }],
            _ => vec![],
        };
        let body = Problem { title: title.into(), status: code.as_u16(), detail, cause: Some(cause.into()), invalid_params };
        let mut r = (code, axum::Json(body)).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if code == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"ewbi\""));
        }
        r
    }
}

/// A partner operator calling our EWBI: a valid token of ours with scope `fed-mgmt`, for a
/// registered, existing partner, over mutual TLS with its pinned certificate when the
/// operator pinned one.
#[derive(Debug, Clone)]
pub struct PartnerCaller {
    /// The registration.
    pub partner: Object<FederationPartnerSpec>,
}

impl FromRequestParts<AppState> for PartnerCaller {
    type Rejection = EwbiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unauth = |m: &str| EwbiError(ApiError::Unauthenticated(m.to_string()));
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| unauth("missing bearer token: get one at /oauth2/token with your client credentials (scope fed-mgmt)"))?;
        let claims = state.ewbi.tokens.verify(token.trim()).map_err(|e| unauth(&e.to_string()))?;
        if !claims.scope.split(' ').any(|s| s == op_types::ewbi::objects::SCOPE_FED_MGMT) {
            return Err(EwbiError(ApiError::Forbidden("the token lacks scope fed-mgmt".into())));
        }
        let partner = partner_by_client(state, &claims.sub).await?.ok_or_else(|| unauth("the client this token was issued to is no longer registered"))?;
        if let Some(pin) = &partner.spec.cert_sha256 {
            let seen = parts.extensions.get::<tls::PeerCertificates>().and_then(|c| c.leaf_sha256());
            if seen.as_deref() != Some(pin.as_str()) {
                return Err(unauth("this partner must call over mutual TLS with its registered certificate"));
            }
        }
        Ok(PartnerCaller { partner })
    }
}

/// The registered partner whose OAuth client id is `client_id`.
pub async fn partner_by_client(s: &AppState, client_id: &str) -> Result<Option<Object<FederationPartnerSpec>>, ApiError> {
    let (all, _) = s.repo.list::<FederationPartnerSpec, ()>(Kind::FederationPartner).await?;
    Ok(all.into_iter().find(|p| p.spec.client_id == client_id && p.metadata.deletion_requested.is_none()))
}

impl PartnerCaller {
    /// The federation `ctx` if it is this partner's; 404 otherwise (another partner's context
    /// is indistinguishable from none).
    pub async fn federation(&self, s: &AppState, ctx: &str) -> Result<Object<FederationSpec>, EwbiError> {
        let missing = || EwbiError(ApiError::NotFound(format!("no federation context {ctx}")));
        let name = Name::new(format!("f-{ctx}")).map_err(|_| missing())?;
        let f = s.repo.get_by_name::<FederationSpec, ()>(Kind::Federation, None, &name).await?.ok_or_else(missing)?;
        if f.spec.partner != self.partner.metadata.name || f.metadata.deletion_requested.is_some() {
            return Err(missing());
        }
        Ok(f)
    }
}

/// The store name of federation context `ctx`.
pub fn federation_name(ctx: &str) -> Result<Name, ApiError> {
    Name::new(format!("f-{ctx}")).map_err(|e| ApiError::Internal(format!("context name: {e}")))
}

/// The EWBI listener's routes: the token endpoint, the partner-role API, the originating
/// role's callback receivers, and the `x-op` extensions. Nothing else is reachable there.
pub fn router(state: AppState) -> Router {
    use partner::*;
    let b = BASE;
    Router::new()
        .route(TOKEN_PATH, post(oauth_token))
        .route(&format!("{b}{TOKEN_PATH}"), post(oauth_token))
        .route(&format!("{b}/partner"), post(create_federation))
        .route(&format!("{b}/{{ctx}}/partner"), get(get_federation).patch(update_federation).delete(delete_federation))
        .route(&format!("{b}/{{ctx}}/zones"), post(zone_subscribe))
        .route(&format!("{b}/{{ctx}}/zones/{{zone}}"), get(get_zone).delete(zone_unsubscribe))
        .route(&format!("{b}/{{ctx}}/artefact"), post(upload_artefact))
        .route(&format!("{b}/{{ctx}}/artefact/{{id}}"), get(get_artefact).delete(remove_artefact))
        .route(&format!("{b}/{{ctx}}/files"), post(upload_file))
        .route(&format!("{b}/{{ctx}}/files/{{id}}"), get(view_file).delete(remove_file))
        .route(&format!("{b}/{{ctx}}/application/onboarding"), post(onboard_app))
        .route(&format!("{b}/{{ctx}}/application/onboarding/app/{{app}}"), get(view_app).patch(update_app).delete(delete_app))
        .route(&format!("{b}/{{ctx}}/application/onboarding/app/{{app}}/zone/{{zone}}"), delete(deboard_app))
        .route(&format!("{b}/{{ctx}}/application/onboarding/app/{{app}}/additionalZones"), post(additional_zones))
        .route(&format!("{b}/{{ctx}}/application/onboarding/app/{{app}}/zoneForbid"), post(zone_forbid))
        .route(&format!("{b}/{{ctx}}/application/lcm"), post(install_app))
        .route(&format!("{b}/{{ctx}}/application/lcm/app/{{app}}/instance/{{inst}}/zone/{{zone}}"), get(instance_details).delete(remove_instance))
        .route(&format!("{b}/{{ctx}}/application/lcm/app/{{app}}/instance/{{inst}}/zone/{{zone}}/x-op/insights"), get(partner::instance_insights))
        .route(&format!("{b}/{{ctx}}/application/lcm/app/{{app}}/appProvider/{{provider}}"), get(all_instances))
        .route(&format!("{b}/{{ctx}}/isv/resource/zone/{{zone}}/appProvider/{{provider}}"), post(create_pool).get(view_pools))
        .route(&format!("{b}/{{ctx}}/isv/resource/zone/{{zone}}/appProvider/{{provider}}/pool/{{pool}}"), patch(update_pool).delete(remove_pool))
        .route(&format!("{b}/{{ctx}}/edgenodesharing/edgeDiscovery"), post(candidate_zones))
        .route(&format!("{b}/{{ctx}}/roaminguserauth/device/{{device}}/token/{{token}}"), get(authenticate_device))
        .route(&format!("{b}/{{ctx}}/x-op/usage"), get(settle::partner_usage))
        .route("/ewbi/callbacks/{cb}/{kind}", post(callbacks::receive))
        .route(cloudlets::CREATE_PATH, post(cloudlets::create_cloudlet))
        .route(cloudlets::SHOW_PATH, get(cloudlets::show_cloudlets))
        .route(cloudlets::UPDATE_PATH, post(cloudlets::update_cloudlet))
        .route(cloudlets::DELETE_PATH, post(cloudlets::delete_cloudlet))
        .fallback(|| async { EwbiError(ApiError::NotFound("no such EWBI path; see the GSMA federation API".into())) })
        .layer(tower_http::limit::RequestBodyLimitLayer::new(partner::MAX_UPLOAD))
        // Axum's own 2 MiB default for extractors would cut artefact uploads (image archives)
        // short of the limit above, the one that holds for this listener.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn oauth_token(axum::extract::State(s): axum::extract::State<AppState>, headers: axum::http::HeaderMap, body: axum::body::Bytes) -> Response {
    oauth::token_endpoint(&Partners(s.clone()), &s.ewbi.tokens, &headers, &body).await
}

/// Registered partners as the token endpoint's client store.
struct Partners(AppState);

impl oauth::ClientStore for Partners {
    async fn client(&self, client_id: &str) -> Option<oauth::ClientRecord> {
        let p = partner_by_client(&self.0, client_id).await.ok().flatten()?;
        Some(oauth::ClientRecord {
            client_id: p.spec.client_id.clone(),
            secret_hash: p.spec.secret_hash.clone(),
            scopes: vec![op_types::ewbi::objects::SCOPE_FED_MGMT.to_string()],
            enabled: true,
        })
    }
}

/// Creates global object `name` of `kind` (Ready) with `spec` unless it exists: what the
/// federation sets up on first use (a partner's region, an app provider's organization). Safe
/// when two tasks race to it.
pub(crate) async fn ensure_global<S: Serialize>(s: &AppState, kind: Kind, name: &Name, spec: S) -> Result<(), op_store::RepoError> {
    if s.repo.get_by_name::<serde_json::Value, serde_json::Value>(kind, None, name).await?.is_some() {
        return Ok(());
    }
    let mut o: Object<S> = Object::new(kind, None, name.clone(), spec);
    o.status.state = op_types::State::Ready;
    match s.repo.create(&mut o).await {
        Ok(()) | Err(op_store::RepoError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
