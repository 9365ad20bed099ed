//! A cluster's egress gateway (see `op_sample_app::egress`): relays HTTP proxy requests from the
//! cluster's members to the destinations its policy lets out, on `0.0.0.0:$PORT` (default
//! 3128). The cluster controller runs one per cluster that lets anything out, with the policy in
//! `OP_EGRESS` and the cluster's network in `OP_EGRESS_INTERNAL`.

use op_sample_app::egress::{handle, Policy};
use op_sample_app::{exit_on_sigterm, log};

fn main() {
    exit_on_sigterm();
    let policy = match Policy::from_env() {
        Ok(p) => std::sync::Arc::new(p),
        Err(e) => {
            log(&format!("op-egress: {e}"));
            std::process::exit(2);
        }
    };
    let listener = op_sample_app::listen(op_types::cluster::EGRESS_GATEWAY_PORT);
    match listener.local_addr() {
        Ok(a) => log(&format!("op-egress listening on {a}")),
        Err(_) => log("op-egress listening"),
    }
    for stream in listener.incoming().flatten() {
        let policy = policy.clone();
        let _ = std::thread::Builder::new().name("conn".into()).spawn(move || {
            let _ = handle(stream, &policy, log);
        });
    }
}
