//! Platform services (OPG.02: services offered by the operator): the operator offers a managed
//! PostgreSQL; an app that needs it gets, per instance, its own database and role, handed to
//! its container as `DATABASE_URL`; instances cannot reach each other's databases; deleting an
//! instance drops them. Needs the server of `scripts/setup-postgres.sh` (run by
//! `scripts/setup-runtime.sh`).

use std::time::Duration;

use anyhow::{Context, Result};
use op_e2e::*;
use serde_json::{json, Value};

/// The admin URL the setup script wrote (or `OP_TEST_PG_ADMIN_URL`).
fn admin_url() -> String {
    std::env::var("OP_TEST_PG_ADMIN_URL").unwrap_or_else(|_| {
        std::fs::read_to_string("/var/lib/op/pg-admin-url")
            .map(|s| s.trim().to_string())
            .expect("no PostgreSQL admin URL in /var/lib/op/pg-admin-url: run scripts/setup-postgres.sh")
    })
}

/// Where containers reach the server (the Podman bridge's gateway).
fn instance_host() -> String {
    std::fs::read_to_string("/var/lib/op/pg-instance-host")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "10.88.0.1".into())
}

/// `postgres://user:password@host:port/db`, split (the platform's URLs need no unescaping).
struct Url {
    user: String,
    password: String,
    host: String,
    port: u16,
    db: String,
}

fn parse(url: &str) -> Result<Url> {
    let rest = url.strip_prefix("postgres://").context("scheme")?;
    let (cred, server) = rest.rsplit_once('@').context("@")?;
    let (user, password) = cred.split_once(':').context("user:password")?;
    let (hostport, db) = server.split_once('/').context("/db")?;
    let (host, port) = hostport.rsplit_once(':').context("host:port")?;
    Ok(Url {
        user: user.into(),
        password: password.into(),
        host: host.into(),
        port: port.parse()?,
        db: db.into(),
    })
}

/// Connects to `db` on the server at 127.0.0.1 as `user`.
async fn connect(
    user: &str,
    password: &str,
    port: u16,
    db: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(user)
        .password(password)
        .dbname(db)
        .connect_timeout(Duration::from_secs(5))
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn as_admin() -> Result<tokio_postgres::Client> {
    let a = parse(&admin_url())?;
    Ok(connect(&a.user, &a.password, a.port, &a.db).await?)
}

/// Whether database `name` and role `name` exist, as the server's admin sees it.
async fn db_and_role(name: &str) -> Result<(bool, bool)> {
    let c = as_admin().await?;
    let db = c
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    let role = c
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await?
        .is_some();
    Ok((db, role))
}

fn named(e: &Value, field: &str) -> bool {
    e["message"].as_str().is_some_and(|m| m.contains(field))
}

/// The value of `var` in the container of instance `id`, as the runtime reports it.
fn container_env(id: &str, var: &str) -> Result<Option<String>> {
    let out = std::process::Command::new("podman")
        .args([
            "--url",
            &docker_endpoint(),
            "container",
            "inspect",
            &format!("op-{id}"),
            "--format",
            "{{range .Config.Env}}{{println .}}{{end}}",
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "podman inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{var}=")).map(str::to_string)))
}

#[tokio::test(flavor = "multi_thread")]
async fn managed_database_per_instance() -> Result<()> {
    let url = admin_url();
    let admin_secret = parse(&url)?.password;
    let p = Platform::start().await?;
    let op = p.admin().await?;
    let dev = p.developer("svc_org_1", "sam", "Manager").await?;
    let services = "/op/v1/platformservices";
    let spec = |admin_url: &str| json!({"kind": "postgresql", "adminUrl": admin_url, "host": instance_host(), "cloudlets": ["local-docker"], "description": "managed PostgreSQL"});

    // A malformed URL, a wrong password and an unknown cloudlet are refused at once, naming
    // the field; the message never repeats the URL.
    let (s, e) = op
        .post(
            services,
            &json!({"name": "db", "spec": spec("mysql://op_admin:pw@127.0.0.1/x")}),
        )
        .await?;
    assert!(s == 400 && named(&e, "adminUrl"), "{s} {e}");
    assert!(!e.to_string().contains("op_admin:pw"), "{e}");
    let wrong = url.replace(&admin_secret, "not-the-password");
    let (s, e) = op
        .post(services, &json!({"name": "db", "spec": spec(&wrong)}))
        .await?;
    assert!(
        s == 400 && named(&e, "adminUrl") && named(&e, "SELECT 1"),
        "{s} {e}"
    );
    assert!(!e.to_string().contains("not-the-password"), "{e}");
    let mut bad = spec(&url);
    bad["cloudlets"] = json!(["nowhere"]);
    let (s, e) = op
        .post(services, &json!({"name": "db", "spec": bad}))
        .await?;
    assert!(s == 400 && named(&e, "spec.cloudlets[0]"), "{s} {e}");
    // Developers cannot offer services.
    let (s, _) = dev
        .post(services, &json!({"name": "mine", "spec": spec(&url)}))
        .await?;
    assert_eq!(s, 403);

    // The operator offers it on cloudlet local-docker only.
    let (s, created) = op
        .post(services, &json!({"name": "db", "spec": spec(&url)}))
        .await?;
    assert_eq!(s, 201, "{created}");
    // The admin URL is never answered, to anyone; developers see no cloudlet either.
    let answers = [
        ("create", created),
        ("operator get", op.get(&format!("{services}/db")).await?.1),
        ("operator list", op.get(services).await?.1),
        ("developer get", dev.get(&format!("{services}/db")).await?.1),
        ("developer list", dev.get(services).await?.1),
    ];
    for (what, body) in &answers {
        let text = body.to_string();
        assert!(
            !text.contains(&admin_secret) && !text.contains("adminUrl"),
            "{what} shows the admin URL: {text}"
        );
        assert!(text.contains("managed PostgreSQL"), "{what}: {text}");
    }
    assert_eq!(
        answers[1].1["spec"]["cloudlets"],
        json!(["local-docker"]),
        "operators see where it is offered"
    );
    assert_eq!(answers[1].1["spec"]["host"], json!(instance_host()));
    for (what, body) in &answers[3..] {
        assert!(
            !body.to_string().contains("local-docker"),
            "{what} shows a cloudlet: {body}"
        );
    }
    // Replacing it without adminUrl keeps the stored one (checked again); a bad one is refused.
    let mut keep = spec(&url);
    keep.as_object_mut().context("spec")?.remove("adminUrl");
    let (s, b) = op
        .put(&format!("{services}/db"), &json!({"spec": keep}))
        .await?;
    assert!(
        s == 200 && !b.to_string().contains(&admin_secret),
        "{s} {b}"
    );
    let (s, e) = op
        .put(&format!("{services}/db"), &json!({"spec": spec(&wrong)}))
        .await?;
    assert!(s == 400 && named(&e, "adminUrl"), "{s} {e}");

    // An app needing a service nobody offers is refused at onboarding.
    let (s, e) = dev
        .post(&format!("{CAMARA}/apps"), &{
            let mut m = sample_manifest("svc_org_1", "nosvc");
            m["requirements"] = json!({"platformServices": ["db", "redis"]});
            m
        })
        .await?;
    assert!(
        s == 400 && named(&e, "requirements.platformServices[1]"),
        "{s} {e}"
    );

    // A second cloudlet in zone local without the service, and a zone where it is not offered.
    let cloudlet = |name: &str, zone: &str| {
        json!({"name": name, "spec": {"zone": zone, "location": {"latitude": 48.85, "longitude": 2.35}, "platformType": "sim",
            "driverEndpoint": format!("sim://{name}"), "capacity": {"vcpus": 64, "memoryMb": 65536, "diskGb": 100}, "flavors": ["small"]}})
    };
    assert_eq!(
        op.post("/op/v1/cloudlets", &cloudlet("local-2", "local"))
            .await?
            .0,
        201
    );
    let (s, _) = op
        .post("/op/v1/zones", &json!({"name": "bare", "spec": {"region": "default", "location": {"latitude": 45.0, "longitude": 5.0}, "serviceArea": {"cells": ["c-bare"]}}}))
        .await?;
    assert_eq!(s, 201);
    assert_eq!(
        op.post("/op/v1/cloudlets", &cloudlet("bare-1", "bare"))
            .await?
            .0,
        201
    );

    let app = dev
        .sample_app(
            "svc_org_1",
            "store",
            json!({"requirements": {"platformServices": ["db"]}}),
        )
        .await?;
    let bare = p.zone_id(&dev, "bare").await?;
    let (s, e) = dev
        .post(
            &format!("{CAMARA}/appinstances"),
            &json!({"name": "store_x", "appId": app, "edgeCloudZoneId": bare}),
        )
        .await?;
    assert!(
        s == 400 && named(&e, "requirements.platformServices") && named(&e, "'db'"),
        "{s} {e}"
    );

    // Deployed in zone local: on local-docker, local-2 ruled out for the service.
    let local = p.zone_id(&dev, "local").await?;
    let first = dev.deploy("store_1", &app, &local).await?;
    let inst = dev.wait_ready(&first, Duration::from_secs(90)).await?;
    assert_eq!(
        inst["observed"]["services"],
        json!(["db"]),
        "the instance records what is attached: {inst}"
    );
    assert!(
        !inst.to_string().contains("postgres://"),
        "no credentials in the instance: {inst}"
    );
    let seen = op.instance(&first).await?.context("instance")?;
    assert_eq!(seen["spec"]["cloudlet"], "local-docker");
    let edges = seen["observed"]["placement"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let other = edges
        .iter()
        .find(|e| e["cloudlet"] == "local-2")
        .context("local-2 in the explanation")?;
    assert!(
        other["outcome"]
            .as_str()
            .unwrap_or_default()
            .contains("platform service"),
        "{other}"
    );

    // The container has its database URL: its own role and database, reached at the bridge.
    let from_app = http_get_ok(
        &format!("{}env/DATABASE_URL", endpoint(&inst)?),
        Duration::from_secs(10),
    )
    .await?;
    let db_url = from_app.trim().to_string();
    assert_eq!(
        container_env(&first, "DATABASE_URL")?.as_deref(),
        Some(db_url.as_str())
    );
    assert_eq!(
        container_env(&first, "OP_SERVICE_DB_URL")?.as_deref(),
        Some(db_url.as_str())
    );
    let one = parse(&db_url)?;
    let name1 = format!("op_{}", first.replace('-', ""));
    assert_eq!(
        (one.user.as_str(), one.db.as_str(), one.host.as_str()),
        (name1.as_str(), name1.as_str(), instance_host().as_str())
    );
    assert_ne!(one.password, admin_secret);
    assert!(one.password.len() >= 32, "a strong password");

    // Those credentials work, and own their database.
    let c1 = connect(&one.user, &one.password, one.port, &one.db).await?;
    c1.batch_execute("CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders VALUES (1, 'sword')").await?;
    let item: String = c1
        .query_one("SELECT item FROM orders WHERE id = 1", &[])
        .await?
        .get(0);
    assert_eq!(item, "sword");
    drop(c1);

    // A second instance gets another database; neither can connect to the other's.
    let second = dev.deploy("store_2", &app, &local).await?;
    let inst2 = dev.wait_ready(&second, Duration::from_secs(90)).await?;
    let two = parse(
        http_get_ok(
            &format!("{}env/DATABASE_URL", endpoint(&inst2)?),
            Duration::from_secs(10),
        )
        .await?
        .trim(),
    )?;
    assert_ne!(
        (&two.user, &two.password, &two.db),
        (&one.user, &one.password, &one.db)
    );
    connect(&two.user, &two.password, two.port, &two.db)
        .await?
        .batch_execute("CREATE TABLE t (x int)")
        .await?;
    for (who, whose) in [(&two, &one), (&one, &two)] {
        match connect(&who.user, &who.password, whose.port, &whose.db).await {
            Ok(_) => panic!("{} connected to {}'s database", who.user, whose.user),
            Err(e) => {
                let msg = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                assert!(
                    msg.contains("permission denied"),
                    "refused for another reason: {msg}"
                );
            }
        }
    }

    // The service cannot go while an app needs it.
    let (s, b) = op.delete(&format!("{services}/db")).await?;
    assert!(
        s == 409 && b["message"].as_str().unwrap_or_default().contains("store"),
        "{s} {b}"
    );

    // Deleting an instance drops its database and role, and only those.
    let name2 = format!("op_{}", second.replace('-', ""));
    assert_eq!(db_and_role(&name1).await?, (true, true));
    assert_eq!(
        dev.delete(&format!("{CAMARA}/appinstances/{first}"))
            .await?
            .0,
        202
    );
    dev.wait_gone(&first, Duration::from_secs(60)).await?;
    assert_eq!(containers_of(&first).await?, 0);
    assert_eq!(
        db_and_role(&name1).await?,
        (false, false),
        "database and role of the deleted instance are dropped"
    );
    assert_eq!(
        db_and_role(&name2).await?,
        (true, true),
        "the other instance keeps its own"
    );
    connect(&two.user, &two.password, two.port, &two.db).await?;

    // Once nothing needs it, the service goes.
    assert_eq!(
        dev.delete(&format!("{CAMARA}/appinstances/{second}"))
            .await?
            .0,
        202
    );
    dev.wait_gone(&second, Duration::from_secs(60)).await?;
    assert_eq!(db_and_role(&name2).await?, (false, false));
    assert_eq!(dev.delete(&format!("{CAMARA}/apps/{app}")).await?.0, 204);
    assert_eq!(op.delete(&format!("{services}/db")).await?.0, 204);
    assert_eq!(op.get(&format!("{services}/db")).await?.0, 404);
    // Nothing of the admin URL reached the log either.
    assert!(
        !p.log().contains(&admin_secret),
        "the admin password is in opd's log"
    );
    Ok(())
}

/// Provisioning converges from whatever a crash left (a role without its database, a database
/// still open to everyone) and from a second run; dropping twice is harmless.
#[tokio::test(flavor = "multi_thread")]
async fn provisioning_converges_after_a_crash() -> Result<()> {
    use op_driver::postgres::{drop_database, ensure_database, exists};
    let admin = op_types::specs::PostgresUrl::parse(&admin_url()).map_err(anyhow::Error::msg)?;
    let name = format!(
        "op_{}",
        op_types::Uid::random().to_string().replace('-', "")
    );
    let (pw, port) = ("derived-password-1", admin.port);
    let c = as_admin().await?;

    // A crash after CREATE ROLE, with another password than the one derived now.
    c.batch_execute(&format!("CREATE ROLE {name} LOGIN PASSWORD 'old'"))
        .await?;
    ensure_database(&admin, &name, pw).await?;
    assert_eq!(exists(&admin, &name).await?, (true, true));
    connect(&name, pw, port, &name)
        .await?
        .batch_execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
        .await?;

    // A crash after CREATE DATABASE, before CONNECT was revoked from PUBLIC.
    c.batch_execute(&format!("GRANT CONNECT ON DATABASE {name} TO PUBLIC"))
        .await?;
    ensure_database(&admin, &name, pw).await?;
    let public: bool = c
        .query_one(
            "SELECT has_database_privilege('public', $1::text, 'CONNECT')",
            &[&name],
        )
        .await?
        .get(0);
    assert!(!public, "PUBLIC may still connect");
    let acl: Option<String> = c
        .query_one(
            "SELECT datacl::text FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await?
        .get(0);
    assert!(
        acl.as_deref()
            .is_some_and(|a| !a.contains("{=") && !a.contains(",=")),
        "PUBLIC keeps a privilege: {acl:?}"
    );

    // Again: nothing changes, the data stays.
    ensure_database(&admin, &name, pw).await?;
    let x: i32 = connect(&name, pw, port, &name)
        .await?
        .query_one("SELECT x FROM kept", &[])
        .await?
        .get(0);
    assert_eq!(x, 7);

    drop_database(&admin, &name).await?;
    assert_eq!(exists(&admin, &name).await?, (false, false));
    drop_database(&admin, &name).await?;
    Ok(())
}

/// The README's platform-services walk-through, executed verbatim with the real opctl.
#[tokio::test(flavor = "multi_thread")]
async fn readme_services_runs() -> Result<()> {
    let p = Platform::start().await?;
    let run = run_readme_block("services", &p).await?;
    let url = run
        .stdout
        .lines()
        .find(|l| l.starts_with("postgres://"))
        .with_context(|| format!("no DATABASE_URL printed:\n{}", run.stdout))?;
    assert!(
        url.starts_with("postgres://op_") && url.contains(":<password>@"),
        "{url}"
    );
    assert!(
        url.contains(&format!("@{}:", instance_host())),
        "reached at the bridge: {url}"
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("platform services") && l.contains("pg")),
        "{}",
        run.stdout
    );
    let db = url.rsplit('/').next().context("db")?;
    assert_eq!(
        db_and_role(db).await?,
        (false, false),
        "the instance's database went with it"
    );
    Ok(())
}

/// kill -9 of opd while instances needing the database deploy, and again while they are
/// deleted: after each restart every instance converges (Ready with a working database of its
/// own, then gone with its database and role).
#[tokio::test(flavor = "multi_thread")]
async fn kill9_while_attaching_and_releasing_converges() -> Result<()> {
    let mut p = Platform::start().await?;
    let op = p.admin().await?;
    let dev = p.developer("svc_crash_1", "cleo", "Manager").await?;
    let (s, e) = op
        .post("/op/v1/platformservices", &json!({"name": "db", "spec": {"kind": "postgresql", "adminUrl": admin_url(), "host": instance_host()}}))
        .await?;
    assert_eq!(s, 201, "{e}");
    let zone = p.zone_id(&dev, "local").await?;
    let app = dev
        .sample_app(
            "svc_crash_1",
            "crashdb",
            json!({"requirements": {"platformServices": ["db"]}}),
        )
        .await?;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(dev.deploy(&format!("c_{i}"), &app, &zone).await?);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    p.restart().await?;
    for id in &ids {
        let inst = dev.wait_ready(id, Duration::from_secs(90)).await?;
        let u = parse(
            http_get_ok(
                &format!("{}env/DATABASE_URL", endpoint(&inst)?),
                Duration::from_secs(10),
            )
            .await?
            .trim(),
        )?;
        connect(&u.user, &u.password, u.port, &u.db)
            .await?
            .batch_execute("CREATE TABLE t (x int)")
            .await?;
    }
    for id in &ids {
        assert_eq!(
            dev.delete(&format!("{CAMARA}/appinstances/{id}")).await?.0,
            202
        );
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    p.restart().await?;
    for id in &ids {
        dev.wait_gone(id, Duration::from_secs(60)).await?;
        assert_eq!(
            db_and_role(&format!("op_{}", id.replace('-', ""))).await?,
            (false, false),
            "instance {id}"
        );
    }
    Ok(())
}
