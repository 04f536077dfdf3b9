//! `dslab kv`: a small etcd v3 client for any dslab Raft KV node (or a
//! real etcd): put, get, del, txn, members, status.
//!
//! Output follows `etcdctl`'s simple format, so a lecture can swap one for
//! the other: `put` prints `OK`, `get` prints key and value lines, `del`
//! the number deleted, `txn` `SUCCESS` or `FAILURE` and then each response.
//! `txn` reads etcdctl's `txn` syntax from stdin.
//!
//! Given several endpoints, a read moves on to the next while one answers
//! Unavailable; a write goes to the first that accepts a connection and
//! stops there, as etcd's client does: a write that failed after reaching
//! a member may still apply, and sending it again could apply it twice.
//! `--endpoints` and `--command-timeout` also come from etcdctl's
//! variables, `ETCDCTL_ENDPOINTS` and `ETCDCTL_COMMAND_TIMEOUT`.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context as _, bail};
use consensus::proto::etcdserverpb::cluster_client::ClusterClient;
use consensus::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use consensus::proto::etcdserverpb::kv_client::KvClient;
use consensus::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use consensus::proto::etcdserverpb::request_op::Request as Op;
use consensus::proto::etcdserverpb::response_op::Response as OpResponse;
use consensus::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, MemberAddRequest, MemberListRequest, MemberPromoteRequest,
    MemberRemoveRequest, PutRequest, RangeRequest, RequestOp, ResponseOp, StatusRequest,
    TxnRequest,
};
use observability::rpc::{ClientBuilder, Net, RpcChannel, peer_uri};

/// The most bytes `txn` reads from stdin.
const MAX_TXN_INPUT: u64 = 4 * 1024 * 1024;

/// Where to send requests: the first endpoint that answers.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub addresses: Vec<String>,
    pub timeout: Duration,
}

impl Endpoints {
    fn channel(&self, address: &str) -> anyhow::Result<RpcChannel> {
        Ok(ClientBuilder::new(Net::Tcp)
            .default_deadline(self.timeout)
            .dial(address)?)
    }

    /// A read: tried on each endpoint in turn until one answers with
    /// anything but Unavailable.
    async fn read<T, F>(&self, call: impl FnMut(RpcChannel) -> F) -> anyhow::Result<T>
    where
        F: Future<Output = Result<T, tonic::Status>>,
    {
        self.send(call, true).await
    }

    /// A write or a membership change: sent to the first endpoint that
    /// accepts a connection, and only there. A write that failed after
    /// reaching a member (a timeout, a lost leader) may still be applied;
    /// sending it again elsewhere could apply it twice.
    async fn write<T, F>(&self, call: impl FnMut(RpcChannel) -> F) -> anyhow::Result<T>
    where
        F: Future<Output = Result<T, tonic::Status>>,
    {
        self.send(call, false).await
    }

    async fn send<T, F>(
        &self,
        mut call: impl FnMut(RpcChannel) -> F,
        repeatable: bool,
    ) -> anyhow::Result<T>
    where
        F: Future<Output = Result<T, tonic::Status>>,
    {
        let mut last = None;
        for address in &self.addresses {
            if !repeatable && let Err(err) = self.reachable(address).await {
                last = Some(format!("{address}: {err}"));
                continue;
            }
            match call(self.channel(address)?).await {
                Ok(value) => return Ok(value),
                Err(status) if repeatable && status.code() == tonic::Code::Unavailable => {
                    last = Some(format!("{address}: {}", status.message()));
                }
                Err(status) => bail!("{}", status.message()),
            }
        }
        bail!(
            "no endpoint answered ({})",
            last.unwrap_or_else(|| "no endpoints given".into())
        )
    }

    /// Whether `address` accepts a TCP connection within the timeout.
    async fn reachable(&self, address: &str) -> anyhow::Result<()> {
        let uri = peer_uri(address)?;
        let authority = uri
            .authority()
            .context("an endpoint without host:port")?
            .as_str();
        tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(authority))
            .await
            .context("timed out connecting")??;
        Ok(())
    }
}

/// The key a request starts at: etcdctl sends an empty prefix as "\0"
/// (every key), since an empty key is refused.
fn start_key(key: &str, prefix: bool) -> Vec<u8> {
    if prefix && key.is_empty() {
        vec![0]
    } else {
        key.as_bytes().to_vec()
    }
}

/// A key range as etcdctl takes it: one key, a prefix, or `key..end`.
fn range_end(key: &[u8], prefix: bool, end: Option<&str>) -> Vec<u8> {
    if let Some(end) = end {
        return end.as_bytes().to_vec();
    }
    if !prefix {
        return Vec::new();
    }
    // The smallest key greater than every key with this prefix; an empty
    // or all-0xff prefix means "every key" ("\0").
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub async fn put(
    endpoints: &Endpoints,
    key: &str,
    value: &str,
    prev_kv: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let request = PutRequest {
        key: key.into(),
        value: value.into(),
        prev_kv,
        ..PutRequest::default()
    };
    let response = endpoints
        .write(|channel| {
            let request = request.clone();
            async move { KvClient::new(channel).put(request).await }
        })
        .await?
        .into_inner();
    writeln!(out, "OK")?;
    if let Some(prev) = response.prev_kv {
        writeln!(out, "{}\n{}", text(&prev.key), text(&prev.value))?;
    }
    Ok(())
}

/// `get`'s options.
#[derive(Clone, Debug, Default)]
pub struct GetOptions {
    pub prefix: bool,
    pub range_end: Option<String>,
    pub revision: i64,
    pub limit: i64,
    pub keys_only: bool,
    pub count_only: bool,
    /// Serve from the contacted node's state without asking the leader.
    pub serializable: bool,
}

pub async fn get(
    endpoints: &Endpoints,
    key: &str,
    options: &GetOptions,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let request = RangeRequest {
        key: start_key(key, options.prefix),
        range_end: range_end(key.as_bytes(), options.prefix, options.range_end.as_deref()),
        revision: options.revision,
        limit: options.limit,
        keys_only: options.keys_only,
        count_only: options.count_only,
        serializable: options.serializable,
        ..RangeRequest::default()
    };
    let response = endpoints
        .read(|channel| {
            let request = request.clone();
            async move { KvClient::new(channel).range(request).await }
        })
        .await?
        .into_inner();
    if options.count_only {
        writeln!(out, "{}", response.count)?;
        return Ok(());
    }
    for kv in response.kvs {
        writeln!(out, "{}", text(&kv.key))?;
        if !options.keys_only {
            writeln!(out, "{}", text(&kv.value))?;
        }
    }
    Ok(())
}

pub async fn del(
    endpoints: &Endpoints,
    key: &str,
    prefix: bool,
    prev_kv: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let request = DeleteRangeRequest {
        key: start_key(key, prefix),
        range_end: range_end(key.as_bytes(), prefix, None),
        prev_kv,
    };
    let response = endpoints
        .write(|channel| {
            let request = request.clone();
            async move { KvClient::new(channel).delete_range(request).await }
        })
        .await?
        .into_inner();
    writeln!(out, "{}", response.deleted)?;
    for kv in response.prev_kvs {
        writeln!(out, "{}\n{}", text(&kv.key), text(&kv.value))?;
    }
    Ok(())
}

/// Splits a line into words, honouring double quotes (`"a b"` is one
/// word) as etcdctl does.
fn words(line: &str) -> anyhow::Result<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => word.extend(chars.next()),
                    Some(c) => word.push(c),
                    None => bail!("unterminated quote in {line:?}"),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
    Ok(words)
}

/// `value("k") = "v"`, `version("k") > "1"`, `create("k") < "5"`,
/// `mod("k") != "3"` (etcdctl's compare syntax; quotes optional).
fn compare(line: &str) -> anyhow::Result<Compare> {
    let (target, rest) = line
        .split_once('(')
        .with_context(|| format!("{line:?}: a compare looks like value(\"key\") = \"v\""))?;
    let (key, rest) = rest
        .split_once(')')
        .with_context(|| format!("{line:?}: missing ')'"))?;
    let key = key.trim().trim_matches('"');
    let parts = words(rest)?;
    let [operator, operand] = parts.as_slice() else {
        bail!("{line:?}: a compare needs an operator and a value");
    };
    let result = match operator.as_str() {
        "=" | "==" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        other => bail!("{line:?}: unknown operator {other:?}"),
    };
    let number = || {
        operand
            .parse::<i64>()
            .with_context(|| format!("{line:?}: {operand:?} is not a number"))
    };
    let (target, union) = match target.trim() {
        "value" | "val" => (
            CompareTarget::Value,
            TargetUnion::Value(operand.clone().into_bytes()),
        ),
        "version" | "ver" => (CompareTarget::Version, TargetUnion::Version(number()?)),
        "create" | "c" => (
            CompareTarget::Create,
            TargetUnion::CreateRevision(number()?),
        ),
        "mod" | "m" => (CompareTarget::Mod, TargetUnion::ModRevision(number()?)),
        other => bail!("{line:?}: unknown compare target {other:?}"),
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key: key.as_bytes().to_vec(),
        range_end: Vec::new(),
        target_union: Some(union),
    })
}

/// `put k v`, `get k [end]`, `del k [end]` (etcdctl's txn operations).
fn operation(line: &str) -> anyhow::Result<RequestOp> {
    let parts = words(line)?;
    let request = match parts
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["put", key, value] => Op::RequestPut(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..PutRequest::default()
        }),
        ["get", key, rest @ ..] if rest.len() <= 1 => Op::RequestRange(RangeRequest {
            key: key.as_bytes().to_vec(),
            range_end: rest
                .first()
                .map(|e| e.as_bytes().to_vec())
                .unwrap_or_default(),
            ..RangeRequest::default()
        }),
        ["del", key, rest @ ..] if rest.len() <= 1 => Op::RequestDeleteRange(DeleteRangeRequest {
            key: key.as_bytes().to_vec(),
            range_end: rest
                .first()
                .map(|e| e.as_bytes().to_vec())
                .unwrap_or_default(),
            ..DeleteRangeRequest::default()
        }),
        _ => bail!("{line:?}: an operation is put KEY VALUE, get KEY [END] or del KEY [END]"),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// Parses etcdctl's txn input: compares, a blank line, success
/// operations, a blank line, failure operations.
pub fn parse_txn(input: impl BufRead) -> anyhow::Result<TxnRequest> {
    let mut sections: [Vec<String>; 3] = Default::default();
    let mut section = 0;
    for line in input.take(MAX_TXN_INPUT).lines() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            section += 1;
            anyhow::ensure!(section < 3, "txn input has more than three sections");
            continue;
        }
        sections[section].push(line.to_owned());
    }
    let [compares, success, failure] = sections;
    Ok(TxnRequest {
        compare: compares
            .iter()
            .map(|l| compare(l))
            .collect::<anyhow::Result<_>>()?,
        success: success
            .iter()
            .map(|l| operation(l))
            .collect::<anyhow::Result<_>>()?,
        failure: failure
            .iter()
            .map(|l| operation(l))
            .collect::<anyhow::Result<_>>()?,
    })
}

pub async fn txn(
    endpoints: &Endpoints,
    request: TxnRequest,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let response = endpoints
        .write(|channel| {
            let request = request.clone();
            async move { KvClient::new(channel).txn(request).await }
        })
        .await?
        .into_inner();
    writeln!(
        out,
        "{}",
        if response.succeeded {
            "SUCCESS"
        } else {
            "FAILURE"
        }
    )?;
    for ResponseOp { response } in response.responses {
        writeln!(out)?;
        match response {
            Some(OpResponse::ResponsePut(_)) => writeln!(out, "OK")?,
            Some(OpResponse::ResponseRange(range)) => {
                for kv in range.kvs {
                    writeln!(out, "{}\n{}", text(&kv.key), text(&kv.value))?;
                }
            }
            Some(OpResponse::ResponseDeleteRange(delete)) => writeln!(out, "{}", delete.deleted)?,
            Some(OpResponse::ResponseTxn(_)) | None => {}
        }
    }
    Ok(())
}

/// What `members` changes, if anything.
#[derive(Clone, Debug, Default)]
pub struct MemberChange {
    pub add: Option<String>,
    pub learner: bool,
    pub remove: Option<u64>,
    pub promote: Option<u64>,
}

pub async fn members(
    endpoints: &Endpoints,
    change: &MemberChange,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if let Some(url) = &change.add {
        let request = MemberAddRequest {
            peer_ur_ls: vec![url.clone()],
            is_learner: change.learner,
        };
        let added = endpoints
            .write(|channel| {
                let request = request.clone();
                async move { ClusterClient::new(channel).member_add(request).await }
            })
            .await?
            .into_inner();
        let id = added.member.map_or(0, |m| m.id);
        writeln!(
            out,
            "Member {id} added{}; start it with --id {id} --join",
            if change.learner { " as a learner" } else { "" }
        )?;
    }
    if let Some(id) = change.remove {
        endpoints
            .write(|channel| async move {
                ClusterClient::new(channel)
                    .member_remove(MemberRemoveRequest { id })
                    .await
            })
            .await?;
        writeln!(out, "Member {id} removed")?;
    }
    if let Some(id) = change.promote {
        endpoints
            .write(|channel| async move {
                ClusterClient::new(channel)
                    .member_promote(MemberPromoteRequest { id })
                    .await
            })
            .await?;
        writeln!(out, "Member {id} promoted")?;
    }
    let list = endpoints
        .read(|channel| async move {
            ClusterClient::new(channel)
                .member_list(MemberListRequest::default())
                .await
        })
        .await?
        .into_inner();
    writeln!(
        out,
        "{:<6} {:<10} {:<12} {:<28} client URLs",
        "id", "status", "name", "peer URLs"
    )?;
    for member in list.members {
        let status = if member.name.is_empty() {
            "unstarted"
        } else if member.is_learner {
            "learner"
        } else {
            "started"
        };
        writeln!(
            out,
            "{:<6} {:<10} {:<12} {:<28} {}",
            member.id,
            status,
            member.name,
            member.peer_ur_ls.join(","),
            member.client_ur_ls.join(",")
        )?;
    }
    Ok(())
}

/// One line per endpoint: who it is, whom it follows, how far it got.
pub async fn status(endpoints: &Endpoints, out: &mut impl Write) -> anyhow::Result<bool> {
    writeln!(
        out,
        "{:<22} {:>4} {:>7} {:>6} {:>10} {:>10} {:>9} {:>10} {:>8}",
        "endpoint",
        "id",
        "leader",
        "term",
        "raft index",
        "applied",
        "revision",
        "db size",
        "learner"
    )?;
    let mut all = true;
    for address in &endpoints.addresses {
        let mut client = MaintenanceClient::new(endpoints.channel(address)?);
        match client.status(StatusRequest {}).await {
            Ok(response) => {
                let s = response.into_inner();
                let header = s.header.unwrap_or_default();
                writeln!(
                    out,
                    "{:<22} {:>4} {:>7} {:>6} {:>10} {:>10} {:>9} {:>10} {:>8}",
                    address,
                    header.member_id,
                    s.leader,
                    s.raft_term,
                    s.raft_index,
                    s.raft_applied_index,
                    header.revision,
                    s.db_size,
                    s.is_learner
                )?;
            }
            Err(status) => {
                all = false;
                writeln!(out, "{address:<22} unreachable: {}", status.message())?;
            }
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_prefix_ends_follow_etcdctl() {
        assert_eq!(range_end(b"a", true, None), b"b");
        assert_eq!(range_end(b"a\xff", true, None), b"b");
        assert_eq!(range_end(b"", true, None), b"\0");
        assert_eq!(range_end(b"\xff", true, None), b"\0");
        assert_eq!(range_end(b"a", false, None), b"");
        assert_eq!(range_end(b"a", false, Some("c")), b"c");
        assert_eq!(start_key("", true), b"\0");
        assert_eq!(start_key("", false), b"");
    }

    #[test]
    fn kv_txn_input_parses_like_etcdctl() {
        let input = "value(\"k\") = \"v 1\"\nversion(\"k\") > \"2\"\nmod(k) < 9\n\nput k \"new value\"\nget a z\n\ndel k\n";
        let txn = parse_txn(input.as_bytes()).expect("parses");
        assert_eq!(txn.compare.len(), 3);
        assert_eq!(
            txn.compare[0].target_union,
            Some(TargetUnion::Value(b"v 1".to_vec()))
        );
        assert_eq!(txn.compare[1].result, CompareResult::Greater as i32);
        assert_eq!(
            txn.compare[2].target_union,
            Some(TargetUnion::ModRevision(9))
        );
        assert_eq!(txn.success.len(), 2);
        let Some(Op::RequestPut(put)) = &txn.success[0].request else {
            panic!("not a put: {:?}", txn.success[0]);
        };
        assert_eq!(put.value, b"new value");
        let Some(Op::RequestRange(range)) = &txn.success[1].request else {
            panic!("not a get");
        };
        assert_eq!(range.range_end, b"z");
        assert_eq!(txn.failure.len(), 1);
    }

    #[test]
    fn kv_txn_input_refuses_what_it_cannot_parse() {
        for bad in [
            "value(k) ~ 1\n",
            "version(k) = x\n",
            "size(k) = 1\n",
            "\n\nfrobnicate k\n",
            "\n\n\n\n",
        ] {
            assert!(parse_txn(bad.as_bytes()).is_err(), "{bad:?} parsed");
        }
    }
}
