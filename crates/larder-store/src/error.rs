//! The one error type of the store layer.
//!
//! Every error says which operation failed on which location (`failed to get
//! `s3://bucket/key``), carries a [`ErrorKind`] to match on, and whether trying again may
//! help. The cause is left to [`std::error::Error::source`], so a chain printed with `{:#}`
//! (anyhow) reads once.

use std::fmt;

/// What went wrong, to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object, bucket or directory does not exist.
    NotFound,
    /// A key that this backend cannot hold (see [`crate::key::KeyError`]).
    InvalidKey,
    /// The key clashes with what is there (a file where a directory is needed, or the reverse).
    Conflict,
    /// Credentials missing or rejected, or access denied.
    PermissionDenied,
    /// The bytes read or written do not match their size, ETag or checksum.
    Integrity,
    /// A bad URL, option or configuration.
    InvalidConfig,
    /// The backend cannot do this.
    Unsupported,
    /// A requested range starts past the end of the object.
    InvalidRange,
    /// A conditional read found the object unchanged (`If-None-Match`, HTTP 304).
    NotModified,
    /// A network failure, timeout, throttling or server error: trying again may help.
    Transient,
    /// A local I/O failure.
    Io,
    /// Anything else the backend reported.
    Other,
}

impl ErrorKind {
    /// A short lowercase description.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::InvalidKey => "invalid key",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Integrity => "integrity check failed",
            ErrorKind::InvalidConfig => "invalid configuration",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidRange => "invalid range",
            ErrorKind::NotModified => "not modified",
            ErrorKind::Transient => "transient failure",
            ErrorKind::Io => "i/o error",
            ErrorKind::Other => "error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Opening or configuring a store.
    Open,
    /// Listing.
    List,
    /// Reading an object's metadata.
    Head,
    /// Reading an object.
    Get,
    /// Writing an object.
    Put,
    /// Deleting objects.
    Delete,
    /// A server-side copy.
    Copy,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Open => "open",
            Op::List => "list",
            Op::Head => "head",
            Op::Get => "get",
            Op::Put => "put",
            Op::Delete => "delete",
            Op::Copy => "copy",
        })
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A store error: what was done, to which location, what went wrong, and why.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    op: Op,
    location: String,
    detail: Option<String>,
    retryable: bool,
    source: Option<Source>,
}

/// The result type of the store layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error; `location` is the URL or path the operation was on.
    pub fn new(kind: ErrorKind, op: Op, location: impl Into<String>) -> Self {
        Error {
            kind,
            op,
            location: location.into(),
            detail: None,
            retryable: kind == ErrorKind::Transient,
            source: None,
        }
    }

    /// Adds a one-line description of what went wrong, printed after the location.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds the underlying cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Overrides whether trying again may help.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// An error for a local I/O failure, with the kind derived from the `io::Error`.
    pub fn io(op: Op, path: impl fmt::Display, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            K::AlreadyExists | K::NotADirectory | K::IsADirectory | K::DirectoryNotEmpty => {
                ErrorKind::Conflict
            }
            K::InvalidFilename => ErrorKind::InvalidKey,
            K::Interrupted | K::TimedOut => ErrorKind::Transient,
            _ => ErrorKind::Io,
        };
        // The OS's own words ("No space left on device (os error 28)") are the detail, so
        // the one-line message says the cause, not only its kind.
        Error::new(kind, op, path.to_string())
            .with_detail(err.to_string())
            .with_source(err)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operation that failed.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The URL or path the operation was on.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The one-line description, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// Whether trying the operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Whether this is [`ErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to {} `{}`: ", self.op, self.location)?;
        match &self.detail {
            Some(d) => f.write_str(d),
            None => f.write_str(self.kind.as_str()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_operation_location_and_cause() {
        let e = Error::new(ErrorKind::NotFound, Op::Get, "s3://b/k").with_detail("no such key");
        assert_eq!(e.to_string(), "failed to get `s3://b/k`: no such key");
        let e = Error::new(ErrorKind::Transient, Op::Put, "s3://b/k");
        assert_eq!(e.to_string(), "failed to put `s3://b/k`: transient failure");
        assert!(e.is_retryable());
    }

    #[test]
    fn io_errors_map_to_kinds() {
        let e = Error::io(
            Op::Get,
            "/x",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert!(e.is_not_found());
        assert!(std::error::Error::source(&e).is_some());
    }
}
