//! The durable log against crashes, torn writes and bit rot.

use super::*;

fn open(disk: &MemDisk) -> (DurableLog<MemDisk>, Recovered) {
    DurableLog::open(disk.clone()).expect("the log opens")
}

/// Episode 18. What `append` acknowledged survives a crash, in order,
/// and the log continues where it stopped.
#[test]
fn durable_log_acknowledged_records_survive_a_crash() {
    let disk = MemDisk::new();
    let (mut log, recovered) = open(&disk);
    assert!(recovered.records.is_empty());
    assert_eq!(log.append(b"prepare t1").expect("appends"), 0);
    assert_eq!(
        log.append_batch(&[b"vote yes", b"commit t1"])
            .expect("appends"),
        2
    );
    disk.crash();
    let (mut log, recovered) = open(&disk);
    assert_eq!(
        recovered.records,
        [&b"prepare t1"[..], b"vote yes", b"commit t1"]
    );
    assert_eq!(recovered.discarded_bytes, 0);
    assert_eq!(log.append(b"prepare t2").expect("appends"), 3);
    assert_eq!(log.len(), 4);
}

/// Episode 18. A crash tears the last write at every possible byte: the
/// log reopens with the records before it, cuts the torn bytes off, and
/// appends cleanly after them.
#[test]
fn durable_log_torn_last_write_is_cut_off_at_every_byte() {
    let mut last = Vec::new();
    frame(b"commit t1 with a longer payload", &mut last).expect("a small record");
    for kept in 0..last.len() {
        let disk = MemDisk::new();
        let (mut log, _) = open(&disk);
        log.append(b"prepare t1").expect("appends");
        let before = disk.len();
        disk.append_unsynced_for_test(&last);
        disk.tear_last_write(kept);
        let (mut log, recovered) = open(&disk);
        assert_eq!(recovered.records, [&b"prepare t1"[..]], "kept {kept} bytes");
        assert_eq!(recovered.discarded_bytes, kept as u64);
        assert_eq!(disk.len(), before);
        log.append(b"abort t1").expect("appends");
        let (_, recovered) = open(&disk);
        assert_eq!(recovered.records, [&b"prepare t1"[..], b"abort t1"]);
    }
}

/// Episode 18. A flipped bit in a record with records after it is
/// corruption, not a torn write: opening refuses instead of dropping
/// acknowledged records.
#[test]
fn durable_log_corruption_before_the_tail_refuses_to_open() {
    let disk = MemDisk::new();
    let (mut log, _) = open(&disk);
    log.append(b"first").expect("appends");
    log.append(b"second").expect("appends");
    disk.corrupt(HEADER_BYTES + 1);
    assert_eq!(
        DurableLog::open(disk.clone()).map(|_| ()),
        Err(Error::LogCorrupt { offset: 0 })
    );
}

/// Records over the limit are refused before anything is written.
#[test]
fn durable_log_refuses_oversized_records_and_writes_nothing() {
    let disk = MemDisk::new();
    let (mut log, _) = open(&disk);
    let huge = vec![0u8; MAX_RECORD_BYTES + 1];
    assert!(matches!(
        log.append_batch(&[b"fine", &huge]),
        Err(Error::TooLarge { .. })
    ));
    assert!(disk.is_empty());
    assert!(log.is_empty());
}

/// Episode 23. A real file: records survive closing and reopening, and a
/// rewrite (compaction) replaces them atomically.
#[test]
fn durable_log_file_survives_reopening_and_rewrites_atomically() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("coordinator").join("log");
    {
        let (mut log, _) = DurableLog::open(FileDisk::open(&path).expect("opens")).expect("opens");
        for i in 0..100u32 {
            log.append(&i.to_le_bytes()).expect("appends");
        }
        log.rewrite(&[b"snapshot at 99"]).expect("rewrites");
        log.append(b"after the snapshot").expect("appends");
    }
    let (log, recovered) = DurableLog::open(FileDisk::open(&path).expect("opens")).expect("opens");
    assert_eq!(
        recovered.records,
        [&b"snapshot at 99"[..], b"after the snapshot"]
    );
    assert_eq!(log.len(), 2);
    assert_eq!(
        log.size_bytes(),
        std::fs::metadata(&path).expect("exists").len()
    );
}

/// Episode 23. One writer per log file: a second open of the same log is
/// refused while the first lives (two writers would interleave records
/// and leave a log that no longer opens), and allowed once it is dropped.
#[test]
fn durable_log_file_admits_one_writer_at_a_time() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("ledger.log");
    let first = FileDisk::open(&path).expect("opens");
    let second = FileDisk::open(&path).expect_err("the log is taken");
    assert_eq!(second.kind(), std::io::ErrorKind::WouldBlock, "{second}");
    assert!(second.to_string().contains("ledger.log.lock"), "{second}");
    // Another log in the same directory is another writer's.
    FileDisk::open(dir.path().join("other.log")).expect("opens");
    drop(first);
    FileDisk::open(&path).expect("the lock went with the first writer");
}
