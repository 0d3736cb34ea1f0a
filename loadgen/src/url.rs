//! Target URLs (`ws://` agent endpoint, `http://` admin endpoint), restricted to loopback.
//!
//! The load generator only ever targets this machine: a host that is not in 127.0.0.0/8 or
//! `localhost` is refused before any socket is opened.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Why a URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// Not `scheme://host[:port][/path]` with the expected scheme.
    #[error("{url}: expected {scheme}://host[:port][/path]")]
    Shape {
        /// The URL given.
        url: String,
        /// The scheme expected.
        scheme: &'static str,
    },
    /// The port is not a number in 1..=65535.
    #[error("{0}: bad port")]
    Port(String),
    /// The host is not loopback.
    #[error("{0}: only loopback targets (127.0.0.0/8 or localhost) are allowed")]
    NotLoopback(String),
}

/// A parsed loopback endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header value (`host:port` as given).
    pub host_header: String,
    /// Path, starting with `/` (`/` when the URL has none).
    pub path: String,
}

/// Parses `ws://host[:port][/path]` (default port 80).
pub fn parse_ws(url: &str) -> Result<Endpoint, UrlError> {
    parse(url, "ws", 80)
}

/// Parses `http://host[:port][/path]` (default port 80).
pub fn parse_http(url: &str) -> Result<Endpoint, UrlError> {
    parse(url, "http", 80)
}

/// The loopback IPv4 address a host name stands for, if it is one.
pub fn loopback_ip(host: &str) -> Option<Ipv4Addr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(Ipv4Addr::LOCALHOST);
    }
    let ip: Ipv4Addr = host.parse().ok()?;
    ip.is_loopback().then_some(ip)
}

fn parse(url: &str, scheme: &'static str, default_port: u16) -> Result<Endpoint, UrlError> {
    let shape = || UrlError::Shape {
        url: url.to_string(),
        scheme,
    };
    let (given_scheme, rest) = url.split_once("://").ok_or_else(shape)?;
    if !given_scheme.eq_ignore_ascii_case(scheme) {
        return Err(shape());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || path.contains(['?', '#', ' ']) {
        return Err(shape());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => {
            let port: u16 = p.parse().map_err(|_| UrlError::Port(url.to_string()))?;
            if port == 0 {
                return Err(UrlError::Port(url.to_string()));
            }
            (h, port)
        }
        None => (authority, default_port),
    };
    let ip = loopback_ip(host).ok_or_else(|| UrlError::NotLoopback(url.to_string()))?;
    Ok(Endpoint {
        addr: SocketAddr::V4(SocketAddrV4::new(ip, port)),
        host_header: authority.to_string(),
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loopback_ws_urls() {
        let e = parse_ws("ws://127.0.0.1:8080/ws/agent").unwrap();
        assert_eq!(e.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(e.path, "/ws/agent");
        assert_eq!(e.host_header, "127.0.0.1:8080");
        let e = parse_ws("ws://localhost").unwrap();
        assert_eq!(e.addr, "127.0.0.1:80".parse().unwrap());
        assert_eq!(e.path, "/");
        let e = parse_http("http://127.3.2.1:9090").unwrap();
        assert_eq!(e.addr, "127.3.2.1:9090".parse().unwrap());
    }

    #[test]
    fn refuses_anything_not_loopback() {
        for url in [
            "ws://10.0.0.1:8080/ws/agent",
            "ws://192.168.1.2/x",
            "ws://example.com/ws",
            "ws://0.0.0.0:8080/",
            "ws://[::1]:8080/",
        ] {
            assert!(
                matches!(
                    parse_ws(url),
                    Err(UrlError::NotLoopback(_)) | Err(UrlError::Port(_))
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn refuses_bad_shapes() {
        assert!(matches!(
            parse_ws("wss://127.0.0.1/"),
            Err(UrlError::Shape { .. })
        ));
        assert!(matches!(
            parse_ws("127.0.0.1:80"),
            Err(UrlError::Shape { .. })
        ));
        assert!(matches!(
            parse_http("ws://127.0.0.1/"),
            Err(UrlError::Shape { .. })
        ));
        assert!(matches!(
            parse_ws("ws://u@127.0.0.1/"),
            Err(UrlError::Shape { .. })
        ));
        assert_eq!(
            parse_ws("ws://127.0.0.1:0/"),
            Err(UrlError::Port("ws://127.0.0.1:0/".into()))
        );
        assert_eq!(
            parse_ws("ws://127.0.0.1:x/"),
            Err(UrlError::Port("ws://127.0.0.1:x/".into()))
        );
    }
}
