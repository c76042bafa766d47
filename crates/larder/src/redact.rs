//! Keeps credentials out of everything larder prints: log lines (the SDK's debug output
//! shows identities and signed requests), errors and JSON events. Known secrets (the
//! `AWS_*` credential variables) are replaced wherever they appear, and so are the shapes
//! credentials take in requests and debug dumps: `access_key_id: "…"`, `session_token`,
//! `Authorization`, `X-Amz-Signature=`, `X-Amz-Credential=`, `X-Amz-Security-Token`.

use std::borrow::Cow;
use std::io::Write;
use std::sync::OnceLock;

const MASK: &str = "** redacted **";

struct Redactor {
    secrets: Vec<String>,
    shapes: regex::Regex,
}

fn redactor() -> &'static Redactor {
    static R: OnceLock<Redactor> = OnceLock::new();
    R.get_or_init(|| {
        let secrets = [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
        ]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .filter(|s| s.len() >= 4)
        .collect();
        let shapes = regex::Regex::new(
            r#"(?i)((?:access_key_id|secret_access_key|session_token|security_token)\s*[:=]\s*(?:Some\()?"?)[^",})\s]+|((?:x-amz-signature|x-amz-credential|x-amz-security-token|signature)=)[^&\s",]+|((?:authorization|x-amz-security-token)"?\s*[:=]\s*"?)[^"\n]+"#,
        )
        .expect("the redaction pattern");
        Redactor { secrets, shapes }
    })
}

/// `text` with credentials masked.
pub fn redact(text: &str) -> Cow<'_, str> {
    let r = redactor();
    let mut out: Cow<'_, str> = r.shapes.replace_all(text, |c: &regex::Captures<'_>| {
        let keep = c
            .get(1)
            .or(c.get(2))
            .or(c.get(3))
            .map_or("", |m| m.as_str());
        format!("{keep}{MASK}")
    });
    for s in &r.secrets {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), MASK));
        }
    }
    out
}

/// Standard error, redacted line by line (a log event is written at once).
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_shapes_are_masked() {
        for (input, secret) in [
            (r#"Credentials { access_key_id: "AKIAEXAMPLE1", secret_access_key: "** redacted **" }"#, "AKIAEXAMPLE1"),
            ("authorization: AWS4-HMAC-SHA256 Credential=AKIAX/2024/us/s3/aws4_request, Signature=abcdef", "abcdef"),
            ("GET /b/k?X-Amz-Credential=AKIAX%2F2024&X-Amz-Signature=0123abcd&x=1", "0123abcd"),
            ("x-amz-security-token: FQoGZXIvYXdzEJr", "FQoGZXIvYXdzEJr"),
            (r#"session_token: Some("IQoJb3JpZ2luX2VjE")"#, "IQoJb3JpZ2luX2VjE"),
        ] {
            let out = redact(input);
            assert!(!out.contains(secret), "{input} -> {out}");
            assert!(out.contains(MASK), "{out}");
        }
        assert_eq!(
            redact("nothing to see: s3://bucket/key"),
            "nothing to see: s3://bucket/key"
        );
    }
}
