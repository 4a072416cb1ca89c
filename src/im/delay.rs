//! XEP-0203 Delayed Delivery (`<delay xmlns='urn:xmpp:delay'/>`) and the
//! XEP-0082 date-time profile its `stamp` uses.
//!
//! The core reads no clock: the host passes the current time as a
//! [`Timestamp`] (from [`SystemTime`] with [`Timestamp::try_from`], or from
//! Unix seconds/milliseconds). Formatting and parsing are done here without
//! extra dependencies (days ⇄ civil date after H. Hinnant's public-domain
//! algorithms).
//!
//! ```
//! use xmpp_sansio::im::delay::{Delay, Timestamp};
//!
//! let stamp = Timestamp::from_unix_seconds(1_031_699_305);
//! assert_eq!(stamp.to_string(), "2002-09-10T23:08:25Z");
//! assert_eq!("2002-09-10T23:08:25Z".parse::<Timestamp>(), Ok(stamp));
//! let delay = Delay::new(stamp).with_from("capulet.com".parse()?).with_reason("Offline Storage");
//! assert_eq!(delay.to_element().attr("stamp"), Some("2002-09-10T23:08:25Z"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use minidom::{Element, Node};

use crate::error::ncname;
use crate::jid::Jid;
use crate::stanza::Stanza;

/// `urn:xmpp:delay` (XEP-0203).
pub const NS_DELAY: &str = "urn:xmpp:delay";

const MILLIS_PER_DAY: u64 = 86_400_000;

/// A UTC instant with millisecond precision, not before
/// 1970-01-01T00:00:00Z.
///
/// [`Display`](fmt::Display) writes the XEP-0082 DateTime profile in UTC:
/// `CCYY-MM-DDThh:mm:ssZ`, with `.sss` only when the milliseconds are not
/// zero. [`FromStr`] reads that profile with any fraction length and any
/// `Z`/`±hh:mm` zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_millis: u64,
}

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp { unix_millis: 0 };

    /// The instant `seconds` after the Unix epoch (saturating at the
    /// largest representable instant).
    pub fn from_unix_seconds(seconds: u64) -> Timestamp {
        Timestamp {
            unix_millis: seconds.saturating_mul(1000),
        }
    }

    /// The instant `millis` milliseconds after the Unix epoch.
    pub fn from_unix_millis(millis: u64) -> Timestamp {
        Timestamp {
            unix_millis: millis,
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> u64 {
        self.unix_millis
    }

    /// The civil UTC date and time: (year, month, day, hour, minute,
    /// second, millisecond).
    fn civil(self) -> (u64, u8, u8, u8, u8, u8, u16) {
        let days = self.unix_millis / MILLIS_PER_DAY;
        let in_day = self.unix_millis % MILLIS_PER_DAY;
        let (year, month, day) = civil_from_days(days);
        // Every cast below is of a value already reduced below its type's range.
        let millis = (in_day % 1000) as u16;
        let seconds = in_day / 1000;
        (
            year,
            month,
            day,
            (seconds / 3600) as u8,
            (seconds / 60 % 60) as u8,
            (seconds % 60) as u8,
            millis,
        )
    }
}

/// A [`SystemTime`] before the Unix epoch, which [`Timestamp`] cannot hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeforeUnixEpoch;

impl fmt::Display for BeforeUnixEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("time is before 1970-01-01T00:00:00Z")
    }
}

impl std::error::Error for BeforeUnixEpoch {}

impl TryFrom<SystemTime> for Timestamp {
    type Error = BeforeUnixEpoch;

    /// Truncates to whole milliseconds.
    fn try_from(time: SystemTime) -> Result<Timestamp, BeforeUnixEpoch> {
        let since = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| BeforeUnixEpoch)?;
        Ok(Timestamp {
            unix_millis: u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day, hour, minute, second, millis) = self.civil();
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
        )?;
        if millis != 0 {
            write!(f, ".{millis:03}")?;
        }
        f.write_str("Z")
    }
}

/// A string that is not an XEP-0082 DateTime at or after the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTimestamp;

impl fmt::Display for InvalidTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an XEP-0082 DateTime (CCYY-MM-DDThh:mm:ss[.sss]TZD) after 1970")
    }
}

impl std::error::Error for InvalidTimestamp {}

impl FromStr for Timestamp {
    type Err = InvalidTimestamp;

    /// Reads `CCYY-MM-DDThh:mm:ss[.s+](Z|±hh:mm)`. Fraction digits beyond
    /// the millisecond are truncated. Years have 4 to 9 digits.
    fn from_str(s: &str) -> Result<Timestamp, InvalidTimestamp> {
        let (date, time) = s.split_once('T').ok_or(InvalidTimestamp)?;
        let mut date_parts = date.splitn(3, '-');
        let year_text = date_parts.next().ok_or(InvalidTimestamp)?;
        if !(4..=9).contains(&year_text.len()) {
            return Err(InvalidTimestamp);
        }
        let year = digits(year_text)?;
        let month = two_digits(date_parts.next().ok_or(InvalidTimestamp)?)?;
        let day = two_digits(date_parts.next().ok_or(InvalidTimestamp)?)?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(InvalidTimestamp);
        }
        // The zone: `Z` or `±hh:mm` at the end.
        let (clock, offset_minutes) = if let Some(clock) = time.strip_suffix('Z') {
            (clock, 0i64)
        } else {
            let split = time.len().checked_sub(6).ok_or(InvalidTimestamp)?;
            if !time.is_char_boundary(split) {
                return Err(InvalidTimestamp);
            }
            let (clock, zone) = time.split_at(split);
            let sign = match zone.as_bytes().first() {
                Some(b'+') => 1i64,
                Some(b'-') => -1i64,
                _ => return Err(InvalidTimestamp),
            };
            let (hours, minutes) = zone[1..].split_once(':').ok_or(InvalidTimestamp)?;
            let (hours, minutes) = (two_digits(hours)?, two_digits(minutes)?);
            if hours > 23 || minutes > 59 {
                return Err(InvalidTimestamp);
            }
            (clock, sign * (i64::from(hours) * 60 + i64::from(minutes)))
        };
        let (hms, fraction) = match clock.split_once('.') {
            Some((hms, fraction)) => (hms, Some(fraction)),
            None => (clock, None),
        };
        let mut hms_parts = hms.splitn(3, ':');
        let hour = two_digits(hms_parts.next().ok_or(InvalidTimestamp)?)?;
        let minute = two_digits(hms_parts.next().ok_or(InvalidTimestamp)?)?;
        let second = two_digits(hms_parts.next().ok_or(InvalidTimestamp)?)?;
        if hour > 23 || minute > 59 || second > 59 {
            return Err(InvalidTimestamp);
        }
        let millis = match fraction {
            None => 0,
            Some(f) if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(InvalidTimestamp);
            }
            Some(f) => f
                .bytes()
                .chain(std::iter::repeat(b'0'))
                .take(3)
                .fold(0i128, |acc, b| acc * 10 + i128::from(b - b'0')),
        };
        // i128: a 9-digit year in milliseconds does not fit an i64.
        let days = i128::from(days_from_civil(year, month, day));
        let seconds_of_day = (i128::from(hour) * 60 + i128::from(minute)) * 60 + i128::from(second);
        let local_millis = days * i128::from(MILLIS_PER_DAY) + seconds_of_day * 1000 + millis;
        let utc_millis = local_millis - i128::from(offset_minutes) * 60_000;
        u64::try_from(utc_millis)
            .map(Timestamp::from_unix_millis)
            .map_err(|_| InvalidTimestamp)
    }
}

/// An ASCII decimal number (no sign), at most 9 digits.
fn digits(s: &str) -> Result<i64, InvalidTimestamp> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidTimestamp);
    }
    Ok(s.bytes().fold(0, |acc, b| acc * 10 + i64::from(b - b'0')))
}

/// Exactly two ASCII digits.
fn two_digits(s: &str) -> Result<u8, InvalidTimestamp> {
    match s.as_bytes() {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => Ok((a - b'0') * 10 + (b - b'0')),
        _ => Err(InvalidTimestamp),
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year ≥ 0).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u8, u8) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    // Both casts: day ≤ 31 and month ≤ 12.
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u8;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u8;
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A `<delay xmlns='urn:xmpp:delay'/>` (XEP-0203 §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delay {
    /// Who delayed the stanza or originally sent it (RECOMMENDED).
    pub from: Option<Jid>,
    /// When the stanza was originally sent (REQUIRED; UTC).
    pub stamp: Timestamp,
    /// Natural-language reason, the element's character data.
    pub reason: Option<String>,
}

/// Why an element is not a valid `<delay/>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelayError {
    /// The element is not `<delay xmlns='urn:xmpp:delay'/>`.
    NotADelay,
    /// No `stamp` attribute, or one that is not an XEP-0082 DateTime.
    BadStamp,
    /// A `from` attribute that is not a JID.
    BadFrom,
}

impl fmt::Display for DelayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DelayError::NotADelay => "not a <delay xmlns='urn:xmpp:delay'/>",
            DelayError::BadStamp => "missing or invalid 'stamp'",
            DelayError::BadFrom => "'from' is not a JID",
        })
    }
}

impl std::error::Error for DelayError {}

impl Delay {
    /// A delay notation with only a stamp.
    pub fn new(stamp: Timestamp) -> Delay {
        Delay {
            from: None,
            stamp,
            reason: None,
        }
    }

    /// Sets `from`.
    pub fn with_from(mut self, from: Jid) -> Delay {
        self.from = Some(from);
        self
    }

    /// Sets the reason text.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Delay {
        self.reason = Some(reason.into());
        self
    }

    /// The `<delay/>` element.
    pub fn to_element(&self) -> Element {
        let mut el = Element::bare("delay", NS_DELAY);
        if let Some(from) = &self.from {
            el.set_attr(rxml::Namespace::NONE, ncname("from"), from.as_str());
        }
        el.set_attr(
            rxml::Namespace::NONE,
            ncname("stamp"),
            self.stamp.to_string(),
        );
        if let Some(reason) = &self.reason {
            el.append_text(reason.clone());
        }
        el
    }

    /// Reads a `<delay/>` element.
    pub fn from_element(el: &Element) -> Result<Delay, DelayError> {
        if !el.is("delay", NS_DELAY) {
            return Err(DelayError::NotADelay);
        }
        let stamp = el
            .attr("stamp")
            .and_then(|s| s.parse().ok())
            .ok_or(DelayError::BadStamp)?;
        let from = match el.attr("from") {
            None => None,
            Some(f) => Some(f.parse().map_err(|_| DelayError::BadFrom)?),
        };
        let text = el.text();
        Ok(Delay {
            from,
            stamp,
            reason: (!text.is_empty()).then_some(text),
        })
    }

    /// The first `<delay/>` child of `stanza`, if any.
    pub fn of(stanza: &Stanza) -> Option<Result<Delay, DelayError>> {
        stanza
            .element()
            .get_child("delay", NS_DELAY)
            .map(Delay::from_element)
    }

    /// Appends this notation to `stanza`.
    pub fn add_to(&self, stanza: &mut Stanza) {
        stanza.element_mut().append_child(self.to_element());
    }
}

/// Removes every `<delay/>` child of `stanza` whose `from` is `server`
/// (compared as prepared JIDs), and returns how many were removed.
///
/// XEP-0203 §5: a server SHOULD discard a delay notation that claims to be
/// its own but arrived from elsewhere, since only the server itself may add
/// one. Call it before adding the server's own notation.
pub fn remove_forged_delays(stanza: &mut Stanza, server: &Jid) -> usize {
    let forged = |el: &Element| {
        el.is("delay", NS_DELAY)
            && el
                .attr("from")
                .and_then(|f| f.parse::<Jid>().ok())
                .is_some_and(|f| f == *server)
    };
    let element = stanza.element_mut();
    if !element.children().any(forged) {
        return 0;
    }
    let mut removed = 0;
    for node in element.take_nodes() {
        match node {
            Node::Element(child) if forged(&child) => removed += 1,
            other => element.append_node(other),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_leap_years() {
        for days in [0u64, 59, 60, 365, 11_016, 11_017, 18_321, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y as i64, m, d), days as i64, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
    }
}
