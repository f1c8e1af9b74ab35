//! The server side of the opening handshake (RFC 6455 4.2): checking the upgrade request and
//! computing `Sec-WebSocket-Accept`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

use crate::http::Version;

/// Appended to the client's key before hashing (RFC 6455 1.3; its last group is `C5AB0DC85B11`).
pub const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Bytes of `Sec-WebSocket-Key`: base64 of 16 bytes.
pub const KEY_LEN: usize = 24;
/// Bytes of the nonce the key encodes.
pub const NONCE_LEN: usize = 16;
/// Bytes of `Sec-WebSocket-Accept`: base64 of a 20-byte SHA-1 digest.
pub const ACCEPT_LEN: usize = 28;
/// The only protocol version spoken (`Sec-WebSocket-Version`).
pub const VERSION: &str = "13";

/// Bytes `decode_slice` may write for a key of [`KEY_LEN`] characters.
const KEY_DECODED_MAX: usize = KEY_LEN / 4 * 3;
const _: () = assert!(KEY_DECODED_MAX >= NONCE_LEN);

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`, or `None` if the key is not the
/// canonical base64 of exactly 16 bytes (24 characters, `==` padding, no stray bits).
///
/// The key is hashed as received, so it must come without surrounding whitespace.
pub fn accept_key(sec_websocket_key: &[u8]) -> Option<[u8; ACCEPT_LEN]> {
    if sec_websocket_key.len() != KEY_LEN {
        return None;
    }
    let mut nonce = [0u8; KEY_DECODED_MAX];
    let decoded = STANDARD.decode_slice(sec_websocket_key, &mut nonce).ok()?;
    if decoded != NONCE_LEN {
        return None;
    }
    let mut sha1 = Sha1::new();
    sha1.update(sec_websocket_key);
    sha1.update(ACCEPT_GUID);
    let digest = sha1.finalize();
    let mut accept = [0u8; ACCEPT_LEN];
    let written = STANDARD
        .encode_slice(digest, &mut accept)
        .expect("20 bytes encode to 28");
    assert_eq!(written, ACCEPT_LEN);
    Some(accept)
}

/// Why an upgrade request is refused, and the status to answer it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpgradeError {
    /// 400: the method is not GET.
    NotGet,
    /// 400: an HTTP/1.0 request (the upgrade needs HTTP/1.1).
    Http10,
    /// 400: no `Upgrade` field: not an upgrade request at all.
    NoUpgrade,
    /// 426: an `Upgrade` field without the `websocket` token (another protocol): the answer
    /// carries `Upgrade: websocket` to say which one this endpoint speaks.
    UpgradeNotWebSocket,
    /// 400: `Connection` lacks the `upgrade` token.
    NoConnectionUpgrade,
    /// 426: `Sec-WebSocket-Version` missing or not 13: the answer carries
    /// `Sec-WebSocket-Version: 13`.
    UnsupportedVersion,
    /// 400: no `Sec-WebSocket-Key`.
    MissingKey,
    /// 400: a `Sec-WebSocket-Key` that is not base64 of 16 bytes.
    BadKey,
}

impl UpgradeError {
    /// The response status code.
    pub const fn status(self) -> u16 {
        match self {
            UpgradeError::UpgradeNotWebSocket | UpgradeError::UnsupportedVersion => 426,
            UpgradeError::NotGet
            | UpgradeError::Http10
            | UpgradeError::NoUpgrade
            | UpgradeError::NoConnectionUpgrade
            | UpgradeError::MissingKey
            | UpgradeError::BadKey => 400,
        }
    }

    /// The field a 426 answer must carry (name, value); `None` for a 400.
    pub const fn response_field(self) -> Option<(&'static str, &'static str)> {
        match self {
            UpgradeError::UpgradeNotWebSocket => Some(("Upgrade", "websocket")),
            UpgradeError::UnsupportedVersion => Some(("Sec-WebSocket-Version", VERSION)),
            _ => None,
        }
    }

    /// A short reason, lower case: the error response's body and the close record's cause.
    pub const fn reason(self) -> &'static str {
        match self {
            UpgradeError::NotGet => "websocket upgrade needs GET",
            UpgradeError::Http10 => "websocket upgrade needs HTTP/1.1",
            UpgradeError::NoUpgrade => "missing Upgrade header",
            UpgradeError::UpgradeNotWebSocket => "Upgrade is not websocket",
            UpgradeError::NoConnectionUpgrade => "Connection lacks upgrade",
            UpgradeError::UnsupportedVersion => "unsupported Sec-WebSocket-Version",
            UpgradeError::MissingKey => "missing Sec-WebSocket-Key",
            UpgradeError::BadKey => "malformed Sec-WebSocket-Key",
        }
    }
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

impl std::error::Error for UpgradeError {}

/// Checks a WebSocket upgrade request and returns the `Sec-WebSocket-Accept` value to answer
/// `101 Switching Protocols` with.
///
/// `header` looks a field up by name, case-insensitively, and returns its value (for a field
/// sent more than once, the caller returns the values joined with commas, or the first one).
/// The checks run in this order, the first failure answering: method GET, HTTP/1.1, `Upgrade`
/// holds the `websocket` token, `Connection` holds the `upgrade` token (tokens in comma lists,
/// case-insensitive), `Sec-WebSocket-Version: 13`, then `Sec-WebSocket-Key`.
pub fn check_upgrade<'h, F>(
    method: &str,
    version: Version,
    header: F,
) -> Result<[u8; ACCEPT_LEN], UpgradeError>
where
    F: Fn(&str) -> Option<&'h [u8]>,
{
    if method != "GET" {
        return Err(UpgradeError::NotGet);
    }
    if version != Version::Http11 {
        return Err(UpgradeError::Http10);
    }
    let upgrade = header("upgrade").ok_or(UpgradeError::NoUpgrade)?;
    if !has_token(upgrade, "websocket") {
        return Err(UpgradeError::UpgradeNotWebSocket);
    }
    let connection = header("connection").ok_or(UpgradeError::NoConnectionUpgrade)?;
    if !has_token(connection, "upgrade") {
        return Err(UpgradeError::NoConnectionUpgrade);
    }
    match header("sec-websocket-version") {
        Some(value) if trim(value) == VERSION.as_bytes() => {}
        _ => return Err(UpgradeError::UnsupportedVersion),
    }
    let key = header("sec-websocket-key").ok_or(UpgradeError::MissingKey)?;
    accept_key(trim(key)).ok_or(UpgradeError::BadKey)
}

/// Whether a comma-separated list holds `token` (ASCII case-insensitive, whitespace around
/// elements ignored).
pub fn has_token(list: &[u8], token: &str) -> bool {
    list.split(|&byte| byte == b',')
        .any(|element| trim(element).eq_ignore_ascii_case(token.as_bytes()))
}

/// `bytes` without leading and trailing spaces and tabs (HTTP's optional whitespace).
fn trim(bytes: &[u8]) -> &[u8] {
    let is_ows = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |at| at + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            Some(*b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
    }

    #[test]
    fn tokens_and_trim() {
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(has_token(b" \tWebSocket\t ", "websocket"));
        assert!(!has_token(b"upgrades", "upgrade"));
        assert!(!has_token(b"", "upgrade"));
        assert_eq!(trim(b" \t "), b"");
        assert_eq!(trim(b" a b\t"), b"a b");
    }
}
