//! The organizations' registry process: CNCF distribution (Debian's `docker-registry`),
//! configured and supervised by `opd`. Its token authentication points at `opd`'s token
//! endpoint and trusts a certificate over `opd`'s token signing key (the registry finds the
//! key by the token's `kid`, the key's libtrust id); its notifications come back to `opd`,
//! which tracks image versions from them. Storage is a directory in the data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use tracing::{info, warn};

/// What `opd` needs to run the registry.
pub struct RegistrySettings<'a> {
    /// The registry's program.
    pub program: &'a Path,
    /// Where it listens (`host:port`), which is also the first part of image references.
    pub listen: &'a str,
    /// The platform's data directory (the registry's state goes to `registry/` in it).
    pub data_dir: &'a Path,
    /// The token signing key (PKCS#8 PEM): the certificate the registry trusts is made over it.
    pub token_key_pem: &'a str,
    /// The tokens' issuer (the platform's URL).
    pub issuer: &'a str,
    /// Where the registry reaches `opd` (token realm, notifications).
    pub api_url: &'a str,
    /// The bearer of the registry's notifications.
    pub events_secret: &'a str,
}

fn config_text(s: &RegistrySettings<'_>, dir: &Path, http_secret: &str) -> String {
    let d = dir.display();
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  fields:\n    service: op-registry\n\
         storage:\n  filesystem:\n    rootdirectory: {d}/storage\n  delete:\n    enabled: true\n\
         http:\n  addr: {listen}\n  secret: {http_secret}\n\
         auth:\n  token:\n    realm: {api}/op/v1/registry/token\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {d}/token-cert.pem\n\
         notifications:\n  endpoints:\n    - name: opd\n      url: {api}/op/v1/registry/events\n      headers:\n        Authorization: [\"Bearer {secret}\"]\n      timeout: 3s\n      threshold: 10\n      backoff: 1s\n",
        listen = s.listen,
        api = s.api_url.trim_end_matches('/'),
        service = op_api::registry::SERVICE,
        issuer = s.issuer,
        secret = s.events_secret,
    )
}

/// A self-signed certificate over the token signing key: distribution trusts the keys of the
/// certificates in its `rootcertbundle`.
fn token_certificate(key_pem: &str) -> anyhow::Result<String> {
    let key = rcgen::KeyPair::from_pem(key_pem).context("reading the token signing key")?;
    let mut params = rcgen::CertificateParams::new(vec!["op-registry-token".to_string()]).context("certificate parameters")?;
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    Ok(params.self_signed(&key).context("signing the token certificate")?.pem())
}

/// Stops a registry an earlier `opd` started and left behind (after `kill -9`), found by its
/// pid file and command line, so the new one can take the port.
fn stop_leftover(pid_file: &Path, config: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|p| p.trim().parse::<u32>().ok()) else { return };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if String::from_utf8_lossy(&cmdline).contains(&config.display().to_string()) {
        info!(pid, "stopping the registry an earlier opd left running");
        let _ = std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status();
        for _ in 0..50 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Writes the registry's configuration and certificate, starts it, waits until it answers,
/// and keeps it running (started again if it exits) for as long as `opd` runs.
pub async fn start(s: RegistrySettings<'_>) -> anyhow::Result<()> {
    let dir = s.data_dir.join("registry");
    std::fs::create_dir_all(dir.join("storage")).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("token-cert.pem"), token_certificate(s.token_key_pem)?)?;
    let http_secret = op_types::secret::derive_hex_str(s.events_secret.as_bytes(), "registry-http/", "");
    let config: PathBuf = dir.join("config.yml");
    write_private(&config, &config_text(&s, &dir, &http_secret))?;
    let pid_file = dir.join("registry.pid");
    stop_leftover(&pid_file, &config);
    let program = s.program.to_path_buf();
    let mut child = spawn(&program, &config, &dir, &pid_file)?;
    let url = format!("http://{}/v2/", s.listen);
    let realm = format!("realm=\"{}/op/v1/registry/token\"", s.api_url.trim_end_matches('/'));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?;
    let mut up = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(&url).send().await {
            // Token authentication answers 401 with the challenge naming our token endpoint:
            // it is up, and it is ours (not another registry on the port).
            let challenge = r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            if r.status().as_u16() == 401 && challenge.contains(&realm) {
                up = true;
                break;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("the registry exited ({status}); see {}", dir.join("registry.log").display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !up {
        bail!("the registry did not answer on {url} (is another registry on that port?); see {}", dir.join("registry.log").display());
    }
    info!(listen = %s.listen, "organizations' registry running");
    tokio::spawn(async move {
        loop {
            match child.wait().await {
                Ok(status) => warn!(%status, "the registry exited; starting it again"),
                Err(e) => warn!(error = %e, "lost the registry process; starting it again"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            match spawn(&program, &config, &dir, &pid_file) {
                Ok(c) => child = c,
                Err(e) => {
                    warn!(error = %e, "cannot start the registry again");
                    return;
                }
            }
        }
    });
    Ok(())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

const SETPRIV: &str = "/usr/bin/setpriv";

fn spawn(program: &Path, config: &Path, dir: &Path, pid_file: &Path) -> anyhow::Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("registry.log"))?;
    // The registry goes when opd goes, even by `kill -9` (its parent-death signal, set by
    // util-linux's setpriv when there is one).
    let mut cmd = if Path::new(SETPRIV).exists() {
        let mut c = tokio::process::Command::new(SETPRIV);
        c.args(["--pdeathsig", "KILL", "--"]).arg(program);
        c
    } else {
        tokio::process::Command::new(program)
    };
    let child = cmd
        .arg("serve")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} (install Debian's docker-registry, or give --registry-bin)", program.display()))?;
    if let Some(pid) = child.id() {
        std::fs::write(pid_file, pid.to_string())?;
    }
    Ok(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_is_over_the_signing_key() {
        let pem = op_api::auth::TokenKeys::generate_pem().unwrap();
        let cert = token_certificate(&pem).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        let key = rcgen::KeyPair::from_pem(&pem).unwrap();
        let der = base64_der(&cert);
        // The certificate carries the key's public part (its SubjectPublicKeyInfo).
        let spki = key.public_key_der();
        assert!(der.windows(spki.len()).any(|w| w == spki.as_slice()));
    }

    fn base64_der(pem: &str) -> Vec<u8> {
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD.decode(body).unwrap()
    }

    #[test]
    fn config_names_the_realm_service_and_bundle() {
        let s = RegistrySettings {
            program: Path::new("docker-registry"),
            listen: "127.0.0.1:5000",
            data_dir: Path::new("/d"),
            token_key_pem: "",
            issuer: "http://127.0.0.1:7080",
            api_url: "http://127.0.0.1:7080/",
            events_secret: "s3",
        };
        let c = config_text(&s, Path::new("/d/registry"), "h");
        assert!(c.contains("realm: http://127.0.0.1:7080/op/v1/registry/token"), "{c}");
        assert!(c.contains("service: op-registry") && c.contains("rootcertbundle: /d/registry/token-cert.pem") && c.contains("addr: 127.0.0.1:5000"), "{c}");
        assert!(c.contains("[\"Bearer s3\"]") && c.contains("url: http://127.0.0.1:7080/op/v1/registry/events"), "{c}");
    }
}
