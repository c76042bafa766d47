//! March: merge two key-sorted listings into source-only, destination-only and both.
//!
//! The merge holds one entry of each side at a time, so memory does not grow with the
//! number of objects (rclone's `fs/march`). It relies on both listings being sorted by key
//! bytes, and checks it: an out-of-order listing is an error, never a silent wrong plan
//! (a wrong merge would upload what exists and delete what should stay).

use futures::stream::{BoxStream, Stream, StreamExt};
use larder_store::{Entry, Error, ErrorKind, Op, Result};

/// One step of the merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pair {
    /// Only the source has the key.
    SrcOnly(Entry),
    /// Only the destination has the key.
    DstOnly(Entry),
    /// Both have it.
    Both(Entry, Entry),
}

impl Pair {
    /// The key of this pair.
    pub fn key(&self) -> &larder_store::Key {
        match self {
            Pair::SrcOnly(e) | Pair::DstOnly(e) | Pair::Both(e, _) => &e.key,
        }
    }
}

/// What a listing error came from.
#[derive(Debug)]
pub enum MarchItem {
    /// A merged pair.
    Pair(Pair),
    /// A source listing item failed: the source cannot be trusted to be complete, so nothing
    /// may be deleted.
    SrcError(Error),
    /// A destination listing item failed.
    DstError(Error),
}

struct Side {
    stream: BoxStream<'static, Result<Entry>>,
    head: Option<Entry>,
    last: Option<String>,
    done: bool,
    is_src: bool,
}

impl Side {
    /// Fills `head` with the next entry; errors are returned to be passed on.
    async fn fill(&mut self) -> Option<Error> {
        while self.head.is_none() && !self.done {
            match self.stream.next().await {
                None => self.done = true,
                Some(Err(e)) => return Some(e),
                Some(Ok(e)) => {
                    if let Some(last) = &self.last {
                        if e.key.as_str().as_bytes() <= last.as_bytes() {
                            self.done = true;
                            return Some(
                                Error::new(ErrorKind::Other, Op::List, e.key.as_str())
                                    .with_detail(format!(
                                        "the {} listing is not sorted by key: `{}` came after `{last}`",
                                        if self.is_src { "source" } else { "destination" },
                                        e.key
                                    ))
                                    .with_retryable(false),
                            );
                        }
                    }
                    self.last = Some(e.key.as_str().to_owned());
                    self.head = Some(e);
                }
            }
        }
        None
    }
}

/// Merges two listings sorted by key bytes.
pub fn march(
    src: BoxStream<'static, Result<Entry>>,
    dst: BoxStream<'static, Result<Entry>>,
) -> impl Stream<Item = MarchItem> + Send + 'static {
    let state = (
        Side {
            stream: src,
            head: None,
            last: None,
            done: false,
            is_src: true,
        },
        Side {
            stream: dst,
            head: None,
            last: None,
            done: false,
            is_src: false,
        },
    );
    futures::stream::unfold(state, |(mut s, mut d)| async move {
        if let Some(e) = s.fill().await {
            return Some((MarchItem::SrcError(e), (s, d)));
        }
        if let Some(e) = d.fill().await {
            return Some((MarchItem::DstError(e), (s, d)));
        }
        let item = match (s.head.take(), d.head.take()) {
            (None, None) => return None,
            (Some(a), None) => Pair::SrcOnly(a),
            (None, Some(b)) => Pair::DstOnly(b),
            (Some(a), Some(b)) => match a.key.as_str().as_bytes().cmp(b.key.as_str().as_bytes()) {
                std::cmp::Ordering::Less => {
                    d.head = Some(b);
                    Pair::SrcOnly(a)
                }
                std::cmp::Ordering::Greater => {
                    s.head = Some(a);
                    Pair::DstOnly(b)
                }
                std::cmp::Ordering::Equal => Pair::Both(a, b),
            },
        };
        Some((MarchItem::Pair(item), (s, d)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_store::Key;

    fn entries(keys: &[&str]) -> BoxStream<'static, Result<Entry>> {
        let v: Vec<Result<Entry>> = keys
            .iter()
            .map(|k| {
                Ok(Entry {
                    key: Key::new(*k).unwrap(),
                    size: 0,
                    last_modified: None,
                    etag: None,
                    storage_class: None,
                })
            })
            .collect();
        futures::stream::iter(v).boxed()
    }

    fn show(items: Vec<MarchItem>) -> Vec<String> {
        items
            .into_iter()
            .map(|i| match i {
                MarchItem::Pair(Pair::SrcOnly(e)) => format!("+{}", e.key),
                MarchItem::Pair(Pair::DstOnly(e)) => format!("-{}", e.key),
                MarchItem::Pair(Pair::Both(e, _)) => format!("={}", e.key),
                MarchItem::SrcError(e) => format!("!src {}", e.location()),
                MarchItem::DstError(e) => format!("!dst {}", e.location()),
            })
            .collect()
    }

    #[tokio::test]
    async fn merge_table() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&[], &[], &[]),
            (&["a"], &[], &["+a"]),
            (&[], &["a"], &["-a"]),
            (&["a"], &["a"], &["=a"]),
            (
                &["a", "a-b", "a/b", "c"],
                &["a-b", "a/b", "b", "d"],
                &["+a", "=a-b", "=a/b", "-b", "+c", "-d"],
            ),
            (
                &["x", "y", "z"],
                &["a", "b"],
                &["-a", "-b", "+x", "+y", "+z"],
            ),
            (&["é"], &["z", "é"], &["-z", "=é"]),
        ];
        for (src, dst, want) in cases {
            let got = show(march(entries(src), entries(dst)).collect().await);
            assert_eq!(&got, want, "src {src:?} dst {dst:?}");
        }
    }

    #[tokio::test]
    async fn unsorted_listing_is_an_error_not_a_wrong_merge() {
        let got = show(
            march(entries(&["b", "a"]), entries(&["a", "b"]))
                .collect()
                .await,
        );
        assert_eq!(got[0], "-a");
        assert!(got.iter().any(|s| s == "!src a"), "{got:?}");
        // Nothing after the unsorted point is claimed to be source-only.
        assert!(!got.iter().any(|s| s == "+a"), "{got:?}");
    }

    #[tokio::test]
    async fn listing_errors_are_passed_on_and_the_merge_goes_on() {
        let src: BoxStream<'static, Result<Entry>> = futures::stream::iter(vec![
            Err(Error::new(ErrorKind::Io, Op::List, "/src/bad")),
            Ok(Entry {
                key: Key::new("a").unwrap(),
                size: 0,
                last_modified: None,
                etag: None,
                storage_class: None,
            }),
        ])
        .boxed();
        let got = show(march(src, entries(&["a"])).collect().await);
        assert_eq!(got, ["!src /src/bad", "=a"]);
    }
}
