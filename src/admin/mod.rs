//! # Admin API (HTTP/1.1)
//!
//! The operator-facing listener of DESIGN.md §4 on `ADMIN_ADDR`: JSON routes under `/api/v1/`
//! (bearer token), `/metrics`, `/healthz`, `/readyz`, and a Server-Sent Events stream. It runs on
//! its own executor thread ([`Service`]), never on a shard; the business logic lives behind the
//! [`Backend`] trait, so this module is only HTTP, routing, auth, validation and framing.
//!
//! | file | what it is |
//! |---|---|
//! | `http.rs` | request heads (httparse), bodies, limits and deadlines, response bytes |
//! | `routes.rs` | the route table, constant-time bearer auth, dispatch to the backend |
//! | `api.rs` | request/response types, [`ApiError`], body validation |
//! | `query.rs` | query strings and percent-decoding |
//! | `openapi.rs` | the OpenAPI 3.0.3 document, built in code from the same table |
//! | `sse.rs` | event-stream framing and loop |
//! | `service.rs` | the admin executor thread: bind, serve, stop |
//!
//! Per connection: read a head (≤ 16 KiB, 10 s deadline for the whole request), resolve auth and
//! route from the head alone (so an unauthenticated client cannot make us buffer a body), read
//! the body (`Content-Length` ≤ 1 MiB), dispatch, answer; repeat while keep-alive. Any HTTP-level
//! error (400, 408, 411, 413, 431) is answered and the connection closed.

pub mod api;
pub mod http;
pub mod openapi;
pub mod query;
pub mod routes;
mod service;
pub mod sse;

#[cfg(test)]
mod tests;

pub use service::{Service, StartError};

pub use api::{
    AgentFilter, AgentPage, AgentStatus, ApiError, BroadcastCounts, BroadcastFailure,
    BroadcastRequest, BroadcastResponse, Delivery, EventItem, ListQuery, MessageStatusResponse,
    RevokeResponse, SendRequest, SendResponse,
};

use crate::shard::rt::{self, TcpListener, TcpStream};
use crate::tls::TlsConfig;
use futures_lite::{AsyncRead, AsyncWrite};
use http::{Conn, ReadError, Response};
use routes::{Reply, TokenCheck};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long an event-stream backend call waits for new events before a keepalive comment.
pub const SSE_WAIT: Duration = Duration::from_secs(15);
/// Most admin connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 256;
/// A response write that does not complete in this time closes the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The gateway operations behind the admin API. Implementations run on the admin executor
/// (single-threaded: `Rc`/`RefCell` state is fine). Inputs are validated before these are called:
/// path ids are percent-decoded, non-empty and ≤ 256 bytes; request bodies passed
/// [`api::parse_send`] / [`api::parse_broadcast`].
#[allow(async_fn_in_trait)]
pub trait Backend: 'static {
    /// Called once on the admin executor before the first request (the gateway's backend
    /// starts its periodic maintenance there). Default: nothing.
    fn on_start(self: &Rc<Self>) {}
    /// `/readyz`: `200 {"status":"ready"}` when true, else `503 {"status":"draining"}`.
    fn ready(&self) -> bool;
    /// The `/metrics` body (Prometheus text format 0.0.4).
    fn metrics_text(&self) -> String;
    /// `GET /api/v1/agents/{id}/status`; `id` is a uid or a host id.
    async fn agent_status(&self, id: &str) -> Result<AgentStatus, ApiError>;
    /// `GET /api/v1/agents`.
    async fn list_agents(&self, q: ListQuery) -> Result<AgentPage, ApiError>;
    /// `POST /api/v1/agents/{id}/send`. `req.channel` is a backend channel; the backend checks
    /// that its `{id}` (if any) names the path's agent. `priority`/`message_type` are `Some`.
    async fn send(&self, id: &str, req: SendRequest) -> Result<SendResponse, ApiError>;
    /// `POST /api/v1/agents/broadcast`. `req.channel` is `backend.{kind}`.
    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, ApiError>;
    /// `GET /api/v1/messages/{message_id}`.
    async fn message_status(&self, message_id: &str) -> Result<MessageStatusResponse, ApiError>;
    /// `DELETE /api/v1/agents/{id}`: forget the registration, close the connection.
    async fn revoke(&self, id: &str) -> Result<RevokeResponse, ApiError>;
    /// Events with seq > after matching `pattern`, waiting up to `wait` for at least one; empty on timeout.
    ///
    /// `pattern` is the `channel` query value (≤ 256 bytes of `[A-Za-z0-9._@*>-]`), or `""` when
    /// absent, meaning every channel. `after` is 0 for a fresh client (everything retained).
    async fn next_events(
        &self,
        after: u64,
        pattern: &str,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<EventItem>, ApiError>;
}

/// Serves the admin API on `listener` forever (until the task is dropped). Every `/api/v1/*`
/// route needs `Authorization: Bearer <token>`; an empty token refuses every such request.
pub async fn serve<B: Backend>(listener: TcpListener, token: Rc<str>, backend: Rc<B>) {
    serve_with(listener, token, backend, SSE_WAIT).await;
}

/// [`serve`] over TLS when `tls` is given (`ADMIN_TLS`; the certificate is the agent listener's,
/// reloaded with it on SIGHUP).
pub async fn serve_tls<B: Backend>(
    listener: TcpListener,
    token: Rc<str>,
    backend: Rc<B>,
    tls: Option<std::sync::Arc<TlsConfig>>,
) {
    let opts = Options {
        tls,
        ..Options::default()
    };
    serve_opts(listener, token, backend, opts).await;
}

/// [`serve`] with the event-stream wait chosen (tests use a short one).
pub async fn serve_with<B: Backend>(
    listener: TcpListener,
    token: Rc<str>,
    backend: Rc<B>,
    sse_wait: Duration,
) {
    let opts = Options {
        sse_wait,
        ..Options::default()
    };
    serve_opts(listener, token, backend, opts).await;
}

/// Tunables of the admin listener.
#[derive(Clone)]
pub(crate) struct Options {
    /// Serve HTTPS with this certificate (`ADMIN_TLS`). Default = plain HTTP.
    pub tls: Option<std::sync::Arc<TlsConfig>>,
    /// Event-stream backend wait. Default = [`SSE_WAIT`].
    pub sse_wait: Duration,
    /// Deadline for one request. Default = [`http::READ_TIMEOUT`].
    pub read_timeout: Duration,
    /// Connection cap. Default = [`MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tls: None,
            sse_wait: SSE_WAIT,
            read_timeout: http::READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

pub(crate) async fn serve_opts<B: Backend>(
    listener: TcpListener,
    token: Rc<str>,
    backend: Rc<B>,
    opts: Options,
) {
    let ctx = Rc::new(Ctx {
        tls: opts.tls.clone(),
        token: TokenCheck::new(&token),
        backend,
        opts,
        open: Cell::new(0),
    });
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let ctx = Rc::clone(&ctx);
                rt::spawn(accept_conn(ctx, stream));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "admin accept failed");
                rt::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

struct Ctx<B> {
    tls: Option<std::sync::Arc<TlsConfig>>,
    token: TokenCheck,
    backend: Rc<B>,
    opts: Options,
    open: Cell<usize>,
}

/// Counts an open connection for as long as it lives.
struct Slot<'a>(&'a Cell<usize>);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Serves one accepted socket, over TLS when the listener has a certificate.
async fn accept_conn<B: Backend>(ctx: Rc<Ctx<B>>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    match ctx.tls.as_ref().map(|t| t.acceptor()) {
        None => serve_conn(ctx, stream).await,
        Some(acceptor) => {
            let deadline = Instant::now() + ctx.opts.read_timeout;
            if let Some(Ok(tls)) = rt::with_deadline(deadline, acceptor.accept(stream)).await {
                serve_conn(ctx, tls).await;
            }
        }
    }
}

async fn serve_conn<B: Backend, S: AsyncRead + AsyncWrite + Unpin>(ctx: Rc<Ctx<B>>, stream: S) {
    let mut conn = Conn::new(stream);
    if ctx.open.get() >= ctx.opts.max_connections {
        let busy = ApiError::unavailable("too many admin connections");
        let _ = conn.respond(&Response::error(&busy), false).await;
        conn.linger_close().await;
        return;
    }
    ctx.open.set(ctx.open.get() + 1);
    let _slot = Slot(&ctx.open);
    loop {
        let deadline = Instant::now() + ctx.opts.read_timeout;
        let head = match conn.read_head(deadline).await {
            Ok(head) => head,
            Err(ReadError::Closed) => return,
            Err(ReadError::Http(e)) => return refuse(conn, &e.to_api()).await,
        };
        let resolved = match routes::resolve(&head, &ctx.token) {
            Ok(r) => r,
            Err(resp) => {
                // The body (if any) stays unread: answer and close unless there is none.
                let keep = head.keep_alive && head.content_length == 0;
                let sent = conn.respond(&resp, keep).await;
                log(&head, resp.status);
                if sent.is_err() || !keep {
                    return conn.linger_close().await;
                }
                continue;
            }
        };
        let body = match conn.read_body(&head, deadline).await {
            Ok(body) => body,
            Err(ReadError::Closed) => return,
            Err(ReadError::Http(e)) => return refuse(conn, &e.to_api()).await,
        };
        match routes::dispatch(&*ctx.backend, &head, resolved, &body).await {
            Reply::Response(resp) => {
                log(&head, resp.status);
                if conn.respond(&resp, head.keep_alive).await.is_err() || !head.keep_alive {
                    conn.close().await;
                    return;
                }
            }
            Reply::Events(q) => {
                tracing::debug!(pattern = %q.pattern, after = q.after, "admin event stream opened");
                sse::stream(&mut conn, &*ctx.backend, q, ctx.opts.sse_wait).await;
                conn.close().await;
                return;
            }
        }
    }
}

fn log(head: &http::Head, status: u16) {
    tracing::debug!(method = %head.method, path = %head.path, status, "admin request");
}

/// Answers an HTTP-level error and closes.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut conn: Conn<S>, err: &ApiError) {
    tracing::debug!(
        status = err.status,
        error = err.error,
        "admin request refused"
    );
    let _ = conn.respond(&Response::error(err), false).await;
    conn.linger_close().await;
}
