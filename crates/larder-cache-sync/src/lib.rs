//! `larder cache sync`: a cache directory (npm's cacache format) kept in sync with a bucket
//! in kache's v3 layout, so CI runners pull exactly what a project's lockfile needs before a
//! build and push what they built after it.
//!
//! * [`layout`]: where manifests and packs live; which listed keys are accepted.
//! * [`meta`]: `meta.json`, kache's `EntryMeta` plus larder's cache-entry fields.
//! * [`pack`]: writing packs, and reading hostile ones safely.
//! * [`local`]: a cache's artifacts, their namespaces and cache keys (and how a kache entry
//!   of several files is kept in the cache).
//! * [`lockfile`]: pull and push filters from `Cargo.lock`, npm lockfiles and `cargo
//!   metadata`.
//! * [`plan`] and [`execute`]: list, compare, then pull and push, concurrently.
//!
//! Packs are written first and manifests last, so a pack without its manifest is never
//! listed, and a listed manifest whose pack is gone is reported as a miss.
#![warn(missing_docs)]

pub mod layout;
pub mod local;
pub mod lockfile;
pub mod meta;
pub mod pack;
mod run;

pub use run::{execute, plan, Direction, Failure, Options, Plan, Planned, Report};

/// A cache-sync error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bucket.
    #[error(transparent)]
    Store(#[from] larder_store::Error),
    /// The local cache.
    #[error(transparent)]
    Cache(#[from] larder_cache::Error),
    /// A lockfile.
    #[error(transparent)]
    Lockfile(#[from] lockfile::LockfileError),
    /// A pack that was refused.
    #[error("the pack `{key}`: {source}")]
    Pack {
        /// Its object key.
        key: String,
        /// Why.
        #[source]
        source: pack::PackError,
    },
    /// A listed manifest whose pack is not there.
    #[error("no pack at `{0}` though its manifest is listed (a miss)")]
    Miss(String),
    /// A local entry that cannot be packed.
    #[error("the cache entry `{key}`: {reason}")]
    Local {
        /// The cache key of the entry.
        key: String,
        /// Why.
        reason: String,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
