//! The README's quickstart, executed line by line against a real opd with the real opctl.

use std::process::Command;

use op_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn readme_quickstart_runs() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md"))?;
    let block = Command::new("bash")
        .arg(root.join("scripts/readme-block.sh"))
        .arg("quickstart")
        .stdin(std::fs::File::open(root.join("README.md"))?)
        .output()?;
    let block = String::from_utf8(block.stdout)?;
    assert!(block.contains("opctl instance create"), "quickstart block not found in README ({} bytes)", readme.len());

    let work = tempfile::tempdir()?;
    let bin_dir = bin("opctl").parent().map(|d| d.to_path_buf()).unwrap_or_default();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = tokio::task::spawn_blocking({
        let (url, data, cfg, cwd) = (p.url.clone(), p.data_dir(), work.path().join("opctl.json"), work.path().to_path_buf());
        move || {
            Command::new("bash")
                .args(["-euo", "pipefail", "-c", &block])
                .current_dir(cwd)
                .env("PATH", path)
                .env("OPD_DATA_DIR", data)
                .env("OPCTL_SERVER", url)
                .env("OPCTL_CONFIG", cfg)
                .output()
        }
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "quickstart failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nopd log:\n{}", p.log());
    assert!(stdout.contains("local"), "zones listed: {stdout}");
    assert!(stdout.contains("op-sample-app"), "the app answered through curl: {stdout}");
    // Everything the quickstart deployed is gone again.
    assert!(containers_of_platform(&p.data_dir()).await?.is_empty());
    Ok(())
}
