//! `dslab crdt`: updates and reads against one CrdtReplica.

use std::io::Write;

use anyhow::Context as _;
use observability::rpc::{ClientBuilder, Net};
use replication::clock::ReplicaId;
use replication::crdt_replica::{Kind, ReplicaClient, actor_name};
use replication::proto::{self, update_request::Operation};

/// What `dslab crdt` was asked to do.
#[derive(Clone, Debug)]
pub enum CrdtRequest {
    Update {
        kind: Kind,
        name: String,
        operation: Operation,
    },
    /// Writes an MV register after reading it: replaces every sibling read.
    Resolve {
        name: String,
        value: String,
    },
    Read {
        kind: Kind,
        name: String,
    },
    Status,
}

/// `counter`, `pn-counter`, `set`, `register` or `lww`.
pub fn parse_kind(text: &str) -> anyhow::Result<Kind> {
    Ok(match text {
        "counter" | "g-counter" => Kind::GCounter,
        "pn-counter" => Kind::PnCounter,
        "set" | "or-set" => Kind::OrSet,
        "register" | "mv-register" => Kind::MvRegister,
        "lww" | "lww-register" => Kind::LwwRegister,
        other => anyhow::bail!(
            "unknown type {other:?}; choose counter, pn-counter, set, register or lww"
        ),
    })
}

fn print_value(kind: Kind, value: &proto::Value, out: &mut impl Write) -> std::io::Result<()> {
    match kind {
        Kind::GCounter | Kind::PnCounter => writeln!(out, "{}", value.count),
        Kind::OrSet => value
            .elements
            .iter()
            .try_for_each(|element| writeln!(out, "{element}")),
        Kind::MvRegister => value
            .siblings
            .iter()
            .try_for_each(|sibling| writeln!(out, "{sibling}")),
        Kind::LwwRegister => writeln!(out, "{}", value.value),
    }
}

/// Runs `request` against the replica at `endpoint`, printing the value
/// (one line per element or sibling) or the status.
pub async fn run(endpoint: &str, request: CrdtRequest, out: &mut impl Write) -> anyhow::Result<()> {
    let channel = ClientBuilder::new(Net::Tcp).dial(endpoint)?;
    let mut client = ReplicaClient::new(channel);
    let failed = |status: tonic::Status| anyhow::anyhow!("{}: {}", endpoint, status.message());
    match request {
        CrdtRequest::Update {
            kind,
            name,
            operation,
        } => {
            let value = client
                .update(kind, &name, operation)
                .await
                .map_err(failed)?;
            print_value(kind, &value, out)?;
        }
        CrdtRequest::Resolve { name, value } => {
            let read = client.read(Kind::MvRegister, &name).await.map_err(failed)?;
            let value = client
                .write(&name, &value, Some(&read))
                .await
                .map_err(failed)?;
            print_value(Kind::MvRegister, &value, out)?;
        }
        CrdtRequest::Read { kind, name } => {
            let value = client.read(kind, &name).await.map_err(failed)?;
            print_value(kind, &value, out)?;
        }
        CrdtRequest::Status => {
            let status = client.status().await.map_err(failed)?;
            let seen = status
                .seen
                .unwrap_or_default()
                .compact
                .iter()
                .map(|entry| format!("{}:{}", actor_name(ReplicaId(entry.replica)), entry.count))
                .collect::<Vec<_>>()
                .join(" ");
            writeln!(
                out,
                "replica r{} (its updates as {}): {} objects, {} bytes of state",
                status.id,
                actor_name(ReplicaId(status.actor)),
                status.objects,
                status.state_bytes
            )
            .context("writing")?;
            writeln!(out, "seen: {seen}")?;
            writeln!(
                out,
                "gossip: {} rounds, {} delta messages ({} bytes), {} full-state messages ({} bytes), {} failed",
                status.gossip_rounds,
                status.delta_messages,
                status.delta_bytes,
                status.full_state_messages,
                status.full_state_bytes,
                status.failed_messages
            )?;
        }
    }
    Ok(())
}
