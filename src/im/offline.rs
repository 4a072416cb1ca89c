//! XEP-0160 offline messages, stamped with XEP-0203 `<delay/>`.
//!
//! When [`Router`] is built [`with_offline_storage`] it answers a
//! normal/chat message for an account without a non-negative resource with
//! [`Decision::StoreOffline`]. The host then asks [`OfflinePolicy`]:
//!
//! 1. [`classify`] decides whether the message is stored at all
//!    (XEP-0160 §3, XEP-0334 hints);
//! 2. the per-account queue is bounded in messages and bytes
//!    ([`OfflineLimits`]); a message that does not fit is bounced with
//!    `service-unavailable`, the condition XEP-0160 §2 names for a full
//!    queue (not `resource-constraint`: that one says "try again later",
//!    and a full mailbox does not drain until its owner logs in);
//! 3. a stored message carries `<delay xmlns='urn:xmpp:delay'
//!    from='domain' stamp='…'>Offline Storage</delay>`, with the time the
//!    host passed in (the core reads no clock);
//! 4. when a resource of the account next becomes available with a
//!    non-negative priority ([`is_delivery_trigger`]), the queue is taken
//!    and delivered to that resource ([`OfflinePolicy::take_for_delivery`]).
//!
//! Storage is behind [`OfflineStore`], which the host implements (a
//! database); [`MemoryOfflineStore`] is an in-memory implementation for
//! tests and small servers. [`OfflinePolicy::admit`] is the pure decision
//! for hosts that drive their storage themselves.
//!
//! ```
//! use xmpp_sansio::im::delay::Timestamp;
//! use xmpp_sansio::im::offline::{MemoryOfflineStore, OfflineDecision, OfflineLimits, OfflinePolicy};
//! use xmpp_sansio::stanza::Stanza;
//! use xmpp_sansio::{BareJid, Jid};
//!
//! let juliet: BareJid = "juliet@capulet.com".parse()?;
//! let policy = OfflinePolicy::new("capulet.com".parse()?, OfflineLimits::default());
//! let mut store = MemoryOfflineStore::new();
//! let mut message = Stanza::chat(&Jid::Bare(juliet.clone()), "O blessed, blessed night!");
//! message.set_from(Some("romeo@montague.net/orchard"));
//! let now = Timestamp::from_unix_seconds(1_031_699_305);
//! let Ok(decision) = policy.store(&mut store, &juliet, &message, now);
//! assert_eq!(decision, OfflineDecision::Stored);
//! let Ok(delivered) = policy.take_for_delivery(&mut store, &juliet);
//! assert_eq!(delivered.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Router`]: crate::router::Router
//! [`with_offline_storage`]: crate::router::Router::with_offline_storage
//! [`Decision::StoreOffline`]: crate::router::Decision::StoreOffline

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;

use bytes::BytesMut;

use super::delay::{Delay, NS_DELAY, Timestamp, remove_forged_delays};
use crate::error::{StanzaError, StanzaErrorCondition};
use crate::jid::{BareJid, Jid};
use crate::stanza::{MessageType, PresenceType, Stanza, StanzaKind};
use crate::xml::StreamWriter;

/// The disco feature of XEP-0160 offline storage.
pub const FEATURE_MSGOFFLINE: &str = "msgoffline";
/// `urn:xmpp:hints` (XEP-0334 message processing hints).
pub const NS_HINTS: &str = "urn:xmpp:hints";
/// `http://jabber.org/protocol/chatstates` (XEP-0085).
pub const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// `urn:xmpp:sid:0` (XEP-0359 stanza ids).
pub const NS_STANZA_ID: &str = "urn:xmpp:sid:0";
/// The reason text of the server's `<delay/>` (as in XEP-0160's example).
pub const DELAY_REASON: &str = "Offline Storage";

/// What offline storage does with a message (see [`classify`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OfflineClass {
    /// Store it.
    Store,
    /// Do not store; answer the sender as a server without offline storage
    /// would: `service-unavailable` (RFC 6121 §8.5.2.2.1).
    Refuse,
    /// Do not store and say nothing.
    Discard,
}

/// Whether a message for an account without a resource to take it is
/// stored (XEP-0160 §3, XEP-0334 §4):
///
/// | message | class |
/// |---|---|
/// | not a message, or type `error` (hints in errors are ignored) | `Discard` |
/// | `<no-store/>` hint: headline | `Discard` |
/// | `<no-store/>` hint: normal, chat, groupchat | `Refuse` |
/// | `<store/>` hint: normal, chat, headline | `Store` |
/// | groupchat (hint or not) | `Refuse` |
/// | headline | `Discard` (time-sensitive) |
/// | normal / chat with content | `Store` |
/// | normal / chat with only XEP-0085 chat states, `<thread/>`, hints or XEP-0359 ids (or nothing) | `Discard` |
///
/// "Content" is any child element other than those last four.
pub fn classify(message: &Stanza) -> OfflineClass {
    let Some(message_type) = message.message_type() else {
        return OfflineClass::Discard;
    };
    if message_type == MessageType::Error {
        return OfflineClass::Discard;
    }
    let element = message.element();
    if element.has_child("no-store", NS_HINTS) {
        return match message_type {
            MessageType::Headline => OfflineClass::Discard,
            _ => OfflineClass::Refuse,
        };
    }
    let store_hint = element.has_child("store", NS_HINTS);
    match message_type {
        MessageType::Groupchat => OfflineClass::Refuse,
        MessageType::Headline if store_hint => OfflineClass::Store,
        MessageType::Headline | MessageType::Error => OfflineClass::Discard,
        MessageType::Normal | MessageType::Chat => {
            let content_ns = element.ns();
            let has_content = element.children().any(|child| {
                !(child.has_ns(NS_CHATSTATES)
                    || child.has_ns(NS_HINTS)
                    || child.has_ns(NS_STANZA_ID)
                    || child.is("thread", content_ns.as_str()))
            });
            if has_content || store_hint {
                OfflineClass::Store
            } else {
                OfflineClass::Discard
            }
        }
    }
}

/// Bounds of one account's offline queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OfflineLimits {
    /// Most messages stored per account.
    pub max_messages: usize,
    /// Most bytes stored per account (serialized size, delay included).
    pub max_bytes: usize,
}

impl Default for OfflineLimits {
    /// 1000 messages and 1 MiB per account.
    fn default() -> OfflineLimits {
        OfflineLimits {
            max_messages: 1000,
            max_bytes: 1 << 20,
        }
    }
}

/// How full one account's queue is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueueUsage {
    /// Stored messages.
    pub messages: usize,
    /// Their total [`StoredMessage::size`].
    pub bytes: usize,
}

/// A message as stored: the stanza with the server's `<delay/>` already
/// added, when it was stored, and its serialized size.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMessage {
    /// The message to deliver, unchanged but for the `<delay/>` (and the
    /// removal of forged server delays).
    pub message: Stanza,
    /// When it was stored (its `<delay/>` stamp).
    pub stored_at: Timestamp,
    /// Bytes of `message` as the stream writer writes it in its own
    /// content namespace.
    pub size: usize,
}

/// Offline storage the host owns. Calls are synchronous, like
/// [`Accounts`](crate::router::Accounts); a host with an asynchronous
/// database uses [`OfflinePolicy::admit`] and its own storage calls instead.
pub trait OfflineStore {
    /// The storage's error.
    type Error;

    /// How full `user`'s queue is.
    fn usage(&self, user: &BareJid) -> Result<QueueUsage, Self::Error>;

    /// Appends to `user`'s queue (limits were checked by the caller).
    fn push(&mut self, user: &BareJid, message: StoredMessage) -> Result<(), Self::Error>;

    /// Removes and returns `user`'s queue, oldest first.
    fn take_all(&mut self, user: &BareJid) -> Result<Vec<StoredMessage>, Self::Error>;
}

/// An [`OfflineStore`] in memory.
#[derive(Clone, Debug, Default)]
pub struct MemoryOfflineStore {
    queues: HashMap<BareJid, (QueueUsage, VecDeque<StoredMessage>)>,
}

impl MemoryOfflineStore {
    /// Empty.
    pub fn new() -> MemoryOfflineStore {
        MemoryOfflineStore::default()
    }

    /// The stored messages of `user`, oldest first, without removing them.
    pub fn peek(&self, user: &BareJid) -> impl Iterator<Item = &StoredMessage> {
        self.queues
            .get(user)
            .into_iter()
            .flat_map(|(_, q)| q.iter())
    }

    /// The number of accounts with stored messages.
    pub fn accounts(&self) -> usize {
        self.queues.len()
    }
}

impl OfflineStore for MemoryOfflineStore {
    type Error = Infallible;

    fn usage(&self, user: &BareJid) -> Result<QueueUsage, Infallible> {
        Ok(self.queues.get(user).map(|(u, _)| *u).unwrap_or_default())
    }

    fn push(&mut self, user: &BareJid, message: StoredMessage) -> Result<(), Infallible> {
        let (usage, queue) = self.queues.entry(user.clone()).or_default();
        usage.messages += 1;
        usage.bytes = usage.bytes.saturating_add(message.size);
        queue.push_back(message);
        Ok(())
    }

    fn take_all(&mut self, user: &BareJid) -> Result<Vec<StoredMessage>, Infallible> {
        Ok(self
            .queues
            .remove(user)
            .map(|(_, q)| q.into())
            .unwrap_or_default())
    }
}

/// The pure result of [`OfflinePolicy::admit`].
#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    /// Push this onto the account's queue.
    Store(StoredMessage),
    /// Do not store; send `message.error_reply(&error)` to the sender.
    Bounce(StanzaError),
    /// Do not store; say nothing.
    Discard,
}

/// What [`OfflinePolicy::store`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum OfflineDecision {
    /// The message is in the queue.
    Stored,
    /// Not stored; the host sends `message.error_reply(&error)`.
    Bounce(StanzaError),
    /// Not stored, nothing to send.
    Discard,
}

/// The offline-storage rules of one server: its JID (the `from` of the
/// `<delay/>`) and the queue limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflinePolicy {
    server: Jid,
    limits: OfflineLimits,
}

impl OfflinePolicy {
    /// Rules for the server `server` (its domain JID) with `limits`.
    pub fn new(server: Jid, limits: OfflineLimits) -> OfflinePolicy {
        OfflinePolicy { server, limits }
    }

    /// The queue limits.
    pub fn limits(&self) -> OfflineLimits {
        self.limits
    }

    /// Decides whether `message` goes into a queue whose state is `usage`,
    /// stamping it with `now` (pure):
    ///
    /// * [`classify`] `Discard` → `Discard`; `Refuse` → `Bounce(service-unavailable)`;
    /// * a message that would take the queue past
    ///   [`OfflineLimits::max_messages`] or [`OfflineLimits::max_bytes`] →
    ///   `Bounce(service-unavailable)` (XEP-0160 §2);
    /// * otherwise `Store`: delays claiming to be from this server are
    ///   removed (XEP-0203 §5: only this server may add them), then the
    ///   server's own `<delay from='server' stamp='now'>Offline Storage</delay>`
    ///   is appended.
    ///
    /// Error stanzas are never bounced (`classify` discards them).
    pub fn admit(&self, message: &Stanza, usage: QueueUsage, now: Timestamp) -> Admission {
        let unavailable =
            || Admission::Bounce(StanzaError::new(StanzaErrorCondition::ServiceUnavailable));
        match classify(message) {
            OfflineClass::Discard => return Admission::Discard,
            OfflineClass::Refuse => return unavailable(),
            OfflineClass::Store => {}
        }
        if usage.messages >= self.limits.max_messages {
            return unavailable();
        }
        let mut stored = message.clone();
        remove_forged_delays(&mut stored, &self.server);
        Delay::new(now)
            .with_from(self.server.clone())
            .with_reason(DELAY_REASON)
            .add_to(&mut stored);
        let writer = StreamWriter::new(&stored.element().ns());
        let mut out = BytesMut::new();
        if writer.write_element(stored.element(), &mut out).is_err() {
            // Cannot happen for an element the reader produced; a message
            // that cannot be written cannot be delivered later either.
            return unavailable();
        }
        let size = out.len();
        if usage.bytes.saturating_add(size) > self.limits.max_bytes {
            return unavailable();
        }
        Admission::Store(StoredMessage {
            message: stored,
            stored_at: now,
            size,
        })
    }

    /// [`admit`](OfflinePolicy::admit) against `store`'s usage for `user`,
    /// and the push when admitted.
    pub fn store<S: OfflineStore>(
        &self,
        store: &mut S,
        user: &BareJid,
        message: &Stanza,
        now: Timestamp,
    ) -> Result<OfflineDecision, S::Error> {
        // Classify first: no storage round trip for what is never stored.
        match classify(message) {
            OfflineClass::Discard => return Ok(OfflineDecision::Discard),
            OfflineClass::Refuse => {
                return Ok(OfflineDecision::Bounce(StanzaError::new(
                    StanzaErrorCondition::ServiceUnavailable,
                )));
            }
            OfflineClass::Store => {}
        }
        let usage = store.usage(user)?;
        Ok(match self.admit(message, usage, now) {
            Admission::Store(stored) => {
                store.push(user, stored)?;
                OfflineDecision::Stored
            }
            Admission::Bounce(error) => OfflineDecision::Bounce(error),
            Admission::Discard => OfflineDecision::Discard,
        })
    }

    /// Takes `user`'s queue for delivery to the resource whose presence
    /// triggered it ([`is_delivery_trigger`]): the messages, oldest first,
    /// each with its `<delay/>` and its original `to`. The queue is empty
    /// afterwards; a host that needs at-least-once delivery puts back what
    /// the client did not acknowledge (XEP-0198).
    pub fn take_for_delivery<S: OfflineStore>(
        &self,
        store: &mut S,
        user: &BareJid,
    ) -> Result<Vec<Stanza>, S::Error> {
        Ok(store
            .take_all(user)?
            .into_iter()
            .map(|stored| stored.message)
            .collect())
    }
}

/// Whether `presence`, sent by a session whose previous state was
/// `was_non_negative` (available with priority ≥ 0), triggers delivery of
/// offline messages to that session (XEP-0160 §2 step 5): a broadcast (no
/// `to`) available presence with priority ≥ 0 (absent or unparsable
/// priority counts as 0) from a session that was not yet non-negative.
/// Initial presence is the usual case; a session raising its priority from
/// negative to non-negative is the other.
pub fn is_delivery_trigger(was_non_negative: bool, presence: &Stanza) -> bool {
    !was_non_negative
        && presence.kind() == StanzaKind::Presence
        && presence.to().is_none()
        && presence.presence_type() == Some(Ok(PresenceType::Available))
        && presence.priority().unwrap_or(0) >= 0
}

/// The server's `<delay/>` on a delivered offline message, if present
/// (for hosts and tests that inspect deliveries).
pub fn offline_delay(message: &Stanza, server: &Jid) -> Option<Delay> {
    message
        .element()
        .children()
        .filter(|c| c.is("delay", NS_DELAY))
        .filter_map(|c| Delay::from_element(c).ok())
        .find(|d| d.from.as_ref() == Some(server))
}
