//! The README's device walk-through ("Devices find their edge"), executed verbatim against the
//! network emulator and a platform using it, started as the README says.

use op_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn readme_devices_runs() -> anyhow::Result<()> {
    let net = Netemu::start()?;
    let p = Platform::start_with(&[
        "--network-api", &net.url, "--network-client-id", "op-platform", "--network-client-secret", "op-platform-secret",
        "--mcc", "208", "--mnc", "01",
    ])
    .await?;
    let run = run_readme_block("devices", &p).await?;
    // discover printed its offers: the best is the instance started in the device's zone.
    assert!(run.stdout.contains("zone-paris"), "offers: {}", run.stdout);
    // probe measured it at the cloudlet's probe.
    assert!(run.stdout.contains("DOWNLOAD_MBPS"), "probe table: {}", run.stdout);
    // and the app itself answered through curl.
    assert!(run.stdout.contains("hello from op-sample-app"), "the app answered: {}", run.stdout);
    // The instance was started by the device's request: nobody deployed it.
    let instances = containers_of_platform(&p.data_dir()).await?;
    assert_eq!(instances.len(), 1, "one dynamic instance: {instances:?}");
    Ok(())
}
