//! Platform services attached to app instances (OPG.02: services offered by the operator, e.g.
//! a managed database). For each `postgresql` service an app needs, each of its instances gets
//! its own database and login role on the operator's server, both named after the instance uid
//! ([`db_name`]), with a password derived from the platform's secret and the uid
//! ([`db_password`]): a restart computes the same password, so none is stored. The container
//! receives `DATABASE_URL` (the first such service) and `OP_SERVICE_<NAME>_URL` (each); the
//! instance records only the names of what is attached. When the instance is deleted, its
//! databases and roles are dropped after its container is gone.

use std::collections::{BTreeMap, BTreeSet};

use op_store::Repo;
use op_types::specs::{App, AppInstance, PlatformServiceKind, PlatformServiceSpec, PostgresUrl};
use op_types::{Kind, Name, Object, Uid};
use tracing::info;

use crate::ReconcileError;

/// The role and database name of instance `uid`: `op_` then the uid's 32 hex digits.
pub fn db_name(uid: Uid) -> String {
    format!("op_{}", uid.to_string().replace('-', ""))
}

/// The password of instance `uid`'s role: HMAC-SHA256 of the uid under the platform's
/// `secret`, in hex. Deterministic, so it is never stored; unguessable without the secret.
pub fn db_password(secret: &[u8], uid: Uid) -> String {
    op_types::secret::derive_hex(secret, "op-platform-service-password/", uid)
}

/// The variable carrying service `name`'s URL: `OP_SERVICE_<NAME>_URL`, upper case, with
/// every character that is not a letter or digit turned into `_`.
pub fn env_name(name: &Name) -> String {
    let n: String = name
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("OP_SERVICE_{n}_URL")
}

/// What attaching an instance's services gives its container.
#[derive(Debug, Default)]
pub struct Attached {
    /// The services attached, in the app's order.
    pub names: Vec<Name>,
    /// `DATABASE_URL` and `OP_SERVICE_<NAME>_URL` (secrets: never logged).
    pub env: BTreeMap<String, String>,
}

fn failed(service: &Name, what: &str, e: impl std::fmt::Display) -> ReconcileError {
    ReconcileError::Service(format!("platform service '{service}': {what}: {e}"))
}

async fn service(
    repo: &Repo,
    name: &Name,
) -> Result<Option<Object<PlatformServiceSpec>>, ReconcileError> {
    Ok(repo
        .get_by_name::<PlatformServiceSpec, ()>(Kind::PlatformService, None, name)
        .await?)
}

/// The URL instance `uid` reaches its database of service `spec` with.
fn instance_url(
    spec: &PlatformServiceSpec,
    admin: &PostgresUrl,
    secret: &[u8],
    uid: Uid,
) -> String {
    let (host, port) = spec.reach(admin);
    let name = db_name(uid);
    PostgresUrl {
        user: name.clone(),
        password: db_password(secret, uid),
        host,
        port,
        database: name,
    }
    .to_url()
}

/// Ensures every platform service `app` needs is ready for `inst` and returns what its
/// container gets. Services already recorded as attached in the instance are not provisioned
/// again (their environment is recomputed, which needs no server); the others are, idempotently.
pub async fn attach(
    repo: &Repo,
    secret: &[u8],
    inst: &AppInstance,
    app: &App,
) -> Result<Attached, ReconcileError> {
    let uid = inst.metadata.uid;
    let mut out = Attached::default();
    for name in &app.spec.requirements.platform_services {
        let svc = service(repo, name).await?.ok_or_else(|| {
            ReconcileError::Dangling(format!("platform service '{name}' no longer exists"))
        })?;
        let admin = svc
            .spec
            .admin()
            .map_err(|e| failed(name, "its adminUrl is unusable", e))?;
        match svc.spec.kind {
            PlatformServiceKind::Postgresql => {
                if !inst.observed.services.contains(name) {
                    op_driver::postgres::ensure_database(
                        &admin,
                        &db_name(uid),
                        &db_password(secret, uid),
                    )
                    .await
                    .map_err(|e| {
                        failed(name, "cannot create the instance's database and role", e)
                    })?;
                    info!(instance = %uid, service = %name, database = %db_name(uid), "platform service attached");
                }
                let url = instance_url(&svc.spec, &admin, secret, uid);
                out.env
                    .entry("DATABASE_URL".to_string())
                    .or_insert_with(|| url.clone());
                out.env.insert(env_name(name), url);
            }
        }
        out.names.push(name.clone());
    }
    Ok(out)
}

/// Drops what [`attach`] made for `inst`: the services recorded in it and those its app needs
/// (`app` is `None` once the app is gone), so a crash between provisioning and recording
/// leaks nothing. A service that no longer exists has nothing left to drop.
pub async fn release(
    repo: &Repo,
    inst: &AppInstance,
    app: Option<&App>,
) -> Result<(), ReconcileError> {
    let uid = inst.metadata.uid;
    let mut names: BTreeSet<&Name> = inst.observed.services.iter().collect();
    if let Some(app) = app {
        names.extend(&app.spec.requirements.platform_services);
    }
    for name in names {
        let Some(svc) = service(repo, name).await? else {
            continue;
        };
        let admin = svc
            .spec
            .admin()
            .map_err(|e| failed(name, "its adminUrl is unusable", e))?;
        match svc.spec.kind {
            PlatformServiceKind::Postgresql => {
                op_driver::postgres::drop_database(&admin, &db_name(uid))
                    .await
                    .map_err(|e| failed(name, "cannot drop the instance's database and role", e))?;
            }
        }
        info!(instance = %uid, service = %name, "platform service released");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_are_deterministic_and_distinct() {
        let a: Uid = "6f1c7c2e-0a1b-4c2d-8e3f-0123456789ab".parse().unwrap();
        let b: Uid = "6f1c7c2e-0a1b-4c2d-8e3f-0123456789ac".parse().unwrap();
        assert_eq!(db_name(a), "op_6f1c7c2e0a1b4c2d8e3f0123456789ab");
        assert!(db_name(a).len() <= 63, "PostgreSQL truncates longer names");
        let p = db_password(b"secret-1", a);
        assert_eq!(
            p,
            db_password(b"secret-1", a),
            "a restart computes the same password"
        );
        assert_eq!(p.len(), 64);
        assert!(p.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(p, db_password(b"secret-1", b), "each instance has its own");
        assert_ne!(
            p,
            db_password(b"secret-2", a),
            "another platform's secret gives another"
        );
    }

    #[test]
    fn env_names_are_shell_safe() {
        assert_eq!(
            env_name(&Name::new("orders-db").unwrap()),
            "OP_SERVICE_ORDERS_DB_URL"
        );
        assert_eq!(
            env_name(&Name::new("Pg_main2").unwrap()),
            "OP_SERVICE_PG_MAIN2_URL"
        );
    }

    #[test]
    fn instance_url_uses_the_reach_address_and_the_derived_credentials() {
        let spec: PlatformServiceSpec = serde_json::from_value(serde_json::json!({
            "kind": "postgresql", "adminUrl": "postgres://op_admin:admin-pw@127.0.0.1:5432/postgres", "host": "10.88.0.1"}))
        .unwrap();
        let uid = Uid::random();
        let url = instance_url(&spec, &spec.admin().unwrap(), b"k", uid);
        let n = db_name(uid);
        assert_eq!(
            url,
            format!(
                "postgres://{n}:{}@10.88.0.1:5432/{n}",
                db_password(b"k", uid)
            )
        );
        assert!(!url.contains("admin-pw"));
    }
}
