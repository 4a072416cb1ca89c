//! Virtual time.

use std::time::{Duration, Instant};

/// A clock that only moves when told to: an [`Instant`] the caller gives
/// (the module never reads a clock) plus a virtual offset. Everything in a
/// simulation — the machines' deadlines, the network's delays — is
/// expressed against it, so a run does not depend on when it runs.
///
/// ```
/// use std::time::{Duration, Instant};
/// use xmpp_sansio::sim::VirtualClock;
///
/// let base = Instant::now();
/// let mut clock = VirtualClock::new(base);
/// clock.advance_to(Duration::from_secs(300));
/// assert_eq!(clock.now(), base + Duration::from_secs(300));
/// assert_eq!(clock.offset_of(base + Duration::from_secs(301)), Duration::from_secs(301));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtualClock {
    base: Instant,
    elapsed: Duration,
}

impl VirtualClock {
    /// A clock at `base`, offset zero.
    pub fn new(base: Instant) -> Self {
        VirtualClock {
            base,
            elapsed: Duration::ZERO,
        }
    }

    /// The instant virtual time zero stands for.
    pub fn base(&self) -> Instant {
        self.base
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The current instant: `base + elapsed`.
    pub fn now(&self) -> Instant {
        self.base + self.elapsed
    }

    /// Moves the clock to `elapsed` since the start; it never goes back
    /// (an earlier time leaves it where it is).
    pub fn advance_to(&mut self, elapsed: Duration) {
        self.elapsed = self.elapsed.max(elapsed);
    }

    /// The virtual offset of an instant (zero for instants before the
    /// start).
    pub fn offset_of(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_back() {
        let base = Instant::now();
        let mut clock = VirtualClock::new(base);
        clock.advance_to(Duration::from_secs(5));
        clock.advance_to(Duration::from_secs(2));
        assert_eq!(clock.elapsed(), Duration::from_secs(5));
        assert_eq!(clock.offset_of(base), Duration::ZERO);
    }
}
