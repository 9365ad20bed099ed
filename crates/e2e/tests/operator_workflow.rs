//! The operator's workflow on the real platform: a cloudlet at another level (public-cloud
//! peering) with a security group, made with opctl; the security group decides which apps
//! may run there (an app exposing a port it does not let in is refused, naming the port; one
//! on an allowed port runs and answers), and bad rules name their field.

use std::time::Duration;

use op_e2e::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn cloudlet_levels_and_security_groups() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let admin = p.admin().await?;
    let (s, b) = admin
        .post("/op/v1/zones", &json!({"name": "peering", "spec": {"region": "default", "location": {"latitude": 48.1, "longitude": 11.6}, "serviceArea": {"cells": ["26201000000901"]}}}))
        .await?;
    assert_eq!(s, 201, "{b}");

    // Bad rules name their field.
    let (s, b) = admin
        .post("/op/v1/cloudlets", &json!({"name": "bad-sg", "spec": {"zone": "peering", "location": {"latitude": 48.1, "longitude": 11.6},
            "platformType": "docker", "driverEndpoint": docker_endpoint(), "capacity": {"vcpus": 4, "memoryMb": 4096, "diskGb": 20},
            "flavors": ["small"], "securityGroup": {"ingress": [{"protocol": "TCP", "portMin": 9100, "portMax": 9000}]}}}))
        .await?;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("spec.securityGroup.ingress[0].portMax"), "{b}");

    // The operator makes a public-cloud peering site that lets in TCP 9000-9100 only.
    let out = p.opctl_as(&admin, &[
        "cloudlet", "create", "peer-1", "--zone", "peering", "--lat", "48.1", "--lon", "11.6", "--endpoint", &docker_endpoint(),
        "--vcpus", "4", "--memory-mb", "4096", "--disk-gb", "20", "--flavors", "small",
        "--level", "publicCloudPeering", "--allow-ingress", "tcp:9000-9100",
    ])?;
    assert!(out.contains("publicCloudPeering") && out.contains("TCP:9000-9100"), "{out}");
    let (_, c) = admin.get("/op/v1/cloudlets/peer-1").await?;
    assert_eq!(c["spec"]["level"], "publicCloudPeering", "{c}");
    for _ in 0..100 {
        if admin.get("/op/v1/cloudlets/peer-1").await?.1["status"]["state"] == "Ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The sample app on 8080 may not run there; on 9050 it may.
    let dev = p.developer("peering_org", "pia", "Manager").await?;
    let zone = p.zone_id(&dev, "peering").await?;
    let on_8080 = dev.sample_app("peering_org", "web8080", json!({})).await?;
    let (s, b) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": "refused", "appId": on_8080, "edgeCloudZoneId": zone})).await?;
    assert_eq!(s, 400, "{b}");
    let msg = b["message"].as_str().unwrap_or_default();
    assert!(msg.contains("componentSpec") && msg.contains("8080/TCP"), "{b}");
    let mut m = sample_manifest("peering_org", "web9050");
    m["componentSpec"][0]["networkInterfaces"][0]["port"] = json!(9050);
    m["env"] = json!({"PORT": "9050"});
    let (s, b) = dev.post(&format!("{CAMARA}/apps"), &m).await?;
    assert_eq!(s, 201, "{b}");
    let id = dev.deploy("allowed", b["appId"].as_str().unwrap_or_default(), &zone).await?;
    let inst = dev.wait_ready(&id, Duration::from_secs(60)).await?;
    http_get_ok(&endpoint(&inst)?, Duration::from_secs(10)).await?;

    // A private site: its privacy policy lets nothing out. Instances go there only in clusters
    // that deny outbound traffic, and such a cluster cannot be opened up.
    let (s, b) = admin
        .post("/op/v1/zones", &json!({"name": "private", "spec": {"region": "default", "location": {"latitude": 47.4, "longitude": 8.5}, "serviceArea": {"cells": ["22801000000901"]}}}))
        .await?;
    assert_eq!(s, 201, "{b}");
    p.opctl_as(&admin, &[
        "cloudlet", "create", "private-1", "--zone", "private", "--lat", "47.4", "--lon", "8.5", "--endpoint", &docker_endpoint(),
        "--vcpus", "4", "--memory-mb", "4096", "--disk-gb", "20", "--flavors", "small", "--deny-outbound",
    ])?;
    let (_, c) = admin.get("/op/v1/cloudlets/private-1").await?;
    assert_eq!(c["spec"]["privacyPolicy"]["outboundAllowed"], false, "{c}");
    let private = p.zone_id(&dev, "private").await?;
    let (s, b) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": "loose", "appId": on_8080, "edgeCloudZoneId": private})).await?;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("clusterRef"), "{b}");
    let (s, b) = dev.post("/op/v1/clusters", &json!({"name": "open", "spec": {"edgeCloudZoneId": private, "outboundAllowed": true}})).await?;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("spec.outboundAllowed"), "{b}");
    let (s, cl) = dev.post("/op/v1/clusters", &json!({"name": "sealed", "spec": {"edgeCloudZoneId": private}})).await?;
    assert_eq!(s, 201, "{cl}");
    let cluster = cl["id"].as_str().unwrap_or_default().to_string();
    let (s, b) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": "inside", "appId": on_8080, "edgeCloudZoneId": private, "clusterRef": cluster})).await?;
    assert_eq!(s, 202, "{b}");
    let inside = b["appInstanceId"].as_str().unwrap_or_default().to_string();
    dev.wait_ready(&inside, Duration::from_secs(60)).await?;
    let (s, b) = dev.put(&format!("/op/v1/clusters/{cluster}"), &json!({"spec": {"edgeCloudZoneId": private, "outboundAllowed": true}})).await?;
    assert_eq!(s, 400, "{b}");
    let _ = dev.delete(&format!("{CAMARA}/appinstances/{inside}")).await?;
    dev.wait_gone(&inside, Duration::from_secs(60)).await?;

    // The default site is still an edge site that lets every port in.
    let (_, local) = admin.get("/op/v1/cloudlets/local-docker").await?;
    assert_eq!(local["spec"]["level"], "edgeSite");
    assert!(local["spec"].get("securityGroup").is_none(), "{local}");
    let _ = dev.delete(&format!("{CAMARA}/appinstances/{id}")).await?;
    dev.wait_gone(&id, Duration::from_secs(60)).await?;
    Ok(())
}
