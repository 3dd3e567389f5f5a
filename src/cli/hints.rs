//! Hints clap cannot give on its own, added to its command-line errors.

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
