//! The README's walk-through of logs, terminal access, the debug view, events and resource
//! use, executed verbatim with the real opctl.

use op_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn readme_observe_runs() -> anyhow::Result<()> {
    let p = Platform::start_with(&["--resources-every-ms", "200"]).await?;
    let run = run_readme_block("observe", &p).await?;
    let out = &run.stdout;
    // The exec's own output (ls /), and the line it wrote to the app's output in the logs.
    assert!(out.contains("op-sample-app") && out.contains("proc"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("hello from ")), "{out}");
    // The debug page: a live health check, the container running, the Ready event.
    assert!(out.lines().any(|l| l.contains("health ") && l.contains("answers")), "{out}");
    assert!(out.contains("Running"), "{out}");
    assert!(out.contains("Ready"), "{out}");
    // Resource tables: the organization is a tenant.
    assert!(out.contains("lens_labs"), "{out}");
    Ok(())
}
