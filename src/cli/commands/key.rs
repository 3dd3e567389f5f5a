//! `nodeforge key generate PATH`: a new Ed25519 signing key pair.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::super::print_json;
use crate::cli::Ctx;
use crate::ops::{self, Error};

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Write a new Ed25519 key: PATH (PKCS#8 PEM, mode 0600) and PATH.pub (SPKI PEM), as
    /// `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` would. Refused inside the
    /// output directory or the template tree, and over an existing file.
    Generate {
        /// Where to write the private key (the public key goes to PATH.pub).
        path: PathBuf,
    },
}

pub fn exec(ctx: &Ctx, args: KeyArgs) -> Result<ExitCode, Error> {
    let KeyCommand::Generate { path } = args.command;
    let r = ops::key_generate(&ops::KeyGenOptions {
        path,
        manifest: ctx.manifest.clone(),
        out: ctx.out.clone(),
    })?;
    if ctx.json {
        print_json("key-report", &r);
    } else {
        say!(
            "key {}: private {} (keep it secret), public {} (give it to verifiers)",
            r.keyid,
            r.private_key.display(),
            r.public_key.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
