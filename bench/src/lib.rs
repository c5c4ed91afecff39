//! Benchmark support.

pub mod apiserver;
pub mod launch;
pub mod procstat;
pub mod schedule;
