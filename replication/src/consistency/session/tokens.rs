//! Reading a list-append history: each read split into the appends it
//! saw, exactly one way.

use std::collections::HashMap;

use super::super::history::{Datum, Operation};
use crate::{Error, Result};

/// The appended tokens of one key, sorted, with the append that wrote each.
///
/// Reads return the concatenation of the tokens appended so far. Because
/// no token is a prefix of another, a read splits into tokens one way
/// only: at each position, the greatest token not above the rest of the
/// text is the only one that can start there (any token sorting between a
/// prefix of the text and the text itself would extend that prefix).
pub(super) struct KeyTokens<'h> {
    pub(super) sorted: Vec<(&'h str, usize)>,
}

impl<'h> KeyTokens<'h> {
    pub(super) fn new(mut sorted: Vec<(&'h str, usize)>) -> Result<Self> {
        sorted.sort_unstable();
        for &(token, id) in &sorted {
            if token.is_empty() {
                return Err(Error::AmbiguousTokens {
                    reason: format!("operation #{id} appends an empty token"),
                });
            }
        }
        for pair in sorted.windows(2) {
            let ((first, first_id), (second, second_id)) = (pair[0], pair[1]);
            if second.starts_with(first) {
                let relation = if first == second {
                    "repeats"
                } else {
                    "is a prefix of"
                };
                return Err(Error::AmbiguousTokens {
                    reason: format!("#{first_id}'s {first:?} {relation} #{second_id}'s {second:?}"),
                });
            }
        }
        Ok(Self { sorted })
    }

    /// The appends a read saw, in the order it saw them.
    pub(super) fn parse(&self, read: &Operation, value: &str) -> Result<Vec<usize>> {
        let mut rest = value;
        let mut seen = Vec::new();
        while !rest.is_empty() {
            let at = self.sorted.partition_point(|&(token, _)| token <= rest);
            match at.checked_sub(1).map(|i| self.sorted[i]) {
                Some((token, id)) if rest.starts_with(token) => {
                    seen.push(id);
                    rest = &rest[token.len()..];
                }
                _ => {
                    return Err(Error::UnparseableRead {
                        operation: read.id,
                        value: value.to_owned(),
                    });
                }
            }
        }
        Ok(seen)
    }
}

/// A token or a read's value (integers are refused up front).
pub(super) fn text(datum: &Datum) -> &str {
    match datum {
        Datum::Str(s) => s,
        Datum::Int(_) | Datum::Absent => "",
    }
}

/// A completed read, parsed into the appends it saw.
pub(super) struct Read<'h> {
    pub(super) op: &'h Operation,
    pub(super) seen: Vec<usize>,
    /// append id → where in `seen`
    pub(super) positions: HashMap<usize, usize>,
}

impl<'h> Read<'h> {
    /// A read of the appends `seen`; a read that shows one append twice is
    /// refused (the store applied it twice: no session guarantee covers
    /// that, and the checks below would misread it).
    pub(super) fn new(op: &'h Operation, seen: Vec<usize>) -> Result<Self> {
        let mut positions = HashMap::with_capacity(seen.len());
        for (at, &id) in seen.iter().enumerate() {
            if positions.insert(id, at).is_some() {
                return Err(Error::DuplicateInRead {
                    operation: op.id,
                    append: id,
                });
            }
        }
        Ok(Self {
            op,
            seen,
            positions,
        })
    }

    pub(super) fn position(&self, append: usize) -> Option<usize> {
        self.positions.get(&append).copied()
    }

    /// Whether `earlier` saw a prefix of what this read saw before
    /// position `end`. `prefixes` caches, per earlier read, whether its
    /// list is a prefix of this one: many appends share one earlier read.
    pub(super) fn extends_before(
        &self,
        earlier: &Read,
        end: usize,
        prefixes: &mut HashMap<usize, bool>,
    ) -> bool {
        earlier.seen.len() <= end
            && *prefixes
                .entry(earlier.op.id)
                .or_insert_with(|| self.seen.starts_with(&earlier.seen))
    }
}
