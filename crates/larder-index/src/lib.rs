//! larder's embedded state, in SQLite: the metadata cache of the sync engine
//! ([`MetaCache`]) and the vault index ([`Index`]): which vaults exist and their policies,
//! and for each a persistent index of its remote objects, fed by S3 Inventory
//! ([`inventory`]), listings (reconcile) and syncs.
//!
//! The index is a cache of remote truth: it may save LIST and HEAD requests, never alone
//! justify a deletion. Every database runs in WAL mode with `synchronous = NORMAL`; schema
//! changes are append-only migrations keyed by `PRAGMA user_version`; bulk changes (an
//! inventory import, a reconcile) replace a vault's rows in one transaction, so a failure
//! leaves the index exactly as it was.
#![warn(missing_docs)]

mod db;
pub mod events;
pub mod inventory;
pub mod lock;
pub mod manifest;
mod meta_cache;
mod policy;
mod runs;
pub mod twoway;
pub mod uploads;
pub mod vault;
pub mod versions;

pub use meta_cache::{MetaCache, StateError};
pub use uploads::Uploads;
pub use vault::{
    Budgets, EventStats, Index, IndexSource, IndexState, ObjectRow, Policy, PriceTable, Run,
    Strategy, Vault,
};
pub use versions::VersionMap;

/// What can go wrong with the vault index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database could not be opened, read or written.
    #[error("the index database `{path}`: {source}")]
    Db {
        /// The database file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// No vault of that name.
    #[error("no vault named `{0}` (see `larder vault list`)")]
    NoVault(String),
    /// A vault of that name exists already.
    #[error("a vault named `{0}` exists already")]
    VaultExists(String),
    /// A value the index cannot take (a vault name, a policy field).
    #[error("{0}")]
    Invalid(String),
    /// An inventory delivery was refused; the index is unchanged.
    #[error("inventory `{file}` refused, the index is unchanged: {why}")]
    Inventory {
        /// The file (manifest, data file) at fault.
        file: String,
        /// What is wrong with it.
        why: String,
    },
}

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
