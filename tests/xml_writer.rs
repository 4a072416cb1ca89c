//! The writer: exact output for the common cases, and read(write(x)) == x.

mod common;

use bytes::BytesMut;
use common::*;
use minidom::Element;
use proptest::prelude::*;
use xmpp_sansio::error::{StreamError, StreamErrorCondition};
use xmpp_sansio::xml::{Frame, ReaderLimits, StreamHeader, StreamReader, StreamWriter, WriteError};

fn write(el: &Element) -> String {
    let mut out = BytesMut::new();
    StreamWriter::default().write_element(el, &mut out).unwrap();
    String::from_utf8(out.to_vec()).unwrap()
}

fn parse(xml: &str) -> Element {
    xml.parse().unwrap()
}

#[test]
fn stanzas_in_the_content_namespace_have_no_xmlns() {
    let el = parse(
        "<message xmlns='jabber:client' to='a@b' type='chat'><body>hi</body>\
        <active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    );
    assert_eq!(
        write(&el),
        "<message to='a@b' type='chat'><body>hi</body>\
         <active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    );
}

#[test]
fn stream_namespace_uses_the_stream_prefix() {
    let el = parse(
        "<features xmlns='http://etherx.jabber.org/streams'>\
        <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></features>",
    );
    assert_eq!(
        write(&el),
        "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"
    );
}

#[test]
fn escaping() {
    let el = parse(
        "<message xmlns='jabber:client' id='&apos;&quot;&lt;&amp;&#9;&#10;&#13;'>\
        <body>a &lt; b &amp; c &gt; d ]]&gt; 'q' \"dq\" &#13;</body></message>",
    );
    assert_eq!(
        write(&el),
        "<message id='&apos;&quot;&lt;&amp;&#9;&#10;&#13;'><body>a &lt; b &amp; c &gt; d ]]&gt; 'q' \"dq\" &#13;</body></message>"
    );
}

#[test]
fn xml_lang_and_foreign_attributes() {
    let el = parse("<message xmlns='jabber:client' xmlns:x='urn:x' xml:lang='de' x:a='1'/>");
    assert_eq!(
        write(&el),
        "<message xml:lang='de' xmlns:ans0='urn:x' ans0:a='1'/>"
    );
}

#[test]
fn unqualified_child_resets_default_namespace() {
    let mut el = Element::bare("iq", "jabber:client");
    el.append_child(Element::bare("query", ""));
    assert_eq!(write(&el), "<iq><query xmlns=''/></iq>");
}

#[test]
fn invalid_content_is_refused_and_nothing_is_written() {
    let mut out = BytesMut::from(&b"before"[..]);
    let w = StreamWriter::default();
    let mut el = Element::bare("message", "jabber:client");
    el.append_text("nul \u{0} here");
    assert_eq!(
        w.write_element(&el, &mut out),
        Err(WriteError::InvalidChar('\u{0}'))
    );
    let mut el = Element::bare("message", "jabber:client");
    el.append_text("\u{FFFE}");
    assert_eq!(
        w.write_element(&el, &mut out),
        Err(WriteError::InvalidChar('\u{FFFE}'))
    );
    let el = Element::bare("bad name", "jabber:client");
    assert!(matches!(
        w.write_element(&el, &mut out),
        Err(WriteError::InvalidName(_))
    ));
    assert_eq!(&out[..], b"before");
}

#[test]
fn header_round_trip() {
    let header = StreamHeader {
        from: Some("example.org".into()),
        to: Some("juliet@example.org".into()),
        id: Some("++TR84Sm6A3hnt3Q065SnAbbk3Y=".into()),
        lang: Some("en".into()),
        namespaces: vec![("db".into(), "jabber:server:dialback".into())],
        ..StreamHeader::client_to("ignored")
    };
    let mut w = StreamWriter::default();
    let mut out = BytesMut::new();
    w.write_header(&header, &mut out);
    w.write_element(&parse("<presence xmlns='jabber:client'/>"), &mut out)
        .unwrap();
    w.write_whitespace(&mut out);
    w.write_close(&mut out);
    let (frames, err) = read_all(&out);
    assert_eq!(err, None);
    assert_eq!(frames[0], Frame::StreamOpen(header));
    assert!(
        matches!(&frames[1], Frame::Element(e) if e.name() == "presence" && e.ns() == "jabber:client")
    );
    assert_eq!(&frames[2..], [Frame::Whitespace, Frame::StreamClose]);
}

#[test]
fn stream_error_round_trip_every_condition() {
    for &condition in StreamErrorCondition::ALL {
        let mut error = StreamError::new(condition).with_text("why it failed");
        if condition == StreamErrorCondition::UndefinedCondition {
            error.application = Some(Box::new(parse(
                "<handled-count-too-high xmlns='urn:xmpp:sm:3' h='10' send-count='8'/>",
            )));
        }
        if condition == StreamErrorCondition::SeeOtherHost {
            error.condition_data = Some("[2001:db8::1]:5222".into());
        }
        let mut out = BytesMut::new();
        let mut w = StreamWriter::default();
        w.write_header(&StreamHeader::client_to("example.org"), &mut out);
        w.write_element(&error.to_element(), &mut out).unwrap();
        let (frames, err) = read_all(&out);
        assert_eq!(err, None);
        let Frame::Element(el) = &frames[1] else {
            panic!()
        };
        assert_eq!(StreamError::from_element(el).unwrap(), error);
    }
}

#[test]
fn stream_error_parsing_is_lenient_about_conditions() {
    let el = parse(
        "<error xmlns='http://etherx.jabber.org/streams'>\
        <xml-not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>",
    );
    assert_eq!(
        StreamError::from_element(&el).unwrap().condition,
        StreamErrorCondition::NotWellFormed
    );
    let el = parse(
        "<error xmlns='http://etherx.jabber.org/streams'>\
        <made-up xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>",
    );
    assert_eq!(
        StreamError::from_element(&el).unwrap().condition,
        StreamErrorCondition::UndefinedCondition
    );
    let el = parse("<error xmlns='http://etherx.jabber.org/streams'/>");
    assert_eq!(
        StreamError::from_element(&el).unwrap().condition,
        StreamErrorCondition::UndefinedCondition
    );
    assert!(StreamError::from_element(&parse("<error xmlns='jabber:client'/>")).is_err());
}

/// Reads `el` back through a stream: header, the element, close.
fn round_trip(el: &Element) -> Element {
    let mut w = StreamWriter::default();
    let mut out = BytesMut::new();
    w.write_header(&StreamHeader::client_to("example.org"), &mut out);
    w.write_element(el, &mut out).unwrap();
    let mut reader = StreamReader::new(ReaderLimits::default());
    reader.feed(&out);
    assert!(matches!(
        reader.next_frame(),
        Ok(Some(Frame::StreamOpen(_)))
    ));
    match reader.next_frame() {
        Ok(Some(Frame::Element(e))) => e,
        other => panic!("{other:?} for {}", String::from_utf8_lossy(&out)),
    }
}

fn xml_text() -> impl Strategy<Value = String> {
    // Any XML 1.0 characters, weighted towards the ones that need escaping.
    let ch = prop_oneof![
        3 => prop::sample::select(vec!['<', '>', '&', '\'', '"', '\t', '\n', '\r', ']', ' ']),
        3 => prop::char::range('a', 'z'),
        1 => any::<char>().prop_filter("XML char", |c| {
            matches!(*c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        }),
    ];
    prop::collection::vec(ch, 1..20).prop_map(|v| v.into_iter().collect())
}

fn namespace() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "jabber:client",
        "urn:xmpp:receipts",
        "http://jabber.org/protocol/disco#info",
        "urn:x'\"<&",
        "",
        "http://etherx.jabber.org/streams",
    ])
}

fn element() -> impl Strategy<Value = Element> {
    let name = prop::sample::select(vec!["message", "body", "x", "item", "é-ü.1", "_a"]);
    let attr_ns = prop::sample::select(vec![
        "",
        "",
        "http://www.w3.org/XML/1998/namespace",
        "urn:attr",
    ]);
    let attr_name = prop::sample::select(vec!["to", "id", "type", "lang", "v"]);
    let leaf = (
        name.clone(),
        namespace(),
        prop::collection::vec((attr_ns, attr_name, xml_text()), 0..4),
    )
        .prop_map(|(name, ns, attrs)| {
            let mut el = Element::bare(name, ns);
            for (ans, aname, value) in attrs {
                el.attrs_mut().insert(
                    rxml::Namespace::from(ans.to_owned()),
                    rxml::NcName::try_from(aname).unwrap(),
                    value,
                );
            }
            el
        });
    leaf.prop_recursive(4, 32, 5, |inner| {
        (
            inner,
            prop::collection::vec(
                prop_oneof![inner_child(), xml_text().prop_map(Child::Text),],
                0..5,
            ),
        )
            .prop_map(|(mut parent, children)| {
                let mut last_was_text =
                    matches!(parent.nodes().last(), Some(minidom::Node::Text(_)));
                for child in children {
                    match child {
                        Child::Text(t) if !last_was_text => {
                            parent.append_text_node(t);
                            last_was_text = true;
                        }
                        Child::Text(_) => {}
                        Child::El(e) => {
                            parent.append_child(e);
                            last_was_text = false;
                        }
                    }
                }
                parent
            })
    })
}

#[derive(Clone, Debug)]
enum Child {
    Text(String),
    El(Element),
}

fn inner_child() -> impl Strategy<Value = Child> {
    (prop::sample::select(vec!["a", "b", "c"]), namespace())
        .prop_map(|(n, ns)| Child::El(Element::bare(n, ns)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn read_what_was_written(el in element().prop_filter("first-level elements need a namespace", |e| !e.ns().is_empty())) {
        prop_assert_eq!(round_trip(&el), el);
    }
}
