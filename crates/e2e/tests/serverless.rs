//! The serverless lifecycle on the real binaries and Podman: a developer creates a serverless
//! app with `opctl` (no zone, no size); devices register on the UNI and are sent to their
//! closest point of presence, whose ingress checks their session tokens; a device's first
//! request there, with no instance anywhere, is answered by one started from zero; devices at a second
//! point of presence are served from the first until their sessions reach the policy's
//! trigger, when an instance starts there and that ingress serves locally; everything goes
//! quiet and every instance scales back to zero. Bad policies and unknown hosts get their
//! standard errors.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use op_device::{DeviceClient, Resolver};
use op_e2e::*;
use op_types::uni::{AppRef, Device, RegisterRequest};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A device's keep-alive connection to a point of presence, from its own loopback address
/// (so that the ingress sees distinct devices).
struct DeviceConn {
    stream: TcpStream,
    /// The UNI session token it sends, if any.
    token: Option<String>,
}

impl DeviceConn {
    async fn open(device: u8, pop: SocketAddr) -> Result<Self> {
        let s = TcpSocket::new_v4()?;
        s.bind(format!("127.0.0.{device}:0").parse()?)?;
        Ok(Self { stream: s.connect(pop).await?, token: None })
    }

    /// A connection of a registered device to the point of presence it was sent to.
    async fn of(device: u8, reg: &op_types::uni::Registration) -> Result<Self> {
        let mut c = Self::open(device, format!("{}:{}", reg.endpoint.host, reg.endpoint.port).parse()?).await?;
        c.token = Some(reg.session_token.clone());
        Ok(c)
    }

    /// Sends `GET path` for `host` and reads the answer: status and body.
    async fn get(&mut self, host: &str, path: &str) -> Result<(u16, String)> {
        let auth = self.token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: keep-alive\r\n\r\n");
        self.stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let read = async {
            loop {
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).await?;
                if n == 0 {
                    bail!("connection closed: {}", String::from_utf8_lossy(&buf));
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))).unwrap_or(0);
                    if body.len() >= len {
                        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                        return Ok((status, body[..len].to_string()));
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read).await.context("no answer in 60 s")?
    }
}

async fn status(dev: &Api, app: &str) -> Result<Value> {
    let (s, b) = dev.get(&format!("/op/v1/apps/{app}/serverless")).await?;
    ensure!(s == 200, "serverless status: {s} {b}");
    Ok(b)
}

/// Waits until `pred` holds of the app's serverless status.
async fn wait_status(dev: &Api, app: &str, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let st = status(dev, app).await?;
        if pred(&st) {
            return Ok(st);
        }
        if Instant::now() > deadline {
            bail!("{what} not seen in {timeout:?}: {st:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn instances_in<'a>(st: &'a Value, zone: &str) -> Vec<&'a Value> {
    st["instances"].as_array().into_iter().flatten().filter(|i| i["zone"] == zone).collect()
}

fn traffic<'a>(st: &'a Value, zone: &str) -> &'a Value {
    st["traffic"].as_array().and_then(|t| t.iter().find(|z| z["zone"] == zone)).unwrap_or(&Value::Null)
}

fn has_event(st: &Value, kind: &str) -> bool {
    st["events"].as_array().is_some_and(|e| e.iter().any(|x| x["kind"] == kind))
}

/// Registers `phone` (its app token signed with `key`) for the app: where to send its traffic.
async fn register(uni: &DeviceClient, key: &rcgen::KeyPair, phone: &str) -> Result<op_types::uni::Registration> {
    let req = RegisterRequest {
        device: Device { phone_number: Some(phone.into()), ..Default::default() },
        app: AppRef { provider: "edge_fn_org".into(), name: "echo".into(), version: "1.0".into() },
        app_token: app_token(&key.serialize_pem(), phone),
        location: None,
        max_alternatives: None,
    };
    Ok(uni.register(&req).await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn serverless_lifecycle_from_zero_to_where_the_sessions_are_and_back_to_zero() -> Result<()> {
    let (net, p, admin) = uni_lab(&[]).await?;
    let dev = p.developer("edge_fn_org", "sam", "Manager").await?;

    // The points of presence: one per edge, known by zone (never by cloudlet) to developers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let pops = loop {
        let (s, b) = dev.get("/op/v1/serverless/pops").await?;
        ensure!(s == 200, "pops: {s} {b}");
        let zones: Vec<&str> = b.as_array().into_iter().flatten().filter_map(|p| p["zone"].as_str()).collect();
        if zones.contains(&"zone-paris") && zones.contains(&"zone-lyon") {
            break b;
        }
        ensure!(Instant::now() < deadline, "points of presence at Paris and Lyon expected: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let pop = |zone: &str| -> Result<SocketAddr> {
        let p = pops.as_array().and_then(|a| a.iter().find(|p| p["zone"] == zone)).context("pop of zone")?;
        ensure!(p.get("name").is_none(), "a developer sees the cloudlet of a point of presence: {p}");
        Ok(p["http"].as_str().context("http")?.parse()?)
    };
    let (paris, lyon) = (pop("zone-paris")?, pop("zone-lyon")?);

    // One command: image and policies; no zone, no size. Its devices need a UNI session.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let key_file = p.dir.path().join("device-key.pem");
    std::fs::write(&key_file, key.public_key_pem())?;
    let key_arg = key_file.display().to_string();
    let out = p.opctl_as(
        &dev,
        &["serverless", "create", "echo", "--image", SAMPLE_IMAGE, "--port", "8080", "--session-trigger", "2", "--idle", "3", "--max", "3", "--require-session", "--device-key-file", &key_arg],
    )?;
    ensure!(out.contains("echo.edge-fn-org.serverless"), "opctl shows the host: {out}");
    let (_, apps) = dev.get(&format!("{CAMARA}/apps")).await?;
    let app = apps.as_array().and_then(|a| a.iter().find(|x| x["name"] == "echo")).and_then(|x| x["appId"].as_str()).context("app id")?.to_string();
    let host = "echo.edge-fn-org.serverless";
    let st = status(&dev, &app).await?;
    ensure!(st["instances"].as_array().is_some_and(Vec::is_empty) && st["policy"]["version"] == 1, "nothing runs before the first request: {st}");
    ensure!(
        st["endpoints"].as_array().is_some_and(|e| e.iter().any(|x| x["zone"] == "zone-paris" && x["address"] == json!(paris.to_string()))),
        "the app is reached at Paris's point of presence: {st}"
    );

    // Bad policies: named field, stale version; an unknown host at the ingress.
    let mut bad = st["policy"].clone();
    bad["maxInstances"] = json!(0);
    let (s, b) = dev.put(&format!("/op/v1/apps/{app}/serverless"), &bad).await?;
    ensure!(s == 400 && b["message"].as_str().is_some_and(|m| m.contains("maxInstances")), "maxInstances 0: {s} {b}");
    let mut stale = st["policy"].clone();
    stale["version"] = json!(7);
    let (s, b) = dev.put(&format!("/op/v1/apps/{app}/serverless"), &stale).await?;
    ensure!(s == 409, "stale version: {s} {b}");
    let (s, b) = DeviceConn::open(9, paris).await?.get("nobody.example", "/").await?;
    ensure!(s == 404 && b.contains("NOT_FOUND"), "unknown host: {s} {b}");
    let (s, b) = DeviceConn::open(9, paris).await?.get(host, "/").await?;
    ensure!(s == 401 && b.contains("session token"), "no session token: {s} {b}");

    // Devices register on the UNI and are sent to their closest point of presence.
    let resolver = Resolver::parse(&format!("uni.mnc001.mcc208.pub.3gppnetwork.org={}", p.url));
    let uni = DeviceClient::discover("208", "01", &resolver).await?;
    let alice = register(&uni, &key, "+33612340001").await?; // Paris
    ensure!(
        alice.endpoint.port == paris.port() && alice.endpoint.edge_cloud_zone_name == "zone-paris" && alice.endpoint.app_instance_id == op_types::Uid::nil(),
        "a device in Paris is sent to Paris's point of presence (no instance named): {:?}",
        alice.endpoint
    );
    ensure!(alice.serverless_host.as_deref() == Some(host) && !alice.cloud_fallback, "the host to send: {:?}", alice.serverless_host);
    ensure!(alice.alternatives.iter().any(|a| a.port == lyon.port()), "Lyon is the alternative: {:?}", alice.alternatives);
    let carol = register(&uni, &key, "+33612340003").await?; // Lyon
    net.move_device("+33612340002", LYON_CELLS[1]).await?;
    let bob = register(&uni, &key, "+33612340002").await?; // moved to Lyon
    for r in [&carol, &bob] {
        ensure!(r.endpoint.port == lyon.port() && r.endpoint.edge_cloud_zone_name == "zone-lyon", "a device in Lyon is sent to Lyon's point of presence: {:?}", r.endpoint);
    }

    // A first device at Paris: no instance anywhere; the ingress holds it, one starts, it answers.
    let t = Instant::now();
    let mut d1 = DeviceConn::of(2, &alice).await?;
    let (s, first) = d1.get(host, "/").await?;
    ensure!(s == 200, "first request: {s} {first}");
    let cold = t.elapsed();
    let st = status(&dev, &app).await?;
    let in_paris = instances_in(&st, "zone-paris");
    ensure!(in_paris.len() == 1 && instances_in(&st, "zone-lyon").is_empty(), "one instance, at Paris: {st:#}");
    let x = in_paris[0]["appInstanceId"].as_str().context("id")?.to_string();
    ensure!(first.contains(&x), "answered by the instance started for it ({x}): {first}");
    ensure!(in_paris[0]["reason"].as_str().is_some_and(|r| r.contains("no instance ran anywhere")), "why: {st:#}");
    ensure!(has_event(&st, "scaleFromZero") && traffic(&st, "zone-paris")["heldTotal"].as_u64() >= Some(1), "from zero, held: {st:#}");
    drop(d1);

    // Devices at Lyon: served from Paris (forwarded) while below the trigger...
    let mut d2 = DeviceConn::of(3, &carol).await?;
    let (s, b) = d2.get(host, "/").await?;
    ensure!(s == 200 && b.contains(&x), "Lyon served from Paris: {s} {b}");
    let st = status(&dev, &app).await?;
    ensure!(traffic(&st, "zone-lyon")["forwardedTotal"].as_u64() >= Some(1) && instances_in(&st, "zone-lyon").is_empty(), "forwarded: {st:#}");
    // ...until their concurrent sessions reach it: an instance starts at Lyon.
    let mut d3 = DeviceConn::of(4, &bob).await?;
    let (s, _) = d3.get(host, "/").await?;
    ensure!(s == 200, "second Lyon device: {s}");
    let st = wait_status(&dev, &app, "a ready instance at Lyon", Duration::from_secs(60), |st| instances_in(st, "zone-lyon").iter().any(|i| i["state"] == "ready")).await?;
    ensure!(has_event(&st, "migrate"), "the start at Lyon is a migration to the sessions: {st:#}");
    ensure!(traffic(&st, "zone-lyon")["sessions"].as_u64() >= Some(2) && traffic(&st, "zone-lyon")["devices"].as_u64() >= Some(2), "sessions and devices at Lyon: {st:#}");
    // The same counts on the operator's /metrics.
    let (_, m) = admin.get("/metrics").await?;
    let m = m.as_str().unwrap_or_default();
    let series = |name: &str| m.lines().find(|l| l.starts_with(name) && l.contains("app=\"edge_fn_org/echo\"") && l.contains("zone=\"zone-lyon\"")).map(str::to_string);
    for name in ["op_serverless_sessions{", "op_serverless_devices{"] {
        let line = series(name).with_context(|| format!("{name} for the app at Lyon on /metrics:\n{m}"))?;
        ensure!(line.split_whitespace().last().and_then(|v| v.parse::<u64>().ok()) >= Some(2), "{line}");
    }
    ensure!(series("op_serverless_forwarded_total{").is_some_and(|l| !l.ends_with(" 0")), "forwarded from Lyon on /metrics:\n{m}");
    // The devices' connections were joined to their instances in the kernel.
    let spliced = m.lines().find_map(|l| l.strip_prefix("op_serverless_kernel_spliced_total ")).and_then(|v| v.trim().parse::<u64>().ok());
    ensure!(spliced >= Some(3), "connections joined in the kernel on /metrics:\n{m}");
    // ... and opened inside the instances' network namespaces, the runtime being on this host.
    let entered = m.lines().find_map(|l| l.strip_prefix("op_serverless_entered_total ")).and_then(|v| v.trim().parse::<u64>().ok());
    ensure!(entered >= Some(3), "connections opened inside instances' namespaces on /metrics:\n{m}");
    let y = instances_in(&st, "zone-lyon")[0]["appInstanceId"].as_str().context("id")?.to_string();
    // The operator sees the namespace the ingress enters; the developer does not.
    let (_, seen) = admin.get(&format!("/op/v1/appinstances/{y}")).await?;
    let netns = seen["observed"]["networkNamespace"].as_str().with_context(|| format!("the instance's namespace: {seen}"))?;
    ensure!(std::path::Path::new(netns).exists(), "{netns} is a file on this host");
    let (_, mine) = dev.get(&format!("/op/v1/appinstances/{y}")).await?;
    ensure!(mine["observed"].get("networkNamespace").is_none(), "a developer sees the host's namespace file: {mine}");
    // The Lyon ingress now serves locally.
    let mut d4 = DeviceConn::of(5, &carol).await?;
    let (s, b) = d4.get(host, "/").await?;
    ensure!(s == 200 && b.contains(&y), "served at Lyon by its own instance {y}: {s} {b}");
    let shown = p.opctl_as(&dev, &["serverless", "show", "echo"])?;
    ensure!(shown.contains("zone-lyon") && shown.contains("reached the policy's trigger"), "opctl shows where and why: {shown}");

    // All quiet: every instance scales back to zero.
    drop((d2, d3, d4));
    let st = wait_status(&dev, &app, "zero instances", Duration::from_secs(60), |st| st["instances"].as_array().is_some_and(Vec::is_empty)).await?;
    ensure!(has_event(&st, "scaleIn") && has_event(&st, "sessionEnded"), "scale-in and session events: {st:#}");
    for id in [&x, &y] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while containers_of(id).await? > 0 {
            ensure!(Instant::now() < deadline, "container of {id} still there");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let shown = p.opctl_as(&dev, &["serverless", "show", "echo"])?;
    ensure!(shown.contains("scaled to zero"), "{shown}");

    // A new policy version; the next cold start follows it.
    let out = p.opctl_as(&dev, &["serverless", "policy", "echo", "--idle", "5"])?;
    ensure!(out.contains('2'), "version 2: {out}");
    let st = status(&dev, &app).await?;
    ensure!(st["policy"]["version"] == 2 && st["policy"]["idleSeconds"] == 5 && has_event(&st, "policyChanged"), "{st:#}");
    eprintln!("cold start through the ingress (debug build, first image use): {cold:?}");
    Ok(())
}
