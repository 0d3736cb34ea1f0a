//! Query strings and percent-decoding (RFC 3986: `%XX` only; `+` is a literal plus).

use super::api::{ApiError, ErrorKind, ListQuery, MAX_CURSOR_LEN, MAX_LIST_LIMIT};

/// Longest accepted SSE `channel` pattern (bytes).
pub const MAX_PATTERN_LEN: usize = 256;

/// Why a percent-encoded string could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// `%` not followed by two hex digits.
    #[error("bad percent escape")]
    BadEscape,
    /// The decoded bytes are not UTF-8.
    #[error("not UTF-8 after percent-decoding")]
    NotUtf8,
    /// Longer than the cap once decoded.
    #[error("longer than {0} bytes")]
    TooLong(usize),
}

/// Percent-decodes `s`, refusing results longer than `max` bytes (checked before allocating more).
pub fn percent_decode(s: &str, max: usize) -> Result<String, DecodeError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len().min(max));
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if out.len() >= max {
            return Err(DecodeError::TooLong(max));
        }
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| hex_val(*c));
            let lo = bytes.get(i + 2).and_then(|c| hex_val(*c));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(DecodeError::BadEscape),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The `key=value` pairs of a query string, keys and values percent-decoded (values capped at
/// `max_value` bytes). Empty pairs (`a=1&&b=2`) are skipped; a key without `=` has value `""`.
pub fn pairs(query: &str, max_value: usize) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k, 64).map_err(|e| bad_query(format!("query key: {e}")))?;
        let value = percent_decode(v, max_value)
            .map_err(|e| bad_query(format!("query parameter {key:?}: {e}")))?;
        out.push((key, value));
    }
    Ok(out)
}

/// Parses `connected=true|false&limit=1..1000&cursor=…`; other keys are ignored, the last
/// occurrence of a key wins. Errors are 400 `invalid_query`.
pub fn parse_list_query(query: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery::default();
    for (key, value) in pairs(query.unwrap_or(""), MAX_CURSOR_LEN)? {
        match key.as_str() {
            "connected" => {
                q.connected = Some(match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad_query("connected must be true or false")),
                })
            }
            "limit" => {
                q.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_LIST_LIMIT).contains(l))
                    .ok_or_else(|| {
                        bad_query(format!("limit must be an integer 1..={MAX_LIST_LIMIT}"))
                    })?
            }
            "cursor" => q.cursor = Some(value).filter(|c| !c.is_empty()),
            _ => {}
        }
    }
    Ok(q)
}

/// What `GET /api/v1/events` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsQuery {
    /// Channel pattern, `""` (every channel) when absent.
    pub pattern: String,
    /// Resume after this seq (`Last-Event-ID`, else `last_event_id`, else 0).
    pub after: u64,
}

/// Parses `channel=<pattern>&last_event_id=<seq>`; the `Last-Event-ID` header wins over the query.
/// A pattern is at most 256 bytes of `[A-Za-z0-9._@*>-]`. Errors are 400 `invalid_query`.
pub fn parse_events_query(
    query: Option<&str>,
    last_event_id: Option<&str>,
) -> Result<EventsQuery, ApiError> {
    let mut q = EventsQuery {
        pattern: String::new(),
        after: 0,
    };
    let mut query_after = None;
    for (key, value) in pairs(query.unwrap_or(""), MAX_PATTERN_LEN)? {
        match key.as_str() {
            "channel" => {
                if !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._@*>-".contains(&b))
                {
                    return Err(bad_query(
                        "channel pattern may only hold letters, digits and . _ @ * > -",
                    ));
                }
                q.pattern = value;
            }
            "last_event_id" => query_after = Some(value),
            _ => {}
        }
    }
    let after = last_event_id.map(str::trim).or(query_after.as_deref());
    if let Some(after) = after.filter(|a| !a.is_empty()) {
        q.after = after
            .parse()
            .map_err(|_| bad_query("Last-Event-ID / last_event_id must be an event seq"))?;
    }
    Ok(q)
}

fn bad_query(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::InvalidQuery, message)
}
