//! Every API kind of group `meseta.io/v1`, one module each.

pub mod agent;
pub mod common;
pub mod event;
pub mod framework;
pub mod job;
pub mod lease;
pub mod offer;
pub mod quota;
pub mod reservation;
pub mod role;
pub mod task;

pub use agent::*;
pub use common::*;
pub use event::*;
pub use framework::*;
pub use job::*;
pub use lease::*;
pub use offer::*;
pub use quota::*;
pub use reservation::*;
pub use role::*;
pub use task::*;
