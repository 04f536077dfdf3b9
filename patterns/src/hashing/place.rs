//! Streaming placement for the command line: keys in, `key<TAB>node` out.
//!
//! `dslab hash place` reads one key per line and writes its node as soon
//! as it has it, so it works on a pipe of any length in constant memory.
//! A trailing `\r` is taken as part of a Windows line ending, not the key.

use std::io::{self, BufRead, Write};

use super::Placement;

/// Places every line of `input`, writing `key<TAB>node` lines to `output`.
/// Returns the number of keys placed. A closed output (`| head`) ends the
/// stream quietly.
pub fn place_stream(
    placement: &mut dyn Placement,
    mut input: impl BufRead,
    output: impl Write,
) -> io::Result<u64> {
    let mut output = io::BufWriter::with_capacity(1 << 16, output);
    let mut line = Vec::with_capacity(256);
    let mut placed = 0;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let mut key = line.as_slice();
        key = key.strip_suffix(b"\n").unwrap_or(key);
        key = key.strip_suffix(b"\r").unwrap_or(key);
        let node = placement
            .assign(key)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let written = output
            .write_all(key)
            .and_then(|()| output.write_all(b"\t"))
            .and_then(|()| output.write_all(node.as_bytes()))
            .and_then(|()| output.write_all(b"\n"));
        match written {
            Ok(()) => placed += 1,
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return Ok(placed),
            Err(err) => return Err(err),
        }
    }
    match output.flush() {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => Err(err),
        _ => Ok(placed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::{Strategy, StrategyConfig};

    #[test]
    fn hashing_place_stream_writes_one_line_per_key() {
        let mut placement = StrategyConfig::new(Strategy::CourseRing)
            .build_with(&(0..10).map(|i| format!("node-{i}")).collect::<Vec<_>>())
            .expect("valid");
        let mut out = Vec::new();
        let placed = place_stream(
            placement.as_mut(),
            &b"key-0\nkey-1\r\n\nkey-2"[..],
            &mut out,
        )
        .expect("in memory");
        assert_eq!(placed, 4);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "key-0\tnode-2\nkey-1\tnode-7\n\tnode-0\nkey-2\tnode-8\n"
        );
    }
}
