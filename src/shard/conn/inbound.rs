//! Data messages into the session, one path for every message: a run of messages (as many as the
//! session may parse ahead, at least one) is fed, their signature checks go to the shard's
//! batcher together (a busy agent fills a batch by itself), then each message is finished in
//! order with its verdict and its actions are carried out.

use super::frames::Endpoint;
use super::{Conn, Reason};
use crate::protocol::session::Env;
use crate::protocol::ws::Incoming;
use crate::shard::batch::MAX_BATCH;
use crate::shard::now_ms;
use crate::shard::ws::WsStream;
use futures_lite::{AsyncRead, AsyncWrite};
use std::rc::Rc;

impl<S: AsyncRead + AsyncWrite + Unpin> Endpoint for Conn<S> {
    type Stream = S;

    fn ws(&mut self) -> &mut WsStream<S> {
        &mut self.ws
    }

    fn ahead(&mut self) -> usize {
        let ctx = Rc::clone(&self.ctx);
        self.session
            .parse_ahead(&ctx.env(), now_ms())
            .min(MAX_BATCH)
    }

    fn saw_traffic(&mut self) {
        self.session.on_traffic(crate::shard::now());
    }

    async fn messages(&mut self, run: Vec<Incoming>) -> Option<Reason> {
        Box::pin(self.feed(run)).await
    }

    async fn send(&mut self, frame: &[u8]) -> Result<(), ()> {
        Conn::send(self, frame).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Feeds a run of data messages (see the module docs). `Some` when the connection ends.
    async fn feed(&mut self, run: Vec<Incoming>) -> Option<Reason> {
        let ctx = Rc::clone(&self.ctx);
        let now = crate::shard::now();
        let gate = ctx.shared.pending.gate(self.peer.ip(), now.unix_s());
        let env = Env {
            registrations: Some(&gate),
            ..ctx.env()
        };
        let mut fed = Vec::with_capacity(run.len());
        for m in run {
            if let Incoming::Text(mut buf) | Incoming::Binary(mut buf) = m {
                fed.push(self.session.feed(&env, &mut buf, now));
            }
        }
        let mut needs = Vec::with_capacity(fed.len());
        let mut jobs = Vec::with_capacity(fed.len());
        for f in fed.iter_mut() {
            let job = f.take_job();
            needs.push(job.is_some());
            jobs.extend(job);
        }
        let mut verdicts = ctx.batcher.verify_all(jobs).await.into_iter();
        for (f, needed) in fed.into_iter().zip(needs) {
            let ok = needed && verdicts.next().unwrap_or(false);
            let actions = self.session.finish(&env, f, ok, crate::shard::now());
            if let Some(reason) = self.perform(actions).await {
                return Some(reason);
            }
        }
        None
    }
}
