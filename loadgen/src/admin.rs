//! A small blocking HTTP/1.1 client for the gateway's admin API (DESIGN §4): keep-alive, bearer
//! token, JSON bodies, `Content-Length` / chunked / read-to-close responses, every length capped.

use crate::url::Endpoint;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Largest response head.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body (a `/metrics` page of a big gateway fits).
const MAX_BODY: usize = 32 << 20;
/// Socket timeout of one request.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong talking to the admin API.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Socket error.
    #[error("admin API: {0}")]
    Io(#[from] std::io::Error),
    /// Not a parsable HTTP response.
    #[error("admin API: malformed response ({0})")]
    Malformed(&'static str),
    /// Head or body over the cap.
    #[error("admin API: response too large")]
    TooLarge,
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// A keep-alive connection to the admin API.
pub struct AdminClient {
    ep: Endpoint,
    token: Option<String>,
    conn: Option<BufReader<TcpStream>>,
}

impl AdminClient {
    /// A client for `ep` sending `token` as bearer.
    pub fn new(ep: Endpoint, token: Option<String>) -> AdminClient {
        AdminClient {
            ep,
            token,
            conn: None,
        }
    }

    /// One request; retried once on a fresh connection if a kept-alive one was dead.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<HttpResponse, AdminError> {
        let reused = self.conn.is_some();
        match self.try_request(method, path, body) {
            Err(AdminError::Io(_)) if reused => {
                self.conn = None;
                self.try_request(method, path, body)
            }
            other => other,
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<HttpResponse, AdminError> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.ep.addr, TIMEOUT)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.set_write_timeout(Some(TIMEOUT))?;
            s.set_nodelay(true)?;
            self.conn = Some(BufReader::new(s));
        }
        let conn = self
            .conn
            .as_mut()
            .ok_or(AdminError::Malformed("no connection"))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n",
            self.ep.host_header
        );
        if let Some(t) = &self.token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        let result = conn
            .get_mut()
            .write_all(&bytes)
            .map_err(AdminError::from)
            .and_then(|()| read_response(conn));
        match result {
            Ok((resp, keep_alive)) => {
                if !keep_alive {
                    self.conn = None;
                }
                Ok(resp)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    /// `POST path` with a JSON body.
    pub fn post_json(
        &mut self,
        path: &str,
        value: &serde_json::Value,
    ) -> Result<HttpResponse, AdminError> {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.request("POST", path, Some(&body))
    }

    /// Sum of every sample of `name` carrying `label="value"` on `/metrics`.
    pub fn metrics_sum(&mut self, name: &str, label: &str, value: &str) -> Result<f64, AdminError> {
        let r = self.request("GET", "/metrics", None)?;
        if !r.ok() {
            return Err(AdminError::Malformed("/metrics status"));
        }
        Ok(sum_metric(
            &String::from_utf8_lossy(&r.body),
            name,
            label,
            value,
        ))
    }
}

/// Reads one response; returns it and whether the connection may be reused.
pub fn read_response(r: &mut impl BufRead) -> Result<(HttpResponse, bool), AdminError> {
    let mut head = Vec::with_capacity(512);
    loop {
        let before = head.len();
        let n = r
            .by_ref()
            .take((MAX_HEAD - before) as u64 + 1)
            .read_until(b'\n', &mut head)?;
        if n == 0 {
            return Err(AdminError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if head.len() > MAX_HEAD {
            return Err(AdminError::TooLarge);
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(AdminError::Malformed("head")),
    }
    let status = resp.code.ok_or(AdminError::Malformed("status"))?;
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let close =
        header("connection").is_some_and(|v| v.contains("close")) || resp.version == Some(0);
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = header("content-length");
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else if chunked {
        read_chunked(r)?
    } else if let Some(len) = length {
        let len: usize = len
            .parse()
            .map_err(|_| AdminError::Malformed("content-length"))?;
        if len > MAX_BODY {
            return Err(AdminError::TooLarge);
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        body
    } else {
        let mut body = Vec::new();
        r.take(MAX_BODY as u64 + 1).read_to_end(&mut body)?;
        if body.len() > MAX_BODY {
            return Err(AdminError::TooLarge);
        }
        return Ok((HttpResponse { status, body }, false));
    };
    Ok((HttpResponse { status, body }, !close))
}

fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, AdminError> {
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        r.by_ref().take(1024).read_until(b'\n', &mut line)?;
        let text = String::from_utf8_lossy(&line);
        let size_text = text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| AdminError::Malformed("chunk size"))?;
        if body.len() + size > MAX_BODY {
            return Err(AdminError::TooLarge);
        }
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut t = Vec::new();
                let n = r.by_ref().take(8192).read_until(b'\n', &mut t)?;
                if n == 0 || t == b"\r\n" || t == b"\n" {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(body.get_mut(start..).unwrap_or_default())?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}

/// Sum of the samples of `name` whose labels include `label="value"` in Prometheus text.
pub fn sum_metric(text: &str, name: &str, label: &str, value: &str) -> f64 {
    let want = format!("{label}=\"{value}\"");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, tail) = match rest.strip_prefix('{') {
                Some(r) => {
                    let end = r.find('}')?;
                    (&r[..end], &r[end + 1..])
                }
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            if !labels.split(',').any(|kv| kv.trim() == want) {
                return None;
            }
            tail.split_whitespace().next()?.parse::<f64>().ok()
        })
        .filter(|v| v.is_finite())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reads_content_length_responses() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\n{\"a\"}HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nConnection: close\r\n\r\n{}";
        let mut r = Cursor::new(&raw[..]);
        let (a, keep) = read_response(&mut r).unwrap();
        assert_eq!(
            (a.status, a.body.as_slice(), keep),
            (200, &b"{\"a\"}"[..], true)
        );
        let (b, keep) = read_response(&mut r).unwrap();
        assert_eq!((b.status, keep), (404, false));
    }

    #[test]
    fn reads_chunked_and_close_delimited_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let (r, keep) = read_response(&mut Cursor::new(&raw[..])).unwrap();
        assert_eq!((r.body.as_slice(), keep), (&b"abcde"[..], true));
        let raw = b"HTTP/1.1 200 OK\r\n\r\nuntil close";
        let (r, keep) = read_response(&mut Cursor::new(&raw[..])).unwrap();
        assert_eq!((r.body.as_slice(), keep), (&b"until close"[..], false));
    }

    #[test]
    fn refuses_garbage_and_oversize() {
        assert!(read_response(&mut Cursor::new(&b"nonsense\r\n\r\n"[..])).is_err());
        assert!(read_response(&mut Cursor::new(&b""[..])).is_err());
        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert!(matches!(
            read_response(&mut Cursor::new(big.as_bytes())),
            Err(AdminError::TooLarge)
        ));
        let endless = vec![b'a'; MAX_HEAD + 10];
        assert!(matches!(
            read_response(&mut Cursor::new(&endless[..])),
            Err(AdminError::TooLarge) | Err(AdminError::Io(_))
        ));
    }

    #[test]
    fn sums_metric_samples_by_label() {
        let text = "# HELP aegis_gateway_messages_in_total x\n\
            aegis_gateway_messages_in_total{kind=\"logs\",result=\"ok\"} 10\n\
            aegis_gateway_messages_in_total{kind=\"heartbeat\",result=\"ok\"} 5\n\
            aegis_gateway_messages_in_total{kind=\"any\",result=\"rejected\"} 7\n\
            aegis_gateway_messages_in_total_other{result=\"ok\"} 100\n";
        assert_eq!(
            sum_metric(text, "aegis_gateway_messages_in_total", "result", "ok"),
            15.0
        );
        assert_eq!(sum_metric("", "x", "a", "b"), 0.0);
    }
}
