//! Users and login. Passwords are stored as argon2id hashes and never returned; tokens are
//! issued by `POST /op/v1/auth/token`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use op_types::specs::{Role, User, UserSpec};
use op_types::{Kind, Name, Object, State as ObjState};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{hash_password, verify_password, Caller, TOKEN_TTL_SECS};
use crate::error::{ApiError, ErrorInfo};
use op_types::views::{TokenResponse, UserView};
use crate::infra::path_name;
use crate::json::Body;
use crate::state::AppState;

/// Login request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// Create-user request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Unique user name.
    pub name: Name,
    /// Organization, required for developer roles, absent for operator roles.
    #[serde(default)]
    pub organization: Option<Name>,
    /// Role.
    pub role: Role,
    /// Password, 12 characters at least.
    pub password: String,
}

/// Minimum password length.
pub const MIN_PASSWORD: usize = 12;

/// Exchange a user name and password for a bearer token.
#[utoipa::path(post, path = "/op/v1/auth/token", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorInfo)))]
pub async fn token(State(s): State<AppState>, Body(req): Body<TokenRequest>) -> Result<Json<TokenResponse>, ApiError> {
    let bad = || ApiError::Unauthenticated("wrong user name or password".into());
    let name = Name::new(req.username).map_err(|_| bad())?;
    let user = s.repo.get_by_name::<UserSpec, ()>(Kind::User, None, &name).await?.ok_or_else(bad)?;
    let hash = user.spec.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || verify_password(&req.password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !ok {
        tracing::info!(user = %name, "failed login");
        return Err(bad());
    }
    let access_token = s.keys.issue(&name, user.spec.role, user.spec.organization.as_ref())?;
    Ok(Json(TokenResponse { access_token, token_type: "Bearer".into(), expires_in: TOKEN_TTL_SECS }))
}

/// Create a user. The operator creates any user; an organization's Manager creates users of
/// that organization with developer roles.
#[utoipa::path(post, path = "/op/v1/users", tag = "users", security(("bearer" = [])), request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn create_user(
    State(s): State<AppState>,
    c: Caller,
    Body(req): Body<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    match (&req.organization, req.role.is_operator()) {
        (None, true) => c.require_operator_admin()?,
        (Some(org), false) => {
            if c.role != Role::OperatorAdmin && !(c.role == Role::Manager && c.org.as_ref() == Some(org)) {
                return Err(ApiError::Forbidden("only the operator or the organization's Manager creates its users".into()));
            }
            if s.repo.get_by_name::<serde_json::Value, ()>(Kind::Organization, None, org).await?.is_none() {
                return Err(ApiError::invalid("organization", format!("organization '{org}' does not exist")));
            }
        }
        (Some(_), true) => return Err(ApiError::invalid("organization", "operator roles belong to no organization")),
        (None, false) => return Err(ApiError::invalid("organization", "developer roles need an organization")),
    }
    if req.password.chars().count() < MIN_PASSWORD || req.password.len() > 1024 {
        return Err(ApiError::invalid("password", format!("must be {MIN_PASSWORD} to 1024 characters")));
    }
    let password = req.password;
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let mut user: User = Object::new(
        Kind::User,
        None,
        req.name,
        UserSpec { organization: req.organization, role: req.role, password_hash },
    );
    user.status.state = ObjState::Ready;
    s.repo.create(&mut user).await?;
    tracing::info!(user = %user.metadata.name, by = %c.user, "user created");
    Ok((StatusCode::CREATED, Json(user.into())))
}

fn visible(c: &Caller, u: &User) -> bool {
    c.role.is_operator() || (c.role == Role::Manager && u.spec.organization.is_some() && u.spec.organization == c.org)
        || u.metadata.name.as_str() == c.user
}

/// List users: all for the operator, the organization's for a Manager, oneself otherwise.
#[utoipa::path(get, path = "/op/v1/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserView>), (status = 401, body = ErrorInfo)))]
pub async fn list_users(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<UserView>>, ApiError> {
    let (users, _) = s.repo.list::<UserSpec, ()>(Kind::User).await?;
    Ok(Json(users.into_iter().filter(|u| visible(&c, u)).map(Into::into).collect()))
}

/// Delete a user.
#[utoipa::path(delete, path = "/op/v1/users/{name}", tag = "users", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorInfo)))]
pub async fn delete_user(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    let name = path_name(&name)?;
    let user = s
        .repo
        .get_by_name::<UserSpec, ()>(Kind::User, None, &name)
        .await?
        .filter(|u| visible(&c, u))
        .ok_or_else(|| ApiError::NotFound(format!("user '{name}' not found")))?;
    match &user.spec.organization {
        Some(org) if c.role == Role::Manager && c.org.as_ref() == Some(org) => {}
        _ => c.require_operator_admin()?,
    }
    s.repo.delete(&user).await?;
    Ok(StatusCode::NO_CONTENT)
}
