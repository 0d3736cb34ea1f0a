//! HTTP/1.1 for the admin listener: parse a request head (sans-IO, [`parse_head`]), read heads and
//! bodies from a socket under a deadline ([`Conn`]), and serialize responses ([`Response`]).
//!
//! Limits: head ≤ 16 KiB (else 431), at most 64 header lines (else 431), body by `Content-Length`
//! ≤ 1 MiB (else 413); `Transfer-Encoding` is refused with 411. Keep-alive unless the client
//! sends `Connection: close` or speaks HTTP/1.0.

use super::api::{ApiError, ErrorKind};
use crate::shard::rt::{with_deadline, TcpStream};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::time::{Duration, Instant};

/// Largest request head (request line + headers + blank line).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body.
pub const MAX_BODY: usize = 1024 * 1024;
/// Most header lines in a head.
pub const MAX_HEADERS: usize = 64;
/// Deadline for reading one request (head and body), counted from when the server starts waiting
/// for it: an idle keep-alive connection is closed after this long too.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A request the HTTP layer refuses before routing (the peer's fault). The connection is closed
/// after the error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Malformed request line or headers, or a bad `Content-Length`.
    #[error("malformed request: {0}")]
    BadRequest(String),
    /// Head over [`MAX_HEAD`] or more than [`MAX_HEADERS`] lines.
    #[error("request head too large")]
    HeadTooLarge,
    /// Body over [`MAX_BODY`].
    #[error("request body over {MAX_BODY} bytes")]
    BodyTooLarge,
    /// `Transfer-Encoding` (chunked bodies are not accepted).
    #[error("chunked bodies are not accepted: send Content-Length")]
    LengthRequired,
    /// The request did not arrive in time ([`READ_TIMEOUT`], shorter under pressure).
    #[error("request not received in time")]
    Timeout,
}

impl HttpError {
    /// The error response body and status.
    pub fn to_api(&self) -> ApiError {
        let kind = match self {
            HttpError::BadRequest(_) => ErrorKind::BadRequest,
            HttpError::HeadTooLarge => ErrorKind::HeaderTooLarge,
            HttpError::BodyTooLarge => ErrorKind::PayloadTooLarge,
            HttpError::LengthRequired => ErrorKind::LengthRequired,
            HttpError::Timeout => ErrorKind::RequestTimeout,
        };
        ApiError::new(kind, self.to_string())
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Method as sent (`GET`, `POST`, …).
    pub method: String,
    /// Path of the request target, still percent-encoded.
    pub path: String,
    /// Query string after `?`, still percent-encoded.
    pub query: Option<String>,
    /// Header lines: names lowercased, values as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body length (0 without `Content-Length`).
    pub content_length: usize,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl Head {
    /// The first value of header `name` (lowercase), as bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of header `name` (lowercase), if it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// Parses a request head at the start of `buf`. `Ok(None)`: more bytes are needed. `Ok(Some((head,
/// n)))`: the head took `n` bytes; the body (if any) follows.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // Only the first MAX_HEAD bytes decide (as in `protocol::upgrade`), so the answer does not
    // depend on how the bytes were split into reads, and a complete head is ≤ MAX_HEAD bytes.
    let window = buf.get(..MAX_HEAD).unwrap_or(buf);
    let n = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(HttpError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(e) => return Err(HttpError::BadRequest(e.to_string())),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HttpError::BadRequest("incomplete request line".into()));
    };
    if !target.starts_with('/') {
        return Err(HttpError::BadRequest(
            "the request target must be an absolute path".into(),
        ));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (target, None),
    };
    let mut head = Head {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        headers: Vec::with_capacity(req.headers.len()),
        content_length: 0,
        keep_alive: version >= 1,
        expect_continue: false,
    };
    let mut length: Option<usize> = None;
    let mut hosts = 0usize;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "transfer-encoding" => return Err(HttpError::LengthRequired),
            "content-length" => {
                let v = parse_length(h.value)?;
                if length.is_some_and(|l| l != v) {
                    return Err(HttpError::BadRequest("conflicting Content-Length".into()));
                }
                length = Some(v);
            }
            "connection" if has_token(h.value, "close") => head.keep_alive = false,
            "expect" if has_token(h.value, "100-continue") => head.expect_continue = true,
            "host" => hosts += 1,
            _ => {}
        }
        head.headers.push((name, h.value.to_vec()));
    }
    // RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request without exactly one Host.
    if version >= 1 && hosts != 1 {
        return Err(HttpError::BadRequest(
            "an HTTP/1.1 request needs exactly one Host header".into(),
        ));
    }
    if hosts > 1 {
        return Err(HttpError::BadRequest("more than one Host header".into()));
    }
    head.content_length = length.unwrap_or(0);
    if head.content_length > MAX_BODY {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(Some((head, n)))
}

fn parse_length(v: &[u8]) -> Result<usize, HttpError> {
    let bad = || HttpError::BadRequest("Content-Length is not a decimal length".into());
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)
}

/// Whether a comma-separated header value holds `token` (ASCII case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A response to serialize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: &impl serde::Serialize) -> Response {
        match serde_json::to_vec(body) {
            Ok(body) => Response {
                status,
                headers: vec![("Content-Type", "application/json".into())],
                body,
            },
            Err(e) => Response::error(&ApiError::internal(format!("serializing response: {e}"))),
        }
    }

    /// The JSON error response of `err`.
    pub fn error(err: &ApiError) -> Response {
        Response::json(err.status(), &err.body())
    }

    /// `status` with a body of this content type.
    pub fn text(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.into())],
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + self.body.len());
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
            self.status,
            reason(self.status),
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        out.extend_from_slice(head.as_bytes());
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The reason phrase of `status`.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// Why no request was read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed, or went silent before sending a byte of the request: close quietly.
    Closed,
    /// The peer sent something wrong or too slowly: answer this error, then close.
    Http(HttpError),
}

/// One admin connection: the socket (plain TCP, or TLS over it) and the bytes read past the
/// current request.
pub struct Conn<S = TcpStream> {
    /// The socket.
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Wraps an accepted socket.
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads the next request head, by `deadline`.
    pub async fn read_head(&mut self, deadline: Instant) -> Result<Head, ReadError> {
        loop {
            if let Some((head, n)) = parse_head(&self.buf).map_err(ReadError::Http)? {
                self.buf.drain(..n);
                return Ok(head);
            }
            let idle = self.buf.iter().all(|b| matches!(b, b'\r' | b'\n'));
            match self.fill(deadline).await {
                Ok(0) | Err(Fill::Io) => return Err(ReadError::Closed),
                Ok(_) => {}
                Err(Fill::Timeout) if idle => return Err(ReadError::Closed),
                Err(Fill::Timeout) => return Err(ReadError::Http(HttpError::Timeout)),
            }
        }
    }

    /// Reads the body announced by `head`, by `deadline` (writes `100 Continue` first if asked).
    pub async fn read_body(
        &mut self,
        head: &Head,
        deadline: Instant,
    ) -> Result<Vec<u8>, ReadError> {
        let len = head.content_length;
        if head.expect_continue && self.buf.len() < len {
            self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|_| ReadError::Closed)?;
        }
        while self.buf.len() < len {
            match self.fill(deadline).await {
                Ok(0) | Err(Fill::Io) => return Err(ReadError::Closed),
                Ok(_) => {}
                Err(Fill::Timeout) => return Err(ReadError::Http(HttpError::Timeout)),
            }
        }
        Ok(self.buf.drain(..len).collect())
    }

    /// Writes all of `bytes`.
    pub async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Writes `resp`.
    pub async fn respond(&mut self, resp: &Response, keep_alive: bool) -> std::io::Result<()> {
        self.write_all(&resp.to_bytes(keep_alive)).await
    }

    /// Ends our side of the connection (the socket is closed when `self` drops).
    pub async fn close(&mut self) {
        let _ = self.stream.close().await;
    }

    /// Closes after an error: stops writing, then reads and drops what the peer still sends for a
    /// moment, so that our response is not lost to a reset caused by unread input.
    pub async fn linger_close(mut self) {
        let _ = self.stream.close().await;
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut scratch = [0u8; 4096];
        let mut total = 0usize;
        while total < 4 * MAX_BODY {
            let read = self.stream.read(&mut scratch);
            match with_deadline(deadline, read).await {
                Some(Ok(n)) if n > 0 => total += n,
                _ => break,
            }
        }
    }

    async fn fill(&mut self, deadline: Instant) -> Result<usize, Fill> {
        let mut chunk = [0u8; 8192];
        match with_deadline(deadline, self.stream.read(&mut chunk)).await {
            None => Err(Fill::Timeout),
            Some(Err(_)) => Err(Fill::Io),
            Some(Ok(n)) => {
                self.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                Ok(n)
            }
        }
    }
}

enum Fill {
    Timeout,
    Io,
}
