//! The web console in a real browser (headless Chromium over WebDriver) against the real
//! platform: log in, onboard an app, deploy it, watch it become ready, read its logs, run a
//! command in its terminal, see the dashboard's charts and the map, read the audit log and
//! alarms, delete the instance, log out. Screenshots of each step are kept in
//! `target/console-screenshots/`.

use std::time::Duration;

use op_e2e::browser::Browser;
use op_e2e::*;

const WAIT: Duration = Duration::from_secs(60);

fn visible(view: &str) -> String {
    format!("return !document.getElementById('view-{view}').hidden")
}

#[tokio::test(flavor = "multi_thread")]
async fn console_login_deploy_logs_terminal_delete() -> anyhow::Result<()> {
    let p = Platform::start_with(&["--resources-every-ms", "500"]).await?;
    let dev = p.developer("console_org", "cora", "Manager").await?;

    // The page comes with a strict content security policy.
    let r = reqwest::get(format!("{}/console/", p.url)).await?;
    let csp = r.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");

    // The console's built-in client sends codes to the console only.
    let steal = format!(
        "{}/oauth2/authorize?response_type=code&client_id=op-console&redirect_uri=http://127.0.0.1:1/steal&scope=openid&code_challenge={}&code_challenge_method=S256",
        p.url,
        "a".repeat(43)
    );
    assert_eq!(reqwest::get(steal).await?.status(), 400, "a code for the console never goes elsewhere");
    let (s, _) = p.admin().await?.post("/op/v1/oidc/clients", &serde_json::json!({"name": "op-console", "redirectUris": ["http://127.0.0.1:1/x"]})).await?;
    assert_eq!(s, 400, "the console's client id is reserved");

    let b = Browser::start().await?;
    b.goto(&format!("{}/console/", p.url)).await?;
    b.find("#login-user", WAIT).await?;
    b.screenshot("01-login").await?;
    // A wrong password says so and stays on the login page.
    b.type_into("#login-user", "cora").await?;
    b.type_into("#login-password", "not-the-password").await?;
    b.click("#login-submit").await?;
    b.wait_text("#error", "wrong user name or password", WAIT).await?;
    b.type_into("#login-password", "correct-horse-battery").await?;
    b.click("#login-submit").await?;
    b.wait_until(&visible("dashboard"), "the dashboard after login", WAIT).await?;
    let who = b.text("#who").await?;
    assert!(who.contains("cora") && who.contains("console_org"), "{who}");

    // Onboard the sample app and deploy it.
    b.goto(&format!("{}/console/#/apps", p.url)).await?;
    b.wait_until(&visible("apps"), "the apps page", WAIT).await?;
    b.type_into("#app-name", "web_console").await?;
    b.type_into("#app-version", "1.0").await?;
    b.type_into("#app-image", SAMPLE_IMAGE).await?;
    b.type_into("#app-port", "8080").await?;
    b.click("#app-submit").await?;
    b.wait_text("#apps", "web_console", WAIT).await?;
    b.wait_until("return document.querySelectorAll('#deploy-app option').length == 1 && document.querySelectorAll('#deploy-zone option').length >= 1", "the deploy form's choices", WAIT).await?;
    b.type_into("#deploy-name", "web_console_1").await?;
    b.screenshot("02-apps").await?;
    b.click("#deploy-submit").await?;
    b.wait_until(&visible("instances"), "the instances page after deploying", WAIT).await?;
    b.wait_text("#instances", "ready", Duration::from_secs(90)).await?;
    b.screenshot("03-instances").await?;
    let (_, insts) = dev.get(&format!("{CAMARA}/appinstances")).await?;
    let id = insts[0]["appInstanceId"].as_str().unwrap_or_default().to_string();
    assert_eq!(insts[0]["name"], "web_console_1", "{insts}");

    // The instance page: a command in the terminal writes to the app's output, which the
    // followed logs then show.
    b.click("#instances a.open").await?;
    b.wait_until(&visible("instance"), "the instance page", WAIT).await?;
    b.wait_text("#inst-state", "Ready", WAIT).await?;
    b.type_into("#term-input", "echo console-was-here > /proc/1/fd/1; echo from-the-terminal; ls /").await?;
    b.click("#term-send").await?;
    let out = b.wait_text("#term-out", "[exit 0]", WAIT).await?;
    assert!(out.contains("from-the-terminal") && out.contains("proc"), "{out}");
    b.wait_text("#inst-logs", "console-was-here", WAIT).await?;
    b.wait_text("#inst-events", "Ready", WAIT).await?;
    b.screenshot("04-instance-logs-terminal").await?;

    // Dashboard charts from resource readings; the map with the zone and the instance.
    b.goto(&format!("{}/console/#/dashboard", p.url)).await?;
    b.wait_until("return document.querySelectorAll('#chart-mem rect.bar').length == 1 && document.querySelectorAll('#chart-cpu polyline').length == 1", "the charts", WAIT).await?;
    b.wait_text("#dash-ready", "1", WAIT).await?;
    b.wait_text("#dash-health", "web_console_1", WAIT).await?;
    b.screenshot("05-dashboard").await?;
    b.goto(&format!("{}/console/#/map", p.url)).await?;
    b.wait_until("return document.querySelector('#map circle.zone[data-zone=\"local\"]') != null && document.querySelector('#map circle.instance.ready') != null", "the map", WAIT).await?;
    b.screenshot("06-map").await?;

    // A cluster made from the console becomes ready there.
    b.goto(&format!("{}/console/#/clusters", p.url)).await?;
    b.wait_until("return document.querySelectorAll('#cluster-zone option').length >= 1", "the cluster form's zones", WAIT).await?;
    b.type_into("#cluster-name", "console-cluster").await?;
    b.click("#cluster-submit").await?;
    b.wait_text("#clusters", "Ready", WAIT).await?;
    assert!(b.text("#clusters").await?.contains("denied"), "outbound traffic is denied unless asked for");
    // A load balancer over the cluster, made from the console: it gets a front end.
    b.wait_until("return document.querySelectorAll('#lb-cluster option').length == 1 && document.querySelectorAll('#lb-app option').length == 1", "the load balancer form's choices", WAIT).await?;
    b.type_into("#lb-name", "front").await?;
    b.type_into("#lb-port", "8080").await?;
    b.click("#lb-submit").await?;
    b.wait_text("#lbs", "front", WAIT).await?;
    let (_, lbs) = dev.get("/op/v1/loadbalancers").await?;
    assert!(lbs[0]["frontend"].as_str().is_some_and(|f| f.contains(':')), "{lbs}");
    b.screenshot("07-clusters").await?;
    let (_, cls) = dev.get("/op/v1/clusters").await?;
    assert_eq!(cls[0]["name"], "console-cluster", "{cls}");

    // The audit log has the deployment; alarms and receivers show.
    b.goto(&format!("{}/console/#/audit", p.url)).await?;
    b.wait_text("#audit", "/appinstances", WAIT).await?;
    b.screenshot("07b-audit").await?;
    b.goto(&format!("{}/console/#/alarms", p.url)).await?;
    b.wait_until(&visible("alarms"), "the alarms page", WAIT).await?;
    // A receiver added from the console is the organization's; a bad URL says what is wrong.
    b.type_into("#receiver-name", "pager").await?;
    b.type_into("#receiver-url", "ftp://nowhere").await?;
    b.click("#receiver-submit").await?;
    b.wait_text("#error", "spec.url", WAIT).await?;
    b.type_into("#receiver-url", "http://127.0.0.1:9/alerts").await?;
    b.click("#receiver-submit").await?;
    b.wait_text("#receivers", "http://127.0.0.1:9/alerts", WAIT).await?;
    let (_, rs) = dev.get("/op/v1/alarmreceivers").await?;
    assert_eq!((rs[0]["name"].as_str(), rs[0]["organization"].as_str()), (Some("pager"), Some("console_org")), "{rs}");
    b.screenshot("08-alarms").await?;

    // Delete from the instances page; it goes from the platform too.
    b.goto(&format!("{}/console/#/instances", p.url)).await?;
    b.wait_text("#instances", "web_console_1", WAIT).await?;
    b.click("#instances button.danger").await?;
    b.wait_until("return document.querySelectorAll('#instances tbody tr').length == 0", "the instance gone from the table", Duration::from_secs(90)).await?;
    dev.wait_gone(&id, WAIT).await?;
    b.screenshot("09-deleted").await?;

    // Log out: back to the login page, and the token is gone from the tab.
    b.click("#logout").await?;
    b.wait_until(&visible("login"), "the login page after logging out", WAIT).await?;
    assert_eq!(b.script("return sessionStorage.getItem('op-token')", serde_json::json!([])).await?, serde_json::Value::Null);

    // Single sign-on: the platform's OpenID Connect provider signs the user in (authorization
    // code with PKCE), and its token drives the console.
    b.click("#sso").await?;
    b.find("input[name=username]", WAIT).await?;
    assert!(b.script("return location.pathname", serde_json::json!([])).await?.as_str() == Some("/oauth2/authorize"));
    b.type_into("input[name=username]", "cora").await?;
    b.type_into("input[name=password]", "correct-horse-battery").await?;
    b.screenshot("10-sso").await?;
    b.click("button[type=submit]").await?;
    b.wait_until(&visible("dashboard"), "the dashboard after single sign-on", WAIT).await?;
    assert!(b.text("#who").await?.contains("cora"));
    assert_eq!(b.script("return location.search", serde_json::json!([])).await?, serde_json::json!(""), "the code is gone from the address");
    b.goto(&format!("{}/console/#/audit", p.url)).await?;
    b.wait_text("#audit", "/appinstances", WAIT).await?;
    b.close().await;
    for shot in ["01-login", "04-instance-logs-terminal", "06-map", "09-deleted"] {
        let f = op_e2e::browser::screenshot_dir().join(format!("{shot}.png"));
        assert!(std::fs::metadata(&f).map(|m| m.len() > 1000).unwrap_or(false), "{} kept", f.display());
    }
    Ok(())
}
