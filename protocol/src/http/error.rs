//! Why a request is rejected, and the status code the server answers it with.

use std::fmt;

/// Why the bytes at the start of the input are not an acceptable HTTP/1.1 request. Each has one
/// status code; the connection is closed after the error response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// 400: the request line is not `method SP target SP HTTP/1.x`, or a stray CR before it.
    BadRequestLine,
    /// 400: a header line is malformed (bad name, bad value byte, bare CR, obs-fold).
    BadHeader,
    /// 400: an HTTP/1.1 request without Host.
    MissingHost,
    /// 400: more than one Host field.
    MultipleHost,
    /// 400: a Host value that is not `host [":" port]` (RFC 9112 §3.2, RFC 3986 §3.2.2).
    BadHost,
    /// 400: both Content-Length and Transfer-Encoding.
    LengthAndTransferEncoding,
    /// 400: a Content-Length element is not a decimal number.
    BadContentLength,
    /// 400: Content-Length values that differ (`5, 6`, or two fields).
    ConflictingContentLength,
    /// 400: the final transfer coding is not chunked, or chunked is applied twice.
    BadTransferEncoding,
    /// 400: Transfer-Encoding in an HTTP/1.0 request (its framing cannot be trusted).
    TransferEncodingHttp10,
    /// 501: a transfer coding other than chunked (such as `gzip, chunked`).
    UnsupportedTransferCoding,
    /// 400: a chunk size line is not `hex [ws] [;ext] CRLF`.
    BadChunkSize,
    /// 400: chunk data not followed by CRLF.
    BadChunkData,
    /// 400: the trailer section has a bare CR or LF.
    BadTrailer,
    /// 414: the request line (with its CRLF) is longer than the limit.
    RequestLineTooLong,
    /// 431: the head (with its blank line) is larger than the limit.
    HeadTooLarge,
    /// 431: more header fields than the limit.
    TooManyHeaders,
    /// 413: Content-Length, or the chunk sizes so far, above the body limit.
    BodyTooLarge,
    /// 413: more chunked framing bytes (size lines, extensions, trailers) than the limit.
    ChunkOverheadTooLarge,
    /// 505: a version other than HTTP/1.0 or HTTP/1.1 (`HTTP/2.0`, a version-less line).
    VersionNotSupported,
}

impl Error {
    /// The response status code.
    pub const fn status(self) -> u16 {
        match self {
            Error::BadRequestLine
            | Error::BadHeader
            | Error::MissingHost
            | Error::MultipleHost
            | Error::BadHost
            | Error::LengthAndTransferEncoding
            | Error::BadContentLength
            | Error::ConflictingContentLength
            | Error::BadTransferEncoding
            | Error::TransferEncodingHttp10
            | Error::BadChunkSize
            | Error::BadChunkData
            | Error::BadTrailer => 400,
            Error::BodyTooLarge | Error::ChunkOverheadTooLarge => 413,
            Error::RequestLineTooLong => 414,
            Error::HeadTooLarge | Error::TooManyHeaders => 431,
            Error::UnsupportedTransferCoding => 501,
            Error::VersionNotSupported => 505,
        }
    }

    /// A short reason, lower case, without a final period: the error response's body and the
    /// close record's cause.
    pub const fn reason(self) -> &'static str {
        match self {
            Error::BadRequestLine => "malformed request line",
            Error::BadHeader => "malformed header field",
            Error::MissingHost => "missing Host header",
            Error::MultipleHost => "more than one Host header",
            Error::BadHost => "invalid Host header",
            Error::LengthAndTransferEncoding => "both Content-Length and Transfer-Encoding",
            Error::BadContentLength => "invalid Content-Length",
            Error::ConflictingContentLength => "conflicting Content-Length values",
            Error::BadTransferEncoding => "chunked is not the final transfer coding",
            Error::TransferEncodingHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            Error::UnsupportedTransferCoding => "unsupported transfer coding",
            Error::BadChunkSize => "malformed chunk size line",
            Error::BadChunkData => "chunk data not followed by CRLF",
            Error::BadTrailer => "malformed trailer section",
            Error::RequestLineTooLong => "request line too long",
            Error::HeadTooLarge => "request head too large",
            Error::TooManyHeaders => "too many header fields",
            Error::BodyTooLarge => "request body too large",
            Error::ChunkOverheadTooLarge => "too much chunked framing",
            Error::VersionNotSupported => "HTTP version not supported",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_reason_and_status() {
        assert_eq!(Error::MissingHost.to_string(), "missing Host header (400)");
        assert_eq!(
            Error::VersionNotSupported.to_string(),
            "HTTP version not supported (505)"
        );
    }

    #[test]
    fn error_is_small() {
        assert_eq!(std::mem::size_of::<Error>(), 1);
    }
}
