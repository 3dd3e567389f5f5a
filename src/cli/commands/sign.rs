//! `nodeforge sign`: sign images with an Ed25519 key.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::super::print_json;
use crate::cli::Ctx;
use crate::ops::{self, Error};

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Images to sign: NODE (its current image), NODE@GEN or an image id (prefix)
    /// [default: every node's current image].
    images: Vec<String>,
    /// The private key (PKCS#8 PEM, from `nodeforge key generate`).
    #[arg(long, value_name = "KEY", required_unless_present = "x509_cert")]
    key: Option<PathBuf>,
    #[command(flatten)]
    x509: crate::cli::args::X509Args,
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
