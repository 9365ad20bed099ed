//! Users, login, self-serve registration, organization members and API keys. Passwords are
//! stored as argon2id hashes and API keys as SHA-256 of their secret; neither is ever returned
//! (a new key's secret is shown once). Tokens are issued by `POST /op/v1/auth/token` and by
//! the OpenID Connect provider (`oidc.rs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use op_types::specs::{ApiKey, ApiKeySpec, Membership, OrganizationSpec, Role, User, UserSpec};
use op_types::{Kind, Name, Object, State as ObjState, Validate};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{effective_role, hash_password, sha256_hex, verify_password, Caller, API_KEY_PREFIX, TOKEN_TTL_SECS};
use crate::error::{ApiError, ErrorInfo};
use op_types::views::{ApiKeyCreated, ApiKeyView, MemberView, TokenResponse, UserView};
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
    /// The organization to act for: the user's own (the default), one it is a member of, or
    /// one below those.
    #[serde(default)]
    pub organization: Option<String>,
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
    let (role, org) = acting_as(&s, &user, req.organization.as_deref())?;
    let access_token = s.keys.issue(&name, role, org.as_ref())?;
    Ok(Json(TokenResponse { access_token, token_type: "Bearer".into(), expires_in: TOKEN_TTL_SECS }))
}

/// The role and organization a token of `user` carries when it asks to act for `org` (its
/// own organization when `None`).
pub fn acting_as(s: &AppState, user: &User, org: Option<&str>) -> Result<(Role, Option<Name>), ApiError> {
    let Some(org) = org else { return Ok((user.spec.role, user.spec.organization.clone())) };
    let org = Name::new(org).map_err(|e| ApiError::invalid("organization", e.to_string()))?;
    if user.spec.role.is_operator() {
        return Err(ApiError::invalid("organization", "operator users act for no organization"));
    }
    let (role, _) = effective_role(s, &user.spec, &org)
        .ok_or_else(|| ApiError::Forbidden(format!("'{}' is not a member of organization '{org}'", user.metadata.name)))?;
    Ok((role, Some(org)))
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
            c.require_manager(org)?;
            if s.repo.get_by_name::<serde_json::Value, ()>(Kind::Organization, None, org).await?.is_none() {
                return Err(ApiError::invalid("organization", format!("organization '{org}' does not exist")));
            }
        }
        (Some(_), true) => return Err(ApiError::invalid("organization", "operator roles belong to no organization")),
        (None, false) => return Err(ApiError::invalid("organization", "developer roles need an organization")),
    }
    check_password(&req.password)?;
    let password = req.password;
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let mut user: User = Object::new(
        Kind::User,
        None,
        req.name,
        UserSpec { organization: req.organization, role: req.role, password_hash, memberships: Vec::new() },
    );
    user.status.state = ObjState::Ready;
    s.repo.create(&mut user).await?;
    tracing::info!(user = %user.metadata.name, by = %c.user, "user created");
    Ok((StatusCode::CREATED, Json(user.into())))
}

fn visible(c: &Caller, u: &User) -> bool {
    let member_here = |o: &Name| c.scope.contains(o);
    c.role.is_operator()
        || (c.role == Role::Manager
            && (u.spec.organization.as_ref().is_some_and(member_here) || u.spec.memberships.iter().any(|m| member_here(&m.organization))))
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
        Some(org) => c.require_manager(org)?,
        None => c.require_operator_admin()?,
    }
    // Its API keys go with it (they would fail anyway: a key's user must exist).
    let (keys, _) = s.repo.list::<ApiKeySpec, ()>(Kind::ApiKey).await?;
    for k in keys.iter().filter(|k| k.spec.user == user.metadata.name) {
        s.repo.delete(k).await?;
    }
    s.repo.delete(&user).await?;
    tracing::info!(user = %name, by = %c.user, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Self-serve registration: a new organization and its first user, its Manager.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The user name to log in with.
    pub name: Name,
    /// Password, 12 characters at least.
    pub password: String,
    /// The new organization (CAMARA `appProvider`: 8 to 64 letters, digits or `_`).
    pub organization: Name,
    /// What the organization does.
    #[serde(default)]
    pub description: Option<String>,
}

fn check_password(p: &str) -> Result<(), ApiError> {
    if p.chars().count() < MIN_PASSWORD || p.len() > 1024 {
        return Err(ApiError::invalid("password", format!("must be {MIN_PASSWORD} to 1024 characters")));
    }
    Ok(())
}

/// Register: creates an organization and its Manager in one transaction (both or neither). No
/// token needed; the operator turns it off with `opd serve --no-self-registration`.
#[utoipa::path(post, path = "/op/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = UserView), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn register(
    State(s): State<AppState>,
    audit: Option<axum::Extension<crate::audit::Slot>>,
    Body(req): Body<RegisterRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    if !s.self_registration {
        return Err(ApiError::Forbidden("self-serve registration is off on this platform; ask the operator for an account".into()));
    }
    crate::infra::valid_org_name(&req.organization).map_err(|_| {
        ApiError::invalid("organization", "organization names are 8 to 64 letters, digits or '_' (CAMARA appProvider), starting with a letter")
    })?;
    let org_spec = OrganizationSpec { description: req.description, parent: None };
    org_spec.validate().map_err(|e| ApiError::Invalid(e.under("description")))?;
    check_password(&req.password)?;
    let password = req.password;
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(|e| ApiError::Internal(e.to_string()))??;
    let mut org: Object<serde_json::Value> = Object::new(Kind::Organization, None, req.organization.clone(), serde_json::to_value(org_spec).map_err(|e| ApiError::Internal(e.to_string()))?);
    org.status.state = ObjState::Ready;
    let user_spec = UserSpec { organization: Some(req.organization.clone()), role: Role::Manager, password_hash, memberships: Vec::new() };
    let mut user = Object::new(Kind::User, None, req.name, serde_json::to_value(&user_spec).map_err(|e| ApiError::Internal(e.to_string()))?);
    user.status.state = ObjState::Ready;
    let mut both = [org, user];
    s.repo.create_batch(&mut both).await.map_err(|e| match e {
        op_store::RepoError::AlreadyExists { .. } => {
            ApiError::AlreadyExists("the user name or the organization is taken; pick another (an existing organization's Manager adds members)".into())
        }
        e => e.into(),
    })?;
    let [_, user] = both;
    tracing::info!(user = %user.metadata.name, organization = %req.organization, "registered");
    // No credential came with the call: the audit log names the new Manager.
    if let Some(axum::Extension(slot)) = audit {
        slot.set(&Caller::new(user.metadata.name.to_string(), Role::Manager, Some(req.organization.clone())));
    }
    let view = UserView { metadata: user.metadata, organization: user_spec.organization, role: user_spec.role, memberships: Vec::new() };
    Ok((StatusCode::CREATED, Json(view)))
}

/// Body of `PUT /op/v1/organizations/{name}/members/{user}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    /// The role in the organization: `Manager`, `Contributor` or `Viewer`.
    pub role: Role,
}

async fn org_named(s: &AppState, c: &Caller, name: &str) -> Result<Name, ApiError> {
    let org = path_name(name)?;
    let exists = s.repo.get_by_name::<serde_json::Value, ()>(Kind::Organization, None, &org).await?.is_some();
    if !exists || !c.can_read(Some(&org)) {
        return Err(ApiError::NotFound(format!("organization '{org}' not found")));
    }
    Ok(org)
}

/// Members of an organization: users with a role there or in an organization above it.
#[utoipa::path(get, path = "/op/v1/organizations/{name}/members", tag = "organizations", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 200, body = Vec<MemberView>), (status = 404, body = ErrorInfo)))]
pub async fn list_members(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> Result<Json<Vec<MemberView>>, ApiError> {
    let org = org_named(&s, &c, &name).await?;
    let (users, _) = s.repo.list::<UserSpec, ()>(Kind::User).await?;
    let members = users
        .into_iter()
        .filter_map(|u| effective_role(&s, &u.spec, &org).map(|(role, via)| MemberView { user: u.metadata.name, role, via }))
        .collect();
    Ok(Json(members))
}

/// Give a user a role in an organization (or change it): the operator, or a Manager of the
/// organization or of one above it.
#[utoipa::path(put, path = "/op/v1/organizations/{name}/members/{user}", tag = "organizations", security(("bearer" = [])),
    params(("name" = String, Path), ("user" = String, Path)), request_body = MemberRequest,
    responses((status = 200, body = UserView), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo)))]
pub async fn put_member(
    State(s): State<AppState>,
    c: Caller,
    Path((name, user)): Path<(String, String)>,
    Body(req): Body<MemberRequest>,
) -> Result<Json<UserView>, ApiError> {
    let org = org_named(&s, &c, &name).await?;
    c.require_manager(&org)?;
    if req.role.is_operator() {
        return Err(ApiError::invalid("role", "members hold developer roles: Manager, Contributor or Viewer"));
    }
    let uname = path_name(&user)?;
    let mut u = s.repo.get_by_name::<UserSpec, ()>(Kind::User, None, &uname).await?.ok_or_else(|| ApiError::NotFound(format!("user '{uname}' not found")))?;
    if u.spec.role.is_operator() {
        return Err(ApiError::invalid("user", "operator users belong to no organization"));
    }
    if u.spec.organization.as_ref() == Some(&org) {
        u.spec.role = req.role;
    } else if let Some(m) = u.spec.memberships.iter_mut().find(|m| m.organization == org) {
        m.role = req.role;
    } else {
        u.spec.memberships.push(Membership { organization: org.clone(), role: req.role });
    }
    s.repo.update(&mut u).await?;
    tracing::info!(user = %uname, organization = %org, role = ?req.role, by = %c.user, "member role set");
    Ok(Json(u.into()))
}

/// Take a user's role in an organization away (not in its own organization: delete the user).
#[utoipa::path(delete, path = "/op/v1/organizations/{name}/members/{user}", tag = "organizations", security(("bearer" = [])),
    params(("name" = String, Path), ("user" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorInfo), (status = 404, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn delete_member(State(s): State<AppState>, c: Caller, Path((name, user)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let org = org_named(&s, &c, &name).await?;
    c.require_manager(&org)?;
    let uname = path_name(&user)?;
    let not_member = || ApiError::NotFound(format!("'{uname}' holds no role in '{org}' itself"));
    let mut u = s.repo.get_by_name::<UserSpec, ()>(Kind::User, None, &uname).await?.ok_or_else(not_member)?;
    if u.spec.organization.as_ref() == Some(&org) {
        return Err(ApiError::Aborted(format!("'{org}' is the user's own organization; delete the user instead")));
    }
    let before = u.spec.memberships.len();
    u.spec.memberships.retain(|m| m.organization != org);
    if u.spec.memberships.len() == before {
        return Err(not_member());
    }
    s.repo.update(&mut u).await?;
    tracing::info!(user = %uname, organization = %org, by = %c.user, "member removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /op/v1/apikeys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateApiKey {
    /// A label, unique in the organization.
    pub name: Name,
    /// Its role: at most the caller's (default the caller's).
    #[serde(default)]
    pub role: Option<Role>,
    /// The organization it acts in: the caller's (the default) or one below it.
    #[serde(default)]
    pub organization: Option<Name>,
    /// Days until it expires: 1 to 365, default 90.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// Create an API key acting as the caller with at most the caller's role. The answer holds
/// the key, once.
#[utoipa::path(post, path = "/op/v1/apikeys", tag = "auth", security(("bearer" = [])), request_body = CreateApiKey,
    responses((status = 201, body = ApiKeyCreated), (status = 400, body = ErrorInfo), (status = 403, body = ErrorInfo), (status = 409, body = ErrorInfo)))]
pub async fn create_api_key(State(s): State<AppState>, c: Caller, Body(req): Body<CreateApiKey>) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    let role = req.role.unwrap_or(c.role);
    if !c.role.covers(role) || role.is_operator() != c.role.is_operator() {
        return Err(ApiError::invalid("role", format!("a key's role is one of yours, at most {:?}", c.role)));
    }
    let organization = match (req.organization, &c.org) {
        (Some(o), _) if c.role.is_operator() => return Err(ApiError::invalid("organization", format!("operator keys act for no organization, not '{o}'"))),
        (Some(o), _) if !c.scope.contains(&o) => return Err(ApiError::invalid("organization", format!("'{o}' is not your organization or one below it"))),
        (Some(o), _) => Some(o),
        (None, org) => org.clone(),
    };
    let days = req.expires_in_days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid("expiresInDays", "must be 1 to 365"));
    }
    if req.description.as_ref().is_some_and(|d| d.len() > 256) {
        return Err(ApiError::invalid("description", "at most 256 characters"));
    }
    let user = Name::new(c.user.clone()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let secret = crate::ewbi::oauth::new_secret();
    let spec = ApiKeySpec {
        user,
        organization: organization.clone(),
        role,
        secret_sha256: sha256_hex(&secret),
        expires_at: Some(chrono::Utc::now() + chrono::Duration::days(i64::from(days))),
        description: req.description,
    };
    let mut key: ApiKey = Object::new(Kind::ApiKey, organization, req.name, spec);
    key.status.state = ObjState::Ready;
    s.repo.create(&mut key).await?;
    tracing::info!(key = %key.metadata.name, id = %key.metadata.uid, user = %c.user, role = ?role, "API key created");
    let full = format!("{API_KEY_PREFIX}{}_{secret}", key.metadata.uid);
    Ok((StatusCode::CREATED, Json(ApiKeyCreated { key: full, api_key: key.into() })))
}

fn key_visible(c: &Caller, k: &ApiKey) -> bool {
    k.spec.user.as_str() == c.user
        || c.role == Role::OperatorAdmin
        || (c.role == Role::Manager && k.spec.organization.as_ref().is_some_and(|o| c.scope.contains(o)))
}

/// API keys: one's own; a Manager's organizations'; all for the operator.
#[utoipa::path(get, path = "/op/v1/apikeys", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Vec<ApiKeyView>), (status = 401, body = ErrorInfo)))]
pub async fn list_api_keys(State(s): State<AppState>, c: Caller) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    let (keys, _) = s.repo.list::<ApiKeySpec, ()>(Kind::ApiKey).await?;
    Ok(Json(keys.into_iter().filter(|k| key_visible(&c, k)).map(Into::into).collect()))
}

/// Revoke an API key by id: its owner, a Manager of its organization, or the operator.
#[utoipa::path(delete, path = "/op/v1/apikeys/{id}", tag = "auth", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorInfo)))]
pub async fn delete_api_key(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound(format!("API key '{id}' not found"));
    let uid: op_types::Uid = id.parse().map_err(|_| not_found())?;
    let key = s.repo.get::<ApiKeySpec, ()>(Kind::ApiKey, uid).await?.filter(|k| key_visible(&c, k)).ok_or_else(not_found)?;
    s.repo.delete(&key).await?;
    tracing::info!(key = %key.metadata.name, id = %uid, by = %c.user, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
