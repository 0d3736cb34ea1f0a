//! Tests of the admin layer: sans-IO units, and black-box tests over real sockets against a
//! server on an executor thread of its own with a fake [`Backend`] that records its calls.

mod fake;
mod limits;
mod server;
mod sse;
mod units;

use super::{serve_opts, Options};
use fake::{Call, Fake, Script};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The admin token of test servers.
pub const TOKEN: &str = "test-token-0123456789";

/// An admin server on `127.0.0.1:0`, stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub calls: Arc<Mutex<Vec<Call>>>,
    stop: Option<futures_channel::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(Script::default(), Duration::from_millis(50))
    }

    /// `script` drives the fake; `sse_wait` is the event-stream wait.
    pub fn start_with(script: Script, sse_wait: Duration) -> TestServer {
        TestServer::start_opts(
            script,
            Options {
                sse_wait,
                ..Options::default()
            },
        )
    }

    pub fn start_opts(script: Script, opts: Options) -> TestServer {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let fake = Fake::new(Arc::clone(&calls), script);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = futures_channel::oneshot::channel::<()>();
        let thread = crate::shard::rt::start_thread("admin-test", move || async move {
            let listener = crate::shard::rt::TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let serve = serve_opts(listener, TOKEN.into(), std::rc::Rc::new(fake), opts);
            futures_lite::future::or(serve, async {
                let _ = stop_rx.await;
            })
            .await;
        })
        .unwrap();
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        TestServer {
            addr,
            calls,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn connect(&self) -> Client {
        self.connect_from([127, 0, 0, 1])
    }

    /// A client whose source address is `ip` (any of 127.0.0.0/8 reaches the server).
    pub fn connect_from(&self, ip: [u8; 4]) -> Client {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let from = SocketAddr::from((ip, 0));
        socket.bind(&from.into()).unwrap();
        socket.connect(&self.addr.into()).unwrap();
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// One request on a fresh connection.
    pub fn request(&self, raw: &str) -> Resp {
        let mut c = self.connect();
        c.send(raw.as_bytes());
        c.response()
    }

    /// A JSON request with the right token.
    pub fn authed(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        self.request(&authed_raw(method, path, body))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request with the test token and (if `body`) a JSON body.
pub fn authed_raw(method: &str, path: &str, body: Option<&str>) -> String {
    let body = body.unwrap_or("");
    format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts an error response: status, JSON content type, `{"error": code, "message": …}`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "{:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        let v = self.json();
        assert_eq!(v["error"], code, "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
}

/// A blocking client that can read several responses from one socket.
pub struct Client {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Client {
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response head and its `Content-Length` body.
    pub fn response(&mut self) -> Resp {
        let (status, headers) = self.head();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .expect("Content-Length");
        while self.buf.len() < len {
            assert!(self.fill() > 0, "EOF inside a body");
        }
        let body = self.buf.drain(..len).collect();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Reads a response head.
    pub fn head(&mut self) -> (u16, Vec<(String, String)>) {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(n) = resp.parse(&self.buf).unwrap() {
                let status = resp.code.unwrap();
                let hs = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                self.buf.drain(..n);
                return (status, hs);
            }
            assert!(self.fill() > 0, "EOF before a response head");
        }
    }

    /// Reads until `needle` is in the buffer; returns everything up to and including it.
    pub fn read_until(&mut self, needle: &[u8]) -> String {
        loop {
            if let Some(i) = self.buf.windows(needle.len()).position(|w| w == needle) {
                let out: Vec<u8> = self.buf.drain(..i + needle.len()).collect();
                return String::from_utf8(out).unwrap();
            }
            assert!(
                self.fill() > 0,
                "EOF before {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }

    /// Whether the server closed the connection (EOF with nothing more buffered).
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && matches!(self.stream.read(&mut [0u8; 64]), Ok(0) | Err(_))
    }
}
