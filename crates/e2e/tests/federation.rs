//! Federation end to end: two real `opd` processes as two operators on loopback, talking the
//! GSMA EWBI over TLS with OAuth2. A developer of A deploys on B's zone through A's ordinary
//! CAMARA API; the instance runs on B's edge and answers HTTP through B's ingress.

use std::time::Duration;

use op_e2e::federation::*;
use op_e2e::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn a_developer_of_a_deploys_on_a_zone_of_b() -> anyhow::Result<()> {
    let pair = Pair::start().await?;
    let admin_a = pair.a.admin().await?;
    let zone = pair.a.zone_id(&admin_a, ZONE_ON_A).await?;
    let (dev, inst) = deploy_sample(&pair.a, "acme_fed", &zone).await?;
    let ready = match dev.wait_ready(&inst, Duration::from_secs(60)).await {
        Ok(r) => r,
        Err(e) => anyhow::bail!("{e}\nA log:\n{}\nB log:\n{}", tail(&pair.a.log()), tail(&pair.b.log())),
    };
    let ep = &ready["observed"]["endpoints"][0];
    let url = format!("http://{}:{}/", ep["host"].as_str().unwrap_or_default(), ep["port"]);
    let body = http_get_ok(&url, Duration::from_secs(10)).await?;
    assert!(!body.is_empty());
    let _: Value = ready;
    Ok(())
}
