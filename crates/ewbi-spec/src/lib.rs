//! Dev-only spec conformance for the GSMA OPG federation (E/WBI) API.
//!
//! Tests of other crates use this to check that the JSON bodies they send, receive and call back with
//! conform to the *published* OpenAPI files (vendored under `specs/`, embedded with `include_str!`),
//! instead of to our own reading of them. Validation is done by the `boon` JSON Schema validator
//! (draft 4, the draft OpenAPI 3.0 Schema Objects derive from) against JSON pointers into the whole
//! OpenAPI document, so `$ref`s resolve exactly as written in the file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};

mod errata;
pub use errata::{Erratum, Fix, ERRATA};

/// Server base path of the official file (`servers: {apiRoot}/operatorplatform/federation/v1`); exists so
/// callers strip/prepend it consistently — operation paths in [`Operation::path`] are relative to it.
pub const BASE_PATH: &str = "/operatorplatform/federation/v1";

const OFFICIAL_YAML: &str = include_str!("../specs/official.yaml");
const KATALIS_YAML: &str = include_str!("../specs/katalis.yaml");

/// Which published spec file to validate against; exists because the two files disagree on fields
/// (e.g. `federationNotificationDest` vs `partnerStatusLink`) and operations (DeleteApp).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// GSMA's own file (OPG.04 `FederationApi_v1.3.0.yaml`, via edgexr/edge-cloud-platform).
    Official,
    /// The later editorial revision vendored by neonephos-katalis/opg-ewbi-api.
    Katalis,
}

/// How literally to read the spec; exists because the official file has `required` typos that reject
/// every sensible body (see [`ERRATA`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strictness {
    /// The unpatched file: what our outbound bodies must pass (we emit both spellings where needed).
    #[default]
    Strict,
    /// The file with the [`ERRATA`] entries for its dialect applied: what we accept from peers.
    Lenient,
}

/// One HTTP operation of the spec; exists so tests can map requests to operationIds and enumerate coverage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The spec's `operationId`, e.g. `GetZoneData`.
    pub operation_id: String,
    /// Uppercase HTTP method, e.g. `GET`.
    pub method: String,
    /// Path template relative to [`BASE_PATH`], e.g. `/{federationContextId}/zones/{zoneId}`.
    pub path: String,
}

/// One failed check; exists so a failing test names the offending value (JSON pointer) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the validated body (`""` = the whole body).
    pub instance_path: String,
    /// Human-readable reason, e.g. `missing properties 'origOPFederationId'`.
    pub message: String,
    /// Schema location that failed (URL fragment into the spec document), empty for non-schema checks.
    pub schema_path: String,
}

/// All failures of one validation; exists as the `Err` type so `assert!(r.is_ok(), "{e}")` prints every problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Violations {
    /// What was validated, e.g. `Official/Strict request of CreateFederation`.
    pub context: String,
    /// Each individual failure, leaves of the validator's error tree.
    pub items: Vec<Violation>,
}

impl Violations {
    fn one(context: String, message: String) -> Self {
        Violations { context, items: vec![Violation { instance_path: String::new(), message, schema_path: String::new() }] }
    }

    /// True if some violation is located at `instance_path` or mentions `needle`; exists to let tests assert *why* a body failed.
    pub fn mentions(&self, needle: &str) -> bool {
        self.items.iter().any(|v| v.instance_path == needle || v.message.contains(needle))
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} violation(s)", self.context, self.items.len())?;
        for v in &self.items {
            let at = if v.instance_path.is_empty() { "(root)" } else { v.instance_path.as_str() };
            write!(f, "\n  at {at}: {}", v.message)?;
            if !v.schema_path.is_empty() {
                write!(f, "  [schema {}]", v.schema_path)?;
            }
        }
        Ok(())
    }
}

/// A callback declared under an operation (`callbacks: {name: {expr: {post: ...}}}`).
#[derive(Debug, Clone)]
struct Callback {
    name: String,
    /// Pointer (unescaped form not needed) to the callback operation object.
    op_pointer: String,
}

/// Compiled validators for one (spec, strictness) pair.
struct Engine {
    schemas: boon::Schemas,
    index: HashMap<String, boon::SchemaIndex>,
}

/// One parsed spec file with its compiled validators cached; exists so all tests share one parse and compile.
pub struct Spec {
    dialect: Dialect,
    doc: Value,
    operations: Vec<Operation>,
    /// operationId -> pointer of the operation object (`/paths/~1x/get`).
    op_pointers: HashMap<String, String>,
    callbacks: Vec<Callback>,
    strict: OnceLock<Result<Engine, String>>,
    lenient: OnceLock<Result<Engine, String>>,
}

static OFFICIAL: OnceLock<Spec> = OnceLock::new();
static KATALIS: OnceLock<Spec> = OnceLock::new();

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

impl Spec {
    /// The parsed spec for `d`, parsed once per process; exists so callers never handle parse errors of the embedded files.
    pub fn get(d: Dialect) -> &'static Spec {
        match d {
            Dialect::Official => OFFICIAL.get_or_init(|| Spec::parse(d, OFFICIAL_YAML)),
            Dialect::Katalis => KATALIS.get_or_init(|| Spec::parse(d, KATALIS_YAML)),
        }
    }

    fn parse(dialect: Dialect, text: &str) -> Spec {
        let yaml: serde_yaml::Value = serde_yaml::from_str(text).expect("embedded EWBI spec file must be valid YAML");
        let doc = yaml_to_json(yaml);
        let mut operations = Vec::new();
        let mut op_pointers = HashMap::new();
        let mut callbacks: Vec<Callback> = Vec::new();
        let paths = doc.get("paths").and_then(Value::as_object).expect("embedded EWBI spec file must have `paths`");
        for (path, item) in paths {
            let Some(item) = item.as_object() else { continue };
            for m in METHODS {
                let Some(op) = item.get(m) else { continue };
                let op_ptr = format!("/paths/{}/{m}", escape_token(path));
                if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                    operations.push(Operation { operation_id: id.to_string(), method: m.to_uppercase(), path: path.clone() });
                    op_pointers.insert(id.to_string(), op_ptr.clone());
                }
                for (name, cb) in op.get("callbacks").and_then(Value::as_object).into_iter().flatten() {
                    for (expr, cb_item) in cb.as_object().into_iter().flatten() {
                        for cm in METHODS {
                            if cb_item.get(cm).is_some() && !callbacks.iter().any(|c| &c.name == name) {
                                callbacks.push(Callback { name: name.clone(), op_pointer: format!("{op_ptr}/callbacks/{}/{}/{cm}", escape_token(name), escape_token(expr)) });
                            }
                        }
                    }
                }
            }
        }
        Spec { dialect, doc, operations, op_pointers, callbacks, strict: OnceLock::new(), lenient: OnceLock::new() }
    }

    /// Which file this is; exists for messages and errata selection.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The whole document as JSON; exists for ad-hoc checks the typed API does not cover (e.g. errata pointers).
    pub fn document(&self) -> &Value {
        &self.doc
    }

    /// All operations of the file; exists for coverage checks and routing tables in tests.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// Names of all callbacks (e.g. `onPartnerStatusEvent`); exists for coverage checks.
    pub fn callbacks(&self) -> Vec<String> {
        self.callbacks.iter().map(|c| c.name.clone()).collect()
    }

    /// The operation a concrete request path maps to; exists so a test harness can classify traffic it observed.
    ///
    /// `path` is relative to [`BASE_PATH`] (a leading `BASE_PATH` and any `?query` are tolerated and stripped).
    /// Templates match segment by segment (`{x}` matches one non-empty segment); when several match,
    /// the one with the most literal segments wins.
    pub fn find(&self, method: &str, path: &str) -> Option<&Operation> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let path = path.strip_prefix(BASE_PATH).filter(|p| p.is_empty() || p.starts_with('/')).unwrap_or(path);
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut best: Option<(usize, &Operation)> = None;
        for op in self.operations.iter().filter(|o| o.method.eq_ignore_ascii_case(method)) {
            let tsegs: Vec<&str> = op.path.trim_matches('/').split('/').collect();
            if tsegs.len() != segs.len() {
                continue;
            }
            let mut literals = 0;
            let ok = tsegs.iter().zip(&segs).all(|(t, s)| {
                if t.starts_with('{') && t.ends_with('}') {
                    !s.is_empty()
                } else {
                    literals += 1;
                    t == s
                }
            });
            if ok && best.is_none_or(|(l, _)| literals > l) {
                best = Some((literals, op));
            }
        }
        best.map(|(_, o)| o)
    }

    /// Strict check of a request body (`application/json`, or the parts object of a `multipart/form-data` body).
    pub fn validate_request(&self, operation_id: &str, body: &Value) -> Result<(), Violations> {
        self.validate_request_with(Strictness::Strict, operation_id, body)
    }

    /// Strict check of a response; see [`Spec::validate_response_with`].
    pub fn validate_response(&self, operation_id: &str, status: u16, body: Option<&Value>) -> Result<(), Violations> {
        self.validate_response_with(Strictness::Strict, operation_id, status, body)
    }

    /// Strict check of a callback request body (e.g. `onInstanceStatusEvent`).
    pub fn validate_callback(&self, callback: &str, body: &Value) -> Result<(), Violations> {
        self.validate_callback_with(Strictness::Strict, callback, body)
    }

    /// Strict check of a value against `components/schemas/<schema_name>`.
    pub fn validate_schema(&self, schema_name: &str, value: &Value) -> Result<(), Violations> {
        self.validate_schema_with(Strictness::Strict, schema_name, value)
    }

    /// Request body check at a chosen strictness; exists so inbound handlers can be tested leniently.
    ///
    /// For `multipart/form-data` bodies pass a JSON object of the parts with non-binary parts already decoded;
    /// binary parts (`type: string, format: binary`) accept any value.
    pub fn validate_request_with(&self, strictness: Strictness, operation_id: &str, body: &Value) -> Result<(), Violations> {
        let ctx = self.ctx(strictness, &format!("request of {operation_id}"));
        let op_ptr = self.op_pointer(operation_id).ok_or_else(|| Violations::one(ctx.clone(), format!("unknown operationId {operation_id:?}")))?;
        let rb_ptr = format!("{op_ptr}/requestBody");
        let Some((rb_ptr, rb)) = self.deref(&rb_ptr) else {
            return Err(Violations::one(ctx, format!("operation {operation_id} declares no request body")));
        };
        let Some((schema_ptr, _)) = content_schema(&rb_ptr, rb) else {
            return Err(Violations::one(ctx, format!("request body of {operation_id} declares no schema")));
        };
        self.run(strictness, &schema_ptr, body, ctx)
    }

    /// Response check at a chosen strictness; exists so both our responses and peers' responses can be checked.
    ///
    /// The response object is `responses[status]`, else `responses[<n>XX]`, else `responses.default`; none of them
    /// is a violation. `$ref`s to `components/responses` are followed. If the response declares no content, `body`
    /// must be `None`; if it declares content, `body` must be `Some` and valid against the (first JSON) media type's schema.
    pub fn validate_response_with(&self, strictness: Strictness, operation_id: &str, status: u16, body: Option<&Value>) -> Result<(), Violations> {
        let ctx = self.ctx(strictness, &format!("{status} response of {operation_id}"));
        let op_ptr = self.op_pointer(operation_id).ok_or_else(|| Violations::one(ctx.clone(), format!("unknown operationId {operation_id:?}")))?;
        self.check_response(strictness, &op_ptr, status, body, ctx)
    }

    /// Callback body check at a chosen strictness; exists because callbacks are the inbound path of the originating OP.
    pub fn validate_callback_with(&self, strictness: Strictness, callback: &str, body: &Value) -> Result<(), Violations> {
        let ctx = self.ctx(strictness, &format!("callback {callback}"));
        let cb = self.callbacks.iter().find(|c| c.name == callback).ok_or_else(|| Violations::one(ctx.clone(), format!("unknown callback {callback:?}")))?;
        let Some((rb_ptr, rb)) = self.deref(&format!("{}/requestBody", cb.op_pointer)) else {
            return Err(Violations::one(ctx, format!("callback {callback} declares no request body")));
        };
        let Some((schema_ptr, _)) = content_schema(&rb_ptr, rb) else {
            return Err(Violations::one(ctx, format!("callback {callback} declares no schema")));
        };
        self.run(strictness, &schema_ptr, body, ctx)
    }

    /// Check of the response *to* a callback (e.g. the 204 an originating OP returns); exists for receiver-side tests.
    pub fn validate_callback_response_with(&self, strictness: Strictness, callback: &str, status: u16, body: Option<&Value>) -> Result<(), Violations> {
        let ctx = self.ctx(strictness, &format!("{status} response to callback {callback}"));
        let cb = self.callbacks.iter().find(|c| c.name == callback).ok_or_else(|| Violations::one(ctx.clone(), format!("unknown callback {callback:?}")))?;
        let op_ptr = cb.op_pointer.clone();
        self.check_response(strictness, &op_ptr, status, body, ctx)
    }

    /// Component schema check at a chosen strictness; exists for checking embedded objects in isolation.
    pub fn validate_schema_with(&self, strictness: Strictness, schema_name: &str, value: &Value) -> Result<(), Violations> {
        let ctx = self.ctx(strictness, &format!("schema {schema_name}"));
        let ptr = format!("/components/schemas/{}", escape_token(schema_name));
        if pointer(&self.doc, &ptr).is_none() {
            return Err(Violations::one(ctx, format!("unknown schema {schema_name:?}")));
        }
        self.run(strictness, &ptr, value, ctx)
    }

    fn ctx(&self, strictness: Strictness, what: &str) -> String {
        format!("{:?}/{:?} {what}", self.dialect, strictness)
    }

    fn op_pointer(&self, operation_id: &str) -> Option<String> {
        self.op_pointers.get(operation_id).cloned()
    }

    /// Looks up `ptr` and follows local `$ref`s (bounded), returning the final pointer and object.
    fn deref(&self, ptr: &str) -> Option<(String, &Value)> {
        let mut ptr = ptr.to_string();
        for _ in 0..16 {
            let v = pointer(&self.doc, &ptr)?;
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => ptr = r.strip_prefix('#')?.to_string(),
                None => return Some((ptr, v)),
            }
        }
        None
    }

    fn check_response(&self, strictness: Strictness, op_ptr: &str, status: u16, body: Option<&Value>, ctx: String) -> Result<(), Violations> {
        let exact = format!("{op_ptr}/responses/{status}");
        let range = format!("{op_ptr}/responses/{}XX", status / 100);
        let default = format!("{op_ptr}/responses/default");
        let Some((resp_ptr, resp)) = [exact, range, default].iter().find_map(|p| self.deref(p)) else {
            return Err(Violations::one(ctx, format!("status {status} is not declared and there is no `default` response")));
        };
        match (content_schema(&resp_ptr, resp), body) {
            (None, None) => Ok(()),
            (None, Some(b)) => Err(Violations::one(ctx, format!("response {resp_ptr} declares no content, but a body was given: {b}"))),
            (Some((_, mt)), None) => Err(Violations::one(ctx, format!("response {resp_ptr} declares content {mt:?}, but no body was given"))),
            (Some((schema_ptr, _)), Some(b)) => self.run(strictness, &schema_ptr, b, ctx),
        }
    }

    fn engine(&self, strictness: Strictness) -> &Result<Engine, String> {
        let cell = match strictness {
            Strictness::Strict => &self.strict,
            Strictness::Lenient => &self.lenient,
        };
        cell.get_or_init(|| self.build_engine(strictness))
    }

    /// Compiles every schema location the public API can ask for, once, into one `boon::Schemas`.
    fn build_engine(&self, strictness: Strictness) -> Result<Engine, String> {
        let mut doc = self.doc.clone();
        if strictness == Strictness::Lenient {
            errata::apply(self.dialect, &mut doc)?;
        }
        openapi_to_draft4(&mut doc);
        let url = format!("urn:op-ewbi-spec:{:?}:{:?}", self.dialect, strictness).to_lowercase();
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V4);
        compiler.enable_format_assertions();
        compiler.add_resource(&url, doc).map_err(|e| format!("{e:#}"))?;
        let mut schemas = boon::Schemas::new();
        let mut index = HashMap::new();
        for ptr in self.schema_pointers() {
            let loc = format!("{url}#{}", percent_encode(&ptr));
            let idx = compiler.compile(&loc, &mut schemas).map_err(|e| format!("compiling {loc}: {e:#}"))?;
            index.insert(ptr, idx);
        }
        Ok(Engine { schemas, index })
    }

    /// Every schema pointer reachable from operations, callbacks, and components/schemas.
    fn schema_pointers(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        let mut op_ptrs: Vec<String> = self.op_pointers.values().cloned().collect();
        op_ptrs.extend(self.callbacks.iter().map(|c| c.op_pointer.clone()));
        for op_ptr in &op_ptrs {
            if let Some((p, rb)) = self.deref(&format!("{op_ptr}/requestBody")) {
                out.extend(content_schema(&p, rb).map(|(s, _)| s));
            }
            let responses = format!("{op_ptr}/responses");
            for code in pointer(&self.doc, &responses).and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
                if let Some((p, r)) = self.deref(&format!("{responses}/{}", escape_token(code))) {
                    out.extend(content_schema(&p, r).map(|(s, _)| s));
                }
            }
        }
        for name in self.doc.pointer("/components/schemas").and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
            out.insert(format!("/components/schemas/{}", escape_token(name)));
        }
        out.into_iter().collect()
    }

    fn run(&self, strictness: Strictness, schema_ptr: &str, value: &Value, ctx: String) -> Result<(), Violations> {
        let engine = match self.engine(strictness) {
            Ok(e) => e,
            Err(e) => return Err(Violations::one(ctx, format!("spec failed to compile: {e}"))),
        };
        let Some(&idx) = engine.index.get(schema_ptr) else {
            return Err(Violations::one(ctx, format!("schema {schema_ptr} was not compiled (internal error)")));
        };
        match engine.schemas.validate(value, idx) {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut items = Vec::new();
                collect_leaves(&e, &mut items);
                Err(Violations { context: ctx, items })
            }
        }
    }
}

/// Picks the schema of a request body / response object: `application/json` first, then any `*json`, then the first one.
fn content_schema<'a>(obj_ptr: &str, obj: &'a Value) -> Option<(String, &'a str)> {
    let content = obj.get("content")?.as_object()?;
    let mt = content
        .keys()
        .find(|k| k.as_str() == "application/json")
        .or_else(|| content.keys().find(|k| k.ends_with("json")))
        .or_else(|| content.keys().next())?;
    content.get(mt)?.get("schema")?;
    Some((format!("{obj_ptr}/content/{}/schema", escape_token(mt)), mt.as_str()))
}

fn collect_leaves(e: &boon::ValidationError<'_, '_>, out: &mut Vec<Violation>) {
    if e.causes.is_empty() {
        let schema_path = e.schema_url.split_once('#').map(|(_, f)| f).unwrap_or(e.schema_url).to_string();
        out.push(Violation { instance_path: e.instance_location.to_string(), message: e.kind.to_string(), schema_path });
    } else {
        for c in &e.causes {
            collect_leaves(c, out);
        }
    }
}

/// JSON pointer lookup that tolerates the empty pointer.
fn pointer<'a>(doc: &'a Value, ptr: &str) -> Option<&'a Value> {
    doc.pointer(ptr)
}

/// RFC 6901 escaping of one reference token.
fn escape_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Percent-encodes a pointer for use as a URL fragment (boon percent-decodes fragments).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/~-_.".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Converts YAML to JSON, stringifying non-string keys (e.g. unquoted `200:` response codes).
fn yaml_to_json(y: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".to_string(),
                    other => serde_yaml::to_string(&other).unwrap_or_default().trim().to_string(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

/// Rewrites OpenAPI 3.0 Schema Object idioms draft 4 does not know, everywhere in the document:
/// `{type: string, format: binary}` becomes `{}` (binary multipart parts accept anything), and
/// `nullable: true` adds `"null"` to `type` (and to `enum` if present).
fn openapi_to_draft4(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.get("type").and_then(Value::as_str) == Some("string") && m.get("format").and_then(Value::as_str) == Some("binary") {
                m.remove("type");
                m.remove("format");
            }
            if m.get("nullable").and_then(Value::as_bool) == Some(true) {
                if let Some(Value::String(t)) = m.get("type").cloned() {
                    m.insert("type".into(), Value::Array(vec![Value::String(t), Value::String("null".into())]));
                }
                if let Some(Value::Array(e)) = m.get_mut("enum") {
                    if !e.contains(&Value::Null) {
                        e.push(Value::Null);
                    }
                }
            }
            for child in m.values_mut() {
                openapi_to_draft4(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(openapi_to_draft4),
        _ => {}
    }
}

/// Thread-safe record of which operations/callbacks a test exercised; exists so an end-to-end test can
/// assert it covered the whole spec (`missing(spec).is_empty()`).
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<BTreeMap<String, Vec<u16>>>>,
}

impl Recorder {
    /// An empty recorder; exists as the obvious constructor (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that `what` (an operationId or callback name) was exercised and answered with `status`.
    pub fn record(&self, what: &str, status: u16) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.entry(what.to_string()).or_default().push(status);
    }

    /// Everything recorded so far.
    pub fn seen(&self) -> BTreeSet<String> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// Statuses recorded for `what`, in order; exists to assert that error paths were exercised too.
    pub fn statuses(&self, what: &str) -> Vec<u16> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).get(what).cloned().unwrap_or_default()
    }

    /// Operations and callbacks of `spec` never recorded (operations first, each in spec order).
    pub fn missing(&self, spec: &Spec) -> Vec<String> {
        let seen = self.seen();
        spec.operations().iter().map(|o| o.operation_id.clone()).chain(spec.callbacks()).filter(|n| !seen.contains(n)).collect()
    }
}
