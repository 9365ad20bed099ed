//! Clusters and load balancers on the real platform and Podman: instances of a cluster reach
//! each other by name on its network, have no way out until the developer allows it (and lose
//! it again when denied), are reached from outside only through a load balancer that spreads
//! connections over the healthy ones; updates, reports, isolation, bad input, deletion.

use std::process::Command;
use std::time::Duration;

use op_client::Client;
use op_e2e::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

async fn sh(client: &Client, id: &str, script: &str) -> anyhow::Result<(String, Option<i64>)> {
    let cmd = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    let (out, err, code) = client.exec(id.parse()?, &cmd, false).await?.run(b"").await?;
    Ok((format!("{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err)), code))
}

/// Asks the platform's health endpoint from inside instance `id`, through `OP_PLATFORM_URL`
/// (the host's bridge address): whether the instance has a way out of its cluster.
async fn reaches_out(client: &Client, id: &str) -> anyhow::Result<bool> {
    let script = r#"u=${OP_PLATFORM_URL#http://}; printf 'GET /healthz HTTP/1.0\r\n\r\n' | nc -w 2 ${u%:*} ${u##*:}"#;
    Ok(sh(client, id, script).await?.0.contains("ok"))
}

async fn wait_for(what: &str, mut f: impl AsyncFnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    for _ in 0..100 {
        if f().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    anyhow::bail!("{what}: not after 30 s")
}

#[tokio::test(flavor = "multi_thread")]
async fn clusters_and_load_balancers() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let dev = p.developer("cluster_org", "cleo", "Manager").await?;
    let other = p.developer("cluster_other", "otis", "Manager").await?;
    let client = Client::new(&p.url, dev.token.clone());
    let zone = p.zone_id(&dev, "local").await?;

    // A cluster in the zone, outbound traffic denied (the default).
    let (s, b) = dev.post("/op/v1/clusters", &json!({"name": "backend", "spec": {"edgeCloudZoneId": zone}})).await?;
    assert_eq!(s, 201, "{b}");
    assert_eq!((b["cloudlet"].as_str(), b["spec"]["outboundAllowed"].as_bool()), (Some("hidden"), Some(false)), "{b}");
    let cluster = b["id"].as_str().unwrap_or_default().to_string();
    wait_for("the cluster ready", async || Ok(dev.get(&format!("/op/v1/clusters/{cluster}")).await?.1["state"] == "Ready")).await?;
    let (s, b) = dev.post("/op/v1/clusters", &json!({"name": "nowhere", "spec": {"edgeCloudZoneId": "00000000-0000-4000-8000-000000000000"}})).await?;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("spec.edgeCloudZoneId"), "{b}");
    let (s, _) = other.get(&format!("/op/v1/clusters/{cluster}")).await?;
    assert_eq!(s, 404, "another organization does not see the cluster");

    // Two instances in it: no published ports, each reaches the other by name.
    let app = dev.sample_app("cluster_org", "member", json!({})).await?;
    let mut ids = Vec::new();
    for name in ["member_1", "member_2"] {
        let (s, b) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": name, "appId": app, "edgeCloudZoneId": zone, "clusterRef": cluster})).await?;
        assert_eq!(s, 202, "{b}");
        ids.push(b["appInstanceId"].as_str().unwrap_or_default().to_string());
    }
    for id in &ids {
        let inst = dev.wait_ready(id, WAIT).await?;
        let published = inst["observed"]["endpoints"].as_array().map_or(0, Vec::len);
        assert_eq!(published, 0, "cluster members publish no port: {inst}");
        assert!(inst["observed"]["internalEndpoints"][0]["host"].is_string(), "{inst}");
    }
    let (out, code) = sh(&client, &ids[0], r#"printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 member_2 8080"#).await?;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("hello from op-sample-app") && out.contains(&ids[1]), "member_1 reaches member_2 by name: {out}");
    let (s, b) = other.post(&format!("{CAMARA}/appinstances"), &json!({"name": "intruder", "appId": other.sample_app("cluster_other", "intruder", json!({})).await?, "edgeCloudZoneId": zone, "clusterRef": cluster})).await?;
    assert_eq!(s, 400, "another organization cannot join: {b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("clusterRef"), "{b}");

    // No way out until allowed; then one; then none again.
    assert!(!reaches_out(&client, &ids[0]).await?, "outbound traffic is denied by default");
    let (s, b) = dev.put(&format!("/op/v1/clusters/{cluster}"), &json!({"spec": {"edgeCloudZoneId": zone, "outboundAllowed": true}})).await?;
    assert_eq!(s, 200, "{b}");
    wait_for("outbound allowed", async || reaches_out(&client, &ids[0]).await).await?;
    let (s, b) = dev.put(&format!("/op/v1/clusters/{cluster}"), &json!({"spec": {"edgeCloudZoneId": zone, "outboundAllowed": false}})).await?;
    assert_eq!(s, 200, "{b}");
    wait_for("outbound denied again", async || Ok(!reaches_out(&client, &ids[1]).await?)).await?;
    let (s, b) = dev.put(&format!("/op/v1/clusters/{cluster}"), &json!({"spec": {"edgeCloudZoneId": app, "outboundAllowed": false}})).await?;
    assert_eq!(s, 400, "a cluster stays in its zone: {b}");

    // The report: both members, their health.
    let (_, rep) = dev.get(&format!("/op/v1/clusters/{cluster}")).await?;
    assert_eq!(rep["members"].as_array().map(Vec::len), Some(2), "{rep}");

    // A load balancer in front of them: connections reach both.
    for (body, field) in [
        (json!({"name": "bad1", "spec": {"clusterId": cluster, "appId": app, "backendPort": 9999}}), "spec.backendPort"),
        (json!({"name": "bad2", "spec": {"clusterId": cluster, "appId": app, "backendPort": 8080, "frontendPort": 80}}), "spec.frontendPort"),
    ] {
        let (s, b) = dev.post("/op/v1/loadbalancers", &body).await?;
        assert_eq!(s, 400, "{b}");
        assert!(b["message"].as_str().unwrap_or_default().contains(field), "{field}: {b}");
    }
    let (s, lb) = dev.post("/op/v1/loadbalancers", &json!({"name": "front", "spec": {"clusterId": cluster, "appId": app, "backendPort": 8080}})).await?;
    assert_eq!(s, 201, "{lb}");
    let lb_id = lb["id"].as_str().unwrap_or_default().to_string();
    let frontend = lb["frontend"].as_str().unwrap_or_default().to_string();
    assert!(!frontend.is_empty(), "{lb}");
    // A connection per request: the load balancer balances connections.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).pool_max_idle_per_host(0).build()?;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        if let Ok(r) = http.get(format!("http://{frontend}/")).send().await {
            let body = r.text().await.unwrap_or_default();
            for id in &ids {
                if body.contains(id.as_str()) {
                    seen.insert(id.clone());
                }
            }
        }
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.len(), 2, "the load balancer reaches both members");
    wait_for("both backends healthy", async || {
        let (_, v) = dev.get(&format!("/op/v1/loadbalancers/{lb_id}")).await?;
        Ok(v["backends"].as_array().is_some_and(|b| b.len() == 2 && b.iter().all(|x| x["healthy"] == true)))
    })
    .await?;
    let (_, theirs) = other.get("/op/v1/loadbalancers").await?;
    assert_eq!(theirs, json!([]), "another organization sees no load balancer");

    // A member that goes away stops taking connections; the other serves them all.
    let (s, _) = dev.delete(&format!("{CAMARA}/appinstances/{}", ids[1])).await?;
    assert_eq!(s, 202);
    dev.wait_gone(&ids[1], WAIT).await?;
    wait_for("the load balancer down to one backend", async || {
        let (_, v) = dev.get(&format!("/op/v1/loadbalancers/{lb_id}")).await?;
        Ok(v["backends"].as_array().is_some_and(|b| b.len() == 1))
    })
    .await?;
    for _ in 0..10 {
        let body = http.get(format!("http://{frontend}/")).send().await?.text().await?;
        assert!(body.contains(&ids[0]), "{body}");
    }

    // Deletion: refused while something uses the cluster, then its network goes too.
    let (s, b) = dev.delete(&format!("/op/v1/clusters/{cluster}")).await?;
    assert_eq!(s, 409, "{b}");
    let (s, _) = dev.delete(&format!("/op/v1/loadbalancers/{lb_id}")).await?;
    assert_eq!(s, 204);
    assert!(http.get(format!("http://{frontend}/")).send().await.is_err(), "the front end closed");
    dev.delete(&format!("{CAMARA}/appinstances/{}", ids[0])).await?;
    dev.wait_gone(&ids[0], WAIT).await?;
    let (s, b) = dev.delete(&format!("/op/v1/clusters/{cluster}")).await?;
    assert_eq!(s, 202, "{b}");
    wait_for("the cluster gone", async || Ok(dev.get(&format!("/op/v1/clusters/{cluster}")).await?.0 == 404)).await?;
    let exists = Command::new("podman").args(["network", "exists", &format!("op-cluster-{cluster}")]).status()?;
    assert!(!exists.success(), "the cluster's network is removed");
    Ok(())
}

/// Sends a proxy request for `url` to the cluster's egress gateway from inside instance `id`
/// (the answer, head and body, as the member's HTTP client would get it).
async fn through_gateway(client: &Client, id: &str, url: &str) -> anyhow::Result<String> {
    let script = format!(r#"printf 'GET {url} HTTP/1.0\r\n\r\n' | nc -w 3 op-egress 3128"#);
    Ok(sh(client, id, &script).await?.0)
}

/// Selective outbound rules: a cluster's members have no route out and reach the outside only
/// through the cluster's egress gateway (`HTTP_PROXY`), which lets out what the cluster's
/// rules, its cloudlet's privacy policy and its region's regulation all allow, naming the one
/// that refuses anything else; changes of either reach the gateway within seconds.
#[tokio::test(flavor = "multi_thread")]
async fn selective_outbound_rules_through_the_egress_gateway() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let admin = p.admin().await?;
    let dev = p.developer("egress_org", "edna", "Manager").await?;
    let client = Client::new(&p.url, dev.token.clone());
    let zone = p.zone_id(&dev, "local").await?;

    // Bad rules name their field.
    for (rules, field) in [
        (json!([{"protocol": "UDP", "remoteCidr": "10.0.0.0/8", "portMin": 53}]), "spec.outboundRules[0].protocol"),
        (json!([{"protocol": "TCP", "remoteCidr": "10.0.0.0/33", "portMin": 443}]), "spec.outboundRules[0].remoteCidr"),
        (json!([{"protocol": "TCP", "remoteCidr": "10.0.0.0/8", "portMin": 443, "portMax": 80}]), "spec.outboundRules[0].portMax"),
    ] {
        let (s, b) = dev.post("/op/v1/clusters", &json!({"name": "bad", "spec": {"edgeCloudZoneId": zone, "outboundRules": rules}})).await?;
        assert_eq!(s, 400, "{b}");
        assert!(b["message"].as_str().unwrap_or_default().contains(field), "{field}: {b}");
    }

    // A cluster that lets nothing out, one member.
    let (s, b) = dev.post("/op/v1/clusters", &json!({"name": "guarded", "spec": {"edgeCloudZoneId": zone}})).await?;
    assert_eq!(s, 201, "{b}");
    let cluster = b["id"].as_str().unwrap_or_default().to_string();
    wait_for("the cluster ready with its gateway", async || {
        let v = dev.get(&format!("/op/v1/clusters/{cluster}")).await?.1;
        Ok(v["state"] == "Ready" && v["egress"]["mode"] == "nothing")
    })
    .await?;
    let app = dev.sample_app("egress_org", "fetcher", json!({})).await?;
    let (s, b) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": "fetcher_1", "appId": app, "edgeCloudZoneId": zone, "clusterRef": cluster})).await?;
    assert_eq!(s, 202, "{b}");
    let id = b["appInstanceId"].as_str().unwrap_or_default().to_string();
    dev.wait_ready(&id, WAIT).await?;
    let (env, _) = sh(&client, &id, "env").await?;
    assert!(env.contains("HTTP_PROXY=http://op-egress:3128"), "members find the gateway in HTTP_PROXY: {env}");
    let platform = env.lines().find_map(|l| l.strip_prefix("OP_PLATFORM_URL=")).unwrap_or_default().trim().to_string();
    let (host, port) = platform.trim_start_matches("http://").rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())).unwrap_or_default();
    assert!(!host.is_empty(), "OP_PLATFORM_URL: {env}");
    // A second destination on the same host address: a listener of this test.
    let other = std::net::TcpListener::bind((host.as_str(), 0))?;
    let other_port = other.local_addr()?.port();
    std::thread::spawn(move || {
        for mut s in other.incoming().flatten() {
            use std::io::{Read, Write};
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nother-side");
        }
    });
    let healthz = format!("http://{host}:{port}/healthz");
    let elsewhere = format!("http://{host}:{other_port}/");

    // Nothing leaves: the gateway refuses, naming the cluster; the member's own cluster is
    // still reached through it (clients that send everything to HTTP_PROXY keep working).
    let out = through_gateway(&client, &id, &healthz).await?;
    assert!(out.contains("403") && out.contains("nothing leaves"), "{out}");
    let out = through_gateway(&client, &id, "http://fetcher_1:8080/").await?;
    assert!(out.contains("hello from op-sample-app"), "the cluster's own network: {out}");

    // Only the platform's port: that is let out, the other port is refused by the cluster's
    // rules, and there is still no direct route.
    let rule = json!([{"protocol": "TCP", "remoteCidr": format!("{host}/32"), "portMin": port.parse::<u16>()?}]);
    let (s, b) = dev.put(&format!("/op/v1/clusters/{cluster}"), &json!({"spec": {"edgeCloudZoneId": zone, "outboundRules": rule}})).await?;
    assert_eq!(s, 200, "{b}");
    wait_for("the platform reached through the gateway", async || Ok(through_gateway(&client, &id, &healthz).await?.contains("200 OK"))).await?;
    let out = through_gateway(&client, &id, &elsewhere).await?;
    assert!(out.contains("403") && out.contains("cluster's outbound rules"), "{out}");
    assert!(!reaches_out(&client, &id).await?, "no route around the gateway");
    let (_, v) = dev.get(&format!("/op/v1/clusters/{cluster}")).await?;
    assert_eq!(v["egress"]["mode"], "rules", "{v}");
    assert_eq!(v["egress"]["layers"].as_array().map(Vec::len), Some(1), "{v}");

    // The operator's policy stacks: the cloudlet lets only the other port out. Now each
    // destination is refused by one layer or the other.
    let (s, b) = admin.put("/op/v1/cloudlets/local-docker/policies", &json!({"privacyPolicy": {"outboundRules": [{"protocol": "TCP", "remoteCidr": format!("{host}/32"), "portMin": other_port}]}})).await?;
    assert_eq!(s, 200, "{b}");
    wait_for("the cloudlet's policy at the gateway", async || Ok(through_gateway(&client, &id, &healthz).await?.contains("cloudlet's privacy policy"))).await?;
    let out = through_gateway(&client, &id, &elsewhere).await?;
    assert!(out.contains("403") && out.contains("cluster's outbound rules"), "{out}");
    let (s, b) = dev.post(&format!("{CAMARA}/appinstances"), &json!({"name": "loose", "appId": app, "edgeCloudZoneId": zone})).await?;
    assert_eq!(s, 400, "outside a cluster nothing may run there now: {b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("clusterRef"), "{b}");

    // The developer opens the cluster: the cloudlet's rules alone apply.
    let (s, b) = dev.put(&format!("/op/v1/clusters/{cluster}"), &json!({"spec": {"edgeCloudZoneId": zone, "outboundAllowed": true}})).await?;
    assert_eq!(s, 200, "{b}");
    wait_for("the other port let out", async || Ok(through_gateway(&client, &id, &elsewhere).await?.contains("other-side"))).await?;
    assert!(through_gateway(&client, &id, &healthz).await?.contains("cloudlet's privacy policy"));
    assert!(!reaches_out(&client, &id).await?, "still no route around the gateway");

    // The operator lifts the policy: everything leaves, directly too.
    let (s, b) = admin.put("/op/v1/cloudlets/local-docker/policies", &json!({})).await?;
    assert_eq!(s, 200, "{b}");
    wait_for("a direct route out", async || reaches_out(&client, &id).await).await?;
    assert_eq!(dev.get(&format!("/op/v1/clusters/{cluster}")).await?.1["egress"]["mode"], "all");

    // A developer cannot change a cloudlet's policies; a plain instance holds a stricter one back.
    let (s, _) = dev.put("/op/v1/cloudlets/local-docker/policies", &json!({"privacyPolicy": {}})).await?;
    assert_eq!(s, 403);
    let plain = dev.deploy("plain_1", &app, &zone).await?;
    dev.wait_ready(&plain, WAIT).await?;
    let (s, b) = admin.put("/op/v1/cloudlets/local-docker/policies", &json!({"privacyPolicy": {}})).await?;
    assert_eq!(s, 409, "{b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("plain_1"), "{b}");

    // Deletion takes the gateway with the cluster.
    for i in [&plain, &id] {
        dev.delete(&format!("{CAMARA}/appinstances/{i}")).await?;
        dev.wait_gone(i, WAIT).await?;
    }
    let (s, b) = dev.delete(&format!("/op/v1/clusters/{cluster}")).await?;
    assert_eq!(s, 202, "{b}");
    wait_for("the cluster gone", async || Ok(dev.get(&format!("/op/v1/clusters/{cluster}")).await?.0 == 404)).await?;
    let exists = Command::new("podman").args(["container", "exists", &format!("op-egw-{cluster}")]).status()?;
    assert!(!exists.success(), "the gateway is removed");
    Ok(())
}
