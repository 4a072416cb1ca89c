//! A criterion [`Measurement`] that reads the calling thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) instead of the wall clock.
//!
//! Our development and CI machines have 2 cores shared with other jobs, so a
//! single-threaded benchmark is regularly preempted; wall time then measures
//! the neighbours as much as the code, and since criterion measures the lines
//! of a group one after another, the ratios between them drift with the load.
//! Thread CPU time leaves out the time the thread was not running. It still
//! includes cache and memory-bandwidth interference, and (in a VM) time stolen
//! by the hypervisor.
//!
//! Only meaningful for work done on the calling thread: every parser in the
//! `parse` bench runs on it (tokio-xmpp on a current-thread runtime whose
//! `block_on` polls on the caller).

#![allow(dead_code)]

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// CPU time consumed by the calling thread.
pub struct ThreadCpuTime;

/// Formats like criterion's wall clock (values are nanoseconds).
static WALL: WallTime = WallTime;

/// CPU time the calling thread has consumed so far
/// (`CLOCK_THREAD_CPUTIME_ID`, read through the `cpu-time` crate so this
/// project stays free of `unsafe`).
pub fn thread_cpu_now() -> Duration {
    cpu_time::ThreadTime::now().as_duration()
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }

    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}
