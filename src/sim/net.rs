//! The in-memory network: one link per connection between a simulated
//! client and the host, delivering bytes in order with seeded chunking and
//! delays, and cutting links at byte offsets.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use bytes::Bytes;

use super::rand::SimRng;
use super::sched::{Event, Queue};

/// Identifies one link (one transport connection) of a run, in the order
/// they were opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link#{}", self.0)
    }
}

/// One end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// The simulated client.
    Client,
    /// The host (server).
    Server,
}

impl Side {
    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

/// A connection drop, planned when a link opens: the byte stream written by
/// `from` is cut after `offset` bytes. Those bytes still arrive; every byte
/// after them, and everything either side writes from then on, is lost.
/// Bytes of the other direction already on the wire still arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Whose byte stream is cut.
    pub from: Side,
    /// How many bytes of that stream get through.
    pub offset: u64,
    /// The client gets `Input::Eof` this long after the cut (and after the
    /// bytes still in flight to it).
    pub client_eof_after: Duration,
    /// `Some(d)`: the server gets `Input::Eof` `d` after the cut. `None`:
    /// it is never told, and only its dead-peer timeout can notice.
    pub server_eof_after: Option<Duration>,
}

/// How the network delivers bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// One-way delay of each chunk, drawn per chunk; arrival order is
    /// always the sending order (a byte stream).
    pub latency: RangeInclusive<Duration>,
    /// Split writes into chunks of seeded sizes, anywhere (inside UTF-8
    /// characters, tags and attribute values); `false` delivers each write
    /// whole.
    pub chunking: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            latency: Duration::from_millis(1)..=Duration::from_millis(150),
            chunking: true,
        }
    }
}

/// Everything that arrived on one link, for inspection (recorded only when
/// [`Scenario::record_transcripts`](super::Scenario::record_transcripts)
/// is set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    /// The link.
    pub link: LinkId,
    /// The client (index) that opened it.
    pub client: usize,
    /// Which of the client's connections it was (0 = first).
    pub connection: u32,
    /// The bytes that reached the server, in order.
    pub to_server: Vec<u8>,
    /// The bytes that reached the client, in order.
    pub to_client: Vec<u8>,
    /// The cut planned for the link, if any.
    pub cut: Option<Cut>,
    /// When the cut happened (virtual time since the start), if it did.
    pub cut_at: Option<Duration>,
}

#[derive(Debug)]
struct Link {
    client: usize,
    connection: u32,
    cut: Option<Cut>,
    cut_at: Option<Duration>,
    server_closed_at: Option<Duration>,
    /// Bytes written into the link by each side (that got through).
    written: [u64; 2],
    /// Arrival time of the last delivery scheduled *to* each side.
    last_arrival: [Duration; 2],
    /// Each side still writes into the link.
    sending: [bool; 2],
    /// Each side still reads from it.
    reading: [bool; 2],
    /// An end-of-file is scheduled to each side.
    eof_scheduled: [bool; 2],
    /// Bytes received by each side.
    received: Option<[Vec<u8>; 2]>,
}

/// The links of a run.
#[derive(Debug)]
pub(crate) struct Network {
    config: NetworkConfig,
    rng: SimRng,
    links: BTreeMap<LinkId, Link>,
    next: u64,
    in_flight: usize,
    record: bool,
    digest: Digest,
    cuts: u64,
}

impl Network {
    pub(crate) fn new(config: NetworkConfig, rng: SimRng, record: bool) -> Self {
        Network {
            config,
            rng,
            links: BTreeMap::new(),
            next: 0,
            in_flight: 0,
            record,
            digest: Digest::new(),
            cuts: 0,
        }
    }

    /// Opens a link for `client`; the server accepts it after one delay.
    pub(crate) fn open(
        &mut self,
        now: Duration,
        client: usize,
        connection: u32,
        cut: Option<Cut>,
        queue: &mut Queue,
    ) -> LinkId {
        let id = LinkId(self.next);
        self.next += 1;
        let accept_at = now + self.rng.duration(&self.config.latency);
        let mut last_arrival = [now; 2];
        last_arrival[Side::Server.index()] = accept_at;
        self.links.insert(
            id,
            Link {
                client,
                connection,
                cut,
                cut_at: None,
                server_closed_at: None,
                written: [0; 2],
                last_arrival,
                sending: [true; 2],
                reading: [true; 2],
                eof_scheduled: [false; 2],
                received: self.record.then(|| [Vec::new(), Vec::new()]),
            },
        );
        queue.push(accept_at, Event::Accept { link: id });
        id
    }

    /// `from` writes `bytes` into the link.
    pub(crate) fn send(
        &mut self,
        now: Duration,
        link: LinkId,
        from: Side,
        bytes: &Bytes,
        queue: &mut Queue,
    ) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if !l.sending[from.index()] || bytes.is_empty() {
            return;
        }
        let written = l.written[from.index()];
        let mut pass = bytes.len();
        let mut sever = false;
        if let Some(cut) = l.cut
            && cut.from == from
            && l.cut_at.is_none()
            && written + bytes.len() as u64 > cut.offset
        {
            pass = usize::try_from(cut.offset.saturating_sub(written)).unwrap_or(usize::MAX);
            sever = true;
        }
        l.written[from.index()] += pass as u64;
        let to = from.other();
        let mut start = 0;
        // One delay per write; its chunks follow each other at a seeded
        // spacing (and never overtake what was sent before).
        let mut at = now + self.rng.duration(&self.config.latency);
        let spacing = Duration::from_micros(self.rng.below(2000));
        for size in chunk_sizes(&mut self.rng, pass, self.config.chunking) {
            at = at.max(l.last_arrival[to.index()]);
            l.last_arrival[to.index()] = at;
            queue.push(
                at,
                Event::Deliver {
                    link,
                    to,
                    bytes: bytes.slice(start..start + size),
                },
            );
            self.in_flight += 1;
            start += size;
            at += spacing;
        }
        if sever {
            self.sever(now, link, queue);
        }
    }

    fn sever(&mut self, now: Duration, link: LinkId, queue: &mut Queue) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let Some(cut) = l.cut else {
            return;
        };
        self.cuts += 1;
        l.cut_at = Some(now);
        l.sending = [false; 2];
        let notices = [
            (Side::Client, Some(cut.client_eof_after)),
            (Side::Server, cut.server_eof_after),
        ];
        for (side, after) in notices {
            if let Some(after) = after
                && !l.eof_scheduled[side.index()]
            {
                let at = (now + after).max(l.last_arrival[side.index()]);
                l.last_arrival[side.index()] = at;
                l.eof_scheduled[side.index()] = true;
                queue.push(at, Event::Eof { link, to: side });
                self.in_flight += 1;
            }
        }
    }

    /// `by` closes its end: it stops reading and writing; unless the link
    /// was cut, the other end gets end-of-file after what is in flight.
    pub(crate) fn close(&mut self, now: Duration, link: LinkId, by: Side, queue: &mut Queue) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.reading[by.index()] = false;
        l.sending[by.index()] = false;
        if by == Side::Server && l.server_closed_at.is_none() {
            l.server_closed_at = Some(now);
        }
        let other = by.other();
        if l.cut_at.is_none() && !l.eof_scheduled[other.index()] && l.reading[other.index()] {
            let at =
                (now + self.rng.duration(&self.config.latency)).max(l.last_arrival[other.index()]);
            l.last_arrival[other.index()] = at;
            l.eof_scheduled[other.index()] = true;
            queue.push(at, Event::Eof { link, to: other });
            self.in_flight += 1;
        }
    }

    /// A delivery arrives: whether the receiving end still reads it.
    pub(crate) fn arrive(&mut self, now: Duration, link: LinkId, to: Side, bytes: &[u8]) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(l) = self.links.get_mut(&link) else {
            return false;
        };
        if !l.reading[to.index()] {
            return false;
        }
        if let Some(received) = &mut l.received {
            received[to.index()].extend_from_slice(bytes);
        }
        self.digest.event(now, link, to, 0);
        self.digest.bytes(bytes);
        true
    }

    /// An end-of-file arrives: whether the receiving end still reads.
    pub(crate) fn eof_arrives(&mut self, now: Duration, link: LinkId, to: Side) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(l) = self.links.get_mut(&link) else {
            return false;
        };
        if !l.reading[to.index()] {
            return false;
        }
        self.digest.event(now, link, to, 1);
        true
    }

    /// When the session on `link` was lost for the server's purposes: when
    /// the link was cut or the server closed it.
    pub(crate) fn lost_at(&self, link: LinkId) -> Option<Duration> {
        let l = self.links.get(&link)?;
        match (l.cut_at, l.server_closed_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The client that opened `link`.
    pub(crate) fn client_of(&self, link: LinkId) -> Option<usize> {
        self.links.get(&link).map(|l| l.client)
    }

    /// Whether the link was cut.
    pub(crate) fn was_cut(&self, link: LinkId) -> bool {
        self.links.get(&link).is_some_and(|l| l.cut_at.is_some())
    }

    /// Bytes or an end-of-file are still on their way somewhere.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight > 0
    }

    pub(crate) fn links_opened(&self) -> u64 {
        self.next
    }

    pub(crate) fn cuts(&self) -> u64 {
        self.cuts
    }

    pub(crate) fn digest(&self) -> u64 {
        self.digest.0
    }

    pub(crate) fn transcripts(&mut self) -> Vec<Transcript> {
        let mut out = Vec::new();
        for (id, l) in &mut self.links {
            if let Some([to_client, to_server]) = l.received.take() {
                out.push(Transcript {
                    link: *id,
                    client: l.client,
                    connection: l.connection,
                    to_server,
                    to_client,
                    cut: l.cut,
                    cut_at: l.cut_at,
                });
            }
        }
        out
    }
}

/// Seeded chunk sizes for a write of `len` bytes: whole, split at two or
/// three seeded points (anywhere), in small pieces, or byte by byte.
fn chunk_sizes(rng: &mut SimRng, len: usize, chunking: bool) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    if !chunking || len == 1 {
        return vec![len];
    }
    let len64 = len as u64;
    let max_piece = match rng.below(40) {
        0..=17 => return vec![len],
        18..=35 => {
            let mut cuts: Vec<u64> = (0..rng.between(1..=3))
                .map(|_| rng.between(1..=len64 - 1))
                .collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut sizes = Vec::with_capacity(cuts.len() + 1);
            let mut start = 0;
            for cut in cuts.into_iter().chain([len64]) {
                sizes.push((cut - start) as usize);
                start = cut;
            }
            return sizes;
        }
        36..=38 => 32,
        _ if len <= 64 => 1,
        _ => 32,
    };
    let mut sizes = Vec::new();
    let mut left = len64;
    while left > 0 {
        let piece = rng.between(1..=max_piece.min(left));
        sizes.push(piece as usize);
        left -= piece;
    }
    sizes
}

/// FNV-1a over everything delivered: two runs of a seed must agree on it.
#[derive(Debug)]
struct Digest(u64);

impl Digest {
    fn new() -> Self {
        Digest(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn event(&mut self, now: Duration, link: LinkId, to: Side, kind: u8) {
        self.bytes(&now.as_micros().to_le_bytes());
        self.bytes(&link.0.to_le_bytes());
        self.bytes(&[to.index() as u8, kind]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &mut Queue, net: &mut Network) -> (Vec<u8>, Vec<u8>, Vec<Side>) {
        let (mut to_client, mut to_server, mut eofs) = (Vec::new(), Vec::new(), Vec::new());
        let mut last = Duration::ZERO;
        while let Some((at, event)) = queue.pop() {
            assert!(at >= last);
            last = at;
            match event {
                Event::Deliver { link, to, bytes } if net.arrive(at, link, to, &bytes) => {
                    match to {
                        Side::Client => to_client.extend_from_slice(&bytes),
                        Side::Server => to_server.extend_from_slice(&bytes),
                    }
                }
                Event::Eof { link, to } => {
                    assert!(net.eof_arrives(at, link, to));
                    eofs.push(to);
                }
                _ => {}
            }
        }
        (to_client, to_server, eofs)
    }

    #[test]
    fn chunk_sizes_add_up() {
        let mut rng = SimRng::new(3);
        let mut pieces = 0;
        for len in (0..300).chain([1000, 4096]) {
            for _ in 0..20 {
                let sizes = chunk_sizes(&mut rng, len, true);
                assert_eq!(sizes.iter().sum::<usize>(), len);
                assert!(sizes.iter().all(|&s| s > 0));
                pieces += sizes.len();
            }
            assert_eq!(
                chunk_sizes(&mut rng, len, false).len(),
                usize::from(len > 0)
            );
        }
        assert!(pieces > 302 * 20 * 2, "{pieces}");
    }

    #[test]
    fn bytes_arrive_in_order_however_chunked() {
        for seed in 0..200 {
            let mut net = Network::new(NetworkConfig::default(), SimRng::new(seed), false);
            let mut queue = Queue::default();
            let link = net.open(Duration::ZERO, 0, 0, None, &mut queue);
            let data: Vec<u8> = "héllo <wörld a='ü'/> ".repeat(40).into_bytes();
            for (i, part) in data.chunks(97).enumerate() {
                let now = Duration::from_millis(i as u64);
                net.send(
                    now,
                    link,
                    Side::Client,
                    &Bytes::copy_from_slice(part),
                    &mut queue,
                );
            }
            assert!(net.busy());
            let (_, to_server, eofs) = drain(&mut queue, &mut net);
            assert_eq!(to_server, data);
            assert!(eofs.is_empty());
            assert!(!net.busy());
        }
    }

    #[test]
    fn a_cut_keeps_exactly_the_bytes_before_the_offset() {
        for offset in [0u64, 1, 5, 99, 100, 150] {
            let mut net = Network::new(NetworkConfig::default(), SimRng::new(offset), false);
            let mut queue = Queue::default();
            let cut = Cut {
                from: Side::Client,
                offset,
                client_eof_after: Duration::from_secs(1),
                server_eof_after: None,
            };
            let link = net.open(Duration::ZERO, 0, 0, Some(cut), &mut queue);
            let data: Vec<u8> = (0..=255u8).cycle().take(120).collect();
            net.send(
                Duration::ZERO,
                link,
                Side::Server,
                &Bytes::from_static(b"hi"),
                &mut queue,
            );
            net.send(
                Duration::ZERO,
                link,
                Side::Client,
                &Bytes::copy_from_slice(&data[..100]),
                &mut queue,
            );
            net.send(
                Duration::from_secs(1),
                link,
                Side::Client,
                &Bytes::copy_from_slice(&data[100..]),
                &mut queue,
            );
            net.send(
                Duration::from_secs(2),
                link,
                Side::Server,
                &Bytes::from_static(b"lost?"),
                &mut queue,
            );
            let (to_client, to_server, eofs) = drain(&mut queue, &mut net);
            let kept = (offset as usize).min(data.len());
            assert_eq!(to_server, &data[..kept]);
            assert_eq!(net.was_cut(link), offset < 120);
            if offset < 120 {
                assert_eq!(to_client, b"hi");
                assert_eq!(eofs, vec![Side::Client]);
            } else {
                assert_eq!(to_client, b"hilost?");
                assert!(eofs.is_empty());
            }
        }
    }

    #[test]
    fn close_sends_eof_after_the_data_and_stops_reading() {
        let mut net = Network::new(NetworkConfig::default(), SimRng::new(1), false);
        let mut queue = Queue::default();
        let link = net.open(Duration::ZERO, 0, 0, None, &mut queue);
        net.send(
            Duration::ZERO,
            link,
            Side::Server,
            &Bytes::from_static(b"bye"),
            &mut queue,
        );
        net.close(Duration::ZERO, link, Side::Server, &mut queue);
        net.send(
            Duration::ZERO,
            link,
            Side::Client,
            &Bytes::from_static(b"late"),
            &mut queue,
        );
        let (to_client, to_server, eofs) = drain(&mut queue, &mut net);
        assert_eq!(to_client, b"bye");
        assert!(to_server.is_empty());
        assert_eq!(eofs, vec![Side::Client]);
        assert_eq!(net.lost_at(link), Some(Duration::ZERO));
    }
}
