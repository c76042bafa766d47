//! Subresource Integrity strings (`sha512-<base64>`), as npm's `ssri` writes and reads them.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::Digest as _;

/// A hash algorithm of integrity strings, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// SHA-1 (accepted, for old caches).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512 (npm's default, and larder's).
    Sha512,
}

impl Algorithm {
    /// The name in integrity strings and content paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

/// A content address: an algorithm and a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Integrity {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The raw digest.
    pub digest: Vec<u8>,
}

/// An integrity string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid integrity string `{0}`")]
pub struct BadIntegrity(pub String);

impl Integrity {
    /// The digest in lowercase hex (content paths use it).
    pub fn hex(&self) -> String {
        hex::encode(&self.digest)
    }

    /// Hashes `data`.
    pub fn compute(algorithm: Algorithm, data: &[u8]) -> Self {
        let mut h = IntegrityHasher::new(algorithm);
        h.update(data);
        h.finish()
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.algorithm.as_str(),
            BASE64.encode(&self.digest)
        )
    }
}

impl FromStr for Integrity {
    type Err = BadIntegrity;

    /// Parses an integrity string; of several space-separated hashes (`sha1-… sha512-…`) the
    /// strongest supported one is kept, as ssri does. Options (`?foo`) are ignored.
    fn from_str(s: &str) -> Result<Self, BadIntegrity> {
        let mut best: Option<Integrity> = None;
        for part in s.split_whitespace() {
            let Some((alg, rest)) = part.split_once('-') else {
                continue;
            };
            let algorithm = match alg {
                "sha1" => Algorithm::Sha1,
                "sha256" => Algorithm::Sha256,
                "sha512" => Algorithm::Sha512,
                _ => continue,
            };
            let b64 = rest.split('?').next().unwrap_or("");
            let Ok(digest) = BASE64.decode(b64) else {
                continue;
            };
            if digest.len() != algorithm.digest_len() {
                continue;
            }
            if best.as_ref().is_none_or(|b| algorithm > b.algorithm) {
                best = Some(Integrity { algorithm, digest });
            }
        }
        best.ok_or_else(|| BadIntegrity(s.to_owned()))
    }
}

/// Hashes a stream of bytes into an [`Integrity`].
#[derive(Debug, Clone)]
pub enum IntegrityHasher {
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl IntegrityHasher {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => IntegrityHasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => IntegrityHasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => IntegrityHasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            IntegrityHasher::Sha1(h) => h.update(data),
            IntegrityHasher::Sha256(h) => h.update(data),
            IntegrityHasher::Sha512(h) => h.update(data),
        }
    }

    /// The integrity of what was fed.
    pub fn finish(self) -> Integrity {
        let (algorithm, digest) = match self {
            IntegrityHasher::Sha1(h) => (Algorithm::Sha1, h.finalize().to_vec()),
            IntegrityHasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            IntegrityHasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        Integrity { algorithm, digest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strongest_wins() {
        let i = Integrity::compute(Algorithm::Sha512, b"hello");
        let s = i.to_string();
        assert!(s.starts_with("sha512-"));
        assert_eq!(s.parse::<Integrity>().unwrap(), i);
        let weak = Integrity::compute(Algorithm::Sha1, b"hello");
        let both = format!("{weak} {s}?opt");
        assert_eq!(both.parse::<Integrity>().unwrap(), i);
        assert!("md5-abc".parse::<Integrity>().is_err());
        assert!("sha512-short".parse::<Integrity>().is_err());
        // Known value: sha256 of "hello".
        assert_eq!(
            Integrity::compute(Algorithm::Sha256, b"hello").hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }
}
