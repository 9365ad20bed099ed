//! ETSI MEC 021 Application Mobility Service on the real opd: app instances register with
//! their own credential (`OP_INSTANCE_TOKEN`, the one their container got), developers manage
//! their organization's registrations and subscriptions, other organizations see nothing, bad
//! input is a `ProblemDetails` 400 naming the field, and notifications (test, adjacent
//! instances, expiry) reach a callback served by this test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use op_e2e::*;
use serde_json::{json, Value};

const AMS: &str = "/amsi/v1";

/// The token the platform derives for `instance` (what the controller gives its container).
fn instance_token(p: &Platform, instance: &str) -> Result<String> {
    let key = std::fs::read(p.data_dir().join("services.key"))?;
    Ok(op_types::secret::instance_token(key.trim_ascii(), instance.parse()?))
}

/// The instance's own view of its token: its container's environment.
async fn container_token(inst: &Value) -> Result<String> {
    Ok(http_get_ok(&format!("{}env/OP_INSTANCE_TOKEN", endpoint(inst)?), Duration::from_secs(10)).await?.trim().to_string())
}

/// A callback receiver: every JSON body POSTed to `/{path}` is kept with its path (no leading `/`).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    async fn start() -> Result<Self> {
        let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let keep = got.clone();
        let app = axum::Router::new().route(
            "/{*path}",
            axum::routing::post(move |axum::extract::Path(path): axum::extract::Path<String>, axum::Json(v): axum::Json<Value>| {
                let keep = keep.clone();
                async move {
                    keep.lock().unwrap().push((path, v));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", l.local_addr()?);
        tokio::spawn(async move { axum::serve(l, app).await });
        Ok(Self { url, got })
    }

    /// The first body POSTed to `path` that satisfies `pred`, waiting up to `timeout`.
    async fn wait(&self, path: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, v)) = self.got.lock().unwrap().iter().find(|(p, v)| p == path && pred(v)) {
                return Ok(v.clone());
            }
            if Instant::now() > deadline {
                bail!("nothing matching arrived at /{path}; got {:?}", self.got.lock().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn count(&self, path: &str) -> usize {
        self.got.lock().unwrap().iter().filter(|(p, _)| p == path).count()
    }
}

/// Asserts a ProblemDetails 400 whose detail names `field`.
fn assert_names(r: (u16, Value), field: &str, path: &str) {
    let (s, b) = r;
    assert_eq!(s, 400, "expected 400 naming {field}: {b}");
    let detail = b["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(field), "detail should name {field}: {b}");
    assert_eq!(b["status"], 400, "{b}");
    assert_eq!(b["title"], "Bad Request", "{b}");
    assert!(b["type"].is_string(), "{b}");
    assert_eq!(b["instance"].as_str(), Some(path), "{b}");
}

/// Runs the README's `ams` block with the environment an app's container has.
async fn readme_block(p: &Platform, instance: &str, callback: &str) -> Result<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out =
        std::process::Command::new("bash").arg(root.join("scripts/readme-block.sh")).arg("ams").stdin(std::fs::File::open(root.join("README.md"))?).output()?;
    let block = String::from_utf8(out.stdout)?;
    anyhow::ensure!(block.lines().count() > 3, "README block 'ams' not found");
    let (url, token, instance, callback) = (p.url.clone(), instance_token(p, instance)?, instance.to_string(), callback.to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &block])
            .env("OP_PLATFORM_URL", url)
            .env("OP_INSTANCE_TOKEN", token)
            .env("OP_INSTANCE", instance)
            .env("APP_CALLBACK", callback)
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(out.status.success(), "README block 'ams' failed\nstdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    Ok(stdout)
}

fn reg_body(instance: &str, ip: &str, level: &str, state: &str) -> Value {
    json!({
        "serviceConsumerId": {"appInstanceId": instance},
        "deviceInformation": [{"associateId": {"type": "UE_IPv4_ADDRESS", "value": ip}, "appMobilityServiceLevel": level, "contextTransferState": state}],
        "expiryTime": 0
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn registrations_auth_and_isolation() -> Result<()> {
    let p = Platform::start().await?;
    let a = p.developer("ams_alpha", "ada", "Manager").await?;
    let b = p.developer("ams_bravo", "bob", "Manager").await?;
    let zone = p.zone_id(&a, "local").await?;
    let app_a = a.sample_app("ams_alpha", "mover", json!({})).await?;
    let app_b = b.sample_app("ams_bravo", "other", json!({})).await?;
    let ia = a.deploy("mover_1", &app_a, &zone).await?;
    let ib = b.deploy("other_1", &app_b, &zone).await?;
    let inst_a = a.wait_ready(&ia, Duration::from_secs(60)).await?;
    let inst_b = b.wait_ready(&ib, Duration::from_secs(60)).await?;

    // The token computed from services.key is the one the container got.
    let tok_a = instance_token(&p, &ia)?;
    let tok_b = instance_token(&p, &ib)?;
    assert_eq!(container_token(&inst_a).await?, tok_a);
    assert_eq!(container_token(&inst_b).await?, tok_b);
    let ta = p.api(Some(tok_a.clone()));
    let tb = p.api(Some(tok_b.clone()));

    // The instance registers itself.
    let regs = format!("{AMS}/app_mobility_services");
    let (s, created) = ta.post(&regs, &reg_body(&ia, "10.0.0.7", "APP_MOBILITY_WITH_CONFIRMATION", "NOT_TRANSFERRED")).await?;
    assert_eq!(s, 201, "{created}");
    let id = created["appMobilityServiceId"].as_str().context("appMobilityServiceId")?.to_string();
    assert_eq!(created["serviceConsumerId"]["appInstanceId"], ia.as_str());
    assert_eq!(created["deviceInformation"][0]["appMobilityServiceLevel"], "APP_MOBILITY_WITH_CONFIRMATION");
    let one = format!("{regs}/{id}");
    let (s, got) = ta.get(&one).await?;
    assert_eq!((s, &got), (200, &created));
    // Its developer sees it too.
    let (s, list) = a.get(&regs).await?;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().map(|l| l.iter().filter(|r| r["appMobilityServiceId"] == id.as_str()).count()), Some(1), "{list}");

    // PUT: the device's user context was transferred.
    let mut put = reg_body(&ia, "10.0.0.7", "APP_MOBILITY_WITH_CONFIRMATION", "USER_CONTEXT_TRANSFER_COMPLETED");
    put["appMobilityServiceId"] = json!(id);
    let (s, upd) = ta.put(&one, &put).await?;
    assert_eq!(s, 200, "{upd}");
    let (_, got) = a.get(&one).await?;
    assert_eq!(got["deviceInformation"][0]["contextTransferState"], "USER_CONTEXT_TRANSFER_COMPLETED", "{got}");

    // Bad input: each a ProblemDetails 400 naming the field.
    let mut bad = reg_body(&ia, "10.0.0.7", "APP_MOBILITY_WITH_CONFIRMATION", "NOT_TRANSFERRED");
    bad["deviceInformation"][0]["associateId"]["type"] = json!("IMSI");
    assert_names(ta.post(&regs, &bad).await?, "deviceInformation[0].associateId.type", &regs);
    let mut bad = reg_body(&ia, "10.0.0.7", "SOMETIMES", "NOT_TRANSFERRED");
    assert_names(ta.post(&regs, &bad).await?, "deviceInformation[0].appMobilityServiceLevel", &regs);
    bad = reg_body(&ia, "not-an-ip", "APP_MOBILITY_WITH_CONFIRMATION", "NOT_TRANSFERRED");
    assert_names(ta.post(&regs, &bad).await?, "deviceInformation[0].associateId.value", &regs);
    bad = reg_body(&ia, "10.0.0.7", "APP_MOBILITY_WITH_CONFIRMATION", "NOT_TRANSFERRED");
    bad["favouriteColour"] = json!("blue");
    assert_names(ta.post(&regs, &bad).await?, "favouriteColour", &regs);
    assert_names(ta.post(&regs, &json!({"deviceInformation": []})).await?, "serviceConsumerId", &regs);
    assert_names(ta.post(&regs, &json!({"serviceConsumerId": {}})).await?, "serviceConsumerId.appInstanceId", &regs);
    assert_names(ta.post(&regs, &reg_body("nope", "10.0.0.7", "APP_MOBILITY_NOT_ALLOWED", "NOT_TRANSFERRED")).await?, "serviceConsumerId.appInstanceId", &regs);
    // Another organization's instance, named by A's instance or A's developer: as unknown.
    assert_names(ta.post(&regs, &reg_body(&ib, "10.0.0.7", "APP_MOBILITY_NOT_ALLOWED", "NOT_TRANSFERRED")).await?, "serviceConsumerId.appInstanceId", &regs);
    assert_names(a.post(&regs, &reg_body(&ib, "10.0.0.7", "APP_MOBILITY_NOT_ALLOWED", "NOT_TRANSFERRED")).await?, "serviceConsumerId.appInstanceId", &regs);
    let mut moved = put.clone();
    moved["serviceConsumerId"]["appInstanceId"] = json!(ib);
    assert_names(ta.put(&one, &moved).await?, "serviceConsumerId.appInstanceId", &one);
    assert_names(ta.post_raw(&regs, "{not json").await?, "body", &regs);

    // Another organization's developer and instance: 404 on every verb, nothing listed.
    for other in [&b, &tb] {
        assert_eq!(other.get(&one).await?.0, 404);
        assert_eq!(other.put(&one, &put).await?.0, 404);
        assert_eq!(other.delete(&one).await?.0, 404);
        assert_eq!(other.post(&format!("{one}/deregister_task"), &json!({})).await?.0, 404);
        let (s, l) = other.get(&regs).await?;
        assert_eq!((s, l.as_array().map(Vec::len)), (200, Some(0)), "{l}");
    }
    let (s, e) = b.get(&one).await?;
    assert_eq!((s, e["status"].as_u64(), e["instance"].as_str()), (404, Some(404), Some(one.as_str())), "{e}");
    // Unknown ids: 404.
    assert_eq!(ta.get(&format!("{regs}/{}", op_types::Uid::random())).await?.0, 404);
    assert_eq!(ta.get(&format!("{regs}/not-a-uid")).await?.0, 404);

    // Forged tokens: 401.
    let forged = op_types::secret::instance_token(b"not the platform's secret", ia.parse()?);
    let (s, e) = p.api(Some(forged)).get(&regs).await?;
    assert_eq!((s, e["status"].as_u64()), (401, Some(401)), "{e}");
    let key = std::fs::read(p.data_dir().join("services.key"))?;
    let unknown = op_types::secret::instance_token(key.trim_ascii(), op_types::Uid::random());
    assert_eq!(p.api(Some(unknown)).get(&regs).await?.0, 401, "a token for no instance");
    let mut flipped = tok_a.clone();
    let last = flipped.pop().context("token")?;
    flipped.push(if last == '0' { '1' } else { '0' });
    assert_eq!(p.api(Some(flipped)).get(&regs).await?.0, 401);
    assert_eq!(p.api(None).get(&regs).await?.0, 401);

    // A registration that expires goes by itself.
    let mut short = reg_body(&ia, "10.0.0.8", "APP_MOBILITY_WITHOUT_CONFIRMATION", "NOT_TRANSFERRED");
    short["expiryTime"] = json!(1);
    let (s, r) = a.post(&regs, &short).await?;
    assert_eq!(s, 201, "{r}");
    let short_id = r["appMobilityServiceId"].as_str().context("id")?.to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.get(&format!("{regs}/{short_id}")).await?.0 != 404 {
        assert!(Instant::now() < deadline, "expired registration still there");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(a.get(&one).await?.0, 200, "the unexpiring one stays");

    // deregister_task, then DELETE.
    let (s, r) = ta.post(&regs, &reg_body(&ia, "10.0.0.9", "APP_MOBILITY_NOT_ALLOWED", "NOT_TRANSFERRED")).await?;
    assert_eq!(s, 201, "{r}");
    let second = format!("{regs}/{}", r["appMobilityServiceId"].as_str().context("id")?);
    let (s, _) = ta.post(&format!("{second}/deregister_task"), &json!({})).await?;
    assert_eq!(s, 204);
    assert_eq!(ta.get(&second).await?.0, 404);
    assert_eq!(a.delete(&one).await?.0, 204);
    assert_eq!(ta.get(&one).await?.0, 404);
    assert_eq!(a.delete(&one).await?.0, 404);

    // A deleted instance's token stops working.
    assert_eq!(tb.get(&regs).await?.0, 200);
    let (s, _) = b.delete(&format!("{CAMARA}/appinstances/{ib}")).await?;
    assert_eq!(s, 202);
    b.wait_gone(&ib, Duration::from_secs(60)).await?;
    let (s, e) = tb.get(&regs).await?;
    assert_eq!((s, e["status"].as_u64()), (401, Some(401)), "{e}");

    assert_eq!(a.delete(&format!("{CAMARA}/appinstances/{ia}")).await?.0, 202);
    a.wait_gone(&ia, Duration::from_secs(60)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_and_notifications() -> Result<()> {
    let p = Platform::start().await?;
    let rx = Receiver::start().await?;
    let a = p.developer("ams_charlie", "carl", "Manager").await?;
    let b = p.developer("ams_delta", "dora", "Manager").await?;
    let zone = p.zone_id(&a, "local").await?;
    let app = a.sample_app("ams_charlie", "roamer", json!({})).await?;
    let i1 = a.deploy("roamer_1", &app, &zone).await?;
    a.wait_ready(&i1, Duration::from_secs(60)).await?;
    let t1 = p.api(Some(instance_token(&p, &i1)?));
    let subs = format!("{AMS}/subscriptions");

    // A mobility procedure subscription by the instance, with a test notification.
    let (s, mp) = t1
        .post(
            &subs,
            &json!({
                "subscriptionType": "MobilityProcedureSubscription",
                "callbackReference": format!("{}/mobility", rx.url),
                "requestTestNotification": true,
                "filterCriteria": {"appInstanceId": i1, "associateId": [{"type": "UE_IPv4_ADDRESS", "value": "10.0.0.7"}]}
            }),
        )
        .await?;
    assert_eq!(s, 201, "{mp}");
    let mp_href = mp["_links"]["self"]["href"].as_str().context("_links.self.href")?.to_string();
    let mp_id = mp_href.rsplit('/').next().context("id")?.to_string();
    assert!(mp_href.ends_with(&format!("{AMS}/subscriptions/{mp_id}")), "{mp_href}");
    assert_eq!(mp["filterCriteria"]["mobilityStatus"], json!(["INTERHOST_MOVEOUT_TRIGGERED"]), "the default is filled in: {mp}");
    let test = rx.wait("mobility", Duration::from_secs(10), |v| v["notificationType"] == "TestNotification").await?;
    assert_eq!(test["_links"]["subscription"]["href"], mp_href.as_str(), "{test}");

    // An adjacent-info subscription by the developer.
    let (s, adj) = a
        .post(
            &subs,
            &json!({
                "subscriptionType": "AdjacentAppInfoSubscription",
                "callbackReference": format!("{}/adjacent", rx.url),
                "filterCriteria": {"appInstanceId": i1}
            }),
        )
        .await?;
    assert_eq!(s, 201, "{adj}");
    let adj_href = adj["_links"]["self"]["href"].as_str().context("href")?.to_string();
    let adj_id = adj_href.rsplit('/').next().context("id")?.to_string();
    assert_eq!(rx.count("adjacent"), 0, "no test notification unless asked");

    // Listing, by type.
    let hrefs = |v: &Value| -> Vec<(String, String)> {
        v["_links"]["subscription"]
            .as_array()
            .map(|l| {
                l.iter().map(|x| (x["href"].as_str().unwrap_or_default().to_string(), x["subscriptionType"].as_str().unwrap_or_default().to_string())).collect()
            })
            .unwrap_or_default()
    };
    let (s, all) = t1.get(&subs).await?;
    assert_eq!(s, 200, "{all}");
    assert!(all["_links"]["self"]["href"].as_str().is_some_and(|h| h.ends_with(&subs)), "{all}");
    assert_eq!(
        hrefs(&all),
        vec![(mp_href.clone(), "MobilityProcedureSubscription".to_string()), (adj_href.clone(), "AdjacentAppInfoSubscription".to_string())]
    );
    let (_, only_adj) = a.get(&format!("{subs}?subscriptionType=adj_app_info")).await?;
    assert_eq!(hrefs(&only_adj), vec![(adj_href.clone(), "AdjacentAppInfoSubscription".to_string())]);
    let (_, only_mp) = a.get(&format!("{subs}?subscription_type=mobility_proc")).await?;
    assert_eq!(hrefs(&only_mp), vec![(mp_href.clone(), "MobilityProcedureSubscription".to_string())]);
    assert_names(a.get(&format!("{subs}?subscriptionType=everything")).await?, "subscriptionType", &subs);

    // Get, put, and what may not change.
    let mp_path = format!("{subs}/{mp_id}");
    let (s, got) = a.get(&mp_path).await?;
    assert_eq!((s, &got), (200, &mp));
    let mut changed = mp.clone();
    changed["callbackReference"] = json!(format!("{}/mobility2", rx.url));
    changed["filterCriteria"]["mobilityStatus"] = json!(["INTERHOST_MOVEOUT_COMPLETED", "INTERHOST_MOVEOUT_FAILED"]);
    let (s, put) = t1.put(&mp_path, &changed).await?;
    assert_eq!(s, 200, "{put}");
    let (_, got) = a.get(&mp_path).await?;
    assert_eq!(got["callbackReference"], format!("{}/mobility2", rx.url));
    assert_eq!(got["filterCriteria"]["mobilityStatus"], json!(["INTERHOST_MOVEOUT_COMPLETED", "INTERHOST_MOVEOUT_FAILED"]));
    assert_eq!(got["_links"]["self"]["href"], mp_href.as_str());
    let mut retype = changed.clone();
    retype["subscriptionType"] = json!("AdjacentAppInfoSubscription");
    retype["filterCriteria"] = json!({});
    assert_names(a.put(&mp_path, &retype).await?, "subscriptionType", &mp_path);

    // Bad subscriptions: each names its field.
    let base = json!({"subscriptionType": "MobilityProcedureSubscription", "callbackReference": format!("{}/x", rx.url), "filterCriteria": {}});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    assert_names(a.post(&subs, &with("callbackReference", json!("ftp://example.com/cb"))).await?, "callbackReference", &subs);
    assert_names(a.post(&subs, &with("callbackReference", json!("not a url"))).await?, "callbackReference", &subs);
    assert_names(a.post(&subs, &with("subscriptionType", json!("WeatherSubscription"))).await?, "subscriptionType", &subs);
    assert_names(a.post(&subs, &with("expiryDeadline", json!({"seconds": 1_000_000_000u64, "nanoSeconds": 0}))).await?, "expiryDeadline", &subs);
    assert_names(a.post(&subs, &with("websockNotifConfig", json!({"requestWebsocketUri": true}))).await?, "websockNotifConfig", &subs);
    assert_names(a.post(&subs, &with("colour", json!("blue"))).await?, "colour", &subs);
    assert_names(
        a.post(&subs, &with("filterCriteria", json!({"associateId": [{"type": "MSISDN", "value": "1"}]}))).await?,
        "filterCriteria.associateId[0].type",
        &subs,
    );
    assert_names(a.post(&subs, &with("filterCriteria", json!({"appInstanceId": op_types::Uid::random()}))).await?, "filterCriteria.appInstanceId", &subs);
    let mut no_filter = base.clone();
    no_filter["subscriptionType"] = json!("AdjacentAppInfoSubscription");
    no_filter["filterCriteria"] = json!({});
    assert_names(a.post(&subs, &no_filter).await?, "filterCriteria.appInstanceId", &subs);

    // Another organization sees none of it.
    assert_eq!(b.get(&mp_path).await?.0, 404);
    assert_eq!(b.put(&mp_path, &changed).await?.0, 404);
    assert_eq!(b.delete(&mp_path).await?.0, 404);
    let (s, l) = b.get(&subs).await?;
    assert_eq!((s, hrefs(&l).len()), (200, 0), "{l}");
    assert_names(b.post(&subs, &with("filterCriteria", json!({"appInstanceId": i1}))).await?, "filterCriteria.appInstanceId", &subs);

    // Alone, the instance has no adjacent instance.
    let q = format!("{AMS}/queries/adjacent_app_instances");
    let (s, none) = t1.get(&q).await?;
    assert_eq!((s, none.as_array().map(Vec::len)), (200, Some(0)), "{none}");

    // A second instance: the subscriber is told once it is Ready...
    let i2 = a.deploy("roamer_2", &app, &zone).await?;
    let inst2 = a.wait_ready(&i2, Duration::from_secs(60)).await?;
    let ep = &inst2["observed"]["endpoints"][0];
    let (host, port) = (ep["host"].as_str().context("host")?.to_string(), ep["port"].as_u64().context("port")?);
    let n = rx
        .wait("adjacent", Duration::from_secs(15), |v| {
            v["notificationType"] == "AdjacentAppInfoNotification"
                && v["adjacentAppInfo"].as_array().is_some_and(|l| l.iter().any(|x| x["appInstanceId"] == i2.as_str()))
        })
        .await
        .with_context(|| p.log())?;
    assert_eq!(n["_links"]["subscription"]["href"], adj_href.as_str(), "{n}");
    let listed = n["adjacentAppInfo"].as_array().context("list")?;
    assert_eq!(listed.len(), 1, "only the other instance: {n}");
    // Where other instances reach it (its container's address, the app's port) first, then
    // its published endpoint.
    let published = json!({"host": host, "port": port});
    let links = |v: &serde_json::Value| v.as_array().into_iter().flatten().map(|c| c["ipAddresses"][0].clone()).collect::<Vec<_>>();
    let got = links(&listed[0]["commInterface"]);
    assert_eq!(got.len(), 2, "{n}");
    assert_eq!((got[0]["port"].as_u64(), got[0]["host"] != "127.0.0.1"), (Some(8080), true), "{n}");
    assert_eq!(got[1], published, "{n}");
    assert!(n["timeStamp"]["seconds"].as_u64().is_some(), "{n}");

    // ...and the query lists it, by zone, never by cloudlet.
    let (s, adjacent) = t1.get(&q).await?;
    assert_eq!(s, 200, "{adjacent}");
    let l = adjacent.as_array().context("array")?;
    assert_eq!(l.len(), 1, "{adjacent}");
    assert_eq!(l[0]["appInstanceId"], i2.as_str());
    assert_eq!(l[0]["appDId"], app.as_str());
    assert_eq!(links(&l[0]["appInstanceCommLink"]), got);
    assert_eq!(l[0]["mecHostInformation"]["hostId"]["edgeCloudZoneId"], zone.as_str(), "{adjacent}");
    assert_eq!(l[0]["mecHostInformation"]["hostName"], "local");
    assert!(!adjacent.to_string().contains("local-docker"), "the cloudlet is never named: {adjacent}");
    assert!(l[0].get("registeredInstanceId").is_none(), "not registered: {adjacent}");
    let (_, f) = t1.get(&format!("{q}?filter=(eq,appInstanceId,{i2})")).await?;
    assert_eq!(f.as_array().map(Vec::len), Some(1), "{f}");
    let (_, f) = t1.get(&format!("{q}?filter=(eq,appInstanceId,{i1})")).await?;
    assert_eq!(f.as_array().map(Vec::len), Some(0), "{f}");
    assert_names(t1.get(&format!("{q}?filter=(eq,cloudlet,x)")).await?, "filter", &q);
    // The developer sees both instances; the other organization none.
    let (_, dev) = a.get(&q).await?;
    assert_eq!(dev.as_array().map(Vec::len), Some(2), "{dev}");
    let (_, other) = b.get(&q).await?;
    assert_eq!(other.as_array().map(Vec::len), Some(0), "{other}");
    // Registered instances say so.
    let t2 = p.api(Some(instance_token(&p, &i2)?));
    let (s, r) = t2.post(&format!("{AMS}/app_mobility_services"), &json!({"serviceConsumerId": {"appInstanceId": i2}})).await?;
    assert_eq!(s, 201, "{r}");
    let (_, adjacent) = t1.get(&q).await?;
    assert_eq!(adjacent[0]["registeredInstanceId"], i2.as_str(), "{adjacent}");

    // A subscription past its deadline is told and removed.
    let soon = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 2;
    let (s, exp) = t1
        .post(
            &subs,
            &json!({
                "subscriptionType": "AdjacentAppInfoSubscription",
                "callbackReference": format!("{}/expiry", rx.url),
                "filterCriteria": {},
                "expiryDeadline": {"seconds": soon, "nanoSeconds": 0}
            }),
        )
        .await?;
    assert_eq!(s, 201, "{exp}");
    assert_eq!(exp["filterCriteria"]["appInstanceId"], i1.as_str(), "an instance subscribes for itself by default");
    let exp_href = exp["_links"]["self"]["href"].as_str().context("href")?.to_string();
    let e = rx.wait("expiry", Duration::from_secs(15), |v| v["notificationType"] == "ExpiryNotification").await?;
    assert_eq!(e["expiryDeadline"], json!({"seconds": soon, "nanoSeconds": 0}), "{e}");
    assert_eq!(e["_links"]["subscription"]["href"], exp_href.as_str());
    let exp_path = format!("{subs}/{}", exp_href.rsplit('/').next().context("id")?);
    assert_eq!(a.get(&exp_path).await?.0, 404, "gone after its deadline");

    // Delete.
    assert_eq!(a.delete(&format!("{subs}/{adj_id}")).await?.0, 204);
    assert_eq!(a.get(&format!("{subs}/{adj_id}")).await?.0, 404);
    assert_eq!(t1.delete(&mp_path).await?.0, 204);
    let (_, l) = a.get(&subs).await?;
    assert_eq!(hrefs(&l).len(), 0, "{l}");

    // The README's block, run as the first instance would run it.
    let out = readme_block(&p, &i1, &format!("{}/readme", rx.url)).await?;
    let test = rx.wait("readme/mobility", Duration::from_secs(10), |v| v["notificationType"] == "TestNotification").await?;
    assert!(test["_links"]["subscription"]["href"].as_str().is_some_and(|h| h.contains("/amsi/v1/subscriptions/")), "{test}");
    assert!(out.contains(&format!("\"appInstanceId\":\"{i2}\"")), "the adjacent instance is listed: {out}");
    let (_, regs) = a.get(&format!("{AMS}/app_mobility_services")).await?;
    let readme_reg = regs.as_array().and_then(|l| l.iter().find(|r| r["deviceInformation"][0]["associateId"]["value"] == "10.45.0.7")).cloned();
    let readme_reg = readme_reg.with_context(|| format!("the README's registration: {regs}"))?;
    assert_eq!(readme_reg["serviceConsumerId"]["appInstanceId"], i1.as_str());
    assert_eq!(readme_reg["deviceInformation"][0]["contextTransferState"], "USER_CONTEXT_TRANSFER_COMPLETED", "{readme_reg}");
    let (_, l) = a.get(&subs).await?;
    assert_eq!(hrefs(&l).len(), 2, "{l}");

    for i in [&i1, &i2] {
        assert_eq!(a.delete(&format!("{CAMARA}/appinstances/{i}")).await?.0, 202);
    }
    for i in [&i1, &i2] {
        a.wait_gone(i, Duration::from_secs(60)).await?;
    }
    Ok(())
}
