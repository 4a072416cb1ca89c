//! Deterministic generator of realistic c2s XMPP traffic for benchmarks.
//!
//! The output is one complete client-to-server byte stream: XML declaration,
//! `<stream:stream …>` header, N top-level elements (stanzas), a few
//! whitespace keepalives between them, and `</stream:stream>`.
//!
//! Everything is derived from a fixed seed through a tiny xorshift64* PRNG, so
//! the corpus is byte-for-byte identical on every run and every machine (no
//! dependency on `rand`'s value-stability policy).
//!
//! Reusable from other benches with `#[path = "corpus/mod.rs"] mod corpus;`
//! or `mod corpus;` from `benches/`.

#![allow(dead_code)] // not every bench uses every item

use std::fmt::Write as _;

/// Size of one simulated socket read. Every parser is fed in chunks of this
/// size (the last chunk may be shorter).
pub const CHUNK: usize = 4096;

/// Stream header a client sends (RFC 6120 §4.2), exactly as in the issue.
pub const STREAM_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>";

/// Stream footer.
pub const STREAM_FOOTER: &str = "</stream:stream>";

/// Which traffic mix to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Everyday client traffic: chat messages, chat states, receipts,
    /// presences, disco, roster, pings. Mean ≈ 500 B per stanza.
    Typical,
    /// Large stanzas, mean ≈ 16 KB: long message bodies, PEP/pubsub
    /// results with many items, big rosters, avatar uploads, room
    /// directories.
    Large,
}

impl Profile {
    /// Short name used in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Typical => "typical",
            Profile::Large => "large",
        }
    }
}

/// A generated stream.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Which mix this is.
    pub profile: Profile,
    /// The whole c2s byte stream (header, stanzas, footer).
    pub bytes: Vec<u8>,
    /// Number of top-level elements (stanzas) between header and footer.
    pub stanzas: usize,
    /// Number of whitespace keepalives between stanzas.
    pub keepalives: usize,
    /// Bytes taken by the stanzas alone (no header/footer/keepalives).
    pub stanza_bytes: usize,
}

impl Corpus {
    /// Mean serialised size of one stanza in bytes.
    pub fn mean_stanza_len(&self) -> f64 {
        self.stanza_bytes as f64 / self.stanzas as f64
    }

    /// The stream as it would arrive from a socket: `CHUNK`-sized reads.
    pub fn chunks(&self) -> std::slice::Chunks<'_, u8> {
        self.bytes.chunks(CHUNK)
    }
}

/// Default seed; change it and every number in the README changes.
pub const SEED: u64 = 0x5EED_1E55_C0FF_EE00;

/// Default stanza count for [`Profile::Typical`] (≈ 1 MB).
pub const TYPICAL_STANZAS: usize = 2000;

/// Default stanza count for [`Profile::Large`] (≈ 3 MB).
pub const LARGE_STANZAS: usize = 200;

/// Generate the default corpus for `profile`.
pub fn generate(profile: Profile) -> Corpus {
    match profile {
        Profile::Typical => generate_with(profile, TYPICAL_STANZAS, SEED),
        Profile::Large => generate_with(profile, LARGE_STANZAS, SEED),
    }
}

/// Generate `stanzas` stanzas of `profile` from `seed`.
pub fn generate_with(profile: Profile, stanzas: usize, seed: u64) -> Corpus {
    let mut g = Gen::new(seed);
    let mut out = String::with_capacity(stanzas * 600 + 256);
    out.push_str(STREAM_HEADER);
    let mut stanza_bytes = 0;
    let mut keepalives = 0;
    for i in 0..stanzas {
        // Whitespace keepalives (RFC 6120 §4.6.1) now and then.
        if i > 0 && g.below(48) == 0 {
            out.push(if g.below(2) == 0 { ' ' } else { '\n' });
            keepalives += 1;
        }
        let start = out.len();
        match profile {
            Profile::Typical => g.typical_stanza(&mut out),
            Profile::Large => g.large_stanza(&mut out),
        }
        stanza_bytes += out.len() - start;
    }
    out.push_str(STREAM_FOOTER);
    Corpus {
        profile,
        bytes: out.into_bytes(),
        stanzas,
        keepalives,
        stanza_bytes,
    }
}

// ---------------------------------------------------------------------------
// PRNG

/// xorshift64* — tiny, fast, good enough for test data, fully deterministic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Never zero.
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

// ---------------------------------------------------------------------------
// Vocabulary

const USERS: &[&str] = &[
    "juliet",
    "romeo",
    "nurse",
    "benvolio",
    "mercutio",
    "tybalt",
    "laurence",
    "paris",
    "capulet",
    "montague",
    "escalus",
    "balthasar",
    "rosaline",
    "sampson",
    "gregory",
    "anna.k",
    "björn",
    "zoë",
    "li.wei",
    "marie-claire",
];

const DOMAINS: &[&str] = &[
    "example.org",
    "example.com",
    "capulet.lit",
    "montague.lit",
    "jabber.example.net",
];

const RESOURCES: &[&str] = &[
    "Conversations.Xa9bQ2",
    "gajim.4F7TZ1LW",
    "dino.3a6f0d2c",
    "Monal-iOS.9c1e",
    "profanity",
    "balcony",
    "orchard",
    "psi+",
];

const MUCS: &[&str] = &[
    "coven@chat.shakespeare.lit",
    "verona@conference.example.org",
];

const CLIENT_NODES: &[&str] = &[
    "http://conversations.im",
    "https://gajim.org",
    "https://dino.im",
    "https://monal-im.org",
    "http://profanity-im.github.io",
];

/// Words for message bodies: mostly English, some German, French, Russian,
/// Japanese, emoji, and characters that must be escaped.
const WORDS: &[&str] = &[
    "the",
    "a",
    "to",
    "and",
    "of",
    "is",
    "it",
    "you",
    "that",
    "in",
    "I",
    "for",
    "on",
    "was",
    "with",
    "are",
    "be",
    "this",
    "have",
    "not",
    "but",
    "at",
    "what",
    "we",
    "so",
    "can",
    "just",
    "do",
    "there",
    "if",
    "about",
    "meeting",
    "tomorrow",
    "lunch",
    "today",
    "sounds",
    "good",
    "thanks",
    "sure",
    "maybe",
    "later",
    "tonight",
    "server",
    "deploy",
    "release",
    "build",
    "broken",
    "again",
    "fixed",
    "ticket",
    "review",
    "please",
    "patch",
    "wherefore",
    "art",
    "thou",
    "Romeo",
    "balcony",
    "moon",
    "swear",
    "sweet",
    "sorrow",
    "parting",
    "night",
    "rose",
    "name",
    "smell",
    "love",
    "light",
    "window",
    "breaks",
    "ok",
    "lol",
    "haha",
    "yes",
    "no",
    "hmm",
    "brb",
    "omw",
    "👍",
    "😂",
    "🎉",
    "❤️",
    "Grüße",
    "schön",
    "Straße",
    "über",
    "Mädchen",
    "Brötchen",
    "vielleicht",
    "très",
    "déjà",
    "où",
    "à",
    "ça",
    "garçon",
    "naïve",
    "crème",
    "привет",
    "спасибо",
    "завтра",
    "хорошо",
    "да",
    "こんにちは",
    "ありがとう",
    "明日",
    "会議",
    "了解",
    "R&D",
    "Q&A",
    "AT&T",
    "<3",
    "a<b",
    "x>y",
    "->",
    "\"quoted\"",
    "it's",
    "don't",
    "https://example.org/a?b=1&c=2",
    "1<2&&3>2",
    "&amp;",
];

const SHOWS: &[&str] = &["away", "chat", "dnd", "xa"];

const STATUSES: &[&str] = &[
    "In a meeting",
    "Working from home 🏠",
    "Auf Reisen – bitte per E-Mail",
    "Ne pas déranger",
    "На связи",
    "Back at 3 <maybe>",
    "Coffee & code",
    "",
];

const FEATURES: &[&str] = &[
    "http://jabber.org/protocol/caps",
    "http://jabber.org/protocol/chatstates",
    "http://jabber.org/protocol/disco#info",
    "http://jabber.org/protocol/disco#items",
    "http://jabber.org/protocol/muc",
    "http://jabber.org/protocol/ibb",
    "http://jabber.org/protocol/si",
    "http://jabber.org/protocol/si/profile/file-transfer",
    "http://jabber.org/protocol/bytestreams",
    "http://jabber.org/protocol/nick+notify",
    "http://jabber.org/protocol/mood+notify",
    "http://jabber.org/protocol/tune+notify",
    "jabber:iq:version",
    "jabber:iq:last",
    "jabber:x:conference",
    "jabber:x:oob",
    "urn:xmpp:avatar:metadata+notify",
    "urn:xmpp:bookmarks:1+notify",
    "urn:xmpp:chat-markers:0",
    "urn:xmpp:eme:0",
    "urn:xmpp:hashes:2",
    "urn:xmpp:jingle:1",
    "urn:xmpp:jingle:apps:file-transfer:5",
    "urn:xmpp:jingle:apps:rtp:1",
    "urn:xmpp:jingle:apps:rtp:audio",
    "urn:xmpp:jingle:apps:rtp:video",
    "urn:xmpp:jingle:transports:ice-udp:1",
    "urn:xmpp:jingle:transports:s5b:1",
    "urn:xmpp:message-correct:0",
    "urn:xmpp:message-retract:1",
    "urn:xmpp:ping",
    "urn:xmpp:receipts",
    "urn:xmpp:reactions:0",
    "urn:xmpp:time",
    "urn:xmpp:omemo:2:devices+notify",
    "eu.siacs.conversations.axolotl.devicelist+notify",
];

const GROUPS: &[&str] = &[
    "Friends",
    "Family",
    "Work",
    "Montagues",
    "Capulets",
    "Verona Ü",
];

// ---------------------------------------------------------------------------
// Generator

struct Gen {
    rng: Rng,
    next_id: u64,
}

impl Gen {
    fn new(seed: u64) -> Self {
        Gen {
            rng: Rng::new(seed),
            next_id: 1,
        }
    }

    /// Uniform in `0..n` (n > 0). Modulo bias is irrelevant here.
    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n as u64) as usize
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn bare_jid(&mut self) -> String {
        let u = self.pick(USERS);
        let d = self.pick(DOMAINS);
        format!("{u}@{d}")
    }

    fn full_jid(&mut self) -> String {
        let b = self.bare_jid();
        let r = self.pick(RESOURCES);
        format!("{b}/{r}")
    }

    /// Short stanza id like real clients produce.
    fn short_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}{:x}", self.alnum(8), self.next_id)
    }

    fn uuid(&mut self) -> String {
        let a = self.rng.next_u64();
        let b = self.rng.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n).map(|_| A[self.below(A.len())] as char).collect()
    }

    fn base64(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s: String = (0..n).map(|_| A[self.below(A.len())] as char).collect();
        s.push('=');
        s
    }

    /// Roughly `approx` bytes of (unescaped) human text.
    fn text(&mut self, approx: usize) -> String {
        let mut s = String::with_capacity(approx + 16);
        while s.len() < approx {
            if !s.is_empty() {
                s.push(if self.chance(6) { '\n' } else { ' ' });
            }
            s.push_str(self.pick(WORDS));
            if self.chance(8) {
                s.push_str(self.pick(&[".", ",", "!", "?", "…", ":)"]));
            }
        }
        s
    }

    /// Message body lengths: mostly short, long tail.
    fn body_len(&mut self) -> usize {
        match self.below(100) {
            0..=44 => self.range(10, 160),
            45..=79 => self.range(160, 500),
            80..=94 => self.range(400, 1000),
            _ => self.range(1000, 2500),
        }
    }

    fn id_attr(&mut self) -> String {
        self.short_id()
    }

    // -- typical ------------------------------------------------------------

    fn typical_stanza(&mut self, o: &mut String) {
        match self.below(100) {
            0..=35 => self.chat_message(o),
            36..=42 => self.chat_state_message(o),
            43..=49 => self.receipt_message(o),
            50..=52 => self.groupchat_message(o),
            53..=66 => self.presence(o),
            67..=69 => self.presence_unavailable(o),
            70..=73 => self.disco_info_get(o),
            74..=79 => self.disco_info_result(o),
            80..=83 => self.roster_result(o, 6, 18),
            84..=85 => self.roster_push(o),
            86..=93 => self.ping_get(o),
            _ => self.ping_result(o),
        }
    }

    fn chat_message(&mut self, o: &mut String) {
        let to = self.full_jid();
        let id = self.uuid();
        let len = self.body_len();
        let body = self.text(len);
        let _ = write!(o, "<message xml:lang='en' to='{to}' id='{id}' type='chat'>");
        o.push_str("<body>");
        escape_text(o, &body);
        o.push_str("</body>");
        o.push_str("<active xmlns='http://jabber.org/protocol/chatstates'/>");
        if self.chance(80) {
            o.push_str("<request xmlns='urn:xmpp:receipts'/>");
        }
        if self.chance(60) {
            o.push_str("<markable xmlns='urn:xmpp:chat-markers:0'/>");
        }
        let _ = write!(o, "<origin-id xmlns='urn:xmpp:sid:0' id='{id}'/>");
        if self.chance(10) {
            let thread = self.uuid();
            let _ = write!(o, "<thread>{thread}</thread>");
        }
        if self.chance(5) {
            o.push_str("<store xmlns='urn:xmpp:hints'/>");
        }
        o.push_str("</message>");
    }

    fn chat_state_message(&mut self, o: &mut String) {
        let to = self.full_jid();
        let id = self.short_id();
        let state = self.pick(&["composing", "paused", "active", "inactive", "gone"]);
        let _ = write!(
            o,
            "<message to='{to}' id='{id}' type='chat'>\
             <{state} xmlns='http://jabber.org/protocol/chatstates'/>\
             <no-store xmlns='urn:xmpp:hints'/></message>"
        );
    }

    fn receipt_message(&mut self, o: &mut String) {
        let to = self.full_jid();
        let id = self.short_id();
        let acked = self.uuid();
        if self.chance(50) {
            let _ = write!(
                o,
                "<message to='{to}' id='{id}'>\
                 <received xmlns='urn:xmpp:receipts' id='{acked}'/>\
                 <store xmlns='urn:xmpp:hints'/></message>"
            );
        } else {
            let _ = write!(
                o,
                "<message to='{to}' id='{id}' type='chat'>\
                 <displayed xmlns='urn:xmpp:chat-markers:0' id='{acked}'/>\
                 <store xmlns='urn:xmpp:hints'/></message>"
            );
        }
    }

    fn groupchat_message(&mut self, o: &mut String) {
        let room = self.pick(MUCS);
        let id = self.uuid();
        let len = self.body_len();
        let body = self.text(len);
        let _ = write!(o, "<message to='{room}' id='{id}' type='groupchat'><body>");
        escape_text(o, &body);
        let _ = write!(
            o,
            "</body><active xmlns='http://jabber.org/protocol/chatstates'/>\
             <origin-id xmlns='urn:xmpp:sid:0' id='{id}'/></message>"
        );
    }

    fn presence(&mut self, o: &mut String) {
        let id = self.short_id();
        if self.chance(25) {
            // Directed presence (e.g. MUC join).
            let room = self.pick(MUCS);
            let nick = self.pick(USERS);
            let _ = write!(o, "<presence to='{room}/{nick}' id='{id}'>");
        } else {
            let _ = write!(o, "<presence id='{id}'>");
        }
        if self.chance(45) {
            let show = self.pick(SHOWS);
            let _ = write!(o, "<show>{show}</show>");
        }
        let status = self.pick(STATUSES);
        if !status.is_empty() {
            o.push_str("<status>");
            escape_text(o, status);
            o.push_str("</status>");
        }
        let prio = self.range(0, 50);
        let _ = write!(o, "<priority>{prio}</priority>");
        let node = self.pick(CLIENT_NODES);
        let ver = self.base64(27);
        let _ = write!(
            o,
            "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='{node}' ver='{ver}'/>"
        );
        if self.chance(50) {
            let hash = self.alnum(40).to_ascii_lowercase();
            let _ = write!(
                o,
                "<x xmlns='vcard-temp:x:update'><photo>{hash}</photo></x>"
            );
        }
        if self.chance(20) {
            let idle = 1_700_000_000 + self.below(10_000_000);
            let _ = write!(
                o,
                "<idle xmlns='urn:xmpp:idle:1' since='{}'/>",
                iso8601(idle as u64)
            );
        }
        o.push_str("</presence>");
    }

    fn presence_unavailable(&mut self, o: &mut String) {
        let id = self.short_id();
        let _ = write!(o, "<presence type='unavailable' id='{id}'>");
        if self.chance(50) {
            o.push_str("<status>");
            let s = self.text(30);
            escape_text(o, &s);
            o.push_str("</status>");
        }
        o.push_str("</presence>");
    }

    fn disco_info_get(&mut self, o: &mut String) {
        let to = self.full_jid();
        let id = self.short_id();
        if self.chance(50) {
            let node = self.pick(CLIENT_NODES);
            let ver = self.base64(27);
            let _ = write!(
                o,
                "<iq to='{to}' id='{id}' type='get'>\
                 <query xmlns='http://jabber.org/protocol/disco#info' node='{node}#{ver}'/></iq>"
            );
        } else {
            let _ = write!(
                o,
                "<iq to='{to}' id='{id}' type='get'>\
                 <query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
            );
        }
    }

    fn disco_info_result(&mut self, o: &mut String) {
        let to = self.full_jid();
        let id = self.short_id();
        let node = self.pick(CLIENT_NODES);
        let ver = self.base64(27);
        let _ = write!(
            o,
            "<iq to='{to}' id='{id}' type='result'>\
             <query xmlns='http://jabber.org/protocol/disco#info' node='{node}#{ver}'>\
             <identity category='client' type='phone' name='Conversations'/>"
        );
        if self.chance(30) {
            o.push_str(
                "<identity category='client' type='pc' xml:lang='de' name='Gajim für Linux'/>",
            );
        }
        let n = self.range(12, 28);
        let start = self.below(FEATURES.len());
        for k in 0..n {
            let f = FEATURES[(start + k * 7) % FEATURES.len()];
            let _ = write!(o, "<feature var='{f}'/>");
        }
        o.push_str("</query></iq>");
    }

    fn roster_item(&mut self, o: &mut String) {
        let jid = self.bare_jid();
        let name = self.pick(USERS);
        let sub = self.pick(&["both", "both", "both", "to", "from", "none"]);
        let _ = write!(o, "<item jid='{jid}' name='");
        escape_attr(o, &capitalise(name));
        let _ = write!(o, "' subscription='{sub}'");
        if self.chance(10) {
            o.push_str(" ask='subscribe'");
        }
        if self.chance(70) {
            o.push('>');
            let g = self.pick(GROUPS);
            o.push_str("<group>");
            escape_text(o, g);
            o.push_str("</group>");
            if self.chance(20) {
                let g = self.pick(GROUPS);
                o.push_str("<group>");
                escape_text(o, g);
                o.push_str("</group>");
            }
            o.push_str("</item>");
        } else {
            o.push_str("/>");
        }
    }

    fn roster_result(&mut self, o: &mut String, lo: usize, hi: usize) {
        let to = self.full_jid();
        let id = self.short_id();
        let ver = self.alnum(12);
        let _ = write!(
            o,
            "<iq to='{to}' id='{id}' type='result'><query xmlns='jabber:iq:roster' ver='{ver}'>"
        );
        let n = self.range(lo, hi);
        for _ in 0..n {
            self.roster_item(o);
        }
        o.push_str("</query></iq>");
    }

    fn roster_push(&mut self, o: &mut String) {
        let id = self.short_id();
        let _ = write!(
            o,
            "<iq id='{id}' type='set'><query xmlns='jabber:iq:roster'>"
        );
        self.roster_item(o);
        o.push_str("</query></iq>");
    }

    fn ping_get(&mut self, o: &mut String) {
        let id = self.short_id();
        if self.chance(60) {
            let _ = write!(
                o,
                "<iq to='example.org' id='{id}' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"
            );
        } else {
            let to = self.full_jid();
            let _ = write!(
                o,
                "<iq to='{to}' id='{id}' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"
            );
        }
    }

    fn ping_result(&mut self, o: &mut String) {
        let id = self.short_id();
        let _ = write!(o, "<iq to='example.org' id='{id}' type='result'/>");
    }

    // -- large --------------------------------------------------------------

    fn large_stanza(&mut self, o: &mut String) {
        match self.below(100) {
            0..=34 => self.long_message(o),
            35..=64 => self.pubsub_microblog(o),
            65..=79 => self.roster_result(o, 90, 160),
            80..=89 => self.avatar_publish(o),
            _ => self.room_directory(o),
        }
    }

    fn long_message(&mut self, o: &mut String) {
        let to = self.full_jid();
        let id = self.uuid();
        let len = self.range(8_000, 19_000);
        let body = self.text(len);
        let _ = write!(o, "<message to='{to}' id='{id}' type='chat'><body>");
        escape_text(o, &body);
        let _ = write!(
            o,
            "</body><active xmlns='http://jabber.org/protocol/chatstates'/>\
             <request xmlns='urn:xmpp:receipts'/>\
             <origin-id xmlns='urn:xmpp:sid:0' id='{id}'/></message>"
        );
    }

    /// XEP-0060 items retrieval result: a page of XEP-0277 microblog
    /// entries (many small children, lots of attributes).
    fn pubsub_microblog(&mut self, o: &mut String) {
        let id = self.short_id();
        let owner = self.bare_jid();
        let to = self.full_jid();
        let _ = write!(
            o,
            "<iq from='{owner}' to='{to}' id='{id}' type='result'>\
             <pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <items node='urn:xmpp:microblog:0'>"
        );
        let items = self.range(10, 26);
        for _ in 0..items {
            let item_id = self.uuid();
            let title_len = self.range(20, 80);
            let title = self.text(title_len);
            let content_len = self.range(150, 700);
            let content = self.text(content_len);
            let ts = iso8601(1_700_000_000 + self.below(30_000_000) as u64);
            let _ = write!(
                o,
                "<item id='{item_id}'><entry xmlns='http://www.w3.org/2005/Atom'>\
                 <author><name>{owner}</name><uri>xmpp:{owner}</uri></author><title type='text'>"
            );
            escape_text(o, &title);
            o.push_str("</title><content type='text'>");
            escape_text(o, &content);
            let _ = write!(
                o,
                "</content><link rel='alternate' href='xmpp:{owner}?;node=urn%3Axmpp%3Amicroblog%3A0;item={item_id}'/>\
                 <id>tag:{owner},2024:posts-{item_id}</id>\
                 <published>{ts}</published><updated>{ts}</updated>"
            );
            let cats = self.range(0, 4);
            for _ in 0..cats {
                let term = self.pick(&["xmpp", "rust", "verona", "release", "travel", "food"]);
                let _ = write!(o, "<category term='{term}'/>");
            }
            o.push_str("</entry></item>");
        }
        o.push_str("</items></pubsub></iq>");
    }

    /// Avatar publish (XEP-0084): one big base64 text node.
    fn avatar_publish(&mut self, o: &mut String) {
        let id = self.short_id();
        let sha = self.alnum(40).to_ascii_lowercase();
        let len = self.range(8_000, 20_000);
        let _ = write!(
            o,
            "<iq id='{id}' type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='urn:xmpp:avatar:data'><item id='{sha}'>\
             <data xmlns='urn:xmpp:avatar:data'>"
        );
        // Line-wrapped base64, as some clients send it.
        let mut left = len;
        while left > 0 {
            let n = left.min(76);
            let line = self.base64(n - 1);
            o.push_str(&line);
            o.push('\n');
            left -= n;
        }
        o.push_str("</data></item></publish></pubsub></iq>");
    }

    /// MUC room directory (disco#items result with many items).
    fn room_directory(&mut self, o: &mut String) {
        let to = self.full_jid();
        let id = self.short_id();
        let _ = write!(
            o,
            "<iq from='conference.example.org' to='{to}' id='{id}' type='result'>\
             <query xmlns='http://jabber.org/protocol/disco#items'>"
        );
        let n = self.range(100, 200);
        for _ in 0..n {
            let room_len = self.range(4, 14);
            let room = self.alnum(room_len).to_ascii_lowercase();
            let name_len = self.range(10, 40);
            let name = self.text(name_len);
            let _ = write!(o, "<item jid='{room}@conference.example.org' name='");
            escape_attr(o, &name);
            o.push_str("'/>");
        }
        let first = self.alnum(10);
        let last = self.alnum(10);
        let _ = write!(
            o,
            "<set xmlns='http://jabber.org/protocol/rsm'><first index='0'>{first}</first>\
             <last>{last}</last><count>{n}</count></set></query></iq>"
        );
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Seconds since the epoch to `YYYY-MM-DDThh:mm:ssZ` (proleptic Gregorian).
fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Escape character data the way most XMPP libraries serialise it.
fn escape_text(o: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
}

/// Escape a value for a single-quoted attribute.
fn escape_attr(o: &mut String, s: &str) {
    escape_text(o, s)
}
