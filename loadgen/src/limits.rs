//! Every bound of the load generator, named, with the relations between them checked at compile time.

use std::time::Duration;

/// Worker threads (one io_uring each).
pub const THREADS_MAX: usize = 256;
/// Concurrent connections over all threads.
pub const CONNECTIONS_MAX: usize = 1 << 20;
/// Requests kept in flight per connection.
pub const PIPELINE_MAX: usize = 4096;
/// Distinct payload sizes in `--payload`.
pub const PAYLOAD_SIZES_MAX: usize = 64;
/// ECHO payload bytes without `--payload` (frame protocol).
pub const PAYLOAD_DEFAULT: u16 = 64;
/// Header fields of one HTTP response read at most (the engine sends at most five).
pub const HTTP_RESPONSE_HEADERS_MAX: usize = 16;
/// Bytes of one HTTP response (head and body) held at most while it arrives.
pub const HTTP_RESPONSE_BYTES_MAX: usize = 64 * 1024;
/// SQ entries per worker ring.
pub const RING_SQ_ENTRIES: u32 = 4096;
/// CQ entries per worker ring: generous, overflow only costs a re-arm.
pub const RING_CQ_ENTRIES: u32 = 8 * RING_SQ_ENTRIES;
/// Provided receive buffers per worker and their size.
pub const RECV_BUFFERS: u16 = 2048;
pub const RECV_BUFFER_BYTES: u32 = 16 * 1024;
/// Descriptors kept aside for the ring, the log, stdio and the metrics scrape.
pub const FD_RESERVE: u64 = 64;
/// Longest a worker sleeps in io_uring_enter before it looks at its timers and the stop flag.
pub const WAIT_SLICE: Duration = Duration::from_millis(20);
/// Open loop: the worker wakes at most this often for scheduled sends (they go out in batches;
/// latency still counts from each request's own intended time).
pub const SCHEDULE_TICK: Duration = Duration::from_micros(100);
/// How long a connect (up to the HELLO being sent) may take before it counts as a timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on how long a connection waits for the engine to close it (idle, stall, ...).
pub const END_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// How long the drain at the end of a timed run may take before connections are abandoned.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on waiting for the close log to hold every tag.
pub const VERIFY_WAIT_DEFAULT: Duration = Duration::from_secs(5);
/// Mismatches listed one by one in the report (all are counted).
pub const MISMATCHES_LISTED_MAX: usize = 200;
/// Histogram range in microseconds and precision.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
pub const LATENCY_SIGFIG: u8 = 3;
/// Bytes of the partial frame a `mid-frame` connection sends before its FIN.
pub const MID_FRAME_SENT_BYTES: usize = 7;
/// Payload length its header announces (more than is sent).
pub const MID_FRAME_ANNOUNCED_LEN: u16 = 16;
/// Bytes of header a `stall` connection sends before it waits.
pub const STALL_SENT_BYTES: usize = 2;
/// The frame kind a `bad-frame` connection sends: not a protocol kind.
pub const BAD_FRAME_KIND: u8 = 0x09;
/// Kernel clock ticks per second of /proc/self/stat (USER_HZ: fixed at 100 in the Linux ABI).
pub const USER_HZ: u64 = 100;
/// Every tag is below 2^TAG_BITS, so JSON readers that hold numbers as doubles (jq,
/// JavaScript) read it exactly.
pub const TAG_BITS: u32 = 53;
/// Bits of a tag that number connections within a run; the rest is a per-run nonce.
pub const TAG_INDEX_BITS: u32 = 32;
/// Bits of the per-run nonce, above the index.
pub const TAG_NONCE_BITS: u32 = TAG_BITS - TAG_INDEX_BITS;
/// The largest `--total`: every connection of a run needs its own index.
pub const TOTAL_MAX: u64 = (1 << TAG_INDEX_BITS) - 1;
/// Churn with `--connect-rate` and no `--connections`: connections allowed open at once, at most.
pub const CHURN_OPEN_MAX: u64 = 65_536;
/// Closed loop, open loop and churn without `--connect-rate`: `--connections` when not given.
pub const CONNECTIONS_DEFAULT: u64 = 1;
/// A run that reaches less than its asked rate (request rate in open loop, connect rate in
/// churn) by more than this share, in percent, does not pass.
pub const RATE_TOLERANCE_PERCENT: u32 = 10;
/// After Ctrl-C or SIGTERM, how long connections may take to end before they are abandoned.
pub const INTERRUPT_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

const _: () = assert!(RECV_BUFFERS.is_power_of_two());
const _: () = assert!(MID_FRAME_SENT_BYTES > protocol::HEADER_LEN);
const _: () =
    assert!(MID_FRAME_SENT_BYTES < protocol::HEADER_LEN + MID_FRAME_ANNOUNCED_LEN as usize);
const _: () = assert!(STALL_SENT_BYTES < protocol::HEADER_LEN);
const _: () = assert!(protocol::Kind::from_byte(BAD_FRAME_KIND).is_none());
const _: () = assert!((CONNECTIONS_MAX as u64) < (1 << TAG_INDEX_BITS));
const _: () = assert!(TAG_NONCE_BITS >= 16 && TAG_INDEX_BITS + TAG_NONCE_BITS == TAG_BITS);
const _: () = assert!(CHURN_OPEN_MAX <= CONNECTIONS_MAX as u64);
const _: () = assert!(RATE_TOLERANCE_PERCENT > 0 && RATE_TOLERANCE_PERCENT < 100);
const _: () = assert!(INTERRUPT_DRAIN_TIMEOUT.as_nanos() <= DRAIN_TIMEOUT.as_nanos());
const _: () = assert!(RING_CQ_ENTRIES >= 2 * RING_SQ_ENTRIES);
