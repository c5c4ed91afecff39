//! Rolling updates of service jobs: which outdated instances move next.
//!
//! Owns the batch rule. It must not create or kill anything itself.
//!
//! # Rule
//! A template change (a new template hash) rolls out in batches of
//! `updateStrategy.batchSize` instances. A batch starts only when no
//! instance is in flight (its newest task has the new template but is not
//! yet RUNNING, or not yet healthy when a health check is set). For each
//! instance of a batch the new task is created; the old one is killed at
//! once while more than `minimumHealthyPercent` of the instances stay
//! ready, otherwise it keeps running until the new one is ready (a surge),
//! so capacity never drops below the minimum.

/// An instance as the update rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceView {
    /// Instance index.
    pub index: u32,
    /// Its newest task runs an old template.
    pub outdated: bool,
    /// Its newest task has the new template but is not ready yet.
    pub in_flight: bool,
    /// Its newest task is ready (RUNNING and healthy).
    pub ready: bool,
}

/// One instance to move to the new template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Instance index.
    pub index: u32,
    /// Kill the old task now (else: once the new one is ready).
    pub kill_old_now: bool,
}

/// The next batch for `instances` (desired count `desired`).
pub fn next_batch(
    instances: &[InstanceView],
    desired: u32,
    batch_size: u32,
    minimum_healthy_percent: u32,
) -> Vec<Step> {
    if instances.iter().any(|i| i.in_flight) {
        return Vec::new();
    }
    let min_ready = (u64::from(desired) * u64::from(minimum_healthy_percent.min(100))).div_ceil(100) as u32;
    let mut ready = instances.iter().filter(|i| i.ready).count() as u32;
    let mut steps = Vec::new();
    for inst in instances.iter().filter(|i| i.outdated).take(batch_size.max(1) as usize) {
        let kill_old_now = !inst.ready || ready > min_ready;
        if inst.ready && kill_old_now {
            ready -= 1;
        }
        steps.push(Step { index: inst.index, kill_old_now });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(index: u32, outdated: bool, in_flight: bool, ready: bool) -> InstanceView {
        InstanceView { index, outdated, in_flight, ready }
    }

    #[test]
    fn batches_wait_for_the_previous_one_and_keep_the_minimum_ready() {
        let all_old: Vec<_> = (0..4).map(|i| inst(i, true, false, true)).collect();
        // 100%: every old task stays until its replacement is ready.
        let steps = next_batch(&all_old, 4, 2, 100);
        assert_eq!(steps, vec![Step { index: 0, kill_old_now: false }, Step { index: 1, kill_old_now: false }]);
        // 50%: two may go down at once.
        let steps = next_batch(&all_old, 4, 3, 50);
        assert_eq!(steps.iter().filter(|s| s.kill_old_now).count(), 2);
        assert_eq!(steps.len(), 3);
        // A batch in flight blocks the next.
        let mut busy = all_old.clone();
        busy[0] = inst(0, false, true, false);
        assert!(next_batch(&busy, 4, 2, 100).is_empty());
        // Nothing outdated: nothing to do.
        let done: Vec<_> = (0..4).map(|i| inst(i, false, false, true)).collect();
        assert!(next_batch(&done, 4, 2, 0).is_empty());
    }
}
