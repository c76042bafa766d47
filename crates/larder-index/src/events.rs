//! S3 Event Notifications as they really arrive, turned into index changes.
//!
//! Containers read (any mix, one after another in a file): an S3 message
//! `{"Records":[…]}`; a JSON array of messages or records; JSON Lines; concatenated
//! `aws sqs receive-message` outputs (`{"Messages":[{"Body":"…"}]}`); Lambda SQS events
//! (`Records[].body`, which may wrap an SNS envelope); SNS envelopes
//! (`{"Type":"Notification","Message":"…"}`) and Lambda SNS events (`Records[].Sns.Message`);
//! EventBridge `Object Created` / `Object Deleted`. S3's `s3:TestEvent` is ignored.
//!
//! `ObjectCreated:*` upserts a row; `ObjectRemoved:*` and `LifecycleExpiration:*` remove
//! one, leaving a tombstone with its sequencer so an older create delivered later cannot
//! resurrect the key; other events (restores, tagging, transitions) change nothing. Per key,
//! an event applies only when its sequencer is greater than the last one applied (AWS's
//! rule: right-pad the shorter with zeros, compare as strings). Keys in notification records
//! are URL-encoded (form encoding) and decoded once; EventBridge keys are not encoded.

use std::time::SystemTime;

use serde_json::Value;

use crate::{Error, Result};

/// What an event does to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The object was written: size and ETag.
    Created {
        /// Its size.
        size: u64,
        /// Its ETag, without quotes.
        etag: Option<String>,
    },
    /// The object was deleted (or expired).
    Removed,
    /// Anything else: no change.
    Other,
}

/// One S3 event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Event {
    /// The bucket.
    pub bucket: String,
    /// The full key, decoded.
    pub key: String,
    /// What happened.
    pub change: Change,
    /// S3's sequencer for the key, uppercase hex, when given.
    pub sequencer: Option<String>,
    /// When.
    pub time: Option<SystemTime>,
}

/// Compares two sequencers as AWS documents: the shorter right-padded with `0`.
pub fn sequencer_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let n = a.len().max(b.len());
    let pad = |s: &str| format!("{:0<n$}", s.to_ascii_uppercase());
    pad(a).cmp(&pad(b))
}

fn bad(file: &str, why: impl Into<String>) -> Error {
    Error::Inventory {
        file: file.to_owned(),
        why: why.into(),
    }
}

/// Parses every event in `text` (named `file` in errors).
///
/// # Errors
///
/// [`Error::Inventory`] (an events file refused whole) when the text is not JSON, or a
/// value in it is neither an S3 event nor a container of them.
pub fn parse(file: &str, text: &str) -> Result<Vec<S3Event>> {
    let mut out = Vec::new();
    parse_into(file, text, &mut out, 0)?;
    Ok(out)
}

fn parse_into(file: &str, text: &str, out: &mut Vec<S3Event>, depth: u8) -> Result<()> {
    if depth > 4 {
        return Err(bad(file, "messages nested more than four deep"));
    }
    for v in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        let v = v.map_err(|e| bad(file, format!("not JSON: {e}")))?;
        collect(file, v, out, depth)?;
    }
    Ok(())
}

fn collect(file: &str, v: Value, out: &mut Vec<S3Event>, depth: u8) -> Result<()> {
    let nested = |s: &Value, out: &mut Vec<S3Event>| -> Result<()> {
        match s.as_str() {
            Some(t) => parse_into(file, t, out, depth + 1),
            None => Err(bad(file, "a message body that is not a string")),
        }
    };
    match v {
        Value::Array(items) => {
            for i in items {
                collect(file, i, out, depth)?;
            }
            Ok(())
        }
        Value::Object(ref o) => {
            if let Some(Value::Array(records)) = o.get("Records") {
                for r in records {
                    if r.get("eventName").is_some() && r.get("s3").is_some() {
                        out.push(record(file, r)?);
                    } else if let Some(body) = r.get("body") {
                        nested(body, out)?; // Lambda SQS
                    } else if let Some(msg) = r.get("Sns").and_then(|s| s.get("Message")) {
                        nested(msg, out)?; // Lambda SNS
                    } else {
                        return Err(bad(file, "a record that is not an S3 event"));
                    }
                }
                Ok(())
            } else if let Some(Value::Array(msgs)) = o.get("Messages") {
                for m in msgs {
                    match m.get("Body") {
                        Some(b) => nested(b, out)?,
                        None => return Err(bad(file, "an SQS message without a Body")),
                    }
                }
                Ok(())
            } else if o.get("Type").and_then(Value::as_str) == Some("Notification") {
                match o.get("Message") {
                    Some(m) => nested(m, out),
                    None => Err(bad(file, "an SNS notification without a Message")),
                }
            } else if o.get("source").and_then(Value::as_str) == Some("aws.s3")
                && o.get("detail-type").is_some()
            {
                out.push(eventbridge(file, &v)?);
                Ok(())
            } else if o.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
                Ok(())
            } else if o.get("eventName").is_some() && o.get("s3").is_some() {
                out.push(record(file, &v)?);
                Ok(())
            } else {
                Err(bad(
                    file,
                    "a JSON value that is not an S3 event nor a message of them",
                ))
            }
        }
        _ => Err(bad(
            file,
            "a JSON value that is not an S3 event nor a message of them",
        )),
    }
}

fn time(v: Option<&Value>) -> Option<SystemTime> {
    v.and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok())
}

fn size_of(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

fn etag_of(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(|e| e.trim_matches('"').to_ascii_lowercase())
        .filter(|e| !e.is_empty())
}

/// A notification record (`eventName`, `s3.bucket.name`, `s3.object.{key,size,eTag,sequencer}`).
fn record(file: &str, r: &Value) -> Result<S3Event> {
    let name = r["eventName"].as_str().unwrap_or("");
    let s3 = &r["s3"];
    let bucket = s3["bucket"]["name"]
        .as_str()
        .ok_or_else(|| bad(file, format!("a {name} record without a bucket name")))?;
    let raw = s3["object"]["key"]
        .as_str()
        .ok_or_else(|| bad(file, format!("a {name} record without an object key")))?;
    let key = crate::inventory::decode_key(raw)
        .ok_or_else(|| bad(file, format!("key `{raw}` is not URL-encoded UTF-8")))?;
    let change = if name.starts_with("ObjectCreated:") {
        Change::Created {
            size: size_of(s3["object"].get("size")),
            etag: etag_of(s3["object"].get("eTag")),
        }
    } else if name.starts_with("ObjectRemoved:") || name.starts_with("LifecycleExpiration:") {
        Change::Removed
    } else {
        Change::Other
    };
    Ok(S3Event {
        bucket: bucket.to_owned(),
        key,
        change,
        sequencer: s3["object"]["sequencer"]
            .as_str()
            .map(str::to_ascii_uppercase),
        time: time(r.get("eventTime")),
    })
}

/// An EventBridge event (`detail-type`, `detail.bucket.name`, `detail.object`).
fn eventbridge(file: &str, v: &Value) -> Result<S3Event> {
    let kind = v["detail-type"].as_str().unwrap_or("");
    let d = &v["detail"];
    let bucket = d["bucket"]["name"].as_str().ok_or_else(|| {
        bad(
            file,
            format!("an EventBridge `{kind}` without a bucket name"),
        )
    })?;
    let key = d["object"]["key"].as_str().ok_or_else(|| {
        bad(
            file,
            format!("an EventBridge `{kind}` without an object key"),
        )
    })?;
    let change = match kind {
        "Object Created" => Change::Created {
            size: size_of(d["object"].get("size")),
            etag: etag_of(d["object"].get("etag")),
        },
        "Object Deleted" => Change::Removed,
        _ => Change::Other,
    };
    Ok(S3Event {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        change,
        sequencer: d["object"]["sequencer"]
            .as_str()
            .map(str::to_ascii_uppercase),
        time: time(v.get("time")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn sequencers_compare_right_padded() {
        assert_eq!(
            sequencer_cmp("0055AED6DCD90281E5", "0055AED6DCD90281E6"),
            Ordering::Less
        );
        // Different lengths: the shorter is padded with zeros on the right.
        assert_eq!(
            sequencer_cmp("0055AED6DCD9028", "0055AED6DCD90281E5"),
            Ordering::Less
        );
        assert_eq!(
            sequencer_cmp("0055AED6DCD90290", "0055AED6DCD90281E5"),
            Ordering::Greater
        );
        assert_eq!(sequencer_cmp("00A", "00a000"), Ordering::Equal);
    }
}
