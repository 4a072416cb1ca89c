//! XMPP addresses (JIDs) as defined by RFC 7622.
//!
//! A JID is `[ localpart "@" ] domainpart [ "/" resourcepart ]`. Every value of
//! the types in this module holds the *prepared and enforced* form of each
//! part, so equality, hashing and ordering are plain byte comparisons of that
//! form (RFC 7622 §3.1 "comparison").
//!
//! * **localpart** — PRECIS `UsernameCaseMapped` (RFC 8265 §3.3): width
//!   mapping, `IdentifierClass`, Unicode lower case, NFC, Bidi rule; then the
//!   eight extra characters `" & ' / : < > @` that RFC 7622 §3.3.1 forbids.
//! * **domainpart** — RFC 7622 §3.2: an IPv4 literal, an IPv6 literal in
//!   square brackets, or an IDNA2008 domain name. The RFC 5895 mapping (lower
//!   case, width mapping, U+3002 → `.`, NFC) is applied, A-labels are decoded,
//!   and the **U-label form** is stored (RFC 7622 §3.2.1: "each A-label MUST be
//!   converted to a U-label"). So `xn--mnchen-3ya.example` and
//!   `MÜNCHEN.example` both become `münchen.example`. IPv6 literals are stored
//!   in RFC 5952 canonical text (`[2001:DB8:0::1]` → `[2001:db8::1]`).
//! * **resourcepart** — PRECIS `OpaqueString` (RFC 8265 §4.2): non-ASCII
//!   spaces become U+0020, NFC, `FreeformClass`; case is preserved.
//!
//! Each part must be 1..=1023 octets after preparation.
//!
//! A JID is stored as one prepared string plus two offsets (one heap
//! allocation per JID). Parsing ASCII-only parts takes a fast path that is
//! equivalent to the full profile for ASCII input (this is unit-tested against
//! the slow path).

use core::net::{Ipv4Addr, Ipv6Addr};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use precis_profiles::precis_core::profile::{PrecisFastInvocation, Rules, stabilize};
use precis_profiles::precis_core::{
    Error as PrecisError, IdentifierClass, StringClass, UnexpectedError,
};
use precis_profiles::{OpaqueString, UsernameCaseMapped};
use unicode_normalization::UnicodeNormalization;

/// Maximum length in octets of each prepared part (RFC 7622 §3.2, §3.3, §3.4).
pub const MAX_PART_LEN: usize = 1023;

/// Raw parts longer than this are rejected as too long before any Unicode
/// processing. No preparation step shrinks a string by more than a factor of
/// three (full-width → ASCII, Hangul L+V+T → syllable, U+3000 → U+0020), so a
/// raw part over 4 × 1023 octets can never prepare to ≤ 1023 octets. The cap
/// bounds the work done on hostile input (some PRECIS context rules are
/// quadratic in the string length).
const MAX_RAW_PART_LEN: usize = 4 * MAX_PART_LEN;

/// Maximum length of one DNS label in its A-label (ASCII) form (RFC 5890 §2.3.1).
const MAX_LABEL_LEN: usize = 63;

/// Characters RFC 7622 §3.3.1 forbids in a localpart on top of UsernameCaseMapped.
const LOCAL_FORBIDDEN: [char; 8] = ['"', '&', '\'', '/', ':', '<', '>', '@'];

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// The part of a JID an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JidPart {
    /// The localpart (before `@`).
    Local,
    /// The domainpart.
    Domain,
    /// The resourcepart (after `/`).
    Resource,
}

/// Why a PRECIS profile (RFC 8264/8265) rejected a localpart or resourcepart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrecisFailure {
    /// A code point is not allowed by the string class (DISALLOWED,
    /// unassigned, or a CONTEXTJ/CONTEXTO code point whose rule fails).
    Disallowed(char),
    /// A contextual rule could not be applied (e.g. U+200D ZERO WIDTH JOINER
    /// at the very start of the string, with nothing before it).
    ContextRule,
    /// The string violates the Bidi rule (RFC 5893), or its preparation did
    /// not stabilise (RFC 8264 §7).
    Invalid,
}

impl fmt::Display for PrecisFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disallowed(c) => write!(f, "code point U+{:04X} is not allowed", u32::from(*c)),
            Self::ContextRule => f.write_str("a contextual rule (CONTEXTJ/CONTEXTO) fails"),
            Self::Invalid => f.write_str("violates the Bidi rule or does not stabilise"),
        }
    }
}

/// Why a string is not a valid JID (RFC 7622).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JidError {
    /// `@` with nothing before it.
    EmptyLocal,
    /// No domainpart (empty input, `/x`, `user@`, or just `.`).
    EmptyDomain,
    /// `/` with nothing after it.
    EmptyResource,
    /// The prepared localpart exceeds 1023 octets.
    LocalTooLong,
    /// The prepared domainpart exceeds 1023 octets.
    DomainTooLong,
    /// The prepared resourcepart exceeds 1023 octets.
    ResourceTooLong,
    /// The prepared localpart contains one of `" & ' / : < > @` (RFC 7622 §3.3.1).
    LocalForbiddenChar(char),
    /// The localpart fails the PRECIS UsernameCaseMapped profile (RFC 8265 §3.3).
    LocalPrecis(PrecisFailure),
    /// The resourcepart fails the PRECIS OpaqueString profile (RFC 8265 §4.2).
    ResourcePrecis(PrecisFailure),
    /// The domainpart has an empty label (`a..b`, `.a`, or two trailing dots).
    DomainEmptyLabel,
    /// A domain label is longer than 63 octets in A-label form.
    DomainLabelTooLong,
    /// The domainpart is not a valid IDNA2008 name: a non-LDH ASCII character
    /// (space, `@`, `_`, …), bad hyphen placement, an invalid A-label, a code
    /// point that UTS 46 would have to map beyond the RFC 5895 mapping (e.g.
    /// U+2163 `Ⅳ`), or a CONTEXTJ/Bidi failure.
    DomainIdna,
    /// A U-label contains a code point that is not PVALID in IDNA2008
    /// (e.g. a symbol such as `♚`, or U+00B7 outside `l·l`).
    DomainDisallowedChar(char),
    /// The domainpart starts with `[` but is not a bracketed IPv6 address.
    BadIpLiteral,
    /// A full JID was required but there is no resourcepart.
    MissingResource,
    /// A bare JID was required but there is a resourcepart.
    UnexpectedResource,
}

impl JidError {
    /// The part this error refers to, if it refers to one part.
    pub fn part(&self) -> Option<JidPart> {
        match self {
            Self::EmptyLocal
            | Self::LocalTooLong
            | Self::LocalForbiddenChar(_)
            | Self::LocalPrecis(_) => Some(JidPart::Local),
            Self::EmptyDomain
            | Self::DomainTooLong
            | Self::DomainEmptyLabel
            | Self::DomainLabelTooLong
            | Self::DomainIdna
            | Self::DomainDisallowedChar(_)
            | Self::BadIpLiteral => Some(JidPart::Domain),
            Self::EmptyResource
            | Self::ResourceTooLong
            | Self::ResourcePrecis(_)
            | Self::MissingResource
            | Self::UnexpectedResource => Some(JidPart::Resource),
        }
    }
}

impl fmt::Display for JidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyLocal => f.write_str("empty localpart"),
            Self::EmptyDomain => f.write_str("empty domainpart"),
            Self::EmptyResource => f.write_str("empty resourcepart"),
            Self::LocalTooLong => f.write_str("localpart longer than 1023 octets"),
            Self::DomainTooLong => f.write_str("domainpart longer than 1023 octets"),
            Self::ResourceTooLong => f.write_str("resourcepart longer than 1023 octets"),
            Self::LocalForbiddenChar(c) => {
                write!(f, "character {c:?} is forbidden in a localpart")
            }
            Self::LocalPrecis(p) => write!(f, "invalid localpart: {p}"),
            Self::ResourcePrecis(p) => write!(f, "invalid resourcepart: {p}"),
            Self::DomainEmptyLabel => f.write_str("domainpart has an empty label"),
            Self::DomainLabelTooLong => f.write_str("domain label longer than 63 octets"),
            Self::DomainIdna => f.write_str("domainpart is not a valid IDNA2008 domain name"),
            Self::DomainDisallowedChar(c) => write!(
                f,
                "code point U+{:04X} is not allowed in a domainpart",
                u32::from(*c)
            ),
            Self::BadIpLiteral => f.write_str("malformed IP literal in domainpart"),
            Self::MissingResource => f.write_str("a full JID needs a resourcepart"),
            Self::UnexpectedResource => f.write_str("a bare JID cannot have a resourcepart"),
        }
    }
}

impl std::error::Error for JidError {}

// ---------------------------------------------------------------------------
// Part preparation
// ---------------------------------------------------------------------------

fn char_of(cp: u32) -> PrecisFailure {
    char::from_u32(cp).map_or(PrecisFailure::Invalid, PrecisFailure::Disallowed)
}

fn precis_failure(e: PrecisError) -> PrecisFailure {
    match e {
        PrecisError::BadCodepoint(info) => char_of(info.cp),
        PrecisError::Unexpected(
            UnexpectedError::ContextRuleNotApplicable(info)
            | UnexpectedError::MissingContextRule(info),
        ) => char_of(info.cp),
        PrecisError::Unexpected(UnexpectedError::Undefined) => PrecisFailure::ContextRule,
        PrecisError::Unexpected(UnexpectedError::ProfileRuleNotApplicable)
        | PrecisError::Invalid => PrecisFailure::Invalid,
    }
}

/// Prepares and enforces a localpart (RFC 7622 §3.3).
fn prep_local(raw: &str) -> Result<Cow<'_, str>, JidError> {
    if raw.is_empty() {
        return Err(JidError::EmptyLocal);
    }
    if raw.len() > MAX_RAW_PART_LEN {
        return Err(JidError::LocalTooLong);
    }
    let prepared = if let Some(fast) = ascii_local(raw) {
        fast
    } else {
        stabilize(raw, |s: &str| {
            <UsernameCaseMapped as PrecisFastInvocation>::enforce(s)
        })
        .map_err(|e| JidError::LocalPrecis(precis_failure(e)))?
    };
    if let Some(c) = prepared.chars().find(|c| LOCAL_FORBIDDEN.contains(c)) {
        return Err(JidError::LocalForbiddenChar(c));
    }
    if prepared.len() > MAX_PART_LEN {
        return Err(JidError::LocalTooLong);
    }
    Ok(prepared)
}

/// UsernameCaseMapped restricted to printable ASCII: every code point in
/// U+0021..=U+007E is PVALID in IdentifierClass, width mapping, NFC and the
/// Bidi rule are no-ops, and Unicode lower case is ASCII lower case. Returns
/// `None` if the input is not entirely printable ASCII.
fn ascii_local(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return None;
    }
    Some(if raw.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(raw.to_ascii_lowercase())
    } else {
        Cow::Borrowed(raw)
    })
}

/// Prepares and enforces a resourcepart (RFC 7622 §3.4).
fn prep_resource(raw: &str) -> Result<Cow<'_, str>, JidError> {
    if raw.is_empty() {
        return Err(JidError::EmptyResource);
    }
    if raw.len() > MAX_RAW_PART_LEN {
        return Err(JidError::ResourceTooLong);
    }
    // OpaqueString on U+0020..=U+007E is the identity: ASCII7 and SPACE are
    // PVALID in FreeformClass, and there is nothing to map or normalise.
    let prepared = if raw.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        Cow::Borrowed(raw)
    } else {
        stabilize(raw, |s: &str| {
            <OpaqueString as PrecisFastInvocation>::enforce(s)
        })
        .map_err(|e| JidError::ResourcePrecis(precis_failure(e)))?
    };
    if prepared.len() > MAX_PART_LEN {
        return Err(JidError::ResourceTooLong);
    }
    Ok(prepared)
}

/// Prepares and enforces a domainpart (RFC 7622 §3.2).
fn prep_domain(raw: &str) -> Result<Cow<'_, str>, JidError> {
    // §3.2: strip one trailing label separator before anything else.
    let d = raw.strip_suffix('.').unwrap_or(raw);
    if d.is_empty() {
        return Err(JidError::EmptyDomain);
    }
    if d.len() > MAX_RAW_PART_LEN {
        return Err(JidError::DomainTooLong);
    }
    if let Some(inner) = d.strip_prefix('[') {
        let addr = inner
            .strip_suffix(']')
            .and_then(|a| a.parse::<Ipv6Addr>().ok())
            .ok_or(JidError::BadIpLiteral)?;
        return Ok(Cow::Owned(format!("[{addr}]")));
    }
    if let Ok(v4) = d.parse::<Ipv4Addr>() {
        let canonical = v4.to_string();
        return Ok(if canonical == d {
            Cow::Borrowed(d)
        } else {
            Cow::Owned(canonical)
        });
    }
    if let Some(fast) = ascii_domain(d) {
        return fast;
    }
    idna_domain(d).map(Cow::Owned)
}

/// Fast path for domains made only of ASCII letters, digits, `-` and `.`
/// whose labels cannot be A-labels or reserved (`??--`) labels. For such
/// input IDNA2008/UTS 46 processing is exactly ASCII lower-casing plus the
/// LDH and hyphen-position checks done here. Returns `None` to defer to the
/// full path.
fn ascii_domain(d: &str) -> Option<Result<Cow<'_, str>, JidError>> {
    if !d
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return None;
    }
    for label in d.split('.') {
        if label.is_empty() {
            return Some(Err(JidError::DomainEmptyLabel));
        }
        if label.len() > MAX_LABEL_LEN {
            return Some(Err(JidError::DomainLabelTooLong));
        }
        if label.starts_with('-') || label.ends_with('-') || label.get(2..4) == Some("--") {
            return None;
        }
    }
    if d.len() > MAX_PART_LEN {
        return Some(Err(JidError::DomainTooLong));
    }
    Some(Ok(if d.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(d.to_ascii_lowercase())
    } else {
        Cow::Borrowed(d)
    }))
}

/// The RFC 5895 mapping: lower case, width mapping, U+3002 IDEOGRAPHIC FULL
/// STOP to `.`, NFC.
fn rfc5895_map(d: &str) -> Result<String, JidError> {
    let lower: String = d.chars().flat_map(char::to_lowercase).collect();
    let width = UsernameCaseMapped::new()
        .width_mapping_rule(lower)
        .map_err(|_| JidError::DomainIdna)?;
    Ok(width
        .chars()
        .map(|c| if c == '\u{3002}' { '.' } else { c })
        .nfc()
        .collect())
}

/// Full IDNA2008 path. Returns the U-label form.
///
/// The `idna` crate implements UTS 46, which accepts more than IDNA2008
/// (symbols flagged NV8, and a wider mapping). IDNA2008 strictness is
/// restored by (a) requiring that, after the RFC 5895 mapping, UTS 46 leaves
/// every non-A-label unchanged (so UTS 46-only mappings such as `ⅳ` → `iv`
/// or the removal of U+00AD are rejected), and (b) checking every non-ASCII
/// U-label against the PRECIS IdentifierClass, whose derivation (RFC 8264 §8)
/// reuses the IDNA2008 property rules of RFC 5892 and rejects symbols and
/// punctuation while applying the CONTEXTO rules.
fn idna_domain(d: &str) -> Result<String, JidError> {
    let mapped = rfc5895_map(d)?;
    if mapped.split('.').any(str::is_empty) {
        return Err(JidError::DomainEmptyLabel);
    }
    let uts46 = Uts46::new();
    let ascii = uts46
        .to_ascii(
            mapped.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            DnsLength::Ignore,
        )
        .map_err(|_| JidError::DomainIdna)?;
    if ascii.split('.').any(|l| l.len() > MAX_LABEL_LEN) {
        return Err(JidError::DomainLabelTooLong);
    }
    let (unicode, result) = uts46.to_unicode(ascii.as_bytes(), AsciiDenyList::STD3, Hyphens::Check);
    result.map_err(|_| JidError::DomainIdna)?;
    if mapped.split('.').count() != unicode.split('.').count() {
        return Err(JidError::DomainIdna);
    }
    for (m, u) in mapped.split('.').zip(unicode.split('.')) {
        if !m.starts_with("xn--") && m != u {
            return Err(JidError::DomainIdna);
        }
        if !u.is_ascii() {
            IdentifierClass::default()
                .allows(u)
                .map_err(|e| match precis_failure(e) {
                    PrecisFailure::Disallowed(c) => JidError::DomainDisallowedChar(c),
                    PrecisFailure::ContextRule | PrecisFailure::Invalid => JidError::DomainIdna,
                })?;
        }
    }
    if unicode.len() > MAX_PART_LEN {
        return Err(JidError::DomainTooLong);
    }
    Ok(unicode.into_owned())
}

// ---------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------

/// One prepared JID string with the positions of its separators.
///
/// Invariants: `at` is 0 (no localpart) or the byte index of the `@` that
/// ends the localpart; `slash` is 0 (no resourcepart) or the byte index of the
/// `/` that starts the resourcepart. Both are ASCII, hence char boundaries,
/// and 0 is never a valid separator index because no part is empty. The
/// total length is at most 3 × 1023 + 2, which fits `u16`.
#[derive(Clone)]
struct Inner {
    s: Box<str>,
    at: u16,
    slash: u16,
}

impl Inner {
    fn assemble(local: Option<&str>, domain: &str, resource: Option<&str>) -> Self {
        let len =
            local.map_or(0, |l| l.len() + 1) + domain.len() + resource.map_or(0, |r| r.len() + 1);
        debug_assert!(len <= 3 * MAX_PART_LEN + 2);
        let mut s = String::with_capacity(len);
        let mut at = 0;
        if let Some(l) = local {
            s.push_str(l);
            at = s.len() as u16;
            s.push('@');
        }
        s.push_str(domain);
        let mut slash = 0;
        if let Some(r) = resource {
            slash = s.len() as u16;
            s.push('/');
            s.push_str(r);
        }
        Self {
            s: s.into_boxed_str(),
            at,
            slash,
        }
    }

    fn parse(s: &str) -> Result<Self, JidError> {
        // RFC 7622 §3.1: first `/`, then first `@` in what precedes it.
        let (head, resource) = match s.split_once('/') {
            Some((h, r)) => (h, Some(r)),
            None => (s, None),
        };
        let (local, domain) = match head.split_once('@') {
            Some((l, d)) => (Some(l), d),
            None => (None, head),
        };
        Self::from_parts(local, domain, resource)
    }

    fn from_parts(
        local: Option<&str>,
        domain: &str,
        resource: Option<&str>,
    ) -> Result<Self, JidError> {
        let local = local.map(prep_local).transpose()?;
        let domain = prep_domain(domain)?;
        let resource = resource.map(prep_resource).transpose()?;
        Ok(Self::assemble(
            local.as_deref(),
            &domain,
            resource.as_deref(),
        ))
    }

    fn domain_start(&self) -> usize {
        if self.at == 0 {
            0
        } else {
            usize::from(self.at) + 1
        }
    }

    fn bare_end(&self) -> usize {
        if self.slash == 0 {
            self.s.len()
        } else {
            usize::from(self.slash)
        }
    }

    fn node(&self) -> Option<&str> {
        (self.at != 0).then(|| &self.s[..usize::from(self.at)])
    }

    fn domain(&self) -> &str {
        &self.s[self.domain_start()..self.bare_end()]
    }

    fn resource(&self) -> Option<&str> {
        (self.slash != 0).then(|| &self.s[usize::from(self.slash) + 1..])
    }

    fn to_bare(&self) -> Self {
        Self {
            s: self.s[..self.bare_end()].into(),
            at: self.at,
            slash: 0,
        }
    }

    fn into_bare(self) -> Self {
        if self.slash == 0 {
            return self;
        }
        let end = self.bare_end();
        let mut s = String::from(self.s);
        s.truncate(end);
        Self {
            s: s.into_boxed_str(),
            at: self.at,
            slash: 0,
        }
    }
}

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// A bare JID: `[localpart@]domainpart`, no resourcepart.
#[derive(Clone)]
pub struct BareJid(Inner);

/// A full JID: `[localpart@]domainpart/resourcepart`.
#[derive(Clone)]
pub struct FullJid(Inner);

/// Any JID, bare or full.
#[derive(Clone)]
pub enum Jid {
    /// A JID without resourcepart.
    Bare(BareJid),
    /// A JID with resourcepart.
    Full(FullJid),
}

impl BareJid {
    /// Builds a bare JID from raw (unprepared) parts; each part is prepared
    /// with its profile.
    pub fn new(local: Option<&str>, domain: &str) -> Result<Self, JidError> {
        Inner::from_parts(local, domain, None).map(Self)
    }

    /// The prepared localpart, if any.
    pub fn node(&self) -> Option<&str> {
        self.0.node()
    }

    /// The prepared localpart, if any (alias of [`node`](Self::node)).
    pub fn local(&self) -> Option<&str> {
        self.0.node()
    }

    /// The prepared domainpart (U-label form, or an IP literal).
    pub fn domain(&self) -> &str {
        self.0.domain()
    }

    /// The prepared JID as a string.
    pub fn as_str(&self) -> &str {
        &self.0.s
    }

    /// Appends a resourcepart (prepared with OpaqueString).
    pub fn with_resource(&self, resource: &str) -> Result<FullJid, JidError> {
        let r = prep_resource(resource)?;
        Ok(FullJid(Inner::assemble(
            self.node(),
            self.domain(),
            Some(&r),
        )))
    }
}

impl FullJid {
    /// Builds a full JID from raw (unprepared) parts; each part is prepared
    /// with its profile.
    pub fn new(local: Option<&str>, domain: &str, resource: &str) -> Result<Self, JidError> {
        Inner::from_parts(local, domain, Some(resource)).map(Self)
    }

    /// The prepared localpart, if any.
    pub fn node(&self) -> Option<&str> {
        self.0.node()
    }

    /// The prepared localpart, if any (alias of [`node`](Self::node)).
    pub fn local(&self) -> Option<&str> {
        self.0.node()
    }

    /// The prepared domainpart (U-label form, or an IP literal).
    pub fn domain(&self) -> &str {
        self.0.domain()
    }

    /// The prepared resourcepart.
    pub fn resource(&self) -> &str {
        self.0.resource().unwrap_or_default()
    }

    /// The prepared JID as a string.
    pub fn as_str(&self) -> &str {
        &self.0.s
    }

    /// The bare JID (a new allocation).
    pub fn to_bare(&self) -> BareJid {
        BareJid(self.0.to_bare())
    }

    /// The bare JID, reusing this JID's allocation.
    pub fn into_bare(self) -> BareJid {
        BareJid(self.0.into_bare())
    }
}

impl Jid {
    /// Builds a JID from raw (unprepared) parts; each part is prepared with
    /// its profile.
    pub fn from_parts(
        local: Option<&str>,
        domain: &str,
        resource: Option<&str>,
    ) -> Result<Self, JidError> {
        Inner::from_parts(local, domain, resource).map(Self::from_inner)
    }

    fn from_inner(inner: Inner) -> Self {
        if inner.slash == 0 {
            Self::Bare(BareJid(inner))
        } else {
            Self::Full(FullJid(inner))
        }
    }

    fn inner(&self) -> &Inner {
        match self {
            Self::Bare(b) => &b.0,
            Self::Full(f) => &f.0,
        }
    }

    /// The prepared localpart, if any.
    pub fn node(&self) -> Option<&str> {
        self.inner().node()
    }

    /// The prepared localpart, if any (alias of [`node`](Self::node)).
    pub fn local(&self) -> Option<&str> {
        self.inner().node()
    }

    /// The prepared domainpart (U-label form, or an IP literal).
    pub fn domain(&self) -> &str {
        self.inner().domain()
    }

    /// The prepared resourcepart, if any.
    pub fn resource(&self) -> Option<&str> {
        self.inner().resource()
    }

    /// The prepared JID as a string.
    pub fn as_str(&self) -> &str {
        &self.inner().s
    }

    /// Whether this JID has no resourcepart.
    pub fn is_bare(&self) -> bool {
        matches!(self, Self::Bare(_))
    }

    /// Whether this JID has a resourcepart.
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// The bare JID (clones a bare JID; allocates the shorter string of a
    /// full one).
    pub fn to_bare(&self) -> BareJid {
        match self {
            Self::Bare(b) => b.clone(),
            Self::Full(f) => f.to_bare(),
        }
    }

    /// The bare JID, reusing this JID's allocation.
    pub fn into_bare(self) -> BareJid {
        match self {
            Self::Bare(b) => b,
            Self::Full(f) => f.into_bare(),
        }
    }
}

// --- parsing ---------------------------------------------------------------

impl FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, JidError> {
        Inner::parse(s).map(Self::from_inner)
    }
}

impl FromStr for BareJid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, JidError> {
        s.parse::<Jid>().and_then(Self::try_from)
    }
}

impl FromStr for FullJid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, JidError> {
        s.parse::<Jid>().and_then(Self::try_from)
    }
}

// --- conversions -----------------------------------------------------------

impl From<BareJid> for Jid {
    fn from(b: BareJid) -> Self {
        Self::Bare(b)
    }
}

impl From<FullJid> for Jid {
    fn from(f: FullJid) -> Self {
        Self::Full(f)
    }
}

impl TryFrom<Jid> for FullJid {
    type Error = JidError;
    fn try_from(j: Jid) -> Result<Self, JidError> {
        match j {
            Jid::Full(f) => Ok(f),
            Jid::Bare(_) => Err(JidError::MissingResource),
        }
    }
}

impl TryFrom<Jid> for BareJid {
    type Error = JidError;
    fn try_from(j: Jid) -> Result<Self, JidError> {
        match j {
            Jid::Bare(b) => Ok(b),
            Jid::Full(_) => Err(JidError::UnexpectedResource),
        }
    }
}

// --- formatting, comparison ------------------------------------------------

macro_rules! string_like {
    ($t:ty, $name:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($name, "({:?})"), self.as_str())
            }
        }
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.as_str() == other.as_str()
            }
        }
        impl Eq for $t {}
        impl Hash for $t {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.as_str().hash(state);
            }
        }
        impl PartialOrd for $t {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for $t {
            fn cmp(&self, other: &Self) -> Ordering {
                self.as_str().cmp(other.as_str())
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    };
}

string_like!(Jid, "Jid");
string_like!(BareJid, "BareJid");
string_like!(FullJid, "FullJid");

macro_rules! cross_eq {
    ($a:ty, $b:ty) => {
        impl PartialEq<$b> for $a {
            fn eq(&self, other: &$b) -> bool {
                self.as_str() == other.as_str()
            }
        }
        impl PartialEq<$a> for $b {
            fn eq(&self, other: &$a) -> bool {
                self.as_str() == other.as_str()
            }
        }
    };
}

cross_eq!(Jid, BareJid);
cross_eq!(Jid, FullJid);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slow_local(s: &str) -> Result<String, PrecisFailure> {
        stabilize(s, |s: &str| {
            <UsernameCaseMapped as PrecisFastInvocation>::enforce(s)
        })
        .map(Cow::into_owned)
        .map_err(precis_failure)
    }

    fn slow_resource(s: &str) -> Result<String, PrecisFailure> {
        stabilize(s, |s: &str| {
            <OpaqueString as PrecisFastInvocation>::enforce(s)
        })
        .map(Cow::into_owned)
        .map_err(precis_failure)
    }

    #[test]
    fn ascii_fast_paths_match_precis_for_every_ascii_char() {
        for b in 0u8..=0x7f {
            let s = format!("a{}b", b as char);
            let fast = ascii_local(&s).map(Cow::into_owned);
            match slow_local(&s) {
                Ok(v) => assert_eq!(fast, Some(v), "local {b:#x}"),
                Err(_) => assert_eq!(fast, None, "local {b:#x}"),
            }
            let fast_r = s.bytes().all(|b| (0x20..=0x7e).contains(&b));
            match slow_resource(&s) {
                Ok(v) => assert!(fast_r && v == s, "resource {b:#x}"),
                Err(_) => assert!(!fast_r, "resource {b:#x}"),
            }
        }
    }

    #[test]
    fn domain_fast_path_defers_a_labels() {
        assert!(ascii_domain("xn--mnchen-3ya.example").is_none());
        assert!(ascii_domain("-a.example").is_none());
        assert!(ascii_domain("a-.example").is_none());
        assert!(ascii_domain("ab--c.example").is_none());
        assert!(ascii_domain("a_b.example").is_none());
    }

    proptest! {
        #[test]
        fn ascii_local_fast_equals_slow(s in "[\\x21-\\x7e]{1,40}") {
            prop_assert_eq!(ascii_local(&s).map(Cow::into_owned), slow_local(&s).ok());
        }

        #[test]
        fn ascii_domain_fast_equals_idna(s in "[a-zA-Z0-9.-]{1,30}") {
            if let Some(fast) = ascii_domain(&s) {
                let slow = idna_domain(&s);
                prop_assert_eq!(fast.map(Cow::into_owned), slow);
            }
        }
    }
}
