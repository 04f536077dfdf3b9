//! `dslab demo trace-propagation`: one request through three relays, and
//! the trace it leaves behind.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use tonic::Code;

use super::Relay;
use super::proto::relay_client::RelayClient;
use super::proto::{FILE_DESCRIPTOR_SET, ForwardReply, ForwardRequest};
use crate::demo::{DemoResult, Narrator};
use crate::rpc::{ClientBuilder, Net, RpcServer, ServerHandle};
use crate::telemetry::SpanCapture;
use crate::telemetry::span_tree::{self, duration};

pub(super) const HOPS: [&str; 3] = ["hop-1", "hop-2", "hop-3"];

/// A relay called `name` on 127.0.0.1, forwarding to `next`, spending
/// `work` on each request.
pub(super) async fn start_relay(
    name: &str,
    next: Option<&ServerHandle>,
    work: Duration,
) -> Result<ServerHandle, crate::Error> {
    let client = ClientBuilder::new(Net::Tcp);
    let relay = Relay::new(name, next.map(|hop| client.connect_lazy(hop.uri()))).with_work(work);
    // Three services in one process: each exports its spans as itself.
    let server = RpcServer::new()
        .service_name(format!("relay-{name}"))
        .add_service(relay.into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await?;
    Ok(server.spawn())
}

/// Stops the three hops, then reads the trace `reply` travelled in: its
/// id (hex) and its six spans. Shutting down drains the servers, so every
/// server span has ended (and been exported) before the trace is read.
pub(super) async fn stop_and_read_trace(
    hops: [ServerHandle; 3],
    reply: &ForwardReply,
    spans: &SpanCapture,
) -> Result<(String, Vec<SpanData>), crate::Error> {
    for hop in hops {
        hop.shutdown().await?;
    }
    let trace_id = reply
        .path
        .first()
        .map(|hop| hop.trace_id.clone())
        .unwrap_or_default();
    let traced = spans_of_trace(spans, &trace_id, 6).await;
    Ok((trace_id, traced))
}

/// The captured spans of trace `trace_id` (hex), once `expected` of them
/// have arrived. A server span ends when its connection task drops the
/// response, which on a loaded machine can trail the shutdown by a
/// moment: wait for them (at most a second), then judge what arrived.
async fn spans_of_trace(spans: &SpanCapture, trace_id: &str, expected: usize) -> Vec<SpanData> {
    let in_trace = || -> Vec<SpanData> {
        spans
            .spans()
            .into_iter()
            .filter(|s| s.span_context.trace_id().to_string() == trace_id)
            .collect()
    };
    let mut traced = in_trace();
    for _ in 0..100 {
        if traced.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        traced = in_trace();
    }
    traced
}

/// Walks a trace that should be one straight line (each span has exactly
/// one child) from its root, returning the spans in call order.
pub(crate) fn call_chain(spans: &[SpanData]) -> Vec<&SpanData> {
    let mut chain: Vec<&SpanData> = spans
        .iter()
        .filter(|s| span_tree::parent_of(spans, s).is_none())
        .collect();
    if chain.len() != 1 {
        return chain;
    }
    loop {
        let last = chain[chain.len() - 1];
        let children: Vec<&SpanData> = spans
            .iter()
            .filter(|s| span_tree::parent_of(spans, s).is_some_and(|p| std::ptr::eq(p, last)))
            .collect();
        match children.as_slice() {
            [only] => chain.push(only),
            _ => return chain,
        }
    }
}

/// Episode 31: three Relays on 127.0.0.1, one request, one trace.
pub async fn trace_propagation(out: &mut Narrator, spans: &SpanCapture) -> DemoResult {
    out.section("Episode 31: one request, three services, one trace");
    out.say("Three Relay services listen on 127.0.0.1: hop-1 forwards to hop-2, hop-2 to hop-3.");
    out.say("Each hop is a plain tonic service; the RPC stack opens a span per call and carries");
    out.say(
        "W3C `traceparent` in the gRPC metadata, so the collector can stitch the hops together.",
    );

    let hop3 = start_relay(HOPS[2], None, Duration::ZERO).await?;
    let hop2 = start_relay(HOPS[1], Some(&hop3), Duration::ZERO).await?;
    let hop1 = start_relay(HOPS[0], Some(&hop2), Duration::ZERO).await?;
    spans.clear();

    let mut client = RelayClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(hop1.uri()));
    let reply = client
        .forward(ForwardRequest {
            payload: "hello".into(),
            visited: Vec::new(),
        })
        .await?
        .into_inner();
    let looped = client
        .forward(ForwardRequest {
            payload: "loop".into(),
            visited: vec!["hop-2".into()],
        })
        .await;
    let red = hop1.metrics().snapshot();
    let (first_trace, traced) = stop_and_read_trace([hop1, hop2, hop3], &reply, spans).await?;

    out.section("The trace, as a collector would draw it");
    out.block(&span_tree::render(&traced));

    let chain = call_chain(&traced);
    let kinds_alternate = chain.len() == 6
        && chain.iter().enumerate().all(|(i, span)| {
            let expected = if i % 2 == 0 {
                SpanKind::Client
            } else {
                SpanKind::Server
            };
            span.span_kind == expected && span.name == "observability.v1.Relay/Forward"
        });
    out.check(
        "all six spans (3 client, 3 server) share one trace id",
        traced.len() == 6 && span_tree::trace_ids(&traced).len() == 1,
        format!("{} spans in trace {first_trace}", traced.len()),
    );
    out.check(
        "each hop's server span is the child of the previous hop's client span",
        kinds_alternate,
        format!(
            "chain: {}",
            chain
                .iter()
                .map(|s| format!("{:?}", s.span_kind).to_lowercase())
                .collect::<Vec<_>>()
                .join(" → ")
        ),
    );
    let path: Vec<&str> = reply.path.iter().map(|hop| hop.name.as_str()).collect();
    out.check(
        "the reply took hop-1 → hop-2 → hop-3, and every hop saw the same trace id",
        path == HOPS && reply.path.iter().all(|hop| hop.trace_id == first_trace),
        format!("path {}", path.join(" → ")),
    );

    out.section("Per-hop latency, from the server spans");
    let servers: Vec<&SpanData> = chain
        .iter()
        .copied()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect();
    let rows: Vec<Vec<String>> = servers
        .iter()
        .zip(HOPS)
        .enumerate()
        .map(|(i, (span, hop))| {
            let total = duration(span);
            let downstream = servers
                .get(i + 1)
                .and_then(|next| span_tree::parent_of(&traced, next))
                .map(duration)
                .unwrap_or_default();
            vec![
                hop.to_owned(),
                format!("{:.3} ms", total.as_secs_f64() * 1e3),
                format!(
                    "{:.3} ms",
                    total.saturating_sub(downstream).as_secs_f64() * 1e3
                ),
            ]
        })
        .collect();
    out.table(&["hop", "server span", "time in the hop itself"], &rows);

    out.section("A request that loops back is refused, not recursed");
    out.say(
        "The request claims to have visited hop-2 already; hop-2 finds its own name and refuses.",
    );
    let refused_code = looped.as_ref().err().map(tonic::Status::code);
    out.check(
        "a looping chain is refused with InvalidArgument",
        refused_code == Some(Code::InvalidArgument),
        match &looped {
            Err(status) => format!("{:?}: {}", status.code(), status.message()),
            Ok(_) => "the call succeeded".to_owned(),
        },
    );

    out.section("RED metrics at hop-1");
    let rows: Vec<Vec<String>> = red
        .iter()
        .map(|m| {
            vec![
                m.method.clone(),
                m.requests.to_string(),
                m.errors.to_string(),
                format!("{:.3} ms", m.p50.as_secs_f64() * 1e3),
                format!("{:.3} ms", m.max.as_secs_f64() * 1e3),
            ]
        })
        .collect();
    out.table(&["method", "requests", "errors", "p50", "max"], &rows);
    super::slow_hop::slow_hop_run(out, spans).await
}
