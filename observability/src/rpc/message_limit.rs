//! A request-size limit that answers `ResourceExhausted`, as gRPC specifies.
//! (The body it wraps also marks each frame on the call's idle clock, for
//! [`super::stream_guard`].)
//!
//! gRPC frames every message as a 5-byte prefix (a compression flag and a
//! big-endian `u32` length) followed by the bytes. [`LimitedBody`] reads the
//! prefixes as the request body streams past and fails the stream the
//! moment one announces a message over the limit — before the message is
//! buffered, so an oversized request costs almost nothing to refuse.
//!
//! Why not tonic's own limit: it answers `OutOfRange`, while the gRPC spec
//! says a message larger than the receiver accepts is `RESOURCE_EXHAUSTED`.
//! Keep this limit at or below tonic's decode limit (4 MiB by default) so
//! this check is the one that fires.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Status;

use super::stream_guard::Activity;

/// Default largest request message a server accepts.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

const PREFIX_BYTES: usize = 5;

/// Where the scanner is within the stream of length-prefixed messages.
#[derive(Clone, Copy, Debug)]
enum Scan {
    /// Collecting the 5-byte prefix; `filled` bytes of it seen so far.
    Prefix {
        filled: usize,
        prefix: [u8; PREFIX_BYTES],
    },
    /// Skipping over a message body; this many bytes remain.
    Message { remaining: u64 },
}

pin_project! {
    /// A request body that fails with `ResourceExhausted` as soon as a gRPC
    /// message prefix announces more than `max_message_bytes`, and that
    /// tells a stream's idle limit whenever a frame arrives.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        max_message_bytes: usize,
        scan: Scan,
        refused: bool,
        activity: Option<Arc<Activity>>,
    }
}

impl<B> LimitedBody<B> {
    pub fn new(inner: B, max_message_bytes: usize) -> Self {
        Self {
            inner,
            max_message_bytes,
            scan: Scan::Prefix {
                filled: 0,
                prefix: [0; PREFIX_BYTES],
            },
            refused: false,
            activity: None,
        }
    }

    /// Marks `activity` on every frame (streams only).
    pub fn with_activity(mut self, activity: Option<Arc<Activity>>) -> Self {
        self.activity = activity;
        self
    }
}

/// Advances the scan over `chunk`, returning the announced length of the
/// first message that exceeds `max`.
fn scan_chunk(scan: &mut Scan, mut chunk: &[u8], max: usize) -> Option<u64> {
    while !chunk.is_empty() {
        match scan {
            Scan::Prefix { filled, prefix } => {
                let take = (PREFIX_BYTES - *filled).min(chunk.len());
                prefix[*filled..*filled + take].copy_from_slice(&chunk[..take]);
                *filled += take;
                chunk = &chunk[take..];
                if *filled == PREFIX_BYTES {
                    let len = u64::from(u32::from_be_bytes([
                        prefix[1], prefix[2], prefix[3], prefix[4],
                    ]));
                    if len > max as u64 {
                        return Some(len);
                    }
                    *scan = Scan::Message { remaining: len };
                }
            }
            Scan::Message { remaining } => {
                let take = (*remaining).min(chunk.len() as u64);
                *remaining -= take;
                chunk = &chunk[take as usize..];
            }
        }
        if let Scan::Message { remaining: 0 } = scan {
            *scan = Scan::Prefix {
                filled: 0,
                prefix: [0; PREFIX_BYTES],
            };
        }
    }
    None
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = bytes::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.refused {
            return Poll::Ready(None);
        }
        let frame = match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(activity) = this.activity.as_ref() {
                    activity.touch();
                }
                frame
            }
            Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
            None => return Poll::Ready(None),
        };
        if let Some(len) = frame
            .data_ref()
            .and_then(|data| scan_chunk(this.scan, data.chunk(), *this.max_message_bytes))
        {
            *this.refused = true;
            // tonic finds a `Status` in the error chain and answers with
            // its code, so the client sees exactly this.
            let status = Status::resource_exhausted(format!(
                "request message of {len} bytes exceeds the limit of {} bytes",
                this.max_message_bytes
            ));
            return Poll::Ready(Some(Err(Box::new(status))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.refused || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(len: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend(std::iter::repeat_n(7, len as usize));
        bytes
    }

    #[test]
    fn message_limit_finds_oversized_prefix_split_across_chunks() {
        let mut stream = framed(10);
        stream.extend(framed(300));
        for split in 1..stream.len() {
            let mut scan = Scan::Prefix {
                filled: 0,
                prefix: [0; 5],
            };
            let first = scan_chunk(&mut scan, &stream[..split], 100);
            let second = scan_chunk(&mut scan, &stream[split..], 100);
            assert_eq!(first.or(second), Some(300), "split at {split}");
        }
    }

    #[test]
    fn message_limit_accepts_messages_at_the_limit() {
        let mut stream = framed(100);
        stream.extend(framed(0));
        stream.extend(framed(100));
        let mut scan = Scan::Prefix {
            filled: 0,
            prefix: [0; 5],
        };
        for byte in stream.chunks(3) {
            assert_eq!(scan_chunk(&mut scan, byte, 100), None);
        }
    }
}
