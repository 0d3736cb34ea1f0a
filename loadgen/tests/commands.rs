//! The `commands` and `mixed` scenarios against a real gateway, with a stand-in for the admin API
//! (DESIGN §4 `send`, `broadcast`, `/metrics`) that delivers through the gateway's control
//! handle, so send→receive latency and acks go over the real sockets.

mod common;

use aegis_gateway::protocol::channel::BackendKind;
use aegis_gateway::protocol::envelope::MsgType;
use aegis_gateway::shard::{Command, GatewayHandle};
use aegis_loadgen::{ProfileChoice, Scenario};
use common::{options, Gateway};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "test-token";

/// A minimal admin API: bearer check, `send` (delivers now), `broadcast` (to every uid seen in a
/// `send`), `/metrics`.
struct FakeAdmin {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
}

impl FakeAdmin {
    fn start(handle: GatewayHandle) -> FakeAdmin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let counter = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handle, seen, counter) =
                    (handle.clone(), Arc::clone(&seen), Arc::clone(&counter));
                std::thread::spawn(move || serve(stream, &handle, &seen, &counter));
            }
        });
        FakeAdmin { addr, requests }
    }
}

fn serve(stream: TcpStream, handle: &GatewayHandle, seen: &Mutex<Vec<String>>, n: &AtomicU64) {
    let mut r = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        n.fetch_add(1, Ordering::Relaxed);
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_string())
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let authorized = head.contains(&format!("Authorization: Bearer {TOKEN}\r\n"));
        let (status, reply) = route(&target, authorized, &body, handle, seen);
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if r.get_mut().write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn route(
    target: &str,
    authorized: bool,
    body: &[u8],
    handle: &GatewayHandle,
    seen: &Mutex<Vec<String>>,
) -> (u16, String) {
    if target == "/metrics" {
        return (
            200,
            "aegis_gateway_messages_in_total{kind=\"logs\",result=\"ok\"} 0\n".into(),
        );
    }
    if !authorized {
        return (401, r#"{"error":"unauthorized","message":"token"}"#.into());
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let message = serde_json::to_vec(&v["message"]).unwrap_or_default();
    let id = format!(
        "m-{}",
        aegis_gateway::protocol::payloads::b64(&aegis_gateway::crypto::random::bytes::<6>())
    );
    let cmd = Command {
        message_id: id.replace(['+', '/', '='], "x"),
        kind: BackendKind::Policies,
        msg_type: MsgType::Request,
        message_json: message,
        seq: 0,
    };
    let deliver =
        |uid: &str| futures_lite::future::block_on(handle.deliver(uid, cmd.clone())).is_ok();
    if target == "/api/v1/agents/broadcast" {
        let uids = seen.lock().map(|s| s.clone()).unwrap_or_default();
        let sent: Vec<&String> = uids.iter().filter(|u| deliver(u)).collect();
        return (200, serde_json::json!({"message_id": cmd.message_id, "sent_to": sent, "queued": [], "failed": []}).to_string());
    }
    let uid = target
        .strip_prefix("/api/v1/agents/")
        .and_then(|r| r.strip_suffix("/send"))
        .unwrap_or("");
    if let Ok(mut s) = seen.lock() {
        if !s.iter().any(|x| x == uid) {
            s.push(uid.to_string());
        }
    }
    let status = if deliver(uid) { "sent" } else { "failed" };
    (
        200,
        serde_json::json!({"message_id": cmd.message_id, "status": status}).to_string(),
    )
}

#[test]
fn commands_reach_v1_and_v2_agents_and_the_broadcast_reaches_all() {
    let gw = Gateway::start();
    let admin = FakeAdmin::start(gw.handle());
    let mut o = options(&gw, Scenario::Commands);
    o.agents = 8;
    o.profile = ProfileChoice::Mix;
    o.commands = Some(16);
    o.command_rate = 200.0;
    o.duration_s = 8.0;
    o.admin = Some(format!("http://{}", admin.addr));
    o.admin_token = Some(TOKEN.into());
    let r = aegis_loadgen::run(&o).expect("run");
    assert_eq!(r.errors, Default::default(), "{}", r.table());
    assert_eq!(r.counts.registered, 8);
    assert_eq!(r.counts.commands_sent, 16, "{}", r.table());
    assert_eq!(r.counts.commands_status_sent, 16);
    assert_eq!(r.counts.commands_received, 16, "{}", r.table());
    assert_eq!(r.counts.broadcasts_sent, 1);
    assert_eq!(r.counts.broadcast_targets, 8);
    assert_eq!(r.counts.broadcasts_received, 8, "{}", r.table());
    // v2 agents (odd indexes: 4 of 8) ack their 8 commands and the broadcast.
    assert_eq!(r.counts.acks_sent, 8 + 4, "{}", r.table());
    let l = r.latency_us.get("command").copied().unwrap_or_default();
    assert_eq!(l.count, 16);
    assert!(l.max < 5_000_000, "{l:?}");
    assert!(r.timing.broadcast_time_ms.is_some() && r.timing.broadcast_http_ms.is_some());
    assert!(admin.requests.load(Ordering::Relaxed) >= 17);
    assert!(
        r.timing.window_s < 7.0,
        "ends when delivered, not at the deadline: {}",
        r.timing.window_s
    );
}

#[test]
fn mixed_runs_steady_traffic_with_periodic_commands() {
    let gw = Gateway::start();
    let admin = FakeAdmin::start(gw.handle());
    let mut o = options(&gw, Scenario::Mixed);
    o.agents = 6;
    o.profile = ProfileChoice::Mix;
    o.heartbeat_s = 0.5;
    o.event_rate = 5.0;
    o.command_rate = 20.0;
    o.duration_s = 3.0;
    o.admin = Some(format!("http://{}", admin.addr));
    o.admin_token = Some(TOKEN.into());
    let r = aegis_loadgen::run(&o).expect("run");
    assert_eq!(r.errors, Default::default(), "{}", r.table());
    assert!(r.counts.commands_sent >= 10, "{}", r.table());
    assert_eq!(
        r.counts.commands_received,
        r.counts.commands_sent,
        "{}",
        r.table()
    );
    assert!(r.counts.events_sent > 0 && r.counts.heartbeats_sent > 0);
    assert_eq!(
        r.counts.messages_accepted,
        r.counts.messages_sent,
        "{}",
        r.table()
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}
