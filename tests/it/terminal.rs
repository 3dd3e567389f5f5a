//! Text from outside reaches the terminal escaped: a registry's error text with ESC, BEL, CR, C1
//! and bidi overrides cannot clear the screen, ring, overwrite the line or print a fake verdict.

use std::io::{Read, Write};

use crate::run_env;

/// A "registry" on 127.0.0.1 that answers every request with status 400 and `body`.
fn hostile_registry(body: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

const UNSAFE: [char; 6] = ['\u{1b}', '\u{7}', '\r', '\u{9b}', '\u{202e}', '\u{2066}'];

#[test]
fn a_registry_error_text_with_esc_bel_cr_and_bidi_overrides_reaches_the_terminal_escaped() {
    let json = hostile_registry(
        r#"{"errors":[{"code":"DENIED\u001b[2J","message":"\u001b[32mimage verified OK\u0007\r\u009b1A\u202e\u2066\nsigned by trusted key"}]}"#,
    );
    let plain = hostile_registry("\u{1b}]0;owned\u{7}\r\u{1b}[1Aimage verified OK\n\u{202e}");
    for port in [json, plain] {
        let dir = tempfile::tempdir().unwrap();
        let host = format!("127.0.0.1:{port}");
        let out = dir.path().join("out").display().to_string();
        let r = run_env(
            dir.path(),
            &[
                "--out",
                &out,
                "pull",
                &format!("{host}/kubenet:worker1"),
                "--insecure-registry",
                &host,
                "--retries",
                "0",
            ],
            &[("HOME", &out), ("XDG_RUNTIME_DIR", &out)],
            None,
        )
        .fails();
        assert!(
            !r.stderr.contains(UNSAFE) && !r.stdout.contains(UNSAFE),
            "raw control characters reached the terminal: {:?}",
            r.stderr
        );
        assert!(r.stderr.contains("image verified OK"), "{}", r.stderr);
        assert!(r.stderr.contains("\\u{1b}"), "{}", r.stderr);
        // The registry's newline does not start a line of its own.
        assert!(
            !r.stderr
                .lines()
                .any(|l| l.starts_with("signed by") || l.starts_with("image verified")),
            "{}",
            r.stderr
        );
    }
}
