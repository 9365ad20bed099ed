//! Reading just enough of a connection to route it: the head of the first HTTP/1.1 request, or
//! the first HEADERS frame of an HTTP/2 connection with prior knowledge. The bytes read are
//! passed on to the instance (an HTTP/1.1 head with one header added, [`with_header`]).

/// The connection preface of HTTP/2 (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The most read before a connection must have said where it goes.
pub const MAX_HEAD: usize = 64 * 1024;

/// What routing needs from the first request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// The host asked for, without a port, lower case.
    pub host: Option<String>,
    /// The request target's path (no query).
    pub path: String,
    /// A UNI session token (`Authorization: Bearer`, `x-op-session`, or `op_session=` in the
    /// query, for WebSocket clients that cannot set headers).
    pub token: Option<String>,
    /// HTTP/2 with prior knowledge.
    pub h2: bool,
    /// Where the first request's head ends in the bytes read (HTTP/1.1), for a header to be
    /// added to it.
    pub head_len: usize,
}

/// The outcome of looking at the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Sniff {
    /// Enough to route.
    Complete(Head),
    /// Read more.
    Partial,
    /// Not HTTP the ingress can route; the reason.
    Invalid(&'static str),
}

/// Looks at the first bytes of a connection.
pub fn sniff(buf: &[u8]) -> Sniff {
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return if buf.len() < H2_PREFACE.len() { Sniff::Partial } else { sniff_h2(&buf[H2_PREFACE.len()..]) };
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Sniff::Invalid("request head too large"),
        Ok(httparse::Status::Partial) => Sniff::Partial,
        Err(httparse::Error::TooManyHeaders) => Sniff::Invalid("too many headers"),
        Err(_) => Sniff::Invalid("not an HTTP/1.1 request"),
        Ok(httparse::Status::Complete(len)) => {
            let mut head = Head { head_len: len, ..Head::default() };
            let target = req.path.unwrap_or("/");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            head.path = path.to_string();
            for h in req.headers.iter() {
                let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                header(&mut head, h.name.as_bytes(), v);
            }
            if head.token.is_none() {
                head.token = query.split('&').find_map(|kv| kv.strip_prefix("op_session=")).filter(|t| !t.is_empty()).map(str::to_string);
            }
            Sniff::Complete(head)
        }
    }
}

/// Applies one header (HTTP/1.1 name or HTTP/2 pseudo-header) to `head`.
fn header(head: &mut Head, name: &[u8], v: &str) {
    if name.eq_ignore_ascii_case(b"host") || name == b":authority" {
        let host = v.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(v, |(h, _)| h);
        head.host = Some(host.to_ascii_lowercase());
    } else if name == b":path" {
        head.path = v.split_once('?').map_or(v, |(p, _)| p).to_string();
    } else if name.eq_ignore_ascii_case(b"authorization") {
        if let Some(t) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            head.token = Some(t.trim().to_string());
        }
    } else if name.eq_ignore_ascii_case(b"x-op-session") && !v.is_empty() {
        head.token = Some(v.to_string());
    }
}

/// The first HEADERS block of an HTTP/2 connection (after the preface), decoded with HPACK.
fn sniff_h2(mut frames: &[u8]) -> Sniff {
    let mut block: Vec<u8> = Vec::new();
    let mut in_headers = false;
    loop {
        if frames.len() < 9 {
            return if frames.len() + block.len() > MAX_HEAD { Sniff::Invalid("request head too large") } else { Sniff::Partial };
        }
        let len = (usize::from(frames[0]) << 16) | (usize::from(frames[1]) << 8) | usize::from(frames[2]);
        let (kind, flags) = (frames[3], frames[4]);
        if len > MAX_HEAD {
            return Sniff::Invalid("HTTP/2 frame too large");
        }
        if frames.len() < 9 + len {
            return Sniff::Partial;
        }
        let mut payload = &frames[9..9 + len];
        frames = &frames[9 + len..];
        match (kind, in_headers) {
            // HEADERS: padding (0x8) and priority (0x20) come before the block fragment.
            (0x1, false) => {
                let mut pad = 0;
                if flags & 0x8 != 0 {
                    let Some((&p, rest)) = payload.split_first() else { return Sniff::Invalid("bad HTTP/2 HEADERS frame") };
                    pad = usize::from(p);
                    payload = rest;
                }
                if flags & 0x20 != 0 {
                    if payload.len() < 5 {
                        return Sniff::Invalid("bad HTTP/2 HEADERS frame");
                    }
                    payload = &payload[5..];
                }
                if pad > payload.len() {
                    return Sniff::Invalid("bad HTTP/2 HEADERS padding");
                }
                block.extend_from_slice(&payload[..payload.len() - pad]);
                in_headers = true;
            }
            (0x9, true) => block.extend_from_slice(payload),
            (_, true) => return Sniff::Invalid("HTTP/2 header block interrupted"),
            // SETTINGS, WINDOW_UPDATE, PRIORITY, PING before the first request.
            (_, false) => continue,
        }
        if in_headers && flags & 0x4 != 0 {
            let Ok(list) = hpack::Decoder::new().decode(&block) else { return Sniff::Invalid("bad HPACK header block") };
            let mut head = Head { h2: true, path: "/".into(), ..Head::default() };
            for (name, value) in list {
                header(&mut head, &name, std::str::from_utf8(&value).unwrap_or("").trim());
            }
            return Sniff::Complete(head);
        }
    }
}

/// `bytes` with `line` (a header, `Name: value`) added to the first request's head, which
/// ends at `head_len` (HTTP/1.1 only).
pub fn with_header(bytes: &[u8], head_len: usize, line: &str) -> Vec<u8> {
    let end_of_request_line = bytes.windows(2).position(|w| w == b"\r\n").map_or(head_len, |i| i + 2).min(head_len);
    let mut out = Vec::with_capacity(bytes.len() + line.len() + 2);
    out.extend_from_slice(&bytes[..end_of_request_line]);
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&bytes[end_of_request_line..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_head_gives_host_path_and_token() {
        let req = b"GET /api/items?op_session=qtok HTTP/1.1\r\nHost: Echo.acme.serverless:8080\r\nUser-Agent: t\r\n\r\nbody";
        let Sniff::Complete(h) = sniff(req) else { panic!("not complete") };
        assert_eq!(h.host.as_deref(), Some("echo.acme.serverless"));
        assert_eq!(h.path, "/api/items");
        assert_eq!(h.token.as_deref(), Some("qtok"));
        assert_eq!(h.head_len, req.len() - 4);
        assert!(!h.h2);
        let with_bearer = b"GET / HTTP/1.1\r\nhost: a\r\nauthorization: Bearer abc.def.ghi\r\n\r\n";
        let Sniff::Complete(h) = sniff(with_bearer) else { panic!("not complete") };
        assert_eq!(h.token.as_deref(), Some("abc.def.ghi"));
    }

    #[test]
    fn partial_and_garbage() {
        assert_eq!(sniff(b"GET / HTTP/1.1\r\nHost: a"), Sniff::Partial);
        assert_eq!(sniff(b"PRI * HTTP"), Sniff::Partial);
        assert!(matches!(sniff(b"\x16\x03\x01\x02\x00garbage\r\n\r\n"), Sniff::Invalid(_)));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert!(matches!(sniff(&big), Sniff::Invalid(_)));
    }

    #[test]
    fn h2_prior_knowledge_headers_are_decoded() {
        let block = hpack::Encoder::new().encode(vec![
            (&b":method"[..], &b"GET"[..]),
            (&b":path"[..], &b"/v1/x?y=1"[..]),
            (&b":authority"[..], &b"echo.acme.serverless"[..]),
            (&b"x-op-session"[..], &b"tok"[..]),
        ]);
        let mut bytes = H2_PREFACE.to_vec();
        // An empty SETTINGS frame, then HEADERS with END_HEADERS.
        bytes.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
        let len = block.len();
        bytes.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, 0x1, 0x4 | 0x1, 0, 0, 0, 1]);
        assert_eq!(sniff(&bytes[..bytes.len() - 1]), Sniff::Partial);
        bytes.extend_from_slice(&block);
        let Sniff::Complete(h) = sniff(&bytes) else { panic!("not complete") };
        assert!(h.h2);
        assert_eq!(h.host.as_deref(), Some("echo.acme.serverless"));
        assert_eq!(h.path, "/v1/x");
        assert_eq!(h.token.as_deref(), Some("tok"));
    }

    #[test]
    fn header_goes_after_the_request_line() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let out = with_header(req, req.len(), "X-Op-Via: p1");
        assert_eq!(out, b"GET / HTTP/1.1\r\nX-Op-Via: p1\r\nHost: a\r\n\r\n");
    }
}
