//! The connectivity test endpoint every cloudlet runs (OPG.02 UNI: the device may probe the
//! candidate edges before it confirms one). The cloudlet controller keeps one running per
//! cloudlet; discovery answers carry its URL next to each offer.
//!
//! - `GET /echo` answers 200 `ok` at once: round-trip time;
//! - `GET /download?bytes=N` answers N bytes (default 65,536, at most 8 MiB): downlink throughput;
//! - `POST /upload` reads the body (at most 1 MiB) and answers its length: uplink throughput;
//! - `GET /healthz` answers 200 `ok`; anything else is 404, a bad size 400.

use op_sample_app::{Request, Response, MAX_BODY};

/// Largest download served.
const MAX_DOWNLOAD: usize = 8 << 20;
/// Download size when none is asked.
const DEFAULT_DOWNLOAD: usize = 64 << 10;

fn route(req: &Request) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/echo" | "/healthz") => Response::new("200 OK", "ok\n"),
        ("GET", "/download") => match req.param("bytes").map(str::parse::<usize>) {
            None => Response::bytes("200 OK", vec![0; DEFAULT_DOWNLOAD]),
            Some(Ok(n)) if n <= MAX_DOWNLOAD => Response::bytes("200 OK", vec![0; n]),
            Some(_) => Response::new("400 Bad Request", format!("bytes: give a whole number up to {MAX_DOWNLOAD}\n")),
        },
        ("POST", "/upload") => Response::new("200 OK", format!("{}\n", req.body.len().min(MAX_BODY as usize))),
        _ => Response::not_found(),
    }
}

fn main() {
    op_sample_app::run("op-probe", route);
}
