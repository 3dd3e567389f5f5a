//! A client of the OCI distribution spec on the blocking `reqwest` the rest of nodeforge uses:
//! manifests by tag or digest, blobs checked (HEAD), mounted from another repository, uploaded
//! (POST then PUT, streamed from the file) and downloaded with resume (`Range`) into a file the
//! caller names, every download verified against its digest. Authentication answers the
//! registry's challenge (`auth`) and keeps the answer per scope for the rest of the run.
//!
//! TLS uses the system's roots (reqwest with rustls and the platform verifier); plain HTTP only
//! for registries the caller names as insecure.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};

use super::auth::{self, Challenge, Credentials, CredentialsError};
use super::{MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES};
use crate::hash::Sha256;
use crate::progress::Progress;
use crate::term::escape;

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (`host[:port]`, or a host for all its ports) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    pub connect_timeout: Duration,
    /// The longest wait for the next bytes of a response.
    pub read_timeout: Duration,
    /// Retries of a blob download that broke off (or found the registry unreachable or
    /// answering 5xx) in this run, each resuming from the bytes received, after the backoff
    /// `fetch` uses.
    pub retries: u32,
    /// Told of each retry, in a sentence (the CLI prints it on stderr).
    pub notes: Notes,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            retries: crate::http::DEFAULT_RETRIES,
            notes: Notes::default(),
        }
    }
}

/// Where the client says what it does about a transfer that went wrong (a retry): nowhere by
/// default.
#[derive(Clone, Default)]
pub struct Notes(Option<Arc<NoteFn>>);

type NoteFn = dyn Fn(&str) + Send + Sync;

impl Notes {
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    fn say(&self, message: &str) {
        if let Some(f) = &self.0 {
            f(message);
        }
    }
}

impl std::fmt::Debug for Notes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Notes(..)"
        } else {
            "Notes(none)"
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "cannot reach registry {registry} ({what}): {}",
        crate::http::describe(source)
    )]
    Connect {
        registry: String,
        what: String,
        /// Spoken to over HTTPS (a plain-HTTP registry needs --insecure-registry).
        tls: bool,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry {registry} refused {what}{}: {detail}{}", if repository.is_empty() { String::new() } else { format!(" in repository {repository}") }, with.as_ref().map(|s| format!(" (credentials from {s})")).unwrap_or_else(|| " (no credentials were sent)".to_string()))]
    Unauthorized {
        registry: String,
        repository: String,
        what: String,
        detail: String,
        /// Where the credentials sent came from, if any were.
        with: Option<String>,
        /// Spoken to over HTTPS (else `--insecure-registry` named it).
        tls: bool,
    },
    #[error("registry {registry} has no blob sha256:{digest} in repository {repository}")]
    BlobUnknown {
        registry: String,
        repository: String,
        digest: String,
        /// Spoken to over HTTPS (else a command to fill it needs --insecure-registry).
        tls: bool,
    },
    #[error("registry {registry} has no manifest `{reference}` in repository {repository}")]
    ManifestUnknown {
        registry: String,
        repository: String,
        reference: String,
    },
    #[error("registry {registry} sent blob sha256:{digest} of repository {repository} with other bytes: they hash to sha256:{actual}; the registry's copy is damaged")]
    DigestMismatch {
        registry: String,
        repository: String,
        digest: String,
        actual: String,
    },
    #[error("registry {registry} answered {status} to {what} in repository {repository}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status {
        registry: String,
        repository: String,
        what: String,
        status: u16,
        /// The distribution spec's error code (`MANIFEST_INVALID`, `DENIED` …), if sent.
        code: Option<String>,
        detail: String,
    },
    #[error("registry {registry}: the transfer of blob sha256:{digest} (repository {repository}) broke off after {have} of {size} bytes ({detail}); run the pull again to resume")]
    Interrupted {
        registry: String,
        repository: String,
        digest: String,
        /// Bytes kept in the partial file.
        have: u64,
        size: u64,
        detail: String,
    },
    #[error("registry {registry} answered {what} in repository {repository} with more than {limit} bytes, more than any {kind} nodeforge pushes; check that the reference names a nodeforge image")]
    TooLarge {
        registry: String,
        repository: String,
        what: String,
        /// What was read (`manifest`, `blob`, `token`).
        kind: &'static str,
        limit: u64,
    },
    #[error(
        "registry {registry}: {what} in repository {repository} broke off: {detail}; try again"
    )]
    Body {
        registry: String,
        repository: String,
        what: String,
        detail: String,
    },
    #[error("`{0}` is not a registry address (HOST or HOST:PORT)")]
    BadAddress(String),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Fs(#[from] crate::fsutil::FsError),
}

/// How an error names the upload of a manifest (hints tell it from a blob's).
pub const STORING_MANIFEST: &str = "storing manifest";

/// What to call a transfer in a message, and its repository.
struct Op<'a> {
    repository: &'a str,
    what: String,
    /// The token scopes it needs (`repository:<name>:pull` …).
    scopes: Vec<String>,
}

/// One registry, with what it answered to authentication so far.
pub struct Registry {
    /// `host[:port]`.
    pub host: String,
    base: Url,
    tls: bool,
    http: Client,
    creds: Option<Credentials>,
    read_timeout: Duration,
    retries: u32,
    notes: Notes,
    /// The `Authorization` header per scope set, once obtained.
    auth: Mutex<BTreeMap<String, String>>,
}

/// How a blob got into a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// The registry mounted it from another repository: no bytes sent.
    Mounted,
    /// An upload session to PUT the bytes to.
    Session,
}

/// What a download moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes received now.
    pub received: u64,
    /// Bytes already in the partial file that were kept (a resumed download).
    pub resumed_from: u64,
}

impl Registry {
    /// The registry at `host`, with the credentials found for it (`auth`).
    pub fn new(host: &str, opts: &ClientOptions) -> Result<Self, RegistryError> {
        let creds = auth::credentials_for(host)?;
        Self::with_credentials(host, opts, creds)
    }

    /// The registry at `host`, with the credentials given (none: anonymous).
    pub fn with_credentials(
        host: &str,
        opts: &ClientOptions,
        creds: Option<Credentials>,
    ) -> Result<Self, RegistryError> {
        let bare = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let tls = !opts.insecure.iter().any(|i| i == host || i == bare);
        let scheme = if tls { "https" } else { "http" };
        let base = Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|_| RegistryError::BadAddress(host.to_string()))?;
        let http = crate::http::client(opts.connect_timeout, opts.read_timeout).map_err(|e| {
            RegistryError::Connect {
                registry: host.to_string(),
                what: "starting the HTTP client".into(),
                tls,
                source: e,
            }
        })?;
        Ok(Self {
            host: host.to_string(),
            base,
            tls,
            http,
            creds,
            read_timeout: opts.read_timeout,
            retries: opts.retries,
            notes: opts.notes.clone(),
            auth: Mutex::new(BTreeMap::new()),
        })
    }

    fn url(&self, path: &str) -> Url {
        let mut u = self.base.clone();
        u.set_path(path);
        u
    }

    fn connect_error(&self, what: &str, e: reqwest::Error) -> RegistryError {
        RegistryError::Connect {
            registry: self.host.clone(),
            what: what.to_string(),
            tls: self.tls,
            source: e,
        }
    }

    /// The error for a response body that could not be read whole (`kind` names what it is).
    fn body_error(
        &self,
        op: &Op<'_>,
        e: BodyError,
        kind: &'static str,
        limit: u64,
    ) -> RegistryError {
        match e {
            BodyError::Http(source) => self.connect_error(&op.what, source),
            BodyError::Io(e) => RegistryError::Body {
                registry: self.host.clone(),
                repository: op.repository.to_string(),
                what: op.what.clone(),
                detail: e.to_string(),
            },
            BodyError::TooLarge => RegistryError::TooLarge {
                registry: self.host.clone(),
                repository: op.repository.to_string(),
                what: op.what.clone(),
                kind,
                limit,
            },
        }
    }

    fn unauthorized(&self, op: &Op<'_>, detail: String) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.host.clone(),
            repository: op.repository.to_string(),
            what: op.what.clone(),
            detail,
            with: self.creds.as_ref().map(|c| c.source.clone()),
            tls: self.tls,
        }
    }

    /// Send the request `build` makes, answering one authentication challenge: the header
    /// obtained is kept for the op's scopes and sent with every later request of them.
    fn send(
        &self,
        op: &Op<'_>,
        build: &dyn Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let key = op.scopes.join(" ");
        let known = self.auth.lock().ok().and_then(|m| m.get(&key).cloned());
        let mut req = build();
        if let Some(h) = &known {
            req = req.header(AUTHORIZATION, h);
        }
        let resp = req.send().map_err(|e| self.connect_error(&op.what, e))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::parse_challenge);
        let header = match challenge {
            None => return Err(self.unauthorized(
                op,
                "it asks for authentication nodeforge cannot answer (no Basic or Bearer challenge)"
                    .into(),
            )),
            Some(Challenge::Basic) => match (&self.creds, &known) {
                (Some(c), _) if c.identity_token => {
                    return Err(self.unauthorized(
                        op,
                        "it asks for a user name and password (HTTP basic), and the credentials are an identity token, which only the bearer-token flow takes".into(),
                    ))
                }
                (Some(c), None) => c.basic_header(),
                (Some(_), Some(_)) => {
                    return Err(self.unauthorized(op, "the user name or password is wrong".into()))
                }
                (None, _) => {
                    return Err(self.unauthorized(op, "it requires a login".into()));
                }
            },
            Some(Challenge::Bearer { realm, service }) => {
                format!("Bearer {}", self.token(op, &realm, service.as_deref())?)
            }
        };
        if let Ok(mut m) = self.auth.lock() {
            m.insert(key, header.clone());
        }
        let resp = build()
            .header(AUTHORIZATION, &header)
            .send()
            .map_err(|e| self.connect_error(&op.what, e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            let detail = if self.creds.is_some() {
                "the user name or password is wrong, or has no access"
            } else {
                "it requires a login"
            };
            return Err(self.unauthorized(op, detail.into()));
        }
        Ok(resp)
    }

    /// The bearer-token flow: ask the realm for a token for the op's scopes (with the
    /// credentials, when there are any).
    fn token(
        &self,
        op: &Op<'_>,
        realm: &str,
        service: Option<&str>,
    ) -> Result<String, RegistryError> {
        let mut url = Url::parse(realm).map_err(|e| {
            self.unauthorized(op, format!("its token realm `{realm}` is not a URL: {e}"))
        })?;
        // A registry spoken to over HTTPS does not get the password sent in clear text to a
        // plain-HTTP token service it names.
        if self.tls && self.creds.is_some() && url.scheme() != "https" {
            return Err(self.unauthorized(
                op,
                format!("its token realm `{realm}` is plain HTTP, and nodeforge does not send the credentials unencrypted; the registry's token service must use HTTPS"),
            ));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in &op.scopes {
                q.append_pair("scope", s);
            }
        }
        let req = match &self.creds {
            // An identity token is traded with OAuth2's refresh-token grant (the distribution
            // spec's token authentication, `POST` to the realm).
            Some(c) if c.identity_token => {
                let mut form = url.clone();
                form.set_query(None);
                {
                    let mut q = form.query_pairs_mut();
                    q.append_pair("grant_type", "refresh_token")
                        .append_pair("refresh_token", &c.password)
                        .append_pair("client_id", "nodeforge")
                        .append_pair("scope", &op.scopes.join(" "));
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                }
                let body = form.query().unwrap_or_default().to_string();
                url.set_query(None);
                self.http
                    .post(url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            Some(c) => self.http.get(url).header(AUTHORIZATION, c.basic_header()),
            None => self.http.get(url),
        };
        let resp = req
            .send()
            .map_err(|e| self.connect_error("asking its token service for a token", e))?;
        if !resp.status().is_success() {
            let detail = match resp.status() {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if self.creds.is_some() => {
                    "its token service refused the user name or password".to_string()
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    "its token service requires a login".to_string()
                }
                s => format!("its token service answered {s}"),
            };
            return Err(self.unauthorized(op, detail));
        }
        let body = read_limited(resp, 1 << 20)
            .map_err(|e| self.unauthorized(op, format!("cannot read its token: {e}")))?;
        let token = serde_json::from_slice::<auth::TokenResponse>(&body)
            .ok()
            .and_then(auth::TokenResponse::into_token)
            .ok_or_else(|| self.unauthorized(op, "its token service sent no token".into()))?;
        // Checked here, where it is the token service's fault, not when a request carrying it
        // fails to be built (which would read as the registry being unreachable).
        if reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            return Err(self.unauthorized(
                op,
                "its token service sent a token that cannot be sent in an HTTP header".into(),
            ));
        }
        Ok(token)
    }

    /// The error for an unexpected answer, with the registry's own error code and message.
    fn status_error(&self, op: &Op<'_>, resp: Response) -> RegistryError {
        #[derive(serde::Deserialize)]
        struct Errors {
            errors: Vec<ErrorItem>,
        }
        #[derive(serde::Deserialize)]
        struct ErrorItem {
            code: Option<String>,
            message: Option<String>,
        }
        let status = resp.status().as_u16();
        // The first 64 KiB are enough to say what went wrong.
        let mut body = Vec::new();
        let _ = resp.take(64 << 10).read_to_end(&mut body);
        let parsed = serde_json::from_slice::<Errors>(&body).ok();
        let first = parsed.as_ref().and_then(|e| e.errors.first());
        // The registry's words, escaped: they end up in a terminal.
        let code = first.and_then(|e| e.code.as_deref().map(|c| escape(c).into_owned()));
        let detail = match first {
            Some(e) => format!(
                "{}{}",
                code.as_deref().unwrap_or(""),
                e.message
                    .as_deref()
                    .map(|m| format!(" ({})", escape(m)))
                    .unwrap_or_default()
            ),
            None => escape(
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
                    .trim(),
            )
            .into_owned(),
        };
        if status == 403 {
            return self.unauthorized(op, format!("access denied: {detail}"));
        }
        RegistryError::Status {
            registry: self.host.clone(),
            repository: op.repository.to_string(),
            what: op.what.clone(),
            status,
            code,
            detail,
        }
    }

    /// Check the credentials as `docker login` does: `GET /v2/`, answering the registry's
    /// challenge (basic, or a token from its token service). True when the registry asked for
    /// them and took them; false when it asks for no login at all.
    pub fn check_login(&self) -> Result<bool, RegistryError> {
        let op = Op {
            repository: "",
            what: "the login".to_string(),
            scopes: Vec::new(),
        };
        let url = self.url("/v2/");
        let resp = self.send(&op, &|| self.http.get(url.clone()))?;
        if !resp.status().is_success() {
            return Err(self.status_error(&op, resp));
        }
        Ok(self.auth.lock().map(|m| !m.is_empty()).unwrap_or(false))
    }

    fn pull_op(repository: &str, what: String) -> Op<'_> {
        Op {
            repository,
            what,
            scopes: vec![format!("repository:{repository}:pull")],
        }
    }

    fn push_op(repository: &str, what: String) -> Op<'_> {
        Op {
            repository,
            what,
            scopes: vec![format!("repository:{repository}:pull,push")],
        }
    }

    /// Whether the repository has blob `digest` (HEAD).
    pub fn has_blob(&self, repository: &str, digest: &Sha256) -> Result<bool, RegistryError> {
        let op = Self::push_op(repository, format!("checking blob sha256:{digest}"));
        let url = self.url(&format!("/v2/{repository}/blobs/sha256:{digest}"));
        let resp = self.send(&op, &|| self.http.head(url.clone()))?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(&op, resp)),
        }
    }

    /// Put blob `digest` (`size` bytes, in the file at `path`) into the repository: mounted from
    /// `mount_from` when given and the registry can, else uploaded (POST, then one streamed PUT).
    /// `bar` counts the bytes as they go.
    /// An upload that breaks off, or a registry unreachable or answering 5xx, is started again
    /// (up to the client's retries, after the backoff of `http::retry`), said through the client's notes.
    pub fn put_blob(
        &self,
        repository: &str,
        digest: &Sha256,
        path: &Path,
        size: u64,
        mount_from: Option<&str>,
        bar: &Progress,
    ) -> Result<Upload, RegistryError> {
        // Opened for each attempt (a retry after a challenge sends it again); a file that
        // vanished meanwhile sends nothing, which the registry refuses by its digest.
        let open = || -> Box<dyn Read + Send> {
            match std::fs::File::open(path) {
                Ok(f) => Box::new(f),
                Err(_) => Box::new(std::io::empty()),
            }
        };
        let start = bar.position();
        self.retrying(
            repository,
            &format!("the upload of blob sha256:{digest}"),
            bar,
            || {
                bar.set_position(start);
                self.put_blob_once(repository, digest, &open, size, mount_from, bar)
            },
        )
    }

    /// [`Registry::retry_loop`] for a request sent again whole: each retry is said as
    /// "<error>; trying <what> again in <wait> (<n> of <retries>)".
    fn retrying<T>(
        &self,
        repository: &str,
        what: &str,
        bar: &Progress,
        attempt: impl FnMut() -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let key = format!("{}/{repository} {what}", self.host);
        self.retry_loop(&key, bar, attempt, |e, wait, tries| {
            format!(
                "{e}; trying {what} again in {:.1}s ({tries} of {})",
                wait.as_secs_f64(),
                self.retries
            )
        })
        .0
    }

    /// Run `attempt` until it succeeds, fails for good, or has been tried again the client's
    /// `retries` times after a transient failure. Before each retry it waits the backoff of `http::retry`
    /// (its jitter seeded by `key`) and says what `note(error, wait, retry number)` makes through
    /// the client's notes. Also how many retries were made.
    fn retry_loop<T>(
        &self,
        key: &str,
        bar: &Progress,
        attempt: impl FnMut() -> Result<T, RegistryError>,
        note: impl Fn(&RegistryError, Duration, u32) -> String,
    ) -> (Result<T, RegistryError>, u32) {
        crate::http::retry(
            self.retries,
            key,
            attempt,
            RegistryError::is_transient,
            |e, wait, tries| {
                let msg = note(e, wait, tries);
                bar.suspend(|| self.notes.say(&msg));
            },
        )
    }

    /// One attempt of [`Registry::put_blob`]: the blob's `size` bytes read from what `body`
    /// opens.
    fn put_blob_once(
        &self,
        repository: &str,
        digest: &Sha256,
        body: &dyn Fn() -> Box<dyn Read + Send>,
        size: u64,
        mount_from: Option<&str>,
        bar: &Progress,
    ) -> Result<Upload, RegistryError> {
        let mut op = Self::push_op(repository, format!("uploading blob sha256:{digest}"));
        let mut url = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        if let Some(from) = mount_from {
            op.scopes.push(format!("repository:{from}:pull"));
            url.query_pairs_mut()
                .append_pair("mount", &format!("sha256:{digest}"))
                .append_pair("from", from);
        }
        let resp = self.send(&op, &|| {
            self.http.post(url.clone()).header(CONTENT_LENGTH, "0")
        })?;
        if resp.status() == StatusCode::CREATED && mount_from.is_some() {
            return Ok(Upload::Mounted);
        }
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(&op, resp));
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| self.base.join(l).ok())
            .ok_or_else(|| RegistryError::Status {
                registry: self.host.clone(),
                repository: repository.to_string(),
                what: op.what.clone(),
                status: 202,
                code: None,
                detail: "it started an upload without saying where (no Location header)".into(),
            })?;
        let mut put = location;
        put.query_pairs_mut()
            .append_pair("digest", &format!("sha256:{digest}"));
        let resp = self.send(&op, &|| {
            let inner = body();
            self.http
                .put(put.clone())
                // The blocking client bounds the whole request, body included, by its timeout:
                // a large blob gets time for its bytes at 100 kB/s, besides the usual wait.
                .timeout(self.read_timeout + Duration::from_secs(size / 100_000))
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(reqwest::blocking::Body::sized(
                    Counting {
                        inner,
                        bar: bar.clone(),
                    },
                    size,
                ))
        })?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.status_error(&op, resp));
        }
        Ok(Upload::Session)
    }

    /// Store `bytes` as the image manifest `reference` (a tag) of the repository (tried again
    /// as [`Registry::put_blob`] is).
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        self.put_manifest_as(repository, reference, MANIFEST_MEDIA_TYPE, bytes)
            .map(|_| ())
    }

    /// The digest of the manifest tag `reference` names in the repository, as the registry
    /// announces it on a HEAD (`Docker-Content-Digest`); `None` when the tag is not there or the
    /// registry does not say. Lets a push leave a tag that already names its manifest alone.
    pub fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Sha256>, RegistryError> {
        let op = Self::push_op(repository, format!("checking manifest `{reference}`"));
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let resp = self.send(&op, &|| {
            self.http
                .head(url.clone())
                .header(reqwest::header::ACCEPT, MANIFEST_MEDIA_TYPE)
        })?;
        match resp.status() {
            s if s.is_success() => Ok(resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("sha256:"))
                .and_then(|h| Sha256::parse(h).ok())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.status_error(&op, resp)),
        }
    }

    /// The manifest `reference` (tag or `sha256:…`) of the repository and its digest (of the
    /// bytes received; a reference by digest must match it).
    pub fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, Sha256), RegistryError> {
        let op = Self::pull_op(repository, format!("fetching manifest `{reference}`"));
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let resp = self.send(&op, &|| {
            self.http.get(url.clone()).header(
                reqwest::header::ACCEPT,
                format!("{MANIFEST_MEDIA_TYPE}, application/vnd.oci.image.index.v1+json;q=0.5"),
            )
        })?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::ManifestUnknown {
                registry: self.host.clone(),
                repository: repository.to_string(),
                reference: reference.to_string(),
            });
        }
        if !resp.status().is_success() {
            return Err(self.status_error(&op, resp));
        }
        let bytes = read_limited(resp, MAX_MANIFEST_BYTES)
            .map_err(|e| self.body_error(&op, e, "manifest", MAX_MANIFEST_BYTES))?;
        let digest = Sha256::of(&bytes);
        if let Some(want) = reference.strip_prefix("sha256:") {
            if want != digest.to_hex() {
                return Err(RegistryError::DigestMismatch {
                    registry: self.host.clone(),
                    repository: repository.to_string(),
                    digest: want.to_string(),
                    actual: digest.to_hex(),
                });
            }
        }
        Ok((bytes, digest))
    }

    /// A small blob (the image record), whole, checked against its digest.
    pub fn get_blob(
        &self,
        repository: &str,
        digest: &Sha256,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let op = Self::pull_op(repository, format!("downloading blob sha256:{digest}"));
        let url = self.url(&format!("/v2/{repository}/blobs/sha256:{digest}"));
        let resp = self.send(&op, &|| self.http.get(url.clone()))?;
        if !resp.status().is_success() {
            return Err(self.status_error(&op, resp));
        }
        let bytes =
            read_limited(resp, limit).map_err(|e| self.body_error(&op, e, "blob", limit))?;
        let actual = Sha256::of(&bytes);
        if actual != *digest {
            return Err(self.mismatch(repository, digest, &actual));
        }
        Ok(bytes)
    }

    fn mismatch(&self, repository: &str, digest: &Sha256, actual: &Sha256) -> RegistryError {
        RegistryError::DigestMismatch {
            registry: self.host.clone(),
            repository: repository.to_string(),
            digest: digest.to_hex(),
            actual: actual.to_hex(),
        }
    }

    /// What another HTTP client needs to download blob `digest` of the repository: its URL and
    /// the `Authorization` header the registry wants for it (none for an anonymous registry),
    /// once a `HEAD` (answering the registry's challenge) found the blob there. `what` names
    /// the download in messages.
    pub fn blob_access(
        &self,
        repository: &str,
        digest: &Sha256,
        what: &str,
    ) -> Result<BlobAccess, RegistryError> {
        let op = Self::pull_op(repository, what.to_string());
        let url = self.url(&format!("/v2/{repository}/blobs/sha256:{digest}"));
        let resp = self.send(&op, &|| self.http.head(url.clone()))?;
        match resp.status() {
            s if s.is_success() => Ok(BlobAccess {
                url,
                authorization: self
                    .auth
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&op.scopes.join(" ")).cloned()),
            }),
            StatusCode::NOT_FOUND => Err(RegistryError::BlobUnknown {
                registry: self.host.clone(),
                repository: repository.to_string(),
                digest: digest.to_hex(),
                tls: self.tls,
            }),
            _ => Err(self.status_error(&op, resp)),
        }
    }

    /// Forget the authorization obtained for pulling from `repository` (a token that expired):
    /// the next request answers the registry's challenge again.
    pub fn forget_authorization(&self, repository: &str) {
        let op = Self::pull_op(repository, String::new());
        if let Ok(mut m) = self.auth.lock() {
            m.remove(&op.scopes.join(" "));
        }
    }

    /// Download blob `digest` of `size` bytes into `partial`, resuming from what it holds
    /// (`Range`); when complete, the file is checked against the digest (and removed if it does
    /// not match). A transfer that breaks off, or a registry unreachable or answering 5xx, is
    /// tried again up to the client's retries, after the backoff of `http::retry`, each time resuming from
    /// the bytes received, and said through the client's notes. `bar` counts the bytes.
    /// The blob is hashed as its bytes arrive, and `observer` sees them too (from the blob's
    /// first byte: a resumed download replays what the file held), so that nothing needs to
    /// read the file again to check it.
    pub fn download_blob(
        &self,
        repository: &str,
        digest: &Sha256,
        size: u64,
        partial: &Path,
        bar: &Progress,
        observer: &mut dyn BlobObserver,
    ) -> Result<Transfer, RegistryError> {
        // Bytes an earlier run left, which the first attempt resumes.
        let initial = std::fs::metadata(partial).map_or(0, |m| m.len()).min(size);
        let mut resumed_from: Option<u64> = None;
        let mut seen = Seen {
            observer,
            received: 0,
        };
        let (r, tries) = self.retry_loop(
            &format!("{}/{repository}@{digest}", self.host),
            bar,
            || {
                let r = self.download_once(
                    repository,
                    digest,
                    size,
                    partial,
                    bar,
                    &mut seen,
                );
                resumed_from.get_or_insert(match &r {
                    Ok(t) => t.resumed_from,
                    Err(_) => initial,
                });
                r
            },
            |e, wait, tries| {
                let have = std::fs::metadata(partial).map_or(0, |m| m.len()).min(size);
                let what = match e {
                    RegistryError::Interrupted {
                        registry,
                        repository,
                        digest,
                        have,
                        size,
                        detail,
                    } => format!("registry {registry}: the transfer of blob sha256:{digest} (repository {repository}) broke off after {have} of {size} bytes ({detail})"),
                    other => other.to_string(),
                };
                format!(
                    "{what}; retrying in {:.1}s ({tries} of {}), from byte {have}",
                    wait.as_secs_f64(),
                    self.retries
                )
            },
        );
        match r {
            Ok(_) => Ok(Transfer {
                received: seen.received,
                resumed_from: resumed_from.unwrap_or(initial),
            }),
            Err(e) => {
                // Out of retries with bytes kept: say that the next run resumes them.
                let have = std::fs::metadata(partial).map_or(0, |m| m.len());
                if tries > 0 && e.is_transient() && have > 0 && have < size {
                    return Err(RegistryError::Interrupted {
                        registry: self.host.clone(),
                        repository: repository.to_string(),
                        digest: digest.to_hex(),
                        have,
                        size,
                        detail: format!("{e}, after {tries} retries"),
                    });
                }
                Err(e)
            }
        }
    }

    /// One attempt of [`Registry::download_blob`]; `seen` counts the bytes it wrote and shows
    /// them to its observer.
    fn download_once(
        &self,
        repository: &str,
        digest: &Sha256,
        size: u64,
        partial: &Path,
        bar: &Progress,
        seen: &mut Seen<'_>,
    ) -> Result<Transfer, RegistryError> {
        let observer = &mut *seen.observer;
        use crate::fsutil::IoContext;
        use sha2::Digest as _;
        let op = Self::pull_op(repository, format!("downloading blob sha256:{digest}"));
        let mut file = crate::fsutil::open_partial(partial, false)?;
        let mut have = file.metadata().at("cannot stat", partial)?.len();
        if have > size {
            file.set_len(0).at("cannot truncate", partial)?;
            have = 0;
        }
        let mut transfer = Transfer {
            received: 0,
            resumed_from: have,
        };
        // Hashed as the bytes arrive: the file is not read again to check it.
        let mut sha = sha2::Sha256::new();
        observer.restart();
        if have == size {
            // An earlier run received it all: check what it kept.
            replay(partial, have, &mut sha, observer)?;
        } else {
            let url = self.url(&format!("/v2/{repository}/blobs/sha256:{digest}"));
            let resp = self.send(&op, &|| {
                let r = self.http.get(url.clone());
                if have > 0 {
                    r.header(reqwest::header::RANGE, format!("bytes={have}-"))
                } else {
                    r
                }
            })?;
            match resp.status() {
                StatusCode::PARTIAL_CONTENT if have > 0 => {
                    replay(partial, have, &mut sha, observer)?;
                }
                StatusCode::OK => {
                    // The whole blob: start over.
                    if have > 0 {
                        file.set_len(0).at("cannot truncate", partial)?;
                        transfer.resumed_from = 0;
                        have = 0;
                    }
                }
                _ => return Err(self.status_error(&op, resp)),
            }
            bar.set_position(have);
            // One byte more than is missing tells a blob longer than its manifest says.
            let mut body = resp.take((size - have).saturating_add(1));
            let received = receive(
                &mut body,
                &mut file,
                partial,
                &mut sha,
                observer,
                &mut |n| {
                    transfer.received += n;
                    seen.received += n;
                    bar.inc(n);
                },
            );
            match received {
                Ok(()) => {}
                Err(Stopped::Local(e)) => return Err(e.into()),
                Err(Stopped::Body(e)) => {
                    // Keep what arrived for the next attempt.
                    let _ = file.sync_data();
                    return Err(RegistryError::Interrupted {
                        registry: self.host.clone(),
                        repository: repository.to_string(),
                        digest: digest.to_hex(),
                        have: have + transfer.received,
                        size,
                        detail: e.to_string(),
                    });
                }
            }
            file.sync_data().at("cannot sync", partial)?;
        }
        let total = file.metadata().at("cannot stat", partial)?.len();
        if total != size {
            if total > size {
                let _ = std::fs::remove_file(partial);
            }
            return Err(RegistryError::Interrupted {
                registry: self.host.clone(),
                repository: repository.to_string(),
                digest: digest.to_hex(),
                have: total.min(size),
                size,
                detail: if total > size {
                    "it sent more bytes than the manifest says the blob has".to_string()
                } else {
                    "the response ended early".to_string()
                },
            });
        }
        let actual = Sha256::from_bytes(sha.finalize().into());
        if actual != *digest {
            let _ = std::fs::remove_file(partial);
            return Err(self.mismatch(repository, digest, &actual));
        }
        Ok(transfer)
    }
}

/// The observer of a download's attempts, and the bytes they received.
struct Seen<'a> {
    observer: &'a mut dyn BlobObserver,
    received: u64,
}

/// What sees a blob's bytes as [`Registry::download_blob`] writes them, from the blob's first
/// byte, to check them (a dm-verity tree, say) without reading the file again.
pub trait BlobObserver: Send {
    /// The download starts from byte 0 again: forget the bytes seen.
    fn restart(&mut self);
    fn update(&mut self, data: &[u8]);
}

/// Nothing to see besides the digest.
impl BlobObserver for () {
    fn restart(&mut self) {}
    fn update(&mut self, _data: &[u8]) {}
}

/// Why [`receive`] stopped before the body's end.
enum Stopped {
    /// Reading the response failed (the connection broke).
    Body(std::io::Error),
    /// Writing the file failed.
    Local(crate::fsutil::FsError),
}

/// Copy `body` into `file` (at `path`), each chunk hashed into `sha` and shown to `observer` on
/// a thread of its own while the next chunk is received: receiving and hashing overlap (a pull
/// hashes every byte twice, sha256 and a layer's dm-verity blocks, which on the receiving
/// thread cost as much time as receiving them). `got` is told of each chunk written. Hand-written
/// rather than a crate's: a bounded channel of recycled 1 MiB buffers and one scoped thread.
fn receive(
    body: &mut dyn Read,
    file: &mut std::fs::File,
    path: &Path,
    sha: &mut sha2::Sha256,
    observer: &mut dyn BlobObserver,
    got: &mut dyn FnMut(u64),
) -> Result<(), Stopped> {
    use crate::fsutil::IoContext;
    use sha2::Digest as _;
    const CHUNK: usize = 1 << 20;
    std::thread::scope(|scope| {
        let (to_hash, chunks) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        scope.spawn(move || {
            for chunk in chunks {
                sha.update(&chunk);
                observer.update(&chunk);
                let _ = give_back.send(chunk);
            }
        });
        // The hasher ends when `to_hash` is dropped, with this closure's end.
        let to_hash = to_hash;
        loop {
            let mut buf = spare.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let n = loop {
                match body.read(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Stopped::Body(e)),
                }
            };
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            file.write_all(&buf)
                .at("cannot write", path)
                .map_err(Stopped::Local)?;
            got(n as u64);
            if to_hash.send(buf).is_err() {
                // The hasher is gone (it panicked): what it hashed is short, so the digest
                // check refuses the blob.
                return Ok(());
            }
        }
    })
}

/// Feed the first `have` bytes of `partial` (kept by an earlier attempt or run) to the hasher
/// and the observer, before the rest arrives.
fn replay(
    partial: &Path,
    have: u64,
    sha: &mut sha2::Sha256,
    observer: &mut dyn BlobObserver,
) -> Result<(), RegistryError> {
    use crate::fsutil::IoContext;
    use sha2::Digest as _;
    let mut f = std::fs::File::open(partial)
        .at("cannot read", partial)?
        .take(have);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(crate::fsutil::FsError::new("cannot read", partial, e).into()),
        };
        sha.update(&buf[..n]);
        observer.update(&buf[..n]);
    }
    Ok(())
}

/// What the registry said to a manifest with a `subject` (OCI 1.1 referrers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectSupport {
    /// It answered with an `OCI-Subject` header: its referrers API lists the manifest.
    Native,
    /// No `OCI-Subject`: the client keeps the referrers tag (the spec's fallback).
    Fallback,
}

impl Registry {
    /// Store `bytes` (a manifest of `media_type`) as `reference` (a tag or `sha256:…`) and say
    /// whether the registry tracks its `subject` itself.
    /// Tried again as [`Registry::put_blob`] is.
    pub fn put_manifest_as(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<SubjectSupport, RegistryError> {
        self.retrying(
            repository,
            &format!("{STORING_MANIFEST} `{reference}`"),
            &Progress::hidden(),
            || self.put_manifest_as_once(repository, reference, media_type, bytes),
        )
    }

    fn put_manifest_as_once(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<SubjectSupport, RegistryError> {
        let op = Self::push_op(repository, format!("{STORING_MANIFEST} `{reference}`"));
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let resp = self.send(&op, &|| {
            self.http
                .put(url.clone())
                .header(CONTENT_TYPE, media_type)
                .body(bytes.to_vec())
        })?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.status_error(&op, resp));
        }
        Ok(if resp.headers().contains_key("OCI-Subject") {
            SubjectSupport::Native
        } else {
            SubjectSupport::Fallback
        })
    }

    /// The referrers API's list for manifest `digest` (an image index), or `None` when the
    /// registry has no referrers API (it answers 404: the spec's signal to use the referrers
    /// tag instead).
    pub fn referrers(
        &self,
        repository: &str,
        digest: &Sha256,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let op = Self::pull_op(
            repository,
            format!("listing the referrers of sha256:{digest}"),
        );
        let url = self.url(&format!("/v2/{repository}/referrers/sha256:{digest}"));
        let resp = self.send(&op, &|| {
            self.http.get(url.clone()).header(
                reqwest::header::ACCEPT,
                "application/vnd.oci.image.index.v1+json",
            )
        })?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.status_error(&op, resp));
        }
        read_limited(resp, MAX_MANIFEST_BYTES)
            .map(Some)
            .map_err(|e| self.body_error(&op, e, "referrers list", MAX_MANIFEST_BYTES))
    }

    /// The repository's tags (`GET /v2/<name>/tags/list`, following the `Link` header of a
    /// registry that pages them, at most [`MAX_TAG_PAGES`] pages), sorted. A repository the
    /// registry does not know (404) has none.
    pub fn list_tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let op = Self::pull_op(repository, "listing the tags".to_string());
        let mut tags = Vec::new();
        let mut next = Some((format!("/v2/{repository}/tags/list"), "n=1000".to_string()));
        for _ in 0..MAX_TAG_PAGES {
            let Some((path, query)) = next.take() else {
                break;
            };
            let mut url = self.url(&path);
            url.set_query(Some(&query));
            let resp = self.send(&op, &|| self.http.get(url.clone()))?;
            if resp.status() == StatusCode::NOT_FOUND {
                break;
            }
            if !resp.status().is_success() {
                return Err(self.status_error(&op, resp));
            }
            next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_page);
            let status = resp.status().as_u16();
            let bytes = read_limited(resp, MAX_MANIFEST_BYTES)
                .map_err(|e| self.body_error(&op, e, "tag list", MAX_MANIFEST_BYTES))?;
            let list: TagList =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Status {
                    registry: self.host.clone(),
                    repository: repository.to_string(),
                    what: op.what.clone(),
                    status,
                    code: None,
                    detail: format!("not a tag list: {e}"),
                })?;
            tags.extend(list.tags.unwrap_or_default());
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Put the small blob `bytes` (a few bytes to megabytes: an attestation file) into the
    /// repository unless it has it; whether its bytes were sent.
    pub fn put_blob_bytes(&self, repository: &str, bytes: &[u8]) -> Result<bool, RegistryError> {
        let digest = Sha256::of(bytes);
        if self.has_blob(repository, &digest)? {
            return Ok(false);
        }
        let owned = bytes.to_vec();
        let open =
            move || -> Box<dyn Read + Send> { Box::new(std::io::Cursor::new(owned.clone())) };
        let bar = Progress::hidden();
        self.retrying(
            repository,
            &format!("the upload of blob sha256:{digest}"),
            &bar,
            || self.put_blob_once(repository, &digest, &open, bytes.len() as u64, None, &bar),
        )?;
        Ok(true)
    }
}

/// How to download a blob with another HTTP client ([`Registry::blob_access`]).
#[derive(Debug, Clone)]
pub struct BlobAccess {
    pub url: Url,
    /// The `Authorization` header to send, if the registry wants one.
    pub authorization: Option<String>,
}

impl RegistryError {
    /// Worth trying again after a pause: the transfer broke off short of the blob's size, the
    /// connection to the registry timed out or broke (not a name that does not resolve nor a
    /// refused connection), or it answered 5xx, 429 or 408.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Interrupted { have, size, .. } => have < size,
            RegistryError::Connect { source, .. } => {
                !source.is_builder()
                    && !source.is_redirect()
                    && !crate::http::is_host_unreachable(source)
            }
            RegistryError::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            _ => false,
        }
    }
}

/// Why a response body could not be read whole.
#[derive(Debug)]
enum BodyError {
    /// The transfer failed.
    Http(reqwest::Error),
    Io(std::io::Error),
    /// It has more than the limit's bytes (the limit is in the error the caller makes).
    TooLarge,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Http(e) => write!(f, "{}", crate::http::describe(e)),
            BodyError::Io(e) => write!(f, "{e}"),
            BodyError::TooLarge => f.write_str("the answer is larger than nodeforge accepts"),
        }
    }
}

/// Read a response body whole, refusing one of more than `limit` bytes (never cut short and
/// taken as if complete: a truncated manifest would be judged by the wrong bytes).
/// Pages of a tag list `list_tags` follows: 1000 tags each.
pub const MAX_TAG_PAGES: usize = 20;

/// The path and query of a `Link: </v2/…/tags/list?n=…&last=…>; rel="next"` header.
fn next_page(link: &str) -> Option<(String, String)> {
    let target = link
        .split(',')
        .find(|l| l.contains("rel=\"next\""))?
        .split(';')
        .next()?
        .trim()
        .strip_prefix('<')?
        .strip_suffix('>')?;
    // An absolute URL's path, or the path as given.
    let path = match target.find("://") {
        Some(i) => &target[target[i + 3..].find('/').map(|j| i + 3 + j)?..],
        None => target,
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    Some((path.to_string(), query.to_string()))
}

fn read_limited(resp: Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    let mut v = Vec::new();
    let mut r = resp.take(limit.saturating_add(1));
    if let Err(e) = r.read_to_end(&mut v) {
        // Surface it as the reqwest error it wraps when it is one.
        let (kind, text) = (e.kind(), e.to_string());
        return Err(
            match e.into_inner().map(|i| i.downcast::<reqwest::Error>()) {
                Some(Ok(re)) => BodyError::Http(*re),
                _ => BodyError::Io(std::io::Error::new(kind, text)),
            },
        );
    }
    if u64::try_from(v.len()).map_or(true, |n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    Ok(v)
}

/// A file read into an upload, counting the bytes sent on a progress bar.
struct Counting {
    inner: Box<dyn Read + Send>,
    bar: Progress,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tag list's next page, from a relative or absolute `Link`, and none without `rel="next"`.
    #[test]
    fn tag_list_pages_follow_the_link_header() {
        assert_eq!(
            next_page("</v2/fleet/kubenet/tags/list?n=1000&last=worker1>; rel=\"next\""),
            Some((
                "/v2/fleet/kubenet/tags/list".to_string(),
                "n=1000&last=worker1".to_string()
            ))
        );
        assert_eq!(
            next_page("<https://r.example/v2/k/tags/list?last=a>; rel=\"next\""),
            Some(("/v2/k/tags/list".to_string(), "last=a".to_string()))
        );
        assert_eq!(next_page("</v2/k/tags/list?last=a>; rel=\"prev\""), None);
    }

    /// A one-request HTTP server on loopback answering 200 with `body`.
    fn serve_once(body: Vec<u8>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {MANIFEST_MEDIA_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        addr
    }

    #[test]
    fn credentials_never_go_to_a_plain_http_realm_of_an_https_registry() {
        let creds = Credentials {
            username: "fleet".into(),
            password: "s3cret".into(),
            identity_token: false,
            source: "test".into(),
        };
        // Port 9 of loopback: nothing is asked of it, the realm is refused first.
        let reg = Registry::with_credentials("127.0.0.1:9", &ClientOptions::default(), Some(creds))
            .expect("client");
        let op = Registry::pull_op("fleet/k", "fetching manifest `worker1`".into());
        let err = reg
            .token(&op, "http://127.0.0.1:9/token", Some("reg"))
            .expect_err("refused");
        assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
        assert!(err.to_string().contains("is plain HTTP"), "{err}");
    }

    #[test]
    fn a_blob_size_at_the_end_of_u64_is_an_error_not_an_overflow() {
        let host = serve_once(b"abc".to_vec());
        let opts = ClientOptions {
            insecure: vec![host.clone()],
            retries: 0,
            ..ClientOptions::default()
        };
        let reg = Registry::with_credentials(&host, &opts, None).expect("client");
        let dir = tempfile::tempdir().expect("tmp");
        let partial = dir.path().join("blob.partial");
        let err = reg
            .download_blob(
                "fleet/k",
                &Sha256::of(b"abc"),
                u64::MAX,
                &partial,
                &Progress::hidden(),
                &mut (),
            )
            .expect_err("short");
        assert!(
            matches!(err, RegistryError::Interrupted { have: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_token_that_is_no_header_value_is_the_token_services_fault() {
        let host = serve_once(br#"{"token":"abc\ndef"}"#.to_vec());
        let opts = ClientOptions {
            insecure: vec![host.clone()],
            ..ClientOptions::default()
        };
        let reg = Registry::with_credentials(&host, &opts, None).expect("client");
        let op = Registry::pull_op("fleet/k", "fetching manifest `worker1`".into());
        let err = reg
            .token(&op, &format!("http://{host}/token"), None)
            .expect_err("refused");
        assert!(
            err.to_string()
                .contains("its token service sent a token that cannot be sent in an HTTP header"),
            "{err}"
        );
    }

    #[test]
    fn an_oversized_manifest_is_refused_not_cut_short() {
        let limit = usize::try_from(MAX_MANIFEST_BYTES).expect("fits");
        let host = serve_once(vec![b' '; limit + 1]);
        let opts = ClientOptions {
            insecure: vec![host.clone()],
            ..ClientOptions::default()
        };
        let reg = Registry::with_credentials(&host, &opts, None).expect("client");
        let err = reg
            .get_manifest("fleet/k", "worker1")
            .expect_err("too large");
        assert!(
            matches!(err, RegistryError::TooLarge { limit: l, .. } if l == MAX_MANIFEST_BYTES),
            "{err}"
        );
        assert!(err.to_string().contains("more than 4194304 bytes"), "{err}");

        // At the limit exactly, the bytes are taken whole.
        let host = serve_once(vec![b' '; limit]);
        let reg = Registry::with_credentials(
            &host,
            &ClientOptions {
                insecure: vec![host.clone()],
                ..ClientOptions::default()
            },
            None,
        )
        .expect("client");
        let (bytes, _) = reg.get_manifest("fleet/k", "worker1").expect("whole");
        assert_eq!(bytes.len(), limit);
    }
}
