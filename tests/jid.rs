//! JID tests (RFC 7622). Rows V* and I* mirror the valid/invalid tables of
//! `shared/spec/jid.md` §5; the remaining rows cover boundaries and profile
//! details.

use std::collections::HashSet;
use std::str::FromStr;

use proptest::prelude::*;
use xmpp_sansio::jid::{JidPart, PrecisFailure};
use xmpp_sansio::{BareJid, FullJid, Jid, JidError};

/// (id, input, prepared form).
const VALID: &[(&str, &str, &str)] = &[
    ("V1", "juliet@example.com", "juliet@example.com"),
    ("V2", "juliet@example.com/foo", "juliet@example.com/foo"),
    (
        "V3",
        "juliet@example.com/foo bar",
        "juliet@example.com/foo bar",
    ),
    (
        "V4",
        "juliet@example.com/foo@bar",
        "juliet@example.com/foo@bar",
    ),
    ("V5", "juliet@example.com/a/b", "juliet@example.com/a/b"),
    ("V6", "foo\\20bar@example.com", "foo\\20bar@example.com"),
    ("V7", "fussball@example.com", "fussball@example.com"),
    ("V8", "fußball@example.com", "fußball@example.com"),
    ("V9", "π@example.com", "π@example.com"),
    ("V10", "Σ@example.com/foo", "σ@example.com/foo"),
    ("V11", "σ@example.com/foo", "σ@example.com/foo"),
    ("V12", "ς@example.com/foo", "ς@example.com/foo"),
    ("V13", "king@example.com/♚", "king@example.com/♚"),
    ("V14", "example.com", "example.com"),
    ("V15", "example.com/foobar", "example.com/foobar"),
    (
        "V16",
        "a.example.com/b@example.net",
        "a.example.com/b@example.net",
    ),
    (
        "V17",
        "Juliet@Example.COM/Balcony",
        "juliet@example.com/Balcony",
    ),
    ("V18", "juliet@example.com./x", "juliet@example.com/x"),
    ("V19", "\u{FF4A}uliet@example.com", "juliet@example.com"),
    ("V20a", "juliet@[::1]", "juliet@[::1]"),
    ("V20b", "juliet@[2001:db8::1]/r", "juliet@[2001:db8::1]/r"),
    ("V21", "juliet@192.0.2.1", "juliet@192.0.2.1"),
    ("V22", "a+b!x@example.com", "a+b!x@example.com"),
    ("V23", "ju/liet@example.com", "ju/liet@example.com"),
    // Canonical domain form is the U-label (RFC 7622 §3.2.1).
    ("V24a", "juliet@münchen.example", "juliet@münchen.example"),
    (
        "V24b",
        "juliet@xn--mnchen-3ya.example",
        "juliet@münchen.example",
    ),
    (
        "V24c",
        "juliet@XN--MNCHEN-3YA.Example",
        "juliet@münchen.example",
    ),
    ("V24d", "juliet@MÜNCHEN.example", "juliet@münchen.example"),
    // Extra rows.
    ("X1", "example.com.", "example.com"),
    ("X2", "EXAMPLE.com./Res", "example.com/Res"),
    ("X3", "juliet@[2001:DB8:0:0::1]", "juliet@[2001:db8::1]"),
    (
        "X4",
        "juliet@[::ffff:192.0.2.1]/r",
        "juliet@[::ffff:192.0.2.1]/r",
    ),
    ("X5", "[::1]", "[::1]"),
    ("X6", "10.0.0.1/r", "10.0.0.1/r"),
    ("X7", "ΣΑΣ@example.com", "σασ@example.com"),
    (
        "X8",
        "JULIET@EXAMPLE.COM/JULIET",
        "juliet@example.com/JULIET",
    ),
    // Full-width letters in the domain are width-mapped (RFC 5895).
    (
        "X9",
        "juliet@\u{FF45}\u{FF58}ample.com",
        "juliet@example.com",
    ),
    // U+3002 IDEOGRAPHIC FULL STOP separates labels (RFC 5895 §2 step 4).
    ("X10", "juliet@example\u{3002}com", "juliet@example.com"),
    // OpaqueString: no width mapping, no case mapping in the resourcepart.
    (
        "X11",
        "juliet@example.com/\u{FF4A}Ab",
        "juliet@example.com/\u{FF4A}Ab",
    ),
    // OpaqueString: non-ASCII spaces map to U+0020.
    (
        "X12",
        "juliet@example.com/a\u{00A0}b\u{3000}c",
        "juliet@example.com/a b c",
    ),
    // OpaqueString: compatibility characters are allowed and kept.
    (
        "X13",
        "juliet@example.com/henry\u{2163}",
        "juliet@example.com/henry\u{2163}",
    ),
    // NFC in every part: e + U+0301 composes to é.
    (
        "X14",
        "e\u{0301}@example.com/e\u{0301}",
        "\u{00E9}@example.com/\u{00E9}",
    ),
    (
        "X15",
        "juliet@caf\u{0065}\u{0301}.example",
        "juliet@café.example",
    ),
    // Full-width capital in localpart: width map then lower case.
    ("X16", "\u{FF2A}uliet@example.com", "juliet@example.com"),
    // Dotted-quad-looking but out of range: not IPv4, yet a valid LDH name.
    ("X17", "juliet@192.0.2.256", "juliet@192.0.2.256"),
    // Leading/trailing spaces in the resource are kept (local policy).
    ("X18", "juliet@example.com/ r ", "juliet@example.com/ r "),
    // U+00B7 between two l is allowed (CONTEXTO) in a localpart.
    ("X19", "l\u{00B7}l@example.com", "l\u{00B7}l@example.com"),
    // ZWNJ after a virama is allowed (CONTEXTJ).
    (
        "X20",
        "\u{0915}\u{094D}\u{200C}@example.com",
        "\u{0915}\u{094D}\u{200C}@example.com",
    ),
    ("X21", "a-b.c-d.example", "a-b.c-d.example"),
    ("X22", "123.example", "123.example"),
    // Emoji assigned by Unicode 6.0 are fine in a resourcepart.
    (
        "X23",
        "juliet@example.com/\u{1F412}",
        "juliet@example.com/\u{1F412}",
    ),
];

/// (id, input, expected error).
const INVALID: &[(&str, &str, JidError)] = &[
    (
        "I1",
        "\"juliet\"@example.com",
        JidError::LocalForbiddenChar('"'),
    ),
    (
        "I2",
        "foo bar@example.com",
        JidError::LocalPrecis(PrecisFailure::Disallowed(' ')),
    ),
    ("I3", "juliet@example.com/", JidError::EmptyResource),
    ("I4", "@example.com", JidError::EmptyLocal),
    ("I5", "@example.com/", JidError::EmptyLocal),
    (
        "I6",
        "henry\u{2163}@example.com",
        JidError::LocalPrecis(PrecisFailure::Disallowed('\u{2163}')),
    ),
    (
        "I7",
        "♚@example.com",
        JidError::LocalPrecis(PrecisFailure::Disallowed('♚')),
    ),
    ("I8", "juliet@", JidError::EmptyDomain),
    ("I9", "/foobar", JidError::EmptyDomain),
    ("I10", "", JidError::EmptyDomain),
    ("I11", "a@b@example.com", JidError::DomainIdna),
    (
        "I12a",
        "ju:liet@example.com",
        JidError::LocalForbiddenChar(':'),
    ),
    (
        "I12b",
        "ju<l@example.com",
        JidError::LocalForbiddenChar('<'),
    ),
    (
        "I12c",
        "j'l@example.com",
        JidError::LocalForbiddenChar('\''),
    ),
    ("I12d", "j&l@example.com", JidError::LocalForbiddenChar('&')),
    ("I12e", "j>l@example.com", JidError::LocalForbiddenChar('>')),
    ("I13", "juliet@exa mple.com", JidError::DomainIdna),
    ("I14a", "juliet@.example.com", JidError::DomainEmptyLabel),
    ("I14b", "juliet@example..com", JidError::DomainEmptyLabel),
    ("I15", "juliet@[::1", JidError::BadIpLiteral),
    (
        "I16",
        "juliet@example.com/a\u{0007}b",
        JidError::ResourcePrecis(PrecisFailure::Disallowed('\u{0007}')),
    ),
    (
        "I17",
        "juliet@example.com/a\u{0000}",
        JidError::ResourcePrecis(PrecisFailure::Disallowed('\u{0000}')),
    ),
    ("I20", "juliet@example.com..", JidError::DomainEmptyLabel),
    (
        "I21",
        "a\u{200D}b@example.com",
        JidError::LocalPrecis(PrecisFailure::Disallowed('\u{200D}')),
    ),
    // Extra rows.
    ("Y1", ".", JidError::EmptyDomain),
    ("Y2", "@", JidError::EmptyLocal),
    ("Y3", "a@/r", JidError::EmptyDomain),
    ("Y4", "juliet@[1.2.3.4]", JidError::BadIpLiteral),
    ("Y5", "juliet@[fe80::1%eth0]", JidError::BadIpLiteral),
    ("Y6", "juliet@::1", JidError::DomainIdna),
    ("Y7", "juliet@exa_mple.com", JidError::DomainIdna),
    ("Y8", "juliet@-example.com", JidError::DomainIdna),
    ("Y9", "juliet@example-.com", JidError::DomainIdna),
    ("Y10", "juliet@ab--cd.example", JidError::DomainIdna),
    // Punycode that decodes to ASCII only is not an A-label.
    ("Y11", "juliet@xn--abc-.example", JidError::DomainIdna),
    // Symbols are not PVALID in IDNA2008 even though UTS 46 allows them.
    (
        "Y12",
        "juliet@♚.example",
        JidError::DomainDisallowedChar('♚'),
    ),
    // Compatibility characters would need a UTS 46-only mapping (ⅳ → iv).
    ("Y13", "juliet@henry\u{2163}.example", JidError::DomainIdna),
    // Soft hyphen is ignored by UTS 46 but DISALLOWED in IDNA2008.
    ("Y14", "juliet@ex\u{00AD}ample.com", JidError::DomainIdna),
    // A full-width '@' in the localpart maps to '@' and is then forbidden.
    (
        "Y15",
        "ju\u{FF20}liet@example.com",
        JidError::LocalForbiddenChar('@'),
    ),
    // A full-width '/' too.
    (
        "Y16",
        "ju\u{FF0F}liet@example.com",
        JidError::LocalForbiddenChar('/'),
    ),
    // ZWJ at the start: the CONTEXTJ rule has nothing to look at.
    (
        "Y17",
        "\u{200D}a@example.com",
        JidError::LocalPrecis(PrecisFailure::ContextRule),
    ),
    // U+00B7 MIDDLE DOT outside l·l fails its CONTEXTO rule.
    (
        "Y18",
        "a\u{00B7}b@example.com",
        JidError::LocalPrecis(PrecisFailure::Disallowed('\u{00B7}')),
    ),
    // Bidi rule: an RTL label may not start with an LTR letter.
    (
        "Y19",
        "a\u{05D0}@example.com",
        JidError::LocalPrecis(PrecisFailure::Invalid),
    ),
    // Unassigned code point.
    (
        "Y20",
        "a\u{0378}@example.com",
        JidError::LocalPrecis(PrecisFailure::Disallowed('\u{0378}')),
    ),
    (
        "Y21",
        "juliet@example.com/a\u{0378}",
        JidError::ResourcePrecis(PrecisFailure::Disallowed('\u{0378}')),
    ),
    (
        "Y22",
        "juliet@example.com/a\u{000A}b",
        JidError::ResourcePrecis(PrecisFailure::Disallowed('\u{000A}')),
    ),
    (
        "Y23",
        "juliet@example.com/a\tb",
        JidError::ResourcePrecis(PrecisFailure::Disallowed('\t')),
    ),
    // U+3000 IDEOGRAPHIC SPACE width-maps to U+0020, which is then disallowed.
    (
        "Y24",
        "\u{3000}@example.com",
        JidError::LocalPrecis(PrecisFailure::Disallowed(' ')),
    ),
    (
        "Y25",
        "juliet@example.com\u{3002}\u{3002}",
        JidError::DomainEmptyLabel,
    ),
    // Two trailing dots on an IPv6 literal: only one is stripped.
    ("Y26", "juliet@[::1]..", JidError::BadIpLiteral),
    // Known limit: precis-core derives properties from Unicode 6.3, so code
    // points assigned later count as unassigned (see spec-notes/rfc7622.md).
    (
        "Y27",
        "juliet@example.com/\u{1F970}",
        JidError::ResourcePrecis(PrecisFailure::Disallowed('\u{1F970}')),
    ),
];

#[test]
fn valid_table() {
    assert!(VALID.len() + INVALID.len() >= 40);
    for &(id, input, prepared) in VALID {
        let jid =
            Jid::from_str(input).unwrap_or_else(|e| panic!("{id}: {input:?} rejected: {e:?}"));
        assert_eq!(jid.to_string(), prepared, "{id}");
        // The prepared form is a fixed point.
        let again = Jid::from_str(prepared).unwrap_or_else(|e| panic!("{id}: reparse: {e:?}"));
        assert_eq!(again, jid, "{id}");
    }
}

#[test]
fn invalid_table() {
    for &(id, input, ref expected) in INVALID {
        match Jid::from_str(input) {
            Ok(j) => panic!("{id}: {input:?} accepted as {j}"),
            Err(e) => assert_eq!(&e, expected, "{id}: {input:?}"),
        }
    }
}

#[test]
fn parts_of_parsed_jids() {
    let j: Jid = "juliet@example.com/foo@bar".parse().unwrap();
    assert_eq!(j.node(), Some("juliet"));
    assert_eq!(j.local(), Some("juliet"));
    assert_eq!(j.domain(), "example.com");
    assert_eq!(j.resource(), Some("foo@bar"));
    assert!(j.is_full());

    let j: Jid = "ju/liet@example.com".parse().unwrap();
    assert_eq!(j.node(), None);
    assert_eq!(j.domain(), "ju");
    assert_eq!(j.resource(), Some("liet@example.com"));

    let j: Jid = "a.example.com/b@example.net".parse().unwrap();
    assert_eq!(j.node(), None);
    assert_eq!(j.domain(), "a.example.com");
    assert_eq!(j.resource(), Some("b@example.net"));

    let j: Jid = "juliet@example.com/a/b".parse().unwrap();
    assert_eq!(j.resource(), Some("a/b"));

    let j: Jid = "Juliet@Example.COM".parse().unwrap();
    assert!(j.is_bare());
    assert_eq!(j.node(), Some("juliet"));
    assert_eq!(j.domain(), "example.com");
    assert_eq!(j.resource(), None);

    let j: Jid = "juliet@[2001:db8::1]/r".parse().unwrap();
    assert_eq!(j.domain(), "[2001:db8::1]");
}

#[test]
fn equality_follows_prepared_form() {
    let p = |s: &str| s.parse::<Jid>().unwrap();
    assert_eq!(p("Σ@example.com/foo"), p("σ@example.com/foo"));
    assert_ne!(p("σ@example.com/foo"), p("ς@example.com/foo"));
    assert_ne!(p("fussball@example.com"), p("fußball@example.com"));
    assert_eq!(p("juliet@example.com./x"), p("juliet@EXAMPLE.com/x"));
    assert_eq!(
        p("juliet@xn--mnchen-3ya.example"),
        p("juliet@münchen.example")
    );
    assert_ne!(
        p("juliet@example.com/Balcony"),
        p("juliet@example.com/balcony")
    );
    let set: HashSet<Jid> = [
        "JULIET@example.com",
        "juliet@EXAMPLE.COM.",
        "\u{FF4A}uliet@example.com",
    ]
    .iter()
    .map(|s| p(s))
    .collect();
    assert_eq!(set.len(), 1);
    let mut v = vec![p("b@x"), p("a@x/r"), p("a@x")];
    v.sort();
    assert_eq!(v, vec![p("a@x"), p("a@x/r"), p("b@x")]);
}

#[test]
fn typed_parsing_and_conversions() {
    let full: FullJid = "juliet@example.com/balcony".parse().unwrap();
    assert_eq!(full.resource(), "balcony");
    assert_eq!(full.to_bare().as_str(), "juliet@example.com");
    assert_eq!(full.clone().into_bare(), full.to_bare());
    assert_eq!(
        "juliet@example.com".parse::<FullJid>(),
        Err(JidError::MissingResource)
    );
    let bare: BareJid = "juliet@example.com".parse().unwrap();
    assert_eq!(
        "juliet@example.com/x".parse::<BareJid>(),
        Err(JidError::UnexpectedResource)
    );

    let j: Jid = full.clone().into();
    assert_eq!(j, full);
    assert_eq!(FullJid::try_from(j.clone()), Ok(full.clone()));
    assert_eq!(
        BareJid::try_from(j.clone()),
        Err(JidError::UnexpectedResource)
    );
    assert_eq!(j.to_bare(), bare);
    assert_eq!(j.into_bare(), bare);

    let j: Jid = bare.clone().into();
    assert_eq!(j, bare);
    assert_eq!(FullJid::try_from(j.clone()), Err(JidError::MissingResource));
    assert_eq!(BareJid::try_from(j), Ok(bare.clone()));

    let f2 = bare.with_resource("Other\u{00A0}Res").unwrap();
    assert_eq!(f2.as_str(), "juliet@example.com/Other Res");
    assert_eq!(bare.with_resource(""), Err(JidError::EmptyResource));

    // Domain-only full JID.
    let f3: FullJid = "example.com/res".parse().unwrap();
    assert_eq!(f3.node(), None);
    assert_eq!(f3.to_bare().as_str(), "example.com");
}

#[test]
fn construction_from_parts() {
    let f = FullJid::new(Some("Juliet"), "Example.COM.", "Balcony").unwrap();
    assert_eq!(f.as_str(), "juliet@example.com/Balcony");
    let b = BareJid::new(None, "xn--mnchen-3ya.example").unwrap();
    assert_eq!(b.as_str(), "münchen.example");
    assert_eq!(b.local(), None);
    let j = Jid::from_parts(Some("romeo"), "[::1]", None).unwrap();
    assert_eq!(j.as_str(), "romeo@[::1]");
    assert_eq!(
        BareJid::new(Some(""), "example.com"),
        Err(JidError::EmptyLocal)
    );
    assert_eq!(FullJid::new(None, "", "r"), Err(JidError::EmptyDomain));
    assert_eq!(
        FullJid::new(None, "example.com", ""),
        Err(JidError::EmptyResource)
    );
    // Separators cannot be smuggled in through parts.
    assert_eq!(
        BareJid::new(Some("a@b"), "c"),
        Err(JidError::LocalForbiddenChar('@'))
    );
    assert_eq!(
        BareJid::new(Some("a/b"), "c"),
        Err(JidError::LocalForbiddenChar('/'))
    );
    assert_eq!(BareJid::new(None, "c/d"), Err(JidError::DomainIdna));
    assert_eq!(BareJid::new(None, "c@d"), Err(JidError::DomainIdna));
    // A resource may contain anything printable, and round-trips.
    let f = FullJid::new(Some("a"), "b", "x/y@z").unwrap();
    assert_eq!(f.as_str().parse::<FullJid>().unwrap(), f);
}

fn label_domain(lens: &[usize]) -> String {
    lens.iter()
        .map(|&n| "a".repeat(n))
        .collect::<Vec<_>>()
        .join(".")
}

#[test]
fn length_boundaries() {
    // Localpart: 1023 ok, 1024 too long; counted in octets after preparation.
    let ok = format!("{}@example.com", "a".repeat(1023));
    assert_eq!(Jid::from_str(&ok).unwrap().node().map(str::len), Some(1023));
    let bad = format!("{}@example.com", "a".repeat(1024));
    assert_eq!(Jid::from_str(&bad), Err(JidError::LocalTooLong));
    let ok = format!("{}a@example.com", "é".repeat(511));
    assert!(Jid::from_str(&ok).is_ok());
    let bad = format!("{}@example.com", "é".repeat(512));
    assert_eq!(Jid::from_str(&bad), Err(JidError::LocalTooLong));
    // Full-width input: 1023 chars × 3 octets shrink to 1023 octets.
    let ok = format!("{}@example.com", "\u{FF41}".repeat(1023));
    assert_eq!(Jid::from_str(&ok).unwrap().node().map(str::len), Some(1023));
    let bad = format!("{}@example.com", "\u{FF41}".repeat(1024));
    assert_eq!(Jid::from_str(&bad), Err(JidError::LocalTooLong));

    // Resourcepart: 341 × € = 1023 octets ok, 342 × € = 1026 too long.
    let ok = format!("a@example.com/{}", "€".repeat(341));
    assert_eq!(
        Jid::from_str(&ok).unwrap().resource().map(str::len),
        Some(1023)
    );
    let bad = format!("a@example.com/{}", "€".repeat(342));
    assert_eq!(Jid::from_str(&bad), Err(JidError::ResourceTooLong));
    let ok = format!("a@example.com/{}", "r".repeat(1023));
    assert!(Jid::from_str(&ok).is_ok());
    let bad = format!("a@example.com/{}", "r".repeat(1024));
    assert_eq!(Jid::from_str(&bad), Err(JidError::ResourceTooLong));

    // Domainpart: 16 × 63 + 15 dots = 1023 ok; 1024 too long.
    let d1023 = label_domain(&[63; 16]);
    assert_eq!(d1023.len(), 1023);
    assert_eq!(Jid::from_str(&d1023).unwrap().domain().len(), 1023);
    // A trailing dot does not count.
    assert_eq!(
        Jid::from_str(&format!("{d1023}.")).unwrap().domain().len(),
        1023
    );
    let mut lens = vec![63; 15];
    lens.extend([62, 1]);
    let d1024 = label_domain(&lens);
    assert_eq!(d1024.len(), 1024);
    assert_eq!(Jid::from_str(&d1024), Err(JidError::DomainTooLong));
    // Same through the non-ASCII path.
    let mut lens = vec![63; 15];
    lens.push(61);
    let d1024u = format!("{}.ü", label_domain(&lens));
    assert_eq!(d1024u.len(), 1024);
    assert_eq!(Jid::from_str(&d1024u), Err(JidError::DomainTooLong));
    let mut lens = vec![63; 15];
    lens.push(60);
    let d1023u = format!("{}.Ü", label_domain(&lens));
    assert_eq!(Jid::from_str(&d1023u).unwrap().domain().len(), 1023);
    // Labels: 63 octets ok, 64 too long (A-label form counts).
    assert!(Jid::from_str(&format!("{}.example", "a".repeat(63))).is_ok());
    assert_eq!(
        Jid::from_str(&format!("{}.example", "a".repeat(64))),
        Err(JidError::DomainLabelTooLong)
    );
    // 57 × ü is a 114-octet U-label whose A-label is exactly 63 octets; 58 × ü
    // gives a 64-octet A-label.
    assert!(Jid::from_str(&format!("{}.example", "ü".repeat(57))).is_ok());
    assert_eq!(
        Jid::from_str(&format!("{}.example", "ü".repeat(58))),
        Err(JidError::DomainLabelTooLong)
    );
    assert!(Jid::from_str(&format!("{}ü.example", "a".repeat(55))).is_ok());
    assert_eq!(
        Jid::from_str(&format!("{}ü.example", "a".repeat(56))),
        Err(JidError::DomainLabelTooLong)
    );

    // Huge inputs are rejected quickly as too long.
    let huge = "a".repeat(1 << 20);
    assert_eq!(
        Jid::from_str(&format!("{huge}@x")),
        Err(JidError::LocalTooLong)
    );
    assert_eq!(
        Jid::from_str(&format!("x/{huge}")),
        Err(JidError::ResourceTooLong)
    );
    assert_eq!(Jid::from_str(&huge), Err(JidError::DomainTooLong));
    let dots = "l\u{00B7}".repeat(1 << 16);
    assert_eq!(
        Jid::from_str(&format!("{dots}l@x")),
        Err(JidError::LocalTooLong)
    );
}

#[test]
fn errors_name_their_part_and_display() {
    assert_eq!(JidError::EmptyLocal.part(), Some(JidPart::Local));
    assert_eq!(JidError::DomainIdna.part(), Some(JidPart::Domain));
    assert_eq!(JidError::BadIpLiteral.part(), Some(JidPart::Domain));
    assert_eq!(
        JidError::ResourcePrecis(PrecisFailure::Invalid).part(),
        Some(JidPart::Resource)
    );
    for &(id, _, ref e) in INVALID {
        assert!(!e.to_string().is_empty(), "{id}");
        assert!(e.part().is_some(), "{id}");
    }
    let e: Box<dyn std::error::Error> = Box::new(JidError::LocalForbiddenChar('"'));
    assert!(e.to_string().contains('"'));
}

#[test]
fn debug_is_compact() {
    let j: Jid = "a@b/c".parse().unwrap();
    assert_eq!(format!("{j:?}"), "Jid(\"a@b/c\")");
}

fn jid_chars() -> impl Strategy<Value = String> {
    // Bias towards separators and interesting code points.
    let pieces = prop_oneof![
        Just("@".to_string()),
        Just("/".to_string()),
        Just(".".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(":".to_string()),
        Just("xn--".to_string()),
        "[a-zA-Z0-9-]{1,6}",
        "[\u{0080}-\u{024F}\u{0370}-\u{03FF}\u{05D0}-\u{05EA}\u{0915}-\u{094D}\u{FF01}-\u{FF5E}\u{200C}\u{200D}\u{00B7}\u{3002}\u{2163}]{1,3}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_never_panics_and_display_round_trips(s in any::<String>()) {
        if let Ok(j) = Jid::from_str(&s) {
            let shown = format!("{j}");
            let again = Jid::from_str(&shown);
            prop_assert_eq!(again, Ok(j));
        }
    }

    #[test]
    fn structured_inputs_round_trip(s in jid_chars()) {
        if let Ok(j) = Jid::from_str(&s) {
            let shown = j.to_string();
            let again = Jid::from_str(&shown);
            prop_assert_eq!(again.as_ref(), Ok(&j));
            let again = again.unwrap();
            prop_assert_eq!(again.node(), j.node());
            prop_assert_eq!(again.domain(), j.domain());
            prop_assert_eq!(again.resource(), j.resource());
            // Parts rebuild the same JID.
            prop_assert_eq!(Jid::from_parts(j.node(), j.domain(), j.resource()), Ok(j.clone()));
            for part in [j.node(), Some(j.domain()), j.resource()].into_iter().flatten() {
                prop_assert!(!part.is_empty() && part.len() <= 1023);
            }
        }
    }
}
