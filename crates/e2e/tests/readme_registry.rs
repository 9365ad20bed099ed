//! The README's registry walk-through, executed verbatim: push with Podman, deploy from the
//! registry, the version tracked.

use op_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn readme_registry_runs() -> anyhow::Result<()> {
    let host = "127.0.0.1:5003";
    let p = Platform::start_with(&["--registry-listen", host]).await?;
    let run = run_readme_block_with("registry", &p, &[("REGISTRY", host.to_string())]).await?;
    let out = &run.stdout;
    assert!(out.contains(&format!("{host}/pixel_works/<name>:<tag>")) && out.contains("pull, push"), "{out}");
    // The app answered from the pulled image; the version is listed as pushed by pia and used.
    assert!(out.contains("hello"), "{out}");
    let line = out.lines().find(|l| l.contains(&format!("{host}/pixel_works/web:1.0")) && l.contains("sha256:")).unwrap_or_default();
    assert!(line.contains("pia") && line.contains("sha256:"), "{out}");
    let _ = std::process::Command::new("podman").args(["rmi", &format!("{host}/pixel_works/web:1.0")]).output();
    Ok(())
}
