//! The README's federation walk-through, executed verbatim with the real opctl against two
//! platforms: B offers a zone, A federates, A's developer deploys there, usage agrees.

use op_e2e::federation::{start_ewbi, tail};
use op_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn readme_federation_runs() -> anyhow::Result<()> {
    let (b, b_ewbi) = start_ewbi("opb", &[]).await?;
    let (a, _) = start_ewbi("opa", &[]).await?;
    let env = [
        ("A_URL", a.url.clone()),
        ("A_DATA_DIR", a.data_dir().display().to_string()),
        ("B_URL", b.url.clone()),
        ("B_DATA_DIR", b.data_dir().display().to_string()),
        ("B_EWBI", b_ewbi),
    ];
    let run = run_readme_block_with("federation", &a, &env).await?;
    assert!(run.stdout.contains("bzone-1"), "the peer shows B's zone: {}", run.stdout);
    // On a disagreement, both logs say which side missed which settlement event.
    assert!(run.stdout.contains("true"), "both sides agree: {}\nA log:\n{}\nB log:\n{}", run.stdout, tail(&a.log()), tail(&b.log()));
    assert!(!run.stdout.contains("local-docker"), "no cloudlet of B shows at A: {}", run.stdout);
    Ok(())
}
