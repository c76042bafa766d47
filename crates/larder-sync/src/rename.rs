//! Key transforms: a source seen under other keys (`--transform 's/^raw\//clean\//'`, or a
//! Lua `transform(key)`), so a sync writes each object at its new key and `--delete` prunes
//! the destination against the new keys.
//!
//! [`Renamed`] is a read-only view of a store whose listing gives each object its
//! transformed key. A transform need not keep S3's key order, so the view lists the whole
//! source and sorts it before the sync's merge sees it: memory grows with the number of
//! keys (about 100 bytes each), which is the price of a transform. Two keys transformed into
//! one, or into no key at all (empty), fail by name, and a failed listing stops deletions as
//! any listing error does; a key the destination cannot hold (`../x` in a directory) fails
//! there, by name, as any such key does.
//!
//! ```
//! use std::sync::Arc;
//! use larder_store::{MemoryStore, Store};
//! use larder_sync::rename::{Renamed, SedTransform};
//!
//! let t = SedTransform::parse(r"s/^raw\//clean\//").unwrap();
//! let src: Arc<dyn Store> = Arc::new(Renamed::new(Arc::new(MemoryStore::new()), Arc::new(t)));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use larder_store::{
    Body, Capabilities, CopyOptions, CopySource, DeleteReport, Entry, Error, ErrorKind, GetOptions,
    GetResult, Key, ObjectMeta, Op, PutOptions, PutResult, Result, Store, Tags,
};
use regex::Regex;

use crate::callbacks::{CallbackError, KeyTransform};

/// A sed-style substitution, `s/REGEX/REPLACEMENT/[g]` (any delimiter after the `s`; `\1`
/// or `${1}` for groups; `g` replaces every match, else the first).
#[derive(Debug, Clone)]
pub struct SedTransform {
    text: String,
    regex: Regex,
    replacement: String,
    global: bool,
}

impl SedTransform {
    /// Parses `s/REGEX/REPLACEMENT/[g]`.
    ///
    /// # Errors
    ///
    /// What is wrong with it, naming it.
    pub fn parse(text: &str) -> std::result::Result<Self, CallbackError> {
        let bad = |why: &str| CallbackError(format!("--transform `{text}`: {why}"));
        let mut chars = text.chars();
        if chars.next() != Some('s') {
            return Err(bad("a transform is s/REGEX/REPLACEMENT/[g]"));
        }
        let delim = chars
            .next()
            .filter(|c| !c.is_alphanumeric() && *c != '\\')
            .ok_or_else(|| bad("a transform is s/REGEX/REPLACEMENT/[g]"))?;
        // Split on unescaped delimiters; `\<delim>` stands for the delimiter itself.
        let mut parts = vec![String::new()];
        let mut escaped = false;
        for c in chars {
            match (escaped, c) {
                (true, c) if c == delim => {
                    parts.last_mut().expect("one part").push(c);
                    escaped = false;
                }
                (true, c) => {
                    parts.last_mut().expect("one part").extend(['\\', c]);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, c) if c == delim => parts.push(String::new()),
                (false, c) => parts.last_mut().expect("one part").push(c),
            }
        }
        let [pattern, replacement, flags] = <[String; 3]>::try_from(parts)
            .map_err(|_| bad("a transform is s/REGEX/REPLACEMENT/[g]: three delimiters"))?;
        let global = match flags.as_str() {
            "" => false,
            "g" => true,
            _ => return Err(bad("the only flag is g")),
        };
        let regex = Regex::new(&pattern).map_err(|e| {
            // The regex crate's message spans lines (the pattern, a caret, the error).
            let msg = e.to_string();
            let last = msg.lines().last().unwrap_or_default().trim();
            bad(&format!(
                "`{pattern}` is not a regex: {}",
                last.trim_start_matches("error: ")
            ))
        })?;
        // sed's \1 is the regex crate's ${1}; a literal $ is $$.
        let mut rep = String::new();
        let mut it = replacement.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '\\' if it.peek().is_some_and(char::is_ascii_digit) => {
                    rep.push_str(&format!("${{{}}}", it.next().expect("peeked")));
                }
                '\\' if it.peek() == Some(&'\\') => {
                    it.next();
                    rep.push('\\');
                }
                '$' if it.peek() != Some(&'{') && !it.peek().is_some_and(char::is_ascii_digit) => {
                    rep.push_str("$$")
                }
                c => rep.push(c),
            }
        }
        Ok(SedTransform {
            text: text.to_owned(),
            regex,
            replacement: rep,
            global,
        })
    }
}

impl KeyTransform for SedTransform {
    fn transform(&self, key: &str) -> std::result::Result<String, CallbackError> {
        Ok(if self.global {
            self.regex.replace_all(key, self.replacement.as_str())
        } else {
            self.regex.replace(key, self.replacement.as_str())
        }
        .into_owned())
    }

    fn describe(&self) -> String {
        self.text.clone()
    }
}

/// A read-only view of `inner` with every key transformed. See the module docs.
pub struct Renamed {
    inner: Arc<dyn Store>,
    transform: Arc<dyn KeyTransform>,
    /// Transformed key → the key in `inner`, for keys the transform changed (filled by
    /// [`Store::list`]).
    origins: Arc<Mutex<HashMap<Key, Key>>>,
}

impl Renamed {
    /// `inner` seen through `transform`.
    pub fn new(inner: Arc<dyn Store>, transform: Arc<dyn KeyTransform>) -> Self {
        Renamed {
            inner,
            transform,
            origins: Arc::default(),
        }
    }

    /// The key in the inner store of a transformed key (as listed).
    fn origin(&self, key: &Key) -> Key {
        self.origins
            .lock()
            .expect("origins lock")
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.clone())
    }

    fn read_only(&self, key: &Key, op: Op) -> Error {
        Error::new(ErrorKind::Unsupported, op, self.location(key.as_str()))
            .with_detail("a transformed view of a store is read-only")
    }
}

impl fmt::Debug for Renamed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renamed")
            .field("inner", &self.inner)
            .field("transform", &self.transform.describe())
            .finish()
    }
}

impl fmt::Display for Renamed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (keys {})", self.inner, self.transform.describe())
    }
}

/// The transformed listing, sorted, with the errors first.
async fn transformed(
    inner: Arc<dyn Store>,
    transform: Arc<dyn KeyTransform>,
    origins: Arc<Mutex<HashMap<Key, Key>>>,
    prefix: String,
) -> Vec<Result<Entry>> {
    let mut listing = inner.list("");
    let (mut entries, mut errors) = (Vec::new(), Vec::new());
    while let Some(item) = listing.next().await {
        let e = match item {
            Ok(e) => e,
            Err(err) => {
                errors.push(Err(err));
                continue;
            }
        };
        let bad = |why: String| {
            Error::new(
                ErrorKind::InvalidKey,
                Op::List,
                inner.location(e.key.as_str()),
            )
            .with_detail(why)
        };
        let new = match transform.transform(e.key.as_str()) {
            Ok(n) => n,
            Err(err) => {
                errors.push(Err(bad(format!("transform: {err}"))));
                continue;
            }
        };
        match Key::new(new.as_str()) {
            Ok(k) if k.as_str().starts_with(&prefix) => entries.push((k, e)),
            Ok(_) => {}
            Err(err) => errors.push(Err(bad(format!(
                "{} made it `{new}`, which is not a key: {err}",
                transform.describe()
            )))),
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut origins = origins.lock().expect("origins lock");
    let mut out = errors;
    let mut i = 0;
    while i < entries.len() {
        let mut j = i + 1;
        while j < entries.len() && entries[j].0 == entries[i].0 {
            j += 1;
        }
        if j - i > 1 {
            // Two objects for one key: neither is synced, both are named.
            let names: Vec<&str> = entries[i..j].iter().map(|(_, e)| e.key.as_str()).collect();
            out.push(Err(Error::new(
                ErrorKind::Conflict,
                Op::List,
                inner.location(entries[i].1.key.as_str()),
            )
            .with_detail(format!(
                "{} maps {} to one key `{}`",
                transform.describe(),
                names.join(", "),
                entries[i].0
            ))));
        } else {
            let (k, e) = &entries[i];
            if *k != e.key {
                origins.insert(k.clone(), e.key.clone());
            }
            out.push(Ok(Entry {
                key: k.clone(),
                ..e.clone()
            }));
        }
        i = j;
    }
    out
}

#[async_trait]
impl Store for Renamed {
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<Entry>> {
        let fut = transformed(
            self.inner.clone(),
            self.transform.clone(),
            self.origins.clone(),
            prefix.to_owned(),
        );
        stream::once(fut).flat_map(stream::iter).boxed()
    }
    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>> {
        let mut m = self.inner.head(&self.origin(key)).await?;
        if let Some(m) = &mut m {
            m.key = key.clone();
        }
        Ok(m)
    }
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<GetResult> {
        let mut g = self.inner.get(&self.origin(key), opts).await?;
        g.meta.key = key.clone();
        Ok(g)
    }
    async fn put(&self, key: &Key, _: Body, _: PutOptions) -> Result<PutResult> {
        Err(self.read_only(key, Op::Put))
    }
    async fn delete(&self, keys: &[Key]) -> Result<DeleteReport> {
        let first = keys
            .first()
            .cloned()
            .unwrap_or_else(|| Key::new("-").expect("key"));
        Err(self.read_only(&first, Op::Delete))
    }
    async fn copy(&self, from: &Key, _: &Key, _: CopyOptions) -> Result<PutResult> {
        Err(self.read_only(from, Op::Copy))
    }
    fn copy_source(&self, key: &Key) -> Option<CopySource> {
        self.inner.copy_source(&self.origin(key))
    }
    async fn first_part_size(&self, key: &Key) -> Result<Option<u64>> {
        self.inner.first_part_size(&self.origin(key)).await
    }
    async fn first_part(&self, key: &Key) -> Result<larder_store::FirstPart> {
        self.inner.first_part(&self.origin(key)).await
    }
    async fn tags(&self, key: &Key) -> Result<Option<Tags>> {
        self.inner.tags(&self.origin(key)).await
    }
    fn identity(&self) -> String {
        format!(
            "{} keys {}",
            self.inner.identity(),
            self.transform.describe()
        )
    }
    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn location(&self, key: &str) -> String {
        let k = Key::new(key).map(|k| self.origin(&k));
        self.inner.location(k.as_ref().map_or(key, |k| k.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use larder_store::MemoryStore;

    fn sed(s: &str) -> SedTransform {
        SedTransform::parse(s).unwrap()
    }

    #[test]
    fn sed_substitutions() {
        let t = sed(r"s/^raw\//clean\//");
        assert_eq!(t.transform("raw/a/b.txt").unwrap(), "clean/a/b.txt");
        assert_eq!(t.transform("other/raw/x").unwrap(), "other/raw/x");
        assert_eq!(
            sed(r"s|(\d+)-(\d+)|\2-\1|").transform("a/1-2/3-4").unwrap(),
            "a/2-1/3-4"
        );
        assert_eq!(
            sed(r"s|(\d+)-(\d+)|\2-\1|g")
                .transform("a/1-2/3-4")
                .unwrap(),
            "a/2-1/4-3"
        );
        assert_eq!(sed(r"s/\.JPG$/.jpg/").transform("x.JPG").unwrap(), "x.jpg");
        assert_eq!(sed("s/a/$b/").transform("a").unwrap(), "$b", "a literal $");
        for bad in ["x/a/b/", "s/a/b", "s/a/b/q", "s/(/b/", "s"] {
            let e = SedTransform::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[tokio::test]
    async fn a_renamed_store_lists_sorted_reads_through_and_names_collisions() {
        let m: Arc<dyn Store> = Arc::new(MemoryStore::new());
        for k in ["a/1", "b/2", "z/3", "y/3"] {
            m.put(
                &Key::new(k).unwrap(),
                Body::from_bytes(k.as_bytes().to_vec()),
                Default::default(),
            )
            .await
            .unwrap();
        }
        // z/ goes first, and y/3 and z/3 collide on 0/3.
        let r = Renamed::new(m.clone(), Arc::new(sed(r"s/^[yz]\//0\//")));
        let items: Vec<_> = r.list("").collect().await;
        let (ok, err): (Vec<_>, Vec<_>) = items.into_iter().partition(|i| i.is_ok());
        let keys: Vec<String> = ok
            .into_iter()
            .map(|e| e.unwrap().key.into_string())
            .collect();
        assert_eq!(keys, ["a/1", "b/2"]);
        assert_eq!(err.len(), 1);
        let e = err[0].as_ref().unwrap_err().to_string();
        assert!(
            e.contains("y/3") && e.contains("z/3") && e.contains("0/3"),
            "{e}"
        );

        let r = Renamed::new(m, Arc::new(sed(r"s/^b\//0\//")));
        let keys: Vec<String> = r
            .list("")
            .map_ok(|e| e.key.into_string())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(keys, ["0/2", "a/1", "y/3", "z/3"]);
        let k = Key::new("0/2").unwrap();
        let body = r
            .get(&k, Default::default())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&body[..], b"b/2", "read from the original key");
        assert!(r.location("0/2").ends_with("b/2"), "{}", r.location("0/2"));
        let bad = Renamed::new(r.inner.clone(), Arc::new(sed(r"s/^a\/1$//")));
        let items: Vec<_> = bad.list("").collect().await;
        assert!(
            items
                .iter()
                .any(|i| matches!(i, Err(e) if e.to_string().contains("a/1"))),
            "{items:?}"
        );
    }
}
