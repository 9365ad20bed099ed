//! `opctl instance logs --follow`, `opctl instance exec`, `opctl instance debug`, `opctl events`:
//! looking into what runs.

use std::io::Write;

use anyhow::{anyhow, Result};
use futures::StreamExt;
use op_client::exec::ExecEvent;
use op_client::Method;
use op_types::observe::{Event, InstanceDebug, InstanceUsage, UsageTotals, ZoneQoe};
use op_types::Uid;
use tokio::io::AsyncReadExt;

use crate::output::{print, table};
use crate::Ctx;

/// Prints an instance's output as it is written, until its container stops or Ctrl-C.
pub async fn follow_logs(ctx: &Ctx, id: Uid, tail: usize) -> Result<()> {
    let mut stream = Box::pin(ctx.client.follow_logs(id, tail).await?);
    let mut out = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?)?;
        out.flush()?;
    }
    Ok(())
}

/// The local terminal in raw mode while a `--tty` session runs: keys reach the remote
/// terminal as typed (Ctrl-C interrupts the remote command, not opctl; arrows and tab reach
/// the remote shell), and the terminal is restored however the session ends.
struct RawMode(bool);

impl RawMode {
    fn enter(tty: bool) -> Self {
        use std::io::IsTerminal;
        Self(tty && std::io::stdin().is_terminal() && crossterm::terminal::enable_raw_mode().is_ok())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if self.0 {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

/// Runs `cmd` in the instance with this terminal's input and output; exits with its code.
pub async fn exec(ctx: &Ctx, id: Uid, cmd: Vec<String>, tty: bool) -> Result<()> {
    let (mut input, mut output) = ctx.client.exec(id, &cmd, tty).await?.split();
    let raw = RawMode::enter(tty);
    // Local input goes to the process until end of file; its output comes back meanwhile.
    let feed = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 8192];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if input.write(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = input.close_stdin().await;
    });
    let code = loop {
        match output.next().await? {
            Some(ExecEvent::Stdout(b)) => {
                let mut o = std::io::stdout();
                o.write_all(&b)?;
                o.flush()?;
            }
            Some(ExecEvent::Stderr(b)) => std::io::stderr().write_all(&b)?,
            Some(ExecEvent::Exit(code)) => break code,
            None => return Err(anyhow!("the platform closed the session before the command ended")),
        }
    };
    feed.abort();
    // Before exiting (which runs no destructor): the terminal back as it was.
    drop(raw);
    match code {
        // Exit now: the read of a terminal's input blocks a thread the runtime would wait for
        // at shutdown until the next key press.
        Some(c) => {
            std::io::stdout().flush()?;
            std::process::exit(i32::try_from(c).unwrap_or(1))
        }
        None => Err(anyhow!("the command ended; the runtime did not say with which exit code")),
    }
}

/// Prints an instance's debug view.
pub async fn debug(ctx: &Ctx, id: Uid) -> Result<()> {
    let d: InstanceDebug = ctx.client.debug(id).await?;
    print(ctx.out, &d, || {
        let mut t = table(&["", ""]);
        t.add_row(vec!["instance".to_string(), format!("{} ({})", d.name, d.app_instance_id)]);
        t.add_row(vec!["state".to_string(), format!("{}{}", d.state, d.message.as_ref().map_or(String::new(), |m| format!(": {m}")))]);
        for c in &d.conditions {
            t.add_row(vec![format!("condition {}", c.kind), format!("{} {} since {}", c.status, c.reason, c.since.format("%H:%M:%S"))]);
        }
        match &d.container {
            Some(c) => {
                let exit = c.exit_code.map_or(String::new(), |x| format!(" (exit {x})"));
                let oom = if c.oom_killed { ", killed: out of memory" } else { "" };
                t.add_row(vec!["container".to_string(), format!("{} {}{exit}{oom}", c.id, c.state)]);
                if let Some(s) = &c.started_at {
                    t.add_row(vec!["started".to_string(), s.clone()]);
                }
                if let Some(e) = &c.error {
                    t.add_row(vec!["runtime error".to_string(), e.clone()]);
                }
            }
            None => {
                t.add_row(vec!["container".to_string(), "none".to_string()]);
            }
        }
        for h in &d.health {
            t.add_row(vec![format!("health {}", h.interface_id), format!("{} {}", h.address, if h.reachable { "answers" } else { "DOES NOT ANSWER" })]);
        }
        for e in &d.events {
            t.add_row(vec![format!("event {}", e.at.format("%H:%M:%S")), format!("{:?} {}: {}", e.severity, e.reason, e.message)]);
        }
        if let Some(e) = &d.runtime_error {
            t.add_row(vec!["cloudlet".to_string(), format!("unreachable: {e}")]);
        }
        t.add_row(vec!["last output".to_string(), d.log_tail.join("\n")]);
        t
    })
}

/// Prints recent events.
pub async fn events(ctx: &Ctx, instance: Option<Uid>, cloudlets: bool, warnings: bool, limit: usize) -> Result<()> {
    let mut q = vec![format!("limit={limit}")];
    if let Some(i) = instance {
        q.push(format!("objectId={i}"));
    }
    if cloudlets {
        q.push("objectKind=Cloudlet".into());
    }
    if warnings {
        q.push("warnings=true".into());
    }
    let evs: Vec<Event> = ctx.client.call(Method::GET, &format!("/op/v1/events?{}", q.join("&")), None).await?;
    print(ctx.out, &evs, || {
        let mut t = table(&["TIME", "KIND", "OBJECT", "SEVERITY", "REASON", "MESSAGE"]);
        for e in &evs {
            t.add_row(vec![
                e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                e.object_kind.to_string(),
                e.object_name.clone(),
                format!("{:?}", e.severity),
                e.reason.clone(),
                e.message.clone(),
            ]);
        }
        t
    })
}

/// What `opctl resources` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ResourceView {
    /// Each instance.
    Instances,
    /// Summed per app.
    Apps,
    /// Summed per organization.
    Tenants,
    /// Summed per cloudlet (operator).
    Cloudlets,
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1024.0 * 1024.0))
}

/// Prints resource use and health.
pub async fn resources(ctx: &Ctx, view: ResourceView) -> Result<()> {
    if view == ResourceView::Instances {
        let v: Vec<InstanceUsage> = ctx.client.call(Method::GET, "/op/v1/resources/instances", None).await?;
        return print(ctx.out, &v, || {
            let mut t = table(&["INSTANCE", "ORG", "HEALTH", "CPU (m)", "MEM MiB", "LIMIT MiB", "NET IN B/s", "NET OUT B/s", "DISK W MiB"]);
            for u in &v {
                t.add_row(vec![
                    u.name.clone(),
                    u.organization.to_string(),
                    format!("{:?}", u.health),
                    u.amounts.cpu_millicores.to_string(),
                    mib(u.amounts.memory_bytes),
                    mib(u.amounts.memory_limit_bytes),
                    u.amounts.net_rx_bytes_per_sec.to_string(),
                    u.amounts.net_tx_bytes_per_sec.to_string(),
                    mib(u.amounts.disk_write_bytes),
                ]);
            }
            t
        });
    }
    let path = match view {
        ResourceView::Apps => "apps",
        ResourceView::Tenants => "tenants",
        _ => "cloudlets",
    };
    let v: Vec<UsageTotals> = ctx.client.call(Method::GET, &format!("/op/v1/resources/{path}"), None).await?;
    print(ctx.out, &v, || {
        let mut t = table(&["KEY", "HEALTH", "INSTANCES", "STRESSED", "EXITED", "CPU (m)", "vCPUs", "MEM MiB", "NET IN B/s", "NET OUT B/s"]);
        for u in &v {
            t.add_row(vec![
                u.key.clone(),
                format!("{:?}", u.health),
                u.instances.to_string(),
                u.stressed.to_string(),
                u.exited.to_string(),
                u.amounts.cpu_millicores.to_string(),
                u.amounts.vcpus.to_string(),
                mib(u.amounts.memory_bytes),
                u.amounts.net_rx_bytes_per_sec.to_string(),
                u.amounts.net_tx_bytes_per_sec.to_string(),
            ]);
        }
        t
    })
}

/// Prints the QoE per zone from device probes (`by_zone`: the operator's totals over apps).
pub async fn qoe(ctx: &Ctx, by_zone: bool) -> Result<()> {
    let path = if by_zone { "/op/v1/qoe?byZone=true" } else { "/op/v1/qoe" };
    let v: Vec<ZoneQoe> = ctx.client.call(Method::GET, path, None).await?;
    print(ctx.out, &v, || {
        let mut t = table(&["ZONE", "APP", "PROBES", "MEAN ms", "P50 ms", "P95 ms", "MAX ms", "NETWORK EXPECTED ms"]);
        let ms = |x: f64| format!("{x:.2}");
        for q in &v {
            t.add_row(vec![
                q.edge_cloud_zone_name.clone(),
                q.app_id.map_or_else(|| "(all)".into(), |a| a.to_string()),
                q.summary.probes.to_string(),
                ms(q.summary.mean_ms),
                ms(q.summary.p50_ms),
                ms(q.summary.p95_ms),
                ms(q.summary.max_ms),
                q.summary.expected_mean_ms.map_or_else(|| "-".into(), ms),
            ]);
        }
        t
    })
}
