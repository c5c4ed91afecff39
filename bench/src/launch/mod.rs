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
    fn percentiles_come_from_the_sorted_samples() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((s.n, s.p50, s.p99, s.max), (5, 3.0, 5.0, 5.0));
        assert!(Summary::of(&[]).p50.is_nan());
    }
}
