//! Launch latency on a real agent, beside `crun` / `runc` running an
//! equivalent OCI bundle (the `launch` bench).
//!
//! # Layout
//! - [`agent`]: finds and runs the release `meseta-agentd` binary.
//! - [`tasks`]: binds `/bin/true` tasks to the agent and follows them with
//!   one watch, recording when each state was first seen.
//! - [`oci`]: the peer: the agent's own `config.json` captured from a
//!   running task, replayed through `crun run` / `runc run`.
//!
//! It measures and prints; it must not change how the agent runs tasks.

pub mod agent;
pub mod oci;
pub mod tasks;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux ABI).
const CLOCK_TICKS: f64 = 100.0;

/// CPU milliseconds of a process, from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcCpu {
    /// Its own: `utime + stime`.
    pub own_ms: f64,
    /// The children it has waited for, theirs included: `cutime + cstime`.
    /// For the agent: its shims and the containers' processes (each shim
    /// reaps its container, the agent reaps its shims); for this bench: the
    /// peer runs it waited for.
    pub children_ms: f64,
}

impl ProcCpu {
    /// Process `pid`'s figures now (`"self"` for this one).
    pub fn of(pid: &str) -> anyhow::Result<ProcCpu> {
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {path}: {e}"))?;
        // Fields after the command name (which may hold spaces) follow the last ')'; utime is field 14.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let ticks: Vec<u64> = rest.split_whitespace().skip(11).take(4).filter_map(|f| f.parse().ok()).collect();
        let [utime, stime, cutime, cstime] = ticks[..] else { anyhow::bail!("{path}: no CPU times in {stat:?}") };
        let ms = |t: u64| t as f64 / CLOCK_TICKS * 1000.0;
        Ok(ProcCpu { own_ms: ms(utime + stime), children_ms: ms(cutime + cstime) })
    }

    /// Own and children's together.
    pub fn total_ms(&self) -> f64 {
        self.own_ms + self.children_ms
    }
}

/// Percentiles of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    /// The summary of `samples` (ms); NaN figures when empty.
    pub fn of(samples: &[f64]) -> Summary {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let p = |q| crate::apiserver::percentile(&sorted, q);
        Summary { n: sorted.len(), p50: p(0.5), p99: p(0.99), max: p(1.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::Summary;

    #[test]
    fn cpu_of_this_process_is_read_and_grows() {
        let before = super::ProcCpu::of("self").unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = super::ProcCpu::of("self").unwrap();
        assert!(after.own_ms > before.own_ms, "{before:?} -> {after:?}");
        assert!(after.total_ms() >= after.own_ms);
        assert!(super::ProcCpu::of("999999999").is_err());
    }

    #[test]
    fn percentiles_come_from_the_sorted_samples() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((s.n, s.p50, s.p99, s.max), (5, 3.0, 5.0, 5.0));
        assert!(Summary::of(&[]).p50.is_nan());
    }
}
