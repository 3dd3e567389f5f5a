//! Flag groups several commands share (as cargo's `util/command_prelude.rs`): how to reach a
//! registry, which keys are trusted, the X.509 signer of systemd's root hash signatures, and the
//! secrets directory (`secrets` and `show --boot`). A
//! command file imports these, never another command file.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::Ctx;
use crate::fetch::{FetchConfig, Mirror};
use crate::oci::client::{ClientOptions, Notes};
use crate::ops::{self, Error};
use crate::trust::TrustedKeys;

/// How to reach the network: download sources (lock, fetch, build) and registries (push, pull,
/// login, tags, `mirror push`). Global, as cargo's `--offline` and `-j`: they work before or
/// after the subcommand (`nodeforge --offline build`, `nodeforge build --offline`).
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Try `URL/<host>/<path>` before upstream (repeatable; http(s):// or file://DIR; or an OCI
    /// registry's oci://REGISTRY/REPOSITORY filled by `mirror push`). Also NODEFORGE_MIRROR.
    #[arg(long, global = true, value_name = "URL", help_heading = NET)]
    pub mirror: Vec<String>,
    /// Never use the network: only the store and file:// mirrors. Also NODEFORGE_OFFLINE
    /// (1/0, true/false, yes/no, on/off).
    #[arg(
        long,
        global = true,
        help_heading = NET,
        env = "NODEFORGE_OFFLINE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub offline: bool,
    /// Use only the mirrors, never the upstream URLs.
    #[arg(long, global = true, help_heading = NET)]
    pub mirrors_only: bool,
    /// Pin lockfile entries from a mirror's copy of a checksum file (by default an entry the
    /// lockfile lacks, or records as unresolved, is pinned from upstream's own checksum file).
    #[arg(long, global = true, help_heading = NET)]
    pub trust_mirror_checksums: bool,
    /// Speak plain HTTP to this registry (HOST or HOST:PORT; repeatable): push, pull, login,
    /// tags and oci:// mirrors. Every other registry is spoken to over HTTPS, checked against
    /// the system's roots.
    #[arg(long, global = true, value_name = "HOST", help_heading = NET)]
    pub insecure_registry: Vec<String>,
    /// Seconds to wait for the next bytes of a response [default: 30 for downloads, 60 for
    /// registries].
    #[arg(long, global = true, value_name = "SECS", help_heading = NET)]
    pub timeout: Option<u64>,
    /// Seconds to wait for a connection.
    #[arg(long, global = true, default_value_t = 10, value_name = "SECS", help_heading = NET)]
    pub connect_timeout: u64,
    /// Retries per source on transient errors (5xx, resets, truncated bodies): a download
    /// resumes from the bytes received, an upload or a manifest is sent again.
    #[arg(long, global = true, default_value_t = crate::http::DEFAULT_RETRIES, value_name = "N", help_heading = NET)]
    pub retries: u32,
    /// Parallel jobs: downloads (and, in build and plan, nodes written at a time; in verify,
    /// hashing threads) [default: 4; verify: the number of CPUs].
    #[arg(long, short, global = true, value_name = "N", help_heading = NET)]
    pub jobs: Option<usize>,
}

/// The heading of the network options in `--help`.
const NET: &str = "Network options";

impl NetArgs {
    /// `-j`, or 4.
    pub fn jobs(&self) -> usize {
        self.jobs.unwrap_or(4).max(1)
    }

    /// The downloads' configuration: mirrors (and NODEFORGE_MIRROR), offline, timeouts.
    pub fn config(&self, quiet: bool) -> Result<FetchConfig, Error> {
        let mut mirrors = Vec::new();
        for m in &self.mirror {
            mirrors.push(Mirror::parse(m).map_err(Error::Usage)?);
        }
        if let Ok(env) = std::env::var("NODEFORGE_MIRROR") {
            mirrors.extend(
                Mirror::parse_list(&env)
                    .map_err(|e| Error::Usage(format!("NODEFORGE_MIRROR: {e}")))?,
            );
        }
        let mirrors: Vec<Mirror> = mirrors
            .into_iter()
            .map(|m| m.with_insecure(&self.insecure_registry))
            .collect();
        if self.offline && !quiet {
            for m in mirrors
                .iter()
                .filter(|m| matches!(m, Mirror::Http(_) | Mirror::Oci { .. }))
            {
                eprintln!("note: --offline: mirror {m} is skipped (offline, only file:// mirrors are read)");
            }
        }
        Ok(FetchConfig {
            mirrors,
            offline: self.offline,
            mirrors_only: self.mirrors_only,
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            read_timeout: Duration::from_secs(self.timeout.unwrap_or(30).max(1)),
            retries: self.retries,
            trust_mirror_checksums: self.trust_mirror_checksums,
        })
    }

    /// A registry client's options (push, pull, login, tags, `mirror push`).
    pub fn options(&self, quiet: bool) -> ClientOptions {
        ClientOptions {
            insecure: self.insecure_registry.clone(),
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            read_timeout: Duration::from_secs(self.timeout.unwrap_or(60).max(1)),
            retries: self.retries,
            notes: if quiet {
                Notes::default()
            } else {
                Notes::new(|m| eprintln!("note: {m}"))
            },
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
