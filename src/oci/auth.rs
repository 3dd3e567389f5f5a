//! Registry credentials, found where docker, podman and skopeo keep them, and the answers to a
//! registry's `WWW-Authenticate` challenge (HTTP basic, or the distribution spec's bearer-token
//! flow, parsed with `http-auth`).
//!
//! Where credentials come from, first found wins:
//! 1. `NODEFORGE_REGISTRY_USERNAME` and `NODEFORGE_REGISTRY_PASSWORD` (for every registry);
//! 2. `$REGISTRY_AUTH_FILE` (podman, skopeo, buildah);
//! 3. `$XDG_RUNTIME_DIR/containers/auth.json` (podman's `podman login`);
//! 4. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (`docker login`).
//!
//! In the files, `auths.<registry>` holds `auth` (base64 of `user:password`) or `username` and
//! `password`. Credential helpers (`credsStore`, `credHelpers`) are not run.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;

/// A user name and password (or token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Where they came from, for messages (`~/.docker/config.json`, an environment variable).
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The environment variables holding credentials for every registry.
pub const ENV_USERNAME: &str = "NODEFORGE_REGISTRY_USERNAME";
pub const ENV_PASSWORD: &str = "NODEFORGE_REGISTRY_PASSWORD";

/// The auth files to look in, in order, that exist.
fn auth_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(p));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(d).join("containers/auth.json"));
    }
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => files.push(PathBuf::from(d).join("config.json")),
        None => {
            if let Some(h) = std::env::var_os("HOME") {
                files.push(PathBuf::from(h).join(".docker/config.json"));
            }
        }
    }
    files
}

#[derive(serde::Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The keys an auth file may use for `registry`: the bare host, or a URL of it (docker writes
/// `https://index.docker.io/v1/` for Docker Hub).
fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if matches!(
        registry,
        "docker.io" | "registry-1.docker.io" | "index.docker.io"
    ) {
        keys.push("https://index.docker.io/v1/".to_string());
    }
    keys
}

/// Parse one auth file's entry for `registry`.
fn from_file(text: &str, registry: &str, source: &str) -> Result<Option<Credentials>, String> {
    let file: AuthFile =
        serde_json::from_str(text).map_err(|e| format!("{source}: not an auth file: {e}"))?;
    for key in keys_for(registry) {
        let Some(entry) = file.auths.get(&key) else {
            continue;
        };
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
                source: source.to_string(),
            }));
        }
        if let Some(auth) = &entry.auth {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| format!("{source}: auths.{key}.auth is not base64: {e}"))?;
            let raw = String::from_utf8(raw)
                .map_err(|_| format!("{source}: auths.{key}.auth is not UTF-8"))?;
            let (u, p) = raw
                .split_once(':')
                .ok_or_else(|| format!("{source}: auths.{key}.auth is not user:password"))?;
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
                source: source.to_string(),
            }));
        }
    }
    Ok(None)
}

/// The credentials for `registry`, from the environment or the first auth file that has them;
/// none for an anonymous registry. An unreadable auth file is an error naming it.
pub fn credentials_for(registry: &str) -> Result<Option<Credentials>, String> {
    if let (Ok(u), Ok(p)) = (std::env::var(ENV_USERNAME), std::env::var(ENV_PASSWORD)) {
        return Ok(Some(Credentials {
            username: u,
            password: p,
            source: format!("${ENV_USERNAME}/${ENV_PASSWORD}"),
        }));
    }
    for path in auth_files() {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if let Some(c) = from_file(&text, registry, &path.display().to_string())? {
            return Ok(Some(c));
        }
    }
    Ok(None)
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

    #[test]
    fn auth_file_entries() {
        let text = r#"{"auths": {"reg.example:5000": {"auth": "YWxpY2U6czNjcmV0"},
            "https://index.docker.io/v1/": {"username": "bob", "password": "pw"}}}"#;
        let c = from_file(text, "reg.example:5000", "f")
            .expect("parse")
            .expect("found");
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3cret")
        );
        let c = from_file(text, "docker.io", "f")
            .expect("parse")
            .expect("found");
        assert_eq!(c.username, "bob");
        assert_eq!(from_file(text, "other", "f").expect("parse"), None);
        assert!(from_file(r#"{"auths": {"x": {"auth": "!!"}}}"#, "x", "f").is_err());
        assert!(!format!("{c:?}").contains("pw"), "password in Debug");
    }
}
