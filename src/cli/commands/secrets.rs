//! `nodeforge secrets check` and `secrets user-data`: each node's declared secret files, checked
//! against the manifest before boot, and a cloud-config that delivers them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::super::print_json;
use crate::cli::args::SecretsDirArgs;
use crate::cli::report::print_warnings;
use crate::cli::Ctx;
use crate::credentials::Severity;
use crate::ops::{self, Error};

#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Check every node's declared secret files (or --node N's): present, readable by their
    /// owner only, certificates signed by the CA and naming the node, keys matching their
    /// certificates, kubeconfigs naming a server and the CA; exit 1 on any error.
    Check {
        /// Check only this node (repeatable).
        #[arg(long = "node", value_name = "N")]
        nodes: Vec<String>,
        #[command(flatten)]
        secrets: SecretsDirArgs,
    },
    /// Write a NoCloud cloud-config (`#cloud-config` with write_files) that puts NODE's secrets
    /// at their paths with their modes and owners, for hosts without fw_cfg. It holds private
    /// keys: it is written with mode 0600, and printed to stdout without -o.
    UserData {
        /// The node whose secrets it carries.
        node: String,
        #[command(flatten)]
        secrets: SecretsDirArgs,
        /// Write it here (mode 0600) instead of stdout; never inside the output directory, the
        /// template tree or the secrets directory.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

pub fn exec(ctx: &Ctx, args: SecretsArgs) -> Result<ExitCode, Error> {
    match args.command {
        SecretsCommand::Check { nodes, secrets } => {
            let r = ops::secrets_check(&ops::SecretsCheckOptions {
                secrets: secrets.options(ctx)?,
                nodes,
            })?;
            let errors: Vec<ops::Problem> = r
                .problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .map(|p| ops::Problem {
                    message: p.line(),
                    hints: p.hint.iter().cloned().collect(),
                })
                .collect();
            super::super::print_problems(&errors, None);
            print_warnings(&r.problems);
            if ctx.json {
                print_json("secrets-check-report", &r);
            } else {
                let files: usize = r.nodes.iter().map(|n| n.files.len()).sum();
                say!(
                    "{}: {}, {} in {}: {} {}, {} {}",
                    if r.ok {
                        "secrets ok"
                    } else {
                        "secrets check FAILED"
                    },
                    crate::cli::report::counted(r.nodes.len(), "node"),
                    crate::cli::report::counted(files, "file"),
                    r.secrets.display(),
                    r.errors,
                    if r.errors == 1 { "error" } else { "errors" },
                    r.warnings,
                    if r.warnings == 1 {
                        "warning"
                    } else {
                        "warnings"
                    },
                );
            }
            Ok(if r.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        SecretsCommand::UserData {
            node,
            secrets,
            output,
        } => {
            if ctx.json && output.is_none() {
                return Err(Error::Usage(
                    "--json needs -o FILE: without it the cloud-config itself is printed".into(),
                ));
            }
            let r = ops::secrets_user_data(&ops::UserDataOptions {
                secrets: secrets.options(ctx)?,
                node,
                output,
            })?;
            print_warnings(&r.warnings);
            match (&r.content, &r.path) {
                (Some(text), _) => {
                    use std::io::Write as _;
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                }
                (None, Some(path)) if !ctx.json => say!(
                    "wrote {} (mode 0600): {} for node {} ({}); it holds private keys: delete it once the VM is provisioned",
                    path.display(),
                    crate::cli::report::counted(r.files.len(), "file"),
                    r.node,
                    r.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>().join(", ")
                ),
                _ => print_json("secrets-user-data-report", &r),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
