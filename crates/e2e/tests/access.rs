//! Identity and access on the real opd: every role against every endpoint class (with login
//! tokens and with API keys), organization groups, self-serve registration, API keys, and the
//! OpenID Connect provider's authorization code flow; and no organization ever seeing
//! another's objects through any list of the API.

use std::time::Duration;

use base64::Engine as _;
use op_e2e::*;
use serde_json::{json, Value};
use sha2::Digest as _;

/// The roles of the matrix, in column order.
const ROLES: [&str; 7] = ["OperatorAdmin", "OperatorViewer", "Manager", "Contributor", "Viewer", "Outsider", "Anonymous"];

/// One endpoint class: a request (made unique by `n` where it creates something) and the
/// status each role gets.
struct Class {
    name: &'static str,
    request: fn(n: usize, fx: &Fixture) -> (&'static str, String, Option<Value>),
    expect: [u16; 7],
}

/// What the matrix's requests refer to.
struct Fixture {
    app: String,
    team_app: String,
}

fn classes() -> Vec<Class> {
    vec![
        Class { name: "infrastructure write", request: |n, _| ("POST", "/op/v1/regions".into(), Some(json!({"name": format!("region-{n}"), "spec": {}}))), expect: [201, 403, 403, 403, 403, 403, 401] },
        Class { name: "infrastructure read (cloudlets)", request: |_, _| ("GET", "/op/v1/cloudlets".into(), None), expect: [200, 200, 403, 403, 403, 403, 401] },
        Class { name: "operator policy read", request: |_, _| ("GET", "/op/v1/placementpolicies".into(), None), expect: [200, 200, 403, 403, 403, 403, 401] },
        Class { name: "catalogue read (flavors)", request: |_, _| ("GET", "/op/v1/flavors".into(), None), expect: [200, 200, 200, 200, 200, 200, 401] },
        Class { name: "zones read", request: |_, _| ("GET", format!("{CAMARA}/edge-cloud-zones"), None), expect: [200, 200, 200, 200, 200, 200, 401] },
        Class { name: "app read", request: |_, f| ("GET", format!("{CAMARA}/apps/{}", f.app), None), expect: [200, 200, 200, 200, 200, 404, 401] },
        Class { name: "app read in a group (inherited role)", request: |_, f| ("GET", format!("{CAMARA}/apps/{}", f.team_app), None), expect: [200, 200, 200, 200, 200, 404, 401] },
        Class { name: "app write", request: |n, _| ("POST", format!("{CAMARA}/apps"), Some(sample_manifest("org_matrix", &format!("app_{n}")))), expect: [201, 403, 201, 201, 403, 400, 401] },
        Class { name: "app write in a group", request: |n, _| ("POST", format!("{CAMARA}/apps"), Some(sample_manifest("org_matrix_team", &format!("tapp_{n}")))), expect: [201, 403, 201, 201, 403, 400, 401] },
        Class {
            name: "users of the organization",
            request: |n, _| ("POST", "/op/v1/users".into(), Some(json!({"name": format!("user-{n}"), "organization": "org_matrix", "role": "Viewer", "password": "a-long-password-1"}))),
            expect: [201, 403, 201, 403, 403, 403, 401],
        },
        Class { name: "members read", request: |_, _| ("GET", "/op/v1/organizations/org_matrix/members".into(), None), expect: [200, 200, 200, 200, 200, 404, 401] },
        Class {
            name: "members write",
            request: |_, _| ("PUT", "/op/v1/organizations/org_matrix/members/bystander".into(), Some(json!({"role": "Viewer"}))),
            expect: [200, 403, 200, 403, 403, 404, 401],
        },
        Class { name: "group create", request: |n, _| ("POST", "/op/v1/organizations".into(), Some(json!({"name": format!("org_group_{n}"), "spec": {"parent": "org_matrix"}}))), expect: [201, 403, 201, 403, 403, 403, 401] },
        Class { name: "organization create", request: |n, _| ("POST", "/op/v1/organizations".into(), Some(json!({"name": format!("org_top_{n}"), "spec": {}}))), expect: [201, 403, 403, 403, 403, 403, 401] },
        Class { name: "federation (operator)", request: |_, _| ("GET", "/op/v1/federation/partners".into(), None), expect: [200, 200, 403, 403, 403, 403, 401] },
        Class { name: "metrics", request: |_, _| ("GET", "/metrics".into(), None), expect: [200, 200, 403, 403, 403, 403, 401] },
        Class { name: "resource use per cloudlet", request: |_, _| ("GET", "/op/v1/resources/cloudlets".into(), None), expect: [200, 200, 403, 403, 403, 403, 401] },
        Class { name: "resource use per tenant", request: |_, _| ("GET", "/op/v1/resources/tenants".into(), None), expect: [200, 200, 200, 200, 200, 200, 401] },
        Class { name: "events", request: |_, _| ("GET", "/op/v1/events".into(), None), expect: [200, 200, 200, 200, 200, 200, 401] },
        Class { name: "clusters and load balancers", request: |_, _| ("GET", "/op/v1/clusters".into(), None), expect: [200, 200, 200, 200, 200, 200, 401] },
        Class { name: "alarms", request: |_, _| ("GET", "/op/v1/alarms".into(), None), expect: [200, 200, 200, 200, 200, 200, 401] },
        Class {
            name: "alarm receiver of an organization",
            request: |n, _| ("POST", "/op/v1/alarmreceivers".into(), Some(json!({"name": format!("rcv-{n}"), "organization": "org_matrix", "spec": {"url": "http://127.0.0.1:9/hook"}}))),
            expect: [201, 403, 201, 201, 403, 403, 401],
        },
        Class {
            name: "alert policy (the caller's own organization; the operator's covers all)",
            request: |n, _| ("POST", "/op/v1/alertpolicies".into(), Some(json!({"name": format!("pol-{n}"), "spec": {"cpuPercent": 90}}))),
            expect: [201, 403, 201, 201, 403, 201, 401],
        },
        Class { name: "API key create", request: |n, _| ("POST", "/op/v1/apikeys".into(), Some(json!({"name": format!("key-{n}")}))), expect: [201, 201, 201, 201, 201, 201, 401] },
        Class {
            name: "OpenID Connect clients",
            request: |n, _| ("POST", "/op/v1/oidc/clients".into(), Some(json!({"name": format!("client-{n}"), "redirectUris": ["https://console.example/cb"]}))),
            expect: [201, 403, 403, 403, 403, 403, 401],
        },
    ]
}

async fn call(api: &Api, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
    match (method, body) {
        ("GET", _) => api.get(path).await,
        ("POST", Some(b)) => api.post(path, b).await,
        ("PUT", Some(b)) => api.put(path, b).await,
        ("DELETE", _) => api.delete(path).await,
        _ => anyhow::bail!("bad request in the matrix: {method} {path}"),
    }
}

/// Every role against every endpoint class, once with login tokens and once with API keys
/// each user made for itself: the same answers.
#[tokio::test(flavor = "multi_thread")]
async fn rbac_matrix() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let admin = p.admin().await?;
    let manager = p.developer("org_matrix", "mona", "Manager").await?;
    let (s, e) = manager.post("/op/v1/organizations", &json!({"name": "org_matrix_team", "spec": {"parent": "org_matrix"}})).await?;
    assert_eq!(s, 201, "a Manager makes a group of its organization: {e}");
    let pw = "correct-horse-battery";
    for (name, org, role) in [("carl", "org_matrix", "Contributor"), ("vic", "org_matrix", "Viewer"), ("olga", "", "OperatorViewer")] {
        let org = (!org.is_empty()).then_some(org);
        let (s, e) = admin.post("/op/v1/users", &json!({"name": name, "organization": org, "role": role, "password": pw})).await?;
        assert_eq!(s, 201, "{e}");
    }
    let outsider = p.developer("org_outsider", "otto", "Manager").await?;
    let (s, e) = admin.post("/op/v1/users", &json!({"name": "bystander", "organization": "org_outsider", "role": "Viewer", "password": pw})).await?;
    assert_eq!(s, 201, "{e}");
    let fx = Fixture {
        app: manager.sample_app("org_matrix", "matrix_app", json!({})).await?,
        team_app: manager.sample_app("org_matrix_team", "team_app", json!({})).await?,
    };
    let by_login = vec![
        admin.clone(),
        p.api(Some(p.login("olga", pw).await?)),
        manager.clone(),
        p.api(Some(p.login("carl", pw).await?)),
        p.api(Some(p.login("vic", pw).await?)),
        outsider.clone(),
        p.api(None),
    ];
    // Each user's own key (its role by default).
    let mut by_key = Vec::new();
    for (i, api) in by_login.iter().enumerate() {
        if ROLES[i] == "Anonymous" {
            by_key.push(api.clone());
            continue;
        }
        let (s, k) = api.post("/op/v1/apikeys", &json!({"name": format!("matrix-{i}"), "expiresInDays": 1})).await?;
        assert_eq!(s, 201, "{} makes a key: {k}", ROLES[i]);
        let key = k["key"].as_str().unwrap_or_default().to_string();
        assert!(key.starts_with("opk_"), "{k}");
        assert_eq!(k["apiKey"]["role"], json!(if ROLES[i] == "Outsider" { "Manager" } else { ROLES[i] }), "{k}");
        by_key.push(p.api(Some(key)));
    }

    let mut n = 0;
    let mut wrong = Vec::new();
    for (how, callers) in [("token", &by_login), ("API key", &by_key)] {
        for class in classes() {
            for (i, api) in callers.iter().enumerate() {
                n += 1;
                let (method, path, body) = (class.request)(n, &fx);
                let (got, answer) = call(api, method, &path, body.as_ref()).await?;
                if got != class.expect[i] {
                    wrong.push(format!("{} with a {how}: {} ({method} {path}) answered {got}, expected {}: {answer}", ROLES[i], class.name, class.expect[i]));
                }
                if (400..500).contains(&got) && got != 404 && method != "GET" {
                    assert!(answer["code"].is_string() && answer["message"].is_string(), "a refusal carries the error body: {answer}");
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {n} cells wrong:\n{}", wrong.len(), wrong.join("\n"));
    Ok(())
}

/// Substitutes a path's parameters with the ids of another organization's objects.
fn with_ids(path: &str, app: &str, inst: &str, org: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        let param = &rest[open..close];
        let value = if param == "{name}" && out.contains("organizations") {
            org
        } else if out.contains("appinstances") || out.contains("relocations") {
            inst
        } else {
            app
        };
        out.push_str(value);
        rest = &rest[close..];
    }
    out + rest
}

/// No organization sees another's objects through any GET of the API (every path the OpenAPI
/// document lists, lists and filters and logs included), nor in metrics; groups see nothing of
/// their siblings or parent.
#[tokio::test(flavor = "multi_thread")]
async fn no_organization_ever_sees_another() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let a = p.developer("org_secretive", "alice", "Manager").await?;
    let b = p.developer("org_curious", "bob", "Manager").await?;
    let (s, e) = b.post("/op/v1/organizations", &json!({"name": "org_curious_kids", "spec": {"parent": "org_curious"}})).await?;
    assert_eq!(s, 201, "{e}");
    let zone = p.zone_id(&a, "local").await?;
    let app = a.sample_app("org_secretive", "zz_hidden_marker", json!({})).await?;
    let inst = a.deploy("zz_hidden_inst", &app, &zone).await?;
    a.wait_ready(&inst, Duration::from_secs(60)).await?;
    let (s, _) = a.post("/op/v1/apikeys", &json!({"name": "zz-hidden-key"})).await?;
    assert_eq!(s, 201);
    let markers = ["zz_hidden_marker", "zz_hidden_inst", "zz-hidden-key", "org_secretive", "alice", &app, &inst];
    // B's group, acting for itself (bob holds a role there too).
    let (s, e) = b.put("/op/v1/organizations/org_curious_kids/members/bob", &json!({"role": "Viewer"})).await?;
    assert_eq!(s, 200, "{e}");
    let kid = p.api(Some(login_for(&p, "bob", "correct-horse-battery", "org_curious_kids").await?));

    let (_, doc) = p.api(None).get("/openapi.json").await?;
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    let mut checked = 0;
    for (path, ops) in &paths {
        if ops.get("get").is_none() {
            continue;
        }
        let url = with_ids(path, &app, &inst, "org_secretive");
        for (who, api) in [("another organization", &b), ("a group of another organization", &kid)] {
            let (status, body) = api.get(&url).await?;
            checked += 1;
            let text = body.to_string();
            if path.contains('{') {
                // The caller named A's object itself: it must not be found (or allowed).
                assert!((400..500).contains(&status), "{who} reached {url}: {status} {text}");
            } else {
                for m in markers {
                    assert!(!text.contains(m), "{who} saw '{m}' in GET {url} ({status}): {text}");
                }
            }
        }
    }
    assert!(checked > 20, "the OpenAPI document lists the API's reads: {checked}");
    // The group, acting for itself, sees itself only (not its parent).
    let (_, orgs) = kid.get("/op/v1/organizations").await?;
    assert_eq!(orgs.as_array().map(|o| o.iter().map(|x| x["metadata"]["name"].clone()).collect::<Vec<_>>()), Some(vec![json!("org_curious_kids")]), "a group sees itself only");
    assert_eq!(kid.get(&format!("{CAMARA}/apps/{app}")).await?.0, 404);
    // A's logs and metrics are A's.
    assert_eq!(b.get(&format!("/op/v1/appinstances/{inst}/logs")).await?.0, 404);
    assert_eq!(b.get("/metrics").await?.0, 403, "metrics span organizations: operator only");
    Ok(())
}

async fn login_for(p: &Platform, user: &str, pw: &str, org: &str) -> anyhow::Result<String> {
    let (s, t) = p.api(None).post("/op/v1/auth/token", &json!({"username": user, "password": pw, "organization": org})).await?;
    anyhow::ensure!(s == 200, "login for {org}: {s} {t}");
    Ok(t["access_token"].as_str().unwrap_or_default().to_string())
}

/// Self-serve registration makes an organization and its Manager together (or neither); the
/// operator can turn it off. API keys act with at most their user's role, and stop when
/// revoked or when their user loses the role.
#[tokio::test(flavor = "multi_thread")]
async fn registration_and_api_keys() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let anon = p.api(None);
    let (s, u) = anon.post("/op/v1/auth/register", &json!({"name": "rita", "password": "rita-password-1", "organization": "org_selfmade"})).await?;
    assert_eq!((s, u["role"].as_str(), u["organization"].as_str()), (201, Some("Manager"), Some("org_selfmade")), "{u}");
    assert!(!u.to_string().contains("rita-password-1") && !u.to_string().contains("argon2"), "{u}");
    let rita = p.api(Some(p.login("rita", "rita-password-1").await?));
    assert_eq!(rita.get("/op/v1/organizations/org_selfmade").await?.0, 200);
    // Taken organization: refused whole (no user "ron" appears).
    let (s, e) = anon.post("/op/v1/auth/register", &json!({"name": "ron", "password": "ron-password-12", "organization": "org_selfmade"})).await?;
    assert_eq!((s, e["code"].as_str()), (409, Some("ALREADY_EXISTS")), "{e}");
    assert!(p.login("ron", "ron-password-12").await.is_err(), "no half-made registration");
    // Bad input names its field.
    let (s, e) = anon.post("/op/v1/auth/register", &json!({"name": "sam", "password": "short", "organization": "org_samsorg"})).await?;
    assert_eq!((s, e["message"].as_str().map(|m| m.contains("password"))), (400, Some(true)), "{e}");
    let (s, e) = anon.post("/op/v1/auth/register", &json!({"name": "sam", "password": "long-enough-pw", "organization": "x"})).await?;
    assert_eq!((s, e["message"].as_str().map(|m| m.contains("organization"))), (400, Some(true)), "{e}");

    // Keys: at most the user's role; a Viewer key reads and cannot write.
    let (s, e) = p.admin().await?.post("/op/v1/users", &json!({"name": "cora", "organization": "org_selfmade", "role": "Contributor", "password": "cora-password-1"})).await?;
    assert_eq!(s, 201, "{e}");
    let cora = p.api(Some(p.login("cora", "cora-password-1").await?));
    let (s, e) = cora.post("/op/v1/apikeys", &json!({"name": "too-much", "role": "Manager"})).await?;
    assert_eq!((s, e["message"].as_str().map(|m| m.contains("role"))), (400, Some(true)), "{e}");
    let (s, k) = cora.post("/op/v1/apikeys", &json!({"name": "ci-read", "role": "Viewer", "description": "dashboards"})).await?;
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().unwrap_or_default().to_string();
    let key_id = k["apiKey"]["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let ci = p.api(Some(key.clone()));
    assert_eq!(ci.get(&format!("{CAMARA}/apps")).await?.0, 200);
    assert_eq!(ci.post(&format!("{CAMARA}/apps"), &sample_manifest("org_selfmade", "by_key")).await?.0, 403, "a Viewer key cannot write");
    // Listing shows it, never its secret.
    let (_, keys) = rita.get("/op/v1/apikeys").await?;
    let text = keys.to_string();
    // The secret is all after `opk_<id>_` (it may hold `_` itself: it is base64url).
    let secret = key.strip_prefix(&format!("opk_{key_id}_")).unwrap_or(&key);
    assert!(secret.len() >= 40, "{key}");
    assert!(text.contains("ci-read") && !text.contains(secret), "{text}");
    // A wrong secret for a real key id: 401.
    let forged = format!("opk_{key_id}_{}", "A".repeat(43));
    assert_eq!(p.api(Some(forged)).get(&format!("{CAMARA}/apps")).await?.0, 401);

    // A key in a group works while its user holds a role there, and stops when it is taken.
    let (s, e) = rita.post("/op/v1/organizations", &json!({"name": "org_selfmade_lab", "spec": {"parent": "org_selfmade"}})).await?;
    assert_eq!(s, 201, "{e}");
    let (s, e) = rita.put("/op/v1/organizations/org_selfmade_lab/members/cora", &json!({"role": "Contributor"})).await?;
    assert_eq!(s, 200, "{e}");
    let cora_lab = p.api(Some(login_for(&p, "cora", "cora-password-1", "org_selfmade_lab").await?));
    let (s, k2) = cora_lab.post("/op/v1/apikeys", &json!({"name": "lab-key"})).await?;
    assert_eq!(s, 201, "{k2}");
    let lab_key = p.api(k2["key"].as_str().map(str::to_string));
    assert_eq!(lab_key.post(&format!("{CAMARA}/apps"), &sample_manifest("org_selfmade_lab", "lab_app")).await?.0, 201);
    let (_, members) = rita.get("/op/v1/organizations/org_selfmade_lab/members").await?;
    let vias: Vec<(String, String)> = members.as_array().into_iter().flatten().map(|m| (m["user"].as_str().unwrap_or_default().into(), m["via"].as_str().unwrap_or_default().into())).collect();
    assert!(vias.contains(&("rita".into(), "org_selfmade".into())) && vias.contains(&("cora".into(), "org_selfmade_lab".into())), "{members}");
    assert_eq!(rita.delete("/op/v1/organizations/org_selfmade_lab/members/cora").await?.0, 204);
    assert_eq!(lab_key.get(&format!("{CAMARA}/apps")).await?.0, 200, "cora is still a Contributor above the lab: the key holds");
    let (s, e) = rita.put("/op/v1/organizations/org_selfmade/members/cora", &json!({"role": "Viewer"})).await?;
    assert_eq!(s, 200, "{e}");
    let (s, e) = lab_key.get(&format!("{CAMARA}/apps")).await?;
    assert_eq!(s, 401, "demoted below the key's role: the key stops: {e}");
    // Revoked: 401 at once.
    assert_eq!(cora.delete(&format!("/op/v1/apikeys/{key_id}")).await?.0, 204);
    assert_eq!(ci.get(&format!("{CAMARA}/apps")).await?.0, 401);

    // A login for an organization one holds no role in: refused.
    let (s, _) = p.api(None).post("/op/v1/auth/token", &json!({"username": "cora", "password": "cora-password-1", "organization": "org_matrix_none"})).await?;
    assert_eq!(s, 403);

    // Registration off: refused.
    let closed = Platform::start_with(&["--no-self-registration"]).await?;
    let (s, e) = closed.api(None).post("/op/v1/auth/register", &json!({"name": "rita", "password": "rita-password-1", "organization": "org_selfmade"})).await?;
    assert_eq!((s, e["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{e}");
    Ok(())
}

/// The authorization code flow with PKCE, as a relying party does it: discovery, the login
/// page, the redirect with a code, the exchange, the ID token checked against the JWKS, and
/// the access token working on the API; codes are single-use and bound to the verifier.
#[tokio::test(flavor = "multi_thread")]
async fn openid_connect_code_flow() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let admin = p.admin().await?;
    let dev = p.developer("org_sso_users", "sso_user", "Contributor").await?;
    let app = dev.sample_app("org_sso_users", "sso_app", json!({})).await?;
    let redirect = "http://127.0.0.1:9/callback";
    let (s, c) = admin.post("/op/v1/oidc/clients", &json!({"name": "dashboard", "redirectUris": [redirect], "public": true})).await?;
    assert_eq!(s, 201, "{c}");
    assert!(c.get("clientSecret").is_none(), "a public client has no secret");
    let (s, e) = admin.post("/op/v1/oidc/clients", &json!({"name": "evil", "redirectUris": ["http://evil.example/cb"]})).await?;
    assert_eq!((s, e["message"].as_str().map(|m| m.contains("redirectUris[0]"))), (400, Some(true)), "{e}");

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let conf: Value = http.get(format!("{}/.well-known/openid-configuration", p.url)).send().await?.json().await?;
    assert_eq!(conf["issuer"], p.url.as_str());
    let jwks: Value = http.get(conf["jwks_uri"].as_str().unwrap_or_default()).send().await?.json().await?;

    let verifier = "a-verifier-of-enough-length-for-pkce-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let auth = conf["authorization_endpoint"].as_str().unwrap_or_default().to_string();
    let params = [
        ("response_type", "code"),
        ("client_id", "dashboard"),
        ("redirect_uri", redirect),
        ("scope", "openid profile"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let page = http.get(&auth).query(&params).send().await?;
    assert_eq!(page.status(), 200);
    let html = page.text().await?;
    assert!(html.contains("<form") && html.contains("dashboard"), "{html}");
    // An unregistered redirect is shown as an error, never followed.
    let bad = http.get(&auth).query(&[("response_type", "code"), ("client_id", "dashboard"), ("redirect_uri", "http://127.0.0.1:9/elsewhere"), ("scope", "openid")]).send().await?;
    assert_eq!(bad.status(), 400);
    assert!(bad.headers().get("location").is_none());

    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.extend([("username", "sso_user"), ("password", "wrong-password!")]);
    let r = http.post(&auth).form(&form).send().await?;
    assert_eq!(r.status(), 401, "wrong password: the form again");
    form.pop();
    form.push(("password", "correct-horse-battery"));
    let r = http.post(&auth).form(&form).send().await?;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let url = reqwest::Url::parse(&location)?;
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q.get("state").map(String::as_str), Some("st-123"));
    let code = q.get("code").cloned().unwrap_or_default();
    assert!(location.starts_with(redirect) && !code.is_empty(), "{location}");

    let token_url = conf["token_endpoint"].as_str().unwrap_or_default().to_string();
    let exchange = |code: String, verifier: &'static str| {
        let http = http.clone();
        let token_url = token_url.clone();
        async move {
            let r = http
                .post(&token_url)
                .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", redirect), ("client_id", "dashboard"), ("code_verifier", verifier)])
                .send()
                .await?;
            Ok::<_, anyhow::Error>((r.status().as_u16(), r.json::<Value>().await?))
        }
    };
    let (s, e) = exchange(code.clone(), "not-the-verifier-but-long-enough-0123456789").await?;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    // The failed try used the code up: sign in again.
    let r = http.post(&auth).form(&form).send().await?;
    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let code = reqwest::Url::parse(&location)?.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).unwrap_or_default();
    let (s, t) = exchange(code.clone(), verifier).await?;
    assert_eq!(s, 200, "{t}");
    let (s, e) = exchange(code, verifier).await?;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")), "a code works once: {e}");

    // The ID token: signed by the key in the JWKS, for this client, with the nonce.
    let id_token = t["id_token"].as_str().unwrap_or_default();
    let header = jsonwebtoken::decode_header(id_token)?;
    let jwk: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks)?;
    let key = jwk.find(header.kid.as_deref().unwrap_or_default()).ok_or_else(|| anyhow::anyhow!("kid not in the JWKS"))?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["dashboard"]);
    v.set_issuer(&[p.url.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(id_token, &jsonwebtoken::DecodingKey::from_jwk(key)?, &v)?.claims;
    assert_eq!((claims["sub"].as_str(), claims["nonce"].as_str(), claims["org"].as_str()), (Some("sso_user"), Some("n-456"), Some("org_sso_users")), "{claims}");
    // The access token works on the API with the user's role.
    let sso = p.api(t["access_token"].as_str().map(str::to_string));
    assert_eq!(sso.get(&format!("{CAMARA}/apps/{app}")).await?.0, 200);
    let (s, me) = sso.get("/oauth2/userinfo").await?;
    assert_eq!((s, me["role"].as_str()), (200, Some("Contributor")), "{me}");
    Ok(())
}

/// Every management write is in the audit log: who, what, when, the outcome, secrets
/// redacted; a Manager reads its organization's, others their own, nobody another
/// organization's; records survive `kill -9`.
#[tokio::test(flavor = "multi_thread")]
async fn audit_log_says_who_did_what() -> anyhow::Result<()> {
    let mut p = Platform::start().await?;
    let anon = p.api(None);
    let (s, _) = anon.post("/op/v1/auth/register", &json!({"name": "audra", "password": "audra-password-1", "organization": "org_audited"})).await?;
    assert_eq!(s, 201);
    let audra = p.api(Some(p.login("audra", "audra-password-1").await?));
    let (s, _) = audra.post("/op/v1/users", &json!({"name": "clem", "organization": "org_audited", "role": "Contributor", "password": "clem-hunter2-pass"})).await?;
    assert_eq!(s, 201);
    let clem = p.api(Some(p.login("clem", "clem-hunter2-pass").await?));
    let app = clem.sample_app("org_audited", "audited_app", json!({"appRepo": {"type": "PRIVATEREPO", "imagePath": SAMPLE_IMAGE, "userName": "u", "credentials": "repo-hunter2"}})).await?;
    assert_eq!(clem.delete(&format!("{CAMARA}/apps/{app}")).await?.0, 204);
    let (s, _) = clem.post("/op/v1/users", &json!({"name": "eve2", "organization": "org_audited", "role": "Manager", "password": "eve-password-123"})).await?;
    assert_eq!(s, 403, "refused writes are audited too");
    let other = p.developer("org_unrelated", "ursula", "Manager").await?;
    // A deployment is recorded in the instance's own transaction; one that fails (the name is
    // taken) is recorded by the layer: one record per request either way.
    let deployed = clem.sample_app("org_audited", "deployed_app", json!({})).await?;
    let zone = p.zone_id(&clem, "local").await?;
    let deploy = json!({"name": "audited_inst", "appId": deployed, "edgeCloudZoneId": zone});
    assert_eq!(clem.post(&format!("{CAMARA}/appinstances"), &deploy).await?.0, 202);
    assert_eq!(clem.post(&format!("{CAMARA}/appinstances"), &deploy).await?.0, 409);

    // A write is answered once its record is stored; the Manager sees the organization's.
    let (_, log) = audra.get("/op/v1/audit").await?;
    let entries = log.as_array().cloned().unwrap_or_default();
    let find = |user: &str, method: &str, path_part: &str, status: u64| {
        entries.iter().any(|e| e["spec"]["user"] == user && e["spec"]["method"] == method && e["spec"]["path"].as_str().is_some_and(|p| p.contains(path_part)) && e["spec"]["status"] == status)
    };
    assert!(find("audra", "POST", "/op/v1/auth/register", 201), "{log}");
    assert!(find("audra", "POST", "/op/v1/users", 201), "{log}");
    assert!(find("clem", "POST", "/apps", 201) && find("clem", "DELETE", &app, 204), "{log}");
    assert!(find("clem", "POST", "/op/v1/users", 403), "{log}");
    let deploys: Vec<u64> = entries.iter().filter(|e| e["spec"]["path"].as_str().is_some_and(|p| p.ends_with("/appinstances"))).filter_map(|e| e["spec"]["status"].as_u64()).collect();
    assert_eq!(deploys.iter().filter(|s| **s == 202).count(), 1, "{log}");
    assert_eq!(deploys.iter().filter(|s| **s == 409).count(), 1, "{log}");
    assert_eq!(deploys.len(), 2, "one record per deployment request: {log}");
    let text = log.to_string();
    for secret in ["audra-password-1", "clem-hunter2-pass", "repo-hunter2", "eve-password-123"] {
        assert!(!text.contains(secret), "'{secret}' in the audit log: {text}");
    }
    assert!(text.contains("[redacted]"), "{text}");
    assert!(entries.windows(2).all(|w| w[0]["spec"]["at"].as_str() >= w[1]["spec"]["at"].as_str()), "newest first");
    // A Contributor sees its own calls only; another organization nothing of these.
    let (_, mine) = clem.get("/op/v1/audit").await?;
    assert!(mine.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(|e| e["spec"]["user"] == "clem")), "{mine}");
    let (_, theirs) = other.get("/op/v1/audit").await?;
    assert!(!theirs.to_string().contains("org_audited") && !theirs.to_string().contains("audra"), "{theirs}");
    let (s, e) = audra.get("/op/v1/audit?limit=0").await?;
    assert_eq!((s, e["message"].as_str().map(|m| m.contains("limit"))), (400, Some(true)));
    // Filters, and durability across kill -9.
    p.restart().await?;
    let admin = p.admin().await?;
    let (_, by_user) = admin.get("/op/v1/audit?user=clem&organization=org_audited").await?;
    let n = by_user.as_array().map_or(0, Vec::len);
    assert!(n >= 3 && by_user.as_array().is_some_and(|a| a.iter().all(|e| e["spec"]["user"] == "clem")), "{by_user}");
    Ok(())
}
