//! A loopback HTTP/1.1 server for the tests: serves a directory in mirror layout (`/<host>/<path>`),
//! with per-path faults (status codes, redirects, truncated or replaced bodies), honours
//! `Range`/`If-Range`, and logs every request so tests can assert what was (not) asked.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    Redirect(String),
    /// Declare the full length but send only this many bytes, then close.
    Truncate(usize),
    /// Truncate the first request only; later ones are served normally (with Range support).
    TruncateOnce(usize),
    /// Serve these bytes instead of the file.
    Body(Vec<u8>),
    /// Send the headers and half the body, then stall for this many milliseconds.
    Stall(u64),
    /// Send the headers, then one byte of the body every this many milliseconds.
    Drip(u64),
    /// Close the connection without answering.
    Reset,
    /// Declare this Content-Length whatever the body is, and send the whole body.
    Length(usize),
    /// Send the headers (with the file's ETag) and this many bytes of the body, then hang
    /// (until the client goes away, or for a minute).
    Hang(usize),
}

#[derive(Default)]
struct State {
    faults: HashMap<String, Fault>,
    log: Vec<Request>,
    truncated_once: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
}

pub struct Server {
    pub port: u16,
    root: PathBuf,
    state: Arc<Mutex<State>>,
}

impl Server {
    pub fn start(root: PathBuf) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let (st, rt) = (state.clone(), root.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (st, rt) = (st.clone(), rt.clone());
                thread::spawn(move || {
                    let _ = handle(conn, &rt, &st);
                });
            }
        });
        Server { port, root, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn root(&self) -> &PathBuf {
        &self.root
    }

    /// Set a fault for a request path such as `/dl.k8s.io/release/...`.
    pub fn fault(&self, path: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .insert(path.to_string(), fault);
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

pub fn etag_of(body: &[u8]) -> String {
    format!(
        "\"{}-{}\"",
        body.len(),
        body.iter()
            .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(*b)))
    )
}

fn handle(
    conn: TcpStream,
    root: &std::path::Path,
    state: &Arc<Mutex<State>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let mut range = None;
    let mut if_range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(v.trim().to_string()),
                "if-range" => if_range = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let fault = {
        let mut st = state.lock().unwrap();
        st.log.push(Request {
            method: method.clone(),
            path: path.clone(),
            range: range.clone(),
            if_range: if_range.clone(),
        });
        let f = st.faults.get(&path).cloned();
        match f {
            Some(Fault::TruncateOnce(n)) if !st.truncated_once.contains(&path) => {
                st.truncated_once.push(path.clone());
                Some(Fault::Truncate(n))
            }
            Some(Fault::TruncateOnce(_)) => None,
            other => other,
        }
    };
    let mut out = conn;
    let head = method == "HEAD";
    let send = |out: &mut TcpStream,
                status: &str,
                headers: &[(&str, String)],
                body: &[u8]|
     -> std::io::Result<()> {
        let mut resp = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for (k, v) in headers {
            resp.push_str(&format!("{k}: {v}\r\n"));
        }
        resp.push_str("\r\n");
        out.write_all(resp.as_bytes())?;
        if !head {
            out.write_all(body)?;
        }
        out.flush()
    };
    let file = root.join(path.trim_start_matches('/'));
    let read = || std::fs::read(&file).ok().filter(|_| file.is_file());
    match fault {
        Some(Fault::Status(s)) => {
            let body = format!("<html><body>error {s}</body></html>");
            send(
                &mut out,
                &format!("{s} Fault"),
                &[("Content-Length", body.len().to_string())],
                body.as_bytes(),
            )
        }
        Some(Fault::Stall(ms)) => {
            let body = read().unwrap_or_default();
            ok_headers(&mut out, body.len())?;
            out.write_all(&body[..body.len() / 2])?;
            out.flush()?;
            thread::sleep(std::time::Duration::from_millis(ms));
            Ok(())
        }
        Some(Fault::Drip(ms)) => {
            let body = read().unwrap_or_default();
            ok_headers(&mut out, body.len())?;
            out.flush()?;
            for b in &body {
                // Ends when the client gives up and closes the connection.
                out.write_all(std::slice::from_ref(b))?;
                out.flush()?;
                thread::sleep(std::time::Duration::from_millis(ms));
            }
            Ok(())
        }
        Some(Fault::Hang(n)) => {
            let body = read().unwrap_or_default();
            out.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\nETag: {}\r\n\r\n",
                    body.len(),
                    etag_of(&body)
                )
                .as_bytes(),
            )?;
            out.write_all(&body[..n.min(body.len())])?;
            out.flush()?;
            thread::sleep(std::time::Duration::from_secs(60));
            Ok(())
        }
        Some(Fault::Reset) => {
            let _ = out.shutdown(std::net::Shutdown::Both);
            Ok(())
        }
        Some(Fault::Length(n)) => {
            let body = read().unwrap_or_default();
            send(
                &mut out,
                "200 OK",
                &[("Content-Length", n.to_string())],
                &body,
            )
        }
        Some(Fault::Redirect(to)) => send(
            &mut out,
            "302 Found",
            &[("Location", to), ("Content-Length", "0".into())],
            b"",
        ),
        Some(Fault::Body(b)) => send(
            &mut out,
            "200 OK",
            &[("Content-Length", b.len().to_string())],
            &b,
        ),
        Some(Fault::Truncate(n)) => {
            let body = read().unwrap_or_default();
            let n = n.min(body.len());
            send(
                &mut out,
                "200 OK",
                &[
                    ("Content-Length", body.len().to_string()),
                    ("ETag", etag_of(&body)),
                ],
                &body[..n],
            )
        }
        _ => match read() {
            None => send(
                &mut out,
                "404 Not Found",
                &[("Content-Length", "9".into())],
                b"not found",
            ),
            Some(body) => {
                let etag = etag_of(&body);
                let start = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|r| r.parse::<usize>().ok())
                    .filter(|s| *s < body.len() && if_range.as_deref().is_none_or(|v| v == etag));
                match start {
                    Some(s) => send(
                        &mut out,
                        "206 Partial Content",
                        &[
                            ("Content-Length", (body.len() - s).to_string()),
                            (
                                "Content-Range",
                                format!("bytes {s}-{}/{}", body.len() - 1, body.len()),
                            ),
                            ("ETag", etag),
                        ],
                        &body[s..],
                    ),
                    None => send(
                        &mut out,
                        "200 OK",
                        &[("Content-Length", body.len().to_string()), ("ETag", etag)],
                        &body,
                    ),
                }
            }
        },
    }
}

/// The status line and headers of a 200 response whose body is `len` bytes (sent by the caller).
fn ok_headers(out: &mut impl Write, len: usize) -> std::io::Result<()> {
    out.write_all(
        format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
    )
}
