//! XML stream reader throughput: our `StreamReader` against its peers, side by
//! side in one criterion group per corpus profile.
//!
//! Every line parses the same deterministic c2s byte stream (see
//! `benches/corpus/mod.rs`), fed in 4 KiB chunks like socket reads, and must
//! report exactly `corpus.stanzas` top-level elements — a parser that skips
//! work fails the run instead of looking fast.
//!
//! Timed with the thread's CPU time unless `BENCH_CLOCK=wall`; after the
//! criterion groups a paired, interleaved pass prints the ratios that matter
//! (ours vs tokio-xmpp, ours vs rxml+minidom) as a markdown table.
//!
//! Run: `cargo bench --bench parse` (short: append
//! `-- --warm-up-time 1 --measurement-time 3`). See `benches/README.md`.

mod clock;
mod corpus;

use std::hint::black_box;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput};
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
/// every top-level element as `T`: `accept_stream` (reads the stream
/// header), `send_header` + `send_features` (serialise our header and an
/// empty `<stream:features/>` into the discarding writer: a few µs, under
/// 0.05 % of an iteration, kept in so every clock can time the whole call),
/// then poll the `XmlStream` until the footer. Returns the element count.
async fn tokio_xmpp_drain<T>(corpus: &Corpus) -> usize
where
    T: xso::FromXml + std::fmt::Debug,
{
    use futures::StreamExt as _;
    use tokio_xmpp::parsers::stream_features::StreamFeatures;
    use tokio_xmpp::xmlstream::{ReadError, StreamHeader, Timeouts, XmlStream, accept_stream};

    let accepted = accept_stream(
        ChunkedIo::new(&corpus.bytes),
        "jabber:client",
        Timeouts::default(),
    )
    .await
    .expect("tokio-xmpp: stream header");
    let pending = accepted
        .send_header(StreamHeader::default())
        .await
        .expect("tokio-xmpp: send header");
    let mut stream: XmlStream<_, T> = pending
        .send_features(&StreamFeatures::default())
        .await
        .expect("tokio-xmpp: send features");

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
    stanzas
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

/// One benchmarked line: its id and a call that parses the whole corpus and
/// returns the number of top-level elements it produced.
type Line<'a> = (&'static str, Box<dyn Fn() -> usize + 'a>);

type Typed = tokio_xmpp::xmlstream::XmppStreamElement;

fn lines<'a>(corpus: &'a Corpus, rt: &'a tokio::runtime::Runtime) -> Vec<Line<'a>> {
    vec![
        ("ours", Box::new(move || ours(black_box(corpus)))),
        (
            "rxml+minidom",
            Box::new(move || rxml_minidom(black_box(corpus))),
        ),
        (
            "tokio-xmpp/Element",
            Box::new(move || rt.block_on(tokio_xmpp_drain::<minidom::Element>(black_box(corpus)))),
        ),
        (
            "tokio-xmpp/XmppStreamElement",
            Box::new(move || rt.block_on(tokio_xmpp_drain::<Typed>(black_box(corpus)))),
        ),
        (
            "rxml-raw-events",
            Box::new(move || rxml_raw_events(black_box(corpus))),
        ),
        (
            "quick-xml-events",
            Box::new(move || quick_xml_events(black_box(corpus))),
        ),
    ]
}

/// Which clock the run uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Clock {
    ThreadCpu,
    Wall,
}

impl Clock {
    fn now(self) -> Duration {
        match self {
            Clock::ThreadCpu => clock::thread_cpu_now(),
            Clock::Wall => WALL_EPOCH.get_or_init(Instant::now).elapsed(),
        }
    }
}

static WALL_EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Result of the paired run for one profile.
struct Paired {
    profile: Profile,
    bytes: usize,
    rounds: usize,
    /// Per line: median seconds per pass.
    median: Vec<(&'static str, f64)>,
    /// Per round: t(tokio-xmpp/Element) / t(ours), i.e. how many times faster.
    vs_tokio: Vec<f64>,
    /// Per round: t(rxml+minidom) / t(ours).
    vs_minidom: Vec<f64>,
}

/// Interleaved, paired timing: every round runs every line once (in rotated
/// order) and ratios are taken within a round. Criterion measures one line
/// after another, so on a shared machine a neighbour's compile can land on
/// one line and not the next; within a round the lines run back to back, so
/// load changes slower than a round cancel out of the ratios.
fn paired(profile: Profile, corpus: &Corpus, lines: &[Line<'_>], clock: Clock) -> Paired {
    let rounds = match profile {
        Profile::Typical => 41,
        Profile::Large => 21,
    };
    for (_, f) in lines {
        black_box(f()); // warm-up
    }
    let mut times = vec![Vec::with_capacity(rounds); lines.len()];
    for r in 0..rounds {
        for k in 0..lines.len() {
            let i = (r + k) % lines.len();
            let t0 = clock.now();
            let got = (lines[i].1)();
            let dt = clock.now().saturating_sub(t0);
            assert_eq!(got, corpus.stanzas, "{}", lines[i].0);
            times[i].push(dt.as_secs_f64());
        }
    }
    let idx = |name: &str| lines.iter().position(|(n, _)| *n == name).unwrap();
    let (o, t, m) = (idx("ours"), idx("tokio-xmpp/Element"), idx("rxml+minidom"));
    let ratio =
        |peer: usize| -> Vec<f64> { (0..rounds).map(|r| times[peer][r] / times[o][r]).collect() };
    Paired {
        profile,
        bytes: corpus.bytes.len(),
        rounds,
        vs_tokio: ratio(t),
        vs_minidom: ratio(m),
        median: lines
            .iter()
            .zip(&times)
            .map(|((name, _), ts)| (*name, quantile(ts, 0.5)))
            .collect(),
    }
}

fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

fn print_paired(results: &[Paired], clock: Clock) {
    let clock = match clock {
        Clock::ThreadCpu => "thread CPU time",
        Clock::Wall => "wall time",
    };
    println!("\n## parse: paired interleaved summary ({clock}, median of rounds)\n");
    let names: Vec<&str> = results[0].median.iter().map(|(n, _)| *n).collect();
    print!("| line |");
    for p in results {
        print!(" {} (MiB/s) |", p.profile.name());
    }
    print!("\n|---|");
    for _ in results {
        print!("---:|");
    }
    println!();
    for (i, name) in names.iter().enumerate() {
        print!("| {name} |");
        for p in results {
            let mib_s = p.bytes as f64 / p.median[i].1 / (1024.0 * 1024.0);
            print!(" {mib_s:.1} |");
        }
        println!();
    }
    println!("\n| profile | rounds | ours ÷ tokio-xmpp/Element | ours ÷ rxml+minidom |");
    println!("|---|---:|---:|---:|");
    let fmt = |v: &[f64]| {
        format!(
            "{:.2}× [{:.2}–{:.2}]",
            quantile(v, 0.5),
            quantile(v, 0.25),
            quantile(v, 0.75)
        )
    };
    for p in results {
        println!(
            "| {} | {} | {} | {} |",
            p.profile.name(),
            p.rounds,
            fmt(&p.vs_tokio),
            fmt(&p.vs_minidom)
        );
    }
    println!(
        "\n(speed ratios: per-round time of the peer ÷ time of ours; median [interquartile range])"
    );
}

fn bench_profile<M: Measurement>(
    c: &mut Criterion<M>,
    profile: Profile,
    clock: Clock,
) -> Option<Paired> {
    let corpus = corpus::generate(profile);
    eprintln!(
        "corpus {}: {} bytes, {} stanzas, mean {:.0} B/stanza, {} keepalives",
        profile.name(),
        corpus.bytes.len(),
        corpus.stanzas,
        corpus.mean_stanza_len(),
        corpus.keepalives,
    );

    // Current-thread runtime with the timer enabled (tokio-xmpp arms a read
    // timeout `Sleep` on every stream). Built once, outside all timing;
    // `block_on` polls on this thread, so the thread CPU clock sees it all.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    let lines = lines(&corpus, &rt);
    let n = corpus.stanzas;

    // Sanity-check every parser once before timing anything.
    for (name, f) in &lines {
        assert_eq!(f(), n, "{name}: wrong number of top-level elements");
    }

    let mut g = c.benchmark_group(format!("parse/{}", profile.name()));
    g.throughput(Throughput::Bytes(corpus.bytes.len() as u64));
    if profile == Profile::Large {
        // 15-150 ms per iteration: 100 samples would take minutes per line.
        g.sample_size(20);
    }
    for (name, f) in &lines {
        g.bench_function(*name, |b| b.iter(|| assert_eq!(f(), n)));
    }
    g.finish();

    paired_enabled().then(|| paired(profile, &corpus, &lines, clock))
}

/// The paired pass runs after the criterion groups unless criterion is only
/// listing or smoke-testing (`--list`, `--test`) or `BENCH_PAIRED=0`.
fn paired_enabled() -> bool {
    let listing = std::env::args().any(|a| a == "--list" || a == "--test");
    !listing && std::env::var("BENCH_PAIRED").as_deref() != Ok("0")
}

fn run<M: Measurement>(mut c: Criterion<M>, clock: Clock) {
    let results: Vec<Paired> = [Profile::Typical, Profile::Large]
        .into_iter()
        .filter_map(|p| bench_profile(&mut c, p, clock))
        .collect();
    c.final_summary();
    if !results.is_empty() {
        print_paired(&results, clock);
    }
}

/// Clock: the thread's CPU time by default (see `benches/clock/mod.rs`: the
/// machines are 2 shared cores), criterion's wall clock with
/// `BENCH_CLOCK=wall`.
fn main() {
    match std::env::var("BENCH_CLOCK").as_deref() {
        Ok("wall") => {
            eprintln!("clock: wall time");
            run(Criterion::default().configure_from_args(), Clock::Wall);
        }
        Ok("cpu") | Err(std::env::VarError::NotPresent) => {
            eprintln!("clock: thread CPU time (BENCH_CLOCK=wall for wall time)");
            run(
                Criterion::default()
                    .with_measurement(clock::ThreadCpuTime)
                    .configure_from_args(),
                Clock::ThreadCpu,
            );
        }
        Ok(other) => panic!("BENCH_CLOCK={other:?}: expected `cpu` or `wall`"),
        Err(e) => panic!("BENCH_CLOCK: {e}"),
    }
}
