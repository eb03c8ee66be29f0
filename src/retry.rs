//! The one retry policy for what AWS (or a tool talking to AWS) answers with a
//! transient failure: throttling, a 5xx, a connection dropped or reset mid-request,
//! a request that timed out, a bucket not visible yet right after stamp created it.
//!
//! Bounded (`ATTEMPTS` attempts in all), exponential backoff with full jitter
//! (a uniformly random wait in `[0, min(cap, base * 2^(n-1))]`, base 0.5 s, cap 8 s;
//! `STAMP_RETRY_BASE_MS` sets the base, for tests), and every retry is written to
//! the stage log and shown as the stage's step with its reason, e.g.
//! "retrying HeadBucket in 1.2s (2/5): SlowDown (503) from S3". An interrupt stops
//! the waiting at once.
//!
//! What is transient is decided by the caller's classifier: for AWS answers by
//! error code, HTTP status and connection error kind (`tools::s3::ApiError`,
//! `tools::aws::cli_failure`), for terraform and packer by the cause their output
//! shows (`transient_tool_cause`). The error codes and statuses are the SDK's own
//! (`aws_runtime`'s and `aws_smithy_runtime`'s classifiers), so stamp retries what
//! AWS's SDKs retry; only the loop (bounded, logged, stopped by an interrupt) is stamp's. Never retried: an answer (not found), a missing
//! permission, a validation error, lock contention, a stale saved plan, an endpoint
//! that refuses connections.

use std::time::Duration;

/// Attempts in all, the first one included.
pub(crate) const ATTEMPTS: u32 = 5;

/// The backoff: `base * 2^(n-1)`, capped, with full jitter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Policy {
    /// 5 attempts, base 0.5 s (`STAMP_RETRY_BASE_MS`, checked in `env_vars`, overrides it), cap 8 s.
    pub(crate) fn standard() -> Self {
        Self { attempts: ATTEMPTS, base: crate::env_vars::settings().retry_base, cap: Duration::from_secs(8) }
    }

    /// The longest wait before retry number `retry` (1: after the first failure).
    pub(crate) fn ceiling(&self, retry: u32) -> Duration {
        self.base.saturating_mul(1u32 << retry.saturating_sub(1).min(16)).min(self.cap)
    }

    /// The wait before retry number `retry`: uniformly random up to `ceiling`.
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        self.ceiling(retry).mul_f64(fastrand::f64())
    }
}

/// A failure that can say it was retried in vain, or that the run was interrupted
/// while it waited to be retried.
pub(crate) trait Retryable: Sized {
    fn exhausted(self, attempts: u32) -> Self;
    fn interrupted(self) -> Self;
}

impl Retryable for crate::error::Error {
    fn exhausted(self, attempts: u32) -> Self {
        use crate::error::Error;
        let note = format!("still failing after {attempts} attempts (stamp retried it with backoff)");
        match self {
            Error::Tool(mut f) => {
                f.status = format!("{}; {note}", f.status);
                Error::Tool(f)
            }
            Error::Stage { message, hint } => Error::Stage { message: format!("{message} ({note})"), hint },
            other => other,
        }
    }

    fn interrupted(self) -> Self {
        crate::error::Error::Interrupted(None)
    }
}

/// Runs `attempt` until it succeeds, fails for good (`transient` says `None`), or
/// `Policy::standard().attempts` attempts were made. `note` writes a line where the
/// operator sees it (`StageLog::progress`); `cx` is what both need (the stage log).
pub(crate) async fn run<C: ?Sized, T, E: Retryable>(
    cx: &mut C,
    what: &str,
    note: impl Fn(&mut C, &str),
    attempt: impl AsyncFnMut(&mut C, u32) -> Result<T, E>,
    transient: impl Fn(&E) -> Option<String>,
) -> Result<T, E> {
    run_with(Policy::standard(), cx, what, note, attempt, transient).await
}

/// `run` with a given policy.
pub(crate) async fn run_with<C: ?Sized, T, E: Retryable>(
    policy: Policy,
    cx: &mut C,
    what: &str,
    note: impl Fn(&mut C, &str),
    mut attempt: impl AsyncFnMut(&mut C, u32) -> Result<T, E>,
    transient: impl Fn(&E) -> Option<String>,
) -> Result<T, E> {
    let mut n = 1;
    loop {
        let e = match attempt(cx, n).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(reason) = transient(&e) else { return Err(e) };
        if n >= policy.attempts {
            note(cx, &format!("giving up on {what} after {n} attempts: {reason}"));
            return Err(e.exhausted(n));
        }
        if crate::signals::interrupted() {
            note(cx, &format!("not retrying {what}: interrupted ({reason})"));
            return Err(e.interrupted());
        }
        let wait = policy.delay(n);
        note(cx, &format!("retrying {what} in {:.1}s ({}/{}): {reason}", wait.as_secs_f64(), n + 1, policy.attempts));
        if !sleep_unless_interrupted(wait).await {
            note(cx, &format!("not retrying {what}: interrupted"));
            return Err(e.interrupted());
        }
        n += 1;
    }
}

/// Sleeps, unless an interrupt arrives first (then `false`).
async fn sleep_unless_interrupted(d: Duration) -> bool {
    let Some(mut rx) = crate::signals::subscribe() else {
        tokio::time::sleep(d).await;
        return true;
    };
    if rx.borrow().received > 0 {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = rx.changed() => false,
    }
}

/// The AWS error codes that mean "slow down", retried: the SDK's own list (the one
/// `aws_runtime`'s `AwsErrorCodeClassifier` retries on), so stamp retries what AWS's
/// SDKs retry (`LimitExceededException`, `PriorRequestNotComplete`, ...).
pub(crate) const THROTTLING_CODES: &[&str] = aws_runtime::retries::classifiers::THROTTLING_ERRORS;

/// The AWS error codes of a transient failure, retried: the SDK's own list
/// (`RequestTimeout`, `RequestTimeoutException`).
pub(crate) const TRANSIENT_CODES: &[&str] = aws_runtime::retries::classifiers::TRANSIENT_ERRORS;

/// stamp's addition: the codes of a server-side failure. AWS sends them with a 5xx
/// status, which is what the SDK retries on (`transient_status`); named here for a
/// tool's output, which may show the code without the status.
pub(crate) const SERVER_ERROR_CODES: [&str; 5] =
    ["InternalError", "InternalFailure", "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException"];

/// Whether an AWS error code means throttling.
pub(crate) fn is_throttling(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// Whether an HTTP status is one the SDK retries (`aws_smithy_runtime`'s
/// `HttpStatusCodeClassifier`, asked about a response with that status).
pub(crate) fn transient_status(status: u16) -> bool {
    use aws_smithy_runtime::client::retries::classifiers::HttpStatusCodeClassifier;
    use aws_smithy_runtime_api::client::interceptors::context::{Input, InterceptorContext};
    use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    let Ok(status) = StatusCode::try_from(status) else { return false };
    let mut cx = InterceptorContext::new(Input::doesnt_matter());
    cx.set_response(Response::new(status, aws_smithy_types::body::SdkBody::empty()));
    HttpStatusCodeClassifier::default().classify_retry(&cx) != RetryAction::NoActionIndicated
}

/// Whether an AWS error code or HTTP status is a transient failure (not throttling).
pub(crate) fn is_transient(code: Option<&str>, status: Option<u16>) -> bool {
    code.is_some_and(|c| TRANSIENT_CODES.contains(&c) || SERVER_ERROR_CODES.contains(&c)) || status.is_some_and(transient_status)
}

/// What in a failed terraform or packer run's output shows that it never reached a
/// verdict: it is safe to run the step again. `None` when the output shows a
/// failure that would happen again (lock contention, a missing permission, a
/// validation or configuration error, a stale saved plan), or no transient cause.
pub(crate) fn transient_tool_cause(output: &str) -> Option<String> {
    // Checked first: any of these makes the failure permanent, whatever else it says.
    const NEVER: [&str; 14] = [
        "Error acquiring the state lock",
        "Saved plan is stale",
        "AccessDenied",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
        "AuthFailure",
        "InvalidClientTokenId",
        "ExpiredToken",
        "SignatureDoesNotMatch",
        "Error: Invalid",
        "ValidationError",
        "InvalidParameter",
        "Unsupported argument",
        "Reference to undeclared",
    ];
    if NEVER.iter().any(|n| output.contains(n)) {
        return None;
    }
    // An AWS error code as the tools print it: "api error Throttling:",
    // "RequestLimitExceeded: Request limit exceeded", "(SlowDown)", "StatusCode: 503".
    for code in THROTTLING_CODES.iter().chain(TRANSIENT_CODES).chain(SERVER_ERROR_CODES.iter()) {
        if contains_code(output, code) {
            return Some(format!("{code} in the output"));
        }
    }
    const CAUSES: [&str; 14] = [
        "connection reset by peer",
        "i/o timeout",
        "TLS handshake timeout",
        "503 Service Unavailable",
        "502 Bad Gateway",
        "504 Gateway Timeout",
        "StatusCode: 500",
        "StatusCode: 502",
        "StatusCode: 503",
        "StatusCode: 504",
        "RequestError: send request failed",
        "http: server closed idle connection",
        "unexpected EOF",
        "net/http: request canceled",
    ];
    if let Some(c) = CAUSES.iter().find(|c| output.contains(*c)) {
        return Some(format!("\"{c}\" in the output"));
    }
    // Go's net/http on a connection closed without an answer: `Get "https://...": EOF`.
    if output.lines().any(|l| l.trim_end().ends_with("\": EOF") || l.contains("\": EOF,")) {
        return Some("a connection closed without an answer (EOF) in the output".into());
    }
    None
}

/// `code` as a whole word (so `Throttling` does not match `ThrottlingConfig`).
fn contains_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + code.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        !word(before) && !word(after)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_the_cap_and_the_jitter_stays_under_it() {
        let p = Policy { attempts: 5, base: Duration::from_millis(500), cap: Duration::from_secs(8) };
        assert_eq!(p.ceiling(1), Duration::from_millis(500));
        assert_eq!(p.ceiling(2), Duration::from_secs(1));
        assert_eq!(p.ceiling(4), Duration::from_secs(4));
        assert_eq!(p.ceiling(6), Duration::from_secs(8));
        assert_eq!(p.ceiling(40), Duration::from_secs(8));
        for n in 1..8 {
            for _ in 0..50 {
                assert!(p.delay(n) <= p.ceiling(n));
            }
        }
    }

    #[derive(Debug, PartialEq)]
    enum E {
        Slow,
        Denied,
        GaveUp(u32),
    }

    impl Retryable for E {
        fn exhausted(self, attempts: u32) -> Self {
            E::GaveUp(attempts)
        }
        fn interrupted(self) -> Self {
            self
        }
    }

    const FAST: Policy = Policy { attempts: ATTEMPTS, base: Duration::from_millis(1), cap: Duration::from_millis(8) };

    fn classify(e: &E) -> Option<String> {
        (*e == E::Slow).then(|| "SlowDown (503) from S3".to_owned())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn transient_failures_are_retried_a_bounded_number_of_times_each_with_a_note() {
        let mut notes: Vec<String> = Vec::new();
        let mut calls = 0;
        let r: Result<(), E> = run_with(
            FAST,
            &mut notes,
            "HeadBucket",
            |n: &mut Vec<String>, m: &str| n.push(m.to_owned()),
            async |_: &mut Vec<String>, _| {
                calls += 1;
                Err(E::Slow)
            },
            classify,
        )
        .await;
        assert_eq!(r, Err(E::GaveUp(ATTEMPTS)));
        assert_eq!(calls, ATTEMPTS);
        assert_eq!(notes.len(), ATTEMPTS as usize);
        assert!(notes[0].starts_with("retrying HeadBucket in ") && notes[0].ends_with("(2/5): SlowDown (503) from S3"), "{notes:?}");
        assert!(notes[4].starts_with("giving up on HeadBucket after 5 attempts"), "{notes:?}");

        // Succeeds on the third attempt.
        let mut notes: Vec<String> = Vec::new();
        let r: Result<u32, E> = run_with(
            FAST,
            &mut notes,
            "GetObject",
            |n: &mut Vec<String>, m: &str| n.push(m.to_owned()),
            async |_: &mut Vec<String>, n| if n < 3 { Err(E::Slow) } else { Ok(n) },
            classify,
        )
        .await;
        assert_eq!(r, Ok(3));
        assert_eq!(notes.len(), 2);

        // A permanent failure: once, no note.
        let mut notes: Vec<String> = Vec::new();
        let mut calls = 0;
        let r: Result<(), E> = run_with(
            FAST,
            &mut notes,
            "GetObject",
            |n: &mut Vec<String>, m: &str| n.push(m.to_owned()),
            async |_: &mut Vec<String>, _| {
                calls += 1;
                Err(E::Denied)
            },
            classify,
        )
        .await;
        assert_eq!(r, Err(E::Denied));
        assert_eq!((calls, notes.len()), (1, 0));
    }

    #[test]
    fn the_transient_codes_and_statuses_are_the_sdks() {
        // Codes AWS's SDKs retry that stamp's hand-written list missed.
        for code in ["LimitExceededException", "PriorRequestNotComplete", "SlowDown", "Throttling", "EC2ThrottledException"] {
            assert!(is_throttling(code), "{code}");
        }
        for code in ["RequestTimeoutException", "RequestTimeout", "InternalError", "ServiceUnavailable"] {
            assert!(is_transient(Some(code), None), "{code}");
        }
        for status in [500, 502, 503, 504] {
            assert!(transient_status(status) && is_transient(None, Some(status)), "{status}");
        }
        for status in [200, 400, 403, 404, 409, 501] {
            assert!(!transient_status(status), "{status}");
        }
        for code in ["AccessDenied", "NoSuchBucket", "ValidationError", "ThrottlingConfig"] {
            assert!(!is_throttling(code) && !is_transient(Some(code), Some(400)), "{code}");
        }
        assert_eq!(transient_tool_cause("api error PriorRequestNotComplete: wait"), Some("PriorRequestNotComplete in the output".into()));
        assert_eq!(
            transient_tool_cause("RequestTimeoutException: the request timed out"),
            Some("RequestTimeoutException in the output".into())
        );
    }

    /// Output captured from the real tools (tests/fixtures/transient/): the
    /// transient causes are found, the permanent ones win over them.
    #[test]
    fn tool_failures_are_classified_by_the_cause_their_output_shows() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transient");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let verdict = transient_tool_cause(&text);
            if name.starts_with("retry-") {
                assert!(verdict.is_some(), "{name} should be retried");
            } else if name.starts_with("never-") {
                assert!(verdict.is_none(), "{name} must not be retried: {verdict:?}");
            } else {
                panic!("{name}: fixtures are named retry-* or never-*");
            }
            seen += 1;
        }
        assert!(seen >= 6, "only {seen} fixtures in {}", dir.display());
        assert_eq!(transient_tool_cause("Error: ThrottlingConfig is not supported"), None);
        assert!(transient_tool_cause("operation error S3: GetObject, https response error StatusCode: 503, api error SlowDown").is_some());
    }
}
