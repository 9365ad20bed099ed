//! `op-netemu --scenario FILE --listen ADDR`: runs a mobile-network scenario and serves the
//! standard exposure APIs (CAMARA, 3GPP NEF) on `ADDR`. Prints `op-netemu listening on
//! http://HOST:PORT` on stdout once it accepts connections (with `--listen 127.0.0.1:0` the port is
//! chosen by the OS, which is how tests find a free one).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use op_netemu::{Emulator, Scenario};

#[derive(Parser)]
#[command(name = "op-netemu", version, about = "Mobile-network emulator serving CAMARA and 3GPP NEF APIs")]
struct Cli {
    /// Scenario file (YAML): operator, cells, UPFs/DNAIs, devices, paths, events.
    #[arg(long, env = "NETEMU_SCENARIO")]
    scenario: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "NETEMU_LISTEN", default_value = "127.0.0.1:9091")]
    listen: SocketAddr,
    /// Log format on stderr.
    #[arg(long, env = "NETEMU_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logs(&cli.log_format);
    let scenario = Scenario::load(&cli.scenario).with_context(|| format!("scenario {}", cli.scenario.display()))?;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    let addr = listener.local_addr().context("listener has no local address")?;
    let base_url = format!("http://{addr}");
    let emu = Emulator::new(scenario, base_url.clone())?;
    tracing::info!(
        cells = emu.scenario.cells.len(),
        devices = emu.scenario.devices.len(),
        events = emu.scenario.events.len(),
        "scenario loaded"
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "op-netemu listening on {base_url}")?;
    out.flush()?;
    drop(out);
    op_netemu::serve(emu, listener, shutdown_signal()).await.context("server failed")
}
