//! The README's accounts walk-through, executed verbatim with the real opctl.

use op_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn readme_access_runs() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let run = run_readme_block("access", &p).await?;
    // bo contributes in the team; ada's role there comes from the organization above it.
    let members: Vec<&str> = run.stdout.lines().filter(|l| l.contains("bo") || l.contains("ada")).collect();
    assert!(members.iter().any(|l| l.contains("bo") && l.contains("Contributor")), "{}", run.stdout);
    assert!(members.iter().any(|l| l.contains("ada") && l.contains("Manager") && l.contains("ada_robotics")), "{}", run.stdout);
    assert!(run.stdout.contains("ci-dashboards"), "{}", run.stdout);
    assert!(run.stdout.contains("PUT /op/v1/organizations/ada_robotics_eu/members/bo"), "the audit log: {}", run.stdout);
    assert!(run.stdout.contains(&format!("{}/oauth2/authorize", p.url)), "{}", run.stdout);
    Ok(())
}
