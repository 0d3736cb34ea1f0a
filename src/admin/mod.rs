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
//! | `api.rs` | request/response types, body validation into typed requests |
//! | `error.rs` | [`ErrorKind`] (one status and one code each) and [`ApiError`] |
//! | `conns.rs` | connection admission: caps in all and per client IP, eviction of slow clients |
//! | `query.rs` | query strings and percent-decoding |
//! | `openapi.rs` | the OpenAPI 3.0.3 document, built in code from the same table |
//! | `sse.rs` | event-stream framing and loop |
//! | `service.rs` | the admin executor thread: bind, serve, stop |
//!
//! Per connection: read a head (≤ 16 KiB, 10 s deadline for the whole request, 2 s for the head
//! under pressure), resolve auth and route from the head alone (so an unauthenticated client
//! cannot make us buffer a body), read the body (`Content-Length` ≤ 1 MiB; only routes that take
//! one read it), dispatch, answer; repeat while keep-alive. Any HTTP-level error (400, 408, 411,
//! 413, 431) is answered and the connection closed. Connections are capped in all and per client
//! IP; a new connection evicts a slow one rather than being refused, and a health probe is
//! answered even beyond the caps (`conns.rs`).

pub mod api;
pub mod conns;
mod error;
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
    BroadcastRequest, BroadcastResponse, Delivery, ErrorKind, EventItem, ListQuery,
    MessageStatusResponse, RevokeResponse, SendRequest, SendResponse,
};

use crate::shard::rt::{self, TcpListener, TcpStream};
use crate::tls::TlsConfig;
use conns::{Admission, Full, Registry, Slot, State};
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use http::{Conn, Head, ReadError, Response};
use routes::{Reply, Route, TokenCheck};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long an event-stream backend call waits for new events before a keepalive comment.
pub const SSE_WAIT: Duration = Duration::from_secs(15);
/// Most admin connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Most admin connections of one client IP.
pub const MAX_CONNECTIONS_PER_IP: usize = 64;
/// Under pressure (half of [`MAX_CONNECTIONS`] or of a client's [`MAX_CONNECTIONS_PER_IP`]
/// taken) a request head must arrive within this time.
pub const PRESSURE_HEAD_TIMEOUT: Duration = Duration::from_secs(2);
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
    /// `/readyz`: `200 {"status":"ready"}` when true, else `503 {"status": not_ready()}`.
    fn ready(&self) -> bool;
    /// Why `ready` is false: `draining` (default) or `storage_unavailable`.
    fn not_ready(&self) -> &'static str {
        "draining"
    }
    /// The `/metrics` body (Prometheus text format 0.0.4).
    fn metrics_text(&self) -> String;
    /// `GET /api/v1/agents/{id}/status`; `id` is a uid or a host id.
    async fn agent_status(&self, id: &str) -> Result<AgentStatus, ApiError>;
    /// `GET /api/v1/agents`.
    async fn list_agents(&self, q: ListQuery) -> Result<AgentPage, ApiError>;
    /// `POST /api/v1/agents/{id}/send`. The backend checks that `req.channel_id` (if any)
    /// names the path's agent.
    async fn send(&self, id: &str, req: SendRequest) -> Result<SendResponse, ApiError>;
    /// `POST /api/v1/agents/broadcast` (the channel is `backend.{req.kind}`).
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
    /// Event-stream write stall that drops a slow consumer. Default = [`sse::WRITE_STALL`].
    pub sse_stall: Duration,
    /// Event-stream frames held per client. Default = [`sse::MAX_BUFFERED_BYTES`].
    pub sse_buffer: usize,
    /// Deadline for one request. Default = [`http::READ_TIMEOUT`].
    pub read_timeout: Duration,
    /// Deadline for a request head under pressure. Default = [`PRESSURE_HEAD_TIMEOUT`].
    pub pressure_timeout: Duration,
    /// Connection cap. Default = [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// Connection cap per client IP. Default = [`MAX_CONNECTIONS_PER_IP`].
    pub max_per_ip: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tls: None,
            sse_wait: SSE_WAIT,
            sse_stall: sse::WRITE_STALL,
            sse_buffer: sse::MAX_BUFFERED_BYTES,
            read_timeout: http::READ_TIMEOUT,
            pressure_timeout: PRESSURE_HEAD_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_per_ip: MAX_CONNECTIONS_PER_IP,
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
        registry: Registry::new(opts.max_connections, opts.max_per_ip),
        opts,
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
    registry: Rc<Registry>,
    opts: Options,
}

impl<B> Ctx<B> {
    /// The head deadline of a request from `ip` starting now.
    fn head_deadline(&self, ip: IpAddr) -> Instant {
        let limit = if self.registry.under_pressure(ip) {
            self.opts.read_timeout.min(self.opts.pressure_timeout)
        } else {
            self.opts.read_timeout
        };
        Instant::now() + limit
    }
}

/// How a connection is served.
enum Mode {
    /// Normally, in this slot.
    Slot(Slot),
    /// Beyond the caps: a health probe only.
    Probe(Full),
}

/// Admits one accepted socket and serves it, over TLS when the listener has a certificate.
async fn accept_conn<B: Backend>(ctx: Rc<Ctx<B>>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let ip = stream
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let (mode, eviction, _probe) = match ctx.registry.admit(ip) {
        Admission::Admitted(slot, eviction) => (Mode::Slot(slot), Some(eviction), None),
        Admission::ProbeOnly(full, probe) => (Mode::Probe(full), None, Some(probe)),
        Admission::Refused(full) => {
            tracing::debug!(%ip, ?full, "admin connection refused");
            if ctx.tls.is_none() {
                let bytes = Response::error(&full_error(full)).to_bytes(false);
                let deadline = Instant::now() + Duration::from_millis(100);
                let _ = rt::with_deadline(deadline, stream.write_all(&bytes)).await;
            }
            return;
        }
    };
    let serve = async {
        let deadline = match &mode {
            Mode::Slot(_) => ctx.head_deadline(ip),
            Mode::Probe(_) => Instant::now() + conns::PROBE_TIMEOUT,
        };
        match ctx.tls.as_ref().map(|t| t.acceptor()) {
            None => serve_conn(&ctx, stream, &mode, ip).await,
            Some(acceptor) => {
                if let Some(Ok(tls)) = rt::with_deadline(deadline, acceptor.accept(stream)).await {
                    serve_conn(&ctx, tls, &mode, ip).await;
                }
            }
        }
    };
    match eviction {
        // The eviction is polled first: it only fires while the connection waits for the
        // client, so a backend call in progress is never cut.
        Some(eviction) => futures_lite::future::or(eviction.wait(), serve).await,
        None => serve.await,
    }
}

fn full_error(full: Full) -> ApiError {
    match full {
        Full::PerIp => ApiError::new(
            ErrorKind::TooManyConnections,
            "too many admin connections from this address",
        ),
        Full::Total => ApiError::unavailable("too many admin connections"),
    }
}

async fn serve_conn<B: Backend, S: AsyncRead + AsyncWrite + Unpin>(
    ctx: &Ctx<B>,
    stream: S,
    mode: &Mode,
    ip: IpAddr,
) {
    let mut conn = Conn::new(stream);
    let slot = match mode {
        Mode::Slot(slot) => slot,
        Mode::Probe(full) => return serve_probe(ctx, conn, *full).await,
    };
    loop {
        slot.set(State::Client);
        let started = Instant::now();
        let head = match conn.read_head(ctx.head_deadline(ip)).await {
            Ok(head) => head,
            Err(ReadError::Closed) => return,
            Err(ReadError::Http(e)) => return refuse(conn, &e.to_api()).await,
        };
        let resolved = match routes::resolve(&head, &ctx.token) {
            Ok(r) => r,
            Err(resp) => {
                // The body (if any) stays unread: answer and close unless there is none.
                let keep = head.keep_alive && head.content_length == 0;
                let sent = respond(&mut conn, &head, resp, keep).await;
                if sent.is_err() || !keep {
                    return conn.linger_close().await;
                }
                continue;
            }
        };
        // Only the routes that take a body read one; others are answered and closed.
        let takes_body = matches!(resolved.route, Route::Send | Route::Broadcast);
        let body = if takes_body {
            match conn.read_body(&head, started + ctx.opts.read_timeout).await {
                Ok(body) => body,
                Err(ReadError::Closed) => return,
                Err(ReadError::Http(e)) => return refuse(conn, &e.to_api()).await,
            }
        } else {
            Vec::new()
        };
        let keep = head.keep_alive && (takes_body || head.content_length == 0);
        slot.set(State::Busy);
        let reply = routes::dispatch(&*ctx.backend, &head, resolved, &body).await;
        match reply {
            Reply::Response(resp) => {
                slot.set(State::Client);
                if respond(&mut conn, &head, resp, keep).await.is_err() || !keep {
                    conn.close().await;
                    return;
                }
            }
            Reply::Events(q) => {
                tracing::debug!(pattern = %q.pattern, after = q.after, "admin event stream opened");
                let limits = sse::Limits {
                    wait: ctx.opts.sse_wait,
                    stall: ctx.opts.sse_stall,
                    grace: ctx.opts.sse_stall,
                    max_bytes: ctx.opts.sse_buffer,
                };
                sse::stream(&mut conn, &*ctx.backend, q, limits).await;
                conn.close().await;
                return;
            }
        }
    }
}

/// Beyond the caps: answers a health probe (`GET /healthz`, `GET /readyz`) whose head arrives
/// within [`conns::PROBE_TIMEOUT`], anything else with the cap's error; then closes.
async fn serve_probe<B: Backend, S: AsyncRead + AsyncWrite + Unpin>(
    ctx: &Ctx<B>,
    mut conn: Conn<S>,
    full: Full,
) {
    let deadline = Instant::now() + conns::PROBE_TIMEOUT;
    let Ok(head) = conn.read_head(deadline).await else {
        return;
    };
    let resp = match routes::resolve(&head, &ctx.token) {
        Ok(r) if matches!(r.route, Route::Healthz | Route::Readyz) => {
            match routes::dispatch(&*ctx.backend, &head, r, &[]).await {
                Reply::Response(resp) => resp,
                Reply::Events(_) => Response::error(&full_error(full)),
            }
        }
        _ => Response::error(&full_error(full)),
    };
    let _ = respond(&mut conn, &head, resp, false).await;
    conn.close().await;
}

/// Writes `resp` to the request `head` (without the body for `HEAD`).
async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    head: &Head,
    mut resp: Response,
    keep: bool,
) -> std::io::Result<()> {
    tracing::debug!(method = %head.method, path = %head.path, status = resp.status, "admin request");
    if head.method == "HEAD" {
        resp.body.clear();
    }
    conn.respond(&resp, keep).await
}

/// Answers an HTTP-level error and closes.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut conn: Conn<S>, err: &ApiError) {
    tracing::debug!(
        status = err.status(),
        error = err.code(),
        "admin request refused"
    );
    let _ = conn.respond(&Response::error(err), false).await;
    conn.linger_close().await;
}
