//! The close handshake of [`WsStream`] over a scripted stream: which reads it makes and whether
//! it closes the stream, not how long it takes.

use super::*;
use crate::protocol::ws::apply_mask;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// What the scripted peer saw.
#[derive(Default)]
struct Log {
    /// Chunks the peer sends, one per read.
    script: VecDeque<Vec<u8>>,
    /// Bytes the gateway wrote.
    written: Vec<u8>,
    /// Reads polled after the script ran out (a peer that answered and now waits for the FIN).
    idle_reads: usize,
    /// The gateway closed the stream.
    closed: bool,
}

/// A stream whose reads follow a script, then stay pending forever (the peer never sends EOF).
struct Scripted(Rc<RefCell<Log>>);

impl AsyncRead for Scripted {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut log = self.0.borrow_mut();
        match log.script.pop_front() {
            Some(chunk) => {
                assert!(chunk.len() <= buf.len());
                buf[..chunk.len()].copy_from_slice(&chunk);
                Poll::Ready(Ok(chunk.len()))
            }
            None => {
                log.idle_reads += 1;
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.borrow_mut().written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.0.borrow_mut().closed = true;
        Poll::Ready(Ok(()))
    }
}

/// A masked client frame.
fn client(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [9, 8, 7, 6];
    let mut out = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    let at = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[at..], mask);
    out
}

/// Feeds `early` (bytes read with the upgrade), then closes with the code of the violation it
/// must contain, the peer sending `script` meanwhile; returns the log.
fn close_after(early: &[u8], script: Vec<Vec<u8>>) -> Log {
    let early = early.to_vec();
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(64 << 10)
        .name("ws-close-test")
        .spawn(move || async move {
            let log = Rc::new(RefCell::new(Log {
                script: script.into(),
                ..Log::default()
            }));
            let mut ws = WsStream::new(Scripted(Rc::clone(&log)), 1024);
            let Read::Frames(_, Err(e)) = ws.feed(&early) else {
                panic!("the early bytes hold no violation");
            };
            ws.close(e.close_code(), e.reason()).await;
            drop(ws);
            Rc::try_unwrap(log).ok().expect("one owner").into_inner()
        })
        .expect("executor starts")
        .join()
        .expect("test executor")
}

#[test]
fn the_peers_answer_to_an_error_close_ends_the_connection_at_once() {
    // Invalid UTF-8 (1007); the peer answers with its close frame (in two reads, after a
    // message that was in flight) and then waits for our FIN without ever sending EOF. Before
    // the fix the answer was not recognised after a violation: the stream was read again and
    // dropped unclosed when the 1 s close timer fired.
    let answer = client(0x8, &1000u16.to_be_bytes());
    let log = close_after(
        &client(0x1, &[0xff]),
        vec![
            client(0x1, b"in flight"),
            answer[..3].to_vec(),
            answer[3..].to_vec(),
        ],
    );
    assert_eq!(log.written, ws::close_frame(1007, "invalid UTF-8"));
    assert!(log.script.is_empty(), "the whole answer was read");
    assert_eq!(log.idle_reads, 0, "read on after the peer's close");
    assert!(log.closed, "the stream was not closed");
}

#[test]
fn a_close_already_read_is_not_waited_for() {
    // The violation and the peer's close came in one read: nothing more is read.
    let early = [client(0x1, &[0xc0]), client(0x8, &[])].concat();
    let log = close_after(&early, Vec::new());
    assert_eq!(log.written, ws::close_frame(1007, "invalid UTF-8"));
    assert_eq!(log.idle_reads, 0, "waited for a close that had come");
    assert!(log.closed);
}
