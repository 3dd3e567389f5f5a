//! Hints clap cannot give on its own, added to its command-line errors, and those errors as
//! the text of a `--json` error object.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// `err`, with a tip where a command was given a node name as a positional argument but takes
/// it as `--node NAME` (`nodeforge build worker1`).
pub fn with_hints(mut err: clap::Error, cmd: &clap::Command, args: &[String]) -> clap::Error {
    if err.kind() != ErrorKind::UnknownArgument {
        return err;
    }
    let Some(ContextValue::String(value)) = err.get(ContextKind::InvalidArg) else {
        return err;
    };
    if value.starts_with('-') {
        return err;
    }
    let value = value.clone();
    // The subcommand: the first argument that names one.
    let Some(sub) = args
        .iter()
        .skip(1)
        .find_map(|a| cmd.find_subcommand(a.as_str()))
    else {
        return err;
    };
    let takes_node = sub
        .get_arguments()
        .any(|a| a.get_long() == Some("node") && a.get_action().takes_values());
    if !takes_node {
        return err;
    }
    let tip = format!(
        "use --node {value}: `nodeforge {}` takes the node as an option",
        sub.get_name()
    );
    err.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![tip.into()]),
    );
    err
}

/// Whether the command line asks for `--json` (before a `--`), read from the raw arguments
/// because the mistake stopped clap from parsing them.
pub fn wants_json(args: &[String]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| a.as_str() != "--")
        .any(|a| a == "--json")
}

/// A clap error as one sentence (its `error:` line) and hints (its `tip:` lines, then where to
/// read the usage), as the `--json` error object holds them.
pub fn clap_error_text(err: &clap::Error) -> (String, Vec<String>) {
    let text = err.render().to_string();
    let mut lines = text.lines().map(str::trim);
    let error = lines
        .next()
        .map(|l| l.strip_prefix("error: ").unwrap_or(l).to_string())
        .unwrap_or_default();
    let mut hints: Vec<String> = lines
        .filter_map(|l| l.strip_prefix("tip: "))
        .map(str::to_string)
        .collect();
    if let Some(usage) = text.lines().find_map(|l| l.strip_prefix("Usage: ")) {
        hints.push(format!("usage: {usage}"));
    }
    hints.push("pass --help for every option".to_string());
    (error, hints)
}
