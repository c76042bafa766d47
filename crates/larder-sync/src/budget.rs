//! The memory a sync's transfers may hold at once ([`SyncOptions::max_buffer_memory`]).
//!
//! Each transfer that moves bytes through larder (not a server-side copy) reserves what it
//! can hold before it starts: its size, or for a large object the parts it keeps in memory
//! (those in flight and the one being filled or written). Many small
//! objects run at full concurrency; large ones wait for room, so peak memory follows the
//! budget, not `concurrency × part size`.
//!
//! [`SyncOptions::max_buffer_memory`]: crate::SyncOptions::max_buffer_memory

use tokio::sync::{Semaphore, SemaphorePermit};

/// Reservations are counted in KiB (a semaphore's permits are `u32`).
const UNIT: u64 = 1024;

/// A budget of bytes, shared by a run's transfers.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    permits: Semaphore,
    total: u32,
    per_transfer: u64,
}

impl MemoryBudget {
    /// `bytes` in all; one transfer reserves at most `parts_held × part_size`.
    pub(crate) fn new(bytes: u64, part_size: u64, parts_held: u64) -> Self {
        let total = (bytes / UNIT).clamp(1, u64::from(u32::MAX >> 4)) as u32;
        MemoryBudget {
            permits: Semaphore::new(total as usize),
            total,
            per_transfer: part_size.saturating_mul(parts_held.max(1)),
        }
    }

    /// Waits until a transfer of `size` bytes fits, and holds its share until dropped. A
    /// transfer larger than the whole budget takes all of it (it runs alone, never waits
    /// forever).
    pub(crate) async fn reserve(&self, size: u64) -> SemaphorePermit<'_> {
        let want = size.min(self.per_transfer).div_ceil(UNIT);
        let n = want.min(u64::from(self.total)) as u32;
        self.permits
            .acquire_many(n)
            .await
            .expect("the budget is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_transfers_share_the_budget_and_a_large_one_waits_for_room() {
        let b = MemoryBudget::new(64 << 20, 8 << 20, 5);
        // A 40 MiB reservation (5 parts of 8 MiB) for a 1 GiB object, and room for 24 MiB
        // of small ones beside it.
        let large = b.reserve(1 << 30).await;
        let smalls: Vec<_> = futures::future::join_all((0..24).map(|_| b.reserve(1 << 20))).await;
        assert_eq!(b.permits.available_permits(), 0);
        // A second large one waits until enough is released.
        let waiting = b.reserve(1 << 30);
        tokio::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        drop(large);
        assert!(futures::poll!(waiting.as_mut()).is_ready());
        drop(smalls);
        // Bigger than the whole budget: takes it all, never waits forever.
        let tiny = MemoryBudget::new(4 << 20, 8 << 20, 5);
        let all = tiny.reserve(1 << 30).await;
        assert_eq!(tiny.permits.available_permits(), 0);
        drop(all);
        assert_eq!(tiny.permits.available_permits(), 4096);
    }
}
