//! The command line: clap arguments turned into options structs, one `ops` call per command, and
//! the report printed for humans (stdout for data, stderr for errors and hints) or as `--json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

/// Print a line of data to stdout. A closed pipe (`nodeforge show … | head`) is not an error
/// worth a panic: the rest of the output is simply dropped.
/// A line of human output on stdout, its control characters but newlines and tabs escaped
/// (`term::escape_lines`): record fields, tags and registry texts cannot drive the terminal.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stdout().lock(), "{}", $crate::term::escape_lines(&line));
    }};
}
// After the macro, so that every command can use it.
mod args;
mod commands;
mod hints;
mod progress;
mod report;
use crate::ops::{self, Error};
use commands::{
    build, components, demo_mirror, diff, fetch, flatten, gc, list, lock, mirror, plan, rollback,
    secrets, show, verify,
};
use commands::{completions, init, repair};
use commands::{export, import, login, pull, push, tags};
use commands::{key, provenance, sbom, sign};

#[derive(Debug, Parser)]
#[command(
    name = "nodeforge",
    version,
    about = "Reproducible, content-addressed node images for self-hosted Kubernetes"
)]
struct Cli {
    /// The cluster manifest [default: manifests/kubenet.toml of the project, found from here
    /// upwards as cargo finds Cargo.toml]
    #[arg(
        help_heading = "Common options",
        long,
        global = true,
        env = "NODEFORGE_MANIFEST",
        value_name = "PATH"
    )]
    manifest: Option<PathBuf>,
    /// The lockfile [default: lockfiles/<manifest name>.lock beside the manifest's directory]
    #[arg(
        help_heading = "Common options",
        long,
        global = true,
        env = "NODEFORGE_LOCKFILE",
        value_name = "PATH"
    )]
    lockfile: Option<PathBuf>,
    /// Output directory: the store and the images live here [default: out, in the project]
    #[arg(
        help_heading = "Common options",
        long,
        global = true,
        env = "NODEFORGE_OUT",
        value_name = "DIR"
    )]
    out: Option<PathBuf>,
    /// Print the report (or the error) as JSON on stdout instead of text.
    #[arg(help_heading = "Common options", long, global = true)]
    json: bool,
    /// Take templates from a tree outside the manifest's directory (`[image] templates` through
    /// a symlink); refused otherwise, so that nobody else's files go into an image.
    #[arg(help_heading = "Common options", long, global = true)]
    allow_outside_templates: bool,
    /// Print less: no progress bars and no `note:` lines (errors and warnings stay).
    #[arg(
        help_heading = "Common options",
        short,
        long,
        global = true,
        conflicts_with = "verbose"
    )]
    quiet: bool,
    /// Print more: each error's causes (`caused by:` lines).
    #[arg(help_heading = "Common options", short, long, global = true)]
    verbose: bool,
    #[command(flatten)]
    net: args::NetArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a project: the seed's cluster manifest and its templates in a new or empty
    /// directory, as `cargo new` does.
    Init(init::InitArgs),
    /// Pin every artifact of the manifest to its URL and upstream's published sha256.
    #[command(after_help = LOCK_EXAMPLES)]
    Lock(lock::LockArgs),
    /// What a build would change, node by node (image ids, versions), in rollout order: the
    /// control plane first, then canary groups, groups, workers. Writes nothing.
    Plan(plan::PlanArgs),
    /// Download every locked artifact the store lacks, verified against the lockfile.
    #[command(after_help = FETCH_EXAMPLES)]
    Fetch(fetch::FetchArgs),
    /// Build one immutable, layered image per node (fetching what the store lacks): a shared
    /// payload layer for /usr and /opt, and the node's config layer for /etc.
    #[command(after_help = BUILD_EXAMPLES)]
    Build(build::BuildArgs),
    /// Show an image's layers and entries and where each came from (a bill of materials).
    #[command(after_help = SHOW_EXAMPLES)]
    Show(show::ShowArgs),
    /// Write a whole node image as one file: a .tar.zst, or one EROFS file with its dm-verity
    /// tree beside it (FILE.verity), for installers, containers and setups without layers.
    Flatten(flatten::FlattenArgs),
    /// Show each node's generations, the current one marked.
    List(list::ListArgs),
    /// Switch a node (or --all) to its previous generation, or --to any image it ever had.
    #[command(after_help = ROLLBACK_EXAMPLES)]
    Rollback(rollback::RollbackArgs),
    /// Compare two images: files added, removed, changed (with diffs), versions moved.
    /// Each side is an image id (prefix), NODE (its current image) or NODE@GENERATION.
    Diff(diff::DiffArgs),
    /// Remove generations, images, layers and store objects that nothing needs.
    Gc(gc::GcArgs),
    /// For CI: re-check the lockfile, every store object, every image and layer; --rebuild
    /// compares rebuilds.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(verify::VerifyArgs),
    /// Write damaged layers and images of the output directory again, from the store and the
    /// records every generation keeps, and say what was fixed (verify's failures point here).
    Repair(repair::RepairArgs),
    /// Mirrors for air-gapped sites.
    Mirror(mirror::MirrorArgs),
    /// Show every component with its version and URLs for each architecture.
    Components(components::ComponentsArgs),
    /// Write stand-in artifacts (same names and shapes as upstream's) as a mirror, for demos and tests.
    DemoMirror(demo_mirror::DemoMirrorArgs),
    // OCI registries.
    /// Push each node's current image to an OCI registry (blobs it has are not sent again).
    #[command(after_help = PUSH_EXAMPLES)]
    Push(push::PushArgs),
    /// Pull a node image from an OCI registry, verify it and make it the node's current generation.
    #[command(after_help = PULL_EXAMPLES)]
    Pull(pull::PullArgs),
    /// List the node images a repository holds: each one's node, generations, tags and whether
    /// a trusted key signed it.
    Tags(tags::TagsArgs),
    /// Write each node's current image as an OCI image layout (--oci-layout DIR), for sites
    /// without a registry.
    Export(export::ExportArgs),
    /// Import node images from an OCI image layout, verified as `pull` verifies them.
    Import(import::ImportArgs),
    /// Check a user name and password against a registry and keep them where push, pull and
    /// oci:// mirrors find them ($REGISTRY_AUTH_FILE, else docker's config.json).
    #[command(after_help = LOGIN_EXAMPLES)]
    Login(login::LoginArgs),
    /// Remove a registry's login from the file `login` writes.
    Logout(login::LogoutArgs),
    // Supply chain (issue 15).
    /// Signing keys: `key generate PATH` writes a new Ed25519 key pair.
    Key(key::KeyArgs),
    /// Sign images (every node's current one by default) with an Ed25519 key: a DSSE envelope
    /// over an in-toto statement of the image id, its layers' root hashes and its SBOM.
    #[command(after_help = SIGN_EXAMPLES)]
    Sign(sign::SignArgs),
    /// Print an image's SBOM: SPDX 2.3 or CycloneDX 1.5 JSON.
    Sbom(sbom::SbomArgs),
    /// Print an image's SLSA Provenance v1 (an in-toto statement; `sign` writes it signed).
    Provenance(provenance::ProvenanceArgs),
    // Each node's secrets (issue 23).
    /// Each node's secret files (the manifest's [[secrets]]): `check` them against the manifest
    /// before boot, or write a cloud-init `user-data` that delivers them.
    #[command(after_help = SECRETS_EXAMPLES)]
    Secrets(secrets::SecretsArgs),
    // The command line itself.
    /// Print a shell's completion script: `nodeforge completions bash > ~/.local/share/bash-completion/completions/nodeforge`.
    Completions(completions::CompletionsArgs),
    /// Print the man page (nodeforge.1), or write every command's page with --dir DIR.
    Man(completions::ManArgs),
}

const SECRETS_EXAMPLES: &str = "\
Examples:
  nodeforge secrets check --secrets ~/kubenet-secrets              every node's files
  nodeforge secrets check --node worker1 --secrets ~/kubenet-secrets --expiry-margin 60d
  nodeforge show worker1 --boot --secrets ~/kubenet-secrets        QEMU -fw_cfg / libvirt entries
  nodeforge secrets user-data worker1 --secrets ~/kubenet-secrets -o worker1.user-data";

const PUSH_EXAMPLES: &str = "\
Examples:
  nodeforge push registry.example/fleet/kubenet                 every node's current image
  nodeforge push registry.example/fleet/kubenet --node worker1
  nodeforge push 127.0.0.1:5000/kubenet --insecure-registry 127.0.0.1:5000";

const PULL_EXAMPLES: &str = "\
Examples:
  nodeforge --out /var/lib/nodeforge pull registry.example/fleet/kubenet:worker1
  nodeforge pull registry.example/fleet/kubenet:worker1-gen3    a generation
  nodeforge pull registry.example/fleet/kubenet@sha256:4f0c…    exactly one manifest
  nodeforge rollback worker1                                    later, offline";

const SIGN_EXAMPLES: &str = "\
Examples:
  nodeforge key generate ~/.config/nodeforge/signing.key
  nodeforge sign --key ~/.config/nodeforge/signing.key          every node's current image
  nodeforge build --sign ~/.config/nodeforge/signing.key        build and sign
  nodeforge verify --key ~/.config/nodeforge/signing.key.pub    CI: every image must be signed";

/// `--help` examples of the main commands.
const LOCK_EXAMPLES: &str = "\
Examples:
  nodeforge lock                            resolve what changed in the manifest, keep the rest
  nodeforge lock --update containerd        re-resolve one component
  nodeforge lock --check                    CI: fail if the lockfile is missing, edited or stale
  nodeforge lock --offline --mirrors-only --trust-mirror-checksums --mirror file://lockfiles/upstream-checksums --allow-unresolved";

const FETCH_EXAMPLES: &str = "\
Examples:
  nodeforge fetch                           download what the store lacks
  nodeforge fetch --mirror https://mirror.example/nodeforge -j 8
  nodeforge fetch --offline --mirror file:///srv/mirror   air-gapped: a mirror export, no network";

const BUILD_EXAMPLES: &str = "\
Examples:
  nodeforge build                           every node of manifests/kubenet.toml, into out/
  nodeforge build --node worker1 --node worker2
  nodeforge build --offline                 only what the store already holds
  nodeforge --manifest manifests/lab.toml --out out-lab build";

const SHOW_EXAMPLES: &str = "\
Examples:
  nodeforge show worker1                    worker1's current image: layers, entries, provenance
  nodeforge show worker1@2                  its generation 2
  nodeforge show 3fa9c2                     an image by id prefix
  nodeforge show worker1 --boot             the disks, kernel command line and QEMU command to boot it
  nodeforge show worker1 --boot --secrets ~/kubenet-secrets   and its secrets as systemd credentials
  nodeforge --json show worker1 | jq '.entries[].path'";

const ROLLBACK_EXAMPLES: &str = "\
Examples:
  nodeforge rollback worker1                worker1 back to its previous generation
  nodeforge rollback worker1 --to 3fa9c2    to any image it had (`nodeforge list` shows them)
  nodeforge rollback --all                  every node that has a previous generation
  nodeforge rollback --group canary         every node of group `canary` of the manifest
  nodeforge build                           later: forward again to what the inputs build";

const LOGIN_EXAMPLES: &str = "\
Examples:
  nodeforge login registry.example --username fleet --password-stdin < token.txt
  nodeforge logout registry.example";

const VERIFY_EXAMPLES: &str = "\
Examples:
  nodeforge verify                          lockfile, store objects, images and layers
  nodeforge verify --rebuild                also rebuild every current image and compare byte for byte
  nodeforge --json verify > verify.json     for CI";

/// What every command gets besides its own arguments.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub manifest: PathBuf,
    pub lockfile: PathBuf,
    pub out: PathBuf,
    /// `--json`: reports as JSON on stdout.
    pub json: bool,
    pub allow_outside_templates: bool,
    /// Where the library reports progress: decided once, from `json`, `-q` and stderr.
    pub progress: crate::progress::Reporting,
    /// `-q`: no progress bars, no `note:` lines.
    pub quiet: bool,
    /// `-v`: errors with their causes.
    pub verbose: bool,
    /// The network options (global: before or after the subcommand).
    pub net: args::NetArgs,
}

/// Parse the process's arguments, run the command, and turn the outcome into an exit code.
pub fn main() -> ExitCode {
    // The command tree is built once: for parsing, and for the interrupt message's name.
    let parsed = <Cli as clap::CommandFactory>::command()
        .try_get_matches()
        .and_then(|mut m| {
            let name = m.subcommand_name().unwrap_or_default().to_string();
            <Cli as clap::FromArgMatches>::from_arg_matches_mut(&mut m)
                .map_err(|e| e.format(&mut <Cli as clap::CommandFactory>::command()))
                .map(|cli| (cli, name))
        });
    let (cli, name) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let args: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let e = hints::with_hints(e, &<Cli as clap::CommandFactory>::command(), &args);
            if e.use_stderr() && hints::wants_json(&args) {
                // docs/json.md: with --json, a command-line mistake is an `error` object too.
                let _ = e.print();
                let (error, hints) = hints::clap_error_text(&e);
                print_json(
                    "error",
                    &serde_json::json!({
                        "error": error,
                        "hints": hints,
                        "errors": [{ "message": error, "hints": hints }],
                    }),
                );
                return ExitCode::from(USAGE_EXIT);
            }
            e.exit()
        }
    };
    on_interrupt(name);
    let (root, not_found) = match &cli.manifest {
        Some(_) => (PathBuf::new(), None),
        None => project_root(),
    };
    let manifest = cli.manifest.unwrap_or_else(|| root.join(DEFAULT_MANIFEST));
    let out_given = cli.out.is_some();
    let ctx = Ctx {
        lockfile: lockfile_for(cli.lockfile.as_deref(), &manifest),
        manifest,
        out: cli.out.unwrap_or_else(|| root.join("out")),
        json: cli.json,
        allow_outside_templates: cli.allow_outside_templates,
        progress: progress::reporting(cli.json || cli.quiet),
        quiet: cli.quiet,
        verbose: cli.verbose,
        net: cli.net,
    };
    let outcome = match not_found {
        // A host that pulls its images has no project: `verify --out DIR` checks what it holds,
        // `list --out DIR` lists it; without --out, both need the project's out/.
        Some(start)
            if (cli.command.needs_manifest() || matches!(cli.command, Command::List(_)))
                && !(matches!(cli.command, Command::Verify(_) | Command::List(_)) && out_given) =>
        {
            Err(Error::NoProject {
                start,
                manifest: PathBuf::from(DEFAULT_MANIFEST),
            })
        }
        _ => run(&ctx, cli.command),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            report_error(&e, ctx.json, ctx.verbose);
            // 1 for a problem with the inputs, 101 for a bug in nodeforge (as cargo).
            ExitCode::from(e.exit_code())
        }
    }
}

/// The exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
const INTERRUPTED_EXIT: i32 = 130;

/// On Ctrl-C, say which command stopped and what that leaves, then exit 130. Every write is
/// atomic (a temporary name, then a rename), so nothing half-written is in place; temporaries
/// are cleaned by the next run, and downloads resume from what arrived.
fn on_interrupt(name: String) {
    let _ = ctrlc::set_handler(move || {
        eprintln!(
            "\nnodeforge {name}: interrupted. Nothing half-written was put in place (what finished is kept, temporaries are cleaned by the next run); run it again to go on: downloads resume where they stopped"
        );
        std::process::exit(INTERRUPTED_EXIT);
    });
}

/// The exit code of a command-line mistake (clap's, as cargo's): the command did not run.
const USAGE_EXIT: u8 = 2;

/// The manifest when `--manifest` is not given, relative to the project's root.
const DEFAULT_MANIFEST: &str = "manifests/kubenet.toml";

/// The project's root, as a relative path (`""`, `..`, `../..`) from the current directory: the
/// nearest directory, from here upwards, holding [`DEFAULT_MANIFEST`]. When there is none:
/// `""` (paths stay relative to here) and the directory the search started from.
fn project_root() -> (PathBuf, Option<PathBuf>) {
    let Ok(cwd) = std::env::current_dir() else {
        return (PathBuf::new(), None);
    };
    let mut up = PathBuf::new();
    for dir in cwd.ancestors() {
        if dir.join(DEFAULT_MANIFEST).is_file() {
            return (up, None);
        }
        up.push("..");
    }
    (PathBuf::new(), Some(cwd))
}

impl Command {
    /// Commands that cannot do anything without the manifest (the others work on `out` alone).
    fn needs_manifest(&self) -> bool {
        matches!(
            self,
            Command::Lock(_)
                | Command::Fetch(_)
                | Command::Build(_)
                | Command::Plan(_)
                | Command::Verify(_)
                | Command::Components(_)
                | Command::Mirror(_)
                | Command::DemoMirror(_)
                | Command::Secrets(_)
        )
    }
}

/// One command: its arguments to its `exec`, which calls one `ops` function.
fn run(ctx: &Ctx, command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Lock(a) => lock::exec(ctx, a),
        Command::Fetch(a) => fetch::exec(ctx, a),
        Command::Plan(a) => plan::exec(ctx, a),
        Command::Build(a) => build::exec(ctx, a),
        Command::Show(a) => show::exec(ctx, a),
        Command::Flatten(a) => flatten::exec(ctx, a),
        Command::List(a) => list::exec(ctx, a),
        Command::Rollback(a) => rollback::exec(ctx, a),
        Command::Diff(a) => diff::exec(ctx, a),
        Command::Gc(a) => gc::exec(ctx, a),
        Command::Verify(a) => verify::exec(ctx, a),
        Command::Mirror(a) => mirror::exec(ctx, a),
        Command::Components(a) => components::exec(ctx, a),
        Command::DemoMirror(a) => demo_mirror::exec(ctx, a),
        Command::Push(a) => push::exec(ctx, a),
        Command::Pull(a) => pull::exec(ctx, a),
        Command::Tags(a) => tags::exec(ctx, a),
        Command::Export(a) => export::exec(ctx, a),
        Command::Import(a) => import::exec(ctx, a),
        Command::Login(a) => login::exec(ctx, a),
        Command::Logout(a) => login::exec_logout(ctx, a),
        Command::Key(a) => key::exec(ctx, a),
        Command::Sign(a) => sign::exec(ctx, a),
        Command::Sbom(a) => sbom::exec(ctx, a),
        Command::Provenance(a) => provenance::exec(ctx, a),
        Command::Secrets(a) => secrets::exec(ctx, a),
        Command::Init(a) => init::exec(ctx, a),
        Command::Repair(a) => repair::exec(ctx, a),
        Command::Completions(a) => completions::exec(ctx, a),
        Command::Man(a) => completions::exec_man(ctx, a),
    }
}

fn report_error(e: &Error, json: bool, verbose: bool) {
    let problems = e.problems();
    print_problems(&problems, e.snippet().as_deref());
    if verbose {
        for cause in causes(e) {
            eprintln!("caused by: {}", crate::term::escape_lines(&cause));
        }
    }
    if json {
        let hints: Vec<&String> = problems.iter().flat_map(|p| &p.hints).collect();
        print_json(
            "error",
            &serde_json::json!({ "error": e.to_string(), "hints": hints, "errors": problems }),
        );
    }
}

/// The texts of `e`'s causes (its `source()` chain), each once: a cause whose text the error's
/// own sentence (or an earlier cause) already holds says nothing new.
fn causes(e: &Error) -> Vec<String> {
    let mut said = vec![e.to_string()];
    let mut out = Vec::new();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !said.iter().any(|s| s.contains(&text)) {
            out.push(text.clone());
        }
        said.push(text);
        next = cause.source();
    }
    out
}

/// One `error:` line per problem, the caret snippet after the first, each followed by its
/// `hint:` lines (a hint already given is not repeated).
pub(crate) fn print_problems(problems: &[ops::Problem], snippet: Option<&str>) {
    let mut given: Vec<&str> = Vec::new();
    for (i, p) in problems.iter().enumerate() {
        eprintln!("error: {}", crate::term::escape_lines(&p.message));
        if i == 0 {
            if let Some(snippet) = snippet {
                eprintln!("{}", crate::term::escape_lines(snippet));
            }
        }
        for h in &p.hints {
            if !given.contains(&h.as_str()) {
                print_hint(h);
                given.push(h);
            }
        }
    }
}

/// A `hint:` line on stderr: every hint nodeforge prints goes through here.
pub(crate) fn print_hint(hint: &str) {
    eprintln!("hint: {}", crate::term::escape_lines(hint));
}

/// The version of the `--json` envelope (docs/json.md): bumped when a key is removed or changes
/// meaning, not when one is added.
pub(crate) const JSON_VERSION: u32 = 1;

/// Print `value` as the `--json` envelope: one object `{"kind": "<kind>", "version": 1, ...}`
/// whose other keys are `value`'s fields. A value that is not an object (a list) must be wrapped
/// by the caller in a named field first (see [`json_field`]).
#[allow(clippy::print_stdout)]
pub(crate) fn print_json<T: Serialize>(kind: &str, value: &T) {
    let fields = match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(m)) => m,
        Ok(other) => {
            // A bug in a command, not an input problem: still one object on stdout.
            let mut m = serde_json::Map::new();
            m.insert("value".to_string(), other);
            m
        }
        Err(e) => {
            eprintln!("error: cannot encode the report as JSON: {e}");
            return;
        }
    };
    let mut envelope = serde_json::Map::new();
    envelope.insert("kind".to_string(), kind.into());
    envelope.insert("version".to_string(), JSON_VERSION.into());
    for (k, v) in fields {
        if k != "kind" && k != "version" {
            envelope.insert(k, v);
        }
    }
    match serde_json::to_string_pretty(&serde_json::Value::Object(envelope)) {
        // Raw: serde escaped what JSON must, and an escape of ours would not be JSON.
        Ok(s) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout().lock(), "{s}");
        }
        Err(e) => eprintln!("error: cannot encode the report as JSON: {e}"),
    }
}

/// A list report as an object: `{"<name>": [...]}`, for [`print_json`].
pub(crate) fn json_field<T: Serialize>(name: &str, value: &T) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(
        name.to_string(),
        serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
    );
    serde_json::Value::Object(m)
}

pub(crate) fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

pub(crate) fn human_bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    if n >= 1 << 30 {
        format!("{:.1} GiB", f / f64::from(1u32 << 30))
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", f / f64::from(1u32 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", f / 1024.0)
    } else {
        format!("{n} B")
    }
}

fn lockfile_for(cli_lockfile: Option<&Path>, manifest: &Path) -> PathBuf {
    cli_lockfile.map_or_else(|| ops::default_lockfile(manifest), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example of `--help` is a command line nodeforge accepts.
    #[test]
    fn examples_parse() {
        for examples in [
            LOCK_EXAMPLES,
            FETCH_EXAMPLES,
            BUILD_EXAMPLES,
            SHOW_EXAMPLES,
            ROLLBACK_EXAMPLES,
            VERIFY_EXAMPLES,
            PUSH_EXAMPLES,
            PULL_EXAMPLES,
            SECRETS_EXAMPLES,
        ] {
            for line in examples.lines().skip(1) {
                let command = line.trim_start().split("  ").next().unwrap_or_default();
                let command = command.split(['|', '>']).next().unwrap_or_default();
                let args: Vec<&str> = command.split_whitespace().collect();
                assert!(
                    Cli::try_parse_from(&args).is_ok(),
                    "example does not parse: {line}"
                );
            }
        }
    }
}
