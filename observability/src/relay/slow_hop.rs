//! The trace-propagation demo's second run: the same chain with one slow
//! hop, found from the trace by its critical path (Episode 34).

use std::time::Duration;

use opentelemetry::trace::TraceId;

use super::demo::{HOPS, start_relay, stop_and_read_trace};
use super::proto::ForwardRequest;
use super::proto::relay_client::RelayClient;
use crate::critical_path::critical_path;
use crate::demo::{DemoResult, Narrator};
use crate::rpc::{ClientBuilder, Net};
use crate::telemetry::span_tree::duration;
use crate::telemetry::{SpanCapture, service};

/// What the slow hop spends on each request. Loopback hops take well
/// under a millisecond each, so this dwarfs them on any machine.
const SLOW_WORK: Duration = Duration::from_millis(60);
/// The slow hop.
const SLOW_HOP: &str = "hop-2";
/// The service the demo's own call is counted under.
const CLIENT: &str = "client";

fn ms(took: Duration) -> String {
    format!("{:.3} ms", took.as_secs_f64() * 1e3)
}

pub(super) async fn slow_hop_run(out: &mut Narrator, spans: &SpanCapture) -> DemoResult {
    out.section("Episode 34: one slow hop, found from its trace");
    out.say(&format!(
        "The same chain again, but {SLOW_HOP} now spends {} on its own work before forwarding.",
        ms(SLOW_WORK)
    ));
    out.say(
        "Every span on the way waits for it; the critical path tells the waiting from the work.",
    );
    let work = |hop: &str| {
        if hop == SLOW_HOP {
            SLOW_WORK
        } else {
            Duration::ZERO
        }
    };
    let hop3 = start_relay(HOPS[2], None, work(HOPS[2])).await?;
    let hop2 = start_relay(HOPS[1], Some(&hop3), work(HOPS[1])).await?;
    let hop1 = start_relay(HOPS[0], Some(&hop2), work(HOPS[0])).await?;
    spans.clear();
    let mut client = RelayClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(hop1.uri()));
    let call = client.forward(ForwardRequest {
        payload: "slow".into(),
        visited: Vec::new(),
    });
    // The caller is a party of its own on the path, named like the hops.
    let reply = service::scope(Some(CLIENT.into()), call)
        .await?
        .into_inner();
    let (trace_id, traced) = stop_and_read_trace([hop1, hop2, hop3], &reply, spans).await?;
    let trace = TraceId::from_hex(&trace_id).unwrap_or(TraceId::INVALID);
    let Some(path) = critical_path(&traced, trace) else {
        out.check(
            "the slow request left a trace to analyse",
            false,
            format!("no spans of trace {trace_id}"),
        );
        return Ok(());
    };

    out.section("Its critical path: where the request actually waited");
    out.block(&path.render());
    let by_hop = path.by_hop();
    let rows: Vec<Vec<String>> = by_hop
        .iter()
        .map(|(hop, took)| vec![hop.clone(), ms(*took)])
        .collect();
    out.table(&["hop", "time on the critical path"], &rows);

    let root = duration(path.root);
    out.check(
        "the critical path accounts for the whole request, segment by segment",
        path.total() == root && traced.len() == 6,
        format!(
            "{} of {} over {} spans",
            ms(path.total()),
            ms(root),
            traced.len()
        ),
    );
    let expected = format!("relay-{SLOW_HOP}");
    let dominant = path.dominant_hop();
    out.check(
        format!("the hop that dominates latency is {expected}"),
        dominant
            .as_ref()
            .is_some_and(|(hop, took)| *hop == expected && *took >= SLOW_WORK),
        match &dominant {
            Some((hop, took)) => format!("{hop}: {} of {}", ms(*took), ms(root)),
            None => "an empty path".to_owned(),
        },
    );
    Ok(())
}
