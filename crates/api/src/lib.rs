//! The platform's HTTP APIs. Only this crate knows HTTP: handlers authenticate the caller,
//! validate input, read and write desired state through the store, and map every error to
//! CAMARA's error body in one place (`error.rs`). Controllers do the rest asynchronously.

pub mod alarms;
pub mod ams;
pub mod audit;
pub mod auth;
pub mod camara;
pub mod clusters;
pub mod console;
pub mod error;
pub mod events;
pub mod ewbi;
pub mod infra;
pub mod instances;
pub mod inventory;
pub mod json;
pub mod metrics;
pub mod mobility;
pub mod placement;
pub mod qoe;
pub mod regions;
pub mod registry;
pub mod resources;
pub mod scale;
pub mod netview;
pub mod oidc;
pub mod owned;
pub mod state;
pub mod serverless;
pub mod telemetry;
pub mod uni;
pub mod usage;
pub mod users;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use error::{ApiError, ErrorInfo};
pub use state::AppState;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let comps = openapi.components.get_or_insert_with(Default::default);
        comps.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The OpenAPI document, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Operator Platform API", description = "NBI of the Operator Platform: CAMARA Edge Application Management plus the operator's resources."),
    modifiers(&BearerAuth),
    components(schemas(
        op_types::ams::MobilityProcedureNotification, op_types::ams::AdjacentAppInfoNotification, op_types::ams::ExpiryNotification,
        op_types::ams::TestNotification,
    )),
    paths(
        users::token, users::create_user, users::list_users, users::delete_user, users::register,
        users::list_members, users::put_member, users::delete_member, users::create_api_key, users::list_api_keys, users::delete_api_key,
        oidc::create_client, oidc::list_clients, oidc::delete_client, audit::list,
        infra::list_regions, infra::create_region, infra::get_region, infra::delete_region,
        infra::list_zones, infra::create_zone, infra::get_zone, infra::delete_zone, infra::zone_flavors, infra::cloudlet_flavors,
        infra::list_cloudlets, infra::create_cloudlet, infra::get_cloudlet, infra::delete_cloudlet,
        infra::list_flavors, infra::create_flavor, infra::get_flavor, infra::delete_flavor,
        infra::list_organizations, infra::create_organization, infra::get_organization, infra::delete_organization,
        infra::list_placement_policies, infra::create_placement_policy, infra::get_placement_policy, infra::delete_placement_policy, infra::update_placement_policy,
        infra::update_cloudlet_policies,
        infra::list_platform_services, infra::create_platform_service, infra::get_platform_service, infra::delete_platform_service, infra::update_platform_service,
        camara::submit_app, camara::get_apps, camara::get_app, camara::delete_app,
        camara::create_app_instance, camara::get_app_instances, camara::delete_app_instance,
        camara::get_instance_detail, instances::logs, instances::exec, instances::debug, events::list, alarms::list, alarms::get, alarms::create_receiver, alarms::list_receivers, alarms::update_receiver, alarms::delete_receiver, alarms::test_receiver,
        alarms::create_policy, alarms::list_policies, alarms::delete_policy, registry::info, registry::images, qoe::list,
        clusters::create_cluster, clusters::list_clusters, clusters::get_cluster, clusters::update_cluster, clusters::delete_cluster,
        clusters::create_lb, clusters::list_lbs, clusters::get_lb, clusters::update_lb, clusters::delete_lb, resources::instances, resources::apps, resources::tenants, resources::cloudlets, camara::get_edge_cloud_zones, placement::place, telemetry::get, serverless::pops, serverless::status, serverless::put_policy, mobility::report, mobility::list_relocations, mobility::get_relocation,
        uni::register, uni::discover, uni::network_events, uni::confirm, uni::events, uni::close, uni::keys, uni::well_known, uni::closest_edge_zone,
        uni::optimal_edge_zones, uni::regions, uni::optimal_app_endpoints,
        ams::list_registrations, ams::create_registration, ams::get_registration, ams::put_registration, ams::delete_registration,
        ams::deregister_task, ams::list_subscriptions, ams::create_subscription, ams::get_subscription, ams::put_subscription,
        ams::delete_subscription, ams::adjacent_app_instances,
        ewbi::operator::create_partner, ewbi::operator::list_partners, ewbi::operator::get_partner, ewbi::operator::update_partner, ewbi::operator::delete_partner,
        ewbi::operator::list_contexts, ewbi::operator::create_peer, ewbi::operator::list_peers, ewbi::operator::get_peer,
        ewbi::operator::delete_peer, ewbi::operator::usage, ewbi::operator::usage_check, ewbi::operator::roaming_check,
        ewbi::operator::list_federated_cloudlets, ewbi::operator::reserve_cloudlet,
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as pretty JSON (what `/openapi.json` serves and `openapi.json` commits).
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}


async fn readyz(State(s): State<AppState>) -> Response {
    match s.repo.engine(op_types::Home::Local).revision().await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(e) => ApiError::Unavailable(e.to_string()).into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such API path; see /openapi.json".into())
}

/// ETSI MEC 021 Application Mobility Service under `/amsi/v1`; errors are `ProblemDetails`
/// naming the request path (`ams::problem_instance`).
fn ams_routes() -> Router<AppState> {
    use axum::routing::{any, post};
    use ams::*;
    let b = ams::BASE;
    Router::new()
        .route(&format!("{b}/app_mobility_services"), get(list_registrations).post(create_registration))
        .route(&format!("{b}/app_mobility_services/{{appMobilityServiceId}}"), get(get_registration).put(put_registration).delete(delete_registration))
        .route(&format!("{b}/app_mobility_services/{{appMobilityServiceId}}/deregister_task"), post(deregister_task))
        .route(&format!("{b}/subscriptions"), get(list_subscriptions).post(create_subscription))
        .route(&format!("{b}/subscriptions/"), get(list_subscriptions).post(create_subscription))
        .route(&format!("{b}/subscriptions/{{subscriptionId}}"), get(get_subscription).put(put_subscription).delete(delete_subscription))
        .route(&format!("{b}/queries/adjacent_app_instances"), get(adjacent_app_instances))
        .route(&format!("{b}/{{*rest}}"), any(ams::not_found))
        .route_layer(middleware::from_fn(problem_instance))
}

/// Every route, with auth, limits, metrics and the correlator.
pub fn router(state: AppState) -> Router {
    use camara::*;
    use infra::*;
    let b = camara::BASE;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(|| async { ([(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], openapi_json()) }))
        .route("/console", get(console::root))
        .route("/console/", get(console::index))
        .route("/console/console.js", get(console::script))
        .route("/console/console.css", get(console::style))
        .route("/op/v1/auth/token", axum::routing::post(users::token))
        .route("/op/v1/users", get(users::list_users).post(users::create_user))
        .route("/op/v1/users/{name}", axum::routing::delete(users::delete_user))
        .route("/op/v1/auth/register", axum::routing::post(users::register))
        .route("/op/v1/organizations/{name}/members", get(users::list_members))
        .route("/op/v1/organizations/{name}/members/{user}", axum::routing::put(users::put_member).delete(users::delete_member))
        .route("/op/v1/apikeys", get(users::list_api_keys).post(users::create_api_key))
        .route("/op/v1/apikeys/{id}", axum::routing::delete(users::delete_api_key))
        .route("/op/v1/audit", get(audit::list))
        .route("/op/v1/oidc/clients", get(oidc::list_clients).post(oidc::create_client))
        .route("/op/v1/oidc/clients/{name}", axum::routing::delete(oidc::delete_client))
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route("/oauth2/jwks", get(oidc::jwks))
        .route("/oauth2/authorize", get(oidc::authorize).post(oidc::login))
        .route("/oauth2/token", axum::routing::post(oidc::token))
        .route("/oauth2/userinfo", get(oidc::userinfo))
        .route("/op/v1/regions", get(list_regions).post(create_region))
        .route("/op/v1/regions/{name}", get(get_region).delete(delete_region))
        .route("/op/v1/zones", get(list_zones).post(create_zone))
        .route("/op/v1/zones/{name}", get(get_zone).delete(delete_zone))
        .route("/op/v1/zones/{name}/flavors", get(infra::zone_flavors))
        .route("/op/v1/cloudlets/{name}/flavors", get(infra::cloudlet_flavors))
        .route("/op/v1/cloudlets/{name}/policies", axum::routing::put(infra::update_cloudlet_policies))
        .route("/op/v1/cloudlets", get(list_cloudlets).post(create_cloudlet))
        .route("/op/v1/cloudlets/{name}", get(get_cloudlet).delete(delete_cloudlet))
        .route("/op/v1/flavors", get(list_flavors).post(create_flavor))
        .route("/op/v1/flavors/{name}", get(get_flavor).delete(delete_flavor))
        .route("/op/v1/organizations", get(list_organizations).post(create_organization))
        .route("/op/v1/organizations/{name}", get(get_organization).delete(delete_organization))
        .route("/op/v1/placementpolicies", get(list_placement_policies).post(create_placement_policy))
        .route("/op/v1/placementpolicies/{name}", get(get_placement_policy).delete(delete_placement_policy).put(update_placement_policy))
        .route("/op/v1/platformservices", get(list_platform_services).post(create_platform_service))
        .route("/op/v1/platformservices/{name}", get(get_platform_service).delete(delete_platform_service).put(update_platform_service))
        .route("/op/v1/appinstances/{id}", get(get_instance_detail))
        .route("/op/v1/apps/{appId}/placements", axum::routing::post(placement::place))
        .route("/op/v1/apps/{appId}/telemetry", axum::routing::get(telemetry::get))
        .route("/op/v1/apps/{appId}/serverless", axum::routing::get(serverless::status).put(serverless::put_policy))
        .route("/op/v1/serverless/pops", axum::routing::get(serverless::pops))
        .route("/op/v1/mobility/reports", axum::routing::post(mobility::report))
        .route("/op/v1/relocations", get(mobility::list_relocations))
        .route("/op/v1/relocations/{id}", get(mobility::get_relocation))
        .route("/op/v1/appinstances/{id}/logs", get(instances::logs))
        .route("/op/v1/appinstances/{id}/exec", get(instances::exec))
        .route("/op/v1/appinstances/{id}/debug", get(instances::debug))
        .route("/op/v1/events", get(events::list))
        .route("/op/v1/clusters", get(clusters::list_clusters).post(clusters::create_cluster))
        .route("/op/v1/clusters/{id}", get(clusters::get_cluster).put(clusters::update_cluster).delete(clusters::delete_cluster))
        .route("/op/v1/loadbalancers", get(clusters::list_lbs).post(clusters::create_lb))
        .route("/op/v1/loadbalancers/{id}", get(clusters::get_lb).put(clusters::update_lb).delete(clusters::delete_lb))
        .route("/op/v1/qoe", get(qoe::list))
        .route("/op/v1/registry", get(registry::info))
        .route("/op/v1/registry/images", get(registry::images))
        .route("/op/v1/registry/token", get(registry::token))
        .route("/op/v1/registry/events", axum::routing::post(registry::events))
        .route("/op/v1/alarms", get(alarms::list))
        .route("/op/v1/alarms/{fingerprint}", get(alarms::get))
        .route("/op/v1/alarmreceivers", get(alarms::list_receivers).post(alarms::create_receiver))
        .route("/op/v1/alarmreceivers/{id}", axum::routing::put(alarms::update_receiver).delete(alarms::delete_receiver))
        .route("/op/v1/alarmreceivers/{id}/test", axum::routing::post(alarms::test_receiver))
        .route("/op/v1/alertpolicies", get(alarms::list_policies).post(alarms::create_policy))
        .route("/op/v1/alertpolicies/{id}", axum::routing::delete(alarms::delete_policy))
        .route("/op/v1/resources/instances", get(resources::instances))
        .route("/op/v1/resources/apps", get(resources::apps))
        .route("/op/v1/resources/tenants", get(resources::tenants))
        .route("/op/v1/resources/cloudlets", get(resources::cloudlets))
        .route(&format!("{b}/apps"), get(get_apps).post(submit_app))
        .route(&format!("{b}/apps/{{id}}"), get(get_app).delete(delete_app))
        .route(&format!("{b}/appinstances"), get(get_app_instances).post(create_app_instance))
        .route(&format!("{b}/appinstances/{{id}}"), axum::routing::delete(delete_app_instance))
        .route(&format!("{b}/edge-cloud-zones"), get(get_edge_cloud_zones))
        .route("/.well-known/op-uni", get(uni::well_known))
        .route("/uni/v1/keys", get(uni::keys))
        .route("/uni/v1/sessions", axum::routing::post(uni::register))
        .route("/uni/v1/discover", axum::routing::post(uni::discover))
        .route("/uni/v1/network-events/{secret}", axum::routing::post(uni::network_events))
        .route("/uni/v1/sessions/{id}/confirm", axum::routing::post(uni::confirm))
        .route("/uni/v1/sessions/{id}/events", get(uni::events))
        .route("/uni/v1/sessions/{id}", axum::routing::delete(uni::close))
        .route("/simple-edge-discovery/v2/retrieve-closest-edge-cloud-zone", axum::routing::post(uni::closest_edge_zone))
        .route("/optimal-edge-discovery/v0.1/retrieve-optimal-edge-cloud-zones", axum::routing::post(uni::optimal_edge_zones))
        .route("/optimal-edge-discovery/v0.1/regions", get(uni::regions))
        .route("/application-endpoint-discovery/v0.1/retrieve-optimal-app-endpoints", axum::routing::post(uni::optimal_app_endpoints))
        .merge(ams_routes())
        .merge(ewbi::operator::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), audit::record))
        .layer(middleware::from_fn_with_state(state.clone(), regions::route))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::record))
        .layer(RequestBodyLimitLayer::new(json::MAX_BODY))
        .with_state(state)
}

