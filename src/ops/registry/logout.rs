//! `nodeforge logout REGISTRY`: remove the registry's `auths` entry from the file `login`
//! writes (`$REGISTRY_AUTH_FILE` or docker's `config.json`), atomically, mode 0600.

use std::path::PathBuf;

use serde::Serialize;

use super::login::{lock_auth_file, read_auth_file, registry_address};
use crate::fsutil;
use crate::oci::auth;
use crate::ops::error::Error;

#[derive(Debug, Clone, Serialize)]
pub struct LogoutReport {
    pub registry: String,
    pub file: PathBuf,
    /// The file had a login for the registry (false: there was nothing to remove).
    pub removed: bool,
}

pub fn logout(registry: &str) -> Result<LogoutReport, Error> {
    let registry = registry_address(registry)?;
    let file = auth::login_file();
    if !file.exists() {
        return Ok(LogoutReport {
            registry,
            file,
            removed: false,
        });
    }
    let _lock = lock_auth_file(&file)?;
    let text = read_auth_file(&file)?;
    let (bytes, removed) = auth::without_login(&text, &file.display().to_string(), &registry)
        .map_err(crate::oci::client::RegistryError::from)?;
    if removed {
        fsutil::write_atomic(&file, &bytes, 0o600)?;
    }
    Ok(LogoutReport {
        registry,
        file,
        removed,
    })
}
