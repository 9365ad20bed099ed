//! Joining a client's connection to its instance's in the kernel, so that the bytes of a
//! routed connection no longer pass through the ingress: no wake-up, read or write per
//! request (a user-space proxy costs four system calls and two wake-ups per round trip,
//! which on a small machine halves what the instance can serve).
//!
//! Once the ingress has read the first request's head, routed it and written it upstream,
//! [`Splicer::splice`] hands both sockets to the kernel (`kernel::Sockmap`): each
//! sends what it receives out of the other. The ingress keeps only the ends:
//!
//! - A thread waits for ends alone (`kernel::Ends`): the arrival of bytes wakes
//!   no one.
//! - When one side has sent its last byte (FIN), its end is passed on (a half-close of the
//!   other side), but only once every byte it sent has been queued on the other side; the
//!   kernel forwards on a work queue, so the thread compares the two sockets' byte counts
//!   (`kernel::counts`) and checks again shortly while they differ.
//! - When both directions have ended, or either connection failed, both sockets are closed
//!   (which takes them out of the map) and the connection's task hears of it.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::TcpStream as StdStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::kernel::{self, Ends, Sockmap};

/// The first wait before an end is checked again while bytes are still on their way.
const FIRST_RECHECK: Duration = Duration::from_millis(1);
/// Reads of what a client's socket holds before its connection is joined, and their size.
const DRAIN_READS: usize = 8;
const DRAIN_BUFFER: usize = 256 * 1024;
/// The longest wait between checks.
const LAST_RECHECK: Duration = Duration::from_millis(100);

/// One side of a spliced connection.
struct Side {
    sock: StdStream,
    /// Bytes the ingress read from it before the splice (they went upstream in user space).
    read_here: u64,
    /// Bytes the ingress wrote to it before the splice.
    written_here: u64,
    /// What it receives has ended and the end is waiting to be passed on.
    ending: bool,
    /// Its sending side has been shut (the other side's end was passed on).
    shut: bool,
}

/// A spliced connection: side 0 the client, side 1 the instance (or the point of presence
/// forwarded to).
struct Pair {
    sides: [Side; 2],
    /// When to check a pending end again, and the wait after that.
    recheck: Option<(Instant, Duration)>,
    done: Option<oneshot::Sender<()>>,
}

impl Pair {
    /// Whether every byte side `from` received has been queued on the other side.
    fn passed_on(&self, from: usize) -> io::Result<bool> {
        let (s, o) = (&self.sides[from], &self.sides[1 - from]);
        let (got, put) = (kernel::counts(s.sock.as_raw_fd())?, kernel::counts(o.sock.as_raw_fd())?);
        // `received` counts the FIN, which has arrived.
        let to_pass = got.received.saturating_sub(1).saturating_sub(s.read_here);
        Ok(put.queued.saturating_sub(o.written_here) >= to_pass)
    }

    /// Passes on the ends that can be; returns whether the connection is over.
    fn advance(&mut self) -> bool {
        for from in 0..2 {
            if !self.sides[from].ending {
                continue;
            }
            match self.passed_on(from) {
                Ok(false) => continue,
                Ok(true) => kernel::shut_write(self.sides[1 - from].sock.as_raw_fd()),
                // A socket that cannot say its counts is broken: give up on the connection.
                Err(_) => return true,
            }
            self.sides[from].ending = false;
            self.sides[1 - from].shut = true;
        }
        let waiting = self.sides.iter().any(|s| s.ending);
        self.recheck = match (waiting, self.recheck) {
            (false, _) => None,
            (true, None) => Some((Instant::now() + FIRST_RECHECK, FIRST_RECHECK)),
            (true, Some((at, wait))) if at <= Instant::now() => {
                let wait = (wait * 2).min(LAST_RECHECK);
                Some((Instant::now() + wait, wait))
            }
            (true, r) => r,
        };
        self.sides.iter().all(|s| s.shut)
    }
}

struct Shared {
    ends: Ends,
    pairs: Mutex<HashMap<u64, Pair>>,
    stop: std::sync::atomic::AtomicBool,
}

/// Splices connections in the kernel; one per [`crate::Mesh`].
pub struct Splicer {
    map: Sockmap,
    shared: Arc<Shared>,
    next: AtomicU64,
    spliced: AtomicU64,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Splicer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.ends.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Splicer {
    /// Loads the kernel side and starts the thread that watches ends; fails where the kernel
    /// does not allow it (no BPF, no privilege, a kernel older than 5.13).
    pub fn open() -> io::Result<Self> {
        let map = Sockmap::open()?;
        let shared = Arc::new(Shared { ends: Ends::new()?, pairs: Mutex::default(), stop: false.into() });
        let s = shared.clone();
        let thread = std::thread::Builder::new().name("op-splice".into()).spawn(move || watch(&s))?;
        Ok(Self { map, shared, next: AtomicU64::new(0), spliced: AtomicU64::new(0), thread: Some(thread) })
    }

    /// Connections spliced so far.
    pub fn spliced(&self) -> u64 {
        self.spliced.load(Ordering::Relaxed)
    }

    /// Connections spliced now (both sides not yet closed).
    pub fn open_now(&self) -> usize {
        self.shared.pairs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Hands `client` and `up` to the kernel. `read_here` bytes were read from the client
    /// and `written_here` written upstream by the ingress. Resolves when both have closed.
    /// When the kernel refuses, both are given back, to be copied in user space.
    pub async fn splice(&self, client: TcpStream, mut up: TcpStream, mut read_here: u64, mut written_here: u64) -> Result<oneshot::Receiver<()>, Refused> {
        // The kernel forwards whole segments: one the ingress had begun reading would go
        // twice. So what the client's socket holds is read and written upstream here first:
        // a read that does not fill its buffer took every segment whole, and what arrives
        // after it arrives whole. A client that keeps filling the buffer is copied in user
        // space instead.
        // Usually there is nothing: a small buffer first, a large one only when it filled.
        let (mut small, mut large) = ([0u8; 4096], Vec::new());
        let mut empty = false;
        for _ in 0..DRAIN_READS {
            let buf: &mut [u8] = if large.is_empty() { &mut small } else { &mut large };
            match kernel::read_now(client.as_raw_fd(), buf) {
                Ok(0) => {
                    empty = true;
                    break;
                }
                Ok(n) => {
                    if let Err(error) = up.write_all(&buf[..n]).await {
                        return Err(Refused { back: None, error });
                    }
                    read_here += n as u64;
                    written_here += n as u64;
                    if n < buf.len() {
                        empty = true;
                        break;
                    }
                    large.resize(DRAIN_BUFFER, 0);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    empty = true;
                    break;
                }
                Err(error) => return Err(Refused { back: None, error }),
            }
        }
        if !empty {
            return Err(Refused { back: Some((client, up)), error: io::Error::new(io::ErrorKind::WouldBlock, "the client was still sending") });
        }
        // Taken from the runtime, so that their bytes wake it no more. This fails only when
        // the runtime cannot let go of them, which leaves nothing to copy with either.
        let (c, u) = match (client.into_std(), up.into_std()) {
            (Ok(c), Ok(u)) => (c, u),
            (Err(e), _) | (_, Err(e)) => return Err(Refused { back: None, error: e }),
        };
        let (cfd, ufd) = (c.as_raw_fd(), u.as_raw_fd());
        let joined = kernel::gate(cfd).and_then(|_| kernel::gate(ufd)).and_then(|_| self.map.join(cfd, ufd));
        if let Err(error) = joined {
            let _ = (kernel::ungate(cfd), kernel::ungate(ufd));
            let back = TcpStream::from_std(c).and_then(|c| Ok((c, TcpStream::from_std(u)?))).ok();
            return Err(Refused { back, error });
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let side = |sock, read_here, written_here| Side { sock, read_here, written_here, ending: false, shut: false };
        let pair = Pair { sides: [side(c, read_here, 0), side(u, 0, written_here)], recheck: None, done: Some(tx) };
        self.shared.pairs.lock().unwrap_or_else(|e| e.into_inner()).insert(id, pair);
        // What waited behind the gates goes through the map now, in order; an end that
        // already came is reported as soon as the socket is watched.
        let watched = kernel::ungate(cfd).and_then(|_| kernel::ungate(ufd)).and_then(|_| self.shared.ends.add(cfd, id << 1)).and_then(|_| self.shared.ends.add(ufd, id << 1 | 1));
        if let Err(error) = watched {
            // Gated or unwatched, the pair would stall or never be closed: close it now.
            self.shared.pairs.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            return Err(Refused { back: None, error });
        }
        self.spliced.fetch_add(1, Ordering::Relaxed);
        Ok(rx)
    }
}

/// Why a connection was not spliced, with its sockets when they can still be used.
pub struct Refused {
    /// The client's and the upstream socket, as they were.
    pub back: Option<(TcpStream, TcpStream)>,
    /// What the kernel said.
    pub error: io::Error,
}

/// Ends are passed on and pairs closed here. Only pairs with an end on its way are looked
/// at, so a wake-up costs nothing for the thousands of others.
fn watch(s: &Shared) {
    let mut ended = Vec::new();
    let mut pending: HashSet<u64> = HashSet::new();
    loop {
        let timeout = {
            let pairs = s.pairs.lock().unwrap_or_else(|e| e.into_inner());
            let next = pending.iter().filter_map(|id| pairs.get(id)?.recheck.map(|(at, _)| at)).min();
            next.map(|at| at.saturating_duration_since(Instant::now()))
        };
        ended.clear();
        s.ends.wait(timeout, &mut ended);
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        let mut pairs = s.pairs.lock().unwrap_or_else(|e| e.into_inner());
        for e in &ended {
            let (id, from) = (e.token >> 1, (e.token & 1) as usize);
            let Some(p) = pairs.get_mut(&id) else { continue };
            if e.failed {
                p.sides.iter_mut().for_each(|s| s.shut = true);
            } else if e.closed && !p.sides[from].ending && !p.sides[1 - from].shut {
                p.sides[from].ending = true;
                p.recheck = None;
            }
            pending.insert(id);
        }
        let now = Instant::now();
        let due: Vec<u64> = pending.iter().copied().filter(|id| pairs.get(id).is_none_or(|p| p.recheck.is_none_or(|(at, _)| at <= now))).collect();
        for id in due {
            let Some(p) = pairs.get_mut(&id) else {
                pending.remove(&id);
                continue;
            };
            if p.advance() {
                pending.remove(&id);
                if let Some(mut p) = pairs.remove(&id) {
                    if let Some(done) = p.done.take() {
                        let _ = done.send(());
                    }
                }
            } else if p.recheck.is_none() {
                pending.remove(&id);
            }
        }
    }
}
