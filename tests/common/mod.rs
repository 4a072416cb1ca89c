//! Helpers shared by the integration tests.
#![allow(dead_code)]

use xmpp_sansio::xml::{Frame, ReaderLimits, StreamReader, XmlError};

/// A c2s stream header as clients send it.
pub const CLIENT_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0' xml:lang='en'>";

/// Feeds `chunks` one after another, draining frames after each; stops at
/// the first error. Returns the frames and the error, if any.
pub fn read_chunks<'a>(
    limits: ReaderLimits,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Frame>, Option<XmlError>) {
    let mut reader = StreamReader::new(limits);
    let mut frames = Vec::new();
    for chunk in chunks {
        reader.feed(chunk);
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

/// Reads `input` in one piece.
pub fn read_all(input: &[u8]) -> (Vec<Frame>, Option<XmlError>) {
    read_chunks(ReaderLimits::default(), [input])
}

/// Splits `input` at the given (sorted, deduplicated) offsets.
pub fn split_at<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts {
        let c = c.min(input.len());
        if c > start {
            out.push(&input[start..c]);
            start = c;
        }
    }
    out.push(&input[start..]);
    out
}
