//! Arbitrary bytes in arbitrary chunks into the stream reader: it must never
//! panic, never hand out an element beyond its limits, give the same outcome
//! as reading the input in one piece, and every element it yields must
//! survive a write/read round trip unchanged.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use minidom::Element;
use xmpp_sansio::xml::{Frame, ReaderLimits, StreamHeader, StreamReader, StreamWriter, XmlError};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Prefix a valid stream header so the fuzzer reaches stanza parsing.
    with_header: bool,
    small_limits: bool,
    chunk_sizes: Vec<u8>,
    data: Vec<u8>,
}

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>";

fn depth(el: &Element) -> usize {
    1 + el.children().map(depth).max().unwrap_or(0)
}

fn count(el: &Element) -> usize {
    1 + el.children().map(count).sum::<usize>()
}

fn max_attrs(el: &Element) -> usize {
    el.children().map(max_attrs).max().unwrap_or(0).max(el.attrs().len())
}

fn run<'a>(limits: ReaderLimits, chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<Frame>, Option<XmlError>) {
    let mut reader = StreamReader::new(limits);
    let mut frames = Vec::new();
    for chunk in chunks {
        reader.feed(chunk);
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    if let Frame::Element(el) = &frame {
                        assert!(reader.last_element_bytes() <= limits.max_stanza_bytes);
                        assert!(depth(el) <= limits.max_depth);
                        assert!(count(el) <= limits.max_elements);
                        assert!(max_attrs(el) <= limits.max_attributes);
                    }
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(reader.next_frame(), Err(e.clone()), "errors are sticky");
                    return (frames, Some(e));
                }
            }
        }
    }
    (frames, None)
}

fuzz_target!(|input: Input| {
    let limits = if input.small_limits {
        ReaderLimits {
            max_stanza_bytes: 512,
            max_header_bytes: 300,
            max_depth: 4,
            max_attributes: 4,
            max_elements: 16,
            max_token_bytes: 64,
        }
    } else {
        ReaderLimits::default()
    };
    let mut data = Vec::new();
    if input.with_header {
        data.extend_from_slice(HEADER);
    }
    data.extend_from_slice(&input.data);

    let mut chunks = Vec::new();
    let mut rest = &data[..];
    let mut sizes = input.chunk_sizes.iter().cycle();
    while !rest.is_empty() {
        let n = match sizes.next() {
            Some(&s) => usize::from(s).max(1).min(rest.len()),
            None => rest.len(),
        };
        chunks.push(&rest[..n]);
        rest = &rest[n..];
    }

    let (frames, err) = run(limits, chunks.into_iter());
    let (whole_frames, whole_err) = run(limits, std::iter::once(&data[..]));
    assert_eq!(err.as_ref().map(XmlError::condition), whole_err.as_ref().map(XmlError::condition));
    let strip = |v: &[Frame]| v.iter().filter(|f| **f != Frame::Whitespace).cloned().collect::<Vec<_>>();
    assert_eq!(strip(&frames), strip(&whole_frames));

    // Whatever was read can be written and read back identically.
    let mut writer = StreamWriter::default();
    let mut out = BytesMut::new();
    writer.write_header(&StreamHeader::client_to("example.org"), &mut out);
    let mut elements = Vec::new();
    for frame in &frames {
        if let Frame::Element(el) = frame {
            writer.write_element(el, &mut out).expect("a parsed element is writable");
            elements.push(el.clone());
        }
    }
    let (again, again_err) = run(ReaderLimits::default(), std::iter::once(&out[..]));
    assert_eq!(again_err, None, "{}", String::from_utf8_lossy(&out));
    let again: Vec<Element> = again
        .into_iter()
        .filter_map(|f| match f {
            Frame::Element(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(again, elements);
});
