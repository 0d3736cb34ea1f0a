//! Protocol error kinds (PROTOCOL.md §7) and WebSocket close codes.
//!
//! Every failure the gateway reports to an agent maps to exactly one [`ErrorKind`]: its
//! snake_case wire name ([`ErrorKind::as_str`]), its numeric code ([`ErrorKind::code`]) and, when
//! it is fatal, the close code of the same number (see [`close`]). Each kind also says who is at
//! fault ([`Blame`], rustls' habit): what an operator should read from a rising error count.
//!
//! | blame | kinds |
//! |---|---|
//! | [`Blame::Malformed`] (the peer sent garbage) | `invalid_message` |
//! | [`Blame::Misbehaved`] (the peer broke a rule) | `authentication_failed`, `registration_failed`, `signature_verification_failed`, `replay_detected`, `rate_limited`, `channel_forbidden` |
//! | [`Blame::Incompatible`] (the peer speaks what we do not) | `channel_not_found` |
//! | [`Blame::Gateway`] (our failure) | `message_processing_error` |
//! | [`Blame::Lifecycle`] (nobody: the session ended by design) | `session_expired`, `replaced` |

use std::fmt;

/// One error kind of the table in PROTOCOL.md §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `authentication_failed` (4001): bad or missing M1, bad credentials.
    AuthenticationFailed,
    /// `registration_failed` (4002): M3/M4 rejected; never fatal.
    RegistrationFailed,
    /// `signature_verification_failed` (4003): bad signature, timestamp or AEAD tag.
    SignatureVerificationFailed,
    /// `channel_not_found` (4004): unknown channel prefix or kind.
    ChannelNotFound,
    /// `message_processing_error` (4005): the gateway failed to handle a valid message.
    MessageProcessingError,
    /// `replay_detected` (4006): v2 sequence number not the expected one.
    ReplayDetected,
    /// `rate_limited` (4007): the agent sends too much.
    RateLimited,
    /// `invalid_message` (4008): the frame is not an envelope of §2.
    InvalidMessage,
    /// `session_expired` (4009): the session token expired (key rotation).
    SessionExpired,
    /// `replaced` (4010): a newer connection of the same identity took over.
    Replaced,
    /// `channel_forbidden` (4011): the agent published on a channel that is not its own.
    ChannelForbidden,
}

/// Who is at fault for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blame {
    /// The peer sent bytes that are not a frame of the protocol.
    Malformed,
    /// The peer sent a well-formed frame that breaks a rule: bad credentials or signature, a
    /// replay, a channel that is not its own, too many messages.
    Misbehaved,
    /// The peer speaks something this gateway does not (an unknown channel kind).
    Incompatible,
    /// The gateway failed to handle a valid message.
    Gateway,
    /// Nobody: the session ended by design (expiry, a newer connection).
    Lifecycle,
}

impl Blame {
    /// The snake_case name (a metric label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Blame::Malformed => "malformed",
            Blame::Misbehaved => "misbehaved",
            Blame::Incompatible => "incompatible",
            Blame::Gateway => "gateway",
            Blame::Lifecycle => "lifecycle",
        }
    }
}

impl ErrorKind {
    /// Who is at fault when this error is reported.
    pub const fn blame(self) -> Blame {
        match self {
            ErrorKind::InvalidMessage => Blame::Malformed,
            ErrorKind::AuthenticationFailed
            | ErrorKind::RegistrationFailed
            | ErrorKind::SignatureVerificationFailed
            | ErrorKind::ReplayDetected
            | ErrorKind::RateLimited
            | ErrorKind::ChannelForbidden => Blame::Misbehaved,
            ErrorKind::ChannelNotFound => Blame::Incompatible,
            ErrorKind::MessageProcessingError => Blame::Gateway,
            ErrorKind::SessionExpired | ErrorKind::Replaced => Blame::Lifecycle,
        }
    }

    /// Every kind, in code order (4001..=4011).
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::AuthenticationFailed,
        ErrorKind::RegistrationFailed,
        ErrorKind::SignatureVerificationFailed,
        ErrorKind::ChannelNotFound,
        ErrorKind::MessageProcessingError,
        ErrorKind::ReplayDetected,
        ErrorKind::RateLimited,
        ErrorKind::InvalidMessage,
        ErrorKind::SessionExpired,
        ErrorKind::Replaced,
        ErrorKind::ChannelForbidden,
    ];

    /// The snake_case kind sent in the `error` field of an error payload (also a metric label).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::AuthenticationFailed => "authentication_failed",
            ErrorKind::RegistrationFailed => "registration_failed",
            ErrorKind::SignatureVerificationFailed => "signature_verification_failed",
            ErrorKind::ChannelNotFound => "channel_not_found",
            ErrorKind::MessageProcessingError => "message_processing_error",
            ErrorKind::ReplayDetected => "replay_detected",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::InvalidMessage => "invalid_message",
            ErrorKind::SessionExpired => "session_expired",
            ErrorKind::Replaced => "replaced",
            ErrorKind::ChannelForbidden => "channel_forbidden",
        }
    }

    /// The numeric code of the kind (the `code` field of an error payload). When the kind is
    /// fatal, the WebSocket close code is the same number.
    pub const fn code(self) -> u16 {
        match self {
            ErrorKind::AuthenticationFailed => 4001,
            ErrorKind::RegistrationFailed => 4002,
            ErrorKind::SignatureVerificationFailed => 4003,
            ErrorKind::ChannelNotFound => 4004,
            ErrorKind::MessageProcessingError => 4005,
            ErrorKind::ReplayDetected => 4006,
            ErrorKind::RateLimited => 4007,
            ErrorKind::InvalidMessage => 4008,
            ErrorKind::SessionExpired => 4009,
            ErrorKind::Replaced => 4010,
            ErrorKind::ChannelForbidden => 4011,
        }
    }

    /// The kind whose snake_case name is `s` (exact match).
    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind whose code is `code`.
    pub fn from_code(code: u16) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes of RFC 6455 §7.4 that the gateway uses. The 40xx closes of PROTOCOL §7
/// are [`ErrorKind::code`].
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Graceful shutdown (drain).
    pub const GOING_AWAY: u16 = 1001;
    /// A framing violation (RFC 6455).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message larger than the configured maximum.
    pub const TOO_BIG: u16 = 1009;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The §7 table, written out by hand.
    const TABLE: [(&str, u16); 11] = [
        ("authentication_failed", 4001),
        ("registration_failed", 4002),
        ("signature_verification_failed", 4003),
        ("channel_not_found", 4004),
        ("message_processing_error", 4005),
        ("replay_detected", 4006),
        ("rate_limited", 4007),
        ("invalid_message", 4008),
        ("session_expired", 4009),
        ("replaced", 4010),
        ("channel_forbidden", 4011),
    ];

    #[test]
    fn kinds_match_the_spec_table() {
        for (kind, (name, code)) in ErrorKind::ALL.into_iter().zip(TABLE) {
            assert_eq!(kind.as_str(), name);
            assert_eq!(kind.code(), code);
            assert_eq!(kind.to_string(), name);
            assert_eq!(ErrorKind::parse(name), Some(kind));
            assert_eq!(ErrorKind::from_code(code), Some(kind));
        }
        assert_eq!(ErrorKind::parse("Authentication_Failed"), None);
        assert_eq!(ErrorKind::from_code(4000), None);
        assert_eq!(ErrorKind::from_code(4012), None);
    }

    #[test]
    fn close_codes_are_rfc_6455s() {
        assert_eq!(
            [
                close::NORMAL,
                close::GOING_AWAY,
                close::PROTOCOL_ERROR,
                close::INVALID_PAYLOAD,
                close::TOO_BIG
            ],
            [1000, 1001, 1002, 1007, 1009]
        );
    }

    #[test]
    fn every_kind_has_one_blame() {
        use std::collections::HashSet;
        let lifecycle: HashSet<_> = ErrorKind::ALL
            .into_iter()
            .filter(|k| k.blame() == Blame::Lifecycle)
            .collect();
        assert_eq!(
            lifecycle,
            HashSet::from([ErrorKind::SessionExpired, ErrorKind::Replaced])
        );
        assert_eq!(ErrorKind::InvalidMessage.blame(), Blame::Malformed);
        assert_eq!(ErrorKind::MessageProcessingError.blame(), Blame::Gateway);
        assert_eq!(ErrorKind::ChannelNotFound.blame(), Blame::Incompatible);
        assert_eq!(ErrorKind::ReplayDetected.blame(), Blame::Misbehaved);
        let labels: HashSet<_> = ErrorKind::ALL.iter().map(|k| k.blame().as_str()).collect();
        assert_eq!(labels.len(), 5, "{labels:?}");
    }
}
