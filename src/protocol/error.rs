//! Protocol error kinds (PROTOCOL.md §7) and WebSocket close codes.
//!
//! Every failure the gateway reports to an agent maps to exactly one [`ErrorKind`]: its
//! snake_case wire name ([`ErrorKind::as_str`]), its numeric code ([`ErrorKind::code`]) and, when
//! it is fatal, the close code of the same number (see [`close`]).

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

impl ErrorKind {
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

/// WebSocket close codes the gateway uses (RFC 6455 §7.4 and PROTOCOL.md §7).
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Graceful shutdown (drain).
    pub const GOING_AWAY: u16 = 1001;
    /// A framing violation (RFC 6455).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Generic policy violation.
    pub const POLICY: u16 = 1008;
    /// A message larger than the configured maximum.
    pub const TOO_BIG: u16 = 1009;
    /// `authentication_failed`; also used when a uid is revoked.
    pub const AUTH_FAILED: u16 = 4001;
    /// `signature_verification_failed`.
    pub const SIGNATURE: u16 = 4003;
    /// `replay_detected`.
    pub const REPLAY: u16 = 4006;
    /// `rate_limited` after sustained abuse.
    pub const RATE_LIMITED: u16 = 4007;
    /// `invalid_message` on the 5th in 60 s.
    pub const INVALID_MESSAGE: u16 = 4008;
    /// `session_expired` (key rotation).
    pub const SESSION_EXPIRED: u16 = 4009;
    /// `replaced` by a newer connection of the same identity.
    pub const REPLACED: u16 = 4010;
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
    fn close_codes_match_their_kinds() {
        assert_eq!(close::AUTH_FAILED, ErrorKind::AuthenticationFailed.code());
        assert_eq!(
            close::SIGNATURE,
            ErrorKind::SignatureVerificationFailed.code()
        );
        assert_eq!(close::REPLAY, ErrorKind::ReplayDetected.code());
        assert_eq!(close::RATE_LIMITED, ErrorKind::RateLimited.code());
        assert_eq!(close::INVALID_MESSAGE, ErrorKind::InvalidMessage.code());
        assert_eq!(close::SESSION_EXPIRED, ErrorKind::SessionExpired.code());
        assert_eq!(close::REPLACED, ErrorKind::Replaced.code());
        assert_eq!(
            [
                close::GOING_AWAY,
                close::INVALID_PAYLOAD,
                close::POLICY,
                close::TOO_BIG
            ],
            [1001, 1007, 1008, 1009]
        );
    }
}
