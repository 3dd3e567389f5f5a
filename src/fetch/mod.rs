//! Downloads: HTTP(S) and `file://`, through mirrors, with bounded retries and backoff, resume
//! with `Range`/`If-Range`, timeouts, redirects, and the bytes streamed to a sink while they are
//! hashed. Nothing here knows about lockfiles or the store: callers say what to expect. An OCI
//! mirror's blobs are read with the registry's authentication (`oci::client`: the credentials
//! and challenge flow `push` and `pull` use), then downloaded here like any other source.

mod mirror;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::progress::Progress;
use reqwest::header;

pub use mirror::{mirror_path, sources, Mirror, RegistryBlob, Source};

use crate::hash::{Blake3, DualHasher, Sha256};

/// How to reach upstream.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    pub mirrors: Vec<Mirror>,
    /// Never use the network: only `file://` mirrors and URLs.
    pub offline: bool,
    /// Only the mirrors, never the upstream URLs themselves.
    pub mirrors_only: bool,
    pub connect_timeout: Duration,
    /// The longest wait for the next bytes of a response.
    pub read_timeout: Duration,
    /// Retries per source after the first try, on transient errors.
    pub retries: u32,
    /// Pin lockfile entries from a mirror's copy of a checksum file (`--trust-mirror-checksums`);
    /// otherwise `lock` and the lock completion of `fetch`/`build` read upstream's own.
    pub trust_mirror_checksums: bool,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            mirrors: Vec::new(),
            offline: false,
            mirrors_only: false,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            retries: crate::http::DEFAULT_RETRIES,
            trust_mirror_checksums: false,
        }
    }
}

/// Why one source did not give the file.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("not found (HTTP {0})")]
    NotFound(u16),
    #[error("no such file")]
    NoFile,
    #[error("HTTP status {0}")]
    Status(u16),
    /// The HTTP client could not be set up (TLS roots, for instance).
    #[error(transparent)]
    Client(ClientError),
    /// The request failed before a status (connect, TLS, redirects, timeout).
    #[error("{}", crate::http::describe(.0))]
    Request(#[source] reqwest::Error),
    /// Reading the response body failed.
    #[error("reading the body: {0}")]
    Body(#[source] std::io::Error),
    /// Reading a `file://` source failed.
    #[error("{0}")]
    File(#[source] std::io::Error),
    /// The transfer went wrong without an underlying error (stalled, resumed at the wrong
    /// offset, timed out).
    #[error("{0}")]
    Transport(String),
    #[error("the body ended after {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    #[error("sha256 mismatch: expected {expected}, got {actual} ({size} bytes)")]
    Mismatch {
        expected: Sha256,
        actual: Sha256,
        size: u64,
    },
    #[error("size mismatch: expected {expected} bytes, the source sent {got}")]
    SizeMismatch { expected: u64, got: u64 },
    #[error("size mismatch: expected {expected} bytes, the server announces {declared}")]
    Announced { expected: u64, declared: u64 },
    #[error("the response is larger than the {limit} bytes allowed")]
    TooLarge { limit: u64 },
    #[error("cannot write the download: {0}")]
    Local(#[source] std::io::Error),
    /// An OCI mirror's registry refused the artifact, lacks it, or could not be asked.
    #[error("{0}")]
    Registry(Arc<crate::oci::client::RegistryError>),
}

impl AttemptError {
    /// The host could not be reached at all: a DNS failure or a refused or timed-out connection.
    pub fn is_unreachable(&self) -> bool {
        match self {
            AttemptError::Request(e) => e.is_connect(),
            AttemptError::Registry(r) => matches!(
                r.as_ref(),
                crate::oci::client::RegistryError::Connect { source, .. } if source.is_connect()
            ),
            _ => false,
        }
    }

    /// An OCI mirror's registry refused access (a login, or an account without access).
    pub fn is_denied(&self) -> bool {
        matches!(self, AttemptError::Registry(r)
            if matches!(r.as_ref(), crate::oci::client::RegistryError::Unauthorized { .. }
                | crate::oci::client::RegistryError::Credentials(_)))
    }

    /// The registry's error, for an OCI mirror's attempt.
    pub fn registry_error(&self) -> Option<&crate::oci::client::RegistryError> {
        match self {
            AttemptError::Registry(r) => Some(r),
            _ => None,
        }
    }

    /// The source sent other bytes than expected (hash or size).
    pub fn is_mismatch(&self) -> bool {
        matches!(
            self,
            AttemptError::Mismatch { .. }
                | AttemptError::SizeMismatch { .. }
                | AttemptError::Announced { .. }
        )
    }

    /// Worth trying the same source again after a pause.
    fn is_transient(&self) -> bool {
        match self {
            // A name that does not resolve or a refused connection stays so: said once.
            AttemptError::Request(e) => !crate::http::is_host_unreachable(e),
            AttemptError::Body(_)
            | AttemptError::File(_)
            | AttemptError::Transport(_)
            | AttemptError::Truncated { .. } => true,
            AttemptError::Status(s) => *s >= 500 || *s == 429 || *s == 408,
            AttemptError::Registry(r) => r.is_transient(),
            _ => false,
        }
    }
}

/// Every source of a URL failed.
#[derive(Debug, thiserror::Error)]
pub struct FetchError {
    pub url: String,
    pub offline: bool,
    /// What each source said, in the order they were tried.
    pub attempts: Vec<(Source, AttemptError)>,
    /// Bytes an earlier run had downloaded, resumed by the first source (0: none).
    pub resumed: u64,
}

impl FetchError {
    /// Whether every source answered "not there" (as opposed to a broken download).
    pub fn is_not_found(&self) -> bool {
        !self.attempts.is_empty()
            && self.attempts.iter().all(|(_, e)| {
                matches!(e, AttemptError::NotFound(_) | AttemptError::NoFile)
                    || matches!(
                        e.registry_error(),
                        Some(crate::oci::client::RegistryError::BlobUnknown { .. })
                    )
            })
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.attempts.as_slice() {
            [] if self.offline => write!(
                f,
                "not in the store, and offline nothing can provide {} (pass --mirror file://DIR holding it)",
                self.url
            ),
            [] => write!(f, "{}: no source to read it from", self.url),
            [(s, e)] => {
                write!(f, "{s}: {e}")?;
                self.resumed_note(f)
            }
            many => {
                write!(f, "{}: every source failed: ", self.url)?;
                for (i, (s, e)) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{s}: {e}")?;
                }
                if self.offline {
                    f.write_str(" (offline: network sources were not tried)")?;
                }
                self.resumed_note(f)
            }
        }
    }
}

impl FetchError {
    /// Say that the bytes an earlier run left were resumed, and are discarded, when the result
    /// was other bytes than expected: perhaps they were the wrong ones.
    fn resumed_note(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.resumed > 0 && self.attempts.iter().any(|(_, e)| e.is_mismatch()) {
            write!(
                f,
                " (the download resumed {} bytes left by an earlier run; they are discarded, the next run starts from byte 0)",
                self.resumed
            )?;
        }
        Ok(())
    }
}

/// What a completed download was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub sha256: Sha256,
    pub blake3: Blake3,
    pub size: u64,
    pub source: Source,
    /// Sources tried before `source` that sent other bytes than expected (a mirror serving a
    /// different file): worth a warning even though the download succeeded.
    pub mismatches: Vec<Mismatched>,
    /// OCI mirrors tried before `source` that refused the artifact or lacked it (no login, a
    /// wrong repository, a mirror not filled): the fleet's copy was bypassed, worth a warning.
    pub registry_misses: Vec<Mismatched>,
    /// Bytes an earlier run had downloaded that this one continued from (0: none).
    pub resumed_from: u64,
}

/// A source that sent other bytes than expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatched {
    pub source: Source,
    /// The mirror the source belongs to, when it is one.
    pub mirror: Option<Mirror>,
    /// What was wrong (hashes or sizes).
    pub what: String,
}

/// What the caller expects of a download.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub sha256: Option<Sha256>,
    pub size: Option<u64>,
    /// Refuse responses larger than this.
    pub limit: u64,
}

/// Where downloaded bytes go.
trait Sink {
    fn write(&mut self, data: &[u8]) -> Result<(), AttemptError>;
    /// Forget everything written (the source restarted from byte 0).
    fn restart(&mut self) -> Result<(), AttemptError>;
    fn len(&self) -> u64;
    /// The validator (ETag or Last-Modified) of the bytes already held, when an earlier run
    /// recorded one.
    fn validator(&self) -> Option<String> {
        None
    }
    /// The server's validator for the bytes being written (None: it gave none).
    fn record_validator(&mut self, _v: Option<&str>) {}
}

struct FileSink<'a> {
    file: &'a mut File,
    hasher: DualHasher,
    progress: &'a Progress,
    /// Where the validator is kept for a later run, when the file outlives this one.
    validator_file: Option<&'a Path>,
}

impl Sink for FileSink<'_> {
    fn write(&mut self, data: &[u8]) -> Result<(), AttemptError> {
        self.file.write_all(data).map_err(AttemptError::Local)?;
        self.hasher.update(data);
        self.progress.inc(data.len() as u64);
        Ok(())
    }
    fn restart(&mut self) -> Result<(), AttemptError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(|_| ()))
            .map_err(AttemptError::Local)?;
        self.hasher = DualHasher::new();
        self.progress.set_position(0);
        Ok(())
    }
    fn len(&self) -> u64 {
        self.hasher.len()
    }
    fn validator(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.validator_file?).ok()?;
        let v = text.trim();
        (!v.is_empty()).then(|| v.to_string())
    }
    fn record_validator(&mut self, v: Option<&str>) {
        // Only a help for a later resume: without it, that run resumes unvalidated (the
        // lockfile's sha256 still decides).
        if let Some(path) = self.validator_file {
            let _ = match v {
                Some(v) => std::fs::write(path, v),
                None => std::fs::remove_file(path),
            };
        }
    }
}

struct MemSink(Vec<u8>);

impl Sink for MemSink {
    fn write(&mut self, data: &[u8]) -> Result<(), AttemptError> {
        self.0.extend_from_slice(data);
        Ok(())
    }
    fn restart(&mut self) -> Result<(), AttemptError> {
        self.0.clear();
        Ok(())
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

/// Downloads files from upstream and mirrors.
pub struct Fetcher {
    cfg: FetchConfig,
    /// Built on the first HTTP request: setting it up loads the system's TLS roots (about 150
    /// files under /etc/ssl/certs, 400 KB read), which a build whose artifacts are all in the
    /// store, or a `file://` mirror, never needs.
    client: std::sync::OnceLock<reqwest::blocking::Client>,
    /// The registries of OCI mirrors, set up (credentials found) on first use.
    registries: Mutex<BTreeMap<String, RegistryState>>,
}

type RegistryState =
    Result<Arc<crate::oci::client::Registry>, Arc<crate::oci::client::RegistryError>>;

/// The client could not be set up (TLS roots, for instance).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0}")]
pub struct ClientError(#[source] reqwest::Error);

impl Fetcher {
    /// A fetcher for `cfg`; its HTTP client is set up on first use ([`AttemptError::Client`]
    /// when that fails).
    pub fn new(cfg: FetchConfig) -> Self {
        Self {
            cfg,
            client: std::sync::OnceLock::new(),
            registries: Mutex::new(BTreeMap::new()),
        }
    }

    /// The HTTP client, set up on the first call (two threads racing build one each; one is
    /// kept).
    fn client(&self) -> Result<&reqwest::blocking::Client, AttemptError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let c = crate::http::client(self.cfg.connect_timeout, self.cfg.read_timeout)
            .map_err(|e| AttemptError::Client(ClientError(e)))?;
        Ok(self.client.get_or_init(|| c))
    }

    pub fn config(&self) -> &FetchConfig {
        &self.cfg
    }

    pub fn sources(&self, url: &str, sha256: Option<&Sha256>) -> Vec<Source> {
        sources(
            url,
            sha256,
            &self.cfg.mirrors,
            self.cfg.offline,
            self.cfg.mirrors_only,
        )
    }

    /// A small file (a checksum file), at most `limit` bytes, from the first source that has it.
    pub fn get_small(&self, url: &str, limit: u64) -> Result<(Vec<u8>, Source), FetchError> {
        let expect = Expect {
            sha256: None,
            size: None,
            limit,
        };
        let mut sink = MemSink(Vec::new());
        let (source, _) = self.fetch_into(url, &mut sink, &expect, |_| Ok(()))?;
        Ok((sink.0, source))
    }

    /// The size of the file at `url`, when a source tells it (HEAD, or the file's metadata).
    pub fn size_of(&self, url: &str) -> Option<u64> {
        for source in self.sources(url, None) {
            match &source {
                Source::File(p) => {
                    if let Ok(m) = std::fs::metadata(p) {
                        if m.is_file() {
                            return Some(m.len());
                        }
                    }
                }
                Source::Registry(_) => {}
                Source::Http(u) => {
                    if let Ok(resp) = self
                        .client()
                        .and_then(|c| c.head(u).send().map_err(AttemptError::Request))
                    {
                        if resp.status().is_success() {
                            if let Some(len) = resp
                                .headers()
                                .get(header::CONTENT_LENGTH)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse().ok())
                            {
                                return Some(len);
                            }
                        }
                    }
                }
            }
        }
        None
    }

    /// Download `url` into `file` (which must be empty), checking it against `expect`.
    pub fn download(
        &self,
        url: &str,
        file: &mut File,
        expect: &Expect,
        progress: &Progress,
    ) -> Result<Downloaded, FetchError> {
        let sink = FileSink {
            file,
            hasher: DualHasher::new(),
            progress,
            validator_file: None,
        };
        self.download_into(url, sink, expect)
    }

    /// Download `url` into `file`, continuing after the bytes it holds (left by an earlier run
    /// that was killed): they are read again to rebuild the hashes, and the first source is asked
    /// for the rest (`Range`, with `If-Range` when `validator_file` holds the validator the
    /// server gave then). A server that sends the whole file instead is fine (the bytes are
    /// replaced); a result that does not match `expect` is an error that says a resume took
    /// place. The server's validator is kept in `validator_file` for the next run.
    pub fn download_resuming(
        &self,
        url: &str,
        file: &mut File,
        validator_file: &Path,
        expect: &Expect,
        progress: &Progress,
    ) -> Result<Downloaded, FetchError> {
        let hasher = rehash(file).unwrap_or_default();
        progress.set_position(hasher.len());
        let sink = FileSink {
            file,
            hasher,
            progress,
            validator_file: Some(validator_file),
        };
        self.download_into(url, sink, expect)
    }

    fn download_into(
        &self,
        url: &str,
        mut sink: FileSink<'_>,
        expect: &Expect,
    ) -> Result<Downloaded, FetchError> {
        let resumed_from = sink.len();
        let mut result = None;
        let (source, failed) =
            self.fetch_into(url, &mut sink, expect, |s: &mut FileSink<'_>| {
                let hasher = std::mem::take(&mut s.hasher);
                let (sha256, blake3, size) = hasher.finish();
                if let Some(want) = expect.size {
                    if want != size {
                        return Err(AttemptError::SizeMismatch {
                            expected: want,
                            got: size,
                        });
                    }
                }
                if let Some(want) = expect.sha256 {
                    if want != sha256 {
                        return Err(AttemptError::Mismatch {
                            expected: want,
                            actual: sha256,
                            size,
                        });
                    }
                }
                s.file.flush().map_err(AttemptError::Local)?;
                result = Some((sha256, blake3, size));
                Ok(())
            })?;
        let (sha256, blake3, size) = result.ok_or_else(|| FetchError {
            url: url.to_string(),
            offline: self.cfg.offline,
            attempts: Vec::new(),
            resumed: 0,
        })?;
        let registry_misses = failed
            .iter()
            .filter(|(_, e)| e.registry_error().is_some())
            .map(|(source, e)| Mismatched {
                mirror: self.mirror_of(source),
                source: source.clone(),
                what: e.to_string(),
            })
            .collect();
        let mismatches = failed
            .into_iter()
            .filter(|(_, e)| e.is_mismatch())
            .map(|(source, e)| Mismatched {
                mirror: self.mirror_of(&source),
                source,
                what: e.to_string(),
            })
            .collect();
        Ok(Downloaded {
            sha256,
            blake3,
            size,
            source,
            mismatches,
            registry_misses,
            resumed_from,
        })
    }

    /// The configured mirror a source is on, if any.
    fn mirror_of(&self, source: &Source) -> Option<Mirror> {
        self.cfg
            .mirrors
            .iter()
            .find(|m| match (m, source) {
                (Mirror::Http(base), Source::Http(u)) => u.starts_with(&format!("{base}/")),
                (Mirror::Dir(dir), Source::File(p)) => p.starts_with(dir),
                (
                    Mirror::Oci {
                        registry,
                        repository,
                        plain_http,
                    },
                    Source::Registry(b),
                ) => {
                    b.registry == *registry
                        && b.repository == *repository
                        && b.plain_http == *plain_http
                }
                _ => false,
            })
            .cloned()
    }

    /// Try every source in order, each with retries; `finish` checks a complete body. On
    /// success, the source that gave it and what the sources tried before it said.
    fn fetch_into<S: Sink>(
        &self,
        url: &str,
        sink: &mut S,
        expect: &Expect,
        mut finish: impl FnMut(&mut S) -> Result<(), AttemptError>,
    ) -> Result<(Source, Vec<(Source, AttemptError)>), FetchError> {
        let mut attempts = Vec::new();
        // Bytes an earlier run left: the first source is asked for the rest.
        let resumed = sink.len();
        for (i, source) in self
            .sources(url, expect.sha256.as_ref())
            .into_iter()
            .enumerate()
        {
            let carried = i == 0 && resumed > 0;
            // A new source starts from byte 0 (a failed check may have left bytes behind).
            if !carried {
                if let Err(e) = sink.restart() {
                    attempts.push((source, e));
                    break;
                }
            }
            let mut validator: Option<String> = if carried { sink.validator() } else { None };
            // Resume the earlier run's bytes even without a validator: the expected sha256
            // decides whether they were the right ones.
            let mut trust = carried;
            let (transferred, _) = crate::http::retry(
                self.cfg.retries,
                url,
                || match &source {
                    Source::Http(u) => {
                        self.http_transfer(u, None, sink, expect, &mut validator, &mut trust)
                    }
                    Source::Registry(b) => {
                        self.registry_transfer(b, sink, expect, &mut validator, &mut trust)
                    }
                    Source::File(p) => file_transfer(p, sink, expect),
                },
                AttemptError::is_transient,
                |_, _, _| {},
            );
            let outcome = transferred.and_then(|()| finish(sink));
            match outcome {
                Ok(()) => return Ok((source, attempts)),
                Err(e) => {
                    let local = matches!(e, AttemptError::Local(_));
                    attempts.push((source, e));
                    if local {
                        break;
                    }
                }
            }
        }
        Err(FetchError {
            url: url.to_string(),
            offline: self.cfg.offline,
            attempts,
            resumed,
        })
    }

    /// The registry of an OCI mirror's blob, set up once per run (its credentials found as
    /// `push` and `pull` find them).
    fn registry(
        &self,
        b: &RegistryBlob,
    ) -> Result<Arc<crate::oci::client::Registry>, AttemptError> {
        use crate::oci::client::{ClientOptions, Registry};
        let mut map = self
            .registries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = map.entry(b.registry.clone()).or_insert_with(|| {
            let opts = ClientOptions {
                insecure: if b.plain_http {
                    vec![b.registry.clone()]
                } else {
                    Vec::new()
                },
                connect_timeout: self.cfg.connect_timeout,
                read_timeout: self.cfg.read_timeout,
                ..ClientOptions::default()
            };
            Registry::new(&b.registry, &opts)
                .map(Arc::new)
                .map_err(Arc::new)
        });
        state.clone().map_err(AttemptError::Registry)
    }

    /// An OCI mirror's blob: the registry is asked (HEAD, answering its challenge with the
    /// credentials found) whether it has the blob and for the authorization to read it; then
    /// the download is an HTTP transfer like any other, resumed the same way.
    fn registry_transfer<S: Sink>(
        &self,
        b: &RegistryBlob,
        sink: &mut S,
        expect: &Expect,
        validator: &mut Option<String>,
        trust: &mut bool,
    ) -> Result<(), AttemptError> {
        let registry = self.registry(b)?;
        let access = registry
            .blob_access(
                &b.repository,
                &b.sha256,
                &format!("reading the mirrored artifact sha256:{}", b.sha256),
            )
            .map_err(|e| AttemptError::Registry(Arc::new(e)))?;
        let r = self.http_transfer(
            access.url.as_str(),
            access.authorization.as_deref(),
            sink,
            expect,
            validator,
            trust,
        );
        if matches!(r, Err(AttemptError::Status(401))) {
            // The token expired between the HEAD and the GET: a new one on the next try.
            registry.forget_authorization(&b.repository);
            return Err(AttemptError::Transport(format!(
                "registry {} refused the authorization it had just given (an expired token?)",
                b.registry
            )));
        }
        r
    }

    /// One HTTP request (with `authorization` as its `Authorization` header, when given),
    /// resuming after the bytes the sink already holds when the server can prove (206 at the
    /// right offset, same validator) that it is the same file.
    fn http_transfer<S: Sink>(
        &self,
        url: &str,
        authorization: Option<&str>,
        sink: &mut S,
        expect: &Expect,
        validator: &mut Option<String>,
        trust: &mut bool,
    ) -> Result<(), AttemptError> {
        let resp = self.send_resuming(url, authorization, sink, validator, trust)?;
        let declared = announced_length(&resp, sink, expect, validator)?;
        self.read_body(resp, sink, expect, declared)
    }

    /// Sends the request, asking for the bytes after those the sink holds when it can resume,
    /// and checks the status: the sink starts again from byte 0 when the server sends the whole
    /// file or cannot resume.
    fn send_resuming<S: Sink>(
        &self,
        url: &str,
        authorization: Option<&str>,
        sink: &mut S,
        validator: &mut Option<String>,
        trust: &mut bool,
    ) -> Result<reqwest::blocking::Response, AttemptError> {
        let offset = sink.len();
        let mut req = self.client()?.get(url);
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resuming = offset > 0 && (validator.is_some() || *trust);
        if resuming {
            req = req.header(header::RANGE, format!("bytes={offset}-"));
            if let Some(v) = validator.as_deref() {
                req = req.header(header::IF_RANGE, v);
            }
        } else if offset > 0 {
            sink.restart()?;
        }
        let resp = req.send().map_err(AttemptError::Request)?;
        *trust = false;
        let status = resp.status().as_u16();
        match status {
            200 => {
                if sink.len() > 0 {
                    sink.restart()?;
                }
            }
            206 if resuming => {
                let starts_at = resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if starts_at != Some(offset) {
                    sink.restart()?;
                    *validator = None;
                    return Err(AttemptError::Transport(
                        "the server resumed at the wrong offset".to_string(),
                    ));
                }
            }
            // Nothing after the bytes held (a complete file kept by a run killed before it was
            // stored, or other bytes): start again from byte 0.
            416 if resuming => {
                sink.restart()?;
                *validator = None;
                return Err(AttemptError::Transport(format!(
                    "the server refused to resume at byte {offset} (HTTP 416)"
                )));
            }
            404 | 410 => return Err(AttemptError::NotFound(status)),
            s => return Err(AttemptError::Status(s)),
        }
        Ok(resp)
    }

    /// Streams the body into the sink, giving up on a transfer that stalls or crawls, and
    /// checks it ends at the announced length.
    fn read_body<S: Sink>(
        &self,
        mut resp: reqwest::blocking::Response,
        sink: &mut S,
        expect: &Expect,
        declared: Option<u64>,
    ) -> Result<(), AttemptError> {
        let mut buf = vec![0u8; 256 * 1024];
        // The read timeout bounds each wait; a server that drips a byte now and then never
        // trips it. So, like curl's --speed-limit, a transfer that averages under 1 KiB/s over
        // a whole read-timeout window is given up too.
        let window = self.cfg.read_timeout;
        let min_bytes = 1024 * window.as_secs().max(1);
        let (mut window_start, mut window_bytes) = (Instant::now(), 0u64);
        loop {
            if window_start.elapsed() >= window {
                if window_bytes < min_bytes {
                    return Err(AttemptError::Transport(format!(
                        "too slow: {window_bytes} bytes in the last {}s (under 1 KiB/s), after {} bytes",
                        window.as_secs(),
                        sink.len()
                    )));
                }
                (window_start, window_bytes) = (Instant::now(), 0);
            }
            let n = match resp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let got = sink.len();
                    let timed_out = e.kind() == std::io::ErrorKind::TimedOut
                        || e.get_ref()
                            .and_then(|i| i.downcast_ref::<reqwest::Error>())
                            .is_some_and(reqwest::Error::is_timeout);
                    return Err(match declared {
                        _ if timed_out => AttemptError::Transport(format!(
                            "timed out: no data for {}s after {got} bytes",
                            self.cfg.read_timeout.as_secs()
                        )),
                        Some(expected) if got < expected => {
                            AttemptError::Truncated { got, expected }
                        }
                        _ => AttemptError::Body(e),
                    });
                }
            };
            window_bytes += n as u64;
            sink.write(&buf[..n])?;
            check_limit(sink.len(), expect)?;
        }
        if let Some(expected) = declared {
            if sink.len() != expected {
                return Err(AttemptError::Truncated {
                    got: sink.len(),
                    expected,
                });
            }
        }
        Ok(())
    }
}

/// Records the response's validator (a strong ETag, or Last-Modified) for a later resume, and
/// returns the total length the response announces (what the sink holds plus its
/// Content-Length), refused at once when over the limit or not the expected size.
fn announced_length<S: Sink>(
    resp: &reqwest::blocking::Response,
    sink: &mut S,
    expect: &Expect,
    validator: &mut Option<String>,
) -> Result<Option<u64>, AttemptError> {
    let headers = resp.headers();
    *validator = headers
        .get(header::ETAG)
        .filter(|v| !v.as_bytes().starts_with(b"W/"))
        .or_else(|| headers.get(header::LAST_MODIFIED))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    sink.record_validator(validator.as_deref());
    let declared = resp.content_length().map(|n| n.saturating_add(sink.len()));
    if let Some(total) = declared {
        match check_limit(total, expect) {
            Err(AttemptError::SizeMismatch { expected, .. }) => {
                return Err(AttemptError::Announced {
                    expected,
                    declared: total,
                })
            }
            other => other?,
        }
    }
    Ok(declared)
}

/// Read a file from its start, hashing it: the state of a download an earlier run left. The
/// file's cursor ends at its end, where the download continues.
fn rehash(file: &mut File) -> std::io::Result<DualHasher> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = DualHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(hasher),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Refuse a body larger than the lock's size or the caller's limit as soon as it shows.
fn check_limit(len: u64, expect: &Expect) -> Result<(), AttemptError> {
    if let Some(size) = expect.size {
        if len > size {
            return Err(AttemptError::SizeMismatch {
                expected: size,
                got: len,
            });
        }
    }
    if len > expect.limit {
        return Err(AttemptError::TooLarge {
            limit: expect.limit,
        });
    }
    Ok(())
}

fn file_transfer<S: Sink>(
    path: &std::path::Path,
    sink: &mut S,
    expect: &Expect,
) -> Result<(), AttemptError> {
    // Opened without blocking, and only a regular file is read: a FIFO (or a device) in a mirror
    // directory would otherwise wait forever for a writer, with no timeout to end it.
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(AttemptError::NoFile),
        Err(e) => return Err(AttemptError::File(e)),
    };
    match f.metadata() {
        Ok(m) if m.is_dir() => return Err(AttemptError::NoFile),
        Ok(m) if !m.is_file() => {
            return Err(AttemptError::File(std::io::Error::other(
                "not a regular file (a FIFO, socket or device): refused",
            )))
        }
        Ok(_) => {}
        Err(e) => return Err(AttemptError::File(e)),
    }
    sink.restart()?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(AttemptError::File)?;
        if n == 0 {
            return Ok(());
        }
        sink.write(&buf[..n])?;
        check_limit(sink.len(), expect)?;
    }
}
