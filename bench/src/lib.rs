//! Benchmark support.

pub mod apiserver;
