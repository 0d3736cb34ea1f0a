//! The route table, bearer-token auth and dispatch to the [`Backend`].
//!
//! A request is resolved from its head alone ([`resolve`]: auth, path, method), so that an
//! unauthenticated or misrouted request is answered before its body is read; then [`dispatch`]
//! validates the body or query and calls the backend.

use super::api::{self, ApiError, ErrorKind};
use super::http::{Head, Response};
use super::query::{self, EventsQuery};
use super::{openapi, Backend};
use crate::protocol::payloads::is_agent_id;

/// Longest path parameter once percent-decoded (bytes).
pub const MAX_PARAM_LEN: usize = 256;

/// HTTP methods the admin API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /api/v1/agents/{id}/status`
    AgentStatus,
    /// `GET /api/v1/agents`
    ListAgents,
    /// `POST /api/v1/agents/{id}/send`
    Send,
    /// `POST /api/v1/agents/broadcast`
    Broadcast,
    /// `GET /api/v1/messages/{message_id}`
    MessageStatus,
    /// `DELETE /api/v1/agents/{id}`
    Revoke,
    /// `GET /api/v1/events` (Server-Sent Events)
    Events,
    /// `GET /api/v1/openapi.json`
    OpenApi,
    /// `GET /metrics`
    Metrics,
    /// `GET /healthz`
    Healthz,
    /// `GET /readyz`
    Readyz,
}

/// One row of the route table. `path` is an OpenAPI path template (`{name}` matches one
/// non-empty segment).
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// Method.
    pub method: Method,
    /// Path template.
    pub path: &'static str,
    /// Handler.
    pub route: Route,
}

const fn spec(method: Method, path: &'static str, route: Route) -> RouteSpec {
    RouteSpec {
        method,
        path,
        route,
    }
}

/// Every route. A path that a literal template (no parameter) matches belongs to the literal
/// routes alone: `/api/v1/agents/broadcast` is only `POST` (`DELETE` there is 405, not the
/// revocation of an agent named "broadcast"; such an agent is revoked by uid).
pub const ROUTES: [RouteSpec; 11] = [
    spec(
        Method::Get,
        "/api/v1/agents/{id}/status",
        Route::AgentStatus,
    ),
    spec(Method::Get, "/api/v1/agents", Route::ListAgents),
    spec(Method::Post, "/api/v1/agents/{id}/send", Route::Send),
    spec(Method::Post, "/api/v1/agents/broadcast", Route::Broadcast),
    spec(
        Method::Get,
        "/api/v1/messages/{message_id}",
        Route::MessageStatus,
    ),
    spec(Method::Delete, "/api/v1/agents/{id}", Route::Revoke),
    spec(Method::Get, "/api/v1/events", Route::Events),
    spec(Method::Get, "/api/v1/openapi.json", Route::OpenApi),
    spec(Method::Get, "/metrics", Route::Metrics),
    spec(Method::Get, "/healthz", Route::Healthz),
    spec(Method::Get, "/readyz", Route::Readyz),
];

/// Paths under this prefix need the bearer token.
pub const AUTH_PREFIX: &str = "/api/v1/";

/// The SHA-256 of the admin token; presented tokens are hashed and compared in constant time,
/// so neither the token's bytes nor its length leak through timing. An empty token never matches.
pub struct TokenCheck {
    digest: Option<[u8; 32]>,
}

impl TokenCheck {
    /// Hashes the configured token.
    pub fn new(token: &str) -> TokenCheck {
        TokenCheck {
            digest: (!token.is_empty()).then(|| sha256(token.as_bytes())),
        }
    }

    /// Whether `presented` is the token (constant time in the presented bytes).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let got = sha256(presented);
        let Some(want) = &self.digest else {
            return false;
        };
        let diff = want
            .iter()
            .zip(got.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0 && !presented.is_empty()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// A request resolved from its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Which route.
    pub route: Route,
    /// The percent-decoded path parameter, for routes that have one.
    pub param: Option<String>,
}

/// Auth, then route and method. `Err` is the response to send instead (401, 404, 405, 400).
pub fn resolve(head: &Head, token: &TokenCheck) -> Result<Resolved, Response> {
    if head.path.starts_with(AUTH_PREFIX) || head.path == "/api/v1" {
        check_auth(head, token)?;
    }
    let candidates = candidates(&head.path);
    let Some(spec) = candidates.iter().find(|s| s.method.as_str() == head.method) else {
        if candidates.is_empty() {
            return Err(Response::error(&ApiError::new(
                ErrorKind::NotFound,
                format!("no route for {}", api::truncate(&head.path)),
            )));
        }
        let allow = allowed(&candidates);
        let err = ApiError::new(
            ErrorKind::MethodNotAllowed,
            format!(
                "{} is not allowed here; allowed: {allow}",
                api::truncate(&head.method)
            ),
        );
        return Err(Response::error(&err).with_header("Allow", allow));
    };
    let param = match match_template(spec.path, &head.path).flatten() {
        Some(raw) => Some(decode_param(spec.path, raw).map_err(|e| Response::error(&e))?),
        None => None,
    };
    Ok(Resolved {
        route: spec.route,
        param,
    })
}

/// The routes whose template matches `path`: the literal ones if any literal template matches,
/// else those with parameters.
pub fn candidates(path: &str) -> Vec<&'static RouteSpec> {
    let all: Vec<&RouteSpec> = ROUTES
        .iter()
        .filter(|s| match_template(s.path, path).is_some())
        .collect();
    if all.iter().any(|s| !s.path.contains('{')) {
        all.into_iter().filter(|s| !s.path.contains('{')).collect()
    } else {
        all
    }
}

/// The `Allow` value of these routes: their methods, each once, in table order.
pub fn allowed(routes: &[&RouteSpec]) -> String {
    let mut methods: Vec<&str> = Vec::new();
    for r in routes {
        if !methods.contains(&r.method.as_str()) {
            methods.push(r.method.as_str());
        }
    }
    methods.join(", ")
}

/// Percent-decodes a path parameter: an agent `{id}` must be an agent id or host id
/// (1..=128 bytes of `[A-Za-z0-9._@-]`), any other parameter 1..=256 bytes of UTF-8.
fn decode_param(template: &str, raw: &str) -> Result<String, ApiError> {
    let bad = |m: String| ApiError::new(ErrorKind::InvalidPath, format!("path parameter: {m}"));
    let value = query::percent_decode(raw, MAX_PARAM_LEN).map_err(|e| bad(e.to_string()))?;
    if template.contains("{id}") && !is_agent_id(&value) {
        return Err(bad(format!(
            "{:?} is not an agent uid or host id (1..=128 characters of A-Z a-z 0-9 . _ @ -)",
            api::truncate(&value)
        )));
    }
    Ok(value)
}

fn check_auth(head: &Head, token: &TokenCheck) -> Result<(), Response> {
    let unauthorized = |msg: &str, challenge: &str| {
        Response::error(&ApiError::new(ErrorKind::Unauthorized, msg))
            .with_header("WWW-Authenticate", challenge)
    };
    let Some(value) = head.header_bytes("authorization") else {
        return Err(unauthorized("missing bearer token", "Bearer"));
    };
    let presented = value
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
        .and_then(|_| value.get(7..))
        .map(|t| t.trim_ascii());
    match presented {
        Some(t) if token.matches(t) => Ok(()),
        _ => Err(unauthorized(
            "invalid bearer token",
            "Bearer error=\"invalid_token\"",
        )),
    }
}

/// Matches `path` against `template`: `Some(None)` for a literal match, `Some(Some(raw))` with the
/// raw (still percent-encoded) parameter segment, `None` if it does not match.
pub fn match_template<'p>(template: &str, path: &'p str) -> Option<Option<&'p str>> {
    let mut param = None;
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(param),
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') => {
                if ps.is_empty() {
                    return None;
                }
                param = Some(ps);
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

/// What to do with a resolved request.
pub enum Reply {
    /// Send this response.
    Response(Response),
    /// Switch to a Server-Sent Events stream.
    Events(EventsQuery),
}

/// Runs the route: validates input and calls the backend.
pub async fn dispatch<B: Backend>(backend: &B, head: &Head, r: Resolved, body: &[u8]) -> Reply {
    if r.route == Route::Events {
        return match query::parse_events_query(head.query.as_deref(), head.header("last-event-id"))
        {
            Ok(q) => Reply::Events(q),
            Err(e) => Reply::Response(Response::error(&e)),
        };
    }
    Reply::Response(
        run(backend, head, r, body)
            .await
            .unwrap_or_else(|e| Response::error(&e)),
    )
}

fn ok<T: serde::Serialize>(value: &T) -> Result<Response, ApiError> {
    Ok(Response::json(200, value))
}

async fn run<B: Backend>(
    backend: &B,
    head: &Head,
    r: Resolved,
    body: &[u8],
) -> Result<Response, ApiError> {
    let id = r.param.as_deref().unwrap_or("");
    match r.route {
        Route::AgentStatus => ok(&backend.agent_status(id).await?),
        Route::ListAgents => {
            let q = query::parse_list_query(head.query.as_deref())?;
            ok(&backend.list_agents(q).await?)
        }
        Route::Send => {
            let req = api::parse_send(body)?;
            ok(&backend.send(id, req).await?)
        }
        Route::Broadcast => {
            let req = api::parse_broadcast(body)?;
            ok(&backend.broadcast(req).await?)
        }
        Route::MessageStatus => ok(&backend.message_status(id).await?),
        Route::Revoke => ok(&backend.revoke(id).await?),
        Route::OpenApi => ok(&openapi::document()),
        Route::Metrics => Ok(Response::text(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            backend.metrics_text(),
        )),
        Route::Healthz => ok(&serde_json::json!({"status": "ok"})),
        Route::Readyz if backend.ready() => ok(&serde_json::json!({"status": "ready"})),
        Route::Readyz => Ok(Response::json(
            503,
            &serde_json::json!({"status": backend.not_ready()}),
        )),
        Route::Events => Err(ApiError::internal(
            "the event stream is not a plain response",
        )),
    }
}
