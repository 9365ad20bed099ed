//! A headless Chromium driven over the W3C WebDriver protocol (Debian's `chromium` and
//! `chromium-driver`), for the console's end-to-end tests: find, type, click, read, run a
//! script, take screenshots kept as test artifacts.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session and its driver process.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    driver: Child,
    shots: PathBuf,
}

/// Where screenshots go: `target/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots")
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session in it.
    pub async fn start() -> Result<Self> {
        let port = crate::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver (apt-get install chromium chromium-driver)")?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let mut b = Self { http, base: format!("http://127.0.0.1:{port}"), driver, shots: screenshot_dir() };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = b.http.get(format!("{}/status", b.base)).send().await {
                if r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true) {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]}}}});
        let v = b.call("POST", "/session", Some(caps)).await?;
        let id = v["sessionId"].as_str().context("no session id")?.to_string();
        b.base = format!("{}/session/{id}", b.base);
        std::fs::create_dir_all(&b.shots)?;
        Ok(b)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let r = req.send().await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            bail!("webdriver {method} {path}: {status} {}", v["value"]["message"]);
        }
        Ok(v["value"].clone())
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.call("POST", "/url", Some(json!({"url": url}))).await.map(|_| ())
    }

    /// The element matching `css`, waiting up to `timeout` for it to exist.
    pub async fn find(&self, css: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(v) = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css}))).await {
                if let Some(id) = v[ELEMENT].as_str() {
                    return Ok(id.to_string());
                }
            }
            if Instant::now() > deadline {
                bail!("no element {css} after {timeout:?}; page text: {}", self.page_text().await.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the element matching `css` (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let id = self.find(css, Duration::from_secs(10)).await?;
        self.call("POST", &format!("/element/{id}/clear"), None).await?;
        self.call("POST", &format!("/element/{id}/value"), Some(json!({"text": text}))).await.map(|_| ())
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) -> Result<()> {
        let id = self.find(css, Duration::from_secs(10)).await?;
        self.call("POST", &format!("/element/{id}/click"), None).await.map(|_| ())
    }

    /// The visible text of the element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String> {
        let id = self.find(css, Duration::from_secs(10)).await?;
        Ok(self.call("GET", &format!("/element/{id}/text"), None).await?.as_str().unwrap_or_default().to_string())
    }

    /// The whole page's text (for failure messages).
    pub async fn page_text(&self) -> Result<String> {
        Ok(self.script("return document.body.innerText", json!([])).await?.as_str().unwrap_or_default().to_string())
    }

    /// Waits until the text of `css` contains `want`; returns it.
    pub async fn wait_text(&self, css: &str, want: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.text(css).await.unwrap_or_default();
            if t.contains(want) {
                return Ok(t);
            }
            if Instant::now() > deadline {
                bail!("{css} never showed {want:?}; it shows {t:?}; page: {}", self.page_text().await.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `script` in the page with `args`; returns its value.
    pub async fn script(&self, script: &str, args: Value) -> Result<Value> {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Waits until `script` returns true.
    pub async fn wait_until(&self, script: &str, what: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.script(script, json!([])).await.is_ok_and(|v| v == json!(true)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{what}: not after {timeout:?}; page: {}", self.page_text().await.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Saves a PNG of the page as `<name>.png` among the test artifacts; returns its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        use base64::Engine as _;
        let v = self.call("GET", "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default())?;
        anyhow::ensure!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.call("DELETE", "", None).await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
