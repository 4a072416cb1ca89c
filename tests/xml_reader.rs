//! The stream reader: framing, namespaces, chunking, restarts.

mod common;

use common::*;
use minidom::Element;
use proptest::prelude::*;
use xmpp_sansio::xml::{Frame, ReaderLimits, StreamReader, StreamVersion};

/// A realistic client transcript (after the header): stanzas of each kind,
/// non-ASCII text, escapes, CDATA, a prefixed stanza, keepalives.
const TRANSCRIPT: &str = concat!(
    "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>\n",
    "<presence><show>away</show><status>Gone fishing — 🎣 &amp; back soon</status>",
    "<priority>5</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' ",
    "node='https://example.org' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>  ",
    "<message to='romeo@example.net' type='chat' id='m&lt;1' xml:lang='fr'>",
    "<body>Ça va ? &lt;tag&gt; &#x1F600; <![CDATA[<not a tag>]]></body>",
    "<active xmlns='http://jabber.org/protocol/chatstates'/>",
    "<request xmlns='urn:xmpp:receipts'/></message>\r\n\t ",
    "<c:message xmlns:c='jabber:client' to='a@b'><c:body>prefixed</c:body></c:message>",
    "<message xmlns='jabber:client' to='a@b'><body>redeclared</body></message>",
    "<iq type='result' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'>",
    "<identity category='server' type='im' name='Ex &apos;Server&apos;'/>",
    "<feature var='urn:xmpp:ping'/></query></iq>",
    " </stream:stream>",
);

fn transcript() -> Vec<u8> {
    format!("{CLIENT_HEADER}{TRANSCRIPT}").into_bytes()
}

#[test]
fn reads_header_stanzas_keepalives_and_close() {
    let (frames, err) = read_all(&transcript());
    assert_eq!(err, None);
    let Frame::StreamOpen(h) = &frames[0] else {
        panic!("{frames:?}")
    };
    assert_eq!(h.to.as_deref(), Some("example.org"));
    assert_eq!(h.version, Some(StreamVersion::V1_0));
    assert_eq!(h.lang.as_deref(), Some("en"));
    assert_eq!(h.content_namespace.as_deref(), Some("jabber:client"));
    assert_eq!(h.stream_prefix.as_deref(), Some("stream"));
    assert_eq!(h.id, None);
    let kinds: Vec<String> = frames[1..]
        .iter()
        .map(|f| match f {
            Frame::Element(e) => format!("{}:{}", e.ns(), e.name()),
            Frame::Whitespace => "ws".into(),
            Frame::StreamClose => "close".into(),
            Frame::StreamOpen(_) => "open".into(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "jabber:client:iq",
            "ws",
            "jabber:client:presence",
            "ws",
            "jabber:client:message",
            "ws",
            "jabber:client:message",
            "jabber:client:message",
            "jabber:client:iq",
            "ws",
            "close"
        ]
    );
    let Frame::Element(msg) = &frames[5] else {
        panic!()
    };
    assert_eq!(msg.attr("id"), Some("m<1"));
    assert_eq!(
        msg.get_child("body", "jabber:client").unwrap().text(),
        "Ça va ? <tag> 😀 <not a tag>"
    );
    assert_eq!(
        msg.attr_ns("http://www.w3.org/XML/1998/namespace", "lang"),
        Some("fr")
    );
    let Frame::Element(presence) = &frames[3] else {
        panic!()
    };
    assert_eq!(
        presence
            .get_child("status", "jabber:client")
            .unwrap()
            .text(),
        "Gone fishing — 🎣 & back soon"
    );
}

#[test]
fn prefixed_unprefixed_and_redeclared_stanzas_are_equal() {
    let (frames, err) = read_all(&transcript());
    assert_eq!(err, None);
    let Frame::Element(a) = &frames[7] else {
        panic!()
    };
    let Frame::Element(b) = &frames[8] else {
        panic!()
    };
    let expected_a: Element =
        "<message xmlns='jabber:client' to='a@b'><body>prefixed</body></message>"
            .parse()
            .unwrap();
    assert_eq!(a, &expected_a);
    assert_eq!(
        b.get_child("body", "jabber:client").unwrap().text(),
        "redeclared"
    );
}

#[test]
fn any_prefix_for_the_stream_namespace() {
    let input = b"<x:stream xmlns:x='http://etherx.jabber.org/streams' xmlns='jabber:server' \
        xmlns:db='jabber:server:dialback' from='a.example' to='b.example' version='1.0'>\
        <x:features><db:result to='b.example'>key</db:result></x:features></x:stream>";
    let (frames, err) = read_all(input);
    assert_eq!(err, None);
    let Frame::StreamOpen(h) = &frames[0] else {
        panic!()
    };
    assert_eq!(h.stream_prefix.as_deref(), Some("x"));
    assert_eq!(h.content_namespace.as_deref(), Some("jabber:server"));
    assert_eq!(
        h.namespaces,
        vec![("db".to_owned(), "jabber:server:dialback".to_owned())]
    );
    let Frame::Element(features) = &frames[1] else {
        panic!()
    };
    assert!(features.is("features", "http://etherx.jabber.org/streams"));
    assert!(features.has_child("result", "jabber:server:dialback"));
    assert_eq!(frames[2], Frame::StreamClose);
}

/// Between first-level elements with nothing buffered the reader lets its
/// parser go and rebuilds it when bytes arrive: end tags are still checked
/// against the root as written, whatever its prefix.
#[test]
fn idle_between_stanzas_then_close_or_wrong_end_tag() {
    for (root, close, ok) in [
        ("stream", "</stream:stream>", true),
        ("x", "</x:stream>", true),
        ("x", "</stream:stream>", false),
        ("stream", "</message>", false),
    ] {
        let mut reader = StreamReader::new(ReaderLimits::default());
        reader.feed(
            format!(
                "<{root}:stream xmlns:{root}='http://etherx.jabber.org/streams' \
                 xmlns='jabber:client' version='1.0'>"
            )
            .as_bytes(),
        );
        assert!(matches!(
            reader.next_frame(),
            Ok(Some(Frame::StreamOpen(_)))
        ));
        assert_eq!(reader.next_frame(), Ok(None));
        reader.feed(b"<message><body>hi</body></message>");
        assert!(matches!(reader.next_frame(), Ok(Some(Frame::Element(_)))));
        assert_eq!(reader.next_frame(), Ok(None));
        reader.feed(close.as_bytes());
        let frame = reader.next_frame();
        if ok {
            assert_eq!(frame, Ok(Some(Frame::StreamClose)), "{root} {close}");
        } else {
            assert!(frame.is_err(), "{root} {close}: {frame:?}");
        }
    }
}

#[test]
fn stream_namespace_as_default_namespace() {
    let input = b"<stream xmlns='http://etherx.jabber.org/streams' version='1.0'>\
        <message xmlns='jabber:client'/>";
    let (frames, err) = read_all(input);
    assert_eq!(err, None);
    let Frame::StreamOpen(h) = &frames[0] else {
        panic!()
    };
    assert_eq!(h.stream_prefix, None);
    assert_eq!(
        h.content_namespace.as_deref(),
        Some("http://etherx.jabber.org/streams")
    );
    assert_eq!(frames.len(), 2);
}

#[test]
fn header_without_version_and_with_id() {
    let (frames, err) = read_all(
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' \
          from='example.org' id='abc'>",
    );
    assert_eq!(err, None);
    let Frame::StreamOpen(h) = &frames[0] else {
        panic!()
    };
    assert_eq!(h.version, None);
    assert_eq!(h.from.as_deref(), Some("example.org"));
    assert_eq!(h.id.as_deref(), Some("abc"));
}

#[test]
fn utf8_byte_order_mark_is_ignored() {
    let mut input = vec![0xEF, 0xBB, 0xBF];
    input.extend_from_slice(CLIENT_HEADER.as_bytes());
    // Split inside the BOM as well.
    for cut in 0..5 {
        let (frames, err) = read_chunks(ReaderLimits::default(), split_at(&input, &[cut]));
        assert_eq!(err, None, "cut {cut}");
        assert!(matches!(frames[..], [Frame::StreamOpen(_)]), "cut {cut}");
    }
}

#[test]
fn one_byte_at_a_time_equals_one_chunk() {
    let input = transcript();
    let whole = read_all(&input);
    let bytes = read_chunks(ReaderLimits::default(), input.chunks(1));
    assert_eq!(whole, bytes);
    assert!(whole.1.is_none());
}

#[test]
fn every_single_split_point_gives_the_same_frames() {
    let input = transcript();
    let whole = read_all(&input);
    for cut in 0..=input.len() {
        let split = read_chunks(ReaderLimits::default(), split_at(&input, &[cut]));
        assert_eq!(whole, split, "split at {cut}");
    }
}

#[test]
fn lone_keepalive_is_reported_at_once() {
    let mut reader = StreamReader::new(ReaderLimits::default());
    reader.feed(CLIENT_HEADER.as_bytes());
    assert!(matches!(
        reader.next_frame(),
        Ok(Some(Frame::StreamOpen(_)))
    ));
    assert_eq!(reader.next_frame(), Ok(None));
    reader.feed(b" ");
    assert_eq!(reader.next_frame(), Ok(Some(Frame::Whitespace)));
    reader.feed(b"  \n");
    assert_eq!(reader.next_frame(), Ok(None), "one frame per run");
    reader.feed(b"<presence/> ");
    assert!(matches!(reader.next_frame(), Ok(Some(Frame::Element(_)))));
    assert_eq!(reader.next_frame(), Ok(Some(Frame::Whitespace)));
}

#[test]
fn starttls_proceed_hands_back_tls_bytes_untouched() {
    let tls = [
        0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, b'<', 0x00, 0xff,
    ];
    let mut input = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
        from='example.org' id='s1' version='1.0'><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
        .to_vec();
    let proceed_end = input.len();
    input.extend_from_slice(&tls);
    for cut in 0..=input.len() {
        let mut reader = StreamReader::new(ReaderLimits::default());
        let mut got_proceed = false;
        let mut handed_back = Vec::new();
        for chunk in split_at(&input, &[cut]) {
            if got_proceed {
                // The host routes later bytes to TLS directly.
                handed_back.extend_from_slice(chunk);
                continue;
            }
            reader.feed(chunk);
            while let Some(frame) = reader.next_frame().unwrap() {
                if let Frame::Element(e) = frame {
                    assert_eq!(e.name(), "proceed");
                    got_proceed = true;
                    handed_back.extend_from_slice(&reader.take_unparsed());
                    break;
                }
            }
        }
        assert!(got_proceed, "cut {cut}");
        assert_eq!(handed_back, &input[proceed_end..], "cut {cut}");
        assert_eq!(reader.buffered_len(), 0);
    }
}

#[test]
fn sasl_success_and_new_header_in_one_chunk() {
    let first = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
        from='example.org' id='s2' version='1.0'>\
        <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1ybUY5cHFWOFM3c3VBb1pXamE0ZEpSa0ZzS1E9</success>";
    let second = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' from='example.org' id='s3' version='1.0'>\
        <stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";
    let input = format!("{first}{second}").into_bytes();
    for cut in 0..=input.len() {
        let mut reader = StreamReader::new(ReaderLimits::default());
        let mut frames = Vec::new();
        for chunk in split_at(&input, &[cut]) {
            reader.feed(chunk);
            while let Some(frame) = reader.next_frame().unwrap() {
                let is_success = matches!(&frame, Frame::Element(e) if e.name() == "success");
                frames.push(frame);
                if is_success {
                    reader.reset();
                }
            }
        }
        assert_eq!(frames.len(), 4, "cut {cut}: {frames:?}");
        let Frame::StreamOpen(h) = &frames[2] else {
            panic!("cut {cut}")
        };
        assert_eq!(h.id.as_deref(), Some("s3"));
        assert!(matches!(&frames[3], Frame::Element(e) if e.name() == "features"));
    }
}

#[test]
fn restart_forgets_namespaces_of_the_old_stream() {
    let mut reader = StreamReader::new(ReaderLimits::default());
    reader.feed(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
        xmlns:x='urn:x'><x:a/>",
    );
    assert!(matches!(
        reader.next_frame(),
        Ok(Some(Frame::StreamOpen(_)))
    ));
    assert!(matches!(reader.next_frame(), Ok(Some(Frame::Element(_)))));
    reader.reset();
    reader.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><x:a/>");
    assert!(matches!(
        reader.next_frame(),
        Ok(Some(Frame::StreamOpen(_)))
    ));
    let err = reader.next_frame().unwrap_err();
    assert_eq!(err.condition().name(), "bad-namespace-prefix");
}

#[test]
fn nothing_is_read_after_the_close() {
    let (frames, err) =
        read_all(format!("{CLIENT_HEADER}</stream:stream><message/>garbage").as_bytes());
    assert_eq!(err, None);
    assert_eq!(frames.last(), Some(&Frame::StreamClose));
    assert_eq!(frames.len(), 2);
}

#[test]
fn in_element_tracks_partial_stanzas() {
    let mut reader = StreamReader::new(ReaderLimits::default());
    reader.feed(CLIENT_HEADER.as_bytes());
    reader.next_frame().unwrap();
    assert!(!reader.in_element());
    reader.feed(b"<message><bo");
    assert_eq!(reader.next_frame(), Ok(None));
    assert!(reader.in_element());
    reader.feed(b"dy/></message>");
    assert!(matches!(reader.next_frame(), Ok(Some(Frame::Element(_)))));
    assert!(!reader.in_element());
    assert_eq!(
        reader.last_element_bytes(),
        "<message><body/></message>".len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The frames do not depend on how the input is split.
    #[test]
    fn chunking_does_not_change_frames(cuts in proptest::collection::vec(0usize..2000, 0..40)) {
        let input = transcript();
        let mut cuts = cuts;
        cuts.sort_unstable();
        cuts.dedup();
        let whole = read_all(&input);
        let split = read_chunks(ReaderLimits::default(), split_at(&input, &cuts));
        prop_assert_eq!(whole, split);
    }

    /// Several streams' worth of stanzas glued together and split anywhere.
    #[test]
    fn glued_and_split_stanzas(count in 1usize..30, cuts in proptest::collection::vec(0usize..4000, 0..30)) {
        let mut input = CLIENT_HEADER.as_bytes().to_vec();
        for i in 0..count {
            input.extend_from_slice(format!("<message id='{i}'><body>né {i} &amp; 😀</body></message>").as_bytes());
        }
        let mut cuts = cuts;
        cuts.sort_unstable();
        cuts.dedup();
        let (frames, err) = read_chunks(ReaderLimits::default(), split_at(&input, &cuts));
        prop_assert_eq!(err, None);
        prop_assert_eq!(frames.len(), count + 1);
        for (i, f) in frames[1..].iter().enumerate() {
            let Frame::Element(e) = f else { panic!() };
            let id = i.to_string();
            prop_assert_eq!(e.attr("id"), Some(id.as_str()));
        }
    }

    /// Arbitrary bytes after a valid header: never a panic, and the same
    /// outcome whatever the chunking (frames before the error may only
    /// differ in whitespace frames).
    #[test]
    fn arbitrary_bytes_same_outcome(tail in proptest::collection::vec(any::<u8>(), 0..300),
                                    cuts in proptest::collection::vec(0usize..600, 0..10)) {
        let mut input = CLIENT_HEADER.as_bytes().to_vec();
        input.extend_from_slice(&tail);
        let mut cuts = cuts;
        cuts.sort_unstable();
        cuts.dedup();
        let (a, ea) = read_all(&input);
        let (b, eb) = read_chunks(ReaderLimits::default(), split_at(&input, &cuts));
        let strip = |v: Vec<Frame>| v.into_iter().filter(|f| *f != Frame::Whitespace).collect::<Vec<_>>();
        prop_assert_eq!(ea.map(|e| e.condition()), eb.map(|e| e.condition()));
        prop_assert_eq!(strip(a), strip(b));
    }
}
