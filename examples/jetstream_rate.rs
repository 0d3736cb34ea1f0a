//! The ceiling the cluster backend's enqueue rate sits under: JetStream publishes to one R3
//! stream on the servers at `NATS_URL`, sequential (await each ack) and pipelined (`WINDOW`
//! acks outstanding), `N` messages of 512 bytes each. The figure `README.md` "Cluster mode"
//! compares the gateway's enqueue rate to.
//!
//!   NATS_URL=nats://127.0.0.1:14222 cargo run --release --example jetstream_rate

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let window: usize = std::env::var("WINDOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let replicas: usize = std::env::var("REPLICAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = async_nats::connect(url).await?;
        let js = async_nats::jetstream::new(client);
        let name = format!("RATE{}", std::process::id());
        let stream = js
            .create_stream(async_nats::jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![format!("rate.{name}.>")],
                num_replicas: replicas,
                ..Default::default()
            })
            .await?;
        let body = bytes::Bytes::from(vec![b'x'; 512]);
        let subject = |i: usize| format!("rate.{name}.{}", i % 1000);
        let seq_n = (n / 10).max(1);
        let t = Instant::now();
        for i in 0..seq_n {
            js.publish(subject(i), body.clone()).await?.await?;
        }
        let seq = seq_n as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut pending = std::collections::VecDeque::new();
        for i in 0..n {
            pending.push_back(js.publish(subject(i), body.clone()).await?);
            if pending.len() >= window {
                if let Some(ack) = pending.pop_front() {
                    ack.await?;
                }
            }
        }
        for ack in pending {
            ack.await?;
        }
        let piped = n as f64 / t.elapsed().as_secs_f64();
        println!(
            "R{replicas}: sequential {seq:.0}/s ({seq_n} msgs), pipelined {piped:.0}/s ({n} msgs, window {window})"
        );
        let _ = js.delete_stream(stream.cached_info().config.name.clone()).await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
