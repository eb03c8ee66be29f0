//! Stage 5, after a deploy: the frontends' `public_url` (plus `[smoke] path`) must
//! answer. GET it until it answers 2xx or 3xx (redirects are not followed: a
//! redirect is an answer) or `[smoke] timeout` passes; every attempt is bounded on
//! its own, so one hung request cannot outlive the deadline.

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use crate::error::Error;
use crate::events::{Stage, Status};
use crate::stages::contract::{StageContext, StageDone};

/// The longest one attempt (connect, TLS, the answer's head) may take.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The pauses between attempts: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Less time than this left: no new attempt.
const LAST_ATTEMPT_MIN: Duration = Duration::from_millis(100);

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::enum_variant_names, reason = "NoAnswer: no HTTP answer at all, told apart from an Http status and a timeout")]
pub(crate) enum Answer {
    Http(u16),
    /// No answer within the attempt's timeout.
    TimedOut(Duration),
    /// No HTTP answer: refused, unresolved, TLS...
    NoAnswer(String),
}

impl Answer {
    /// 2xx or 3xx: the service answers.
    pub(crate) fn answering(&self) -> bool {
        matches!(self, Answer::Http(code) if (200..400).contains(code))
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Http(code) => write!(f, "HTTP {code}"),
            Answer::TimedOut(d) => write!(f, "no answer within {}", humantime::format_duration(*d)),
            Answer::NoAnswer(why) => f.write_str(why),
        }
    }
}

/// The URL to check: `public_url` and `path` with one `/` between them. Only
/// http:// and https:// URLs with a host, and no query or fragment to append to.
pub(crate) fn target_url(public_url: &str, path: &str) -> Result<String, String> {
    let rest = public_url
        .strip_prefix("http://")
        .or_else(|| public_url.strip_prefix("https://"))
        .ok_or_else(|| format!("the frontends output `public_url` = `{public_url}` is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || public_url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the frontends output `public_url` = `{public_url}` has no host, or holds a space"));
    }
    if public_url.contains(['?', '#']) {
        return Err(format!(
            "the frontends output `public_url` = `{public_url}` has a query or fragment: `[smoke] path` cannot be appended"
        ));
    }
    if !path.starts_with('/') {
        return Err(format!("[smoke] path `{path}` must start with `/`"));
    }
    Ok(format!("{}{path}", public_url.trim_end_matches('/')))
}

/// The pause after attempt `n` (1-based).
pub(crate) fn backoff(n: u32) -> Duration {
    BACKOFF_FIRST.saturating_mul(1u32 << n.saturating_sub(1).min(8)).min(BACKOFF_MAX)
}

/// The text of the progress line while waiting.
pub(crate) fn waiting_line(attempt: u32, last: &Answer, left: Duration) -> String {
    format!("attempt {attempt}: {last}; {} left", whole_seconds(left))
}

fn whole_seconds(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs_f64().ceil() as u64)).to_string()
}

/// GETs `public_url` + `[smoke] path` until it answers or the customer's
/// `[smoke] timeout` passes.
pub(crate) async fn run(p: &mut StageContext, public_url: &str) -> Result<StageDone<()>, Error> {
    let settings = p.plan.customer.smoke.clone();
    let url = target_url(public_url, &settings.path)
        .map_err(|m| Error::stage_hint(m, "the frontends stack's `public_url` output must be the service's http:// or https:// address"))?;
    let mut log = p.log(Stage::Smoke)?;
    let timeout = whole_seconds(settings.timeout);
    log.note(&format!("[{}] GET {url} until it answers 2xx or 3xx, for at most {timeout}", now()));
    let ui = p.ui.clone();
    let agent = agent();
    let deadline = Instant::now() + settings.timeout;
    let mut interrupts = crate::signals::subscribe();
    let mut attempt = 0u32;
    // The last answer, and the one before it.
    let (mut last, mut before): (Option<Answer>, Option<Answer>) = (None, None);
    loop {
        if crate::signals::interrupted() {
            return Err(Error::Interrupted(Some(Stage::Smoke.to_string())));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(answer) = &last
            && left < LAST_ATTEMPT_MIN
        {
            // An attempt the deadline cut short says less than the one before it.
            let telling = match (answer, &before) {
                (Answer::TimedOut(d), Some(b)) if *d < ATTEMPT_TIMEOUT => b,
                _ => answer,
            };
            log.note(&format!("[{}] no 2xx or 3xx answer within {timeout}", now()));
            return Err(Error::stage_hint(
                format!(
                    "smoke test: {url} did not answer 2xx or 3xx within {timeout} ({attempt} attempt{}); last answer: {telling}",
                    if attempt == 1 { "" } else { "s" }
                ),
                format!(
                    "every attempt is in {}; give the service longer with `[smoke] timeout` (stamp.toml or {}), \
                     or deploy without the check with `--no-smoke`",
                    log.path.display(),
                    p.plan.customer.file.display()
                ),
            ));
        }
        attempt += 1;
        ui.step(Stage::Smoke, &format!("attempt {attempt}: GET {url}"));
        let started = Instant::now();
        let answer = tokio::select! {
            a = probe(&agent, &url, ATTEMPT_TIMEOUT.min(left)) => a,
            _ = crate::signals::next(&mut interrupts) => return Err(Error::Interrupted(Some(Stage::Smoke.to_string()))),
        };
        log.note(&format!("[{}] attempt {attempt}: GET {url} -> {answer} ({:.2}s)", now(), started.elapsed().as_secs_f64()));
        if answer.answering() {
            let tries = if attempt == 1 { "1 attempt".to_owned() } else { format!("{attempt} attempts") };
            return Ok(StageDone::new((), Status::Ok, format!("{answer} from {url} after {tries}")));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        ui.step(Stage::Smoke, &waiting_line(attempt, &answer, left));
        before = last.replace(answer);
        tokio::select! {
            _ = tokio::time::sleep(backoff(attempt).min(left)) => {}
            _ = crate::signals::next(&mut interrupts) => return Err(Error::Interrupted(Some(Stage::Smoke.to_string()))),
        }
    }
}

/// One HTTP client for a customer's attempts: no redirects followed (a 3xx is an
/// answer), statuses as values, proxies from the environment (HTTPS_PROXY, NO_PROXY).
pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("stamp/", env!("CARGO_PKG_VERSION"), " (smoke test)"))
        .build()
        .into()
}

/// One GET, on a thread of its own (ureq blocks; the pipelines share one thread),
/// bounded by `timeout` from start to the answer's head.
async fn probe(agent: &ureq::Agent, url: &str, timeout: Duration) -> Answer {
    start_probe(agent, url, timeout).await
}

/// `probe`, started now: the request runs while the caller does other work (a
/// soak starts every customer's GET, then reads the alarms); the future gives the
/// answer.
pub(crate) fn start_probe(agent: &ureq::Agent, url: &str, timeout: Duration) -> impl Future<Output = Answer> + use<> {
    let (tx, rx) = oneshot::channel();
    let (agent, url_owned) = (agent.clone(), url.to_owned());
    // A plain thread, not spawn_blocking: an attempt abandoned on Ctrl-C must not keep
    // the runtime from shutting down; it ends at its own timeout anyway.
    let spawned = std::thread::Builder::new().name("stamp-smoke".into()).spawn(move || {
        let result = agent.get(&url_owned).config().timeout_global(Some(timeout)).build().call();
        let answer = match result {
            Ok(response) => Answer::Http(response.status().as_u16()),
            Err(ureq::Error::StatusCode(code)) => Answer::Http(code),
            Err(ureq::Error::Timeout(_)) => Answer::TimedOut(timeout),
            Err(ureq::Error::Io(e)) => Answer::NoAnswer(e.to_string()),
            Err(e) => Answer::NoAnswer(e.to_string()),
        };
        let _ = tx.send(answer);
    });
    async move {
        if let Err(e) = spawned {
            return Answer::NoAnswer(format!("cannot start a thread for the request: {e}"));
        }
        rx.await.unwrap_or_else(|_| Answer::NoAnswer("the request thread ended without an answer".into()))
    }
}

fn now() -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_appended_with_one_slash() {
        assert_eq!(target_url("http://lb.example.com", "/").unwrap(), "http://lb.example.com/");
        assert_eq!(target_url("http://lb.example.com/", "/").unwrap(), "http://lb.example.com/");
        assert_eq!(target_url("https://lb.example.com", "/health").unwrap(), "https://lb.example.com/health");
        assert_eq!(target_url("https://lb.example.com/app/", "/health?deep=1").unwrap(), "https://lb.example.com/app/health?deep=1");
        assert_eq!(target_url("http://127.0.0.1:8080", "/up").unwrap(), "http://127.0.0.1:8080/up");
    }

    #[test]
    fn only_http_and_https_urls_with_a_host() {
        for bad in ["ftp://lb.example.com", "lb.example.com", "http://", "http:///x", "http://a b", "http://lb/?x=1", "http://lb/#top"] {
            let err = target_url(bad, "/").unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
        assert!(target_url("http://lb", "health").unwrap_err().contains("start with `/`"));
    }

    #[test]
    fn answers_and_backoff() {
        assert!(Answer::Http(200).answering() && Answer::Http(204).answering() && Answer::Http(301).answering());
        assert!(!Answer::Http(199).answering() && !Answer::Http(404).answering() && !Answer::Http(500).answering());
        assert!(!Answer::NoAnswer("connection refused".into()).answering());
        assert_eq!(Answer::Http(503).to_string(), "HTTP 503");
        let pauses: Vec<u64> = (1..=6).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(pauses, [500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(backoff(1000), BACKOFF_MAX);
        assert_eq!(waiting_line(3, &Answer::Http(500), Duration::from_millis(170_200)), "attempt 3: HTTP 500; 2m 51s left");
    }

    /// A real server on loopback: the statuses as they come, a refused port as no answer.
    #[tokio::test]
    async fn probe_reads_the_status_without_following_redirects() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (stream, status) in listener.incoming().zip(["500 Internal Server Error", "302 Found"]) {
                let mut s = stream.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let extra = if status.starts_with("302") { "Location: http://127.0.0.1:1/\r\n" } else { "" };
                let _ = write!(s, "HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        let agent = agent();
        let url = format!("http://127.0.0.1:{port}/");
        assert_eq!(probe(&agent, &url, Duration::from_secs(5)).await, Answer::Http(500));
        assert_eq!(probe(&agent, &url, Duration::from_secs(5)).await, Answer::Http(302));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let a = probe(&agent, &format!("http://127.0.0.1:{closed}/"), Duration::from_secs(5)).await;
        assert!(matches!(&a, Answer::NoAnswer(m) if m.to_lowercase().contains("refused")), "{a:?}");
    }

    /// A server that accepts and never answers: the attempt ends at its own timeout.
    #[tokio::test]
    async fn a_hung_attempt_ends_at_its_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let held: Vec<_> = listener.incoming().take(1).collect();
            std::thread::sleep(Duration::from_secs(10));
            drop(held);
        });
        let started = Instant::now();
        let a = probe(&agent(), &format!("http://127.0.0.1:{port}/"), Duration::from_secs(1)).await;
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert_eq!(a, Answer::TimedOut(Duration::from_secs(1)));
        assert_eq!(a.to_string(), "no answer within 1s");
    }
}
