//! Flag groups several commands share (as cargo's `util/command_prelude.rs`): how to reach a
//! registry, which keys are trusted, the X.509 signer of systemd's root hash signatures, and the
//! secrets directory (`secrets` and `show --boot`). A
//! command file imports these, never another command file.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::Ctx;
use crate::oci::client::{ClientOptions, Notes};
use crate::ops::{self, Error};
use crate::trust::TrustedKeys;

/// How to reach a registry (push and pull).
#[derive(Debug, Args)]
#[command(next_help_heading = "Registry options")]
pub struct RegistryArgs {
    /// Speak plain HTTP to this registry (HOST or HOST:PORT; repeatable). Every other registry
    /// is spoken to over HTTPS, checked against the system's roots.
    #[arg(long, value_name = "HOST")]
    insecure_registry: Vec<String>,
    /// Seconds to wait for the next bytes of a response.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    timeout: u64,
    /// Seconds to wait for a connection.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    connect_timeout: u64,
    /// Retries of a blob transfer that broke off, or of a request an unreachable or failing
    /// (5xx) registry did not complete: a download resumes from the bytes received, an upload
    /// or a manifest is sent again.
    #[arg(long, default_value_t = crate::http::DEFAULT_RETRIES, value_name = "N")]
    retries: u32,
}

impl RegistryArgs {
    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            insecure: self.insecure_registry.clone(),
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            read_timeout: Duration::from_secs(self.timeout.max(1)),
            retries: self.retries,
            notes: Notes::new(|m| eprintln!("note: {m}")),
        }
    }
}

/// systemd's form: `<NAME>.roothash.p7s` beside each layer.
#[derive(Debug, Args)]
#[command(next_help_heading = "systemd signed root hashes")]
pub struct X509Args {
    /// Also write each layer's `<NAME>.roothash.p7s` (a detached PKCS#7 signature of its root
    /// hash, which systemd-sysext and systemd-dissect verify) signed with this certificate (PEM)…
    #[arg(long, value_name = "CERT", requires = "x509_key")]
    x509_cert: Option<PathBuf>,
    /// …and its private key (PEM: RSA or ECDSA P-256, PKCS#8, PKCS#1 or SEC1, unencrypted).
    #[arg(long, value_name = "KEY", requires = "x509_cert")]
    x509_key: Option<PathBuf>,
}

impl X509Args {
    pub fn pair(self) -> Option<(PathBuf, PathBuf)> {
        self.x509_cert.zip(self.x509_key)
    }
}

/// The keys whose signatures are trusted. Given any, images must carry a valid signature by
/// one of them.
#[derive(Debug, Args)]
#[command(next_help_heading = "Trust options")]
pub struct TrustArgs {
    /// A trusted public key (SPKI PEM, KEY.pub from `nodeforge key generate`); repeatable, so
    /// that old and new keys are trusted together while a key is rotated.
    #[arg(long = "key", value_name = "PUB")]
    keys: Vec<PathBuf>,
    /// A file of trusted public keys: any number of PEM `BEGIN PUBLIC KEY` blocks (text between
    /// them is ignored). Also NODEFORGE_TRUSTED_KEYS.
    #[arg(long, value_name = "FILE", env = "NODEFORGE_TRUSTED_KEYS")]
    trusted_keys: Option<PathBuf>,
}

/// Whether a pulled or imported image may be older than the node's current one.
#[derive(Debug, Args)]
pub struct FreshnessArgs {
    /// Switch to the image even if it is older than the node's current one (by this host's
    /// generations, or by what trusted keys signed). `nodeforge rollback` is the usual way back.
    #[arg(long)]
    pub allow_downgrade: bool,
}

impl TrustArgs {
    pub fn load(&self) -> Result<TrustedKeys, Error> {
        Ok(TrustedKeys::load(&self.keys, self.trusted_keys.as_slice())?)
    }
}

/// The secrets directory and the expiry margin, shared by `secrets` and `show --boot`.
#[derive(Debug, Clone, Args)]
pub struct SecretsDirArgs {
    /// The secrets directory: the files the manifest's [[secrets]] name (`from`). Never inside
    /// the output directory or the template tree.
    #[arg(long = "secrets", value_name = "DIR")]
    pub dir: PathBuf,
    /// Certificates expiring within this margin are a warning (s, m, h, d, w: 30d, 12h, 2w).
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub expiry_margin: String,
}

impl SecretsDirArgs {
    pub fn options(&self, ctx: &Ctx) -> Result<ops::SecretsOptions, Error> {
        Ok(ops::SecretsOptions {
            manifest: ctx.manifest.clone(),
            out: ctx.out.clone(),
            dir: self.dir.clone(),
            expiry_margin: ops::parse_margin(&self.expiry_margin)
                .map_err(|e| Error::Usage(format!("--expiry-margin: {e}")))?,
            margin_text: self.expiry_margin.clone(),
        })
    }
}
