//! Support of the `schedule` bench: the simulated cluster it drives
//! ([`cluster`]), the figures read from the tasks' history ([`stats`]) and
//! the CPU time of each part of the process ([`cpu`]) and the store's
//! transactions by outcome ([`txns`]).

pub mod cluster;
pub mod cpu;
pub mod stats;
pub mod txns;
