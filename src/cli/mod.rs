//! The command line: clap arguments turned into options structs, one `ops` call per command, and
//! the report printed for humans (stdout for data, stderr for errors and hints) or as `--json`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::fetch::{FetchConfig, Mirror};

/// Print a line of data to stdout. A closed pipe (`nodeforge show … | head`) is not an error
/// worth a panic: the rest of the output is simply dropped.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
use crate::manifest::Manifest;
use crate::ops::{self, ArtifactStatus, EntryStatus, Error};

#[derive(Debug, Parser)]
#[command(
    name = "nodeforge",
    version,
    about = "Reproducible, content-addressed node images for self-hosted Kubernetes"
)]
struct Cli {
    /// The cluster manifest.
    #[arg(
        long,
        global = true,
        env = "NODEFORGE_MANIFEST",
        default_value = "manifests/kubenet.toml"
    )]
    manifest: PathBuf,
    /// The lockfile [default: lockfiles/<manifest name>.lock]
    #[arg(long, global = true, env = "NODEFORGE_LOCKFILE")]
    lockfile: Option<PathBuf>,
    /// Output directory: the store and the images live here.
    #[arg(long, global = true, env = "NODEFORGE_OUT", default_value = "out")]
    out: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pin every artifact of the manifest to its URL and upstream's published sha256.
    Lock {
        /// Change nothing and use no network: fail if the lockfile is missing, edited or stale.
        #[arg(long)]
        check: bool,
        /// Re-resolve this component even if its entry is unchanged (repeatable).
        #[arg(long, value_name = "COMPONENT")]
        update: Vec<String>,
        /// Record artifacts whose published sha256 cannot be read as `unresolved` instead of failing.
        #[arg(long)]
        allow_unresolved: bool,
        #[command(flatten)]
        net: NetArgs,
        #[arg(long)]
        json: bool,
    },
    /// Download every locked artifact the store lacks, verified against the lockfile.
    Fetch {
        #[command(flatten)]
        net: NetArgs,
        #[arg(long)]
        json: bool,
    },
    /// Build one immutable, layered image per node (fetching what the store lacks): a shared
    /// payload layer for /usr and /opt, and the node's config layer for /etc.
    Build {
        /// Build only this node (repeatable).
        #[arg(long, value_name = "NAME")]
        node: Vec<String>,
        #[command(flatten)]
        net: NetArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show an image's entries and where each came from (a bill of materials).
    Show {
        /// An image id (an unambiguous prefix is enough), a node (its current image) or NODE@GEN.
        id: String,
        /// Print what a VM host attaches instead: each layer's disk, its root hash, the kernel
        /// command line and a QEMU command line.
        #[arg(long)]
        boot: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write a whole node image as one file: a .tar.zst, or one EROFS file with its dm-verity
    /// tree beside it (FILE.verity), for installers, containers and setups without layers.
    Flatten {
        /// An image id (prefix), a node (its current image) or NODE@GEN.
        id: String,
        /// Where to write it.
        #[arg(long, short)]
        output: PathBuf,
        /// tar.zst or erofs [default: from the output's name, else tar.zst].
        #[arg(long, value_parser = ["tar.zst", "erofs"])]
        format: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show each node's generations, the current one marked.
    List {
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Switch a node (or --all) to its previous generation, or --to any image it ever had.
    Rollback {
        /// The node to roll back.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        node: Option<String>,
        /// An image id, or an unambiguous prefix of one, that the node had.
        #[arg(long, value_name = "ID")]
        to: Option<String>,
        /// Roll every node back to its previous generation.
        #[arg(long, conflicts_with = "to")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Compare two images: files added, removed, changed (with diffs), versions moved.
    /// Each side is an image id (prefix), NODE (its current image) or NODE@GENERATION.
    Diff {
        a: String,
        b: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove generations, images and store objects that nothing needs.
    Gc {
        /// Keep this many newest generations of each node (the current one always).
        #[arg(long, value_name = "N")]
        keep_generations: Option<u32>,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// For CI: re-check the lockfile, every store object, every image; --rebuild compares rebuilds.
    Verify {
        /// Also rebuild every current image elsewhere and compare byte for byte.
        #[arg(long)]
        rebuild: bool,
        /// Parallel hashing threads [default: the number of CPUs].
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Read store objects instead of memory-mapping them (slower; for stores that another
        /// process may truncate during the run, where a mapping would end verify with SIGBUS).
        #[arg(long)]
        no_mmap: bool,
        #[arg(long)]
        json: bool,
    },
    /// Mirrors for air-gapped sites.
    Mirror {
        #[command(subcommand)]
        command: MirrorCommand,
    },
    /// Show every component with its version and URLs for each architecture.
    Components {
        #[arg(long)]
        json: bool,
    },
    /// Write stand-in artifacts (same names and shapes as upstream's) as a mirror, for demos and tests.
    DemoMirror {
        dir: PathBuf,
        /// Size in bytes of each stand-in executable.
        #[arg(long, default_value_t = 65536)]
        size: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum MirrorCommand {
    /// Copy the store's locked artifacts (and checksum files) to DIR in mirror layout.
    Export {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct NetArgs {
    /// Try URL/<host>/<path> before upstream (repeatable; http(s):// or file://DIR). Also NODEFORGE_MIRROR.
    #[arg(long, value_name = "URL")]
    mirror: Vec<String>,
    /// Never use the network: only the store and file:// mirrors.
    #[arg(long, env = "NODEFORGE_OFFLINE")]
    offline: bool,
    /// Use only the mirrors, never the upstream URLs.
    #[arg(long)]
    mirrors_only: bool,
    /// Seconds to wait for the next bytes of a response.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout: u64,
    /// Seconds to wait for a connection.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    connect_timeout: u64,
    /// Retries per source on transient errors (5xx, resets, truncated bodies).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Parallel downloads.
    #[arg(long, short, default_value_t = 4)]
    jobs: usize,
}

impl NetArgs {
    fn config(&self) -> Result<FetchConfig, Error> {
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
        Ok(FetchConfig {
            mirrors,
            offline: self.offline,
            mirrors_only: self.mirrors_only,
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            read_timeout: Duration::from_secs(self.timeout.max(1)),
            retries: self.retries,
        })
    }
}

/// Parse the process's arguments, run the command, and turn the outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = matches!(
        &cli.command,
        Command::Lock { json: true, .. }
            | Command::Fetch { json: true, .. }
            | Command::Build { json: true, .. }
            | Command::Show { json: true, .. }
            | Command::Flatten { json: true, .. }
            | Command::List { json: true, .. }
            | Command::Rollback { json: true, .. }
            | Command::Diff { json: true, .. }
            | Command::Gc { json: true, .. }
            | Command::Verify { json: true, .. }
            | Command::Components { json: true }
            | Command::DemoMirror { json: true, .. }
            | Command::Mirror {
                command: MirrorCommand::Export { json: true, .. }
            }
    );
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            report_error(&e, json);
            ExitCode::FAILURE
        }
    }
}

fn report_error(e: &Error, json: bool) {
    eprintln!("error: {e}");
    if let Some(snippet) = e.snippet() {
        eprintln!("{snippet}");
    }
    for h in e.hints() {
        eprintln!("hint: {h}");
    }
    if json {
        print_json(&serde_json::json!({ "error": e.to_string(), "hints": e.hints() }));
    }
}

#[allow(clippy::print_stdout)]
fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => say!("{s}"),
        Err(e) => eprintln!("error: cannot encode the report as JSON: {e}"),
    }
}

fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

fn human_bytes(n: u64) -> String {
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

#[allow(clippy::print_stdout, clippy::too_many_lines)]
fn run(cli: Cli) -> Result<ExitCode, Error> {
    let lockfile = lockfile_for(cli.lockfile.as_deref(), &cli.manifest);
    match cli.command {
        Command::Lock {
            check: true, json, ..
        } => {
            let c = ops::check_lock(&cli.manifest, &lockfile)?;
            if json {
                print_json(&c);
            } else {
                say!(
                    "{} is fresh: {} artifacts, lock-id {}",
                    c.lockfile.display(),
                    c.artifacts,
                    c.lock_id
                );
            }
            for u in &c.unresolved {
                eprintln!("warning: {u} is unresolved: `nodeforge fetch` will refuse it until `nodeforge lock --update` resolves it");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lock {
            check: false,
            update,
            allow_unresolved,
            net,
            json,
        } => {
            let opts = ops::LockOptions {
                manifest: cli.manifest.clone(),
                lockfile,
                update,
                allow_unresolved,
                fetch: net.config()?,
                jobs: net.jobs,
            };
            let r = ops::lock(&opts)?;
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                print_json(&r);
                return Ok(ExitCode::SUCCESS);
            }
            for e in &r.entries {
                let what = format!("{} {} ({})", e.component, e.version, e.arch);
                let sha = e.sha256.as_deref().map(short).unwrap_or("-");
                match (e.status, &e.previous_version) {
                    (EntryStatus::Updated, Some(prev)) => {
                        say!(
                            "{:>10} {} {prev} → {} ({}) {sha}",
                            "updated",
                            e.component,
                            e.version,
                            e.arch
                        );
                    }
                    (status, _) => {
                        let s = serde_json::to_value(status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default();
                        say!("{s:>10} {what} {sha}");
                    }
                }
            }
            if r.written {
                say!("wrote {} (lock-id {})", r.lockfile.display(), r.lock_id);
            } else {
                say!(
                    "{} is up to date (lock-id {})",
                    r.lockfile.display(),
                    r.lock_id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Fetch { net, json } => {
            let opts = ops::FetchOptions {
                manifest: cli.manifest.clone(),
                lockfile,
                out: cli.out.clone(),
                fetch: net.config()?,
                jobs: net.jobs,
                progress: !json && std::io::stderr().is_terminal(),
            };
            let r = ops::fetch(&opts)?;
            let failures = r.failures();
            for f in &failures {
                eprintln!("error: {}", f.error.as_deref().unwrap_or("failed"));
            }
            if json {
                print_json(&r);
            } else {
                for a in r
                    .artifacts
                    .iter()
                    .filter(|a| a.status == ArtifactStatus::Fetched)
                {
                    say!(
                        "{:>10} {} {} ({}) {} from {}",
                        "fetched",
                        a.component,
                        a.version,
                        a.arch,
                        human_bytes(a.size.unwrap_or(0)),
                        a.source.as_deref().unwrap_or("?")
                    );
                }
                say!(
                    "{} fetched ({}), {} already in the store, {} failed, in {:.2}s",
                    r.count(ArtifactStatus::Fetched),
                    human_bytes(r.fetched_bytes),
                    r.count(ArtifactStatus::Present),
                    failures.len(),
                    // Milliseconds to seconds, for display only.
                    r.elapsed_ms as f64 / 1000.0
                );
            }
            if !failures.is_empty() && opts.fetch.offline {
                eprintln!("hint: offline: fetch these where the network is reachable, or pass --mirror file://DIR holding them");
            }
            Ok(if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Build { node, net, json } => {
            let opts = ops::BuildOptions {
                manifest: cli.manifest.clone(),
                lockfile,
                out: cli.out.clone(),
                nodes: node,
                fetch: net.config()?,
                jobs: net.jobs,
                progress: !json && std::io::stderr().is_terminal(),
            };
            let r = ops::build(&opts)?;
            if json {
                print_json(&r);
                return Ok(ExitCode::SUCCESS);
            }
            for n in &r.nodes {
                let status = serde_json::to_value(n.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let layers: Vec<String> = n
                    .layers
                    .iter()
                    .map(|l| {
                        format!(
                            "{} {} ({}{})",
                            l.role,
                            short(&l.id),
                            human_bytes(l.bytes),
                            if l.written { ", new" } else { "" }
                        )
                    })
                    .collect();
                say!(
                    "{status:>10} {:<10} {} {} entries: {}",
                    n.node,
                    n.image_id,
                    n.entries,
                    layers.join(", ")
                );
            }
            if r.all_unchanged() {
                say!(
                    "nothing to do: all {} node images are up to date ({:.2}s)",
                    r.nodes.len(),
                    r.elapsed_ms as f64 / 1000.0
                );
            } else {
                say!(
                    "built {} node images in {:.2}s; out/nodes/<node>/current points at each",
                    r.nodes.len(),
                    r.elapsed_ms as f64 / 1000.0
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show {
            id,
            boot: true,
            json,
        } => {
            let b = ops::boot_plan(&cli.out, &id)?;
            if json {
                print_json(&b);
                return Ok(ExitCode::SUCCESS);
            }
            say!("image {} (node {})", b.image_id, b.node);
            say!("attach read-only (virtio serial, file):");
            for d in &b.disks {
                say!("  {:<20} {}", d.serial, d.path.display());
            }
            say!("kernel command line:\n  {}", b.kernel_cmdline);
            say!(
                "QEMU (7.2+; VM_DISK is the VM's own disk, with /var; boot it with the kernel command line above):\n  {}",
                b.qemu
                    .first()
                    .into_iter()
                    .cloned()
                    .chain(b.qemu.get(1..).unwrap_or_default().chunks(2).map(|c| c.join(" ")))
                    .collect::<Vec<_>>()
                    .join(" \\\n    ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { id, json, .. } => {
            let m = ops::resolve_image(&cli.out, &id)?;
            if json {
                print_json(&m);
                return Ok(ExitCode::SUCCESS);
            }
            say!(
                "image {} (node {}, {}{})",
                m.id,
                m.node,
                m.arch,
                if m.layers.is_empty() {
                    ", whole-root format 1"
                } else {
                    ""
                }
            );
            for l in &m.layers {
                say!(
                    "{} layer {} {}: verity root hash {}",
                    l.role,
                    l.name,
                    l.id,
                    l.verity
                        .as_ref()
                        .map_or("(not written)", |v| v.root_hash.as_str())
                );
            }
            if let Some(v) = &m.verity {
                say!(
                    "verity root hash {} (salt {}, {} data blocks)",
                    v.root_hash,
                    v.salt,
                    v.data_blocks
                );
            }
            for e in &m.entries {
                let from = match m.provenance.get(&e.path) {
                    Some(crate::image::Provenance::Artifact {
                        component,
                        version,
                        url,
                        sha256,
                        member,
                        ..
                    }) => format!(
                        "{component} {version}{} <- {url} (sha256 {})",
                        member
                            .as_deref()
                            .map(|m| format!(" [{m}]"))
                            .unwrap_or_default(),
                        short(sha256)
                    ),
                    Some(crate::image::Provenance::Template { template }) => {
                        format!("template {template}")
                    }
                    Some(crate::image::Provenance::Enable { unit }) => {
                        format!("systemctl enable {unit}")
                    }
                    Some(crate::image::Provenance::Release { role }) => {
                        format!("{role} layer's extension-release")
                    }
                    Some(crate::image::Provenance::Directory) | None => String::new(),
                };
                let what = match e.kind {
                    crate::image::Kind::Dir => format!("{}/", e.path),
                    crate::image::Kind::Symlink => {
                        format!("{} -> {}", e.path, e.target.as_deref().unwrap_or(""))
                    }
                    crate::image::Kind::File => e.path.clone(),
                };
                let hash = e.blake3.map(|b| b.to_hex()).unwrap_or_default();
                say!(
                    "{:04o} {:>10} {:<12} {what}  {from}",
                    e.mode,
                    e.size,
                    short(&hash)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Flatten {
            id,
            output,
            format,
            json,
        } => {
            let format = match format.as_deref() {
                Some("erofs") => ops::FlatFormat::Erofs,
                Some(_) => ops::FlatFormat::TarZst,
                None if output
                    .extension()
                    .is_some_and(|e| e == "erofs" || e == "raw") =>
                {
                    ops::FlatFormat::Erofs
                }
                None => ops::FlatFormat::TarZst,
            };
            let r = ops::flatten(&cli.out, &id, format, &output)?;
            if json {
                print_json(&r);
                return Ok(ExitCode::SUCCESS);
            }
            say!(
                "wrote image {} (node {}) to {} ({})",
                r.image_id,
                r.node,
                r.path.display(),
                human_bytes(r.bytes)
            );
            if let (Some(v), Some(root)) = (&r.verity, &r.root_hash) {
                say!("its dm-verity tree: {} (root hash {root})", v.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List { node, json } => {
            let h = ops::list(&cli.out, node.as_deref())?;
            if json {
                print_json(&h);
                return Ok(ExitCode::SUCCESS);
            }
            for n in &h {
                say!("{}", n.node);
                for g in &n.generations {
                    let mark = if Some(g.number) == n.current {
                        "*"
                    } else {
                        " "
                    };
                    say!(
                        "  {mark} {:>3}  {}  lock {}  {}{}",
                        g.number,
                        g.image_id,
                        short(g.lock_id.trim_start_matches("blake3:")),
                        g.built_at,
                        if n.whole_root.contains(&g.number) {
                            "  (whole-root, format 1: cannot be switched to)"
                        } else {
                            ""
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback {
            node,
            to,
            all,
            json,
        } => {
            let nodes = if all {
                crate::generations::nodes(&cli.out)
            } else {
                node.into_iter().collect()
            };
            let r = ops::rollback(&cli.out, &nodes, to.as_deref())?;
            if json {
                print_json(&r);
                return Ok(ExitCode::SUCCESS);
            }
            for x in &r {
                let from = x.from.map_or_else(|| "-".to_string(), |f| f.to_string());
                say!(
                    "{}: generation {from} → {} (image {}){}",
                    x.node,
                    x.to,
                    x.image_id,
                    if x.rebuilt {
                        ", its files rebuilt from the store"
                    } else {
                        ""
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff { a, b, json } => {
            let d = ops::diff(&cli.out, &a, &b)?;
            if json {
                print_json(&d);
                return Ok(ExitCode::SUCCESS);
            }
            say!("--- {}\n+++ {}", d.a, d.b);
            for v in &d.versions {
                say!(
                    "version {}: {} → {}",
                    v.component,
                    v.from.as_deref().unwrap_or("(none)"),
                    v.to.as_deref().unwrap_or("(none)")
                );
            }
            for p in &d.added {
                say!("added   {p}");
            }
            for p in &d.removed {
                say!("removed {p}");
            }
            for c in &d.changed {
                say!(
                    "changed {}\n    old: {}\n    new: {}",
                    c.path,
                    c.old.as_deref().unwrap_or(""),
                    c.new.as_deref().unwrap_or("")
                );
                if let Some(diff) = &c.diff {
                    for line in diff.lines() {
                        say!("    {line}");
                    }
                }
            }
            if d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty() {
                say!("identical");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Gc {
            keep_generations,
            dry_run,
            json,
        } => {
            let lockfiles = lockfile
                .parent()
                .map_or_else(|| PathBuf::from("lockfiles"), Path::to_path_buf);
            let r = ops::gc(&ops::GcOptions {
                out: cli.out.clone(),
                lockfiles,
                keep_generations,
                dry_run,
            })?;
            if json {
                print_json(&r);
                return Ok(ExitCode::SUCCESS);
            }
            for g in &r.removed_generations {
                say!(
                    "{} generation {g}",
                    if dry_run { "would remove" } else { "removed" }
                );
            }
            for i in &r.removed_images {
                say!(
                    "{} image {i}",
                    if dry_run { "would remove" } else { "removed" }
                );
            }
            for l in &r.removed_layers {
                say!(
                    "{} layer {l}",
                    if dry_run { "would remove" } else { "removed" }
                );
            }
            say!(
                "{} {} generations, {} images, {} layers, {} store objects, {} other files: {}; kept {} generations, {} images, {} layers, {} objects",
                if dry_run { "would free" } else { "freed" },
                r.removed_generations.len(),
                r.removed_images.len(),
                r.removed_layers.len(),
                r.removed_objects,
                r.removed_other,
                human_bytes(r.freed_bytes),
                r.kept_generations,
                r.kept_images,
                r.kept_layers,
                r.kept_objects
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            rebuild,
            jobs,
            no_mmap,
            json,
        } => {
            let r = ops::verify(&ops::VerifyOptions {
                manifest: cli.manifest.clone(),
                lockfile,
                out: cli.out.clone(),
                rebuild,
                jobs: jobs.unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
                }),
                mmap: !no_mmap,
                progress: !json && std::io::stderr().is_terminal(),
            })?;
            for f in &r.failures {
                eprintln!("FAIL {f}");
            }
            for d in &r.drift {
                eprintln!("note: {d}");
            }
            if r.objects_checked == 0 && r.images_checked == 0 {
                eprintln!(
                    "note: {} holds no store objects and no images: only the lockfile was checked (run `nodeforge build` first)",
                    cli.out.display()
                );
            }
            if json {
                print_json(&r);
            } else {
                #[allow(clippy::cast_precision_loss)]
                let gbps = if r.elapsed_ms > 0 {
                    r.object_bytes as f64 / (r.elapsed_ms as f64 / 1000.0) / 1e9
                } else {
                    0.0
                };
                say!(
                    "{}: lockfile {}, {} store objects ({}), {} images, {} layers{} in {:.2}s ({gbps:.2} GB/s)",
                    if r.ok { "verified" } else { "verification FAILED" },
                    if r.lockfile_ok { "ok" } else { "FAILED" },
                    r.objects_checked,
                    human_bytes(r.object_bytes),
                    r.images_checked,
                    r.layers_checked,
                    if rebuild { format!(", {} rebuilt and compared ({} rendered again from the inputs)", r.images_rebuilt, r.images_from_inputs) } else { String::new() },
                    r.elapsed_ms as f64 / 1000.0
                );
            }
            Ok(if r.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Mirror {
            command: MirrorCommand::Export { dir, json },
        } => {
            let r = ops::export_mirror(&cli.manifest, &lockfile, &cli.out, &dir)?;
            if json {
                print_json(&r);
            } else {
                say!(
                    "exported {} files ({}) to {}",
                    r.files.len(),
                    human_bytes(r.bytes),
                    r.dir.display()
                );
                say!(
                    "use it with: nodeforge fetch --offline --mirror file://{}",
                    r.dir.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Components { json } => {
            let m = Manifest::load(&cli.manifest)?;
            let specs = m.artifacts();
            if json {
                print_json(&specs);
            } else {
                for s in &specs {
                    say!(
                        "{} {} ({})\n  url:          {}\n  checksum-url: {} [{}]",
                        s.component,
                        s.version,
                        s.arch,
                        s.url,
                        s.checksum_url,
                        s.checksum_name
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::DemoMirror { dir, size, json } => {
            let m = Manifest::load(&cli.manifest)?;
            let r = crate::standin::write_mirror(&m, &dir, size)?;
            if json {
                print_json(&r);
            } else {
                say!(
                    "wrote {} stand-in artifacts and {} checksum files to {}",
                    r.artifacts.len(),
                    r.checksum_files.len(),
                    dir.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
