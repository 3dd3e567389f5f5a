//! The one HTTP layer `fetch` and `oci` share: how a client is built, the retry loop with its
//! deterministic backoff, the default number of retries, and reqwest's errors in one line.
//! It knows nothing of artifacts, registries or `out/`.

use std::time::Duration;

/// Retries after the first try, on transient errors, unless the command line says otherwise.
pub const DEFAULT_RETRIES: u32 = 3;

/// A blocking client with nodeforge's user agent: `connect_timeout` bounds a connection,
/// `read_timeout` every single read (not the whole transfer), redirects are followed up to 10.
pub fn client(
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<reqwest::blocking::Client, reqwest::Error> {
    reqwest::blocking::Client::builder()
        .user_agent(concat!("nodeforge/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        // In the blocking client this bounds every single read, not the whole transfer.
        .timeout(read_timeout)
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()
}

/// Run `attempt` until it succeeds, fails for good (`transient` says no), or has been tried
/// again `retries` times. Before each retry it waits [`backoff`] (its jitter seeded by `key`),
/// after telling `before_retry` the error, the wait and the retry's number (1 for the first).
/// Also how many retries were made.
pub fn retry<T, E>(
    retries: u32,
    key: &str,
    mut attempt: impl FnMut() -> Result<T, E>,
    transient: impl Fn(&E) -> bool,
    mut before_retry: impl FnMut(&E, Duration, u32),
) -> (Result<T, E>, u32) {
    let mut tries = 0u32;
    loop {
        match attempt() {
            Err(e) if transient(&e) && tries < retries => {
                let wait = backoff(key, tries);
                tries += 1;
                before_retry(&e, wait, tries);
                std::thread::sleep(wait);
            }
            r => return (r, tries),
        }
    }
}

/// Exponential backoff with a jitter derived from `key` (a URL: no clock, no RNG, so
/// reproducible).
pub fn backoff(key: &str, attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1 << attempt.min(4));
    let jitter = u64::from(blake3::hash(format!("{key}#{attempt}").as_bytes()).as_bytes()[0]);
    Duration::from_millis(base.min(4000) + jitter)
}

/// The host cannot be reached and trying again soon will not change that: its name does not
/// resolve (DNS) or it refused the connection (nothing listens there). Not transient: offline,
/// retrying these only spent seconds in backoff to repeat the same error. A connection that
/// timed out or broke off is still worth another try.
pub fn is_host_unreachable(e: &reqwest::Error) -> bool {
    if !e.is_connect() {
        return false;
    }
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        // hyper-util's connector names a failed name resolution so (its error type is private).
        if s.to_string() == "dns error" {
            return true;
        }
        src = s.source();
    }
    false
}

/// reqwest's error with its causes, in one line.
pub fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_redirect() {
        "too many redirects".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = String::new();
    while let Some(s) = src {
        let t = s.to_string();
        if t != last {
            msg.push_str(": ");
            msg.push_str(&t);
            last = t;
        }
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_deterministic_and_bounded() {
        assert_eq!(backoff("https://x/a", 2), backoff("https://x/a", 2));
        for attempt in 0..10 {
            let ms = backoff("https://x/a", attempt).as_millis();
            assert!((250..=4000 + 255).contains(&ms), "{attempt}: {ms}");
        }
    }

    #[test]
    fn a_refused_connection_is_host_unreachable() {
        // A loopback port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let c = client(Duration::from_secs(5), Duration::from_secs(5)).expect("client");
        let e = c
            .get(format!("http://127.0.0.1:{port}/x"))
            .send()
            .expect_err("nobody listens");
        assert!(is_host_unreachable(&e), "{}", describe(&e));
    }

    #[test]
    fn retry_stops_at_the_limit_and_on_a_lasting_error() {
        let mut calls = 0;
        let mut told = Vec::new();
        let (r, tries) = retry(
            2,
            "k",
            || -> Result<(), u32> {
                calls += 1;
                Err(calls)
            },
            |_| true,
            |e, _, n| told.push((*e, n)),
        );
        assert_eq!((r, tries, calls), (Err(3), 2, 3));
        assert_eq!(told, vec![(1, 1), (2, 2)]);
        let (r, tries) = retry(5, "k", || Err::<(), _>("no"), |_| false, |_, _, _| {});
        assert_eq!((r, tries), (Err("no"), 0));
    }
}
