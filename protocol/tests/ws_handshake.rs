//! The WebSocket opening handshake: `Sec-WebSocket-Accept` and every refusal with its status.

use protocol::http::Version;
use protocol::ws::{accept_key, check_upgrade, UpgradeError};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &[u8; 28] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A request's fields, looked up case-insensitively as the engine's header map does.
fn check(
    method: &str,
    version: Version,
    fields: &[(&str, &str)],
) -> Result<[u8; 28], UpgradeError> {
    check_upgrade(method, version, |name| {
        fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_bytes())
    })
}

fn good() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Host", "example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
    ]
}

fn with(name: &'static str, value: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut fields: Vec<_> = good().into_iter().filter(|(n, _)| *n != name).collect();
    if let Some(value) = value {
        fields.push((name, value));
    }
    fields
}

#[test]
fn rfc_6455_example() {
    assert_eq!(accept_key(KEY.as_bytes()), Some(*ACCEPT));
    assert_eq!(check("GET", Version::Http11, &good()), Ok(*ACCEPT));
}

#[test]
fn accepted_variants() {
    let variants = [
        with("Upgrade", Some("WebSocket")),
        with("Upgrade", Some("h2c, websocket")),
        with("Connection", Some("keep-alive, upgrade")),
        with("Connection", Some(" UPGRADE ")),
        with("Sec-WebSocket-Key", Some(" dGhlIHNhbXBsZSBub25jZQ==\t")),
        with("Sec-WebSocket-Version", Some(" 13 ")),
    ];
    for fields in variants {
        assert_eq!(
            check("GET", Version::Http11, &fields),
            Ok(*ACCEPT),
            "{fields:?}"
        );
    }
    let names: Vec<String> = good()
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    let lower: Vec<(&str, &str)> = names
        .iter()
        .zip(good())
        .map(|(name, (_, value))| (name.as_str(), value))
        .collect();
    assert_eq!(check("GET", Version::Http11, &lower), Ok(*ACCEPT));
}

/// Method, version, fields, the refusal and its status.
type Row = (&'static str, Version, Fields, UpgradeError, u16);
type Fields = Vec<(&'static str, &'static str)>;

#[test]
fn refusals_and_statuses() {
    let rows: Vec<Row> = vec![
        ("POST", Version::Http11, good(), UpgradeError::NotGet, 400),
        ("get", Version::Http11, good(), UpgradeError::NotGet, 400),
        ("GET", Version::Http10, good(), UpgradeError::Http10, 400),
        (
            "GET",
            Version::Http11,
            with("Upgrade", None),
            UpgradeError::NoUpgrade,
            400,
        ),
        (
            "GET",
            Version::Http11,
            with("Upgrade", Some("h2c")),
            UpgradeError::UpgradeNotWebSocket,
            426,
        ),
        (
            "GET",
            Version::Http11,
            with("Upgrade", Some("websocket/13")),
            UpgradeError::UpgradeNotWebSocket,
            426,
        ),
        (
            "GET",
            Version::Http11,
            with("Connection", None),
            UpgradeError::NoConnectionUpgrade,
            400,
        ),
        (
            "GET",
            Version::Http11,
            with("Connection", Some("keep-alive")),
            UpgradeError::NoConnectionUpgrade,
            400,
        ),
        (
            "GET",
            Version::Http11,
            with("Sec-WebSocket-Version", None),
            UpgradeError::UnsupportedVersion,
            426,
        ),
        (
            "GET",
            Version::Http11,
            with("Sec-WebSocket-Version", Some("8")),
            UpgradeError::UnsupportedVersion,
            426,
        ),
        (
            "GET",
            Version::Http11,
            with("Sec-WebSocket-Version", Some("13, 8")),
            UpgradeError::UnsupportedVersion,
            426,
        ),
        (
            "GET",
            Version::Http11,
            with("Sec-WebSocket-Key", None),
            UpgradeError::MissingKey,
            400,
        ),
        (
            "GET",
            Version::Http11,
            with("Sec-WebSocket-Key", Some("")),
            UpgradeError::BadKey,
            400,
        ),
        (
            "GET",
            Version::Http11,
            with("Sec-WebSocket-Key", Some("dGhlIHNhbXBsZSBub25jZQ")),
            UpgradeError::BadKey,
            400,
        ),
    ];
    for (method, version, fields, error, status) in rows {
        assert_eq!(
            check(method, version, &fields),
            Err(error),
            "{method} {fields:?}"
        );
        assert_eq!(error.status(), status, "{error:?}");
        assert_eq!(error.response_field().is_some(), status == 426, "{error:?}");
    }
    assert_eq!(
        UpgradeError::UnsupportedVersion.response_field(),
        Some(("Sec-WebSocket-Version", "13"))
    );
    assert_eq!(
        UpgradeError::UnsupportedVersion.to_string(),
        "unsupported Sec-WebSocket-Version (426)"
    );
}

#[test]
fn keys_that_are_not_16_bytes_of_base64() {
    let bad: &[&[u8]] = &[
        b"",
        b"dGhlIHNhbXBsZSBub25jZQ",    // no padding
        b"dGhlIHNhbXBsZSBub25jZQ=",   // 23 characters
        b"dGhlIHNhbXBsZSBub25jZQ===", // 25 characters
        b"dGhlIHNhbXBsZSBub25jZR==",  // stray bits in the last character
        b"dGhlIHNhbXBsZSBub25jZ!==",  // not base64
        b"dGhlIHNhbXBsZSBub25jZXMh",  // 18 bytes in 24 characters
        b"dGhlIHNhbXBsZSBub25j\0Q==",
        b" dGhlIHNhbXBsZSBub25jZQ==", // accept_key does not trim
    ];
    for key in bad {
        assert_eq!(accept_key(key), None, "{:?}", String::from_utf8_lossy(key));
    }
    // Any 16 bytes, any alphabet characters.
    assert!(accept_key(b"AAAAAAAAAAAAAAAAAAAAAA==").is_some());
    assert!(accept_key(b"/+/+/+/+/+/+/+/+/+/+/w==").is_some());
}
