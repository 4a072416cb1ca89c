//! Seeded draws for the simulation, on top of [`SeededRng`].

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::rng::SeededRng;

/// The simulation's random source: every decision (chunking, delays, cuts,
/// traffic) is drawn from it, so a seed fixes the whole run.
#[derive(Clone, Debug)]
pub(crate) struct SimRng(SeededRng);

impl SimRng {
    pub(crate) fn new(seed: u64) -> Self {
        SimRng(SeededRng::from_u64(seed))
    }

    /// An independent stream (for one component), drawn from this one.
    pub(crate) fn fork(&mut self) -> SimRng {
        SimRng::new(self.0.next_u64())
    }

    /// A fresh [`SeededRng`] for a connection.
    pub(crate) fn seeded(&mut self) -> SeededRng {
        SeededRng::from_u64(self.0.next_u64())
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        // Multiply-high: no modulo bias worth speaking of, no loop.
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `range` (inclusive).
    pub(crate) fn between(&mut self, range: RangeInclusive<u64>) -> u64 {
        let (lo, hi) = (*range.start(), *range.end());
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `range` (inclusive).
    pub(crate) fn between_u32(&mut self, range: &RangeInclusive<u32>) -> u32 {
        let v = self.between(u64::from(*range.start())..=u64::from(*range.end()));
        u32::try_from(v).unwrap_or(u32::MAX)
    }

    /// Uniform in `range` (inclusive).
    pub(crate) fn index_in(&mut self, range: &RangeInclusive<usize>) -> usize {
        let v = self.between(*range.start() as u64..=*range.end() as u64);
        usize::try_from(v).unwrap_or(usize::MAX)
    }

    /// True with probability `per_mille` / 1000.
    pub(crate) fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    /// Uniform in `range` (inclusive), at microsecond resolution.
    pub(crate) fn duration(&mut self, range: &RangeInclusive<Duration>) -> Duration {
        let lo = micros(*range.start());
        let hi = micros(*range.end());
        Duration::from_micros(self.between(lo..=hi))
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_range_and_repeat_per_seed() {
        let mut a = SimRng::new(5);
        let mut b = SimRng::new(5);
        for _ in 0..1000 {
            let x = a.between(3..=9);
            assert!((3..=9).contains(&x));
            assert_eq!(x, b.between(3..=9));
            let d = a.duration(&(Duration::from_millis(1)..=Duration::from_millis(2)));
            assert!(d >= Duration::from_millis(1) && d <= Duration::from_millis(2));
            b.duration(&(Duration::from_millis(1)..=Duration::from_millis(2)));
        }
        assert_eq!(a.below(0), 0);
        assert_eq!(a.between(7..=7), 7);
        let hits = (0..10_000).filter(|_| a.chance(250)).count();
        assert!((2000..3000).contains(&hits), "{hits}");
    }
}
