//! `nodeforge login` and `logout`: a registry's login in the auth file push, pull and OCI
//! mirrors read.

use std::process::ExitCode;

use clap::Args;

use super::super::print_json;
use crate::cli::Ctx;
use crate::oci::auth::{ENV_PASSWORD, ENV_USERNAME};
use crate::ops::{self, Error};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// HOST or HOST:PORT.
    #[arg(value_name = "REGISTRY")]
    registry: String,
    /// The user name [default: $NODEFORGE_REGISTRY_USERNAME].
    #[arg(long, short)]
    username: Option<String>,
    /// Read the password from stdin (its first line) [default: $NODEFORGE_REGISTRY_PASSWORD].
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// HOST or HOST:PORT.
    #[arg(value_name = "REGISTRY")]
    registry: String,
}

pub fn exec(ctx: &Ctx, args: LoginArgs) -> Result<ExitCode, Error> {
    let username = match args.username.or_else(|| std::env::var(ENV_USERNAME).ok()) {
        Some(u) => u,
        None => {
            return Err(Error::Usage(format!(
                "login needs a user name: pass --username NAME (or set {ENV_USERNAME})"
            )))
        }
    };
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Error::Usage(format!("cannot read the password from stdin: {e}")))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match std::env::var(ENV_PASSWORD) {
            Ok(p) => p,
            Err(_) => {
                return Err(Error::Usage(format!(
                    "login needs a password: pass it on stdin with --password-stdin (or set {ENV_PASSWORD})"
                )))
            }
        }
    };
    let r = ops::login(&ops::LoginOptions {
        registry: args.registry,
        username,
        password,
        client: ctx.net.options(ctx.quiet),
    })?;
    if ctx.json {
        print_json("login-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    if r.verified {
        say!(
            "logged in to {} as {} (saved in {})",
            r.registry,
            r.username,
            r.file.display()
        );
    } else {
        say!(
            "{} asks for no login: the credentials for {} are saved in {} unchecked",
            r.registry,
            r.username,
            r.file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn exec_logout(ctx: &Ctx, args: LogoutArgs) -> Result<ExitCode, Error> {
    let r = ops::logout(&args.registry)?;
    if ctx.json {
        print_json("logout-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    if r.removed {
        say!(
            "logged out of {} (removed from {})",
            r.registry,
            r.file.display()
        );
    } else {
        say!("not logged in to {} in {}", r.registry, r.file.display());
    }
    Ok(ExitCode::SUCCESS)
}
