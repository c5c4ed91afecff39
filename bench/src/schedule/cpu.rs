//! CPU time of the schedule bench's parts, read from this process's threads.
//!
//! The bench runs the apiserver and the controllers each on a runtime of its
//! own whose threads carry a name prefix ([`APISERVER_THREADS`],
//! [`CONTROLLERS_THREADS`]); the simulated agents and the bench itself run
//! on the main runtime's workers, the store's commit, I/O and log-segment
//! threads count as `store`, the main thread (the bench's own loop) as
//! `other`, and threads that ended before the reading as `ended`. Summing
//! `utime + stime` of `/proc/self/task/*/stat` by thread name gives each
//! part's CPU seconds, which moves far less with other load on the machine
//! than wall-clock throughput does.
//!
//! Owns reading and grouping those counters. It must not start or stop anything.

use std::collections::BTreeMap;

use crate::procstat;

/// Name prefix of the apiserver runtime's threads.
pub const APISERVER_THREADS: &str = "rt-apiserver";
/// Name prefix of the controllers runtime's threads.
pub const CONTROLLERS_THREADS: &str = "rt-controllers";

/// CPU seconds (user + system) per part of the process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartsCpu(pub BTreeMap<&'static str, f64>);

impl PartsCpu {
    /// The parts' CPU seconds now. Threads that ended are not counted, so
    /// the bench reads this while everything still runs.
    pub fn now() -> PartsCpu {
        let mut parts = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return PartsCpu(parts) };
        for entry in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            if let Some(s) = procstat::parse(&stat) {
                *parts.entry(part_of(s.name)).or_insert(0.0) += (s.utime + s.stime) as f64 / procstat::USER_HZ;
            }
        }
        let process = std::fs::read_to_string("/proc/self/stat").ok();
        let total =
            process.as_deref().and_then(procstat::parse).map(|s| (s.utime + s.stime) as f64 / procstat::USER_HZ);
        with_ended(parts, total)
    }

    /// What each part spent from `earlier` to `self`.
    pub fn since(&self, earlier: &PartsCpu) -> PartsCpu {
        let parts = self.0.iter().map(|(part, s)| (*part, s - earlier.0.get(part).copied().unwrap_or(0.0))).collect();
        PartsCpu(parts)
    }
}

/// `live` (the threads running now, by part) with the part `ended`: what the
/// process's own counters (`total`, read after them) hold beyond them, that
/// is the CPU of threads that ended, such as the store's log-segment
/// preparers (a thread per segment) and blocking threads gone idle. Without
/// it a part's work done on short-lived threads would go uncounted.
fn with_ended(mut live: BTreeMap<&'static str, f64>, total: Option<f64>) -> PartsCpu {
    if let Some(total) = total {
        let counted: f64 = live.values().sum();
        live.insert("ended", (total - counted).max(0.0));
    }
    PartsCpu(live)
}

/// The part a thread named `name` works for.
fn part_of(name: &str) -> &'static str {
    if name.starts_with(APISERVER_THREADS) {
        "apiserver"
    } else if name.starts_with(CONTROLLERS_THREADS) {
        "controllers"
    } else if name.starts_with("tokio-r") {
        // The main runtime's workers ("tokio-rt-worker"): the agents.
        "agents"
    } else if name.starts_with("sled") || name.starts_with("meseta-store") || name.starts_with("meseta-wal") {
        // The apiserver's store: sled's I/O threads, the commit thread and
        // the log-segment preparer (while it runs; see `with_ended`).
        "store"
    } else {
        // The main thread (the bench's own loop) and anything else.
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_grouped_by_name_prefix() {
        assert_eq!(part_of("rt-apiserver-3"), "apiserver");
        assert_eq!(part_of("rt-controllers-"), "controllers");
        assert_eq!(part_of("tokio-rt-worker"), "agents");
        assert_eq!(part_of("sled-io-3"), "store");
        assert_eq!(part_of("meseta-store-co"), "store");
        assert_eq!(part_of("meseta-wal-prep"), "store");
        assert_eq!(part_of("schedule"), "other");
    }

    #[test]
    fn what_the_process_counted_beyond_its_live_threads_is_the_ended_threads() {
        let live = || [("apiserver", 3.0), ("store", 1.5)].into_iter().collect::<BTreeMap<_, _>>();
        let parts = with_ended(live(), Some(5.0));
        assert_eq!(parts.0["ended"], 0.5);
        assert_eq!(parts.0["apiserver"], 3.0);
        assert_eq!(with_ended(live(), Some(4.0)).0["ended"], 0.0, "never below zero (read at another instant)");
        assert!(!with_ended(live(), None).0.contains_key("ended"), "nothing to say without the process's counters");
    }

    #[test]
    fn since_subtracts_per_part() {
        let a = PartsCpu([("apiserver", 1.0), ("agents", 2.0)].into_iter().collect());
        let b = PartsCpu([("apiserver", 4.0), ("agents", 2.5), ("other", 1.0)].into_iter().collect());
        let d = b.since(&a);
        assert_eq!(d.0["apiserver"], 3.0);
        assert_eq!(d.0["agents"], 0.5);
        assert_eq!(d.0["other"], 1.0);
    }
}
