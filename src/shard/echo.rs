//! A WebSocket echo endpoint for protocol compliance runs (Autobahn `fuzzingclient`), built on
//! the production connection pieces: the same upgrade response, WebSocket stream
//! ([`super::ws::WsStream`]: framing, error mapping to 1002/1007/1009, close handshake) and the
//! same read handling as agent connections (`conn::frames::on_read`: pings, closes, framing
//! errors), with an endpoint that echoes data messages. It accepts any
//! WebSocket upgrade on any path (no Aegis headers), so it is only reachable through the hidden
//! `aegis-gateway ws-echo` command, never from `serve`.

use super::conn::frames::{on_read, Endpoint};
use super::conn::Reason;
use super::ws::WsStream;
use crate::config::Config;
use crate::protocol::upgrade;
use crate::protocol::ws::{self, Incoming};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::rc::Rc;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// Serves the echo endpoint on `addr` on the current thread until the process ends.
pub fn run_echo(addr: SocketAddr, config: Config) -> std::io::Result<()> {
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("ws-echo")
        .io_memory(64 << 10)
        .make()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    ex.run(async move {
        let listener = TcpListener::bind(addr)?;
        tracing::info!(addr = %listener.local_addr()?, "ws-echo listening");
        let config = Rc::new(config);
        loop {
            let stream = listener.accept().await?;
            let config = Rc::clone(&config);
            glommio::spawn_local(async move { echo(stream, &config).await }).detach();
        }
    })
}

async fn echo(mut stream: TcpStream, config: &Config) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let (key, consumed) = loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 || buf.len() > upgrade::MAX_UPGRADE_BYTES {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; upgrade::MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(n)) => {
                let key = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Key"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(str::to_string);
                match key {
                    Some(k) => break (k, n),
                    None => {
                        let resp = upgrade::error_response(
                            400,
                            "invalid_request",
                            "not a WebSocket upgrade",
                        );
                        let _ = stream.write_all(&resp).await;
                        return;
                    }
                }
            }
            Err(_) => return,
        }
    };
    if stream
        .write_all(&upgrade::accept_response(&key))
        .await
        .is_err()
    {
        return;
    }
    let mut echo = Echo(WsStream::new(stream, config.max_message_size));
    let mut read = echo.0.feed(buf.get(consumed..).unwrap_or_default());
    drop(buf);
    while on_read(&mut echo, read).await.is_none() {
        read = echo.0.read().await;
    }
}

/// The echo endpoint: every data message goes back as it came.
struct Echo(WsStream<TcpStream>);

impl Endpoint for Echo {
    type Stream = TcpStream;

    fn ws(&mut self) -> &mut WsStream<TcpStream> {
        &mut self.0
    }

    async fn messages(&mut self, run: Vec<Incoming>) -> Option<Reason> {
        for m in run {
            let frame = match m {
                Incoming::Text(data) => ws::text(&data),
                Incoming::Binary(data) => ws::encode(OpCode::Data(Data::Binary), &data),
                _ => continue,
            };
            if self.0.write_frame(&frame).await.is_err() {
                return Some("write failed");
            }
        }
        None
    }
}
