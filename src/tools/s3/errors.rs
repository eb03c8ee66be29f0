//! What an AWS API call answered, classified by code, status and connection error
//! kind (never by wording): what is missing, what is transient, what to tell the operator.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// What an AWS call answered, told apart by AWS's error code, HTTP status and the
/// kind of connection error, never by the wording of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 404, `NoSuchBucket`, `NoSuchKey`, ...: an answer.
    NotFound { code: String },
    /// 403 on a bucket: it exists and belongs to another account (or this one may not read it).
    Forbidden { code: String },
    /// `AccessDenied` and the like on an operation: the credentials lack a permission.
    AccessDenied { code: String, message: String },
    /// `Throttling`, `SlowDown`, `RequestLimitExceeded`, ...: retried.
    Throttled { code: String, status: Option<u16> },
    /// A server-side failure (500, 502, 503, 504, `InternalError`), a connection
    /// dropped or reset mid-request, an attempt that timed out: retried.
    Transient { what: String },
    /// No connection at all (refused, no such host, connect timeout): reported, not retried.
    Unreachable { detail: String },
    /// Credentials could not be found or loaded.
    NoCredentials { detail: String },
    /// A conditional write lost: `PreconditionFailed` (412, the object changed or
    /// exists) or `ConditionalRequestConflict` (409, another write to it in flight).
    /// An answer: the caller reads the object again and decides.
    Precondition { code: String },
    /// Anything else, with what AWS said.
    Other { code: String, status: Option<u16>, message: String },
    /// A transient failure that lasted through every attempt (`retry`).
    GaveUp { attempts: u32, last: Box<ApiError> },
    /// The run was interrupted while waiting to retry.
    Interrupted,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::NotFound { code } => write!(f, "not found ({code})"),
            ApiError::Forbidden { code } => write!(f, "forbidden ({code})"),
            ApiError::AccessDenied { code, message } => write!(f, "access denied ({code}): {message}"),
            ApiError::Throttled { code, status } => {
                write!(f, "throttled ({code}")?;
                if let Some(s) = status {
                    write!(f, ", HTTP {s}")?;
                }
                write!(f, ")")
            }
            ApiError::Transient { what } => write!(f, "{what}"),
            ApiError::Precondition { code } => write!(f, "the object changed meanwhile ({code})"),
            ApiError::Unreachable { detail } => write!(f, "AWS did not answer: {detail}"),
            ApiError::NoCredentials { detail } => write!(f, "no AWS credentials: {detail}"),
            ApiError::Other { code, status, message } => {
                write!(f, "{code}")?;
                if let Some(s) = status {
                    write!(f, " (HTTP {s})")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            ApiError::GaveUp { attempts, last } => write!(f, "{last}, still after {attempts} attempts"),
            ApiError::Interrupted => write!(f, "interrupted"),
        }
    }
}

impl crate::retry::Retryable for ApiError {
    fn exhausted(self, attempts: u32) -> Self {
        ApiError::GaveUp { attempts, last: Box::new(self) }
    }

    fn interrupted(self) -> Self {
        ApiError::Interrupted
    }
}

impl ApiError {
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, ApiError::NotFound { .. })
    }

    /// The failure behind a `GaveUp`, or this one.
    pub(crate) fn last(&self) -> &ApiError {
        match self {
            ApiError::GaveUp { last, .. } => last,
            e => e,
        }
    }

    /// Why another attempt may succeed, for the retry line ("SlowDown (503) from
    /// S3"); `None` when it is an answer or would fail the same way again.
    pub(crate) fn transient_reason(&self, service: &str) -> Option<String> {
        match self {
            ApiError::Throttled { code, status: Some(s) } => Some(format!("{code} ({s}) from {service}")),
            ApiError::Throttled { code, status: None } => Some(format!("{code} from {service}")),
            ApiError::Transient { what } => Some(format!("{what} from {service}")),
            _ => None,
        }
    }

    /// Classifies an SDK error by its error code, HTTP status and kind.
    pub(crate) fn from_sdk<E: ProvideErrorMetadata + std::error::Error + 'static>(e: SdkError<E, HttpResponse>) -> Self {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().map(String::from);
        let message = e.message().unwrap_or_default().to_owned();
        match &e {
            SdkError::DispatchFailure(d) => {
                let detail = source_chain(&e);
                // The SDK's own wording for a credentials provider that found nothing:
                // not an AWS answer, and not retried.
                if d.is_user() || detail.contains("credentials") {
                    return ApiError::NoCredentials { detail };
                }
                return connection_error(&e, d.is_timeout(), d.as_other(), detail);
            }
            // An answer that could not be read (cut short, garbled).
            SdkError::ResponseError(_) => {
                return ApiError::Transient { what: format!("an answer that could not be read ({})", source_chain(&e)) };
            }
            // The attempt timed out (`operation_attempt_timeout`): connected, no answer in time.
            SdkError::TimeoutError(_) => return ApiError::Transient { what: format!("no answer in time ({})", source_chain(&e)) },
            SdkError::ConstructionFailure(_) => {
                let detail = source_chain(&e);
                if detail.contains("credentials") || detail.contains("Credentials") {
                    return ApiError::NoCredentials { detail };
                }
                return ApiError::Other { code: "ConstructionFailure".into(), status: None, message: detail };
            }
            _ => {}
        }
        classify_answer(code.as_deref(), status, message)
    }
}

/// An AWS error answer, by its code and HTTP status.
pub(crate) fn classify_answer(code: Option<&str>, status: Option<u16>, message: String) -> ApiError {
    let code_s = code.map(String::from).unwrap_or_else(|| status.map(|s| format!("HTTP {s}")).unwrap_or_else(|| "error".into()));
    match (code, status) {
        (Some("NoSuchBucket" | "NoSuchKey" | "NotFound" | "NoSuchBucketPolicy" | "NoSuchPublicAccessBlockConfiguration"), _)
        | (Some("ServerSideEncryptionConfigurationNotFoundError"), _)
        | (None, Some(404)) => ApiError::NotFound { code: code_s },
        (Some("PreconditionFailed" | "ConditionalRequestConflict"), _) | (None, Some(412)) => ApiError::Precondition { code: code_s },
        (Some(c), _) if crate::retry::is_throttling(c) => ApiError::Throttled { code: code_s, status },
        (None, Some(429)) => ApiError::Throttled { code: code_s, status },
        (Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" | "AllAccessDisabled"), _) => {
            ApiError::AccessDenied { code: code_s, message }
        }
        (Some("Forbidden"), _) | (None, Some(403)) => ApiError::Forbidden { code: code_s },
        (Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidClientTokenId"), _) => {
            ApiError::NoCredentials { detail: format!("{code_s}: {message}") }
        }
        (c, s) if crate::retry::is_transient(c, s) => ApiError::Transient {
            what: match s {
                Some(s) if code.is_some() => format!("{code_s} ({s})"),
                _ => code_s,
            },
        },
        _ => ApiError::Other { code: code_s, status, message },
    }
}

/// A request that got no answer: an endpoint that refuses or cannot be found is
/// unreachable (reported at once); a connection that was dropped or reset after it
/// was made is transient. Told apart by the I/O error kinds in the chain.
pub(super) fn connection_error(
    e: &(dyn std::error::Error + 'static),
    timeout: bool,
    other: Option<aws_config::retry::ErrorKind>,
    detail: String,
) -> ApiError {
    use std::io::ErrorKind as K;
    if timeout {
        return ApiError::Unreachable { detail: format!("connect timeout: {detail}") };
    }
    let mut kinds = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            kinds.push(io.kind());
        }
        cur = err.source();
    }
    let refused = [K::ConnectionRefused, K::HostUnreachable, K::NetworkUnreachable, K::AddrNotAvailable, K::NotFound];
    if kinds.iter().any(|k| refused.contains(k)) {
        return ApiError::Unreachable { detail };
    }
    let dropped = [K::ConnectionReset, K::ConnectionAborted, K::BrokenPipe, K::UnexpectedEof, K::TimedOut, K::Interrupted];
    if kinds.iter().any(|k| dropped.contains(k)) {
        return ApiError::Transient { what: format!("connection reset or dropped ({})", innermost(&detail)) };
    }
    // hyper's "connection closed before message completed": the SDK marks it transient.
    if other == Some(aws_config::retry::ErrorKind::TransientError) {
        return ApiError::Transient { what: format!("connection closed before an answer ({})", innermost(&detail)) };
    }
    ApiError::Unreachable { detail }
}

/// The innermost cause of a `source_chain` text.
pub(super) fn innermost(detail: &str) -> &str {
    detail.rsplit(": ").next().unwrap_or(detail)
}

pub(super) fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.contains(&t) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}
