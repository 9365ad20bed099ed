//! The README's clusters walk-through, executed verbatim: two instances in a cluster, one
//! reaching the other by name, a load balancer in front of them.

use op_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn readme_clusters_runs() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let run = run_readme_block("clusters", &p).await?;
    let out = &run.stdout;
    // The exec's answer from api_2 by name, and the load balancer's from one of them.
    assert!(out.matches("hello from op-sample-app").count() >= 2, "{out}");
    assert!(out.contains("healthy"), "{out}");
    assert!(out.contains("api_1") && out.contains("api_2") && out.contains("denied"), "{out}");
    assert!(out.contains("only tcp:192.0.2.0/24:443"), "the payments cluster lets out only its rule: {out}");
    Ok(())
}
