//! Benchmark support.

pub mod apiserver;
pub mod launch;
pub mod schedule;
