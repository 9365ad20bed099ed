//! A tiny HTTP/1.1 server on std only, shared by the platform's small edge binaries (the sample
//! app, the stateful counter app and the cloudlet connectivity probe), so each builds into a
//! static binary and a `FROM scratch` image with nothing to pull; [`client`] is its calling
//! side.
//!
//! It listens on `0.0.0.0:$PORT` (default 8080), one thread per connection, with keep-alive and
//! pipelining so a benchmark can reuse connections. SIGTERM (or any kill) ends the process at
//! once: there is nothing to drain or save. Bad input gets a 4xx answer and a closed
//! connection, never a panic. `HEAD` is answered like `GET`, without body.

pub mod client;
pub mod egress;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Longest request head (request line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted.
pub const MAX_BODY: u64 = 1 << 20;
/// How long an idle keep-alive connection stays open.
const IDLE: Duration = Duration::from_secs(30);

/// A request as a route sees it.
pub struct Request {
    /// `GET`, `POST`, ... (`HEAD` arrives as `GET`).
    pub method: String,
    /// Path without query or fragment.
    pub path: String,
    /// The query string, without `?` (empty when none).
    pub query: String,
    /// The body (at most [`MAX_BODY`] bytes).
    pub body: Vec<u8>,
    /// Header fields in arrival order: names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The request was a `HEAD` (its `method` says `GET`): a route with side effects should
    /// not perform them.
    pub head: bool,
}

impl Request {
    /// The value of query parameter `name`, if given (as sent: not percent-decoded).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The value of the first header field `name` (case-insensitive), if given.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A response: status line, content type, body, and whether to close the connection after it.
pub struct Response {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    close: bool,
}

impl Response {
    /// A plain-text response.
    pub fn new(status: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self { status, content_type: "text/plain; charset=utf-8", body: body.into(), close: false }
    }

    /// A binary response (`application/octet-stream`).
    pub fn bytes(status: &'static str, body: Vec<u8>) -> Self {
        Self { status, content_type: "application/octet-stream", body, close: false }
    }

    /// A JSON response (`application/json`).
    pub fn json(status: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self { status, content_type: "application/json", body: body.into(), close: false }
    }

    /// `404 Not Found`.
    pub fn not_found() -> Self {
        Self::new("404 Not Found", "not found\n")
    }

    fn fatal(status: &'static str, body: &str) -> Self {
        Self { close: true, ..Self::new(status, body) }
    }
}

/// Whether `name` can be an environment variable name: `std::env::var` must never see an
/// empty name or one with `=` or NUL.
fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// `GET /env/NAME` of the sample apps (tests read a container's environment through it): 200
/// with the value of the environment variable `name` and a newline, 404 if unset or not a
/// variable name.
pub fn env_var(name: &str) -> Response {
    if !valid_env_name(name) {
        return Response::new("404 Not Found", "no such variable\n");
    }
    match std::env::var(name) {
        Ok(v) => Response::new("200 OK", format!("{v}\n")),
        Err(_) => Response::new("404 Not Found", "no such variable\n"),
    }
}

/// Writes the response in one write: head and body split over two small writes would meet
/// Nagle's algorithm and delayed ACKs on keep-alive connections and cost ~40ms each.
fn respond(stream: &mut TcpStream, r: &Response, keep_alive: bool, head_only: bool) -> std::io::Result<()> {
    let conn = if keep_alive && !r.close { "keep-alive" } else { "close" };
    // 204 and 304 carry neither a body nor a Content-Length (RFC 9110 8.6).
    let bodiless = r.status.starts_with("204") || r.status.starts_with("304");
    let mut out = if bodiless {
        format!("HTTP/1.1 {}\r\nConnection: {conn}\r\n\r\n", r.status)
    } else {
        format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n",
            r.status,
            r.content_type,
            r.body.len()
        )
    }
    .into_bytes();
    if !head_only && !bodiless {
        out.extend_from_slice(&r.body);
    }
    stream.write_all(&out)?;
    stream.flush()
}

/// Reads one line of the head, at most `limit` bytes; `None` at end of stream, `Err` of
/// `InvalidData` when the line is too long.
fn read_line(reader: &mut BufReader<TcpStream>, limit: usize) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = reader.by_ref().take(limit as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if n > limit {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "request head too long"));
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// One parsed request head.
struct Head {
    method: String,
    target: String,
    keep_alive: bool,
    content_length: u64,
    headers: Vec<(String, String)>,
}

/// Reads a request head. `Ok(None)`: the client closed the connection between requests.
fn read_head(reader: &mut BufReader<TcpStream>) -> Result<Option<Head>, Response> {
    let too_long = || Response::fatal("431 Request Header Fields Too Large", "request head too long\n");
    let bad = || Response::fatal("400 Bad Request", "bad request\n");
    let mut used = 0usize;
    // Tolerate empty lines before a request line (RFC 9112 2.2).
    let request_line = loop {
        match read_line(reader, MAX_HEAD - used) {
            Ok(None) => return Ok(None),
            Ok(Some(l)) if l.trim().is_empty() => {
                used += l.len();
                if used >= MAX_HEAD {
                    return Err(too_long());
                }
            }
            Ok(Some(l)) => break l,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(too_long()),
            Err(_) => return Ok(None),
        }
    };
    used += request_line.len();
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), version, None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let mut keep_alive = match version {
        Some("HTTP/1.1") => true,
        Some("HTTP/1.0") | None => false,
        Some(v) if v.starts_with("HTTP/") => false,
        Some(_) => return Err(bad()),
    };
    let mut content_length = 0u64;
    let mut headers = Vec::new();
    loop {
        let line = match read_line(reader, MAX_HEAD.saturating_sub(used)) {
            Ok(Some(l)) => l,
            Ok(None) => return Err(bad()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(too_long()),
            Err(_) => return Ok(None),
        };
        used += line.len();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((k, raw)) = line.split_once(':') else { return Err(bad()) };
        let (k, v) = (k.trim().to_ascii_lowercase(), raw.trim().to_ascii_lowercase());
        headers.push((k.clone(), raw.trim().to_string()));
        match k.as_str() {
            "content-length" => match v.parse::<u64>() {
                Ok(n) if n <= MAX_BODY => content_length = n,
                Ok(_) => return Err(Response::fatal("413 Content Too Large", "body too large\n")),
                Err(_) => return Err(bad()),
            },
            "transfer-encoding" => {
                return Err(Response::fatal("501 Not Implemented", "transfer-encoding not supported\n"))
            }
            "connection" => {
                for token in v.split(',').map(str::trim) {
                    match token {
                        "close" => keep_alive = false,
                        "keep-alive" => keep_alive = true,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Some(Head { method: method.to_string(), target: target.to_string(), keep_alive, content_length, headers }))
}

fn serve_connection<F: Fn(&Request) -> Response>(stream: TcpStream, route: &F) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    stream.set_write_timeout(Some(IDLE))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let head = match read_head(&mut reader) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()),
            Err(r) => return respond(&mut writer, &r, false, false),
        };
        // Read the whole body, so the next request on this connection starts where it should.
        let mut body = Vec::new();
        let read = reader.by_ref().take(head.content_length).read_to_end(&mut body)?;
        if (read as u64) < head.content_length {
            return Ok(());
        }
        let head_only = head.method == "HEAD";
        let target = head.target.split('#').next().unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let req = Request {
            method: if head_only { "GET".into() } else { head.method },
            path: path.to_string(),
            query: query.to_string(),
            body,
            headers: head.headers,
            head: head_only,
        };
        let r = route(&req);
        respond(&mut writer, &r, head.keep_alive, head_only)?;
        if !head.keep_alive || r.close {
            return Ok(());
        }
    }
}

/// Prints a line; a closed stdout is not a reason to stop serving.
pub fn log(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(status: i32) -> !;
}

/// SIGTERM ends the process at once. As PID 1 in its container it would otherwise ignore the
/// signal, and every stop would wait for the runtime's SIGKILL.
extern "C" fn on_term(_: i32) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

/// Makes SIGTERM end the process at once (see [`run`]).
pub fn exit_on_sigterm() {
    const SIGTERM: i32 = 15;
    // SAFETY: installs a handler that only calls an async-signal-safe function.
    unsafe {
        signal(SIGTERM, on_term);
    }
}

/// Listens on `0.0.0.0:$PORT` (default `default`; `0`: any free port); exits the process when
/// it cannot.
pub fn listen(default: u16) -> TcpListener {
    let port = match std::env::var("PORT") {
        Ok(p) => match p.trim().parse::<u16>() {
            Ok(p) => p,
            Err(_) => {
                log(&format!("PORT '{p}' is not a port number; using {default}"));
                default
            }
        },
        Err(_) => default,
    };
    match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    }
}

/// Serves `route` on `listener` until the process ends, one thread per connection; first
/// prints `<name> listening on <address>` (the bound port, also when asked for port 0), the
/// line scripts and tests wait for.
pub fn serve<F>(name: &str, listener: TcpListener, route: F)
where
    F: Fn(&Request) -> Response + Send + Sync + 'static,
{
    match listener.local_addr() {
        Ok(a) => log(&format!("{name} listening on {a}")),
        Err(_) => log(&format!("{name} listening")),
    }
    let route = std::sync::Arc::new(route);
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let route = route.clone();
                let spawned = std::thread::Builder::new().name("conn".into()).spawn(move || {
                    let _ = serve_connection(stream, &*route);
                });
                if spawned.is_err() {
                    // Out of threads: this connection is dropped, the next may fare better.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            // Out of file descriptors, or the connection reset before accept: back off briefly.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Serves `route` on `0.0.0.0:$PORT` (default 8080) until killed, SIGTERM ending the process at
/// once; `name` goes in the startup line (`<name> listening on ...`) that scripts and tests
/// wait for.
pub fn run(name: &str, route: fn(&Request) -> Response) {
    exit_on_sigterm();
    serve(name, listen(8080), route);
}
