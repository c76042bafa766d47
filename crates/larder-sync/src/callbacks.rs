//! Hooks a sync calls (s3sync's Lua callbacks, as Rust traits): a filter deciding which
//! source objects are synced, and a preprocessor changing what a write carries (metadata,
//! tags, Content-Type, storage class) before it is sent. Events go to
//! [`SyncOptions::on_event`](crate::SyncOptions::on_event).
//!
//! The CLI implements them with Lua scripts (`--filter-callback-lua-script`,
//! `--preprocess-callback-lua-script`); a library user implements them in Rust:
//!
//! ```
//! use larder_sync::callbacks::{CallbackError, FilterCallback};
//! use larder_store::Entry;
//!
//! /// Only objects under 1 MiB.
//! #[derive(Debug)]
//! struct Small;
//!
//! impl FilterCallback for Small {
//!     fn keep(&self, entry: &Entry) -> Result<bool, CallbackError> {
//!         Ok(entry.size < 1 << 20)
//!     }
//! }
//! ```

use larder_store::{Entry, ObjectMeta, PutOptions};

/// A callback failed; the key it was called for fails with this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CallbackError(pub String);

/// Decides which source objects are synced. Called once per source object the key, size
/// and time filters keep, before it is compared; `false` leaves it out (as a filter does:
/// neither transferred nor, under `--delete`, deleted).
pub trait FilterCallback: std::fmt::Debug + Send + Sync {
    /// Whether to sync `entry` (as the source listed it).
    ///
    /// # Errors
    ///
    /// The key fails with the error; the run goes on.
    fn keep(&self, entry: &Entry) -> Result<bool, CallbackError>;
}

/// Changes what a write carries. Called once per write, after the source's metadata and
/// every override were applied, with what the source's read said of the object.
pub trait PreprocessCallback: std::fmt::Debug + Send + Sync {
    /// Changes `put` (Content-Type, Cache-Control, headers, user metadata, tags, storage
    /// class) for the object `meta` describes.
    ///
    /// # Errors
    ///
    /// The key fails with the error and nothing is written for it.
    fn preprocess(&self, meta: &ObjectMeta, put: &mut PutOptions) -> Result<(), CallbackError>;
}

/// Gives each source object another key at the destination (s3sync users' key
/// transforms; the CLI's `--transform` and `--transform-lua-script`). See
/// [`crate::rename::Renamed`].
pub trait KeyTransform: std::fmt::Debug + Send + Sync {
    /// The destination key of the source key `key` (itself, to keep it).
    ///
    /// # Errors
    ///
    /// The key fails with the error (and the run deletes nothing).
    fn transform(&self, key: &str) -> Result<String, CallbackError>;

    /// How the transform is named in messages and in the metadata cache
    /// (`s/^a\//b\//`, `transform.lua`).
    fn describe(&self) -> String;
}
