//! XML stream reader throughput: our `StreamReader` against its peers, side by
//! side in one criterion group per corpus profile.
//!
//! Every line parses the same deterministic c2s byte stream (see
//! `benches/corpus/mod.rs`), fed in 4 KiB chunks like socket reads, and must
//! report exactly `corpus.stanzas` top-level elements — a parser that skips
//! work fails the run instead of looking fast.
//!
//! Run: `cargo bench --bench parse` (short: append
//! `-- --warm-up-time 1 --measurement-time 3`). See `benches/README.md`.

mod corpus;

use std::hint::black_box;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rxml::Parse as _;
use rxml::error::EndOrError;

use corpus::{CHUNK, Corpus, Profile};

// ---------------------------------------------------------------------------
// (1) rxml RawParser, events only: the floor.

/// Lexes and parses the stream with `rxml::RawParser`, touching every event
/// and doing nothing else. No tree, no namespace resolution. Returns the
/// number of top-level elements (depth-1 element ends).
fn rxml_raw_events(corpus: &Corpus) -> usize {
    let mut parser = rxml::RawParser::new();
    let mut depth = 0usize;
    let mut stanzas = 0usize;
    let mut events = 0usize;
    let mut on_event = |ev: rxml::RawEvent| {
        events += 1;
        match &ev {
            rxml::RawEvent::ElementHeadOpen(..) => depth += 1,
            rxml::RawEvent::ElementFoot(..) => {
                depth -= 1;
                if depth == 1 {
                    stanzas += 1;
                }
            }
            _ => {}
        }
        black_box(ev);
    };
    for chunk in corpus.chunks() {
        let mut buf = chunk;
        loop {
            match parser.parse(&mut buf, false) {
                Ok(Some(ev)) => on_event(ev),
                Ok(None) => unreachable!("eof without at_eof"),
                Err(EndOrError::NeedMoreData) => break,
                Err(EndOrError::Error(e)) => panic!("rxml: {e}"),
            }
        }
    }
    loop {
        match parser.parse(&mut &[][..], true) {
            Ok(Some(ev)) => on_event(ev),
            Ok(None) => break,
            Err(e) => panic!("rxml at eof: {e:?}"),
        }
    }
    black_box(events);
    stanzas
}

// ---------------------------------------------------------------------------
// (2) rxml RawParser + minidom TreeBuilder: one Element per stanza.

/// The way a naive XMPP library (and tokio-xmpp ≤ 4's `XmppCodec`) does it:
/// feed `RawEvent`s into `minidom::tree_builder::TreeBuilder`, whose root is
/// the `<stream:stream>` element, and pop each finished child of the root
/// (`unshift_child`) as soon as the builder is back at depth 1.
fn rxml_minidom(corpus: &Corpus) -> usize {
    let mut parser = rxml::RawParser::new();
    let mut tree = minidom::tree_builder::TreeBuilder::new();
    let mut stanzas = 0usize;
    let mut on_event = |ev: rxml::RawEvent| {
        let was_foot = matches!(ev, rxml::RawEvent::ElementFoot(_));
        tree.process_event(ev).expect("minidom tree builder");
        if was_foot && tree.depth() == 1 {
            let el = tree.unshift_child().expect("finished top-level element");
            stanzas += 1;
            black_box(el);
        }
    };
    for chunk in corpus.chunks() {
        let mut buf = chunk;
        loop {
            match parser.parse(&mut buf, false) {
                Ok(Some(ev)) => on_event(ev),
                Ok(None) => unreachable!("eof without at_eof"),
                Err(EndOrError::NeedMoreData) => break,
                Err(EndOrError::Error(e)) => panic!("rxml: {e}"),
            }
        }
    }
    loop {
        match parser.parse(&mut &[][..], true) {
            Ok(Some(ev)) => on_event(ev),
            Ok(None) => break,
            Err(e) => panic!("rxml at eof: {e:?}"),
        }
    }
    stanzas
}

// ---------------------------------------------------------------------------
// (3) tokio-xmpp 6 xmlstream: the peer.

/// In-memory transport for tokio-xmpp: reads are served as `CHUNK`-sized
/// windows aligned exactly like `corpus.chunks()` (what a `BufReader` over a
/// socket delivering 4 KiB reads would hand out); writes are discarded.
/// Never returns `Pending`, so no time is spent in the reactor.
struct ChunkedIo<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ChunkedIo<'a> {
    fn new(data: &'a [u8]) -> Self {
        ChunkedIo { data, pos: 0 }
    }

    fn window(&self) -> &'a [u8] {
        let end = ((self.pos / CHUNK + 1) * CHUNK).min(self.data.len());
        &self.data[self.pos..end]
    }
}

impl tokio::io::AsyncRead for ChunkedIo<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let w = self.window();
        let n = w.len().min(buf.remaining());
        buf.put_slice(&w[..n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncBufRead for ChunkedIo<'_> {
    fn poll_fill_buf(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Poll::Ready(Ok(self.get_mut().window()))
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.pos += amt;
    }
}

impl tokio::io::AsyncWrite for ChunkedIo<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Drive tokio-xmpp's responder-side `xmlstream` over the corpus and read
/// every top-level element as `T`. Returns (elements, time spent receiving).
///
/// Timed: `accept_stream` (parsing the stream header) and draining the
/// stream until the footer. Not timed: serialising our own stream header and
/// `<stream:features/>` (`send_header` / `send_features`), which is sending,
/// not receiving.
async fn tokio_xmpp_drain<T>(corpus: &Corpus) -> (usize, Duration)
where
    T: xso::FromXml + std::fmt::Debug,
{
    use futures::StreamExt as _;
    use tokio_xmpp::parsers::stream_features::StreamFeatures;
    use tokio_xmpp::xmlstream::{ReadError, StreamHeader, Timeouts, XmlStream, accept_stream};

    let t0 = Instant::now();
    let accepted = accept_stream(
        ChunkedIo::new(&corpus.bytes),
        "jabber:client",
        Timeouts::default(),
    )
    .await
    .expect("tokio-xmpp: stream header");
    let mut elapsed = t0.elapsed();

    let pending = accepted
        .send_header(StreamHeader::default())
        .await
        .expect("tokio-xmpp: send header");
    let mut stream: XmlStream<_, T> = pending
        .send_features(&StreamFeatures::default())
        .await
        .expect("tokio-xmpp: send features");

    let t1 = Instant::now();
    let mut stanzas = 0usize;
    loop {
        match stream.next().await {
            Some(Ok(el)) => {
                stanzas += 1;
                black_box(el);
            }
            Some(Err(ReadError::StreamFooterReceived)) => break,
            Some(Err(e)) => panic!("tokio-xmpp: {e}"),
            None => panic!("tokio-xmpp: eof before stream footer"),
        }
    }
    elapsed += t1.elapsed();
    (stanzas, elapsed)
}

// ---------------------------------------------------------------------------
// (4) quick-xml: tokenizer reference.

/// quick-xml's pull reader over a `BufReader` with a 4 KiB buffer: tokenises,
/// checks end-tag names, iterates attributes. Does not decode entities,
/// resolve namespaces or build anything — a tokenizer-speed reference, not
/// a like-for-like peer.
fn quick_xml_events(corpus: &Corpus) -> usize {
    use quick_xml::events::Event;
    let input = io::BufReader::with_capacity(CHUNK, &corpus.bytes[..]);
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::with_capacity(CHUNK);
    let mut depth = 0usize;
    let mut stanzas = 0usize;
    loop {
        buf.clear();
        match reader.read_event_into(&mut buf).expect("quick-xml") {
            Event::Start(e) => {
                depth += 1;
                for a in e.attributes() {
                    black_box(a.expect("quick-xml attribute"));
                }
            }
            Event::Empty(e) => {
                if depth == 1 {
                    stanzas += 1;
                }
                for a in e.attributes() {
                    black_box(a.expect("quick-xml attribute"));
                }
            }
            Event::End(e) => {
                depth -= 1;
                if depth == 1 {
                    stanzas += 1;
                }
                black_box(e);
            }
            Event::Eof => break,
            other => {
                black_box(other);
            }
        }
    }
    stanzas
}

// ---------------------------------------------------------------------------
// (5) Ours: xmpp_sansio::xml::StreamReader.

/// Our sans-IO reader: `feed` each 4 KiB chunk, then drain `next_frame`
/// until it wants more bytes. One `minidom::Element` per top-level element,
/// like (2) and (3).
fn ours(corpus: &Corpus) -> usize {
    use xmpp_sansio::xml::{Frame, ReaderLimits, StreamReader};

    let mut reader = StreamReader::new(ReaderLimits::default());
    let mut stanzas = 0usize;
    let mut opened = false;
    let mut closed = false;
    for chunk in corpus.chunks() {
        reader.feed(chunk);
        while let Some(frame) = reader.next_frame().expect("our reader") {
            match frame {
                Frame::StreamOpen(header) => {
                    opened = true;
                    black_box(header);
                }
                Frame::Element(el) => {
                    stanzas += 1;
                    black_box(el);
                }
                Frame::Whitespace => {}
                Frame::StreamClose => closed = true,
            }
        }
    }
    assert!(opened && closed, "stream header/footer not reported");
    stanzas
}

// ---------------------------------------------------------------------------
// Criterion wiring

fn bench_profile(c: &mut Criterion, profile: Profile) {
    let corpus = corpus::generate(profile);
    eprintln!(
        "corpus {}: {} bytes, {} stanzas, mean {:.0} B/stanza, {} keepalives",
        profile.name(),
        corpus.bytes.len(),
        corpus.stanzas,
        corpus.mean_stanza_len(),
        corpus.keepalives,
    );

    // Sanity-check every parser once before timing anything.
    assert_eq!(rxml_raw_events(&corpus), corpus.stanzas, "rxml raw");
    assert_eq!(rxml_minidom(&corpus), corpus.stanzas, "rxml+minidom");
    assert_eq!(quick_xml_events(&corpus), corpus.stanzas, "quick-xml");
    assert_eq!(ours(&corpus), corpus.stanzas, "ours");

    // Current-thread runtime with the timer enabled (tokio-xmpp arms a read
    // timeout `Sleep` on every stream). Built once, outside all timing.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    let (n, _) = rt.block_on(tokio_xmpp_drain::<minidom::Element>(&corpus));
    assert_eq!(n, corpus.stanzas, "tokio-xmpp (Element)");
    let (n, _) = rt.block_on(tokio_xmpp_drain::<tokio_xmpp::xmlstream::XmppStreamElement>(&corpus));
    assert_eq!(n, corpus.stanzas, "tokio-xmpp (XmppStreamElement)");

    let mut g = c.benchmark_group(format!("parse/{}", profile.name()));
    g.throughput(Throughput::Bytes(corpus.bytes.len() as u64));
    if profile == Profile::Large {
        // ~50-250 ms per iteration: 100 samples would take minutes per line.
        g.sample_size(20);
    }

    g.bench_function("ours", |b| {
        b.iter(|| assert_eq!(ours(black_box(&corpus)), corpus.stanzas))
    });
    g.bench_function("rxml+minidom", |b| {
        b.iter(|| assert_eq!(rxml_minidom(black_box(&corpus)), corpus.stanzas))
    });
    g.bench_function("tokio-xmpp/Element", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (n, t) = rt.block_on(tokio_xmpp_drain::<minidom::Element>(black_box(&corpus)));
                assert_eq!(n, corpus.stanzas);
                total += t;
            }
            total
        })
    });
    g.bench_function("tokio-xmpp/XmppStreamElement", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (n, t) = rt.block_on(tokio_xmpp_drain::<
                    tokio_xmpp::xmlstream::XmppStreamElement,
                >(black_box(&corpus)));
                assert_eq!(n, corpus.stanzas);
                total += t;
            }
            total
        })
    });
    g.bench_function("rxml-raw-events", |b| {
        b.iter(|| assert_eq!(rxml_raw_events(black_box(&corpus)), corpus.stanzas))
    });
    g.bench_function("quick-xml-events", |b| {
        b.iter(|| assert_eq!(quick_xml_events(black_box(&corpus)), corpus.stanzas))
    });
    g.finish();
}

fn parse_typical(c: &mut Criterion) {
    bench_profile(c, Profile::Typical);
}

fn parse_large(c: &mut Criterion) {
    bench_profile(c, Profile::Large);
}

criterion_group!(benches, parse_typical, parse_large);
criterion_main!(benches);
