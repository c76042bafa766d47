//! `larder sync`'s options for what a write carries besides the bytes, under s3sync's and
//! aws-cli's names: metadata overrides, tags, storage class, ACL, encryption, preconditions.

use std::collections::BTreeMap;

use clap::Args as ClapArgs;
use larder_store::s3::settings::{expires_header, parse_tagging};
use larder_store::{Headers, S3Options, Sse, SseCustomerKey};
use larder_sync::{Conditional, WriteOptions};

use crate::commands::UsageError;

/// What every object written carries (overriding the source's), and the precondition of
/// every write.
#[derive(Debug, Clone, Default, ClapArgs)]
#[command(next_help_heading = "Metadata, tags and encryption of what is written")]
pub struct WriteArgs {
    /// Content-Type of every object written (else the source's, else guessed from the key).
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// Cache-Control of every object written.
    #[arg(long, value_name = "VALUE")]
    pub cache_control: Option<String>,
    /// Content-Encoding of every object written.
    #[arg(long, value_name = "VALUE")]
    pub content_encoding: Option<String>,
    /// Content-Disposition of every object written.
    #[arg(long, value_name = "VALUE")]
    pub content_disposition: Option<String>,
    /// Content-Language of every object written.
    #[arg(long, value_name = "VALUE")]
    pub content_language: Option<String>,
    /// Expires of every object written: RFC 3339 (2030-01-01T00:00:00Z) or an HTTP date.
    #[arg(long, value_name = "TIME", value_parser = expires_header)]
    pub expires: Option<String>,
    /// Website redirect location of every object written.
    #[arg(long, visible_alias = "website-redirect-location", value_name = "URL")]
    pub website_redirect: Option<String>,
    /// User metadata of every object written, instead of the source's: `k=v,k2=v2`.
    #[arg(long, value_name = "K=V,…", value_parser = parse_metadata)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Tags of every object written, instead of the source's: `k=v&k2=v2` (URL-encoded, as
    /// S3's x-amz-tagging).
    #[arg(long, value_name = "K=V&…", value_parser = parse_tagging)]
    pub tagging: Option<larder_store::Tags>,
    /// Do not copy tags from an S3 source (by default they are, where both sides keep tags).
    #[arg(long)]
    pub disable_tagging: bool,
    /// Do not carry the source's Content-Type, Cache-Control, Content-Encoding/-Disposition/
    /// -Language, Expires and website redirect.
    #[arg(long)]
    pub no_sync_system_metadata: bool,
    /// Do not carry the source's user metadata (x-amz-meta-*).
    #[arg(long)]
    pub no_sync_user_defined_metadata: bool,
    /// Storage class of every object written (STANDARD, STANDARD_IA, GLACIER_IR, …).
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Canned ACL of every object written (private, public-read, bucket-owner-full-control, …).
    #[arg(long, value_name = "ACL")]
    pub acl: Option<String>,
    /// Server-side encryption of what is written: AES256 or aws:kms.
    #[arg(long, value_name = "ALGO")]
    pub sse: Option<String>,
    /// The KMS key of --sse aws:kms (else the bucket's default key).
    #[arg(long, value_name = "KEY_ID", requires = "sse")]
    pub sse_kms_key_id: Option<String>,
    /// SSE-C key of the source (32 bytes: raw, 64 hex digits, or `base64:…`); read from the
    /// environment rather than typed on a command line.
    #[arg(long, env = "LARDER_SOURCE_SSE_C_KEY", value_name = "KEY", value_parser = SseCustomerKey::parse, hide_env_values = true)]
    pub source_sse_c_key: Option<SseCustomerKey>,
    /// SSE-C key of the target, as --source-sse-c-key.
    #[arg(long, visible_alias = "sse-c-key", env = "LARDER_TARGET_SSE_C_KEY", value_name = "KEY", value_parser = SseCustomerKey::parse, hide_env_values = true)]
    pub target_sse_c_key: Option<SseCustomerKey>,
    /// Never overwrite: keys the target has are left alone (skipped with a warning, exit 3),
    /// and every write is sent with If-None-Match: * for keys that appear meanwhile.
    #[arg(long, visible_alias = "no-overwrite", conflicts_with = "if_match")]
    pub if_none_match: bool,
    /// Overwrite only the version that was compared (If-Match with the ETag the listing
    /// showed); a key changed meanwhile is left alone with a warning (exit 3).
    #[arg(long)]
    pub if_match: bool,
}

impl WriteArgs {
    /// The engine's write options.
    pub fn write_options(&self) -> WriteOptions {
        WriteOptions::default()
            .with_no_system_metadata(self.no_sync_system_metadata)
            .with_no_user_metadata(self.no_sync_user_defined_metadata)
            .with_no_tags(self.disable_tagging)
            .with_content_type(self.content_type.clone())
            .with_cache_control(self.cache_control.clone())
            .with_headers(Headers {
                content_encoding: self.content_encoding.clone(),
                content_disposition: self.content_disposition.clone(),
                content_language: self.content_language.clone(),
                expires: self.expires.clone(),
                website_redirect: self.website_redirect.clone(),
            })
            .with_metadata(self.metadata.clone())
            .with_tags(self.tagging.clone())
            .with_storage_class(self.storage_class.clone())
            .with_condition(if self.if_none_match {
                Some(Conditional::IfNoneMatch)
            } else if self.if_match {
                Some(Conditional::IfMatch)
            } else {
                None
            })
    }

    /// Whether the run needs to know what the S3 servers implement (one request each):
    /// tags or a precondition asked for.
    pub fn needs_features(&self) -> bool {
        self.tagging.is_some() || self.if_none_match || self.if_match
    }

    /// Sets the per-store settings on one side's S3 options: encryption and ACL on the
    /// target, the SSE-C key of each side.
    pub fn apply(&self, o: &mut S3Options, source: bool) -> anyhow::Result<()> {
        if source {
            o.sse_c = self.source_sse_c_key.clone();
            return Ok(());
        }
        o.sse_c = self.target_sse_c_key.clone();
        o.acl = self.acl.clone();
        if let Some(s) = &self.sse {
            anyhow::ensure!(
                self.target_sse_c_key.is_none(),
                UsageError("--sse and --target-sse-c-key are two encryptions: pick one".into())
            );
            o.sse = Some(
                Sse::parse(s, self.sse_kms_key_id.as_deref())
                    .map_err(|e| UsageError(format!("--sse: {e}")))?,
            );
        }
        Ok(())
    }
}

/// `k=v,k2=v2` → user metadata (keys lowercased, as S3 keeps them).
fn parse_metadata(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not key=value"))?;
        let k = k.trim().to_ascii_lowercase();
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "`{k}` is not a metadata key (visible ASCII, no spaces)"
            ));
        }
        m.insert(k, v.to_owned());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_parse_and_bad_ones_are_named() {
        let m = parse_metadata("Owner=team a,tier=hot").unwrap();
        assert_eq!(m.get("owner").map(String::as_str), Some("team a"));
        assert_eq!(m.get("tier").map(String::as_str), Some("hot"));
        let e = parse_metadata("owner").unwrap_err();
        assert!(e.contains("owner"), "{e}");
    }
}
