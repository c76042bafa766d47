//! S3's errors mapped to larder's [`ErrorKind`]s, with the endpoint and the cause named.

use super::*;

pub(super) fn kind_of_code(code: &str, status: u16) -> ErrorKind {
    match code {
        "NoSuchKey" | "NoSuchBucket" | "NoSuchUpload" | "NotFound" => ErrorKind::NotFound,
        "AccessDenied"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "InvalidToken"
        | "Forbidden" => ErrorKind::PermissionDenied,
        "BadDigest" | "InvalidDigest" | "XAmzContentChecksumMismatch" | "InvalidChecksum" => {
            ErrorKind::Integrity
        }
        "InvalidRange" => ErrorKind::InvalidRange,
        "NotImplemented" => ErrorKind::Unsupported,
        "PreconditionFailed" => ErrorKind::Conflict,
        "SlowDown"
        | "InternalError"
        | "ServiceUnavailable"
        | "RequestTimeout"
        | "RequestTimeTooSkewed" => ErrorKind::Transient,
        _ => match status {
            404 => ErrorKind::NotFound,
            401 | 403 => ErrorKind::PermissionDenied,
            304 => ErrorKind::NotModified,
            412 => ErrorKind::Conflict,
            416 => ErrorKind::InvalidRange,
            501 => ErrorKind::Unsupported,
            408 | 429 | 500..=599 => ErrorKind::Transient,
            _ => ErrorKind::Other,
        },
    }
}

/// The innermost message of an error chain: the actual cause (`Connection refused`).
pub(super) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Maps an SDK error to a store error at the trait boundary.
pub(super) fn map_sdk_error<E>(
    endpoint: &str,
    err: SdkError<E, aws_smithy_runtime_api::http::Response>,
    op: Op,
    location: String,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, detail) = match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or("");
            let mut kind = kind_of_code(code, status);
            let msg = ctx.err().message().unwrap_or("");
            let not_s3 = code.is_empty() && (status < 300 || status == 404 || status >= 500);
            if not_s3 {
                // A proxy's error page may pass; a wrong endpoint stops the run at its start.
                kind = ErrorKind::Transient;
            }
            let detail = match (code.is_empty(), msg.is_empty()) {
                // No S3 error code: the body was not S3's XML (a web server, a proxy's error
                // page, garbage), whatever the status says.
                (true, _) if not_s3 => format!(
                    "{endpoint} answered with something that is not S3 (HTTP {status}, a body \
                     that is not an S3 response: {})",
                    root_cause(&err).replace(" This is likely a bug in the SDK.", "")
                ),
                (true, _) => format!("HTTP {status} ({kind}) from {endpoint}"),
                (false, true) => format!("{code} (HTTP {status})"),
                (false, false) => format!("{code}: {msg}"),
            };
            (kind, detail)
        }
        SdkError::TimeoutError(_) => (
            ErrorKind::Transient,
            format!("{endpoint} did not answer in time (timed out)"),
        ),
        SdkError::DispatchFailure(d) => {
            let cause = root_cause(&err);
            if d.is_user() || cause.contains("credentials") {
                (
                    ErrorKind::PermissionDenied,
                    format!("no usable credentials: {cause}"),
                )
            } else if d.is_timeout() {
                (
                    ErrorKind::Transient,
                    format!("could not connect to {endpoint} (timed out): {cause}"),
                )
            } else if ["unexpected message", "invalid HTTP", "parse", "malformed"]
                .iter()
                .any(|w| cause.contains(w))
            {
                (
                    ErrorKind::Transient,
                    format!("{endpoint} answered with something that is not HTTP/S3: {cause}"),
                )
            } else if d.is_io() || d.is_other() {
                (
                    ErrorKind::Transient,
                    format!("could not reach {endpoint}: {cause}"),
                )
            } else {
                (
                    ErrorKind::Transient,
                    format!("{endpoint} answered with something that is not HTTP/S3: {cause}"),
                )
            }
        }
        SdkError::ResponseError(_) => {
            let cause = root_cause(&err);
            let what = if cause.contains("timed out") || cause.contains("timeout") {
                "stopped answering (timed out)"
            } else {
                "answered with something that is not S3"
            };
            (ErrorKind::Transient, format!("{endpoint} {what}: {cause}"))
        }
        _ => (ErrorKind::Other, root_cause(&err)),
    };
    // The detail already says what the SDK error says; its own chain ("service error:
    // unhandled error: …") would only repeat it, so it goes to the debug log instead.
    tracing::debug!(error = %aws_sdk_s3::error::DisplayErrorContext(&err), "S3 request failed");
    Error::new(kind, op, location).with_detail(detail)
}
