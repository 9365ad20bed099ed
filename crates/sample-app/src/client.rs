//! The calling side of the tiny HTTP/1.1 library, on std only: one request per connection
//! (`Connection: close`), plain `http://` URLs, bodies by `Content-Length`, chunked or until
//! the end of the stream. Enough for the edge binaries to call the platform and each other.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Longest reply head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest reply body accepted.
const MAX_REPLY: u64 = 16 << 20;

/// A parsed `http://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Host name or address (an IPv6 address without brackets).
    pub host: String,
    /// Port (80 when not given).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Url {
    /// Parses `http://host[:port][/path][?query]`; `https` and user info are refused.
    pub fn parse(url: &str) -> Result<Url, String> {
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => return Err(format!("{url}: scheme {scheme} is not supported (only http)")),
            None => return Err(format!("{url}: not an http:// URL")),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let tail = tail.split('#').next().unwrap_or("");
        let path = match tail {
            "" => "/".to_string(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_string(),
        };
        if authority.contains('@') {
            return Err(format!("{url}: user info is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else { return Err(format!("{url}: unclosed [")) };
            match after {
                "" => (host, None),
                p => match p.strip_prefix(':') {
                    Some(p) => (host, Some(p)),
                    None => return Err(format!("{url}: bad authority")),
                },
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => return Err(format!("{url}: IPv6 addresses go in brackets")),
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:%".contains(&b)) {
            return Err(format!("{url}: bad host"));
        }
        let port = match port {
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("{url}: bad port")),
            },
        };
        Ok(Url { host: host.to_string(), port, path })
    }

    /// `host:port` as a `Host` header or URL authority writes it (IPv6 in brackets).
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }
}

/// `host:port`, an IPv6 address in brackets.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body (empty for `HEAD`, 204 and 304).
    pub body: Vec<u8>,
}

impl Reply {
    /// Status 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

fn invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Sends one request and reads the reply. `headers` are sent as given (add `Content-Type` for
/// a body); `Host`, `Content-Length` (with a body) and `Connection: close` are added. Connecting
/// and each read or write wait at most `timeout`.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<Reply> {
    let url = Url::parse(url).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut last = None;
    let mut stream = None;
    for addr in (url.host.as_str(), url.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(mut stream) = stream else {
        return Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address")));
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let mut out = format!("{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", url.path, url.authority());
    for (k, v) in headers {
        if k.contains(['\r', '\n']) || v.contains(['\r', '\n']) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "line break in a header"));
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        out.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    stream.write_all(&out)?;
    stream.flush()?;
    read_reply(BufReader::new(stream), method == "HEAD")
}

/// Reads one line of at most [`MAX_HEAD`] bytes, without its line end.
fn line<R: BufRead>(reader: &mut R) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let n = reader.by_ref().take(MAX_HEAD as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    if n > MAX_HEAD {
        return Err(invalid("reply line too long"));
    }
    Ok(String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a reply: head, then the body as the head says.
fn read_reply<R: BufRead>(mut reader: R, head_only: bool) -> std::io::Result<Reply> {
    loop {
        let status_line = line(&mut reader)?;
        let mut parts = status_line.split_whitespace();
        let (Some(version), Some(code)) = (parts.next(), parts.next()) else { return Err(invalid("bad status line")) };
        if !version.starts_with("HTTP/1.") {
            return Err(invalid("not an HTTP/1 reply"));
        }
        let status: u16 = code.parse().map_err(|_| invalid("bad status code"))?;
        let mut length = None;
        let mut chunked = false;
        let mut used = status_line.len();
        loop {
            let l = line(&mut reader)?;
            used += l.len();
            if used > MAX_HEAD {
                return Err(invalid("reply head too long"));
            }
            if l.is_empty() {
                break;
            }
            let Some((k, v)) = l.split_once(':') else { return Err(invalid("bad header")) };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => length = Some(v.parse::<u64>().map_err(|_| invalid("bad content-length"))?),
                "transfer-encoding" => chunked = v.split(',').any(|t| t.trim() == "chunked"),
                _ => {}
            }
        }
        // Interim replies (100 Continue, ...) precede the real one.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let mut body = Vec::new();
        if head_only || status == 204 || status == 304 {
            return Ok(Reply { status, body });
        }
        if chunked {
            loop {
                let size_line = line(&mut reader)?;
                let size = size_line.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !line(&mut reader)?.is_empty() {}
                    break;
                }
                if body.len() as u64 + size > MAX_REPLY {
                    return Err(invalid("reply too large"));
                }
                let start = body.len();
                body.resize(start + size as usize, 0);
                reader.read_exact(&mut body[start..])?;
                line(&mut reader)?;
            }
        } else if let Some(n) = length {
            if n > MAX_REPLY {
                return Err(invalid("reply too large"));
            }
            reader.take(n).read_to_end(&mut body)?;
            if (body.len() as u64) < n {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "reply body cut short"));
            }
        } else {
            reader.take(MAX_REPLY).read_to_end(&mut body)?;
        }
        return Ok(Reply { status, body });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = Url::parse("http://10.88.0.1:8443/base").unwrap();
        assert_eq!(u, Url { host: "10.88.0.1".into(), port: 8443, path: "/base".into() });
        let u = Url::parse("HTTP://example.org?x=1").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("example.org", 80, "/?x=1"));
        let u = Url::parse("http://[fd00::1]:81/a?b#frag").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("fd00::1", 81, "/a?b"));
        assert_eq!(u.authority(), "[fd00::1]:81");
        for bad in [
            "https://x",
            "x:80",
            "http://",
            "http://a@b",
            "http://h:0",
            "http://h:99999",
            "http://fd00::1/",
            "http://[::1",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_replies() {
        let r = read_reply(&b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabcdef"[..], false).unwrap();
        assert_eq!(r, Reply { status: 201, body: b"abc".to_vec() });
        let r = read_reply(
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"[..],
            false,
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
        let r = read_reply(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 404 Not Found\r\n\r\ngone"[..], false).unwrap();
        assert_eq!(r, Reply { status: 404, body: b"gone".to_vec() });
        let r = read_reply(&b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"[..], false).unwrap();
        assert!(r.is_success() && r.body.is_empty());
        assert!(read_reply(&b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"[..], false).is_err());
        assert!(read_reply(&b"SMTP ready\r\n\r\n"[..], false).is_err());
        assert!(read_reply(&b""[..], false).is_err());
    }
}
