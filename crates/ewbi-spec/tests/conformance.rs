use std::collections::BTreeSet;

use op_ewbi_spec::{Dialect, Fix, Recorder, Spec, Strictness, ERRATA};
use serde_json::{json, Value};

fn ids(spec: &Spec) -> BTreeSet<String> {
    spec.operations().iter().map(|o| o.operation_id.clone()).collect()
}

#[test]
fn operation_and_callback_counts() {
    let off = Spec::get(Dialect::Official);
    let kat = Spec::get(Dialect::Katalis);
    assert_eq!(off.operations().len(), 29);
    assert_eq!(kat.operations().len(), 30);
    assert_eq!(ids(off).len(), 29, "operationIds must be unique");
    let cbs: BTreeSet<String> = off.callbacks().into_iter().collect();
    let expected: BTreeSet<String> = ["onPartnerStatusEvent", "onZoneResourceUpdateEvent", "onApplicationOnboardStatusEvent", "onInstanceStatusEvent", "onResourceStatusChangeEvent"].iter().map(|s| s.to_string()).collect();
    assert_eq!(cbs, expected);
    assert_eq!(kat.callbacks().into_iter().collect::<BTreeSet<_>>(), expected);
    let only_kat: BTreeSet<String> = ids(kat).difference(&ids(off)).cloned().collect();
    let only_off: BTreeSet<String> = ids(off).difference(&ids(kat)).cloned().collect();
    assert_eq!(only_kat, BTreeSet::from(["DeleteApp".to_string()]));
    assert!(only_off.is_empty(), "{only_off:?}");
    for op in off.operations() {
        assert_eq!(op.method, op.method.to_uppercase());
        assert!(op.path.starts_with('/'), "{op:?}");
    }
}

#[test]
fn errata_pointers_exist() {
    for e in ERRATA {
        let doc = Spec::get(e.dialect).document();
        let arr = doc.pointer(e.pointer).and_then(Value::as_array).unwrap_or_else(|| panic!("{e:?}: pointer is not an array"));
        let from = match e.fix {
            Fix::DropRequired(n) => n,
            Fix::RenameRequired { from, .. } => from,
        };
        assert!(arr.iter().any(|v| v.as_str() == Some(from)), "{e:?}: {from} not in {arr:?}");
        assert!(e.pointer.ends_with("/required"), "{e:?}");
        assert!(!e.reason.is_empty());
    }
}

/// Collects every `required` name that names no property of its schema (or, inside an anyOf/oneOf/allOf branch, of the parent).
fn undeclared_required(v: &Value, ptr: &str, parent_props: Option<&serde_json::Map<String, Value>>, out: &mut BTreeSet<(String, String)>) {
    match v {
        Value::Object(m) => {
            let props = m.get("properties").and_then(Value::as_object).or(parent_props);
            if let (Some(req), Some(props)) = (m.get("required").and_then(Value::as_array), props) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !props.contains_key(r) {
                        out.insert((format!("{ptr}/required"), r.to_string()));
                    }
                }
            }
            for (k, c) in m {
                let child = format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1"));
                let inherit = if matches!(k.as_str(), "anyOf" | "oneOf" | "allOf") { m.get("properties").and_then(Value::as_object) } else { None };
                undeclared_required(c, &child, inherit, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                undeclared_required(c, &format!("{ptr}/{i}"), parent_props, out);
            }
        }
        _ => {}
    }
}

#[test]
fn errata_table_is_exhaustive() {
    for d in [Dialect::Official, Dialect::Katalis] {
        let mut found = BTreeSet::new();
        undeclared_required(Spec::get(d).document(), "", None, &mut found);
        let table: BTreeSet<(String, String)> = ERRATA
            .iter()
            .filter(|e| e.dialect == d)
            .map(|e| {
                let n = match e.fix {
                    Fix::DropRequired(n) => n,
                    Fix::RenameRequired { from, .. } => from,
                };
                (e.pointer.to_string(), n.to_string())
            })
            .collect();
        assert_eq!(found, table, "{d:?}: undeclared required names vs errata table");
    }
}

#[test]
fn find_maps_concrete_paths() {
    let off = Spec::get(Dialect::Official);
    let kat = Spec::get(Dialect::Katalis);
    let id = |s: &Spec, m: &str, p: &str| s.find(m, p).map(|o| o.operation_id.clone());
    assert_eq!(id(off, "GET", "/abc/zones/z1").as_deref(), Some("GetZoneData"));
    assert_eq!(id(off, "DELETE", "/abc/zones/z1").as_deref(), Some("ZoneUnsubscribe"));
    assert_eq!(id(off, "POST", "/partner").as_deref(), Some("CreateFederation"));
    assert_eq!(id(off, "post", "/partner").as_deref(), Some("CreateFederation"));
    assert_eq!(id(off, "GET", "/ctx/partner").as_deref(), Some("GetFederationDetails"));
    assert_eq!(id(off, "GET", "/operatorplatform/federation/v1/ctx/partner?x=1").as_deref(), Some("GetFederationDetails"));
    assert_eq!(id(off, "GET", "/ctx/application/lcm/app/a1/instance/i1/zone/z1").as_deref(), Some("GetAppInstanceDetails"));
    assert_eq!(id(off, "GET", "/ctx/roaminguserauth/device/d1/token/t1").as_deref(), Some("AuthenticateDevice"));
    assert_eq!(id(off, "DELETE", "/ctx/application/onboarding/app/a1"), None);
    assert_eq!(id(kat, "DELETE", "/ctx/application/onboarding/app/a1").as_deref(), Some("DeleteApp"));
    assert_eq!(id(off, "PATCH", "/ctx/application/onboarding/app/a1").as_deref(), Some("UpdateApplication"));
    assert_eq!(id(off, "PUT", "/partner"), None);
    assert_eq!(id(off, "GET", "/ctx/zones/z1/extra"), None);
    assert_eq!(id(off, "GET", "//zones/z1"), None, "empty segment must not match a template");
    // every template maps back to its own operation
    for s in [off, kat] {
        for op in s.operations() {
            let concrete: String = op.path.split('/').map(|seg| if seg.starts_with('{') { "x1" } else { seg }).collect::<Vec<_>>().join("/");
            assert_eq!(s.find(&op.method, &concrete), Some(op), "{concrete}");
        }
    }
}

fn fed_request_official() -> Value {
    json!({
        "origOPFederationId": "orig-op-1",
        "origOPCountryCode": "ES",
        "origOPMobileNetworkCodes": {"mcc": "214", "mncs": ["01"]},
        "initialDate": "2024-01-02T03:04:05Z",
        "federationNotificationDest": "https://orig.example.com/cb/partner"
    })
}

#[test]
fn federation_request_golden() {
    let off = Spec::get(Dialect::Official);
    off.validate_request("CreateFederation", &fed_request_official()).unwrap_or_else(|e| panic!("{e}"));
    off.validate_schema("FederationRequestData", &fed_request_official()).unwrap_or_else(|e| panic!("{e}"));

    let mut missing = fed_request_official();
    missing.as_object_mut().map(|m| m.remove("origOPFederationId"));
    let e = off.validate_request("CreateFederation", &missing).expect_err("missing origOPFederationId must fail");
    assert!(e.mentions("origOPFederationId"), "{e}");
    assert!(e.to_string().contains("origOPFederationId"), "{e}");

    // katalis renamed federationNotificationDest -> partnerStatusLink (required)
    let kat = Spec::get(Dialect::Katalis);
    let e = kat.validate_request("CreateFederation", &fed_request_official()).expect_err("katalis requires partnerStatusLink");
    assert!(e.mentions("partnerStatusLink"), "{e}");
    let mut both = fed_request_official();
    both["partnerStatusLink"] = json!("https://orig.example.com/cb/partner");
    kat.validate_request("CreateFederation", &both).unwrap_or_else(|e| panic!("{e}"));
    off.validate_request("CreateFederation", &both).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn bad_date_time_fails() {
    let off = Spec::get(Dialect::Official);
    for bad in ["yesterday", "2024-01-02 03:04:05", "2024-13-02T03:04:05Z", "2024-01-02T03:04:05"] {
        let mut b = fed_request_official();
        b["initialDate"] = json!(bad);
        let e = off.validate_request("CreateFederation", &b).expect_err(bad);
        assert!(e.items.iter().any(|v| v.instance_path == "/initialDate"), "{bad}: {e}");
    }
    let mut b = fed_request_official();
    b["initialDate"] = json!("2024-01-02T03:04:05.123+02:00");
    off.validate_request("CreateFederation", &b).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn uuid_format_is_asserted() {
    let off = Spec::get(Dialect::Official);
    off.validate_schema("FileId", &json!("3fa85f64-5717-4562-b3fc-2c963f66afa6")).unwrap_or_else(|e| panic!("{e}"));
    assert!(off.validate_schema("FileId", &json!("not-a-uuid")).is_err());
}

fn fed_response(with_capabilities: bool) -> Value {
    let mut v = json!({
        "partnerOPFederationId": "partner-op-1",
        "partnerOPCountryCode": "DE",
        "federationContextId": "ctx-1",
        "edgeDiscoveryServiceEndPoint": {"port": 443, "fqdn": "discovery.partner.example.com"},
        "lcmServiceEndPoint": {"port": 443, "ipv4Addresses": ["198.51.100.1"]},
        "offeredAvailabilityZones": [{"zoneId": "zone-1", "geolocation": "52.5200,13.4050", "geographyDetails": "Berlin, urban"}],
        "platformCaps": ["homeRouting"]
    });
    if with_capabilities {
        v["capabilities"] = json!(["homeRouting"]);
    }
    v
}

#[test]
fn federation_response_capabilities_erratum() {
    let off = Spec::get(Dialect::Official);
    let e = off.validate_response("CreateFederation", 200, Some(&fed_response(false))).expect_err("strict requires `capabilities`");
    assert!(e.mentions("capabilities"), "{e}");
    off.validate_response_with(Strictness::Lenient, "CreateFederation", 200, Some(&fed_response(false))).unwrap_or_else(|e| panic!("{e}"));
    // emitting both spellings passes strict
    off.validate_response("CreateFederation", 200, Some(&fed_response(true))).unwrap_or_else(|e| panic!("{e}"));
    off.validate_response("GetFederationDetails", 200, Some(&fed_response(true))).unwrap_or_else(|e| panic!("{e}"));
    // a real error is still caught in lenient mode
    let mut bad = fed_response(false);
    bad["edgeDiscoveryServiceEndPoint"] = json!({"port": 443});
    let e = off.validate_schema_with(Strictness::Lenient, "FederationResponseData", &bad).expect_err("ServiceEndpoint anyOf");
    assert!(e.items.iter().all(|v| v.instance_path.starts_with("/edgeDiscoveryServiceEndPoint")), "{e}");
}

#[test]
fn error_and_empty_responses() {
    let off = Spec::get(Dialect::Official);
    let problem = json!({"title": "Not Found", "detail": "zone z1 unknown", "cause": "ZONE_NOT_FOUND"});
    off.validate_response("GetZoneData", 404, Some(&problem)).unwrap_or_else(|e| panic!("{e}"));
    off.validate_response("GetZoneData", 404, None).expect_err("404 declares application/problem+json content");
    let bad_problem = json!({"title": 404, "invalidParams": []});
    let e = off.validate_response("GetZoneData", 404, Some(&bad_problem)).expect_err("title must be a string, invalidParams minItems 1");
    assert!(e.mentions("/title") && e.mentions("/invalidParams"), "{e}");

    // DeleteFederationDetails: '200: description: Federation removed successfully' — no content, so no body.
    off.validate_response("DeleteFederationDetails", 200, None).unwrap_or_else(|e| panic!("{e}"));
    off.validate_response("DeleteFederationDetails", 200, Some(&json!({}))).expect_err("200 of DeleteFederationDetails declares no content");
    // 204 is not declared; it falls to `default`, which declares no content either.
    off.validate_response("DeleteFederationDetails", 204, None).unwrap_or_else(|e| panic!("{e}"));
    // undeclared error status: `default` has no content, so a ProblemDetails body is a violation.
    off.validate_response("GetZoneData", 418, Some(&problem)).expect_err("default declares no content");

    // 200 GetZoneData with a wrong body
    off.validate_response("GetZoneData", 200, Some(&json!("nope"))).expect_err("ZoneRegisteredData is an object");

    // unknown operation
    let e = off.validate_response("NoSuchOp", 200, None).expect_err("unknown operationId");
    assert!(e.to_string().contains("NoSuchOp"), "{e}");
    // operation without request body
    off.validate_request("GetZoneData", &json!({})).expect_err("GET has no request body");
}

#[test]
fn callbacks_golden() {
    for d in [Dialect::Official, Dialect::Katalis] {
        let s = Spec::get(d);
        // Both spellings: official has `appInstIdentifier`, katalis requires `appInstanceId` + `federationContextId`.
        // Ids use the only shape both files accept (official: `^[A-Za-z][A-Za-z0-9_]{7,63}$`, katalis: `^[a-z0-9]([-a-z0-9]{0,62}[a-z0-9])?$`).
        let body = json!({
            "federationContextId": "ctx1",
            "appId": "app000001",
            "appInstIdentifier": "inst00001",
            "appInstanceId": "inst00001",
            "zoneId": "zone-1",
            "appInstanceInfo": {
                "appInstanceState": "READY",
                "accesspointInfo": [{"interfaceId": "http_port", "accessPoints": {"port": 8080, "ipv4Addresses": ["198.51.100.7"]}}]
            },
            "modificationDate": "2024-01-02T03:04:05Z"
        });
        s.validate_callback("onInstanceStatusEvent", &body).unwrap_or_else(|e| panic!("{e}"));
        let e = s.validate_callback("onInstanceStatusEvent", &json!({})).expect_err("empty callback body");
        let required: &[&str] = if d == Dialect::Official { &["appId", "appInstIdentifier", "zoneId", "appInstanceInfo"] } else { &["federationContextId", "appId", "appInstanceId", "zoneId", "appInstanceInfo"] };
        for f in required {
            assert!(e.mentions(f), "{d:?} {f}: {e}");
        }
        s.validate_callback_response_with(Strictness::Strict, "onInstanceStatusEvent", 204, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.validate_callback("noSuchCallback", &body).is_err());
    }
    let off = Spec::get(Dialect::Official);
    let status = json!({"objectType": "FEDERATION", "operationType": "STATUS", "federationStatus": "AVAILABLE", "modificationDate": "2024-01-02T03:04:05Z"});
    off.validate_callback("onPartnerStatusEvent", &status).unwrap_or_else(|e| panic!("{e}"));
    let mut bad = status.clone();
    bad["federationStatus"] = json!("GREEN");
    let e = off.validate_callback("onPartnerStatusEvent", &bad).expect_err("enum");
    assert!(e.mentions("/federationStatus"), "{e}");
}

fn component_spec() -> Value {
    json!({
        "componentName": "frontend_1",
        "osType": {"architecture": "x86_64", "distribution": "UBUNTU", "version": "OS_VERSION_UBUNTU_2204_LTS", "license": "OS_LICENSE_TYPE_FREE"},
        "InstSetArch": "ISA_X86_64",
        "images": ["3fa85f64-5717-4562-b3fc-2c963f66afa6"],
        "numOfInstances": 1,
        "restartPolicy": "RESTART_POLICY_ALWAYS",
        "computeResourceProfile": {"cpuArchType": "ISA_X86_64", "numCPU": 2, "memory": 2048, "diskStorage": 10}
    })
}

#[test]
fn multipart_upload_artefact() {
    let off = Spec::get(Dialect::Official);
    let mut parts = json!({
        "artefactId": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "appProviderId": "provider_01",
        "artefactName": "artefact_01",
        "artefactVersionInfo": "1.0.0",
        "artefactVirtType": "CONTAINER_TYPE",
        "artefactDescriptorType": "COMPONENTSPEC",
        "repoType": "UPLOAD",
        "artefactFile": [1, 2, 3],
        "componentSpec": [component_spec()]
    });
    // strict: ComponentSpec requires the undeclared `networkResourceProfile`
    let e = off.validate_request("UploadArtefact", &parts).expect_err("strict ComponentSpec erratum");
    assert!(e.mentions("networkResourceProfile"), "{e}");
    off.validate_request_with(Strictness::Lenient, "UploadArtefact", &parts).unwrap_or_else(|e| panic!("{e}"));
    // binary part accepts anything
    parts["artefactFile"] = json!(null);
    off.validate_request_with(Strictness::Lenient, "UploadArtefact", &parts).unwrap_or_else(|e| panic!("{e}"));
    parts["artefactFile"] = json!({"any": "thing"});
    off.validate_request_with(Strictness::Lenient, "UploadArtefact", &parts).unwrap_or_else(|e| panic!("{e}"));
    // a non-binary part is still checked
    parts["artefactVirtType"] = json!("BARE_METAL");
    let e = off.validate_request_with(Strictness::Lenient, "UploadArtefact", &parts).expect_err("enum");
    assert!(e.mentions("/artefactVirtType"), "{e}");
}

#[test]
fn update_application_latency_erratum() {
    for d in [Dialect::Official, Dialect::Katalis] {
        let s = Spec::get(d);
        let body = json!({"appUpdQoSProfile": {"latencyConstraints": "LOW"}});
        s.validate_request("UpdateApplication", &body).expect_err("strict anyOf names latencyConstraint");
        s.validate_request_with(Strictness::Lenient, "UpdateApplication", &body).unwrap_or_else(|e| panic!("{d:?} {e}"));
        // lenient still requires one of the anyOf members
        let none = json!({"appUpdQoSProfile": {"noOfUsersPerAppInst": 3}});
        s.validate_request_with(Strictness::Lenient, "UpdateApplication", &none).expect_err("anyOf still enforced");
    }
}

#[test]
fn every_declared_body_compiles_in_both_modes() {
    // Exercises the compile of every schema pointer; a `Violations` mentioning "compile" would mean a broken engine.
    for d in [Dialect::Official, Dialect::Katalis] {
        let s = Spec::get(d);
        for st in [Strictness::Strict, Strictness::Lenient] {
            for op in s.operations() {
                for status in [200, 202, 204, 400, 404, 500] {
                    if let Err(e) = s.validate_response_with(st, &op.operation_id, status, Some(&json!({}))) {
                        assert!(!e.to_string().contains("compile"), "{e}");
                    }
                }
            }
        }
    }
}

#[test]
fn recorder_tracks_coverage() {
    let spec = Spec::get(Dialect::Official);
    let rec = Recorder::new();
    assert_eq!(rec.missing(spec).len(), 29 + 5);
    let clone = rec.clone();
    let handles: Vec<_> = spec
        .operations()
        .iter()
        .map(|o| o.operation_id.clone())
        .filter(|id| id != "AuthenticateDevice")
        .map(|id| {
            let r = clone.clone();
            std::thread::spawn(move || r.record(&id, 200))
        })
        .collect();
    for h in handles {
        h.join().expect("recorder thread");
    }
    for cb in spec.callbacks() {
        rec.record(&cb, 204);
    }
    rec.record("GetZoneData", 404);
    assert_eq!(rec.missing(spec), vec!["AuthenticateDevice".to_string()]);
    assert_eq!(rec.statuses("GetZoneData"), vec![200, 404]);
    assert_eq!(rec.seen().len(), 28 + 5);
    rec.record("AuthenticateDevice", 200);
    assert!(clone.missing(spec).is_empty());
    // katalis has one more operation
    assert_eq!(clone.missing(Spec::get(Dialect::Katalis)), vec!["DeleteApp".to_string()]);
}
