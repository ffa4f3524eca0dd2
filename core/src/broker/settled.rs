//! Progress over a system queue whose entries are settled out of order (delay messages fire
//! when due, transactions end when their producer says): everything below `low` is settled,
//! and `done` holds the settled offsets above it. Saved with the owner's state, so a restart
//! rescans only from `low` and skips what is done.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::broker::error::{BrokerError, Result};
use crate::broker::lock;
use crate::storage::persist::save_json_compact;

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

/// A state file saved atomically when its state changed: one save at a time, so an older
/// snapshot never lands after a newer one, and a failed save leaves the state marked changed.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    save_lock: Mutex<()>,
}

impl StateFile {
    /// The state file at `path`.
    pub fn new(path: PathBuf) -> Self {
        StateFile { path, save_lock: Mutex::new(()) }
    }

    /// Saves `snapshot(state)` if `dirty(state)` is set, clearing it (set again on failure).
    pub fn save<S, T: Serialize>(
        &self,
        state: &Mutex<S>,
        dirty: impl Fn(&mut S) -> &mut bool,
        snapshot: impl FnOnce(&S) -> T,
    ) -> Result<()> {
        let _one = lock(&self.save_lock);
        let saved = {
            let mut st = lock(state);
            if !std::mem::replace(dirty(&mut st), false) {
                return Ok(());
            }
            snapshot(&st)
        };
        save_json_compact(&self.path, &saved).map_err(|e| {
            *dirty(&mut lock(state)) = true;
            BrokerError::from(e)
        })
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
