//! The egress gateway of a cluster (`op-egress`): the only way out of a cluster whose traffic
//! is let out selectively. Members sit on an internal network with no route out; the gateway
//! sits on that network and on an egress network, and relays HTTP proxy requests (`CONNECT
//! host:port` tunnels and absolute-form `GET http://host/...`) to destinations every layer of
//! the cluster's policy lets out ([`EffectiveEgress`]), answering 403 naming the layer that
//! refuses any other. Destinations on the cluster's own network are always let through, so
//! clients that send everything to `HTTP_PROXY` still reach the other members.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use op_types::egress::{Cidr, EffectiveEgress};

/// Longest request head read.
const MAX_HEAD: usize = 16 << 10;
/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a destination has to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the gateway lets out: the cluster's effective egress, and its own networks.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Every party's rules together.
    pub egress: EffectiveEgress,
    /// The cluster's networks (always reachable).
    pub internal: Vec<Cidr>,
}

impl Policy {
    /// From the gateway's environment: `OP_EGRESS` (the JSON of an [`EffectiveEgress`]; absent:
    /// nothing leaves) and `OP_EGRESS_INTERNAL` (comma-separated networks).
    pub fn from_env() -> Result<Self, String> {
        let egress = match std::env::var("OP_EGRESS") {
            Ok(j) => serde_json::from_str(&j).map_err(|e| format!("OP_EGRESS: {e}"))?,
            Err(_) => EffectiveEgress::Nothing,
        };
        let internal = std::env::var("OP_EGRESS_INTERNAL")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse::<Cidr>().map_err(|e| format!("OP_EGRESS_INTERNAL: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Self { egress, internal })
    }

    /// Whether TCP to `ip`:`port` may go; otherwise who refuses it.
    pub fn check(&self, ip: IpAddr, port: u16) -> Result<(), String> {
        if self.internal.iter().any(|n| n.contains(ip)) {
            return Ok(());
        }
        self.egress.check(ip, port)
    }
}

/// What a client asked the gateway for.
#[derive(Debug, PartialEq, Eq)]
pub struct Ask {
    /// `CONNECT` (a tunnel) or not (one forwarded request).
    pub tunnel: bool,
    /// Destination host (name or address).
    pub host: String,
    /// Destination port.
    pub port: u16,
    /// For a forwarded request: the head to send the destination (origin-form, one request).
    pub head: Vec<u8>,
}

/// Reads a request head from `r`: the head (through its blank line) and any bytes after it.
fn read_head(r: &mut impl Read) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head over 16 KiB"));
        }
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the request head ended"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Splits `host:port` (`[v6]:port`), `default` when no port is given.
fn host_port(authority: &str, default: Option<u16>) -> Result<(String, u16), String> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, Some(p.parse::<u16>().map_err(|_| format!("bad port in '{authority}'"))?)),
        _ => (authority, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.or(default).ok_or_else(|| format!("'{authority}' has no port"))?;
    if host.is_empty() || port == 0 {
        return Err(format!("bad destination '{authority}'"));
    }
    Ok((host.to_string(), port))
}

/// Parses a proxy request head into what it asks for (`Err`: why it cannot be served).
pub fn parse(head: &[u8]) -> Result<Ask, String> {
    let text = std::str::from_utf8(head).map_err(|_| "the request head is not text".to_string())?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if v.starts_with("HTTP/1.") => (m, t, v),
        _ => return Err(format!("not an HTTP/1 request line: '{line}'")),
    };
    if method == "CONNECT" {
        let (host, port) = host_port(target, None)?;
        return Ok(Ask { tunnel: true, host, port, head: Vec::new() });
    }
    let Some(rest) = target.strip_prefix("http://") else {
        return Err(format!("'{target}': ask for an absolute http:// URL, or CONNECT host:port (HTTPS)"));
    };
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let (host, port) = host_port(authority, Some(80))?;
    let mut out = format!("{method} {path} {version}\r\n");
    let mut has_host = false;
    for h in lines.filter(|l| !l.is_empty()) {
        let name = h.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        match name.as_str() {
            "proxy-connection" | "proxy-authorization" | "connection" | "keep-alive" => continue,
            "host" => has_host = true,
            _ => {}
        }
        out.push_str(h);
        out.push_str("\r\n");
    }
    if !has_host {
        out.push_str(&format!("Host: {authority}\r\n"));
    }
    // One request per connection: the next may be for another destination.
    out.push_str("Connection: close\r\n\r\n");
    Ok(Ask { tunnel: false, host, port, head: out.into_bytes() })
}

fn answer(client: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(client, "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
}

/// Serves one client connection under `policy`; `log` gets one line per decision.
pub fn handle(mut client: TcpStream, policy: &Policy, log: impl Fn(&str)) -> io::Result<()> {
    client.set_read_timeout(Some(HEAD_TIMEOUT))?;
    let (head, rest) = read_head(&mut client)?;
    let ask = match parse(&head) {
        Ok(a) => a,
        Err(e) => {
            answer(&mut client, "400 Bad Request", &format!("op-egress: {e}\n"));
            return Ok(());
        }
    };
    let addrs: Vec<SocketAddr> = match (ask.host.as_str(), ask.port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            answer(&mut client, "502 Bad Gateway", &format!("op-egress: cannot resolve {}: {e}\n", ask.host));
            return Ok(());
        }
    };
    let mut refusal = None;
    let mut allowed = None;
    for a in &addrs {
        match policy.check(a.ip(), a.port()) {
            Ok(()) => {
                allowed = Some(*a);
                break;
            }
            Err(by) => refusal = refusal.or(Some((*a, by))),
        }
    }
    let Some(to) = allowed else {
        let (a, by) = refusal.unwrap_or_else(|| (SocketAddr::from(([0, 0, 0, 0], ask.port)), "nothing (no address)".into()));
        log(&format!("refused {}:{} ({a}): {by}", ask.host, ask.port));
        answer(&mut client, "403 Forbidden", &format!("op-egress: TCP to {}:{} ({}) is refused by {by}\n", ask.host, ask.port, a.ip()));
        return Ok(());
    };
    let mut upstream = match TcpStream::connect_timeout(&to, CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            log(&format!("{}:{} ({to}) unreachable: {e}", ask.host, ask.port));
            answer(&mut client, "502 Bad Gateway", &format!("op-egress: {}:{} ({to}) did not accept: {e}\n", ask.host, ask.port));
            return Ok(());
        }
    };
    log(&format!("{} {}:{} ({to})", if ask.tunnel { "tunnel to" } else { "request to" }, ask.host, ask.port));
    client.set_read_timeout(None)?;
    if ask.tunnel {
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    } else {
        upstream.write_all(&ask.head)?;
    }
    upstream.write_all(&rest)?;
    let (mut from_client, mut to_upstream) = (client.try_clone()?, upstream.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut from_client, &mut to_upstream);
        let _ = to_upstream.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use op_types::egress::{EgressLayer, OutboundRule};
    use op_types::specs::Protocol;
    use std::net::TcpListener;

    #[test]
    fn heads_parse() {
        let a = parse(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n").unwrap();
        assert_eq!((a.tunnel, a.host.as_str(), a.port), (true, "example.org", 443));
        let a = parse(b"GET http://10.0.0.5:8080/healthz?x=1 HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n").unwrap();
        assert_eq!((a.tunnel, a.host.as_str(), a.port), (false, "10.0.0.5", 8080));
        let head = String::from_utf8(a.head).unwrap();
        assert!(head.starts_with("GET /healthz?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Accept: */*\r\n") && head.ends_with("Connection: close\r\n\r\n") && !head.contains("Proxy-Connection"), "{head}");
        let a = parse(b"GET http://[2001:db8::1]/ HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("2001:db8::1", 80));
        assert!(String::from_utf8(a.head).unwrap().contains("Host: [2001:db8::1]\r\n"));
        for bad in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"CONNECT example.org HTTP/1.1\r\n\r\n", b"hello\r\n\r\n", b"GET http://h:99999/ HTTP/1.1\r\n\r\n"] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// A destination on loopback, the gateway in front of it, and a client asking through it.
    fn through(policy: Policy, request: impl FnOnce(u16) -> Vec<u8>) -> String {
        let dest = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = dest.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = dest.accept() {
                let (head, _) = read_head(&mut s).unwrap();
                let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{line}", line.len());
            }
        });
        let gw = TcpListener::bind("127.0.0.1:0").unwrap();
        let gw_addr = gw.local_addr().unwrap();
        std::thread::spawn(move || {
            let (s, _) = gw.accept().unwrap();
            handle(s, &policy, |_| {}).unwrap();
        });
        let mut c = TcpStream::connect(gw_addr).unwrap();
        c.write_all(&request(port)).unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    }

    fn only(cidr: &str, port: u16) -> Policy {
        let rules = vec![OutboundRule { protocol: Protocol::TCP, remote_cidr: cidr.into(), port_min: port, port_max: None }];
        Policy { egress: EffectiveEgress::Rules(vec![EgressLayer { by: "cloudlet privacy policy".into(), rules }]), internal: Vec::new() }
    }

    #[test]
    fn relays_what_the_rules_allow_and_refuses_the_rest() {
        let get = |p: u16| format!("GET http://127.0.0.1:{p}/where HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n\r\n").into_bytes();
        let out = through(Policy { egress: EffectiveEgress::All, internal: Vec::new() }, get);
        assert!(out.starts_with("HTTP/1.1 200 OK") && out.ends_with("GET /where HTTP/1.1"), "forwarded in origin-form: {out}");
        let out = through(only("127.0.0.0/8", 1), get);
        assert!(out.starts_with("HTTP/1.1 403") && out.contains("cloudlet privacy policy"), "another port is refused: {out}");
        let out = through(Policy { egress: EffectiveEgress::Nothing, internal: vec!["127.0.0.0/8".parse().unwrap()] }, get);
        assert!(out.starts_with("HTTP/1.1 200 OK"), "the cluster's own network is always reachable: {out}");
        let tunnel = |p: u16| format!("CONNECT 127.0.0.1:{p} HTTP/1.1\r\n\r\nGET /tunnelled HTTP/1.1\r\n\r\n").into_bytes();
        let out = through(Policy { egress: EffectiveEgress::All, internal: Vec::new() }, tunnel);
        assert!(out.starts_with("HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK") && out.ends_with("GET /tunnelled HTTP/1.1"), "{out}");
        let out = through(only("10.0.0.0/8", 443), tunnel);
        assert!(out.starts_with("HTTP/1.1 403") && out.contains("allows tcp:10.0.0.0/8:443"), "{out}");
        let out = through(only("127.0.0.0/8", 1), |_| b"GET /relative HTTP/1.1\r\n\r\n".to_vec());
        assert!(out.starts_with("HTTP/1.1 400") && out.contains("absolute http:// URL"), "{out}");
    }
}
