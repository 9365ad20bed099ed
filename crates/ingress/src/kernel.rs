//! The kernel interfaces the splice needs ([`crate::splice`]), the way into an instance's
//! network namespace ([`crate::netns`]) and a thread's scheduling slice ([`short_slice`]), and
//! the only unsafe code of the crate: a BPF sockhash with an `sk_skb` verdict program, socket
//! options, TCP counters, epoll, `setns` and `sched_setattr`.
//!
//! The map holds, under the socket cookie of each side, the other side. The verdict program,
//! run by the kernel on every segment a member socket receives, looks up the cookie of the
//! receiving socket and sends the segment out of the socket found; with no entry the bytes
//! stay on the receiving socket, which can only happen between the two entries of a join, and
//! the gates close that window.
//!
//! Joining keeps the bytes in order ([`crate::splice`]): the ingress writes upstream what it
//! read first, then both sockets are gated (`SO_RCVLOWAT` high, so bytes that arrive wait in
//! the socket without waking anyone), both entries are made, and the gates are opened
//! (lowering `SO_RCVLOWAT` makes the kernel hand whatever waited to the verdict program, in
//! order).
//!
//! Where the kernel refuses (no BPF, no privilege) [`Sockmap::open`] fails and the ingress
//! copies in user space.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `bpf(2)` commands.
const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_PROG_LOAD: i32 = 5;
const BPF_PROG_ATTACH: i32 = 8;
const BPF_MAP_DELETE_ELEM: i32 = 3;
/// `BPF_MAP_TYPE_SOCKHASH`.
const MAP_SOCKHASH: u32 = 18;
/// `BPF_PROG_TYPE_SK_SKB`.
const PROG_SK_SKB: u32 = 14;
/// `BPF_SK_SKB_VERDICT`: the verdict without a stream parser (Linux 5.13).
const ATTACH_SK_SKB_VERDICT: u32 = 38;
/// Helpers the program calls.
const FN_GET_SOCKET_COOKIE: i32 = 46;
const FN_SK_REDIRECT_HASH: i32 = 72;
/// Verdicts.
const SK_DROP: i32 = 0;
const SK_PASS: i32 = 1;
/// Entries in the map: two per spliced connection.
const MAX_ENTRIES: u32 = 65_536;
/// `SO_COOKIE` (not in every libc).
const SO_COOKIE: i32 = 57;
/// The gate: far more than can arrive while two map entries are made (microseconds); the
/// kernel also raises the socket's buffer to hold it, so it is kept moderate.
const GATE: i32 = 1 << 20;

/// One BPF instruction (`struct bpf_insn`).
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code) | u64::from(dst & 0xf | (src & 0xf) << 4) << 8 | u64::from(off as u16) << 16 | u64::from(imm as u32) << 32
}

/// The verdict program: `if skb.len == 0 { return SK_DROP } redirect(skb, map,
/// cookie(skb), egress); return SK_PASS`. The empty segment that carries a FIN must not be
/// forwarded: the kernel takes sending nothing for a broken pipe and stops forwarding (the
/// end itself is passed on by [`crate::splice`]).
fn program(map: RawFd) -> Vec<u64> {
    const LDX_W: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
    const JNE_K: u8 = 0x55; // if r_dst != imm goto +off
    const MOV_X: u8 = 0xbf; // r_dst = r_src
    const MOV_K: u8 = 0xb7; // r_dst = imm
    const ADD_K: u8 = 0x07; // r_dst += imm
    const STX_DW: u8 = 0x7b; // *(u64 *)(r_dst + off) = r_src
    const LD_IMM64: u8 = 0x18; // r_dst = imm64 (two slots); src 1: a map fd
    const CALL: u8 = 0x85;
    const EXIT: u8 = 0x95;
    vec![
        insn(LDX_W, 2, 1, 0, 0), // r2 = skb->len
        insn(JNE_K, 2, 0, 2, 0), // not empty: on
        insn(MOV_K, 0, 0, 0, SK_DROP),
        insn(EXIT, 0, 0, 0, 0),
        insn(MOV_X, 6, 1, 0, 0),                   // r6 = skb
        insn(CALL, 0, 0, 0, FN_GET_SOCKET_COOKIE), // r0 = cookie of the receiving socket
        insn(STX_DW, 10, 0, -8, 0),                // key on the stack
        insn(MOV_X, 1, 6, 0, 0),                   // r1 = skb
        insn(LD_IMM64, 2, 1, 0, map),              // r2 = map
        0,
        insn(MOV_X, 3, 10, 0, 0), // r3 = &key
        insn(ADD_K, 3, 0, 0, -8),
        insn(MOV_K, 4, 0, 0, 0),                  // flags: out of the other socket
        insn(CALL, 0, 0, 0, FN_SK_REDIRECT_HASH), // no entry: the bytes stay here
        insn(MOV_K, 0, 0, 0, SK_PASS),
        insn(EXIT, 0, 0, 0, 0),
    ]
}

fn bpf(cmd: i32, attr: &mut [u8; 128]) -> io::Result<i32> {
    // SAFETY: `attr` is a zeroed `union bpf_attr` of the size passed, filled for `cmd`; every
    // pointer in it refers to memory that outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

fn put32(a: &mut [u8; 128], at: usize, v: u32) {
    a[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8; 128], at: usize, v: u64) {
    a[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn owned(fd: i32) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn setsockopt(fd: RawFd, name: i32, v: i32) -> io::Result<()> {
    // SAFETY: `v` is a live i32 and its size is passed.
    let r = unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, name, (&v as *const i32).cast(), std::mem::size_of::<i32>() as u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn cookie(fd: RawFd) -> io::Result<u64> {
    let mut v = 0u64;
    let mut len = std::mem::size_of::<u64>() as u32;
    // SAFETY: `v` and `len` are live and `len` is `v`'s size.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, SO_COOKIE, (&mut v as *mut u64).cast(), &mut len) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v)
    }
}

/// The BPF side of the splice: the map and its program (attached for as long as the map
/// lives).
pub(crate) struct Sockmap {
    map: OwnedFd,
    _prog: OwnedFd,
}

impl Sockmap {
    /// Creates the map, loads and attaches the program.
    pub(crate) fn open() -> io::Result<Self> {
        let mut a = [0u8; 128];
        put32(&mut a, 0, MAP_SOCKHASH);
        put32(&mut a, 4, 8); // key: a cookie
        put32(&mut a, 8, 4); // value: a socket's descriptor
        put32(&mut a, 12, MAX_ENTRIES);
        let map = owned(bpf(BPF_MAP_CREATE, &mut a)?);
        let insns = program(map.as_raw_fd());
        let license = c"Apache-2.0";
        let mut log = vec![0u8; 4096];
        let mut a = [0u8; 128];
        put32(&mut a, 0, PROG_SK_SKB);
        put32(&mut a, 4, insns.len() as u32);
        put64(&mut a, 8, insns.as_ptr() as u64);
        put64(&mut a, 16, license.as_ptr() as u64);
        put32(&mut a, 24, 1); // verifier log level
        put32(&mut a, 28, log.len() as u32);
        put64(&mut a, 32, log.as_mut_ptr() as u64);
        let prog = match bpf(BPF_PROG_LOAD, &mut a) {
            Ok(fd) => owned(fd),
            Err(e) => {
                let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                return Err(io::Error::new(e.kind(), format!("{e}: {}", String::from_utf8_lossy(&log[..end]).trim())));
            }
        };
        let mut a = [0u8; 128];
        put32(&mut a, 0, map.as_raw_fd() as u32);
        put32(&mut a, 4, prog.as_raw_fd() as u32);
        put32(&mut a, 8, ATTACH_SK_SKB_VERDICT);
        bpf(BPF_PROG_ATTACH, &mut a)?;
        Ok(Self { map, _prog: prog })
    }

    fn elem(&self, cmd: i32, key: u64, sock: Option<RawFd>) -> io::Result<()> {
        let value = sock.unwrap_or(0) as u32;
        let mut a = [0u8; 128];
        put32(&mut a, 0, self.map.as_raw_fd() as u32);
        put64(&mut a, 8, &key as *const u64 as u64);
        if sock.is_some() {
            put64(&mut a, 16, &value as *const u32 as u64);
        }
        bpf(cmd, &mut a).map(|_| ())
    }

    /// Makes each socket send what it receives out of the other. Both are gated
    /// ([`gate`]), so that nothing arrives between the two entries.
    pub(crate) fn join(&self, a: RawFd, b: RawFd) -> io::Result<()> {
        let ka = cookie(a)?;
        self.elem(BPF_MAP_UPDATE_ELEM, ka, Some(b))?;
        let joined = cookie(b).and_then(|kb| self.elem(BPF_MAP_UPDATE_ELEM, kb, Some(a)));
        if joined.is_err() {
            let _ = self.elem(BPF_MAP_DELETE_ELEM, ka, None);
        }
        joined
    }
}

/// Holds back what `fd` receives from now on: it waits in the socket, unseen, until
/// [`ungate`].
pub(crate) fn gate(fd: RawFd) -> io::Result<()> {
    setsockopt(fd, libc::SO_RCVLOWAT, GATE)
}

/// Lets what waited in `fd` through (the kernel hands it on at once, in order).
pub(crate) fn ungate(fd: RawFd) -> io::Result<()> {
    setsockopt(fd, libc::SO_RCVLOWAT, 1)
}

/// A TCP socket's byte counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Data bytes received, plus one once the peer's FIN has arrived.
    pub(crate) received: u64,
    /// Data bytes queued to send, sent or not.
    pub(crate) queued: u64,
}

/// The byte counts of `fd`, read at once (`TCP_INFO`).
pub(crate) fn counts(fd: RawFd) -> io::Result<Counts> {
    // SAFETY: `tcp_info` is plain data, valid when zeroed.
    let mut t: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as u32;
    // SAFETY: `t` and `len` are live and `len` is `t`'s size.
    let r = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&mut t as *mut libc::tcp_info).cast(), &mut len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if (len as usize) < std::mem::size_of::<libc::tcp_info>() {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "TCP_INFO without byte counts"));
    }
    Ok(Counts { received: t.tcpi_bytes_received, queued: (t.tcpi_bytes_sent - t.tcpi_bytes_retrans) + u64::from(t.tcpi_notsent_bytes) })
}

/// Reads what `fd` holds now, without waiting: `WouldBlock` when it holds nothing. Asks the
/// socket itself, not a runtime's idea of whether it is readable.
pub(crate) fn read_now(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `struct sched_attr` as of Linux 3.14 (`SCHED_ATTR_SIZE_VER0`).
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// The turn [`short_slice`] asks for: about what a device's discovery takes to serve.
const SHORT_SLICE: std::time::Duration = std::time::Duration::from_micros(200);

/// Asks the kernel to run the calling thread in short turns (Linux 6.12 and later: EEVDF's
/// custom slice for normal threads). A thread that serves short requests and sleeps in between
/// is then picked soon after it wakes, ahead of threads in longer turns, while its share of
/// the CPU stays what its nice value gives it. Older kernels refuse or ignore it, which
/// changes nothing else.
pub fn short_slice() -> io::Result<()> {
    // SAFETY: plain syscall on the calling thread. errno is cleared first, so a nice of -1
    // can be told from a failure.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    };
    if nice == -1 && io::Error::last_os_error().raw_os_error() != Some(0) {
        return Err(io::Error::last_os_error());
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: SHORT_SLICE.as_nanos() as u64,
        deadline: 0,
        period: 0,
    };
    // SAFETY: `attr` is a live `sched_attr` whose size is in its first field; 0 names the
    // calling thread.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Lowers the calling thread's scheduling priority to nice value `nice` (on Linux each thread
/// has its own). Background work (reconciles, periodic controllers) runs this way, so that while
/// the CPU is short the kernel gives it first to the threads that answer requests, and the
/// background work takes what is left: the same work is done, answers wait less for it.
pub fn background_priority(nice: i32) -> io::Result<()> {
    // SAFETY: plain syscall; PRIO_PROCESS with 0 names the calling thread on Linux.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Moves the calling thread into the network namespace whose file is `ns` (sockets it creates
/// afterwards belong to that namespace).
pub(crate) fn enter_netns(ns: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor the caller holds open.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Shuts the sending side of `fd` (its peer reads the end).
pub(crate) fn shut_write(fd: RawFd) {
    // SAFETY: plain syscall on a descriptor the caller owns.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// An epoll instance that reports only ends (`EPOLLRDHUP`, `EPOLLHUP`, `EPOLLERR`): the
/// arrival of bytes, handled by the kernel, wakes no one.
pub(crate) struct Ends {
    ep: OwnedFd,
    wake: OwnedFd,
}

/// What [`Ends::wait`] reports for a registered descriptor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct End {
    /// The token it was registered with.
    pub(crate) token: u64,
    /// The peer will send no more.
    pub(crate) closed: bool,
    /// The connection failed (reset).
    pub(crate) failed: bool,
}

/// The token of [`Ends::wake`].
const WAKE: u64 = u64::MAX;

impl Ends {
    /// A new instance, with an event descriptor to interrupt [`Ends::wait`].
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscalls; the descriptors returned are owned here.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        let ep = owned(ep);
        // SAFETY: as above.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake < 0 {
            return Err(io::Error::last_os_error());
        }
        let ends = Self { ep, wake: owned(wake) };
        ends.ctl(libc::EPOLL_CTL_ADD, ends.wake.as_raw_fd(), libc::EPOLLIN as u32, WAKE)?;
        Ok(ends)
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is live for the call.
        let r = unsafe { libc::epoll_ctl(self.ep.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Watches `fd` for its ends, reported with `token` (edge-triggered: once per change).
    pub(crate) fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, (libc::EPOLLRDHUP | libc::EPOLLET) as u32, token)
    }

    /// Interrupts a [`Ends::wait`] (which then reports nothing).
    pub(crate) fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to an eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    /// Waits up to `timeout` (`None`: until something happens) and appends what ended to
    /// `out`; returns whether [`Ends::wake`] was called.
    pub(crate) fn wait(&self, timeout: Option<std::time::Duration>, out: &mut Vec<End>) -> bool {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 64];
        let ms = timeout.map_or(-1, |t| t.as_millis().clamp(1, i32::MAX as u128) as i32);
        // SAFETY: `evs` is live and its length is passed.
        let n = unsafe { libc::epoll_wait(self.ep.as_raw_fd(), evs.as_mut_ptr(), evs.len() as i32, ms) };
        let mut woken = false;
        for ev in evs.iter().take(n.max(0) as usize) {
            let (events, token) = (ev.events, ev.u64);
            if token == WAKE {
                let mut buf = [0u8; 8];
                // SAFETY: reads at most 8 bytes into a live buffer.
                unsafe { libc::read(self.wake.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                woken = true;
                continue;
            }
            let closed = events & (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0;
            let failed = events & libc::EPOLLERR as u32 != 0;
            out.push(End { token, closed, failed });
        }
        woken
    }
}
