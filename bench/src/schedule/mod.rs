//! Support of the `schedule` bench: the simulated cluster it drives
//! ([`cluster`]) and the figures read from the tasks' history ([`stats`]).

pub mod cluster;
pub mod stats;
