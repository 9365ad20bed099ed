//! The zone ingress for federated instances (partner role): a partner's devices reach an
//! instance we run for it at our ingress host and a port relayed to the instance's endpoint,
//! so no cloudlet address ever crosses the EWBI. One TCP relay per (instance, interface); its
//! port is recorded with the instance, so after a restart the same port serves again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use op_types::ewbi::objects::InstanceStatistics;
use op_types::Uid;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

struct Relay {
    port: u16,
    target: Arc<RwLock<String>>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

/// A relay's traffic, counted as it flows (no lock on the data path).
#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    active: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Connections already reported as sessions served.
    reported: AtomicU64,
}

/// The relays this process runs.
#[derive(Default)]
pub struct Ingress {
    bind_host: String,
    relays: Mutex<HashMap<(Uid, String), Relay>>,
}

impl Ingress {
    /// Relays listening on `bind_host`.
    pub fn new(bind_host: &str) -> Self {
        Self { bind_host: bind_host.to_string(), relays: Mutex::default() }
    }

    /// Makes sure interface `iface` of instance `uid` is relayed to `target` (`host:port`):
    /// on `port` when given (the one recorded before a restart), else on a free one. Returns
    /// the port. A relay whose target moved is repointed without a new port.
    pub async fn ensure(&self, uid: Uid, iface: &str, target: String, port: Option<u16>) -> std::io::Result<u16> {
        let key = (uid, iface.to_string());
        if let Ok(relays) = self.relays.lock() {
            if let Some(r) = relays.get(&key) {
                if let Ok(mut t) = r.target.write() {
                    *t = target;
                }
                return Ok(r.port);
            }
        }
        let listener = match port {
            Some(p) => match TcpListener::bind((self.bind_host.as_str(), p)).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(port = p, error = %e, "recorded ingress port unavailable; taking another");
                    TcpListener::bind((self.bind_host.as_str(), 0)).await?
                }
            },
            None => TcpListener::bind((self.bind_host.as_str(), 0)).await?,
        };
        let port = listener.local_addr()?.port();
        let target = Arc::new(RwLock::new(target));
        let counters = Arc::new(Counters::default());
        let (t, c) = (target.clone(), counters.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                let to = t.read().map(|g| g.clone()).unwrap_or_default();
                let c = c.clone();
                c.connections.fetch_add(1, Ordering::Relaxed);
                c.active.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let _ = inbound.set_nodelay(true);
                    match TcpStream::connect(&to).await {
                        Ok(mut outbound) => {
                            let _ = outbound.set_nodelay(true);
                            if let Ok((up, down)) = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await {
                                c.bytes_in.fetch_add(up, Ordering::Relaxed);
                                c.bytes_out.fetch_add(down, Ordering::Relaxed);
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "ingress relay: instance unreachable"),
                    }
                    c.active.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        if let Ok(mut relays) = self.relays.lock() {
            relays.insert(key, Relay { port, target, counters, task });
        }
        Ok(port)
    }

    /// The traffic through every relay of instance `uid` since they started in this process.
    pub fn statistics(&self, uid: Uid) -> InstanceStatistics {
        let mut st = InstanceStatistics::default();
        if let Ok(relays) = self.relays.lock() {
            for r in relays.iter().filter(|((u, _), _)| *u == uid).map(|(_, r)| &r.counters) {
                st.connections += r.connections.load(Ordering::Relaxed);
                st.active_connections += r.active.load(Ordering::Relaxed);
                st.bytes_in += r.bytes_in.load(Ordering::Relaxed);
                st.bytes_out += r.bytes_out.load(Ordering::Relaxed);
            }
        }
        st
    }

    /// Connections to instance `uid` not reported yet, now counted as reported: what the
    /// partner is told as sessions served.
    pub fn take_sessions(&self, uid: Uid) -> u64 {
        let mut n = 0;
        if let Ok(relays) = self.relays.lock() {
            for r in relays.iter().filter(|((u, _), _)| *u == uid).map(|(_, r)| &r.counters) {
                let total = r.connections.load(Ordering::Relaxed);
                n += total.saturating_sub(r.reported.swap(total, Ordering::Relaxed));
            }
        }
        n
    }

    /// Stops every relay of instance `uid`.
    pub fn remove(&self, uid: Uid) {
        if let Ok(mut relays) = self.relays.lock() {
            relays.retain(|(u, _), r| {
                if *u == uid {
                    r.task.abort();
                }
                *u != uid
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn relays_bytes_both_ways_and_follows_a_moved_target() {
        async fn echo(tag: u8) -> String {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap().to_string();
            tokio::spawn(async move {
                loop {
                    let (mut s, _) = l.accept().await.unwrap();
                    tokio::spawn(async move {
                        let mut b = [0u8; 4];
                        s.read_exact(&mut b).await.unwrap();
                        s.write_all(&[tag, b[0], b[1], b[2]]).await.unwrap();
                    });
                }
            });
            addr
        }
        let ingress = Ingress::new("127.0.0.1");
        let uid = Uid::random();
        let port = ingress.ensure(uid, "http", echo(1).await, None).await.unwrap();
        let talk = || async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(b"abcd").await.unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.unwrap();
            b
        };
        assert_eq!(&talk().await, &[1, b'a', b'b', b'c']);
        let mut st = ingress.statistics(uid);
        for _ in 0..100 {
            if st.active_connections == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            st = ingress.statistics(uid);
        }
        assert_eq!((st.connections, st.active_connections, st.bytes_in, st.bytes_out), (1, 0, 4, 4), "{st:?}");
        assert_eq!(ingress.statistics(Uid::random()), InstanceStatistics::default());
        assert_eq!(ingress.take_sessions(uid), 1, "one connection to report");
        assert_eq!(ingress.take_sessions(uid), 0, "reported once");
        let again = ingress.ensure(uid, "http", echo(2).await, None).await.unwrap();
        assert_eq!(again, port, "a moved target keeps its port");
        assert_eq!(talk().await[0], 2);
        ingress.remove(uid);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err(), "removed relays stop listening");
    }
}
