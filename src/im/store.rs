//! Roster storage: the [`RosterStore`] trait the host implements, and
//! [`MemoryRosterStore`].
//!
//! The IM layer reads and writes through the trait synchronously, from
//! inside one call of [`ImService`](crate::im::ImService). Each call reads
//! what it needs first and then writes at most once: one item (or its
//! removal) **and** the new roster version together, so a store backed by
//! a database can make each write one transaction. An error from the store
//! ends the IM call with that error and no actions; since the write comes
//! last, a failed call leaves the store as it was.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;

use crate::im::roster::RosterItem;
use crate::jid::BareJid;

/// Where the rosters live. Implemented by the host (a database, a file, a
/// cache in front of either); [`MemoryRosterStore`] keeps them in memory.
///
/// A user's records include items with `in_roster == false` (pending
/// subscription requests from contacts the user has not added): store them
/// like any other item.
pub trait RosterStore {
    /// What the backend reports when it fails.
    type Error;

    /// All records of `user`, in any order (the IM layer sorts them by JID).
    fn items(&self, user: &BareJid) -> Result<Vec<RosterItem>, Self::Error>;

    /// The record of `contact` in `user`'s roster.
    fn item(&self, user: &BareJid, contact: &BareJid) -> Result<Option<RosterItem>, Self::Error>;

    /// The roster version of `user`; 0 for a user never written.
    fn version(&self, user: &BareJid) -> Result<u64, Self::Error>;

    /// Stores `item` (replacing the record of `item.jid`) and sets the
    /// roster version to `version`, together.
    fn put_item(
        &mut self,
        user: &BareJid,
        item: RosterItem,
        version: u64,
    ) -> Result<(), Self::Error>;

    /// Removes the record of `contact` (if any) and sets the roster version
    /// to `version`, together.
    fn remove_item(
        &mut self,
        user: &BareJid,
        contact: &BareJid,
        version: u64,
    ) -> Result<(), Self::Error>;
}

/// One user's roster in a [`MemoryRosterStore`].
#[derive(Clone, Debug, Default, PartialEq)]
struct UserRoster {
    version: u64,
    items: BTreeMap<BareJid, RosterItem>,
}

/// Rosters in memory: for tests, and for hosts that load and save them
/// elsewhere.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryRosterStore {
    users: HashMap<BareJid, UserRoster>,
}

impl MemoryRosterStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of records of `user` (including those not in the
    /// roster).
    pub fn len(&self, user: &BareJid) -> usize {
        self.users.get(user).map_or(0, |r| r.items.len())
    }

    /// Whether `user` has no records.
    pub fn is_empty(&self, user: &BareJid) -> bool {
        self.len(user) == 0
    }
}

impl RosterStore for MemoryRosterStore {
    type Error = Infallible;

    fn items(&self, user: &BareJid) -> Result<Vec<RosterItem>, Infallible> {
        Ok(self
            .users
            .get(user)
            .map(|r| r.items.values().cloned().collect())
            .unwrap_or_default())
    }

    fn item(&self, user: &BareJid, contact: &BareJid) -> Result<Option<RosterItem>, Infallible> {
        Ok(self
            .users
            .get(user)
            .and_then(|r| r.items.get(contact))
            .cloned())
    }

    fn version(&self, user: &BareJid) -> Result<u64, Infallible> {
        Ok(self.users.get(user).map_or(0, |r| r.version))
    }

    fn put_item(
        &mut self,
        user: &BareJid,
        item: RosterItem,
        version: u64,
    ) -> Result<(), Infallible> {
        let roster = self.users.entry(user.clone()).or_default();
        roster.version = version;
        roster.items.insert(item.jid.clone(), item);
        Ok(())
    }

    fn remove_item(
        &mut self,
        user: &BareJid,
        contact: &BareJid,
        version: u64,
    ) -> Result<(), Infallible> {
        let roster = self.users.entry(user.clone()).or_default();
        roster.version = version;
        roster.items.remove(contact);
        Ok(())
    }
}
