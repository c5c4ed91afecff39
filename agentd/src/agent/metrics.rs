//! The agent's Prometheus metrics: tasks by state, container starts, start
//! latency, and the status-update queue's depth. Registered in one
//! [`prometheus::Registry`] that `/metrics` renders.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

/// Every metric of one agent.
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// `meseta_agent_tasks{state}`: tasks this agent runs, by last reported state.
    pub tasks: IntGaugeVec,
    /// `meseta_agent_container_starts_total`.
    pub container_starts: IntCounter,
    /// `meseta_agent_container_start_failures_total`.
    pub container_start_failures: IntCounter,
    /// `meseta_agent_task_start_seconds`: from seeing ASSIGNED to the process running.
    pub start_latency: Histogram,
    /// `meseta_agent_status_update_queue_depth`.
    pub queue_depth: IntGauge,
}

impl AgentMetrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let tasks = IntGaugeVec::new(Opts::new("meseta_agent_tasks", "Tasks on this agent by state"), &["state"])
            .expect("valid metric");
        let container_starts =
            IntCounter::new("meseta_agent_container_starts_total", "Containers started").expect("valid metric");
        let container_start_failures =
            IntCounter::new("meseta_agent_container_start_failures_total", "Containers that failed to start")
                .expect("valid metric");
        let start_latency = Histogram::with_opts(
            HistogramOpts::new("meseta_agent_task_start_seconds", "Seconds from ASSIGNED seen to process running")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )
        .expect("valid metric");
        let queue_depth = IntGauge::new("meseta_agent_status_update_queue_depth", "Status updates not yet accepted")
            .expect("valid metric");
        for c in [
            Box::new(tasks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(container_starts.clone()),
            Box::new(container_start_failures.clone()),
            Box::new(start_latency.clone()),
            Box::new(queue_depth.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        AgentMetrics { registry, tasks, container_starts, container_start_failures, start_latency, queue_depth }
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics::new()
    }
}
