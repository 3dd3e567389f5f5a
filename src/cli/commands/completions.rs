//! `nodeforge completions SHELL` and `nodeforge man`: shell completions and man pages, both
//! generated from the command line's own definition (clap_complete, clap_mangen), so they never
//! fall behind it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory};
use serde::Serialize;

use super::super::print_json;
use crate::cli::{Cli, Ctx};
use crate::fsutil;
use crate::ops::Error;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write every page (nodeforge.1 and one nodeforge-COMMAND.1 per command) into DIR instead
    /// of printing nodeforge.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// The pages `man --dir` wrote.
#[derive(Debug, Serialize)]
struct ManReport {
    dir: PathBuf,
    pages: Vec<String>,
}

/// The completion script on stdout (`nodeforge completions bash > /etc/bash_completion.d/nodeforge`).
pub fn exec(ctx: &Ctx, args: CompletionsArgs) -> Result<ExitCode, Error> {
    if ctx.json {
        return Err(Error::Usage(
            "completions prints a shell script, not a report: run it without --json".into(),
        ));
    }
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "nodeforge", &mut out);
    write_stdout(&out);
    Ok(ExitCode::SUCCESS)
}

/// nodeforge.1 on stdout, or every page into `--dir`.
pub fn exec_man(ctx: &Ctx, args: ManArgs) -> Result<ExitCode, Error> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = args.dir else {
        if ctx.json {
            return Err(Error::Usage(
                "man prints a page, not a report: pass --dir DIR for a man-report, or run it without --json".into(),
            ));
        }
        write_stdout(&render(&cmd)?);
        return Ok(ExitCode::SUCCESS);
    };
    fsutil::create_dir_all(&dir)?;
    let mut pages = Vec::new();
    let mut todo = vec![cmd];
    while let Some(cmd) = todo.pop() {
        todo.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        let name = clap_mangen::Man::new(cmd.clone()).get_filename();
        fsutil::write_atomic(&dir.join(&name), &render(&cmd)?, 0o644)?;
        pages.push(name);
    }
    pages.sort();
    let r = ManReport { dir, pages };
    if ctx.json {
        print_json("man-report", &r);
    } else {
        say!(
            "wrote {} man pages to {} (nodeforge.1 and one per command): man -l {}",
            r.pages.len(),
            r.dir.display(),
            r.dir.join("nodeforge.1").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One page's roff text.
fn render(cmd: &clap::Command) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .source(concat!("nodeforge ", env!("CARGO_PKG_VERSION")))
        .render(&mut out)
        .map_err(|e| Error::Internal(format!("cannot render the man page: {e}")))?;
    Ok(out)
}

/// Raw bytes on stdout (a closed pipe is no error worth a panic).
fn write_stdout(bytes: &[u8]) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(bytes);
}
