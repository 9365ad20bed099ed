//! kill -9 of opd while ten instances deploy: after a restart all ten are Ready exactly once and
//! no container is orphaned or duplicated.

use std::collections::BTreeSet;
use std::time::Duration;

use op_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn kill9_during_deploy_converges_exactly_once() -> anyhow::Result<()> {
    let mut p = Platform::start().await?;
    let dev = p.developer("crash_test", "carol", "Contributor").await?;
    let zone = p.zone_id(&dev, "local").await?;
    let app = dev.sample_app("crash_test", "crashy", serde_json::json!({})).await?;

    // Ten deployments at once; kill -9 while the controller is creating and starting them.
    let mut deploys = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (dev, app, zone) = (dev.clone(), app.clone(), zone.clone());
        deploys.spawn(async move { dev.deploy(&format!("inst_{i}"), &app, &zone).await });
    }
    let mut ids = BTreeSet::new();
    while let Some(id) = deploys.join_next().await {
        ids.insert(id??);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = containers_of_platform(&p.data_dir()).await?.len();
    p.restart().await?;
    eprintln!("killed with {before} of 10 containers made");
    assert_eq!(ids.len(), 10);
    for id in &ids {
        let inst = dev.wait_ready(id, Duration::from_secs(90)).await?;
        http_get_ok(&endpoint(&inst)?, Duration::from_secs(10)).await?;
    }
    // Exactly one container per instance, none other of this platform.
    let containers = containers_of_platform(&p.data_dir()).await?;
    let labelled: Vec<String> =
        containers.iter().filter_map(|c| c.labels.get(op_driver::LABEL_INSTANCE).cloned()).collect();
    assert_eq!(labelled.len(), 10, "containers: {labelled:?}");
    assert_eq!(labelled.iter().cloned().collect::<BTreeSet<_>>(), ids);

    // Delete all, crash in the middle, restart: nothing is left behind.
    for id in &ids {
        let (s, _) = dev.delete(&format!("{CAMARA}/appinstances/{id}")).await?;
        assert_eq!(s, 202);
    }
    p.restart().await?;
    for id in &ids {
        dev.wait_gone(id, Duration::from_secs(60)).await?;
    }
    assert!(containers_of_platform(&p.data_dir()).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn orphan_containers_are_collected() -> anyhow::Result<()> {
    use op_driver::Driver;
    let p = Platform::start().await?;
    let dev = p.developer("orphan_test", "oscar", "Manager").await?;
    let zone = p.zone_id(&dev, "local").await?;
    let app = dev.sample_app("orphan_test", "orphan", serde_json::json!({})).await?;
    let id = dev.deploy("o1", &app, &zone).await?;
    dev.wait_ready(&id, Duration::from_secs(60)).await?;

    // A container labelled as this platform's but belonging to no instance (as a crash could leave).
    let platform = std::fs::read_to_string(p.data_dir().join("platform-id"))?;
    let d = op_driver::docker::DockerDriver::connect(&docker_endpoint())?;
    let mut labels = std::collections::BTreeMap::new();
    labels.insert(op_driver::LABEL_MANAGED.to_string(), "true".to_string());
    labels.insert(op_driver::LABEL_PLATFORM.to_string(), platform.trim().to_string());
    labels.insert(op_driver::LABEL_INSTANCE.to_string(), "00000000-0000-4000-8000-000000000000".to_string());
    let name = format!("op-orphan-{}", std::process::id());
    d.create(&op_driver::ContainerSpec {
        name: name.clone(),
        image: SAMPLE_IMAGE.into(),
        env: Default::default(),
        ports: vec![],
        host_ip: "127.0.0.1".into(),
        millicpus: 0,
        memory_bytes: 0,
        labels,
        network: None,
    })
    .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while d.inspect(&name).await?.is_some() {
        assert!(std::time::Instant::now() < deadline, "orphan not collected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The real instance is untouched.
    assert_eq!(containers_of(&id).await?, 1);
    Ok(())
}
