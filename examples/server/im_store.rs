//! The example server's IM storage: rosters (with pending subscription
//! requests), roster versions, blocklists and offline messages, in an
//! embedded redb database next to the accounts (`<data dir>/im.redb`).
//!
//! [`ImStore`] implements the core's [`RosterStore`] and [`OfflineStore`];
//! every write is one redb transaction (an item and the roster version
//! together; a queued message and the queue's usage together; a whole
//! blocklist), committed with redb's default durability (fsync), so what a
//! call wrote survives the process being killed right after it.
//!
//! Layout:
//!
//! | table | key | value |
//! |---|---|---|
//! | `roster_items` | (user, contact) bare JIDs | an item record (below) |
//! | `roster_versions` | user | the roster version (`u64`) |
//! | `blocklists` | user | version byte `1`, then each blocked JID as `str` |
//! | `offline` | (user, sequence `u64`) | version byte `1`, `stored_at` (Unix ms, `u64` BE), `size` (`u64` BE), the message as `str` (XML) |
//! | `offline_usage` | user | (messages `u64`, bytes `u64`) |
//!
//! An item record: version byte `1`, a flags byte (`1` Pending Out, `2`
//! approved, `4` in the roster, `8` has a name, `16` has a stored request),
//! the subscription (`0` none, `1` to, `2` from, `3` both), the name as
//! `str` if any, the number of groups (`u32` BE) and each as `str`, the
//! stored request as `str` (XML) if any. A `str` is its length in bytes
//! (`u32` BE) and the UTF-8 bytes. Stanzas are stored as standalone XML
//! with their namespace declared (minidom), and read back with minidom.

use std::collections::HashMap;
use std::path::Path;

use minidom::Element;
use redb::{Database, ReadableTable, Table, TableDefinition};
use xmpp_sansio::im::blocking::Blocklist;
use xmpp_sansio::im::delay::Timestamp;
use xmpp_sansio::im::offline::{OfflineStore, QueueUsage, StoredMessage};
use xmpp_sansio::im::{RosterItem, RosterStore, Subscription};
use xmpp_sansio::stanza::Stanza;
use xmpp_sansio::{BareJid, Jid};

const ROSTER_ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("roster_items");
const ROSTER_VERSIONS: TableDefinition<&str, u64> = TableDefinition::new("roster_versions");
const BLOCKLISTS: TableDefinition<&str, &[u8]> = TableDefinition::new("blocklists");
const OFFLINE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("offline");
const OFFLINE_USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("offline_usage");
const RECORD_VERSION: u8 = 1;

const PENDING_OUT: u8 = 1;
const APPROVED: u8 = 2;
const IN_ROSTER: u8 = 4;
const HAS_NAME: u8 = 8;
const HAS_REQUEST: u8 = 16;

/// An IM storage error, with what was being done.
#[derive(Debug)]
pub struct ImStoreError(String);

impl std::fmt::Display for ImStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ImStoreError {}

impl ImStoreError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> ImStoreError {
        ImStoreError(message.into())
    }
}

fn ctx<E: Into<redb::Error>>(what: &'static str) -> impl FnOnce(E) -> ImStoreError {
    move |e| ImStoreError(format!("{what}: {}", e.into()))
}

fn corrupt(what: &str, user: &str) -> ImStoreError {
    ImStoreError(format!("corrupt {what} record of {user:?}"))
}

/// redb's page cache (default 1 GiB). Rosters are read at presence changes
/// and roster gets, offline queues once per login: with the default every
/// record ever read would stay cached. The OS page cache still serves the
/// file.
const CACHE_BYTES: usize = 1024 * 1024;

/// The IM database. Owned by the hub, its only user.
pub struct ImStore {
    db: Database,
}

impl ImStore {
    /// Opens (or creates) `<dir>/im.redb`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<ImStore, ImStoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ImStoreError(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("im.redb");
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| {
                ImStoreError(format!(
                    "cannot open {}: {e} (is another server using this data directory?)",
                    path.display()
                ))
            })?;
        // Create the tables so read transactions always find them.
        let tx = db.begin_write().map_err(ctx("begin write"))?;
        tx.open_table(ROSTER_ITEMS)
            .map_err(ctx("open roster_items"))?;
        tx.open_table(ROSTER_VERSIONS)
            .map_err(ctx("open roster_versions"))?;
        tx.open_table(BLOCKLISTS).map_err(ctx("open blocklists"))?;
        tx.open_table(OFFLINE).map_err(ctx("open offline"))?;
        tx.open_table(OFFLINE_USAGE)
            .map_err(ctx("open offline_usage"))?;
        tx.commit().map_err(ctx("commit"))?;
        Ok(ImStore { db })
    }

    // --- blocklists ---------------------------------------------------------

    /// Every non-empty blocklist, by user (loaded once at start: the hub
    /// keeps them in memory, as they are checked for every stanza).
    pub fn blocklists(&self) -> Result<HashMap<BareJid, Blocklist>, ImStoreError> {
        let tx = self.db.begin_read().map_err(ctx("begin read"))?;
        let table = tx.open_table(BLOCKLISTS).map_err(ctx("open blocklists"))?;
        let mut out = HashMap::new();
        for row in table.iter().map_err(ctx("read blocklists"))? {
            let (key, value) = row.map_err(ctx("read blocklists"))?;
            let user: BareJid = key
                .value()
                .parse()
                .map_err(|_| corrupt("blocklist", key.value()))?;
            let list =
                decode_blocklist(value.value()).ok_or_else(|| corrupt("blocklist", key.value()))?;
            if !list.is_empty() {
                out.insert(user, list);
            }
        }
        Ok(out)
    }

    /// The blocklist of `user` (empty when none was saved). The server
    /// reads them all at start ([`blocklists`](Self::blocklists)); this is
    /// for the tests.
    #[cfg(test)]
    pub fn blocklist(&self, user: &BareJid) -> Result<Blocklist, ImStoreError> {
        let tx = self.db.begin_read().map_err(ctx("begin read"))?;
        let table = tx.open_table(BLOCKLISTS).map_err(ctx("open blocklists"))?;
        match table.get(user.as_str()).map_err(ctx("read blocklist"))? {
            None => Ok(Blocklist::new()),
            Some(value) => {
                decode_blocklist(value.value()).ok_or_else(|| corrupt("blocklist", user.as_str()))
            }
        }
    }

    /// Replaces the blocklist of `user` with `list` (an empty list removes
    /// the record), in one transaction.
    pub fn save_blocklist(&self, user: &BareJid, list: &Blocklist) -> Result<(), ImStoreError> {
        let tx = self.db.begin_write().map_err(ctx("begin write"))?;
        {
            let mut table = tx.open_table(BLOCKLISTS).map_err(ctx("open blocklists"))?;
            if list.is_empty() {
                table
                    .remove(user.as_str())
                    .map_err(ctx("remove blocklist"))?;
            } else {
                let record = encode_blocklist(list);
                table
                    .insert(user.as_str(), record.as_slice())
                    .map_err(ctx("write blocklist"))?;
            }
        }
        tx.commit().map_err(ctx("commit"))
    }

    // --- offline messages ---------------------------------------------------

    /// The messages waiting for `user`, oldest first, without removing
    /// them (for the tests).
    #[cfg(test)]
    pub fn offline_messages(&self, user: &BareJid) -> Result<Vec<StoredMessage>, ImStoreError> {
        let tx = self.db.begin_read().map_err(ctx("begin read"))?;
        let table = tx.open_table(OFFLINE).map_err(ctx("open offline"))?;
        let mut out = Vec::new();
        let range = (user.as_str(), 0u64)..=(user.as_str(), u64::MAX);
        for row in table.range(range).map_err(ctx("read offline"))? {
            let (_, value) = row.map_err(ctx("read offline"))?;
            out.push(
                decode_offline(value.value()).ok_or_else(|| corrupt("offline", user.as_str()))?,
            );
        }
        Ok(out)
    }

    /// One roster write: `change` on the items table and the user's new
    /// roster version, in one transaction (both or neither).
    fn write_roster(
        &self,
        user: &BareJid,
        version: u64,
        change: impl FnOnce(&mut Table<'_, (&str, &str), &[u8]>) -> Result<(), ImStoreError>,
    ) -> Result<(), ImStoreError> {
        let tx = self.db.begin_write().map_err(ctx("begin write"))?;
        {
            let mut items = tx
                .open_table(ROSTER_ITEMS)
                .map_err(ctx("open roster_items"))?;
            change(&mut items)?;
            let mut versions = tx
                .open_table(ROSTER_VERSIONS)
                .map_err(ctx("open roster_versions"))?;
            versions
                .insert(user.as_str(), version)
                .map_err(ctx("write roster version"))?;
        }
        tx.commit().map_err(ctx("commit"))
    }
}

impl RosterStore for ImStore {
    type Error = ImStoreError;

    fn items(&self, user: &BareJid) -> Result<Vec<RosterItem>, ImStoreError> {
        let tx = self.db.begin_read().map_err(ctx("begin read"))?;
        let table = tx
            .open_table(ROSTER_ITEMS)
            .map_err(ctx("open roster_items"))?;
        let mut out = Vec::new();
        // Every key of `user` sorts at or after (user, "") and before any
        // key of another user.
        for row in table
            .range((user.as_str(), "")..)
            .map_err(ctx("read roster"))?
        {
            let (key, value) = row.map_err(ctx("read roster"))?;
            let (owner, contact) = key.value();
            if owner != user.as_str() {
                break;
            }
            out.push(decode_item(contact, value.value()).ok_or_else(|| corrupt("roster", owner))?);
        }
        Ok(out)
    }

    fn item(&self, user: &BareJid, contact: &BareJid) -> Result<Option<RosterItem>, ImStoreError> {
        let tx = self.db.begin_read().map_err(ctx("begin read"))?;
        let table = tx
            .open_table(ROSTER_ITEMS)
            .map_err(ctx("open roster_items"))?;
        let value = table
            .get((user.as_str(), contact.as_str()))
            .map_err(ctx("read roster item"))?;
        match value {
            None => Ok(None),
            Some(v) => decode_item(contact.as_str(), v.value())
                .map(Some)
                .ok_or_else(|| corrupt("roster", user.as_str())),
        }
    }

    fn version(&self, user: &BareJid) -> Result<u64, ImStoreError> {
        let tx = self.db.begin_read().map_err(ctx("begin read"))?;
        let table = tx
            .open_table(ROSTER_VERSIONS)
            .map_err(ctx("open roster_versions"))?;
        let value = table
            .get(user.as_str())
            .map_err(ctx("read roster version"))?;
        Ok(value.map_or(0, |v| v.value()))
    }

    fn put_item(
        &mut self,
        user: &BareJid,
        item: RosterItem,
        version: u64,
    ) -> Result<(), ImStoreError> {
        let record = encode_item(&item);
        self.write_roster(user, version, |items| {
            items
                .insert((user.as_str(), item.jid.as_str()), record.as_slice())
                .map_err(ctx("write roster item"))?;
            Ok(())
        })
    }

    fn remove_item(
        &mut self,
        user: &BareJid,
        contact: &BareJid,
        version: u64,
    ) -> Result<(), ImStoreError> {
        self.write_roster(user, version, |items| {
            items
                .remove((user.as_str(), contact.as_str()))
                .map_err(ctx("remove roster item"))?;
            Ok(())
        })
    }
}

impl OfflineStore for ImStore {
    type Error = ImStoreError;

    fn usage(&self, user: &BareJid) -> Result<QueueUsage, ImStoreError> {
        let tx = self.db.begin_read().map_err(ctx("begin read"))?;
        let table = tx
            .open_table(OFFLINE_USAGE)
            .map_err(ctx("open offline_usage"))?;
        let value = table.get(user.as_str()).map_err(ctx("read usage"))?;
        Ok(value.map_or(QueueUsage::default(), |v| {
            let (messages, bytes) = v.value();
            QueueUsage {
                messages: usize::try_from(messages).unwrap_or(usize::MAX),
                bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            }
        }))
    }

    fn push(&mut self, user: &BareJid, message: StoredMessage) -> Result<(), ImStoreError> {
        let record = encode_offline(&message);
        let tx = self.db.begin_write().map_err(ctx("begin write"))?;
        {
            let mut queue = tx.open_table(OFFLINE).map_err(ctx("open offline"))?;
            let range = (user.as_str(), 0u64)..=(user.as_str(), u64::MAX);
            let last = queue
                .range(range)
                .map_err(ctx("read offline"))?
                .next_back()
                .transpose()
                .map_err(ctx("read offline"))?
                .map(|(key, _)| key.value().1);
            let seq = match last {
                None => 0,
                Some(last) => last
                    .checked_add(1)
                    .ok_or_else(|| ImStoreError("offline sequence exhausted".to_owned()))?,
            };
            queue
                .insert((user.as_str(), seq), record.as_slice())
                .map_err(ctx("write offline message"))?;
            let mut usage = tx
                .open_table(OFFLINE_USAGE)
                .map_err(ctx("open offline_usage"))?;
            let (messages, bytes) = usage
                .get(user.as_str())
                .map_err(ctx("read usage"))?
                .map_or((0, 0), |v| v.value());
            let size = u64::try_from(message.size).unwrap_or(u64::MAX);
            usage
                .insert(
                    user.as_str(),
                    (messages.saturating_add(1), bytes.saturating_add(size)),
                )
                .map_err(ctx("write usage"))?;
        }
        tx.commit().map_err(ctx("commit"))
    }

    fn take_all(&mut self, user: &BareJid) -> Result<Vec<StoredMessage>, ImStoreError> {
        let tx = self.db.begin_write().map_err(ctx("begin write"))?;
        let mut out = Vec::new();
        {
            let mut queue = tx.open_table(OFFLINE).map_err(ctx("open offline"))?;
            let range = (user.as_str(), 0u64)..=(user.as_str(), u64::MAX);
            for row in queue
                .extract_from_if(range, |_, _| true)
                .map_err(ctx("take offline"))?
            {
                let (_, value) = row.map_err(ctx("take offline"))?;
                out.push(
                    decode_offline(value.value())
                        .ok_or_else(|| corrupt("offline", user.as_str()))?,
                );
            }
            let mut usage = tx
                .open_table(OFFLINE_USAGE)
                .map_err(ctx("open offline_usage"))?;
            usage.remove(user.as_str()).map_err(ctx("remove usage"))?;
        }
        // An error before this point drops the transaction: nothing is
        // taken.
        tx.commit().map_err(ctx("commit"))?;
        Ok(out)
    }
}

// --- records -------------------------------------------------------------

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Stored strings come from stanzas the reader accepted (bounded far
    // below 4 GiB).
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

/// Reads a record front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.u32()?).ok()?;
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

fn stanza_xml(stanza: &Stanza) -> String {
    let mut out = Vec::new();
    // Writing to a Vec fails only for elements minidom cannot express,
    // which a parsed stanza never is; such a stanza is stored empty and
    // then reads back as corrupt rather than as something else.
    if stanza.element().write_to(&mut out).is_err() {
        out.clear();
    }
    String::from_utf8(out).unwrap_or_default()
}

fn parse_stanza(xml: &str) -> Option<Stanza> {
    let element: Element = xml.parse().ok()?;
    let ns = element.ns();
    Stanza::from_element(element, &ns).ok()
}

fn subscription_tag(s: Subscription) -> u8 {
    match s {
        Subscription::None => 0,
        Subscription::To => 1,
        Subscription::From => 2,
        Subscription::Both => 3,
    }
}

fn subscription_from_tag(tag: u8) -> Option<Subscription> {
    Some(match tag {
        0 => Subscription::None,
        1 => Subscription::To,
        2 => Subscription::From,
        3 => Subscription::Both,
        _ => return None,
    })
}

fn encode_item(item: &RosterItem) -> Vec<u8> {
    let mut flags = 0;
    for (set, bit) in [
        (item.pending_out, PENDING_OUT),
        (item.approved, APPROVED),
        (item.in_roster, IN_ROSTER),
        (item.name.is_some(), HAS_NAME),
        (item.pending_in.is_some(), HAS_REQUEST),
    ] {
        if set {
            flags |= bit;
        }
    }
    let mut out = vec![RECORD_VERSION, flags, subscription_tag(item.subscription)];
    if let Some(name) = &item.name {
        put_str(&mut out, name);
    }
    let groups = u32::try_from(item.groups.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&groups.to_be_bytes());
    for group in item.groups.iter().take(groups as usize) {
        put_str(&mut out, group);
    }
    if let Some(request) = &item.pending_in {
        put_str(&mut out, &stanza_xml(request));
    }
    out
}

fn decode_item(contact: &str, bytes: &[u8]) -> Option<RosterItem> {
    let mut r = Reader(bytes);
    if r.u8()? != RECORD_VERSION {
        return None;
    }
    let flags = r.u8()?;
    let subscription = subscription_from_tag(r.u8()?)?;
    let name = if flags & HAS_NAME != 0 {
        Some(r.str()?.to_owned())
    } else {
        None
    };
    let count = r.u32()?;
    let mut groups = Vec::new();
    for _ in 0..count {
        groups.push(r.str()?.to_owned());
    }
    let pending_in = if flags & HAS_REQUEST != 0 {
        Some(parse_stanza(r.str()?)?)
    } else {
        None
    };
    if !r.done() {
        return None;
    }
    Some(RosterItem {
        jid: contact.parse().ok()?,
        name,
        groups,
        subscription,
        pending_out: flags & PENDING_OUT != 0,
        approved: flags & APPROVED != 0,
        pending_in,
        in_roster: flags & IN_ROSTER != 0,
    })
}

fn encode_blocklist(list: &Blocklist) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    for jid in list.items() {
        put_str(&mut out, jid.as_str());
    }
    out
}

fn decode_blocklist(bytes: &[u8]) -> Option<Blocklist> {
    let mut r = Reader(bytes);
    if r.u8()? != RECORD_VERSION {
        return None;
    }
    let mut items = Vec::new();
    while !r.done() {
        items.push(r.str()?.parse::<Jid>().ok()?);
    }
    Some(items.into_iter().collect())
}

fn encode_offline(message: &StoredMessage) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    out.extend_from_slice(&message.stored_at.unix_millis().to_be_bytes());
    let size = u64::try_from(message.size).unwrap_or(u64::MAX);
    out.extend_from_slice(&size.to_be_bytes());
    put_str(&mut out, &stanza_xml(&message.message));
    out
}

fn decode_offline(bytes: &[u8]) -> Option<StoredMessage> {
    let mut r = Reader(bytes);
    if r.u8()? != RECORD_VERSION {
        return None;
    }
    let stored_at = Timestamp::from_unix_millis(r.u64()?);
    let size = usize::try_from(r.u64()?).ok()?;
    let message = parse_stanza(r.str()?)?;
    if !r.done() {
        return None;
    }
    Some(StoredMessage {
        message,
        stored_at,
        size,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use xmpp_sansio::im::offline::{OfflineDecision, OfflineLimits, OfflinePolicy, offline_delay};
    use xmpp_sansio::im::{ImAction, ImConfig, ImService, MemoryRosterStore};
    use xmpp_sansio::router::{ConflictPolicy, Router};
    use xmpp_sansio::stanza::{IqType, StanzaKind};

    use super::*;

    /// A scratch directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "xmpp-sansio-im-store-{}-{}-{name}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn bare(s: &str) -> BareJid {
        s.parse().unwrap()
    }

    fn request(from: &str, to: &str) -> Stanza {
        let xml = format!(
            "<presence xmlns='jabber:client' from='{from}' to='{to}' type='subscribe' \
             xml:lang='en'><status>let me in &amp; &lt;now&gt;</status>\
             <nick xmlns='http://jabber.org/protocol/nick'>R</nick></presence>"
        );
        parse_stanza(&xml).expect("a stanza")
    }

    fn full_item(jid: &str) -> RosterItem {
        RosterItem {
            name: Some("Nurse \u{1F48C} <3".to_owned()),
            groups: vec!["Friends".to_owned(), "".to_owned(), "Ä & b".to_owned()],
            subscription: Subscription::From,
            pending_out: true,
            approved: false,
            pending_in: Some(request(jid, "juliet@example.com")),
            ..RosterItem::new(bare(jid))
        }
    }

    #[test]
    fn rosters_and_versions_survive_reopening() {
        let dir = TempDir::new("roster");
        let juliet = bare("juliet@example.com");
        // A user whose JID extends juliet's: its records must stay apart.
        let other = bare("juliet@example.com.org");
        let nurse = full_item("nurse@example.com");
        let romeo = RosterItem {
            in_roster: false,
            approved: true,
            subscription: Subscription::None,
            ..RosterItem::new(bare("romeo@montague.net"))
        };
        {
            let mut store = ImStore::open(&dir.0).unwrap();
            assert_eq!(store.version(&juliet).unwrap(), 0);
            assert!(store.items(&juliet).unwrap().is_empty());
            store.put_item(&juliet, nurse.clone(), 1).unwrap();
            store.put_item(&juliet, romeo.clone(), 2).unwrap();
            store
                .put_item(&other, RosterItem::new(bare("a@b")), 9)
                .unwrap();
            store
                .put_item(&juliet, RosterItem::new(bare("tybalt@capulet.com")), 3)
                .unwrap();
            store
                .remove_item(&juliet, &bare("tybalt@capulet.com"), 4)
                .unwrap();
        }
        let store = ImStore::open(&dir.0).unwrap();
        assert_eq!(store.version(&juliet).unwrap(), 4);
        assert_eq!(store.version(&other).unwrap(), 9);
        let mut items = store.items(&juliet).unwrap();
        items.sort_by(|a, b| a.jid.cmp(&b.jid));
        assert_eq!(items, vec![nurse.clone(), romeo.clone()]);
        assert_eq!(
            store.item(&juliet, &bare("nurse@example.com")).unwrap(),
            Some(nurse)
        );
        assert_eq!(
            store.item(&juliet, &bare("tybalt@capulet.com")).unwrap(),
            None
        );
        assert_eq!(
            store.items(&other).unwrap(),
            vec![RosterItem::new(bare("a@b"))]
        );
        let stored = store
            .item(&juliet, &bare("nurse@example.com"))
            .unwrap()
            .and_then(|i| i.pending_in)
            .unwrap();
        let xml = minidom::rxml::Namespace::xml();
        assert_eq!(stored.element().attr_ns(xml, "lang"), Some("en"));
        assert_eq!(stored, request("nurse@example.com", "juliet@example.com"));
    }

    /// The same subscription exchange through ImService on this store and
    /// on the core's MemoryRosterStore gives the same actions and records.
    #[test]
    fn im_service_behaves_as_with_the_memory_store() {
        let dir = TempDir::new("service");
        let mut db = ImStore::open(&dir.0).unwrap();
        let mut mem = MemoryRosterStore::new();
        let alice = bare("alice@localhost");
        let bob = bare("bob@localhost");
        let mut router = Router::new(["localhost".to_owned()]);
        router.bind(
            1,
            alice.with_resource("a").unwrap(),
            ConflictPolicy::RefuseNew,
        );
        router.bind(
            2,
            bob.with_resource("b").unwrap(),
            ConflictPolicy::RefuseNew,
        );
        let mut im_db = ImService::new(ImConfig::default());
        let mut im_mem = ImService::new(ImConfig::default());
        let mut get = Stanza::iq(
            IqType::Get,
            None,
            "r1",
            Element::bare("query", xmpp_sansio::im::roster::NS_ROSTER),
        );
        get.set_from(Some("alice@localhost/a"));
        let a = im_db.roster_iq(&router, &mut db, 1, &get).unwrap();
        let b = im_mem.roster_iq(&router, &mut mem, 1, &get).unwrap();
        assert_eq!(a, b);
        let subscription = |from: &str, to: &str, kind: &str| {
            let mut p = Stanza::new(StanzaKind::Presence, "jabber:client");
            p.set_from(Some(from));
            p.set_to(Some(to));
            p.set_attr("type", Some(kind));
            p
        };
        let steps = [
            (
                true,
                1,
                subscription("alice@localhost/a", "bob@localhost", "subscribe"),
            ),
            (
                false,
                0,
                subscription("alice@localhost", "bob@localhost", "subscribe"),
            ),
            (
                true,
                2,
                subscription("bob@localhost/b", "alice@localhost", "subscribed"),
            ),
            (
                false,
                0,
                subscription("bob@localhost", "alice@localhost", "subscribed"),
            ),
        ];
        for (outbound, session, stanza) in steps {
            let (a, b) = if outbound {
                (
                    im_db.outbound_subscription(&router, &mut db, session, &stanza),
                    im_mem.outbound_subscription(&router, &mut mem, session, &stanza),
                )
            } else {
                let to = stanza.to_jid().unwrap().unwrap().into_bare();
                (
                    im_db.inbound_subscription(&router, &mut db, &to, &stanza),
                    im_mem.inbound_subscription(&router, &mut mem, &to, &stanza),
                )
            };
            let a = a.unwrap();
            assert_eq!(a, b.unwrap());
            if outbound {
                // The stamped stanza goes on to the contact.
                assert!(a.iter().any(|a| matches!(a, ImAction::Route(s) if s.presence_type() == stanza.presence_type())));
            }
        }
        for user in [&alice, &bob] {
            assert_eq!(db.items(user).unwrap(), mem.items(user).unwrap());
            assert_eq!(db.version(user).unwrap(), mem.version(user).unwrap());
        }
        let item = db.item(&alice, &bob).unwrap().unwrap();
        assert_eq!(item.subscription, Subscription::To);
        assert!(!item.pending_out);
        let item = db.item(&bob, &alice).unwrap().unwrap();
        assert_eq!(item.subscription, Subscription::From);
    }

    #[test]
    fn blocklists_survive_reopening() {
        let dir = TempDir::new("blocklist");
        let juliet = bare("juliet@example.com");
        let romeo = bare("romeo@example.com");
        let list: Blocklist = ["tybalt@capulet.com/sword", "montague.net", "a@b"]
            .into_iter()
            .map(|s| s.parse::<Jid>().unwrap())
            .collect();
        {
            let store = ImStore::open(&dir.0).unwrap();
            assert!(store.blocklist(&juliet).unwrap().is_empty());
            store.save_blocklist(&juliet, &list).unwrap();
            let one: Blocklist = ["x@y".parse::<Jid>().unwrap()].into_iter().collect();
            store.save_blocklist(&romeo, &one).unwrap();
            store.save_blocklist(&romeo, &Blocklist::new()).unwrap();
        }
        let store = ImStore::open(&dir.0).unwrap();
        assert_eq!(store.blocklist(&juliet).unwrap(), list);
        assert!(store.blocklist(&romeo).unwrap().is_empty());
        let all = store.blocklists().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all.get(&juliet), Some(&list));
        assert!(list.blocks(&"tybalt@capulet.com/sword".parse().unwrap()));
    }

    #[test]
    fn offline_queues_survive_reopening_and_drain_in_order() {
        let dir = TempDir::new("offline");
        let juliet = bare("juliet@example.com");
        let other = bare("juliet@example.com.org");
        let server: Jid = "example.com".parse().unwrap();
        let policy = OfflinePolicy::new(
            server.clone(),
            OfflineLimits {
                max_messages: 3,
                max_bytes: 1 << 20,
            },
        );
        let to = Jid::Bare(juliet.clone());
        {
            let mut store = ImStore::open(&dir.0).unwrap();
            for i in 1..=3u64 {
                let mut m = Stanza::chat(&to, &format!("message {i} <&>"));
                m.set_from(Some("romeo@montague.net/orchard"));
                let now = Timestamp::from_unix_millis(1_700_000_000_000 + i);
                assert_eq!(
                    policy.store(&mut store, &juliet, &m, now).unwrap(),
                    OfflineDecision::Stored
                );
            }
            let mut m = Stanza::chat(&Jid::Bare(other.clone()), "elsewhere");
            m.set_from(Some("romeo@montague.net/orchard"));
            let now = Timestamp::from_unix_seconds(5);
            policy.store(&mut store, &other, &m, now).unwrap();
            // The fourth does not fit.
            let m = Stanza::chat(&to, "one too many");
            assert!(matches!(
                policy.store(&mut store, &juliet, &m, now).unwrap(),
                OfflineDecision::Bounce(_)
            ));
        }
        let mut store = ImStore::open(&dir.0).unwrap();
        let usage = store.usage(&juliet).unwrap();
        assert_eq!(usage.messages, 3);
        let peeked = store.offline_messages(&juliet).unwrap();
        assert_eq!(
            usage.bytes,
            peeked.iter().map(|m| m.size).sum::<usize>(),
            "usage counts the stored sizes"
        );
        let delivered = policy.take_for_delivery(&mut store, &juliet).unwrap();
        assert_eq!(delivered.len(), 3);
        for (i, m) in delivered.iter().enumerate() {
            let body = m
                .element()
                .get_child("body", "jabber:client")
                .unwrap()
                .text();
            assert_eq!(body, format!("message {} <&>", i + 1));
            let delay = offline_delay(m, &server).expect("the server's delay");
            assert_eq!(
                delay.stamp,
                Timestamp::from_unix_millis(1_700_000_000_001 + i as u64)
            );
        }
        assert_eq!(store.usage(&juliet).unwrap(), QueueUsage::default());
        assert!(store.take_all(&juliet).unwrap().is_empty());
        assert_eq!(store.usage(&other).unwrap().messages, 1);
        // The queue takes messages again once drained.
        let m = Stanza::chat(&to, "again");
        let now = Timestamp::from_unix_seconds(6);
        assert_eq!(
            policy.store(&mut store, &juliet, &m, now).unwrap(),
            OfflineDecision::Stored
        );
        assert_eq!(store.take_all(&juliet).unwrap().len(), 1);
    }

    #[test]
    fn corrupt_records_are_errors() {
        let dir = TempDir::new("corrupt");
        let juliet = bare("juliet@example.com");
        let store = ImStore::open(&dir.0).unwrap();
        let tx = store.db.begin_write().unwrap();
        {
            let mut items = tx.open_table(ROSTER_ITEMS).unwrap();
            items
                .insert((juliet.as_str(), "nurse@example.com"), &[1u8, 0, 9][..])
                .unwrap();
            let mut lists = tx.open_table(BLOCKLISTS).unwrap();
            lists
                .insert(juliet.as_str(), &[1u8, 0, 0, 0, 9, b'x'][..])
                .unwrap();
            let mut queue = tx.open_table(OFFLINE).unwrap();
            queue
                .insert((juliet.as_str(), 0), &[1u8, 2, 3][..])
                .unwrap();
        }
        tx.commit().unwrap();
        let mut store = store;
        assert!(store.items(&juliet).is_err());
        assert!(store.item(&juliet, &bare("nurse@example.com")).is_err());
        assert!(store.blocklist(&juliet).is_err());
        assert!(store.blocklists().is_err());
        assert!(store.take_all(&juliet).is_err());
        // A failed take leaves the queue as it was.
        assert!(store.offline_messages(&juliet).is_err());
    }

    #[test]
    fn records_round_trip() {
        let item = full_item("nurse@example.com");
        assert_eq!(
            decode_item("nurse@example.com", &encode_item(&item)),
            Some(item.clone())
        );
        let bytes = encode_item(&item);
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_item("nurse@example.com", &bytes[..cut]),
                None,
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_item("nurse@example.com", &longer), None);
        assert_eq!(decode_item("not a jid@", &bytes), None);
    }
}
