//! Benchmark support.

pub mod apiserver;
pub mod launch;
