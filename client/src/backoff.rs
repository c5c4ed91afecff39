//! Exponential backoff, and [`StreamBackoff`]: pausing a stream after errors.
//!
//! Owns the delay policy shared by the watcher (applied from outside, so the
//! watcher itself never sleeps) and the controller's per-object retries. It
//! must not decide *whether* to retry: a [`Backoff`] returning `None` ends the
//! stream.
//!
//! Delays go through `tokio::time`, so tests can pause the clock.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures::Stream;
use rand::Rng;
use tokio::time::Sleep;

/// A sequence of delays that can start over.
pub trait Backoff: Iterator<Item = Duration> + Send {
    /// Start again from the first delay (after a success).
    fn reset(&mut self);
}

/// Delays growing by `factor` from `initial` up to `max`, forever, optionally
/// with up to ±25 % random jitter so that many clients do not retry in step.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialBackoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// Growth per step (2.0 doubles).
    pub factor: f64,
    /// Whether to randomise each delay by up to ±25 %.
    pub jitter: bool,
    current: Option<Duration>,
}

impl ExponentialBackoff {
    /// Doubling from `initial` to `max`, without jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        ExponentialBackoff { initial, max, factor: 2.0, jitter: false, current: None }
    }

    /// The same backoff with ±25 % jitter.
    pub fn with_jitter(mut self) -> Self {
        self.jitter = true;
        self
    }

    /// The watcher's default: 800 ms doubling to 30 s, with jitter.
    pub fn watcher_default() -> Self {
        ExponentialBackoff::new(Duration::from_millis(800), Duration::from_secs(30)).with_jitter()
    }
}

impl Iterator for ExponentialBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let next = match self.current {
            None => self.initial,
            Some(d) => d.mul_f64(self.factor).min(self.max),
        };
        self.current = Some(next);
        if self.jitter {
            let scale = rand::rng().random_range(0.75..=1.25);
            Some(next.mul_f64(scale))
        } else {
            Some(next)
        }
    }
}

impl Backoff for ExponentialBackoff {
    fn reset(&mut self) {
        self.current = None;
    }
}

/// A stream of `Result`s that, after each `Err`, waits for the backoff's next
/// delay before polling the inner stream again, and resets the backoff on
/// each `Ok`. When the backoff runs out, the stream ends after that error.
pub struct StreamBackoff<S, B> {
    inner: Pin<Box<S>>,
    backoff: B,
    sleep: Option<Pin<Box<Sleep>>>,
    exhausted: bool,
}

impl<S, B> StreamBackoff<S, B> {
    /// Wraps `inner`.
    pub fn new(inner: S, backoff: B) -> Self {
        StreamBackoff { inner: Box::pin(inner), backoff, sleep: None, exhausted: false }
    }
}

impl<S, B, T, E> Stream for StreamBackoff<S, B>
where
    S: Stream<Item = Result<T, E>>,
    B: Backoff + Unpin,
{
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(sleep) = this.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
        }
        if this.exhausted {
            return Poll::Ready(None);
        }
        let item = ready!(this.inner.as_mut().poll_next(cx));
        match &item {
            Some(Ok(_)) => this.backoff.reset(),
            Some(Err(_)) => match this.backoff.next() {
                Some(delay) => this.sleep = Some(Box::pin(tokio::time::sleep(delay))),
                None => this.exhausted = true,
            },
            None => {}
        }
        Poll::Ready(item)
    }
}

/// Backoff helpers on streams of `Result`s (e.g. a [`crate::watcher()`]).
pub trait StreamBackoffExt: Stream + Sized {
    /// Pause after errors according to `backoff`.
    fn backoff<B: Backoff + Unpin>(self, backoff: B) -> StreamBackoff<Self, B> {
        StreamBackoff::new(self, backoff)
    }

    /// Pause after errors with [`ExponentialBackoff::watcher_default`].
    fn default_backoff(self) -> StreamBackoff<Self, ExponentialBackoff> {
        StreamBackoff::new(self, ExponentialBackoff::watcher_default())
    }
}

impl<S: Stream + Sized> StreamBackoffExt for S {}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::time::Instant;

    use super::*;

    #[test]
    fn exponential_backoff_grows_caps_and_resets() {
        let mut b = ExponentialBackoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let got: Vec<_> = b.by_ref().take(5).map(|d| d.as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        let mut b = ExponentialBackoff::new(Duration::from_secs(1), Duration::from_secs(1)).with_jitter();
        for d in b.by_ref().take(100) {
            assert!(d >= Duration::from_millis(750) && d <= Duration::from_millis(1250), "{d:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stream_backoff_waits_after_errors_only() {
        let items: Vec<Result<u32, &str>> = vec![Err("a"), Err("b"), Ok(1), Err("c"), Ok(2)];
        let backoff = ExponentialBackoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let mut s = futures::stream::iter(items).backoff(backoff);
        let start = Instant::now();
        let mut seen = Vec::new();
        while let Some(item) = s.next().await {
            seen.push((item, (Instant::now() - start).as_secs()));
        }
        // 1 s after "a", 2 s after "b", reset by Ok(1), 1 s after "c".
        assert_eq!(seen, vec![(Err("a"), 0), (Err("b"), 1), (Ok(1), 3), (Err("c"), 3), (Ok(2), 4)]);
    }

    #[tokio::test(start_paused = true)]
    async fn stream_ends_when_the_backoff_gives_up() {
        let items: Vec<Result<u32, &str>> = vec![Err("a"), Err("b"), Ok(1)];
        let backoff = ExponentialBackoff::new(Duration::from_secs(1), Duration::from_secs(1));
        struct Twice(ExponentialBackoff, u32);
        impl Iterator for Twice {
            type Item = Duration;
            fn next(&mut self) -> Option<Duration> {
                self.1 += 1;
                if self.1 > 1 {
                    None
                } else {
                    self.0.next()
                }
            }
        }
        impl Backoff for Twice {
            fn reset(&mut self) {}
        }
        let got: Vec<_> = futures::stream::iter(items).backoff(Twice(backoff, 0)).collect().await;
        assert_eq!(got, vec![Err("a"), Err("b")]);
    }
}
