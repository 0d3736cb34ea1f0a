//! `wss://` clients trusting one certificate, and self-signed certificates made with openssl.

use super::client::{connect_on, Client, Refused, Timeouts};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A TLS client stream over TCP.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

impl Timeouts for TlsStream {
    fn set_timeout(&self, d: Duration) {
        self.sock.set_read_timeout(Some(d)).unwrap();
    }
}

/// A TLS client configuration trusting only `ca_pem` (ring provider).
pub fn tls_client_config(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS stream to `addr` for server name `localhost`, trusting only `ca_pem`.
pub fn tls_stream(addr: SocketAddr, ca_pem: &[u8]) -> TlsStream {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(tls_client_config(ca_pem), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Connects over TLS trusting only `ca_pem` (server name `localhost`) and upgrades.
pub fn connect_tls(
    addr: SocketAddr,
    ca_pem: &[u8],
    request: &[u8],
) -> Result<Client<TlsStream>, Refused> {
    connect_on(tls_stream(addr, ca_pem), request)
}

/// Writes a self-signed certificate for `localhost`/127.0.0.1 and its key with openssl.
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
        ])
        .arg(format!("/CN={name}"))
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success());
    (cert, key)
}
