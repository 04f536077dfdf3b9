//! A hostile client for any dslab gRPC service.
//!
//! Episode: 34, "Debugging Distributed Systems" (also 12, chaos engineering)
//! Pattern: testing / protocol fuzzing
//! Try it:  cargo test -p observability fuzz_relay
//! Test it: cargo test fuzz_
//!
//! A service on a network answers whoever connects. [`fuzz_service`]
//! plays the worst of them against every method a descriptor set lists,
//! over real loopback gRPC:
//!
//! - bytes that are not protobuf (unterminated varints, lengths past the
//!   end, deprecated groups, noise);
//! - the empty message;
//! - a message one byte over the server's size limit;
//! - random *valid* messages with extreme field values ([`messages`]);
//! - method names the service does not have, and services that do not
//!   exist.
//!
//! Every call must end with a precise status: never a panic, a reset
//! stream or a dropped connection (which arrive as `Unknown`, `Internal`
//! or a transport error), never `DataLoss`, and never a status message
//! longer than the stack sends. Afterwards the server must still answer
//! its health check. The caller then checks its own normal traffic.
//!
//! Bounded: at most `random_messages` random calls per method, each with a
//! deadline, and streams read for at most `stream_wait`.

pub mod messages;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::Uri;
use http::uri::PathAndQuery;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use prost::Message as _;
use prost_reflect::{DescriptorPool, MethodDescriptor};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::rpc::limits::MAX_STATUS_MESSAGE_BYTES;
use crate::rpc::message_limit::DEFAULT_MAX_MESSAGE_BYTES;

/// How hard to push.
#[derive(Clone, Debug)]
pub struct FuzzOptions {
    /// Random valid messages per method.
    pub random_messages: usize,
    /// Seeds the random messages, so a failure replays.
    pub seed: u64,
    /// The server's request size limit.
    pub max_message_bytes: usize,
    /// How long to read a response stream that does not end by itself.
    pub stream_wait: Duration,
    /// The deadline of every call.
    pub call_timeout: Duration,
}

impl Default for FuzzOptions {
    fn default() -> Self {
        Self {
            random_messages: 48,
            seed: 1,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            stream_wait: Duration::from_millis(100),
            call_timeout: Duration::from_secs(10),
        }
    }
}

/// What the server answered, by code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuzzReport {
    pub calls: usize,
    pub by_code: BTreeMap<String, usize>,
}

/// Sends every kind of hostile request to every method of `service` (as
/// `descriptor_set` describes it) on the server at `uri`. `Err` describes
/// the first call that did not end with a precise status.
pub async fn fuzz_service(
    uri: Uri,
    descriptor_set: &[u8],
    service: &str,
    options: &FuzzOptions,
) -> Result<FuzzReport, String> {
    let pool = DescriptorPool::decode(descriptor_set).map_err(|err| err.to_string())?;
    let service_descriptor = pool
        .get_service_by_name(service)
        .ok_or_else(|| format!("{service} is not in the descriptor set"))?;
    let channel = Endpoint::from(uri.clone())
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let mut fuzz = Fuzz {
        channel,
        options: options.clone(),
        report: FuzzReport::default(),
    };
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(options.seed)),
    );
    for method in service_descriptor.methods() {
        let path = format!("/{service}/{}", method.name());
        for malformed in malformed_messages() {
            fuzz.expect_precise(&method, &path, malformed, "malformed bytes")
                .await?;
        }
        fuzz.expect_precise(&method, &path, Bytes::new(), "the empty message")
            .await?;
        let oversized = Bytes::from(vec![0u8; options.max_message_bytes + 1]);
        let code = fuzz
            .expect_precise(&method, &path, oversized, "an oversized message")
            .await?;
        if code != Code::ResourceExhausted {
            return Err(format!(
                "{path}: an oversized message got {code:?}, not ResourceExhausted"
            ));
        }
        let strategy = messages::message(method.input());
        for _ in 0..options.random_messages {
            let tree = strategy
                .new_tree(&mut runner)
                .map_err(|err| format!("generating a message for {path}: {err}"))?;
            let message = tree.current();
            let bytes = Bytes::from(message.encode_to_vec());
            fuzz.expect_precise(&method, &path, bytes, "a random message")
                .await
                .map_err(|err| format!("{err}\n  message: {message:?}"))?;
        }
    }
    // Names nobody hosts, each answered without growing anything.
    for path in [
        format!("/{service}/NoSuchMethod"),
        format!("/{service}/{}", "x".repeat(2000)),
        "/no.such.v1.Service/Call".to_owned(),
    ] {
        let code = fuzz.raw_unary(&path, Bytes::new()).await?;
        if code != Code::Unimplemented {
            return Err(format!("{path}: expected Unimplemented, got {code:?}"));
        }
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(fuzz.channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|status| format!("health check after fuzzing: {status:?}"))?
        .into_inner()
        .status;
    if serving != tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
        return Err(format!("health after fuzzing: status {serving}"));
    }
    Ok(fuzz.report)
}

/// Protobuf that no message type parses.
fn malformed_messages() -> Vec<Bytes> {
    vec![
        // A varint that never ends.
        Bytes::from_static(&[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ]),
        // A length-delimited field 1 claiming 2 GiB.
        Bytes::from_static(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x07, 0x01]),
        // A tag and no value.
        Bytes::from_static(&[0x08]),
        // Field number 0, which no message has.
        Bytes::from_static(&[0x00, 0x01]),
        // A deprecated start-group that never ends.
        Bytes::from_static(&[0x0b, 0x10, 0x01]),
        // Noise.
        Bytes::from_static(b"\xde\xad\xbe\xef not protobuf \xff\xfe"),
    ]
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&seed.wrapping_add(i as u64).to_le_bytes());
    }
    bytes
}

struct Fuzz {
    channel: Channel,
    options: FuzzOptions,
    report: FuzzReport,
}

impl Fuzz {
    /// Sends `body` as the one request message of `method` and checks the
    /// answer is a precise status; returns its code.
    async fn expect_precise(
        &mut self,
        method: &MethodDescriptor,
        path: &str,
        body: Bytes,
        what: &str,
    ) -> Result<Code, String> {
        let outcome = self.call(method, path, body).await;
        let code = outcome.map_err(|status| {
            format!(
                "{path} ({what}): {:?}: {} — a transport failure, not a status",
                status.code(),
                status.message()
            )
        })?;
        self.report.calls += 1;
        *self.report.by_code.entry(format!("{code:?}")).or_default() += 1;
        Ok(code)
    }

    /// The final code of one call; `Err` for answers that are not a
    /// precise status.
    async fn call(
        &mut self,
        method: &MethodDescriptor,
        path: &str,
        body: Bytes,
    ) -> Result<Code, Status> {
        let path_and_query = PathAndQuery::try_from(path)
            .map_err(|err| Status::invalid_argument(err.to_string()))?;
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let mut request = tonic::Request::new(futures_util::stream::iter([body]));
        request.set_timeout(self.options.call_timeout);
        let answered = tokio::time::timeout(self.options.call_timeout * 2, async {
            // A channel that cannot get ready is a broken connection: the
            // status keeps its source, so `precise` counts it as one.
            grpc.ready()
                .await
                .map_err(|err| Status::from_error(err.into()))?;
            let mut stream = grpc
                .streaming(request, path_and_query, RawCodec)
                .await?
                .into_inner();
            // A unary answer ends after one message; a stream may not end
            // at all (a watch), so it is read for a bounded time.
            let reading = async {
                while stream.message().await?.is_some() {}
                Ok::<_, Status>(())
            };
            if method.is_server_streaming() {
                match tokio::time::timeout(self.options.stream_wait, reading).await {
                    Ok(ended) => ended,
                    Err(_still_open) => Ok(()),
                }
            } else {
                reading.await
            }
        })
        .await;
        let status = match answered {
            Ok(Ok(())) => return Ok(Code::Ok),
            Ok(Err(status)) => status,
            Err(_) => return Err(Status::deadline_exceeded("no answer at all")),
        };
        precise(status)
    }

    /// A unary call with raw bytes, for paths nobody hosts.
    async fn raw_unary(&mut self, path: &str, body: Bytes) -> Result<Code, String> {
        let path_and_query =
            PathAndQuery::try_from(path).map_err(|err| format!("{path}: {err}"))?;
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.map_err(|err| err.to_string())?;
        let mut request = tonic::Request::new(body);
        request.set_timeout(self.options.call_timeout);
        let code = match grpc.unary(request, path_and_query, RawCodec).await {
            Ok(_) => Code::Ok,
            Err(status) => precise(status).map_err(|status| format!("{path}: {status:?}"))?,
        };
        self.report.calls += 1;
        Ok(code)
    }
}

/// `Ok(code)` for a status a server sent on purpose; `Err` for what a
/// crash, reset or broken connection looks like.
fn precise(status: Status) -> Result<Code, Status> {
    let transport = std::error::Error::source(&status).is_some();
    let crash = matches!(
        status.code(),
        Code::Unknown | Code::Internal | Code::DataLoss
    );
    let long = status.message().len() > MAX_STATUS_MESSAGE_BYTES + 64;
    if transport || crash || long {
        Err(status)
    } else {
        Ok(status.code())
    }
}

/// Sends and receives message bytes exactly as given.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
