//! Malformed and hostile input: every case gets its RFC 6120 condition,
//! never a panic, and the reader stays failed.

mod common;

use common::*;
use xmpp_sansio::error::StreamErrorCondition as C;
use xmpp_sansio::xml::{Frame, Limit, ReaderLimits, StreamReader, XmlError};

const STREAM_NS: &str = "xmlns:stream='http://etherx.jabber.org/streams'";

/// (name, input after nothing, expected condition)
fn catalogue() -> Vec<(&'static str, Vec<u8>, C)> {
    let after_header = |tail: &str| format!("{CLIENT_HEADER}{tail}").into_bytes();
    vec![
        // Restricted XML (RFC 6120 §11.1)
        ("comment", after_header("<!-- hi -->"), C::RestrictedXml),
        ("comment inside stanza", after_header("<message><!-- x --></message>"), C::RestrictedXml),
        ("processing instruction", after_header("<?php echo 1; ?>"), C::RestrictedXml),
        ("pi inside stanza", after_header("<message><?x y?></message>"), C::RestrictedXml),
        ("doctype before root", b"<!DOCTYPE stream [<!ENTITY a 'b'>]><stream:stream/>".to_vec(), C::RestrictedXml),
        ("billion laughs", b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]><stream:stream/>".to_vec(), C::RestrictedXml),
        ("doctype inside stream", after_header("<!DOCTYPE x>"), C::RestrictedXml),
        ("undeclared entity", after_header("<message><body>&lol;</body></message>"), C::RestrictedXml),
        ("external entity ref", after_header("<message><body>&xxe;</body></message>"), C::RestrictedXml),
        ("entity in attribute", after_header("<message to='&foo;'/>"), C::RestrictedXml),
        // Encoding (RFC 6120 §11.6)
        ("latin1 declaration", format!("<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream {STREAM_NS}>").into_bytes(), C::UnsupportedEncoding),
        ("utf-16 declaration", format!("<?xml version='1.0' encoding='UTF-16'?><stream:stream {STREAM_NS}>").into_bytes(), C::UnsupportedEncoding),
        ("utf-16be bom", vec![0xFE, 0xFF, 0x00, b'<'], C::UnsupportedEncoding),
        ("utf-16le bom", vec![0xFF, 0xFE, b'<', 0x00], C::UnsupportedEncoding),
        ("utf-16le without bom", vec![b'<', 0x00, b's', 0x00], C::UnsupportedEncoding),
        ("utf-16be without bom", vec![0x00, b'<', 0x00, b's'], C::UnsupportedEncoding),
        // Not well-formed
        ("overlong utf-8", [CLIENT_HEADER.as_bytes(), b"<message><body>\xC0\xAF</body></message>"].concat(), C::NotWellFormed),
        ("lone continuation byte", [CLIENT_HEADER.as_bytes(), b"<message><body>\x80</body></message>"].concat(), C::NotWellFormed),
        ("utf-16 surrogate in utf-8", [CLIENT_HEADER.as_bytes(), b"<message><body>\xED\xA0\x80</body></message>"].concat(), C::NotWellFormed),
        ("invalid utf-8 in name", [CLIENT_HEADER.as_bytes(), b"<mess\xFFage/>"].concat(), C::NotWellFormed),
        ("nul char reference", after_header("<message><body>&#0;</body></message>"), C::NotWellFormed),
        ("control char reference", after_header("<message><body>&#x1;</body></message>"), C::NotWellFormed),
        ("raw control char", after_header("<message><body>\u{1}</body></message>"), C::NotWellFormed),
        ("mismatched end tag", after_header("<message><body></message>"), C::NotWellFormed),
        ("unescaped lt in text", after_header("<message><body>a < b</body></message>"), C::NotWellFormed),
        ("unescaped amp", after_header("<message><body>a & b</body></message>"), C::NotWellFormed),
        ("lt in attribute", after_header("<message to='a<b'/>"), C::NotWellFormed),
        ("duplicate attribute", after_header("<message to='a' to='b'/>"), C::NotWellFormed),
        ("duplicate attribute after prefix resolution", after_header("<message xmlns:a='urn:x' xmlns:b='urn:x' a:t='1' b:t='2'/>"), C::NotWellFormed),
        ("unquoted attribute", after_header("<message to=a/>"), C::NotWellFormed),
        ("text before root", b"hello<stream:stream/>".to_vec(), C::NotWellFormed),
        ("xml 1.1", format!("<?xml version='1.1'?><stream:stream {STREAM_NS}>").into_bytes(), C::RestrictedXml),
        ("xml declaration inside stream", after_header("<?xml version='1.0'?>"), C::RestrictedXml),
        ("stray end tag", after_header("</message>"), C::NotWellFormed),
        ("empty namespace prefix undeclared", after_header("<message xmlns:a=''/>"), C::NotWellFormed),
        // Namespaces and prefixes
        ("root without stream prefix", b"<stream xmlns='jabber:client'>".to_vec(), C::BadNamespacePrefix),
        ("root with undeclared prefix", b"<stream:stream xmlns='jabber:client'>".to_vec(), C::BadNamespacePrefix),
        ("root in wrong namespace", b"<stream:stream xmlns:stream='http://example.org/streams'>".to_vec(), C::InvalidNamespace),
        ("root not named stream", format!("<stream:features {STREAM_NS}>").into_bytes(), C::InvalidXml),
        ("stanza with undeclared prefix", after_header("<foo:message/>"), C::BadNamespacePrefix),
        ("attribute with undeclared prefix", after_header("<message foo:bar='x'/>"), C::BadNamespacePrefix),
        ("first-level element without namespace", format!("<stream:stream {STREAM_NS}><message/>").into_bytes(), C::InvalidXml),
        ("default namespace undeclared on stanza", after_header("<message xmlns=''/>"), C::InvalidXml),
        // Stream structure
        ("text between stanzas", after_header("hello"), C::BadFormat),
        ("text after keepalive", after_header("  \n x"), C::BadFormat),
        ("char reference between stanzas", after_header("&#32;"), C::BadFormat),
        ("cdata text between stanzas", after_header("<![CDATA[x]]>"), C::BadFormat),
        ("malformed version", format!("<stream:stream {STREAM_NS} version='one'>").into_bytes(), C::UnsupportedVersion),
    ]
}

#[test]
fn malformed_input_catalogue() {
    for (name, input, expected) in catalogue() {
        let (_, err) = read_all(&input);
        let err = err.unwrap_or_else(|| panic!("{name}: accepted"));
        assert_eq!(err.condition(), expected, "{name}: {err}");
        // The same condition however the input is split.
        let (_, split) = read_chunks(ReaderLimits::default(), input.chunks(1));
        assert_eq!(
            split.map(|e| e.condition()),
            Some(expected),
            "{name}, byte by byte"
        );
    }
}

#[test]
fn errors_are_sticky() {
    let mut reader = StreamReader::new(ReaderLimits::default());
    reader.feed(format!("{CLIENT_HEADER}<!-- x -->").as_bytes());
    assert!(matches!(
        reader.next_frame(),
        Ok(Some(Frame::StreamOpen(_)))
    ));
    let err = reader.next_frame().unwrap_err();
    assert_eq!(err, XmlError::RestrictedXml("comments"));
    reader.feed(b"<message/>");
    assert_eq!(reader.next_frame(), Err(err.clone()));
    reader.reset();
    assert_eq!(reader.next_frame(), Err(err.clone()));
    assert_eq!(reader.error(), Some(&err));
    assert_eq!(reader.buffered_len(), 0, "a failed reader holds no input");
}

fn stanza_of_size(n: usize) -> Vec<u8> {
    let open = b"<message><body>";
    let close = b"</body></message>";
    let fill = n - open.len() - close.len();
    [&open[..], &vec![b'a'; fill], &close[..]].concat()
}

#[test]
fn stanza_size_limit_is_exact() {
    let limits = ReaderLimits::default();
    let max = limits.max_stanza_bytes;
    for (size, ok) in [(max, true), (max + 1, false)] {
        let input = [CLIENT_HEADER.as_bytes(), &stanza_of_size(size)].concat();
        for chunk in [input.len(), 4096, 7] {
            let (frames, err) = read_chunks(limits, input.chunks(chunk));
            if ok {
                assert_eq!(err, None, "size {size}, chunk {chunk}");
                assert_eq!(frames.len(), 2);
            } else {
                assert_eq!(
                    err,
                    Some(XmlError::LimitExceeded {
                        limit: Limit::StanzaBytes,
                        max
                    }),
                    "size {size}, chunk {chunk}"
                );
            }
        }
    }
}

#[test]
fn pre_auth_limit_rejects_big_auth() {
    let auth = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        "A".repeat(20_000)
    );
    let (_, err) = read_chunks(
        ReaderLimits::pre_auth(),
        [format!("{CLIENT_HEADER}{auth}").as_bytes()],
    );
    assert_eq!(err.unwrap().condition(), C::PolicyViolation);
}

#[test]
fn oversized_stanza_fails_before_it_is_buffered() {
    // A peer streaming an endless stanza is stopped once the limit is passed,
    // although it never closes a tag.
    let limits = ReaderLimits {
        max_stanza_bytes: 1000,
        ..ReaderLimits::default()
    };
    let mut reader = StreamReader::new(limits);
    reader.feed(CLIENT_HEADER.as_bytes());
    reader.next_frame().unwrap();
    reader.feed(b"<message><body>");
    let mut fed = 0;
    let err = loop {
        reader.feed(&[b'x'; 100]);
        fed += 100;
        match reader.next_frame() {
            Ok(None) => assert!(fed < 1000 + limits.max_token_bytes, "never failed"),
            Ok(Some(f)) => panic!("unexpected {f:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.condition(), C::PolicyViolation);
}

#[test]
fn depth_limit() {
    let limits = ReaderLimits {
        max_depth: 10,
        ..ReaderLimits::default()
    };
    let nest = |d: usize| {
        format!(
            "{CLIENT_HEADER}{}{}",
            "<a xmlns='urn:x'>".repeat(d),
            "</a>".repeat(d)
        )
    };
    let (frames, err) = read_chunks(limits, [nest(10).as_bytes()]);
    assert_eq!(err, None);
    assert_eq!(frames.len(), 2);
    let (_, err) = read_chunks(limits, [nest(11).as_bytes()]);
    assert_eq!(
        err,
        Some(XmlError::LimitExceeded {
            limit: Limit::Depth,
            max: 10
        })
    );
    // 10 000 nested elements: refused at depth 65 with the defaults, long before the end.
    let (_, err) =
        read_all(format!("{CLIENT_HEADER}{}", "<a xmlns='urn:x'>".repeat(10_000)).as_bytes());
    assert_eq!(
        err,
        Some(XmlError::LimitExceeded {
            limit: Limit::Depth,
            max: 64
        })
    );
}

#[test]
fn attribute_limit() {
    let limits = ReaderLimits {
        max_attributes: 5,
        ..ReaderLimits::default()
    };
    let attrs = |n: usize| {
        let a: String = (0..n).map(|i| format!(" a{i}='v'")).collect();
        format!("{CLIENT_HEADER}<message{a}/>")
    };
    assert_eq!(read_chunks(limits, [attrs(5).as_bytes()]).1, None);
    assert_eq!(
        read_chunks(limits, [attrs(6).as_bytes()]).1,
        Some(XmlError::LimitExceeded {
            limit: Limit::Attributes,
            max: 5
        })
    );
}

#[test]
fn element_count_limit() {
    let limits = ReaderLimits {
        max_elements: 100,
        ..ReaderLimits::default()
    };
    let items = |n: usize| {
        format!(
            "{CLIENT_HEADER}<iq type='result' id='1'>{}</iq>",
            "<i/>".repeat(n)
        )
    };
    assert_eq!(read_chunks(limits, [items(99).as_bytes()]).1, None);
    assert_eq!(
        read_chunks(limits, [items(100).as_bytes()]).1,
        Some(XmlError::LimitExceeded {
            limit: Limit::Elements,
            max: 100
        })
    );
}

#[test]
fn header_size_limit() {
    let limits = ReaderLimits {
        max_header_bytes: 200,
        ..ReaderLimits::default()
    };
    let header = |pad: usize| {
        format!(
            "<stream:stream {STREAM_NS} xmlns='jabber:client' to='{}'>",
            "a".repeat(pad)
        )
    };
    assert_eq!(read_chunks(limits, [header(50).as_bytes()]).1, None);
    let (_, err) = read_chunks(limits, [header(500).as_bytes()]);
    assert_eq!(
        err,
        Some(XmlError::LimitExceeded {
            limit: Limit::HeaderBytes,
            max: 200
        })
    );
    // Endless whitespace before the root is bounded too.
    let (_, err) = read_chunks(limits, [vec![b' '; 10_000].as_slice()]);
    assert_eq!(err.unwrap().condition(), C::PolicyViolation);
}

#[test]
fn token_limit() {
    let limits = ReaderLimits {
        max_token_bytes: 100,
        ..ReaderLimits::default()
    };
    let input = format!("{CLIENT_HEADER}<message to='{}'/>", "a".repeat(1000));
    let (_, err) = read_chunks(limits, [input.as_bytes()]);
    assert_eq!(
        err,
        Some(XmlError::LimitExceeded {
            limit: Limit::TokenBytes,
            max: 100
        })
    );
    // Long text is fine: it is read in pieces and bounded by the stanza size.
    let input = format!(
        "{CLIENT_HEADER}<message><body>{}</body></message>",
        "a".repeat(1000)
    );
    assert_eq!(read_chunks(limits, [input.as_bytes()]).1, None);
}

#[test]
fn endless_keepalives_hold_no_memory() {
    let mut reader = StreamReader::new(ReaderLimits::default());
    reader.feed(CLIENT_HEADER.as_bytes());
    reader.next_frame().unwrap();
    let mut frames = 0;
    for _ in 0..1000 {
        reader.feed(&[b' '; 1000]);
        while let Some(f) = reader.next_frame().unwrap() {
            assert_eq!(f, Frame::Whitespace);
            frames += 1;
        }
        assert_eq!(reader.buffered_len(), 0);
    }
    assert_eq!(frames, 1, "one run of whitespace, one frame");
}
