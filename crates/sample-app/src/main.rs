//! The platform's sample app, on the tiny std-only server of this crate's library:
//!
//! - `GET /` answers 200 with a line naming the instance (`OP_INSTANCE`) and the host name;
//! - `GET /healthz` answers 200 `ok`;
//! - `GET /env/NAME` answers 200 with the value of the environment variable `NAME`, 404 if unset;
//! - anything else (another path or method) is 404.

use op_sample_app::{Request, Response};

/// The host name: what the runtime set (`HOSTNAME`), else the kernel's, else `unknown`.
fn hostname() -> String {
    if let Ok(h) = std::env::var("HOSTNAME") {
        if !h.trim().is_empty() {
            return h.trim().to_string();
        }
    }
    for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(h) = std::fs::read_to_string(path) {
            if !h.trim().is_empty() {
                return h.trim().to_string();
            }
        }
    }
    "unknown".into()
}

fn route(req: &Request) -> Response {
    if req.method != "GET" {
        return Response::not_found();
    }
    match req.path.as_str() {
        "/" => {
            let inst = std::env::var("OP_INSTANCE").unwrap_or_else(|_| "unknown".into());
            let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello".into());
            Response::new("200 OK", format!("{greeting} from op-sample-app, instance {inst}, host {}\n", hostname()))
        }
        "/healthz" => Response::new("200 OK", "ok\n"),
        p => match p.strip_prefix("/env/") {
            Some(name) => op_sample_app::env_var(name),
            None => Response::not_found(),
        },
    }
}

fn main() {
    op_sample_app::run("op-sample-app", route);
}
