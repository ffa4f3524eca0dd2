//! Progress over a system queue whose entries are settled out of order (delay messages fire
//! when due, transactions end when their producer says): everything below `low` is settled,
//! and `done` holds the settled offsets above it. Saved with the owner's state, so a restart
//! rescans only from `low` and skips what is done.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Settled offsets of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    /// Every offset below this is settled.
    pub low: u64,
    /// Settled offsets at or above `low`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub done: BTreeSet<u64>,
}

impl Settled {
    /// Marks `offset` settled, moving `low` past every settled offset it reaches.
    pub fn settle(&mut self, offset: u64) {
        if offset < self.low {
            return;
        }
        self.done.insert(offset);
        while self.done.remove(&self.low) {
            self.low += 1;
        }
    }

    /// Whether `offset` is settled.
    pub fn is_settled(&self, offset: u64) -> bool {
        offset < self.low || self.done.contains(&offset)
    }

    /// Entries below `min` are gone (retention): nothing to settle there.
    pub fn forget_below(&mut self, min: u64) {
        if min > self.low {
            self.low = min;
            self.done = self.done.split_off(&min);
            while self.done.remove(&self.low) {
                self.low += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_advances_over_contiguous_settled_offsets() {
        let mut s = Settled::default();
        s.settle(2);
        s.settle(1);
        assert_eq!((s.low, s.done.len()), (0, 2));
        assert!(s.is_settled(1) && !s.is_settled(0) && !s.is_settled(3));
        s.settle(0);
        assert_eq!((s.low, s.done.len()), (3, 0));
        s.settle(5);
        s.forget_below(5);
        assert_eq!((s.low, s.done.len()), (6, 0));
    }
}
