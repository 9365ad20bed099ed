//! Looking into a running instance through the real platform and a real container: logs
//! followed as they are written, terminal access over WebSocket (input, output, errors, exit
//! codes, a terminal), the debug view, events, and who may do which.

use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use op_client::exec::ExecEvent;
use op_client::Client;
use op_e2e::*;
use op_types::observe::{InstanceDebug, EXEC_PROTOCOL, STATUS, STDOUT};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_exec_debug_and_events() -> anyhow::Result<()> {
    let p = Platform::start().await?;
    let dev = p.developer("observe_org", "olga", "Manager").await?;
    let zone = p.zone_id(&dev, "local").await?;
    let app = dev.sample_app("observe_org", "peek", json!({})).await?;
    let id = dev.deploy("peek_1", &app, &zone).await?;
    dev.wait_ready(&id, Duration::from_secs(60)).await?;
    let uid = id.parse()?;
    let client = Client::new(&p.url, dev.token.clone());

    // Output written after the follow began arrives on it.
    let mut follow = Box::pin(client.follow_logs(uid, 0).await?);
    let marker = format!("marker-{}", &id[..8]);
    let (out, _, code) = client.exec(uid, &cmd(&["sh", "-c", &format!("echo {marker} > /proc/1/fd/1")]), false).await?.run(b"").await?;
    assert_eq!(code, Some(0), "writing to the app's stdout: {}", String::from_utf8_lossy(&out));
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(chunk) = follow.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk?));
            if seen.contains(&marker) {
                return anyhow::Ok(true);
            }
        }
        Ok(false)
    })
    .await;
    assert!(matches!(found, Ok(Ok(true))), "the followed logs show the new line: {seen:?}");
    drop(follow);

    // Input in, output out, stderr apart, the exit code back.
    let (out, err, code) = client.exec(uid, &cmd(&["cat"]), false).await?.run(b"hello through the platform\n").await?;
    assert_eq!(String::from_utf8_lossy(&out), "hello through the platform\n");
    assert!(err.is_empty());
    assert_eq!(code, Some(0));
    let (out, err, code) = client.exec(uid, &cmd(&["sh", "-c", "echo to-out; echo to-err >&2; exit 3"]), false).await?.run(b"").await?;
    assert_eq!((String::from_utf8_lossy(&out).trim(), String::from_utf8_lossy(&err).trim(), code), ("to-out", "to-err", Some(3)));
    // A terminal only when asked for.
    let (out, _, code) = client.exec(uid, &cmd(&["sh", "-c", "tty"]), true).await?.run(b"").await?;
    assert_eq!(code, Some(0), "with a terminal: {}", String::from_utf8_lossy(&out));
    assert!(String::from_utf8_lossy(&out).contains("/dev/pts/"), "{}", String::from_utf8_lossy(&out));
    let (_, _, code) = client.exec(uid, &cmd(&["sh", "-c", "tty"]), false).await?.run(b"").await?;
    assert_eq!(code, Some(1), "without a terminal, tty says so");
    // Interactive: answers come back while the session stays open.
    let (mut input, mut output) = client.exec(uid, &cmd(&["sh"]), false).await?.split();
    input.write(b"echo first\n").await?;
    let first = tokio::time::timeout(Duration::from_secs(10), output.next()).await??;
    assert_eq!(first, Some(ExecEvent::Stdout(b"first\n".to_vec())));
    input.write(b"exit 7\n").await?;
    let end = tokio::time::timeout(Duration::from_secs(10), output.next()).await??;
    assert_eq!(end, Some(ExecEvent::Exit(Some(7))));

    // A program the image lacks is the runtime's error, not a hang.
    let missing = client.exec(uid, &cmd(&["/no/such/program"]), false).await;
    match missing {
        Ok(e) => {
            let (_, _, code) = e.run(b"").await?;
            assert_ne!(code, Some(0), "a missing program cannot succeed");
        }
        Err(e) => assert!(matches!(e.status(), Some(409 | 404)), "{e}"),
    }

    // A browser offers its token as a subprotocol.
    let url = format!("{}/op/v1/appinstances/{id}/exec?command=echo&command=from-a-browser", p.url.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request()?;
    let offer = format!("{EXEC_PROTOCOL}, bearer.{}", dev.token.clone().unwrap_or_default());
    req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(&offer)?);
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await?;
    assert_eq!(resp.headers().get("sec-websocket-protocol").map(|v| v.as_bytes()), Some(EXEC_PROTOCOL.as_bytes()));
    let (mut stdout, mut status) = (Vec::new(), None);
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await? {
        if let Message::Binary(b) = msg? {
            match b.first() {
                Some(&STDOUT) => stdout.extend_from_slice(&b[1..]),
                Some(&STATUS) => status = Some(serde_json::from_slice::<serde_json::Value>(&b[1..])?),
                _ => {}
            }
        }
    }
    let _ = ws.close(None).await;
    assert_eq!(String::from_utf8_lossy(&stdout), "from-a-browser\n");
    assert_eq!(status.map(|s| s["exitCode"].clone()), Some(json!(0)));

    // Bad input names its field; no credential, no session.
    let (s, b) = dev.get(&format!("/op/v1/appinstances/{id}/exec")).await?;
    assert_eq!((s, b["code"].as_str()), (400, Some("INVALID_ARGUMENT")), "{b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("command"), "{b}");
    let anon = Client::new(&p.url, None);
    let e = anon.exec(uid, &cmd(&["true"]), false).await.err().expect("anonymous exec refused");
    assert_eq!(e.status(), Some(401), "{e}");
    let (s, _) = dev.get(&format!("/op/v1/appinstances/{id}/logs?tail=20000")).await?;
    assert_eq!(s, 400);

    // A Viewer reads logs and the debug view but opens no terminal; another organization
    // does not learn the instance exists.
    let admin = p.admin().await?;
    let (s, b) = admin
        .post("/op/v1/users", &json!({"name": "vic", "organization": "observe_org", "role": "Viewer", "password": "correct-horse-battery"}))
        .await?;
    assert_eq!(s, 201, "{b}");
    let viewer = Client::new(&p.url, Some(p.login("vic", "correct-horse-battery").await?));
    assert!(viewer.logs(uid, 10).await?.contains(&marker));
    assert_eq!(viewer.debug(uid).await?.app_instance_id, uid);
    let e = viewer.exec(uid, &cmd(&["true"]), false).await.err().expect("a Viewer has no terminal");
    assert_eq!(e.status(), Some(403), "{e}");
    let other_api = p.developer("other_org1", "oscar", "Manager").await?;
    let other = Client::new(&p.url, other_api.token.clone());
    for e in [other.exec(uid, &cmd(&["true"]), false).await.err(), other.logs(uid, 10).await.err(), other.debug(uid).await.err()] {
        assert_eq!(e.as_ref().and_then(|e| e.status()), Some(404), "{e:?}");
    }
    let (_, evs) = other_api.get("/op/v1/events?limit=1000").await?;
    assert!(!evs.to_string().contains(&id), "another organization sees no events of this instance: {evs}");

    // The debug view: state, container, a live health check, events, last output.
    let d: InstanceDebug = client.debug(uid).await?;
    assert_eq!(d.state, op_types::State::Ready);
    assert_eq!(d.cloudlet, op_types::specs::HIDDEN_CLOUDLET, "developers see zones, not cloudlets");
    let c = d.container.as_ref().expect("a container");
    assert_eq!(c.state, "Running");
    assert!(c.started_at.is_some() && !c.oom_killed);
    assert!(d.health.iter().any(|h| h.interface_id == "http" && h.reachable), "{:?}", d.health);
    assert!(d.events.iter().any(|e| e.reason == "Ready"), "{:?}", d.events);
    assert!(d.log_tail.iter().any(|l| l.contains(&marker)), "{:?}", d.log_tail);

    // Every exec is in the audit log, with its command and who ran it.
    let (_, audit) = dev.get("/op/v1/audit?user=olga&limit=1000").await?;
    let execs: Vec<_> = audit.as_array().into_iter().flatten().filter(|r| r["spec"]["path"].as_str().is_some_and(|p| p.contains("/exec?"))).collect();
    assert!(execs.iter().any(|r| r["spec"]["path"].as_str().unwrap_or_default().contains("command=cat")), "{audit}");

    // A container that dies is started again, and its exit is on record: events, the
    // instance's restart count, the debug view's container.
    let before = client.debug(uid).await?.container.and_then(|c| c.started_at);
    let out = Command::new("podman").args(["--url", &docker_endpoint(), "kill", &format!("op-{id}")]).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut restarted = None;
    for _ in 0..150 {
        let d = client.debug(uid).await?;
        let exit_seen = d.events.iter().any(|e| e.reason == "ContainerRunning" && e.severity == op_types::observe::Severity::Warning);
        if exit_seen && d.state == op_types::State::Ready && d.container.as_ref().and_then(|c| c.started_at.clone()) != before {
            restarted = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d = restarted.expect("the killed container is seen exiting and runs again");
    assert!(d.events.iter().any(|e| e.message.contains("exited with 137")), "{:?}", d.events);
    let inst = dev.instance(&id).await?.expect("instance");
    assert_eq!(inst["observed"]["restarts"], 1, "{inst}");
    let (_, warnings) = dev.get(&format!("/op/v1/events?objectId={id}&warnings=true")).await?;
    assert!(warnings.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(|e| e["severity"] == "Warning")), "{warnings}");

    // opctl: exit codes pass through, the debug page prints.
    let out = p.opctl_as(&dev, &["instance", "exec", &id, "--", "sh", "-c", "echo via-opctl"])?;
    assert_eq!(out.trim(), "via-opctl");
    let bad = Command::new(bin("opctl"))
        .args(["instance", "exec", &id, "--", "sh", "-c", "exit 5"])
        .env("OPCTL_SERVER", &p.url)
        .env("OPCTL_TOKEN", dev.token.clone().unwrap_or_default())
        .env("OPCTL_CONFIG", "/nonexistent/opctl.json")
        .output()?;
    assert_eq!(bad.status.code(), Some(5), "{}", String::from_utf8_lossy(&bad.stderr));
    let page = p.opctl_as(&dev, &["instance", "debug", &id])?;
    assert!(page.contains("health http"), "{page}");
    let evs = p.opctl_as(&dev, &["events", "--instance", &id])?;
    assert!(evs.contains("Ready"), "{evs}");
    Ok(())
}

/// Resource use is read from the runtime: memory and network per instance, summed per app and
/// tenant; a busy instance turns Stressed; cloudlets are the operator's view.
#[tokio::test(flavor = "multi_thread")]
async fn resource_use_and_health() -> anyhow::Result<()> {
    let p = Platform::start_with(&["--resources-every-ms", "300"]).await?;
    let dev = p.developer("busy_org", "bea", "Manager").await?;
    let zone = p.zone_id(&dev, "local").await?;
    let app = dev.sample_app("busy_org", "busy", json!({})).await?;
    let id = dev.deploy("busy_1", &app, &zone).await?;
    let inst = dev.wait_ready(&id, Duration::from_secs(60)).await?;
    http_get_ok(&endpoint(&inst)?, Duration::from_secs(10)).await?;
    let uid = id.parse()?;

    let reading = |want: fn(&serde_json::Value) -> bool| {
        let dev = dev.clone();
        let id = id.clone();
        async move {
            for _ in 0..150 {
                let (_, all) = dev.get("/op/v1/resources/instances").await?;
                if let Some(u) = all.as_array().into_iter().flatten().find(|u| u["appInstanceId"] == id.as_str()) {
                    if want(u) {
                        return anyhow::Ok(u.clone());
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::bail!("no such reading of {id}")
        }
    };
    let u = reading(|u| u["memoryBytes"].as_u64().unwrap_or(0) > 0 && u["health"] == "Healthy").await?;
    assert_eq!(u["cloudlet"], op_types::specs::HIDDEN_CLOUDLET);
    assert!(u["memoryLimitBytes"].as_u64().unwrap_or(0) >= u["memoryBytes"].as_u64().unwrap_or(0), "{u}");

    // Two busy loops in a one-vCPU instance: it is Stressed, and so is its app.
    let client = Client::new(&p.url, dev.token.clone());
    let (out, _, code) = client
        .exec(uid, &cmd(&["sh", "-c", "for i in 1 2; do (while :; do :; done) & done; echo started"]), false)
        .await?
        .run(b"")
        .await?;
    assert_eq!((String::from_utf8_lossy(&out).trim(), code), ("started", Some(0)));
    let u = reading(|u| u["health"] == "Stressed").await?;
    assert!(u["cpuMillicores"].as_u64().unwrap_or(0) >= 800, "{u}");
    let (_, apps) = dev.get("/op/v1/resources/apps").await?;
    assert_eq!(apps[0]["key"], app.as_str());
    assert_eq!(apps[0]["health"], "Stressed", "an app is as healthy as its worst instance: {apps}");
    // Stop the loops (every process but the app, PID 1).
    let _ = client.exec(uid, &cmd(&["sh", "-c", "kill -9 -1"]), false).await?.run(b"").await;

    // Tenants: the developer sees its own; another organization sees nothing of it; the
    // operator sees every tenant and the cloudlet.
    let (_, tenants) = dev.get("/op/v1/resources/tenants").await?;
    assert_eq!(tenants.as_array().map(Vec::len), Some(1), "{tenants}");
    assert_eq!((tenants[0]["key"].as_str(), tenants[0]["instances"].as_u64()), (Some("busy_org"), Some(1)));
    let other = p.developer("idle_org", "ian", "Manager").await?;
    for path in ["/op/v1/resources/instances", "/op/v1/resources/apps", "/op/v1/resources/tenants"] {
        let (s, b) = other.get(path).await?;
        assert_eq!((s, b.as_array().map(Vec::len)), (200, Some(0)), "{path}: {b}");
    }
    let (s, _) = dev.get("/op/v1/resources/cloudlets").await?;
    assert_eq!(s, 403);
    let admin = p.admin().await?;
    let (_, cls) = admin.get("/op/v1/resources/cloudlets").await?;
    assert!(cls.as_array().into_iter().flatten().any(|c| c["key"] == "local-docker" && c["instances"] == 1), "{cls}");
    let (_, all) = admin.get("/op/v1/resources/instances?organization=busy_org").await?;
    assert_eq!(all[0]["cloudlet"], "local-docker", "the operator sees cloudlets");

    // The same figures on /metrics for Prometheus, labelled by tenant and cloudlet.
    let metrics = reqwest::Client::new().get(format!("{}/metrics", p.url)).bearer_auth(admin.token.clone().unwrap_or_default()).send().await?.text().await?;
    let line = metrics.lines().find(|l| l.starts_with("op_instance_memory_bytes{") && l.contains("organization=\"busy_org\"")).unwrap_or_default().to_string();
    assert!(line.contains("cloudlet=\"local-docker\"") && line.contains("instance=\"busy_1\""), "{metrics}");
    let bytes: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    assert!(bytes > 0.0, "{line}");
    assert!(metrics.contains("op_instance_network_receive_bytes_total{"), "byte counts are counters");
    Ok(())
}

/// `opctl instance exec --tty` in a real terminal (a pty from `script`): the local terminal is
/// raw, so Ctrl-C interrupts the remote command and the remote shell lives on, instead of
/// interrupting opctl itself.
#[tokio::test(flavor = "multi_thread")]
async fn exec_tty_puts_the_local_terminal_in_raw_mode() -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let p = Platform::start().await?;
    let dev = p.developer("terminal_org", "tess", "Manager").await?;
    let zone = p.zone_id(&dev, "local").await?;
    let app = dev.sample_app("terminal_org", "shell", json!({})).await?;
    let id = dev.deploy("shell_1", &app, &zone).await?;
    dev.wait_ready(&id, Duration::from_secs(60)).await?;

    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("opctl.json");
    std::fs::write(&cfg, serde_json::to_vec(&json!({"server": p.url, "token": dev.token}))?)?;
    let inner = format!("{} instance exec --tty shell_1 -- sh", bin("opctl").display());
    let mut child = Command::new("script")
        .args(["-qfec", &inner, "/dev/null"])
        .env("OPCTL_SERVER", &p.url)
        .env("OPCTL_CONFIG", &cfg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stdout.read_to_end(&mut all);
        String::from_utf8_lossy(&all).into_owned()
    });
    let begun = std::time::Instant::now();
    let typed = |stdin: &mut std::process::ChildStdin, s: &[u8]| -> anyhow::Result<()> {
        stdin.write_all(s)?;
        stdin.flush()?;
        std::thread::sleep(Duration::from_millis(1500));
        Ok(())
    };
    typed(&mut stdin, b"sleep 60\r")?;
    typed(&mut stdin, b"\x03")?;
    typed(&mut stdin, b"echo alive-$((40+2))\r")?;
    typed(&mut stdin, b"exit\r")?;
    drop(stdin);
    let status = child.wait()?;
    let out = reader.join().expect("reader");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(out.contains("alive-42"), "the remote shell outlived Ctrl-C; output: {out:?}; status {status}; stderr: {err}");
    assert!(begun.elapsed() < Duration::from_secs(40), "sleep 60 was interrupted, not waited out");
    assert!(status.success(), "the session ended with the shell's exit 0: {status}; output: {out:?}");
    Ok(())
}
