//! The managed-PostgreSQL driver behind the `postgresql` platform service: checks an operator's
//! admin connection, and creates and drops one database with its own login role per app
//! instance. Every call connects with the operator's admin URL, does its work and disconnects;
//! each is idempotent and converges when run again after a crash at any point (existence is
//! checked before creating, a concurrent creator's "already exists" is success, and drops use
//! `IF EXISTS`). No password ever appears in an error or a log line.

use std::fmt;
use std::time::Duration;

use op_types::specs::PostgresUrl;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one whole call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong, as the server or the connection said it (never with a password).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgError(pub String);

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PgError {}

fn pg_err(e: tokio_postgres::Error) -> PgError {
    match e.as_db_error() {
        Some(db) => PgError(format!("{}: {}", db.severity(), db.message())),
        None => PgError(e.to_string()),
    }
}

fn is(e: &tokio_postgres::Error, state: &SqlState) -> bool {
    e.code() == Some(state)
}

async fn connect(url: &PostgresUrl) -> Result<Client, PgError> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(&url.user)
        .password(&url.password)
        .host(&url.host)
        .port(url.port)
        .dbname(&url.database)
        .application_name("op-platform")
        .connect_timeout(CONNECT_TIMEOUT);
    let (client, conn) =
        tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), cfg.connect(NoTls))
            .await
            .map_err(|_| {
                PgError(format!(
                    "no answer from {}:{} within {CONNECT_TIMEOUT:?}",
                    url.host, url.port
                ))
            })?
            .map_err(pg_err)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn within<T>(f: impl std::future::Future<Output = Result<T, PgError>>) -> Result<T, PgError> {
    tokio::time::timeout(CALL_TIMEOUT, f)
        .await
        .map_err(|_| PgError(format!("the server did not finish within {CALL_TIMEOUT:?}")))?
}

/// A role or database name the platform makes: `[a-z_][a-z0-9_]{0,62}`, so it can be quoted
/// into DDL (which takes no parameters) without escaping.
fn ident(name: &str) -> Result<String, PgError> {
    let b = name.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_');
    if ok {
        Ok(format!("\"{name}\""))
    } else {
        Err(PgError(format!(
            "'{name}' is not a name the platform makes"
        )))
    }
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Connects with `admin` and runs `SELECT 1`: whether the operator's admin URL works.
pub async fn check(admin: &PostgresUrl) -> Result<(), PgError> {
    within(async {
        let c = connect(admin).await?;
        let one: i32 = c.query_one("SELECT 1", &[]).await.map_err(pg_err)?.get(0);
        if one == 1 {
            Ok(())
        } else {
            Err(PgError(format!("SELECT 1 answered {one}")))
        }
    })
    .await
}

/// Ensures login role `name` with `password` exists and owns database `name`, which nobody
/// else may connect to (`CONNECT` revoked from `PUBLIC`). Idempotent: a second call changes
/// nothing, and a call after a crash half-way finishes the work.
pub async fn ensure_database(
    admin: &PostgresUrl,
    name: &str,
    password: &str,
) -> Result<(), PgError> {
    let id = ident(name)?;
    within(async {
        let c = connect(admin).await?;
        let role_exists = c
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
            .await
            .map_err(pg_err)?
            .is_some();
        if !role_exists {
            match c
                .batch_execute(&format!(
                    "CREATE ROLE {id} LOGIN PASSWORD {}",
                    literal(password)
                ))
                .await
            {
                Err(e) if !is(&e, &SqlState::DUPLICATE_OBJECT) => return Err(pg_err(e)),
                _ => {}
            }
        }
        // Converges a role made before a crash, and lets the admin create a database owned
        // by it (and later drop it).
        c.batch_execute(&format!(
            "ALTER ROLE {id} WITH LOGIN PASSWORD {}",
            literal(password)
        ))
        .await
        .map_err(pg_err)?;
        c.batch_execute(&format!("GRANT {id} TO CURRENT_USER"))
            .await
            .map_err(pg_err)?;
        let db_exists = c
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(pg_err)?
            .is_some();
        if !db_exists {
            match c
                .batch_execute(&format!("CREATE DATABASE {id} OWNER {id}"))
                .await
            {
                Err(e) if !is(&e, &SqlState::DUPLICATE_DATABASE) => return Err(pg_err(e)),
                _ => {}
            }
        }
        c.batch_execute(&format!("REVOKE ALL ON DATABASE {id} FROM PUBLIC"))
            .await
            .map_err(pg_err)?;
        Ok(())
    })
    .await
}

/// Drops database `name` (closing its sessions) and role `name`; dropping what is already
/// gone is not an error.
pub async fn drop_database(admin: &PostgresUrl, name: &str) -> Result<(), PgError> {
    let id = ident(name)?;
    within(async {
        let c = connect(admin).await?;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {id} WITH (FORCE)"))
            .await
            .map_err(pg_err)?;
        c.batch_execute(&format!("DROP ROLE IF EXISTS {id}"))
            .await
            .map_err(pg_err)?;
        Ok(())
    })
    .await
}

/// Whether database `name` and role `name` exist (for tests and diagnostics).
pub async fn exists(admin: &PostgresUrl, name: &str) -> Result<(bool, bool), PgError> {
    within(async {
        let c = connect(admin).await?;
        let db = c
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(pg_err)?
            .is_some();
        let role = c
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
            .await
            .map_err(pg_err)?
            .is_some();
        Ok((db, role))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_platform_names_reach_ddl() {
        assert_eq!(ident("op_0123abcd").unwrap(), "\"op_0123abcd\"");
        for bad in [
            "",
            "Op",
            "op-x",
            "op\"; DROP ROLE x; --",
            "1op",
            &"a".repeat(64),
        ] {
            assert!(ident(bad).is_err(), "{bad}");
        }
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_reported_without_the_password() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = PostgresUrl::parse(&format!(
            "postgres://op_admin:hunter2-secret@127.0.0.1:{port}/postgres"
        ))
        .unwrap();
        let e = check(&url).await.unwrap_err();
        assert!(!e.0.contains("hunter2-secret"), "{e}");
        assert!(!e.0.is_empty());
    }
}
