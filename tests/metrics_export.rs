//! The metrics a real gateway process exports: the store's fsync histogram and availability
//! (recorded from the store's first write, so the recorder must exist before the store opens),
//! durable enqueues, and the queue-depth gauge counted by the maintenance sweep.

mod common;
use common::*;

/// The value of an unlabelled series in a Prometheus text page.
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn a_gateway_process_exports_store_enqueue_and_queue_depth_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(dir.path(), &[]);
    let mut a = child.agent("metered", V2);
    let mut c = connect(child.agent_addr, &a, None);
    authenticate(&mut c, &mut a);
    let (uid, _token) = register(&mut c, &mut a, "host-metered");
    drop(c);
    child.wait_offline(&uid);
    for n in 0..3 {
        child.send_queued(&uid, n);
    }
    let metrics = || http(child.admin_addr, "GET", "/metrics", None, None).1;
    poll_until(WAIT, || {
        let page = metrics();
        let depth = value(&page, "aegis_gateway_queue_depth");
        let enqueues = value(&page, "aegis_gateway_enqueues_total");
        let fsyncs = value(&page, "aegis_gateway_fsync_seconds_count");
        let available = value(&page, "aegis_gateway_store_available");
        if depth == Some(3.0)
            && enqueues == Some(3.0)
            && fsyncs.is_some_and(|n| n >= 1.0)
            && available == Some(1.0)
        {
            Ok(())
        } else {
            Err(format!(
                "queue_depth {depth:?}, enqueues {enqueues:?}, fsyncs {fsyncs:?}, \
                 store_available {available:?}"
            ))
        }
    });
}
