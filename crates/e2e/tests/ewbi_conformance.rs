//! EWBI conformance end to end: one real partner platform B (`opd --ewbi-listen`), and this
//! test acting as the originating operator directly over HTTPS, with its own TLS callback
//! receiver. Every operation of the official GSMA file (29) plus `DeleteApp` (later revision) is
//! driven on its happy path and at least one error path; every request the test sends is
//! checked against the *unmodified* official file (Strict), every answer and callback B sends
//! too, and coverage is asserted with a `Recorder`. Then every body B sent is scanned for
//! topology leaks (cloudlet names and uids, driver endpoints, runtime addresses, host ports,
//! cloudlet capacities). A second partner federates in the katalis dialect; and wrong
//! credentials are refused.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use op_e2e::certs::TestPki;
use op_e2e::federation::*;
use op_e2e::*;
use op_ewbi_spec::{Dialect, Recorder, Spec, Strictness};
use op_types::ewbi::wire;
use reqwest::Method;
use serde_json::{json, Value};

/// The offer made to the test partner: numbers chosen to differ from the cloudlet's capacity
/// (64 vCPU, 65536 MB, 500 GB), so the leak scan can tell them apart.
const RESERVED_VCPUS: u64 = 3;
const RESERVED_MB: u64 = 3000;
const QUOTA_VCPUS: u64 = 6;
const QUOTA_MB: u64 = 6000;

// ---------------------------------------------------------------------------------------------
// The test's callback receiver (HTTPS, TestPki certificate for 127.0.0.1)
// ---------------------------------------------------------------------------------------------

/// Every callback received: (dialect segment, kind segment, body).
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<(String, String, Value)>>>);

impl Inbox {
    fn all(&self) -> Vec<(String, String, Value)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn of(&self, dialect: &str, kind: &str) -> Vec<Value> {
        self.all().into_iter().filter(|(d, k, _)| d == dialect && k == kind).map(|(_, _, b)| b).collect()
    }

    /// Waits until a callback of `kind` satisfying `pred` arrived; returns it.
    async fn wait(&self, dialect: &str, kind: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.of(dialect, kind).into_iter().find(|v| pred(v)) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("no {dialect}/{kind} callback matching in {timeout:?}; got {:?}", self.of(dialect, kind));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn receive(State(inbox): State<Inbox>, Path((dialect, kind)): Path<(String, String)>, body: Bytes) -> StatusCode {
    let v = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    inbox.0.lock().unwrap_or_else(|p| p.into_inner()).push((dialect, kind.clone(), v));
    // onZoneResourceUpdateEvent is answered 200 by the spec, every other callback 204.
    if kind == "zone" {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    }
}

/// The callback named by a receiver path segment.
fn callback_name(kind: &str) -> &'static str {
    match kind {
        "partner" => "onPartnerStatusEvent",
        "zone" => "onZoneResourceUpdateEvent",
        "app" => "onApplicationOnboardStatusEvent",
        "inst" => "onInstanceStatusEvent",
        "pool" => "onResourceStatusChangeEvent",
        _ => "unknown",
    }
}

/// Starts the receiver; returns its base URL (`https://127.0.0.1:port`).
async fn start_receiver(pki: &TestPki, inbox: Inbox) -> Result<String> {
    let (cert, key) = pki.server("receiver", &["127.0.0.1"])?;
    let config = op_api::ewbi::tls::server_config(&op_api::ewbi::tls::TlsSettings { cert_pem_path: cert, key_pem_path: key, client_ca_pem_path: None, require_client_cert: false })?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let router = Router::new().route("/{dialect}/{kind}", post(receive)).with_state(inbox);
    tokio::spawn(op_api::ewbi::tls::serve(listener, config, router, std::future::pending::<()>()));
    Ok(format!("https://127.0.0.1:{port}"))
}

/// Registers the test as a partner of `b` (trusting the test CA for callbacks); returns the
/// client secret.
async fn register(b: &Platform, ca_pem: &str, client_id: &str, fed_id: &str) -> Result<String> {
    let offer = json!({"zone": "local", "alias": PARTNER_ZONE, "geography": "Paris, east bank",
                       "reservedVcpus": RESERVED_VCPUS, "reservedMemoryMb": RESERVED_MB, "quotaVcpus": QUOTA_VCPUS, "quotaMemoryMb": QUOTA_MB});
    register_partner_offering(b, ca_pem, client_id, fed_id, offer).await
}

// ---------------------------------------------------------------------------------------------
// The originating operator's client: validates everything both ways
// ---------------------------------------------------------------------------------------------

/// A request body.
enum Req {
    None,
    /// JSON that must be valid against the spec (Strict).
    Json(Value),
    /// JSON that must be *invalid* against the spec (an error-path test of a bad body).
    BadJson(Value),
    /// Multipart: the parts object in JSON form (binary part included as `null`), the binary
    /// part's (name, bytes), and whether the parts must be valid.
    Form(Value, Option<(&'static str, Vec<u8>)>, bool),
}

struct Reply {
    status: u16,
    body: Option<Value>,
    headers: reqwest::header::HeaderMap,
}

struct Ewbi {
    http: reqwest::Client,
    base: String,
    token: String,
    dialect: Dialect,
    rec: Recorder,
    /// Every body B answered (operation, body), for the leak scan.
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Ewbi {
    async fn call(&self, op: &str, method: Method, path: &str, req: Req, expect: u16) -> Result<Reply> {
        let spec = if op == "DeleteApp" { Spec::get(Dialect::Katalis) } else { Spec::get(self.dialect) };
        let found = spec.find(method.as_str(), path).map(|o| o.operation_id.clone());
        ensure!(found.as_deref() == Some(op), "{method} {path} maps to {found:?}, not {op}");
        let url = format!("{}{path}", self.base);
        let mut rb = self.http.request(method.clone(), &url).bearer_auth(&self.token);
        match req {
            Req::None => {}
            Req::Json(v) => {
                spec.validate_request_with(Strictness::Strict, op, &v).map_err(|e| anyhow::anyhow!("the test's own request is invalid: {e}\n{v:#}"))?;
                rb = rb.json(&v);
            }
            Req::BadJson(v) => {
                ensure!(spec.validate_request_with(Strictness::Lenient, op, &v).is_err(), "the bad body of {op} is valid: {v}");
                rb = rb.json(&v);
            }
            Req::Form(parts, file, valid) => {
                let r = spec.validate_request_with(Strictness::Strict, op, &parts);
                if valid {
                    r.map_err(|e| anyhow::anyhow!("the test's own multipart request is invalid: {e}\n{parts:#}"))?;
                } else {
                    ensure!(r.is_err(), "the bad multipart body of {op} is valid: {parts}");
                }
                let mut text = parts.clone();
                if let (Some(m), Some((name, _))) = (text.as_object_mut(), &file) {
                    m.remove(*name);
                }
                let mut form = reqwest::multipart::Form::new();
                for (k, v) in wire::form_fields(&text)? {
                    form = form.text(k, v);
                }
                if let Some((name, bytes)) = file {
                    form = form.part(name, reqwest::multipart::Part::bytes(bytes).file_name("image.tar").mime_str("application/x-tar")?);
                }
                rb = rb.multipart(form);
            }
        }
        let r = rb.send().await.with_context(|| format!("{op}: {method} {url}"))?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await?;
        let body = if text.is_empty() { None } else { Some(serde_json::from_str::<Value>(&text).with_context(|| format!("{op} {status}: not JSON: {text}"))?) };
        ensure!(expect == 0 || status == expect, "{op}: {method} {path} answered {status}, expected {expect}: {text}");
        if status >= 400 {
            let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
            ensure!(ct.starts_with("application/problem+json"), "{op} {status}: content type {ct}");
        }
        spec.validate_response_with(Strictness::Strict, op, status, body.as_ref()).map_err(|e| anyhow::anyhow!("B's answer fails the spec: {e}\nbody: {text}"))?;
        if spec.dialect() == Dialect::Official {
            self.rec.record(op, status);
        }
        if let Some(b) = &body {
            self.seen.lock().unwrap_or_else(|p| p.into_inner()).push((op.to_string(), b.clone()));
        }
        Ok(Reply { status, body, headers })
    }

    /// Expects a ProblemDetails naming `param` in `invalidParams`.
    async fn bad_param(&self, op: &str, method: Method, path: &str, req: Req, param: &str) -> Result<()> {
        let r = self.call(op, method, path, req, 400).await?;
        let b = r.body.context("400 without body")?;
        let params: Vec<&str> = b["invalidParams"].as_array().into_iter().flatten().filter_map(|p| p["param"].as_str()).collect();
        ensure!(params.iter().any(|p| p.contains(param)), "{op}: 400 does not name {param}: {b}");
        Ok(())
    }
}

fn uuid() -> String {
    op_types::Uid::random().to_string()
}

fn now() -> String {
    // RFC 3339 without fractions.
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = secs / 86_400;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    // civil from days (Howard Hinnant)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

fn os_type() -> Value {
    json!({"architecture": "x86_64", "distribution": "OTHER", "version": "OTHER", "license": "NOT_SPECIFIED"})
}

fn component(file_id: &str) -> Value {
    json!({
        "componentName": "webcomponent",
        "osType": os_type(),
        "InstSetArch": "ISA_X86_64",
        "images": [file_id],
        "numOfInstances": 1,
        "restartPolicy": "RESTART_POLICY_ALWAYS",
        "exposedInterfaces": [{"interfaceId": "httpport", "commProtocol": "TCP", "commPort": 8080,
            "visibilityType": "VISIBILITY_EXTERNAL", "network": "defaultnet", "interfaceName": "eth0", "InterfaceName": "eth0"}],
        "computeResourceProfile": {"cpuArchType": "ISA_X86_64", "numCPU": 1, "memory": 128, "diskStorage": 1},
        // Required (undeclared) by the official file: sent so the body passes it unmodified.
        "networkResourceProfile": []
    })
}

/// The sample app's image as a `podman save` archive.
async fn sample_image() -> Result<Vec<u8>> {
    use op_driver::Driver;
    let d = op_driver::docker::DockerDriver::connect(&docker_endpoint())?;
    Ok(d.export_image(SAMPLE_IMAGE).await?)
}

/// Every number in `v` (JSON numbers, and strings that are plain numbers such as katalis
/// `numCPU`), with the key it sits under.
fn numbers(v: &Value, key: &str, out: &mut Vec<(String, f64)>) {
    match v {
        Value::Number(n) => out.extend(n.as_f64().map(|f| (key.to_string(), f))),
        Value::String(s) => out.extend(s.parse::<f64>().ok().map(|f| (key.to_string(), f))),
        Value::Array(a) => a.iter().for_each(|x| numbers(x, key, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| numbers(x, k, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn every_ewbi_operation_conforms_and_hides_topology() -> Result<()> {
    let started = Instant::now();
    let (b, b_ewbi) = start_ewbi("opb", &[]).await?;
    let tmp = tempfile::tempdir()?;
    let pki = TestPki::new(tmp.path().join("pki"))?;
    let inbox = Inbox::default();
    let recv = start_receiver(&pki, inbox.clone()).await?;
    let ca_pem = std::fs::read_to_string(&pki.ca_pem)?;
    let secret = register(&b, &ca_pem, "conf-client", "origconf").await?;
    let http = ewbi_http(&b)?;
    let tok = token(&http, &b_ewbi, "conf-client", &secret).await?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let e = Ewbi { http: http.clone(), base: format!("{b_ewbi}{}", op_ewbi_spec::BASE_PATH), token: tok.clone(), dialect: Dialect::Official, rec: Recorder::new(), seen: seen.clone() };
    let image = sample_image().await?;
    // What B must never tell a partner, read before the run retires the cloudlet.
    let mut secrets = Secrets::read(&b).await?;
    secrets.ports = match drive(&b, &b_ewbi, &e, &inbox, &recv, &ca_pem, image).await {
        Ok(p) => p,
        Err(err) => bail!("{err:#}\nB log:\n{}", tail(&b.log())),
    };

    // Wrong credentials (section 6).
    credentials(&b, &b_ewbi, &http, &e).await?;

    // Every callback received is valid (Strict, in the dialect of the federation it belongs to).
    for (d, kind, body) in inbox.all() {
        let name = callback_name(&kind);
        let spec = Spec::get(if d == "kat" { Dialect::Katalis } else { Dialect::Official });
        spec.validate_callback_with(Strictness::Strict, name, &body).map_err(|err| anyhow::anyhow!("B's callback fails the spec: {err}\n{body:#}"))?;
        if d == "off" {
            e.rec.record(name, 204);
        }
        seen.lock().unwrap_or_else(|p| p.into_inner()).push((name.to_string(), body));
    }

    // Coverage: every operation and callback of the official file.
    let missing = e.rec.missing(Spec::get(Dialect::Official));
    ensure!(missing.is_empty(), "not covered: {missing:?}\ncallbacks received: {:?}", inbox.all().iter().map(|(d, k, _)| format!("{d}/{k}")).collect::<Vec<_>>());
    for op in Spec::get(Dialect::Official).operations() {
        let st = e.rec.statuses(&op.operation_id);
        ensure!(st.iter().any(|s| *s < 300) && st.iter().any(|s| *s >= 400), "{} lacks a happy or an error path: {st:?}", op.operation_id);
    }

    secrets.scan(&seen.lock().unwrap_or_else(|p| p.into_inner()))?;
    let took = started.elapsed();
    let kinds: Vec<String> = inbox.all().iter().map(|(d, k, _)| format!("{d}/{}", callback_name(k))).collect();
    eprintln!("EWBI conformance: {} bodies checked in {took:?}; callbacks: {kinds:?}", seen.lock().unwrap_or_else(|p| p.into_inner()).len());
    Ok(())
}

#[allow(clippy::too_many_lines)]
async fn drive(b: &Platform, b_ewbi: &str, e: &Ewbi, inbox: &Inbox, recv: &str, ca_pem: &str, image: Vec<u8>) -> Result<Vec<u64>> {
    use Method as M;
    let z = PARTNER_ZONE;
    let cb = |kind: &str| format!("{recv}/off/{kind}");
    let provider = "prov_conf01";
    let app_id = "app_conf01";
    let unknown_ctx = uuid();

    // --- CreateFederation ---
    let mut fed = json!({
        "origOPFederationId": "origconf", "origOPCountryCode": "FR",
        "origOPMobileNetworkCodes": {"mcc": "208", "mncs": ["01"]},
        "initialDate": now(), "federationNotificationDest": cb("partner"),
    });
    let mut bad = fed.clone();
    bad.as_object_mut().context("obj")?.remove("initialDate");
    e.bad_param("CreateFederation", M::POST, "/partner", Req::BadJson(bad), "initialDate").await?;
    let mut wrong = fed.clone();
    wrong["origOPFederationId"] = json!("someoneelse");
    e.bad_param("CreateFederation", M::POST, "/partner", Req::Json(wrong), "origOPFederationId").await?;
    let r = e.call("CreateFederation", M::POST, "/partner", Req::Json(fed.clone()), 200).await?;
    let body = r.body.context("CreateFederation body")?;
    let ctx = body["federationContextId"].as_str().context("federationContextId")?.to_string();
    let loc = r.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    ensure!(loc.starts_with(b_ewbi) && loc.ends_with(&format!("/{ctx}/partner")), "Location {loc}");
    ensure!(body["offeredAvailabilityZones"].as_array().is_some_and(|a| a.iter().any(|x| x["zoneId"] == z)), "zone offered: {body}");
    // A second, different federation request from the same partner is a conflict.
    fed["initialDate"] = json!("2020-01-01T00:00:00Z");
    e.call("CreateFederation", M::POST, "/partner", Req::Json(fed), 409).await?;

    // --- GetFederationDetails / UpdateFederation ---
    e.call("GetFederationDetails", M::GET, &format!("/{unknown_ctx}/partner"), Req::None, 404).await?;
    e.call("GetFederationDetails", M::GET, &format!("/{ctx}/partner"), Req::None, 200).await?;
    let upd = json!({"objectType": "MOBILE_NETWORK_CODES", "operationType": "ADD_CODES", "addMobileNetworkIds": {"mcc": "208", "mncs": ["02"]}, "modificationDate": now()});
    let r = e.call("UpdateFederation", M::PATCH, &format!("/{ctx}/partner"), Req::Json(upd), 200).await?;
    let mncs = &r.body.context("UpdateFederation body")?["allowedMobileNetworkIds"]["mncs"];
    ensure!(mncs.as_array().is_some_and(|a| a.contains(&json!("02"))), "added code missing: {mncs}");
    let upd = json!({"objectType": "MOBILE_NETWORK_CODES", "operationType": "REMOVE_CODES", "modificationDate": now()});
    e.bad_param("UpdateFederation", M::PATCH, &format!("/{ctx}/partner"), Req::Json(upd.clone()), "removeMobileNetworkIds").await?;
    e.call("UpdateFederation", M::PATCH, &format!("/{unknown_ctx}/partner"), Req::Json(upd), 404).await?;

    // --- ZoneSubscribe / GetZoneData ---
    let sub = |zone: &str| json!({"acceptedAvailabilityZones": [zone], "availZoneNotifLink": cb("zone")});
    e.call("ZoneSubscribe", M::POST, &format!("/{ctx}/zones"), Req::Json(sub("nozone-9")), 404).await?;
    e.bad_param("ZoneSubscribe", M::POST, &format!("/{ctx}/zones"), Req::BadJson(json!({"acceptedAvailabilityZones": [z]})), "availZoneNotifLink").await?;
    let r = e.call("ZoneSubscribe", M::POST, &format!("/{ctx}/zones"), Req::Json(sub(z)), 200).await?;
    let info = &r.body.context("ZoneSubscribe body")?["acceptedZoneResourceInfo"][0];
    ensure!(info["zoneId"] == z && info["reservedComputeResources"][0]["numCPU"] == json!(RESERVED_VCPUS), "zone info: {info}");
    e.call("GetZoneData", M::GET, &format!("/{ctx}/zones/nozone-9"), Req::None, 404).await?;
    e.call("GetZoneData", M::GET, &format!("/{ctx}/zones/{z}"), Req::None, 200).await?;

    // --- UploadFile / ViewFile ---
    let file_id = uuid();
    let file = json!({
        "fileId": file_id, "appProviderId": provider, "fileName": "sample_app", "fileDescription": "the sample web app",
        "fileVersionInfo": "1.0.0", "fileType": "DOCKER", "imgOSType": os_type(), "imgInsSetArch": "ISA_X86_64",
        "repoType": "UPLOAD", "file": null,
    });
    let mut no_name = file.clone();
    no_name.as_object_mut().context("obj")?.remove("fileName");
    e.bad_param("UploadFile", M::POST, &format!("/{ctx}/files"), Req::Form(no_name, Some(("file", b"x".to_vec())), false), "fileName").await?;
    let mut qcow = file.clone();
    qcow["fileType"] = json!("QCOW2");
    qcow["fileId"] = json!(uuid());
    e.call("UploadFile", M::POST, &format!("/{ctx}/files"), Req::Form(qcow, Some(("file", b"x".to_vec())), true), 422).await?;
    e.call("UploadFile", M::POST, &format!("/{ctx}/files"), Req::Form(file.clone(), Some(("file", image)), true), 200).await?;
    e.call("ViewFile", M::GET, &format!("/{ctx}/files/{}", uuid()), Req::None, 404).await?;
    let r = e.call("ViewFile", M::GET, &format!("/{ctx}/files/{file_id}"), Req::None, 200).await?;
    ensure!(r.body.as_ref().is_some_and(|v| v["fileId"] == json!(file_id)), "ViewFile: {:?}", r.body);

    // --- UploadArtefact / GetArtefact ---
    let artefact_id = uuid();
    let art = |images_of: &str, id: &str| {
        json!({
            "artefactId": id, "appProviderId": provider, "artefactName": "sample_art", "artefactVersionInfo": "1.0.0",
            "artefactDescription": "sample web app", "artefactVirtType": "CONTAINER_TYPE", "artefactDescriptorType": "COMPONENTSPEC",
            "repoType": "UPLOAD", "componentSpec": [component(images_of)], "artefactFile": null,
        })
    };
    e.bad_param("UploadArtefact", M::POST, &format!("/{ctx}/artefact"), Req::Form(art(&uuid(), &uuid()), None, true), "componentSpec[0].images[0]").await?;
    e.call("UploadArtefact", M::POST, &format!("/{ctx}/artefact"), Req::Form(art(&file_id, &artefact_id), None, true), 200).await?;
    e.call("GetArtefact", M::GET, &format!("/{ctx}/artefact/{}", uuid()), Req::None, 404).await?;
    let r = e.call("GetArtefact", M::GET, &format!("/{ctx}/artefact/{artefact_id}"), Req::None, 200).await?;
    ensure!(r.body.as_ref().is_some_and(|v| v["artefactId"] == json!(artefact_id)), "GetArtefact: {:?}", r.body);
    e.call("RemoveFile", M::DELETE, &format!("/{ctx}/files/{file_id}"), Req::None, 409).await?;

    // --- OnboardApplication / ViewApplication / UpdateApplication ---
    let onboard = json!({
        "appId": app_id, "appProviderId": provider,
        "appDeploymentZones": [{"countryCode": "FR", "zoneInfo": z}],
        "appMetaData": {"appName": "sampleapp", "version": "1.0.0", "appDescription": "the sample web application",
                        "mobilitySupport": false, "accessToken": "Atoken_0123456789abcdef0123456789abcdef", "category": "IOT"},
        "appQoSProfile": {"latencyConstraints": "NONE", "bandwidthRequired": 1, "multiUserClients": "APP_TYPE_SINGLE_USER", "noOfUsersPerAppInst": 1, "appProvisioning": true},
        "appComponentSpecs": [{"serviceNameNB": "samplenb", "serviceNameEW": "sampleew", "componentName": "webcomponent", "componentname": "webcomponent", "artefactId": artefact_id}],
        "appStatusCallbackLink": cb("app"),
    });
    let mut bad = onboard.clone();
    bad["appMetaData"]["version"] = json!("one");
    e.bad_param("OnboardApplication", M::POST, &format!("/{ctx}/application/onboarding"), Req::BadJson(bad), "appMetaData.version").await?;
    e.call("OnboardApplication", M::POST, &format!("/{ctx}/application/onboarding"), Req::Json(onboard.clone()), 202).await?;
    e.call("OnboardApplication", M::POST, &format!("/{ctx}/application/onboarding"), Req::Json(onboard), 409).await?;
    inbox.wait("off", "app", Duration::from_secs(10), |v| v["appId"] == app_id && v["statusInfo"][0]["onboardStatusInfo"] == "ONBOARDED").await?;
    e.call("RemoveArtefact", M::DELETE, &format!("/{ctx}/artefact/{artefact_id}"), Req::None, 409).await?;
    let app = format!("/{ctx}/application/onboarding/app/{app_id}");
    e.call("ViewApplication", M::GET, &format!("/{ctx}/application/onboarding/app/nosuchapp"), Req::None, 404).await?;
    e.call("ViewApplication", M::GET, &app, Req::None, 200).await?;
    // Mobility support on: the zone (no DNAI) cannot steer sessions, so B refuses to install
    // there (a 422 below); then off again.
    let upd = |mobility: bool| json!({"appUpdQoSProfile": {"latencyConstraints": "NONE", "mobilitySupport": mobility}});
    e.call("UpdateApplication", M::PATCH, &format!("/{ctx}/application/onboarding/app/nosuchapp"), Req::Json(upd(true)), 404).await?;
    e.bad_param("UpdateApplication", M::PATCH, &app, Req::BadJson(json!({"appUpdQoSProfile": {"latencyConstraints": "SLOW"}})), "latencyConstraints").await?;
    e.call("UpdateApplication", M::PATCH, &app, Req::Json(upd(true)), 202).await?;
    let r = e.call("ViewApplication", M::GET, &app, Req::None, 200).await?;
    let v = r.body.context("ViewApplication body")?;
    ensure!(v["appMetaData"]["mobilitySupport"] == true, "update not applied: {v}");
    let install = json!({
        "appId": app_id, "appVersion": "1.0.0", "appProviderId": provider,
        "zoneInfo": {"zoneId": z, "flavourId": "small", "resourceConsumption": "RESERVED_RES_AVOID"},
        "appInstCallbackLink": cb("inst"),
    });
    e.call("InstallApp", M::POST, &format!("/{ctx}/application/lcm"), Req::Json(install.clone()), 422).await?;
    e.call("UpdateApplication", M::PATCH, &app, Req::Json(upd(false)), 202).await?;
    let r = e.call("ViewApplication", M::GET, &app, Req::None, 200).await?;
    let v = r.body.context("ViewApplication body")?;
    ensure!(v["appMetaData"]["mobilitySupport"] == false, "update not applied: {v}");

    // --- OnboardExistingAppNewZones / LockUnlockApplicationZone ---
    e.call("OnboardExistingAppNewZones", M::POST, &format!("{app}/additionalZones"), Req::Json(json!(["nozone-9"])), 404).await?;
    e.call("OnboardExistingAppNewZones", M::POST, &format!("{app}/additionalZones"), Req::Json(json!([z])), 202).await?;
    e.bad_param("LockUnlockApplicationZone", M::POST, &format!("{app}/zoneForbid"), Req::Json(json!([{"zoneId": "nozone-9", "forbid": true}])), "zoneId").await?;
    e.call("LockUnlockApplicationZone", M::POST, &format!("{app}/zoneForbid"), Req::Json(json!([{"zoneId": z, "forbid": true}])), 200).await?;

    // --- InstallApp (refused while forbidden, then installed) ---
    e.call("InstallApp", M::POST, &format!("/{ctx}/application/lcm"), Req::Json(install.clone()), 422).await?;
    e.call("LockUnlockApplicationZone", M::POST, &format!("{app}/zoneForbid"), Req::Json(json!([{"zoneId": z, "forbid": false}])), 200).await?;
    let mut bad = install.clone();
    bad["zoneInfo"]["flavourId"] = json!("huge");
    e.bad_param("InstallApp", M::POST, &format!("/{ctx}/application/lcm"), Req::Json(bad), "zoneInfo.flavourId").await?;
    let r = e.call("InstallApp", M::POST, &format!("/{ctx}/application/lcm"), Req::Json(install), 202).await?;
    let inst = r.body.context("InstallApp body")?["appInstIdentifier"].as_str().context("appInstIdentifier")?.to_string();

    // --- GetAppInstanceDetails: until READY with access points; the app answers there ---
    let inst_path = format!("/{ctx}/application/lcm/app/{app_id}/instance/{inst}/zone/{z}");
    e.call("GetAppInstanceDetails", M::GET, &format!("/{ctx}/application/lcm/app/{app_id}/instance/inosuch/zone/{z}"), Req::None, 404).await?;
    let deadline = Instant::now() + Duration::from_secs(45);
    let details = loop {
        let r = e.call("GetAppInstanceDetails", M::GET, &inst_path, Req::None, 200).await?;
        let v = r.body.context("details body")?;
        if v["appInstanceState"] == "READY" && v["accesspointInfo"].is_array() {
            break v;
        }
        ensure!(v["appInstanceState"] != "FAILED", "instance failed: {v}");
        ensure!(Instant::now() < deadline, "instance not READY in time: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let ap = &details["accesspointInfo"][0]["accessPoints"];
    let url = format!("http://{}:{}/", ap["ipv4Addresses"][0].as_str().context("ipv4")?, ap["port"]);
    http_get_ok(&url, Duration::from_secs(15)).await?;
    inbox.wait("off", "inst", Duration::from_secs(15), |v| v["appInstIdentifier"] == json!(inst) && v["appInstanceInfo"]["appInstanceState"] == "READY").await?;
    // The running instance takes part of the reservation: the partner is told what is left
    // (awaited now, while it runs: the pusher compares once a second).
    inbox
        .wait("off", "zone", Duration::from_secs(15), |v| {
            let n = &v["zoneResUpdInfo"][0]["availableCompResources"][0]["numCPU"];
            // Written as a number or a string, by the partner's revision of the spec.
            let left = n.as_u64().or_else(|| n.as_str().and_then(|s| s.parse().ok()));
            left.is_some_and(|l| l < RESERVED_VCPUS)
        })
        .await
        .context("onZoneResourceUpdateEvent for the running instance never received")?;

    // --- GetAllAppInstances ---
    e.call("GetAllAppInstances", M::GET, &format!("/{ctx}/application/lcm/app/{app_id}/appProvider/prov_other01"), Req::None, 404).await?;
    let r = e.call("GetAllAppInstances", M::GET, &format!("/{ctx}/application/lcm/app/{app_id}/appProvider/{provider}"), Req::None, 200).await?;
    ensure!(r.body.as_ref().is_some_and(|v| v[0]["appInstanceInfo"][0]["appInstIdentifier"] == json!(inst)), "all instances: {:?}", r.body);

    // --- Resource pools ---
    let pools = format!("/{ctx}/isv/resource/zone/{z}/appProvider/{provider}");
    let pool_req = |flavour: &str| {
        json!({"resRequest": {"poolName": "pool_one", "flavours": [{"flavourId": flavour, "numFlavour": 2, "minNumOfFlavours": 1}],
                              "reserveDuration": {"numOfDays": 1}},
               "resourceReservationCallbackLink": cb("pool")})
    };
    e.bad_param("CreateResourcePools", M::POST, &pools, Req::Json(pool_req("huge")), "resRequest.flavours[0].flavourId").await?;
    e.call("ViewISVResPool", M::GET, &pools, Req::None, 404).await?;
    let r = e.call("CreateResourcePools", M::POST, &pools, Req::Json(pool_req("small")), 200).await?;
    let pool_id = r.body.context("pool body")?["poolId"].as_str().context("poolId")?.to_string();
    inbox.wait("off", "pool", Duration::from_secs(10), |v| v["poolId"] == json!(pool_id)).await?;
    e.call("ViewISVResPool", M::GET, &format!("/{ctx}/isv/resource/zone/nozone-9/appProvider/{provider}"), Req::None, 404).await?;
    let r = e.call("ViewISVResPool", M::GET, &pools, Req::None, 200).await?;
    ensure!(r.body.as_ref().is_some_and(|v| v[0]["reservedPoolId"] == json!(pool_id) && v[0]["reservedFlavours"][0]["count"] == 2), "pool view: {:?}", r.body);
    let add = json!([{"updateType": "ADD", "flavourId": "small", "count": 1}]);
    e.call("UpdateISVResPool", M::PATCH, &format!("{pools}/pool/rnosuchpool"), Req::Json(add.clone()), 404).await?;
    e.call("UpdateISVResPool", M::PATCH, &format!("{pools}/pool/{pool_id}"), Req::Json(add), 200).await?;
    let r = e.call("ViewISVResPool", M::GET, &pools, Req::None, 200).await?;
    ensure!(r.body.as_ref().is_some_and(|v| v[0]["reservedFlavours"][0]["count"] == 3), "pool after ADD: {:?}", r.body);
    e.call("RemoveISVResPool", M::DELETE, &format!("{pools}/pool/{pool_id}"), Req::None, 200).await?;
    e.call("RemoveISVResPool", M::DELETE, &format!("{pools}/pool/{pool_id}"), Req::None, 404).await?;

    // --- GetCandidateZones ---
    let disc = |app: &str, geo: &str| json!({"appProviderId": provider, "appId": app, "edgeDiscoveryFilters": {"location": {"geo_location": geo}}});
    let path = format!("/{ctx}/edgenodesharing/edgeDiscovery");
    e.call("GetCandidateZones", M::POST, &path, Req::Json(disc("nosuchapp", "48.85,2.35")), 404).await?;
    e.bad_param("GetCandidateZones", M::POST, &path, Req::BadJson(disc(app_id, "north of Paris")), "geo_location").await?;
    let r = e.call("GetCandidateZones", M::POST, &path, Req::Json(disc(app_id, "48.85,2.35")), 200).await?;
    ensure!(r.body.as_ref().is_some_and(|v| v[0]["zoneId"] == z), "candidates: {:?}", r.body);

    // --- AuthenticateDevice ---
    let services_key = std::fs::read_to_string(b.data_dir().join("services.key"))?;
    let ewbi_secret = op_types::secret::derive_hex_str(services_key.trim().as_bytes(), "ewbi-ids/", "");
    let device = "device_0001";
    let good = op_api::ewbi::partner::roaming_token(ewbi_secret.as_bytes(), device);
    let auth = |dev: &str, t: &str| format!("/{ctx}/roaminguserauth/device/{dev}/token/{t}");
    e.call("AuthenticateDevice", M::GET, &auth("device_9999", &good), Req::None, 404).await?;
    e.call("AuthenticateDevice", M::GET, &auth(device, "wrongtoken0123"), Req::None, 404).await?;
    e.call("AuthenticateDevice", M::GET, &auth("d!", &good), Req::None, 422).await?;
    e.call("AuthenticateDevice", M::GET, &format!("/{unknown_ctx}/roaminguserauth/device/{device}/token/{good}"), Req::None, 404).await?;
    e.call("AuthenticateDevice", M::GET, &auth(device, &good), Req::None, 200).await?;

    // --- What is refused while the instance runs ---
    e.call("DeboardApplication", M::DELETE, &format!("{app}/zone/{z}"), Req::None, 409).await?;
    e.call("DeleteApp", M::DELETE, &app, Req::None, 409).await?;
    e.call("ZoneUnsubscribe", M::DELETE, &format!("/{ctx}/zones/{z}"), Req::None, 409).await?;

    // Ports of B's local instances, for the leak scan (read now, while the instance runs).
    let admin = b.admin().await?;
    let (s, list) = admin.get(&format!("{CAMARA}/appinstances")).await?;
    ensure!(s == 200, "list instances: {s} {list}");
    let mut host_ports = Vec::new();
    for i in list.as_array().into_iter().flatten() {
        let id = i["appInstanceId"].as_str().unwrap_or_default();
        if let Some(full) = admin.instance(id).await? {
            for ep in full["observed"]["endpoints"].as_array().into_iter().flatten() {
                host_ports.extend(ep["port"].as_u64());
            }
        }
    }
    ensure!(!host_ports.is_empty(), "no local instance with endpoints on B: {list}");

    // --- RemoveApp ---
    e.call("RemoveApp", M::DELETE, &format!("/{ctx}/application/lcm/app/{app_id}/instance/inosuch/zone/{z}"), Req::None, 404).await?;
    e.call("RemoveApp", M::DELETE, &inst_path, Req::None, 200).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = e.call("GetAppInstanceDetails", M::GET, &inst_path, Req::None, 0).await?;
        if r.status == 404 {
            break;
        }
        ensure!(r.status == 200, "instance details while terminating: {} {:?}", r.status, r.body);
        ensure!(Instant::now() < deadline, "instance not gone in time: {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    inbox.wait("off", "inst", Duration::from_secs(10), |v| v["appInstIdentifier"] == json!(inst) && v["appInstanceInfo"]["appInstanceState"] == "TERMINATING").await?;

    // --- Deboard, delete, remove ---
    e.call("DeboardApplication", M::DELETE, &format!("{app}/zone/nozone-9"), Req::None, 404).await?;
    e.call("DeboardApplication", M::DELETE, &format!("{app}/zone/{z}"), Req::None, 202).await?;
    inbox.wait("off", "app", Duration::from_secs(10), |v| v["statusInfo"][0]["onboardStatusInfo"] == "REMOVED").await?;
    e.call("DeleteApp", M::DELETE, &app, Req::None, 200).await?;
    e.call("DeleteApp", M::DELETE, &app, Req::None, 404).await?;
    e.call("RemoveArtefact", M::DELETE, &format!("/{ctx}/artefact/{artefact_id}"), Req::None, 200).await?;
    e.call("RemoveArtefact", M::DELETE, &format!("/{ctx}/artefact/{artefact_id}"), Req::None, 404).await?;
    e.call("RemoveFile", M::DELETE, &format!("/{ctx}/files/{file_id}"), Req::None, 200).await?;
    e.call("RemoveFile", M::DELETE, &format!("/{ctx}/files/{file_id}"), Req::None, 404).await?;

    // --- A katalis-dialect partner (section 5), while the zone still has its edge ---
    katalis(b, b_ewbi, recv, ca_pem, e).await?;

    // --- The zone's status as pushed to the partner ---
    // The operator retires the zone's only edge: the zone becomes unavailable to the partner.
    let (s, body) = admin.delete("/op/v1/cloudlets/local-docker").await?;
    ensure!(s == 200 || s == 202 || s == 204, "delete cloudlet: {s} {body}");
    let status_cb = inbox.wait("off", "partner", Duration::from_secs(15), |v| v["objectType"] == "ZONES").await;

    e.call("ZoneUnsubscribe", M::DELETE, &format!("/{ctx}/zones/nozone-9"), Req::None, 404).await?;
    e.call("ZoneUnsubscribe", M::DELETE, &format!("/{ctx}/zones/{z}"), Req::None, 200).await?;
    e.call("DeleteFederationDetails", M::DELETE, &format!("/{ctx}/partner"), Req::None, 200).await?;
    e.call("DeleteFederationDetails", M::DELETE, &format!("/{ctx}/partner"), Req::None, 404).await?;
    e.call("GetFederationDetails", M::GET, &format!("/{ctx}/partner"), Req::None, 404).await?;
    status_cb.context("onPartnerStatusEvent never received")?;
    Ok(host_ports)
}

async fn katalis(b: &Platform, b_ewbi: &str, recv: &str, ca_pem: &str, e: &Ewbi) -> Result<()> {
    let secret = register(b, ca_pem, "kat-client", "origkat").await?;
    let tok = token(&e.http, b_ewbi, "kat-client", &secret).await?;
    let k = Ewbi { http: e.http.clone(), base: e.base.clone(), token: tok, dialect: Dialect::Katalis, rec: Recorder::new(), seen: e.seen.clone() };
    let fed = json!({"origOPFederationId": "origkat", "initialDate": now(), "partnerStatusLink": format!("{recv}/kat/partner")});
    let r = k.call("CreateFederation", Method::POST, "/partner", Req::Json(fed), 200).await?;
    let ctx = r.body.context("body")?["federationContextId"].as_str().context("federationContextId")?.to_string();
    let sub = json!({"acceptedAvailabilityZones": [PARTNER_ZONE], "availZoneNotifLink": format!("{recv}/kat/zone")});
    let r = k.call("ZoneSubscribe", Method::POST, &format!("/{ctx}/zones"), Req::Json(sub), 200).await?;
    let body = r.body.context("body")?;
    let num = &body["acceptedZoneResourceInfo"][0]["reservedComputeResources"][0]["numCPU"];
    ensure!(num.is_string(), "katalis numCPU must be a string: {body}");
    let r = k.call("GetZoneData", Method::GET, &format!("/{ctx}/zones/{PARTNER_ZONE}"), Req::None, 200).await?;
    let body = r.body.context("body")?;
    ensure!(body["computeResourceQuotaLimits"][0]["numCPU"].is_string(), "katalis numCPU must be a string: {body}");
    // (Katalis keeps `Flavour.numCPU` an integer; only `ComputeResourceInfo.numCPU` is a `Vcpu` string.)
    ensure!(body["flavoursSupported"].as_array().is_some_and(|f| f.iter().all(|f| f["numCPU"].is_u64())), "katalis flavour numCPU: {body}");
    k.call("DeleteFederationDetails", Method::DELETE, &format!("/{ctx}/partner"), Req::None, 200).await?;
    Ok(())
}

async fn credentials(b: &Platform, b_ewbi: &str, http: &reqwest::Client, e: &Ewbi) -> Result<()> {
    // A wrong client secret: 401 invalid_client.
    let r = http.post(format!("{b_ewbi}/oauth2/token")).basic_auth("conf-client", Some("not-the-secret")).form(&[("grant_type", "client_credentials"), ("scope", "fed-mgmt")]).send().await?;
    ensure!(r.status() == 401, "wrong secret: {}", r.status());
    let v: Value = r.json().await?;
    ensure!(v["error"] == "invalid_client", "wrong secret: {v}");
    let spec = Spec::get(Dialect::Official);
    let path = format!("{}/{}/partner", e.base, uuid());
    // No token, B's NBI admin token, a garbage token: 401 ProblemDetails.
    let admin = b.admin().await?;
    for t in [None, admin.token.clone(), Some("garbage".to_string())] {
        let mut rb = http.get(&path);
        if let Some(t) = &t {
            rb = rb.bearer_auth(t);
        }
        let r = rb.send().await?;
        let status = r.status().as_u16();
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let body: Value = r.json().await?;
        ensure!(status == 401 && ct.starts_with("application/problem+json"), "token {t:?}: {status} {ct} {body}");
        spec.validate_response("GetFederationDetails", status, Some(&body)).map_err(|err| anyhow::anyhow!("{err}"))?;
        e.rec.record("GetFederationDetails", status);
    }
    // Plain HTTP to the EWBI port fails.
    let plain = b_ewbi.replace("https://", "http://");
    let r = reqwest::Client::new().get(format!("{plain}/operatorplatform/federation/v1/{}/partner", uuid())).timeout(Duration::from_secs(5)).send().await;
    ensure!(r.as_ref().map_or(true, |r| !r.status().is_success() && r.status() != 401), "plain HTTP was served: {:?}", r.map(|r| r.status()));
    Ok(())
}

/// What B must not tell a partner (section 4): its cloudlets' names, uids and capacities,
/// its driver endpoint and runtime network, and the host ports of the instance's container.
struct Secrets {
    needles: BTreeSet<String>,
    capacity: Vec<f64>,
    ports: Vec<u64>,
}

impl Secrets {
    async fn read(b: &Platform) -> Result<Secrets> {
        let admin = b.admin().await?;
        let (s, cloudlets) = admin.get("/op/v1/cloudlets").await?;
        ensure!(s == 200, "cloudlets: {s} {cloudlets}");
        let mut needles: BTreeSet<String> = ["local-docker", "unix://", "10.88.", "podman.sock"].iter().map(|s| s.to_string()).collect();
        let mut capacity = Vec::new();
        for c in cloudlets.as_array().into_iter().flatten() {
            needles.extend(c["metadata"]["uid"].as_str().map(str::to_string));
            needles.extend(c["metadata"]["name"].as_str().map(str::to_string));
            needles.extend(c["spec"]["driverEndpoint"].as_str().map(str::to_string));
            for k in ["vcpus", "memoryMb", "diskGb"] {
                capacity.extend(c["spec"]["capacity"][k].as_f64());
            }
        }
        ensure!(needles.len() >= 6 && capacity.len() >= 3, "B's cloudlets not read: {cloudlets}");
        Ok(Secrets { needles, capacity, ports: vec![] })
    }

    /// Nothing B sent names or sizes its edges.
    fn scan(&self, seen: &[(String, Value)]) -> Result<()> {
        ensure!(!seen.is_empty() && !self.ports.is_empty(), "nothing to scan");
        for (what, body) in seen {
            let text = body.to_string();
            for n in &self.needles {
                ensure!(!text.contains(n.as_str()), "{what} leaks {n:?}: {text}");
            }
            let mut nums = Vec::new();
            numbers(body, "", &mut nums);
            for (key, n) in nums {
                ensure!(!self.capacity.contains(&n), "{what} leaks a cloudlet capacity ({key} = {n}): {text}");
                ensure!(!self.ports.iter().any(|p| *p as f64 == n), "{what} leaks the instance's host port ({key} = {n}): {text}");
            }
        }
        Ok(())
    }
}
