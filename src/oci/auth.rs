//! Registry credentials, found where docker, podman and skopeo keep them, and the answers to a
//! registry's `WWW-Authenticate` challenge (HTTP basic, or the distribution spec's bearer-token
//! flow, parsed with `http-auth`).
//!
//! Where credentials come from, first found wins:
//! 1. `NODEFORGE_REGISTRY_USERNAME` and `NODEFORGE_REGISTRY_PASSWORD` (for every registry);
//! 2. `$DOCKER_AUTH_CONFIG`: a config.json's content in the environment, as docker's CLI (28.2
//!    and later) reads it: its `auths` entries (`auth`, base64 of `user:password`) take
//!    precedence over every file, no credential helper it names is run, and a registry it has
//!    no entry for falls through to the files;
//! 3. `$REGISTRY_AUTH_FILE` (podman, skopeo, buildah);
//! 4. `$XDG_RUNTIME_DIR/containers/auth.json` (podman's `podman login`);
//! 5. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (`docker login`).
//!
//! In each file, as docker's CLI reads its own: `credHelpers.<registry>` names a credential
//! helper for that registry; else `credsStore` names one for every registry; else
//! `auths.<registry>` holds `auth` (base64 of `user:password`) or `username` and `password` (or
//! `identitytoken`). A key of `auths` may be the bare `host[:port]` or a URL of it
//! (`https://host/v1/`, as docker writes for Docker Hub). A helper is the program
//! `docker-credential-<name>`, run as `docker-credential-<name> get` with the server's address
//! on stdin, answering `{"Username": …, "Secret": …}` (the docker-credential-helpers protocol);
//! the user name `<token>` means the secret is an identity token, traded for an access token in
//! the bearer flow (OAuth2 `refresh_token` grant). A helper that says "credentials not found"
//! means no credentials (anonymous); a helper that is missing or fails is an error naming it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;

/// The user name a credential helper answers for an identity token.
pub const TOKEN_USERNAME: &str = "<token>";

/// A user name and password (or an identity token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// `password` is an identity token (OAuth2 refresh token) for the bearer flow, not a
    /// password: a credential helper's `<token>` user, or an auth file's `identitytoken`.
    pub identity_token: bool,
    /// Where they came from, for messages (`~/.docker/config.json`, a credential helper, an
    /// environment variable).
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("identity_token", &self.identity_token)
            .field("source", &self.source)
            .finish()
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic` header.
    pub fn basic_header(&self) -> String {
        basic_header(&self.username, &self.password)
    }
}

/// `Basic base64(user:password)`.
pub fn basic_header(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The environment variables holding credentials for every registry.
pub const ENV_USERNAME: &str = "NODEFORGE_REGISTRY_USERNAME";
pub const ENV_PASSWORD: &str = "NODEFORGE_REGISTRY_PASSWORD";

/// The environment variable holding a docker config.json's content (docker/cli's
/// `configfile.DockerEnvConfigKey`).
pub const ENV_DOCKER_AUTH_CONFIG: &str = "DOCKER_AUTH_CONFIG";

/// Why credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    File(String),
    #[error("credential helper docker-credential-{helper} (named by `{key}` in {file}) for registry {registry} {problem}")]
    Helper {
        helper: String,
        registry: String,
        file: String,
        /// `credsStore` or `credHelpers.<registry>`.
        key: String,
        problem: String,
    },
}

impl CredentialsError {
    /// The helper's name, when a helper failed.
    pub fn helper(&self) -> Option<&str> {
        match self {
            CredentialsError::Helper { helper, .. } => Some(helper),
            _ => None,
        }
    }
}

/// The auth files to look in, in order.
fn auth_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(p));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(d).join("containers/auth.json"));
    }
    files.push(docker_config());
    files
}

/// docker's `config.json`: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".docker/config.json"),
    }
}

#[derive(serde::Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The host (with port) an `auths` or `credHelpers` key names, as docker's CLI reads it: the
/// scheme and any path dropped (`https://reg.example:5000/v1/` is `reg.example:5000`).
pub fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// The registries that are Docker Hub (docker keeps them under `https://index.docker.io/v1/`).
fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "registry-1.docker.io" | "index.docker.io"
    )
}

/// The address docker's CLI gives a credential helper, and the key it writes in `auths`.
pub fn server_address(registry: &str) -> String {
    if is_docker_hub(registry) {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// The entry of `map` for `registry`: its exact key first, then any key naming its host.
fn lookup<'a, T>(map: &'a BTreeMap<String, T>, registry: &str) -> Option<(&'a str, &'a T)> {
    let want = if is_docker_hub(registry) {
        "index.docker.io"
    } else {
        registry
    };
    map.get_key_value(registry)
        .or_else(|| map.get_key_value(&server_address(registry)))
        .or_else(|| map.iter().find(|(k, _)| key_host(k) == want))
        .map(|(k, v)| (k.as_str(), v))
}

/// Runs a credential helper (`helper`, `server`): its user name and secret, none, or what went
/// wrong ([`run_helper`]; a stand-in in unit tests).
type HelperRunner = dyn Fn(&str, &str) -> Result<Option<(String, String)>, String>;

/// The credentials one auth file gives for `registry`: a helper's, as `credHelpers` or
/// `credsStore` name one (run by `run`), else its `auths` entry.
fn from_file(
    text: &str,
    registry: &str,
    source: &str,
    run: &HelperRunner,
) -> Result<Option<Credentials>, CredentialsError> {
    let file: AuthFile = serde_json::from_str(text)
        .map_err(|e| CredentialsError::File(format!("{source}: not an auth file: {e}")))?;
    from_auth_file(&file, registry, source, run)
}

/// The credentials `$DOCKER_AUTH_CONFIG` (its content `text`) gives for `registry`: its `auths`
/// entry, as docker's CLI reads the variable (the credential helpers it names are not run).
fn from_env_config(text: &str, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
    let source = format!("${ENV_DOCKER_AUTH_CONFIG}");
    let mut file: AuthFile = serde_json::from_str(text).map_err(|e| {
        CredentialsError::File(format!(
            "{source}: not the content of a docker config.json: {e}"
        ))
    })?;
    file.creds_store = None;
    file.cred_helpers.clear();
    from_auth_file(&file, registry, &source, &|_, _| Ok(None))
}

/// [`from_file`] of a parsed file.
fn from_auth_file(
    file: &AuthFile,
    registry: &str,
    source: &str,
    run: &HelperRunner,
) -> Result<Option<Credentials>, CredentialsError> {
    let helper = match lookup(&file.cred_helpers, registry) {
        Some((k, h)) => Some((format!("credHelpers.{k}"), h.clone())),
        None => file
            .creds_store
            .clone()
            .filter(|s| !s.is_empty())
            .map(|s| ("credsStore".to_string(), s)),
    };
    if let Some((key, helper)) = helper {
        let answer = run(&helper, &server_address(registry)).map_err(|problem| {
            CredentialsError::Helper {
                helper: helper.clone(),
                registry: registry.to_string(),
                file: source.to_string(),
                key: key.clone(),
                problem,
            }
        })?;
        return Ok(answer.map(|(username, secret)| Credentials {
            identity_token: username == TOKEN_USERNAME,
            username,
            password: secret,
            source: format!("credential helper docker-credential-{helper} ({key} in {source})"),
        }));
    }
    let Some((key, entry)) = lookup(&file.auths, registry) else {
        return Ok(None);
    };
    let bad = |what: &str| CredentialsError::File(format!("{source}: auths.\"{key}\".{what}"));
    if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials {
            username: entry.username.clone().unwrap_or_default(),
            password: token.clone(),
            identity_token: true,
            source: source.to_string(),
        }));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
            identity_token: false,
            source: source.to_string(),
        }));
    }
    let Some(auth) = entry.auth.as_ref().filter(|a| !a.trim().is_empty()) else {
        // `{}`: docker's mark of a login kept by a helper; nothing here.
        return Ok(None);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| bad(&format!("auth is not base64: {e}")))?;
    let raw = String::from_utf8(raw).map_err(|_| bad("auth is not UTF-8"))?;
    let (u, p) = raw
        .split_once(':')
        .ok_or_else(|| bad("auth is not user:password"))?;
    Ok(Some(Credentials {
        username: u.to_string(),
        password: p.to_string(),
        identity_token: false,
        source: source.to_string(),
    }))
}

/// Run `docker-credential-<helper> get` for `server`: its user name and secret, or none when it
/// has no credentials for the server. Any other failure is the problem, in words.
pub fn run_helper(helper: &str, server: &str) -> Result<Option<(String, String)>, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    if helper.is_empty()
        || !helper
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("is not a helper name (letters, digits, `-`, `_`, `.`)".to_string());
    }
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "is not installed (not found in $PATH)".to_string(),
            _ => format!("cannot be run: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its exit status below.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot be run: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        // The protocol's answer for a server it knows nothing of.
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        let said = [
            stdout,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
        let said: String = said.chars().take(300).collect();
        return Err(format!(
            "failed ({}){}",
            out.status,
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        ));
    }
    let a: Answer = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!("answered something that is not {{\"Username\", \"Secret\"}} JSON: {e}")
    })?;
    if a.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some((a.username, a.secret)))
}

/// The credentials for `registry`, from the environment or the first auth file that has them;
/// none for an anonymous registry. An unreadable auth file, or a credential helper that is
/// missing or fails, is an error naming it.
pub fn credentials_for(registry: &str) -> Result<Option<Credentials>, CredentialsError> {
    if let (Ok(u), Ok(p)) = (std::env::var(ENV_USERNAME), std::env::var(ENV_PASSWORD)) {
        return Ok(Some(Credentials {
            username: u,
            password: p,
            identity_token: false,
            source: format!("${ENV_USERNAME}/${ENV_PASSWORD}"),
        }));
    }
    if let Some(text) = std::env::var(ENV_DOCKER_AUTH_CONFIG)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        if let Some(c) = from_env_config(&text, registry)? {
            return Ok(Some(c));
        }
    }
    for path in auth_files() {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(CredentialsError::Read {
                    path: path.display().to_string(),
                    source: e,
                })
            }
        };
        if let Some(c) = from_file(&text, registry, &path.display().to_string(), &run_helper)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}
/// The file `nodeforge login` writes and `logout` edits: `$REGISTRY_AUTH_FILE` when set (as
/// podman's and skopeo's `login` do), else docker's `config.json`.
pub fn login_file() -> PathBuf {
    match std::env::var_os("REGISTRY_AUTH_FILE") {
        Some(p) => PathBuf::from(p),
        None => docker_config(),
    }
}

/// An auth file's text as a JSON object (an empty or missing file is an empty one).
fn file_object(
    text: &str,
    source: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, CredentialsError> {
    if text.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(CredentialsError::File(format!(
            "{source}: not an auth file: not a JSON object"
        ))),
        Err(e) => Err(CredentialsError::File(format!(
            "{source}: not an auth file: {e}"
        ))),
    }
}

fn file_bytes(m: serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(&serde_json::Value::Object(m)).unwrap_or_default();
    v.push(b'\n');
    v
}

/// The auth file `text` (from `source`) with the login `username`/`password` for `registry` as
/// its `auths` entry (under the key docker writes, replacing any other key naming the
/// registry), everything else kept. A file that sends the registry to a credential helper is
/// refused: the entry would never be read.
pub fn with_login(
    text: &str,
    source: &str,
    registry: &str,
    username: &str,
    password: &str,
) -> Result<Vec<u8>, CredentialsError> {
    let parsed: AuthFile = if text.trim().is_empty() {
        AuthFile::default()
    } else {
        serde_json::from_str(text)
            .map_err(|e| CredentialsError::File(format!("{source}: not an auth file: {e}")))?
    };
    let helper = match lookup(&parsed.cred_helpers, registry) {
        Some((k, h)) => Some((format!("credHelpers.{k}"), h.clone())),
        None => parsed
            .creds_store
            .filter(|s| !s.is_empty())
            .map(|s| ("credsStore".to_string(), s)),
    };
    if let Some((key, helper)) = helper {
        return Err(CredentialsError::File(format!(
            "{source} keeps the login for {registry} in credential helper docker-credential-{helper} (`{key}`): log in with `docker login {registry}`, which stores it there"
        )));
    }
    let mut m = file_object(text, source)?;
    let auths = m
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    let serde_json::Value::Object(auths) = auths else {
        return Err(CredentialsError::File(format!(
            "{source}: `auths` is not an object"
        )));
    };
    let key = server_address(registry);
    auths.retain(|k, _| !names(k, registry));
    let raw = format!("{username}:{password}");
    auths.insert(
        key,
        serde_json::json!({ "auth": base64::engine::general_purpose::STANDARD.encode(raw) }),
    );
    Ok(file_bytes(m))
}

/// The auth file `text` without any `auths` entry for `registry`, and whether it had one.
pub fn without_login(
    text: &str,
    source: &str,
    registry: &str,
) -> Result<(Vec<u8>, bool), CredentialsError> {
    let mut m = file_object(text, source)?;
    let mut removed = false;
    if let Some(serde_json::Value::Object(auths)) = m.get_mut("auths") {
        let before = auths.len();
        auths.retain(|k, _| !names(k, registry));
        removed = auths.len() != before;
    }
    Ok((file_bytes(m), removed))
}

/// Whether an `auths` key names `registry`.
fn names(key: &str, registry: &str) -> bool {
    key == registry
        || key_host(key) == registry
        || (is_docker_hub(registry) && key_host(key) == "index.docker.io")
}

/// A registry's challenge, as far as nodeforge answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    /// The bearer-token flow: ask `realm` for a token for `service` and the scope.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// The challenge of a `WWW-Authenticate` header nodeforge can answer (bearer preferred).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let challenges = http_auth::parse_challenges(header).ok()?;
    let param = |c: &http_auth::ChallengeRef<'_>, name: &str| {
        c.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_unescaped())
    };
    if let Some(c) = challenges
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
    {
        return Some(Challenge::Bearer {
            realm: param(c, "realm")?,
            service: param(c, "service"),
        });
    }
    challenges
        .iter()
        .any(|c| c.scheme.eq_ignore_ascii_case("basic"))
        .then_some(Challenge::Basic)
}

/// A token endpoint's answer (`token`, or OAuth2's `access_token`).
#[derive(serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<String> {
        self.token.or(self.access_token).filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    fn none(_: &str, _: &str) -> Result<Option<(String, String)>, String> {
        Err("must not run".into())
    }

    #[test]
    fn auth_file_entries() {
        let text = r#"{"auths": {"reg.example:5000": {"auth": "YWxpY2U6czNjcmV0"},
            "https://index.docker.io/v1/": {"username": "bob", "password": "pw"},
            "https://other.example/v1/": {"auth": "Y2Fyb2w6eA=="},
            "http://third.example:5000": {"identitytoken": "idt-s3cr3t"},
            "kept.example": {}}}"#;
        let c = from_file(text, "reg.example:5000", "f", &none)
            .expect("parse")
            .expect("found");
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3cret")
        );
        let c = from_file(text, "docker.io", "f", &none)
            .expect("parse")
            .expect("found");
        assert_eq!(c.username, "bob");
        // Keys as docker writes them: a URL with a path, a scheme and port.
        let c = from_file(text, "other.example", "f", &none)
            .expect("parse")
            .expect("found");
        assert_eq!(c.username, "carol");
        let c = from_file(text, "third.example:5000", "f", &none)
            .expect("parse")
            .expect("found");
        assert!(c.identity_token && c.password == "idt-s3cr3t");
        assert_eq!(
            from_file(text, "kept.example", "f", &none).expect("parse"),
            None
        );
        assert_eq!(from_file(text, "other", "f", &none).expect("parse"), None);
        assert_eq!(
            from_file(text, "reg.example:5001", "f", &none).expect("parse"),
            None
        );
        assert!(from_file(r#"{"auths": {"x": {"auth": "!!"}}}"#, "x", "f", &none).is_err());
        assert!(!format!("{c:?}").contains("s3cr3t"), "secret in Debug");
    }

    #[test]
    fn docker_auth_config_gives_its_auths_and_runs_no_helper() {
        let text = r#"{"auths": {"reg.example:5000": {"auth": "YWxpY2U6czNjcmV0"},
            "https://index.docker.io/v1/": {"auth": "Ym9iOnB3"}},
            "credsStore": "store", "credHelpers": {"other.example": "special"}}"#;
        let c = from_env_config(text, "reg.example:5000")
            .expect("parse")
            .expect("found");
        assert_eq!(
            (c.username.as_str(), c.password.as_str(), c.source.as_str()),
            ("alice", "s3cret", "$DOCKER_AUTH_CONFIG")
        );
        let c = from_env_config(text, "docker.io")
            .expect("parse")
            .expect("found");
        assert_eq!(c.username, "bob");
        // Its helpers are not run: a registry without an entry falls through to the files.
        assert_eq!(from_env_config(text, "other.example").expect("parse"), None);
        let e = from_env_config("{not json", "x").expect_err("refused");
        assert!(
            e.to_string()
                .starts_with("$DOCKER_AUTH_CONFIG: not the content of a docker config.json"),
            "{e}"
        );
    }

    #[test]
    fn helpers_take_precedence_as_in_docker() {
        let text = r#"{"auths": {"a.example": {"auth": "YWxpY2U6czNjcmV0"}, "b.example": {"auth": "YWxpY2U6czNjcmV0"}},
            "credsStore": "store", "credHelpers": {"b.example": "special"}}"#;
        let run = |helper: &str, server: &str| -> Result<Option<(String, String)>, String> {
            match (helper, server) {
                ("special", "b.example") => Ok(Some(("<token>".into(), "idt".into()))),
                ("store", "a.example") => Ok(Some(("u".into(), "p".into()))),
                ("store", _) => Ok(None),
                _ => Err("unexpected".into()),
            }
        };
        // credHelpers for the registry, then credsStore, never the auths entry.
        let c = from_file(text, "b.example", "f", &run)
            .expect("ok")
            .expect("found");
        assert!(c.identity_token && c.password == "idt", "{c:?}");
        assert!(
            c.source.contains("docker-credential-special"),
            "{}",
            c.source
        );
        let c = from_file(text, "a.example", "f", &run)
            .expect("ok")
            .expect("found");
        assert_eq!((c.username.as_str(), c.identity_token), ("u", false));
        assert_eq!(from_file(text, "c.example", "f", &run).expect("ok"), None);
        let fail = |_: &str, _: &str| -> Result<Option<(String, String)>, String> {
            Err("is not installed (not found in $PATH)".into())
        };
        let e = from_file(text, "a.example", "f", &fail).expect_err("fails");
        assert_eq!(e.helper(), Some("store"));
        assert!(e.to_string().contains("docker-credential-store"), "{e}");
        assert!(e.to_string().contains("a.example"), "{e}");
    }

    #[test]
    fn helper_names_are_checked() {
        assert!(run_helper("../x", "r").is_err());
        let e = run_helper("nodeforge-no-such-helper", "r").expect_err("missing");
        assert!(e.contains("not installed"), "{e}");
    }

    #[test]
    fn login_entries_are_written_and_removed() {
        let text = r#"{"auths": {"https://reg.example/v1/": {"auth": "b2xkOng="}, "b.example": {}}, "psFormat": "x"}"#;
        let out = with_login(text, "f", "reg.example", "alice", "pw").expect("login");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["psFormat"], "x", "other keys kept");
        assert_eq!(v["auths"]["reg.example"]["auth"], "YWxpY2U6cHc=");
        assert!(v["auths"].get("https://reg.example/v1/").is_none());
        assert!(v["auths"].get("b.example").is_some());
        let c = from_file(
            std::str::from_utf8(&out).expect("utf8"),
            "reg.example",
            "f",
            &none,
        )
        .expect("parse")
        .expect("found");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("alice", "pw"));
        let (out, removed) =
            without_login(std::str::from_utf8(&out).expect("utf8"), "f", "reg.example")
                .expect("logout");
        assert!(removed);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert!(v["auths"].get("reg.example").is_none());
        assert!(!without_login("", "f", "reg.example").expect("empty").1);
        assert!(with_login(r#"{"credsStore": "desktop"}"#, "f", "reg.example", "a", "b").is_err());
        assert!(with_login("[]", "f", "reg.example", "a", "b").is_err());
    }
}
