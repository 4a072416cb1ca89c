//! The event queue of the simulation: what happens next, in virtual time.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;

use bytes::Bytes;

use super::net::{LinkId, Side};

/// Something scheduled to happen at a virtual time.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    /// A client opens a connection (its first, or a reconnection).
    Connect { client: usize },
    /// The server accepts a connection.
    Accept { link: LinkId },
    /// Bytes arrive at one end of a link.
    Deliver {
        link: LinkId,
        to: Side,
        bytes: Bytes,
    },
    /// One end of a link learns that the transport is gone.
    Eof { link: LinkId, to: Side },
    /// A client's application sends a message to another client.
    AppSend { client: usize, to: usize },
    /// A client's application logs out cleanly (it logs in again after the
    /// reconnection delay).
    Logout { client: usize },
}

/// An event with its time and scheduling order.
#[derive(Debug)]
struct Entry {
    at: Duration,
    order: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// Events ordered by time, then by the order they were scheduled in (so
/// equal times keep FIFO order and the run stays deterministic).
#[derive(Debug, Default)]
pub(crate) struct Queue {
    events: BinaryHeap<Reverse<Entry>>,
    next: u64,
}

impl Queue {
    pub(crate) fn push(&mut self, at: Duration, event: Event) {
        self.events.push(Reverse(Entry {
            at,
            order: self.next,
            event,
        }));
        self.next += 1;
    }

    pub(crate) fn next_time(&self) -> Option<Duration> {
        self.events.peek().map(|Reverse(e)| e.at)
    }

    pub(crate) fn pop(&mut self) -> Option<(Duration, Event)> {
        self.events.pop().map(|Reverse(e)| (e.at, e.event))
    }

    /// Whether an event matching `f` is scheduled.
    pub(crate) fn any(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(|Reverse(e)| f(&e.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_order_then_fifo() {
        let mut q = Queue::default();
        for (at, client) in [(5, 0), (1, 1), (5, 2), (1, 3), (0, 4)] {
            q.push(Duration::from_secs(at), Event::Connect { client });
        }
        let order: Vec<usize> = std::iter::from_fn(|| q.pop())
            .map(|(_, e)| match e {
                Event::Connect { client } => client,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(order, [4, 1, 3, 0, 2]);
    }
}
