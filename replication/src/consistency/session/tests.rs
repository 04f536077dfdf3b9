//! The session checkers, case by case.

use super::*;

fn op(id: usize, client: u64, command: Command, reply: Reply, call: u64) -> Operation {
    Operation {
        id,
        client,
        key: Some("k".into()),
        command,
        reply,
        call,
        ret: call + 1,
    }
}

fn append(id: usize, client: u64, token: &str, call: u64) -> Operation {
    op(
        id,
        client,
        Command::Append(Datum::text(token)),
        Reply::Ok,
        call,
    )
}

fn get(id: usize, client: u64, seen: &str, call: u64) -> Operation {
    op(
        id,
        client,
        Command::Get,
        Reply::Value(Datum::text(seen)),
        call,
    )
}

fn violated(ops: Vec<Operation>) -> Vec<Guarantee> {
    let mut found: Vec<Guarantee> = check_sessions(&History::new(ops))
        .expect("append history")
        .into_iter()
        .map(|v| v.guarantee)
        .collect();
    found.dedup();
    found
}

#[test]
fn session_a_well_behaved_history_keeps_every_promise() {
    let ops = vec![
        append(0, 1, "a", 0),
        get(1, 1, "a", 2),
        append(2, 2, "b", 4),
        get(3, 1, "ab", 6),
        get(4, 2, "ab", 8),
    ];
    assert!(violated(ops).is_empty());
}

#[test]
fn session_stale_read_breaks_read_your_writes() {
    assert_eq!(
        violated(vec![append(0, 1, "a", 0), get(1, 1, "", 2)]),
        [Guarantee::ReadYourWrites]
    );
}

#[test]
fn session_going_back_in_time_breaks_monotonic_reads() {
    let ops = vec![append(0, 2, "a", 0), get(1, 1, "a", 2), get(2, 1, "", 4)];
    assert_eq!(violated(ops), [Guarantee::MonotonicReads]);
}

#[test]
fn session_reordered_appends_break_monotonic_writes() {
    let ops = vec![
        append(0, 1, "a", 0),
        append(1, 1, "b", 2),
        get(2, 2, "ba", 4),
    ];
    assert_eq!(violated(ops), [Guarantee::MonotonicWrites]);
}

#[test]
fn session_write_before_what_was_read_breaks_writes_follow_reads() {
    let ops = vec![
        append(0, 2, "a", 0),
        get(1, 1, "a", 2),
        append(2, 1, "b", 4),
        get(3, 3, "b", 6),
    ];
    assert_eq!(violated(ops), [Guarantee::WritesFollowReads]);
}

#[test]
fn session_unknown_appends_are_not_required() {
    let unknown = op(0, 1, Command::Append(Datum::text("a")), Reply::Unknown, 0);
    assert!(
        violated(vec![unknown, get(1, 1, "", 2)]).is_empty(),
        "it may never have happened"
    );
}

fn on(key: &str, mut op: Operation) -> Operation {
    op.key = Some(key.into());
    op
}

/// Tokens are matched whole: `"1"` is not found inside `"12"`, so a
/// history mixing them is refused rather than misread.
#[test]
fn session_ambiguous_tokens_are_refused() {
    let ops = vec![
        append(0, 1, "1", 0),
        append(1, 2, "12", 2),
        get(2, 1, "12", 4),
    ];
    assert!(matches!(
        check_sessions(&History::new(ops)),
        Err(Error::AmbiguousTokens { .. })
    ));
}

/// Text search would "find" client 1's "x1y" inside client 2's
/// "ax1yb"; parsed, the read shows "ax1yb" alone and client 1's own
/// append is missing.
#[test]
fn session_tokens_are_not_found_inside_other_tokens() {
    let ops = vec![
        append(0, 1, "x1y", 0),
        append(1, 2, "ax1yb", 2),
        get(2, 1, "ax1yb", 4),
    ];
    assert_eq!(violated(ops), [Guarantee::ReadYourWrites]);
}

#[test]
fn session_reads_of_text_nobody_appended_are_refused() {
    let ops = vec![append(0, 1, "[a]", 0), get(1, 1, "[a][zz]", 2)];
    assert!(matches!(
        check_sessions(&History::new(ops)),
        Err(Error::UnparseableRead { operation: 1, .. })
    ));
}

/// Terry et al.'s writes-follow-reads across keys: client 1 read x's
/// "[a]" and then appended "[b]" to y; client 3 saw "[b]" on y and then
/// read x empty — a state holding the append but not what it followed.
#[test]
fn session_writes_follow_reads_is_checked_across_keys() {
    let ops = vec![
        on("x", append(0, 2, "[a]", 0)),
        on("x", get(1, 1, "[a]", 2)),
        on("y", append(2, 1, "[b]", 4)),
        on("y", get(3, 3, "[b]", 6)),
        on("x", get(4, 3, "", 8)),
    ];
    assert_eq!(violated(ops), [Guarantee::WritesFollowReads]);
    let fine = vec![
        on("x", append(0, 2, "[a]", 0)),
        on("x", get(1, 1, "[a]", 2)),
        on("y", append(2, 1, "[b]", 4)),
        on("y", get(3, 3, "[b]", 6)),
        on("x", get(4, 3, "[a]", 8)),
    ];
    assert!(violated(fine).is_empty());
}

/// Monotonic writes across keys: client 1 appended to x, then to y;
/// client 2 saw the y append and then found x without the first.
#[test]
fn session_monotonic_writes_is_checked_across_keys() {
    let ops = vec![
        on("x", append(0, 1, "[a]", 0)),
        on("y", append(1, 1, "[b]", 2)),
        on("y", get(2, 2, "[b]", 4)),
        on("x", get(3, 2, "", 6)),
    ];
    assert_eq!(violated(ops), [Guarantee::MonotonicWrites]);
}

#[test]
fn session_a_read_showing_one_append_twice_is_refused() {
    let ops = vec![append(0, 1, "[1]", 0), get(1, 1, "[1][1]", 2)];
    assert!(matches!(
        check_sessions(&History::new(ops)),
        Err(Error::DuplicateInRead {
            operation: 1,
            append: 0
        })
    ));
}

#[test]
fn session_checks_refuse_numeric_tokens() {
    let numeric = op(0, 1, Command::Append(Datum::Int(5)), Reply::Ok, 0);
    assert!(matches!(
        check_sessions(&History::new(vec![numeric])),
        Err(Error::ModelMismatch { operation: 0, .. })
    ));
}

#[test]
fn session_checks_refuse_overwrites() {
    let put = op(0, 1, Command::Put(Datum::text("a")), Reply::Ok, 0);
    assert!(matches!(
        check_sessions(&History::new(vec![put])),
        Err(Error::ModelMismatch { .. })
    ));
}
