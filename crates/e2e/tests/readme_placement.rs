//! The README's placement walk-through, executed verbatim with the real opctl.

use op_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn readme_placement_runs() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let run = run_readme_block("placement", &p).await?;
    // The minimum cover is the middle zone alone; every edge adds the two ends.
    let created: Vec<&str> = run.stdout.lines().filter(|l| l.contains("created")).collect();
    let existing: Vec<&str> = run.stdout.lines().filter(|l| l.contains("existing")).collect();
    assert_eq!(created.len(), 3, "{}", run.stdout);
    assert!(created[0].contains("c2"), "the cover: {}", run.stdout);
    assert!(existing.len() == 1 && existing[0].contains("c2"), "{}", run.stdout);
    Ok(())
}
