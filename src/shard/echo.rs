//! A WebSocket echo endpoint for protocol compliance runs (Autobahn `fuzzingclient`), built on
//! the production connection pieces: the same upgrade response, `WebSocketConfig`, read loop
//! error mapping (1007/1009/1002) and close handling as agent connections. It accepts any
//! WebSocket upgrade on any path (no Aegis headers), so it is only reachable through the hidden
//! `aegis-gateway ws-echo` command, never from `serve`.

use super::conn::{close_for, close_ws, ws_config};
use crate::config::Config;
use crate::protocol::upgrade;
use async_tungstenite::tungstenite::protocol::Role;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use glommio::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::rc::Rc;

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
    let rest = buf.get(consumed..).unwrap_or_default().to_vec();
    let mut ws =
        WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(ws_config(config)))
            .await;
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            Ok(Message::Close(_)) => return,
            Ok(_) => {}
            Err(e) => {
                if let Some((code, reason)) = close_for(&e) {
                    close_ws(&mut ws, code, reason).await;
                }
                return;
            }
        }
    }
}
