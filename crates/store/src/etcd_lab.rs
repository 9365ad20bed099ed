//! A local etcd cluster on loopback, of Debian's `etcd` (package `etcd-server`), for the
//! store suite, the fault tests and the scale benchmark: each starts its own cluster in a
//! directory of its own, on free ports, so runs never share state, and can stop and restart
//! single members to test what clients see when one or two of three are gone.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a lab cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The `etcd` program is missing or did not start.
    #[error("cannot start etcd ({program}): {reason}; install Debian's etcd-server (scripts/setup-runtime.sh does)")]
    Start {
        /// The program run.
        program: String,
        /// What failed.
        reason: String,
    },
    /// The cluster did not answer in time.
    #[error("etcd cluster did not become healthy within {0:?}; see the logs in {1}")]
    NotHealthy(Duration, String),
}

struct LabMember {
    name: String,
    client_port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

/// A running cluster; its members are killed when it is dropped.
pub struct EtcdLab {
    dir: PathBuf,
    program: String,
    members: Vec<LabMember>,
}

fn free_port() -> Result<u16, LabError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| LabError::Start { program: "etcd".into(), reason: e.to_string() })?;
    l.local_addr().map(|a| a.port()).map_err(|e| LabError::Start { program: "etcd".into(), reason: e.to_string() })
}

impl EtcdLab {
    /// Starts `size` members with data under `dir` and waits until they serve.
    pub async fn start(dir: &Path, size: usize) -> Result<Self, LabError> {
        let program = std::env::var("OP_ETCD_BIN").unwrap_or_else(|_| "etcd".to_string());
        let ports: Vec<(u16, u16)> = (0..size).map(|_| Ok((free_port()?, free_port()?))).collect::<Result<_, LabError>>()?;
        let initial: Vec<String> = ports.iter().enumerate().map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}")).collect();
        let token = format!("op-lab-{}", std::process::id());
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                let name = format!("m{i}");
                let args: Vec<String> = [
                    "--name", &name,
                    "--data-dir", &dir.join(&name).display().to_string(),
                    "--listen-client-urls", &format!("http://127.0.0.1:{client}"),
                    "--advertise-client-urls", &format!("http://127.0.0.1:{client}"),
                    "--listen-peer-urls", &format!("http://127.0.0.1:{peer}"),
                    "--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}"),
                    "--initial-cluster", &initial.join(","),
                    "--initial-cluster-token", &token,
                    "--initial-cluster-state", "new",
                    "--max-txn-ops", "10000",
                    "--max-request-bytes", "33554432",
                    "--quota-backend-bytes", "8589934592",
                    "--auto-compaction-mode", "revision",
                    "--auto-compaction-retention", "100000",
                    "--heartbeat-interval", "100",
                    "--election-timeout", "1000",
                    "--log-level", "warn",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                LabMember { name, client_port: *client, args, child: None }
            })
            .collect();
        let mut lab = Self { dir: dir.to_path_buf(), program, members };
        for i in 0..size {
            lab.start_member(i)?;
        }
        lab.wait_healthy(Duration::from_secs(30)).await?;
        Ok(lab)
    }

    /// The members' client URLs.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| format!("http://127.0.0.1:{}", m.client_port)).collect()
    }

    /// Starts member `i` again (after [`EtcdLab::stop_member`]); it rejoins with its data.
    pub fn start_member(&mut self, i: usize) -> Result<(), LabError> {
        let m = &mut self.members[i];
        if m.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", m.name)))
            .map_err(|e| LabError::Start { program: self.program.clone(), reason: e.to_string() })?;
        let child = Command::new(&self.program)
            .args(&m.args)
            // Members share this machine's few cores: one scheduler thread each keeps three of
            // them from spinning against each other (OP_ETCD_GOMAXPROCS overrides).
            .env("GOMAXPROCS", std::env::var("OP_ETCD_GOMAXPROCS").unwrap_or_else(|_| "1".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| LabError::Start { program: self.program.clone(), reason: e.to_string() })?;
        m.child = Some(child);
        Ok(())
    }

    /// Kills member `i` (SIGKILL: no goodbye to its peers).
    pub fn stop_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until every running member answers its health endpoint.
    pub async fn wait_healthy(&self, within: Duration) -> Result<(), LabError> {
        let begun = Instant::now();
        let running: Vec<u16> = self.members.iter().filter(|m| m.child.is_some()).map(|m| m.client_port).collect();
        while begun.elapsed() < within {
            let mut ok = 0;
            for port in &running {
                if health(*port).await {
                    ok += 1;
                }
            }
            if ok == running.len() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(LabError::NotHealthy(within, self.dir.display().to_string()))
    }
}

/// Asks one member's `/health` over plain HTTP/1.1 (etcd answers `{"health":"true"}` only
/// while the cluster has a leader).
async fn health(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).await.ok()?;
        Some(body.contains("\"health\":\"true\""))
    };
    tokio::time::timeout(Duration::from_secs(2), ask).await.ok().flatten().unwrap_or(false)
}

impl Drop for EtcdLab {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.stop_member(i);
        }
    }
}
