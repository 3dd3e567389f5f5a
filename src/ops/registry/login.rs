//! `nodeforge login REGISTRY`: check a user name and password against a registry (`GET /v2/`,
//! answering its challenge as push and pull do) and keep them as an `auths` entry of
//! `$REGISTRY_AUTH_FILE` or docker's `config.json` (written atomically, mode 0600), where push,
//! pull and OCI mirrors find them.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::fsutil;
use crate::oci::auth::{self, Credentials};
use crate::oci::client::{ClientOptions, Registry};
use crate::ops::error::Error;

#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// `host[:port]`.
    pub registry: String,
    pub username: String,
    pub password: String,
    pub client: ClientOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoginReport {
    pub registry: String,
    pub username: String,
    /// The auth file written.
    pub file: PathBuf,
    /// The registry asked for credentials and took these (false: it asks for no login, so they
    /// could not be checked).
    pub verified: bool,
}

/// A registry address as `login` and `logout` take it: `host[:port]`, a scheme and path
/// (`https://host/v2/`) tolerated as docker tolerates them.
pub(crate) fn registry_address(s: &str) -> Result<String, Error> {
    let host = auth::key_host(s.trim());
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return Err(Error::Usage(format!(
            "`{s}` is not a registry address (HOST or HOST:PORT, like registry.example or 127.0.0.1:5000)"
        )));
    }
    Ok(host.to_string())
}

/// The auth file's text (none yet: empty).
pub(crate) fn read_auth_file(file: &Path) -> Result<String, Error> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(fsutil::FsError::new("cannot read", file, e).into()),
    }
}

/// Hold `<file>.lock` (beside the auth file) while it is read, changed and written back:
/// two logins at once would otherwise each write the file without the other's entry.
pub(crate) fn lock_auth_file(file: &Path) -> Result<std::fs::File, Error> {
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    Ok(fsutil::lock_exclusive(Path::new(&name))?)
}

pub fn login(opts: &LoginOptions) -> Result<LoginReport, Error> {
    let registry = registry_address(&opts.registry)?;
    if opts.username.is_empty() || opts.password.is_empty() {
        return Err(Error::Usage(format!(
            "login to {registry} needs a user name and a password"
        )));
    }
    let file = auth::login_file();
    let source = file.display().to_string();
    // The file is checked before the registry is asked: a login that cannot be kept is not made.
    auth::with_login(
        &read_auth_file(&file)?,
        &source,
        &registry,
        &opts.username,
        &opts.password,
    )
    .map_err(crate::oci::client::RegistryError::from)?;
    let client = Registry::with_credentials(
        &registry,
        &opts.client,
        Some(Credentials {
            username: opts.username.clone(),
            password: opts.password.clone(),
            identity_token: false,
            source: "the command line".to_string(),
        }),
    )?;
    let verified = client.check_login()?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        fsutil::create_dir_all(dir)?;
    }
    // Read again under the lock and changed in place: another login or logout meanwhile (to
    // another registry) keeps its entry.
    let _lock = lock_auth_file(&file)?;
    let bytes = auth::with_login(
        &read_auth_file(&file)?,
        &source,
        &registry,
        &opts.username,
        &opts.password,
    )
    .map_err(crate::oci::client::RegistryError::from)?;
    fsutil::write_atomic(&file, &bytes, 0o600)?;
    Ok(LoginReport {
        registry,
        username: opts.username.clone(),
        file,
        verified,
    })
}
