//! [`Clock`]: where the tasks, liveness and jobs controllers read "now".
//!
//! Owns nothing but the time source, so tests can move time by hand (cron
//! firing, timeouts). It must not sleep: loops wait with `tokio::time`.

use std::sync::{Arc, Mutex};

use meseta_schemas::Time;

/// A source of wall-clock time; the system clock by default.
#[derive(Clone)]
pub struct Clock {
    manual: Option<Arc<Mutex<Time>>>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::system"),
            Some(t) => write!(f, "Clock::manual({:?})", t.lock().map(|t| *t).ok()),
        }
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock { manual: None }
    }

    /// A clock that stands at `at` until [`Clock::set`] or [`Clock::advance`] moves it.
    pub fn manual(at: Time) -> Self {
        Clock { manual: Some(Arc::new(Mutex::new(at))) }
    }

    /// Now.
    pub fn now(&self) -> Time {
        match &self.manual {
            None => chrono::Utc::now(),
            Some(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a manual clock to `at` (no effect on the system clock).
    pub fn set(&self, at: Time) {
        if let Some(t) = &self.manual {
            *t.lock().unwrap_or_else(|e| e.into_inner()) = at;
        }
    }

    /// Moves a manual clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        if let Some(t) = &self.manual {
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            *t += chrono::Duration::from_std(by).unwrap_or_default();
        }
    }
}
