//! The platform's sample app: a tiny HTTP/1.1 server on std only, so it builds into a static
//! binary and a `FROM scratch` image with nothing to pull. `GET /` names the instance,
//! `GET /healthz` answers ok, `GET /env/NAME` returns an environment variable.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Longest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

fn respond(stream: &mut TcpStream, status: &str, body: &str, keep_alive: bool) -> std::io::Result<()> {
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

fn route(path: &str) -> (&'static str, String) {
    let path = path.split('?').next().unwrap_or("/");
    match path {
        "/" => {
            let inst = std::env::var("OP_INSTANCE").unwrap_or_else(|_| "unknown".into());
            let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello".into());
            ("200 OK", format!("{greeting} from op-sample-app, instance {inst}\n"))
        }
        "/healthz" => ("200 OK", "ok\n".into()),
        p => match p.strip_prefix("/env/") {
            Some(name) => match std::env::var(name) {
                Ok(v) => ("200 OK", format!("{v}\n")),
                Err(_) => ("404 Not Found", "no such variable\n".into()),
            },
            None => ("404 Not Found", "not found\n".into()),
        },
    }
}

fn serve(stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let (method, path, version) = (parts.next(), parts.next(), parts.next());
        let (mut content_length, mut keep_alive) = (0usize, version == Some("HTTP/1.1"));
        let mut head_len = request_line.len();
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line)?;
            head_len += n;
            if n == 0 || head_len > MAX_HEAD {
                return respond(&mut writer, "400 Bad Request", "bad request\n", false);
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
                match k.as_str() {
                    "content-length" => content_length = v.parse().unwrap_or(0).min(1 << 20),
                    "connection" if v == "close" => keep_alive = false,
                    "connection" if v == "keep-alive" => keep_alive = true,
                    _ => {}
                }
            }
        }
        std::io::copy(&mut (&mut reader).take(content_length as u64), &mut std::io::sink())?;
        let (status, body) = match (method, path) {
            (Some("GET" | "HEAD"), Some(p)) => route(p),
            (Some(_), Some(_)) => ("405 Method Not Allowed", "only GET\n".into()),
            _ => return respond(&mut writer, "400 Bad Request", "bad request\n", false),
        };
        respond(&mut writer, status, &body, keep_alive)?;
        if !keep_alive {
            return Ok(());
        }
    }
}

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(status: i32) -> !;
}

/// SIGTERM ends the app at once. As PID 1 in its container it would otherwise ignore the
/// signal, and every stop would wait for the runtime's SIGKILL.
extern "C" fn on_term(_: i32) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

fn main() {
    const SIGTERM: i32 = 15;
    // SAFETY: installs a handler that only calls an async-signal-safe function.
    unsafe {
        signal(SIGTERM, on_term);
    }
    let port = std::env::var("PORT").ok().and_then(|p| p.parse::<u16>().ok()).unwrap_or(8080);
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    println!("op-sample-app listening on 0.0.0.0:{port}");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = serve(stream);
        });
    }
}
