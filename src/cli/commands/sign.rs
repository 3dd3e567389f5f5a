//! `nodeforge sign`: sign images with an Ed25519 key; and the trusted-key options that
//! `verify`, `rollback` and `show` share.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::super::print_json;
use crate::cli::Ctx;
use crate::ops::{self, Error};
use crate::trust::TrustedKeys;

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Images to sign: NODE (its current image), NODE@GEN or an image id (prefix)
    /// [default: every node's current image].
    images: Vec<String>,
    /// The private key (PKCS#8 PEM, from `nodeforge key generate`).
    #[arg(long, value_name = "KEY", required_unless_present = "x509_cert")]
    key: Option<PathBuf>,
    #[command(flatten)]
    x509: X509Args,
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

pub fn exec(ctx: &Ctx, args: SignArgs) -> Result<ExitCode, Error> {
    let r = ops::sign(&ops::SignOptions {
        manifest: ctx.manifest.clone(),
        out: ctx.out.clone(),
        images: args.images,
        key: args.key,
        x509: args.x509.pair(),
        lockfile: ctx.lockfile.clone(),
    })?;
    if ctx.json {
        print_json("sign-report", &r);
    } else {
        print(&r);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print(r: &ops::SignReport) {
    for s in &r.signed {
        if let (Some(keyid), Some(sig)) = (&r.keyid, &s.signature) {
            say!(
                "signed image {} ({}) with key {}: {}",
                s.image_id,
                s.node,
                super::super::short(keyid),
                sig.display()
            );
        }
        for p in &s.roothash_signatures {
            say!(
                "signed a root hash of image {} ({}) for systemd: {}",
                s.image_id,
                s.node,
                p.display()
            );
        }
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

impl TrustArgs {
    pub fn load(&self) -> Result<TrustedKeys, Error> {
        Ok(TrustedKeys::load(&self.keys, self.trusted_keys.as_slice())?)
    }
}
