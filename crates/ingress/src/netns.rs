//! Reaching an instance from inside its own network namespace.
//!
//! An instance's published port is reached through the runtime's bridge and NAT: a virtual
//! link, a bridge, connection tracking and address rewriting on every segment, each way. An
//! ingress on the instance's host can do without them: it opens its upstream socket in the
//! container's network namespace and connects to the instance's own address there, which the
//! kernel routes over that namespace's loopback. On two cores this costs the warm path about a
//! third less than the published port (`bench/serverless.sh` measures both ways against the
//! published port).
//!
//! A socket belongs to the namespace of the thread that creates it, and entering a namespace
//! moves only the calling thread. So one thread (`op-netns`) does nothing else: it enters the
//! instance's namespace, creates the socket and returns to the host's; the connection is then
//! made on the runtime like any other. The instance sees the connection come from its own
//! address (never from `127.0.0.1`, so that nothing it keeps for loopback callers is exposed).
//! Where the namespace cannot be entered (no privilege, the container gone, the instance not
//! listening on its address) the ingress connects to the published address instead.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::mpsc;

use tokio::net::TcpSocket;
use tokio::sync::oneshot;

/// A request for a socket in a namespace.
struct Ask {
    netns: PathBuf,
    v6: bool,
    reply: oneshot::Sender<io::Result<TcpSocket>>,
}

/// The way into instances' namespaces: the `op-netns` thread.
pub(crate) struct Entrance {
    asks: mpsc::Sender<Ask>,
}

impl Entrance {
    /// Starts the thread, remembering the namespace it starts in as the one to return to.
    pub(crate) fn open() -> io::Result<Self> {
        let home = File::open("/proc/thread-self/ns/net")?;
        let (asks, rx) = mpsc::channel();
        std::thread::Builder::new().name("op-netns".into()).spawn(move || serve(&home, rx))?;
        Ok(Self { asks })
    }

    /// A TCP socket (IPv6 with `v6`) in the network namespace whose file is `netns`.
    pub(crate) async fn socket(&self, netns: PathBuf, v6: bool) -> io::Result<TcpSocket> {
        let (reply, answer) = oneshot::channel();
        self.asks.send(Ask { netns, v6, reply }).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "namespaces cannot be entered here (see the log)")
}

/// Answers asks until none can be answered any more: when entering a namespace is not allowed
/// at all, or the thread could not return to `home` (it must never create a socket for the
/// host in an instance's namespace).
fn serve(home: &File, asks: mpsc::Receiver<Ask>) {
    for ask in asks {
        let entered = File::open(&ask.netns).and_then(|ns| crate::kernel::enter_netns(ns.as_fd()));
        let made = entered.and_then(|()| if ask.v6 { TcpSocket::new_v6() } else { TcpSocket::new_v4() });
        let back = crate::kernel::enter_netns(home.as_fd());
        let refused = matches!(&made, Err(e) if e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::ENOSYS));
        if let Err(e) = back {
            // A socket made in the instance's namespace is dropped here, unused.
            let _ = ask.reply.send(Err(io::Error::new(e.kind(), e.to_string())));
            tracing::warn!(error = %e, "the ingress could not return to the host's network namespace; instances are reached at their published ports from now on");
            return;
        }
        let _ = ask.reply.send(made);
        if refused {
            tracing::info!("the ingress may not enter network namespaces; instances are reached at their published ports");
            return;
        }
    }
}
