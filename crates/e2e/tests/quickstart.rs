//! The README's quickstart, executed line by line against a real opd with the real opctl.

use op_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn readme_quickstart_runs() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let run = run_readme_block("quickstart", &p).await?;
    assert!(run.stdout.contains("local"), "zones listed: {}", run.stdout);
    assert!(run.stdout.contains("op-sample-app"), "the app answered through curl: {}", run.stdout);
    // Everything the quickstart deployed is gone again.
    assert!(containers_of_platform(&p.data_dir()).await?.is_empty());
    Ok(())
}
