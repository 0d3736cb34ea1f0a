//! The HTTP registration fallback on the agent port (PROTOCOL §9): `POST /agents/register/init`
//! and `/complete`, one request per connection, answered on the shard that accepted it. Same
//! rules and records as the WebSocket path (`protocol::registration`), same caps on pending
//! registrations (per client IP and in total, [`super::pending`]), same per-IP connect limit
//! (applied before this runs); the pending registration is bound to its key, not to the
//! connection, and completes at most once.

use super::ctx::ShardCtx;
use crate::protocol::payloads::{
    decode_b64_exact, RegistrationComplete, RegistrationRequest, RegistrationResult,
};
use crate::protocol::register_http::{self as http, Head, Route};
use crate::protocol::registration::{self as rules, Refusal};
use crate::store::{AgentRecord, Registration};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::net::SocketAddr;
use std::rc::Rc;

/// The profile recorded for an agent registered over HTTP: the Go agent's (it then connects
/// with whichever profile it speaks).
const HTTP_PROFILE: u8 = 1;

/// Reads the body of `head` (bytes past the head are in `buf`), answers the step, closes.
pub(super) async fn serve<S>(
    ctx: &Rc<ShardCtx>,
    stream: &mut S,
    mut buf: Vec<u8>,
    head: Head,
    peer: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    buf.drain(..head.consumed.min(buf.len()));
    let timeout = ctx.shared.config.upgrade_timeout;
    let body = crate::shard::rt::timeout(timeout, read_body(stream, buf, head.body_len)).await;
    let Some(Some(body)) = body else {
        // Too slow or gone before the body was complete: nothing was taken.
        let _ = stream.close().await;
        return;
    };
    let answer = match head.route {
        Route::Init => init(ctx, &body, peer).await,
        Route::Complete => complete(ctx, &body).await,
    };
    let _ = stream.write_all(&answer).await;
    let _ = stream.flush().await;
    let _ = stream.close().await;
}

async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut body: Vec<u8>,
    len: usize,
) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    // Bytes past Content-Length (a pipelined request) are ignored: one request per connection.
    body.truncate(len);
    Some(body)
}

/// `init`: a registration request → a pending registration and its challenge.
async fn init(ctx: &Rc<ShardCtx>, body: &[u8], peer: SocketAddr) -> Vec<u8> {
    let Ok(req) = serde_json::from_slice::<RegistrationRequest>(body) else {
        return http::refused(Refusal::Malformed);
    };
    if let Err(r) = rules::check_request(&req, None) {
        return http::refused(r);
    }
    let now_s = super::now_ms() / 1000;
    let agent_id = req.host_id.clone();
    let ttl = ctx.shared.limits.registration_ttl_s;
    let (record, challenge) = rules::challenge(req, agent_id, now_s, ttl);
    let caps = &ctx.shared.pending;
    if !caps.admit(&record.registration_id, peer.ip(), record.expires_at, now_s) {
        return http::refused(Refusal::TooMany);
    }
    let stored = Registration::pending(&record, Registration::HTTP);
    match ctx.shared.fleet.put_registration(&stored).await {
        Ok(()) => http::ok(&challenge),
        Err(e) => {
            tracing::warn!(error = %e, "HTTP registration not stored");
            caps.release(&record.registration_id);
            http::unavailable()
        }
    }
}

/// `complete`: the signed challenge → the agent record (durable before the answer), its uid
/// and bootstrap token.
async fn complete(ctx: &Rc<ShardCtx>, body: &[u8]) -> Vec<u8> {
    let Ok(done) = serde_json::from_slice::<RegistrationComplete>(body) else {
        return http::refused(Refusal::Malformed);
    };
    let fleet = &ctx.shared.fleet;
    let pending = match fleet.take_http_registration(&done.registration_id).await {
        Ok(Some(reg)) => reg.to_pending(),
        Ok(None) => return http::refused(Refusal::Unknown),
        Err(e) => {
            tracing::warn!(error = %e, "HTTP registration lookup failed");
            return http::unavailable();
        }
    };
    // Taken: whatever follows, this registration is over (one attempt, as on the WebSocket).
    ctx.shared.pending.release(&pending.registration_id);
    let Some(key) = decode_b64_exact::<32>(&pending.request.agent_pubkey) else {
        return http::refused(Refusal::Malformed);
    };
    let now_s = super::now_ms() / 1000;
    if let Err(r) = rules::check_completion(&pending, &done, &key, now_s) {
        return http::refused(r);
    }
    let (new, token) = rules::new_agent(pending, HTTP_PROFILE, now_s);
    let record = AgentRecord::registered(&new, &key);
    match fleet.register_agent(&record).await {
        Ok(()) => {
            tracing::info!(uid = %new.agent_uid, host_id = %new.request.host_id, "agent registered over HTTP");
            http::ok(&RegistrationResult {
                agent_uid: new.agent_uid,
                bootstrap_token: token,
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "agent record not stored");
            http::unavailable()
        }
    }
}
