//! The errors a command ends with: one sentence each, with a hint saying what to do next, the
//! causes kept as `source()`s, and the exit code (`Error::exit_code`: 1, or 101 for a bug).

use std::path::PathBuf;

use serde::Serialize;

use crate::checksum::ChecksumError;
use crate::extract::ExtractError;
use crate::fetch::{ClientError, FetchError, Source};
use crate::fsutil::FsError;
use crate::generations::GenerationError;
use crate::image::ImageError;
use crate::lock::{Change, LockError};
use crate::manifest::ManifestError;
use crate::render::RenderError;

/// One line of an error report and what to do about it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub message: String,
    pub hints: Vec<String>,
}

/// Why an artifact's published sha256 could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{from}: the checksum file is not text")]
    NotText {
        from: Source,
        #[source]
        source: std::string::FromUtf8Error,
    },
    #[error("{from}: {source}")]
    Checksum {
        from: Source,
        #[source]
        source: ChecksumError,
    },
}

/// Why an artifact could not be had, from the most actionable to the least: failures are
/// reported in this order, each with its hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureCause {
    /// The device holding the store is full.
    NoSpace,
    /// Writing it on this machine failed.
    Local,
    /// The lockfile has no sha256 for it.
    Unresolved,
    /// No source could be reached (DNS, connection).
    Unreachable,
    /// An OCI mirror's registry refused access (no login, wrong credentials, no access to the
    /// repository, or a credential helper that failed).
    Login,
    /// Offline, and no `file://` mirror holds it.
    Offline,
    /// A source sent other bytes than the lockfile pins.
    Mismatch,
    /// Every source answered "not there".
    NotFound,
    /// Not in the store (for a command that does not fetch).
    NotInStore,
    Other,
}

/// One artifact that could not be had: a sentence naming it, and why.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactFailure {
    /// `containerd 1.7.20 (amd64)`.
    pub label: String,
    pub component: String,
    pub url: String,
    pub cause: FailureCause,
    /// The whole sentence, starting with the label.
    pub message: String,
    /// What to do, when the failure says more than its cause (an OCI mirror's registry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The lines of an error report for artifacts that could not be had. Those no source could
/// reach (DNS, connection) come first as one line: one cause, one hint (the network, a mirror, or
/// `make demo` offline), which makes the others moot; then the rest, the most actionable first.
pub fn failure_problems(failures: &[ArtifactFailure]) -> Vec<Problem> {
    let (unreachable, rest): (Vec<&ArtifactFailure>, Vec<&ArtifactFailure>) = failures
        .iter()
        .partition(|f| f.cause == FailureCause::Unreachable);
    let mut out = Vec::new();
    match unreachable.as_slice() {
        [] => {}
        [one] => out.push(one.problem()),
        [first, ..] => out.push(Problem {
            message: format!(
                "upstream cannot be reached from here for {} artifacts: {} (the first: {})",
                unreachable.len(),
                unreachable
                    .iter()
                    .map(|f| f.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                first.message
            ),
            hints: first.hint().into_iter().collect(),
        }),
    }
    out.extend(rest.into_iter().map(ArtifactFailure::problem));
    out
}

impl ArtifactFailure {
    /// Its line in an error report, with its hint.
    pub fn problem(&self) -> Problem {
        Problem {
            message: self.message.clone(),
            hints: self.hint().into_iter().collect(),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        if let Some(h) = &self.hint {
            return Some(h.clone());
        }
        Some(match self.cause {
            FailureCause::Unresolved => format!(
                "run `nodeforge lock --update {}` where upstream is reachable, then commit the lockfile",
                self.component
            ),
            FailureCause::Unreachable => "upstream cannot be reached from here (DNS or connection failure): pass --mirror URL for a mirror you can reach, or --offline --mirror file://DIR for a copy on disk (`nodeforge mirror export` makes one); `make demo` runs the whole pipeline offline against stand-in artifacts".to_string(),
            FailureCause::Offline => "offline: fetch these where the network is reachable, or pass --mirror file://DIR holding them".to_string(),
            FailureCause::Mismatch => format!(
                "nothing was stored: a mirror or proxy served other bytes, or upstream replaced the file (then `nodeforge lock --update {}` and review the new sha256)",
                self.component
            ),
            FailureCause::Login => "log in to the mirror's registry as for push and pull (`docker login`, `podman login` or `nodeforge login`, a credential helper, or NODEFORGE_REGISTRY_USERNAME and NODEFORGE_REGISTRY_PASSWORD)".to_string(),
            FailureCause::NotFound => "check the component's version and URL in the manifest (`nodeforge components` lists every URL) and the mirrors given".to_string(),
            FailureCause::NotInStore => "run `nodeforge fetch` first".to_string(),
            FailureCause::NoSpace => "free space on that device, or pass --out DIR on a file system with room (the store holds every artifact once)".to_string(),
            FailureCause::Local | FailureCause::Other => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("lockfile is stale: {}", text::joined(changes, "; "))]
    Stale {
        lockfile: PathBuf,
        changes: Vec<Change>,
    },
    #[error("`{name}` is not a component of this manifest{}", text::did_you_mean(suggestion.as_deref()))]
    UnknownComponent {
        name: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    #[error("could not resolve {}: {}", text::joined(failures.iter().map(|(l, _)| l), ", "), text::joined(failures.iter().map(|(_, e)| e), "; "))]
    Resolve {
        /// Each artifact's label and why it failed.
        failures: Vec<(String, ResolveError)>,
    },
    #[error("{} of the locked artifacts are not in the store: {}", missing.len(), text::joined(missing.iter().map(|f| &f.label), ", "))]
    NotInStore { missing: Vec<ArtifactFailure> },
    #[error("cannot build: {} could not be fetched: {}", text::counted(failures.len(), "artifact", "artifacts"), text::joined(failures.iter().map(|f| &f.label), ", "))]
    Fetch {
        /// The most actionable first.
        failures: Vec<ArtifactFailure>,
    },
    #[error("{label} has no published sha256 in the lockfile: run `nodeforge lock --update {component}` where upstream is reachable")]
    Unresolved { label: String, component: String },
    /// `lock --check`: the lockfile is intact and fresh, but entries have no published sha256.
    #[error("{}: {} unresolved (no published sha256): {}", lockfile.display(), text::counted(labels.len(), "entry is", "entries are"), labels.join(", "))]
    UnresolvedEntries {
        lockfile: PathBuf,
        /// `component version (arch)` of each unresolved entry.
        labels: Vec<String>,
        /// Their components, each once, sorted.
        components: Vec<String>,
    },
    /// `--locked`: the lockfile would have to change.
    #[error("--locked: {} would have to change: {}", lockfile.display(), needs.join(", "))]
    Locked {
        lockfile: PathBuf,
        /// What the lockfile lacks, one phrase per entry.
        needs: Vec<String>,
        /// Their components, each once, sorted.
        components: Vec<String>,
    },
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A `[[secrets]]` template that does not render for a node.
    #[error(transparent)]
    SecretPlan(#[from] Box<crate::credentials::PlanError>),
    /// The node's secrets did not pass `secrets check`: nothing was delivered.
    #[error("the secrets of node `{node}` in {} do not pass the check ({}): nothing was delivered", dir.display(), text::counted(findings.len(), "error", "errors"))]
    Secrets {
        node: String,
        dir: PathBuf,
        /// The errors, one per problem.
        findings: Vec<crate::credentials::Finding>,
    },
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Image(Box<ImageError>),
    #[error(transparent)]
    Generation(#[from] GenerationError),
    #[error("image {image} cannot be written: the store lacks {}", missing.join(", "))]
    MissingObjects { image: String, missing: Vec<String> },
    #[error("image {image} of node `{node}` is a whole-root image (format 1, from before layered images): its config lived under /var, which layers cannot hold, so it cannot be switched to or written again")]
    FlatImage { image: String, node: String },
    #[error("the template tree {} is {}, outside the manifest's directory {}", templates.display(), resolved.display(), manifest_dir.display())]
    TemplatesOutside {
        templates: PathBuf,
        resolved: PathBuf,
        manifest_dir: PathBuf,
    },
    #[error("{} holds the nodes of cluster `{theirs}`, not of `{ours}`: node names of two clusters would collide", out.display())]
    OtherCluster {
        out: PathBuf,
        theirs: String,
        ours: String,
    },
    #[error("`{node}` is not a node of {source_name}{}", text::did_you_mean(suggestion.as_deref()))]
    UnknownNode {
        node: String,
        /// The manifest's file name (or the output directory when the manifest does not load).
        source_name: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    #[error(
        "no node can be rolled back: {}",
        text::or_none(reasons, "; ", "no node has generations yet")
    )]
    NothingToRollBack { reasons: Vec<String> },
    #[error("no {} in {} or any directory above it: not inside a nodeforge project", manifest.display(), start.display())]
    NoProject { start: PathBuf, manifest: PathBuf },
    /// `init` into a directory that holds something (or is no directory).
    #[error("{} {}: a new project goes into a new or empty directory", dir.display(), text::not_empty(entries))]
    NotEmpty { dir: PathBuf, entries: Vec<String> },
    // OCI registries (push, pull).
    #[error(transparent)]
    Oci(#[from] crate::oci::OciError),
    #[error(transparent)]
    Registry(Box<crate::oci::client::RegistryError>),
    #[error("{reference}: layer {layer} is not what the image record pins, nothing was switched: {}", fails.join("; "))]
    PulledLayer {
        reference: String,
        layer: String,
        fails: Vec<String>,
    },
    /// The manifest breaks the Kubernetes version skew policy (`--allow-skew` overrides).
    #[error("{}", text::joined(violations.iter().map(|v| &v.message), "; "))]
    Skew {
        violations: Vec<crate::skew::Violation>,
    },
    // Supply chain (signatures).
    #[error(transparent)]
    Key(#[from] crate::trust::KeyError),
    #[error(transparent)]
    X509(#[from] crate::trust::pkcs7::X509Error),
    #[error("{what}: image {image} is not trusted: {reason}")]
    Untrusted {
        what: String,
        image: String,
        reason: String,
        /// Ids of the trusted keys.
        keys: Vec<String>,
    },
    #[error("{what}: image {image} is not trusted: {reason} (trusted keys: {}); nothing was put in place", keys.join(", "))]
    UntrustedCopy {
        /// The reference (registry, repository, tag) or layout it came from.
        what: String,
        image: String,
        reason: String,
        /// Ids of the trusted keys.
        keys: Vec<String>,
    },
    /// A pulled or imported image is older than the node's current one.
    #[error("{what}: image {image} is older than node {node}'s current image {current}: {reason}; nothing was put in place")]
    Downgrade {
        what: String,
        node: String,
        image: String,
        current: String,
        reason: String,
    },
    /// A tag (or `--node`) names one node, the image's record another.
    #[error("{what}: {named} names node {expected}, but the image's record is node {node}'s (image {image}); nothing was downloaded beyond the record")]
    NodeMismatch {
        what: String,
        /// "the tag `worker1`" or "--node worker1".
        named: String,
        expected: String,
        node: String,
        image: String,
    },
    /// `sign` was asked to vouch for a record that is not what the store and inputs make.
    #[error("refusing to sign image {image} (node {node}): {why}")]
    NotFromInputs {
        image: String,
        node: String,
        why: String,
    },
    /// An image's attestation directory holds a private key, which push/export would publish.
    #[error("{}: holds a private key (at byte {offset}); refusing to publish image {image}'s attestations, nothing was sent", file.display())]
    PrivateKeyInAttestations {
        image: String,
        file: PathBuf,
        offset: u64,
    },
    /// An unsigned pulled or imported image implies another record for a layer the host holds.
    #[error("{what}: layer {layer} is on this host with another record ({why}); an image without a trusted signature does not change it, nothing was put in place")]
    LayerConflict {
        what: String,
        layer: String,
        why: String,
    },
    /// A pulled or imported record for an image id the host holds with another record.
    #[error("{what}: this host holds image {image} with another record ({why}); a record is never replaced, nothing was put in place")]
    RecordConflict {
        what: String,
        image: String,
        why: String,
    },
    /// A record in the output directory (a layer's, an image's, a generation's) that does not
    /// read as what it must be: damaged, or edited.
    #[error("{}: {problem}", path.display())]
    DamagedRecord { path: PathBuf, problem: String },
    /// An image record kept without its entries (format 3) whose layer's record, which holds
    /// them, cannot be read or is not what the layer's id says.
    #[error("{}: its entries are in its {role} layer's record, which cannot give them: {problem}", path.display())]
    RecordLayer {
        path: PathBuf,
        role: String,
        layer: String,
        problem: String,
    },
    /// A file that changed between being listed (with its digest) and being read to be sent.
    #[error("{} changed while it was being {doing}: {again} again", path.display())]
    ChangedWhileSending {
        path: PathBuf,
        /// "pushed" or "exported".
        doing: &'static str,
        /// The command to run again: "push" or "export".
        again: &'static str,
    },
    /// An OCI image layout (export's directory) whose blobs are not what its manifests say.
    #[error("{}: {problem}", path.display())]
    DamagedLayout { path: PathBuf, problem: String },
    /// A store object whose bytes are not its address.
    #[error("store object {} holds other bytes (blake3 {actual}): the store is damaged; run `nodeforge verify`", path.display())]
    DamagedObject { path: PathBuf, actual: String },
    /// A layer made again from its entries whose dm-verity root hash is not the one the
    /// image's record pins.
    #[error("image {image}: its record pins root hash {pinned} for its {role} layer, but the layer's entries make {made}: the record is damaged or was edited")]
    RootHashMismatch {
        image: String,
        role: String,
        pinned: String,
        made: String,
    },
    /// sign, push or export refused an image whose layers are not what its record pins.
    #[error("refusing to {verb} image {image}: {reason}")]
    LayersNotVouched {
        /// "sign" or "publish".
        verb: &'static str,
        image: String,
        reason: String,
    },
    /// An image record without the dm-verity root hash of one of its layers.
    #[error("image {image}: its record pins no root hash for its {role} layer")]
    NoRootHash { image: String, role: String },
    /// A mistake on the command line that clap cannot see (a value's form, a flag that does
    /// not fit the others).
    #[error("{0}")]
    Usage(String),
    /// An internal invariant failed: a bug in nodeforge, not a problem with its inputs.
    #[error("internal error: {0} (a bug in nodeforge)")]
    Internal(String),
}

impl Error {
    /// A damaged record at `path`.
    pub(crate) fn damaged(path: &std::path::Path, problem: String) -> Self {
        Error::DamagedRecord {
            path: path.to_path_buf(),
            problem,
        }
    }

    /// The process's exit code for this error: 101 for an internal error (as cargo), 1 for
    /// everything else (clap exits 2 for a command-line mistake before any command runs).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Internal(_) => 101,
            _ => 1,
        }
    }

    /// What to do about it, when there is something to say.
    pub fn hints(&self) -> Vec<String> {
        match self {
            Error::Lock(LockError::Missing { .. }) => vec!["run `nodeforge lock` to create it".into()],
            Error::Lock(LockError::Edited { .. }) => {
                vec!["run `nodeforge lock` to re-resolve every entry from upstream's published checksums".into()]
            }
            Error::Stale { changes, .. } => vec![text::stale_hint(changes)],
            Error::Resolve { .. } => vec![
                "check the network or pass --mirror; or record them as unresolved with --allow-unresolved".into(),
            ],
            Error::NotInStore { .. } => vec!["run `nodeforge fetch` first".into()],
            Error::Locked { components, .. } => vec![format!(
                "run `nodeforge lock {}` (or this command without --locked) where upstream is reachable, then commit the lockfile",
                components.iter().map(|c| format!("--update {c}")).collect::<Vec<_>>().join(" ")
            )],
            Error::UnresolvedEntries { components, .. } => vec![format!(
                "run `nodeforge lock {}` where upstream is reachable, then commit the lockfile",
                components.iter().map(|c| format!("--update {c}")).collect::<Vec<_>>().join(" ")
            )],
            Error::FlatImage { .. } => vec![
                "roll back to a generation built with layers (`nodeforge list` shows each generation's format), or check out the inputs of that image and `nodeforge build` it again".into(),
            ],
            Error::TemplatesOutside { .. } => vec![
                "move the templates below the manifest's directory, or pass --allow-outside-templates if that tree is yours".into(),
            ],
            Error::OtherCluster { ours, .. } => vec![format!(
                "give cluster `{ours}` its own output directory with --out"
            )],
            Error::UnknownNode {
                known, source_name, ..
            } if !known.is_empty() => {
                vec![format!("nodes of {source_name}: {}", known.join(", "))]
            }
            Error::NothingToRollBack { reasons } if reasons.is_empty() => {
                vec!["run `nodeforge build` first".into()]
            }
            Error::NoProject { .. } => vec![
                "run nodeforge in the project's directory (the one holding manifests/) or below it, or pass --manifest PATH".into(),
            ],
            Error::UnknownNode { .. } => vec!["run `nodeforge build` first".into()],
            Error::UnknownComponent { known, .. } => vec![format!(
                "components: {} (`nodeforge components` lists their versions and URLs)",
                known.join(", ")
            )],
            Error::DamagedRecord { .. } => vec![
                "`nodeforge verify` lists what is damaged; `nodeforge repair` writes layers and images again from the store and the generations' records".into(),
            ],
            Error::RecordLayer { layer, .. } => vec![format!(
                "`nodeforge build` writes layer {} again when the manifest, lockfile and templates still make it, and `nodeforge pull` when a registry has the image; otherwise roll the node off this image and `nodeforge gc`",
                layer.get(..16).unwrap_or(layer)
            )],
            Error::NotEmpty { .. } => vec![
                "pass a new directory (`nodeforge init kubenet`), or run nodeforge in the project that is there".into(),
            ],
            Error::Untrusted { keys, .. } => vec![format!(
                "sign it with one of the trusted keys ({}) after checking it: `nodeforge sign IMAGE --key KEY`; `nodeforge show IMAGE` lists its signatures",
                keys.iter().map(|k| k.get(..16).unwrap_or(k)).collect::<Vec<_>>().join(", ")
            )],
            Error::Downgrade { node, .. } => vec![
                format!("to go back on purpose, `nodeforge rollback {node}` to a generation this host has, or pass --allow-downgrade; if you did not ask for an older image, the registry (or whoever moved the tag) is serving one"),
            ],
            Error::NodeMismatch { node, .. } => vec![
                format!("pull the tag of the node you mean (`{node}`, `{node}-gen<N>` or the image id), or pass --node {node} if this tag is not a node's name; if the tag should hold its own node's image, the registry's tag was moved"),
            ],
            Error::NotFromInputs { node, .. } => vec![format!(
                "sign images built from the manifest, lockfile and templates at hand: `nodeforge build --node {node}` (a record edited in place is made again from the store), then sign; `nodeforge verify --rebuild` says what differs"
            )],
            Error::PrivateKeyInAttestations { file, .. } => vec![format!(
                "move the key out of out/attestations/ (keep signing keys outside `out/`), then check that it was not published before: {} is not an attestation nodeforge writes",
                file.display()
            )],
            Error::LayerConflict { .. } => vec![
                "pull or import it with the key that signed it (`--key PUB`): a signed image's record replaces an unsigned one's; `nodeforge verify` names the images on this host that use the layer".into(),
            ],
            Error::RecordConflict { image, .. } => vec![format!(
                "`nodeforge show {image}` and `nodeforge verify` tell which record is genuine; if the host's is damaged, roll its nodes off the image and `nodeforge gc`, then pull again"
            )],
            Error::UntrustedCopy { .. } => vec![
                "sign the image where it was built (`nodeforge sign NODE --key KEY`) and push (or export) it again, or trust the key that signed it (`--key PUB`, `--trusted-keys FILE`)".into(),
            ],
            Error::Generation(GenerationError::NoSuchImage { node, .. }) => vec![format!(
                "`nodeforge list --node {node}` shows its generations and their image ids; pass one as `--to @N` or an id (prefix)"
            )],
            Error::Generation(GenerationError::Ambiguous { node, .. }) => vec![format!(
                "give more of the id; `nodeforge list --node {node}` shows them"
            )],
            Error::Generation(GenerationError::NumberOrPrefix { node, number, .. }) => vec![format!(
                "write `--to @{number}` (or `--to {node}@{number}`) for the generation, or more of the id for the image"
            )],
            Error::Generation(GenerationError::OtherNode { named, to, .. }) => vec![format!(
                "to roll back `{named}`, run `nodeforge rollback {named} --to {to}`"
            )],
            Error::Internal(_) => vec!["this is a bug in nodeforge: please report it with the command that caused it".into()],
            Error::MissingObjects { .. } => vec![
                "run `nodeforge fetch` (with the lockfile this image was built from) and `nodeforge build`, then try again".into(),
            ],
            Error::Registry(e) => registry_hints(e),
            Error::Oci(crate::oci::OciError::NotNodeImage { .. }) => vec![
                "pull a tag `nodeforge push` made (the node's name, <node>-gen<N> or the image id)".into(),
            ],
            Error::PulledLayer { .. } => vec![
                "the registry's copy of the image is damaged or was replaced: push the image again from the builder, then pull".into(),
            ],
            _ => Vec::new(),
        }
    }

    /// The error as the lines to print: each problem (one per artifact for a list) with its
    /// hints, the most actionable first.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Error::Fetch { failures } => failure_problems(failures),
            Error::NotInStore { missing } => failure_problems(missing),
            // One line per broken rule, each with what to do.
            Error::Skew { violations } => {
                violations
                    .iter()
                    .map(|v| Problem {
                        message: format!("version skew: {}", v.message),
                        hints: vec![
                            v.hint.clone(),
                            "or pass --allow-skew to go ahead anyway (the skew is then printed as a warning)".into(),
                        ],
                    })
                    .collect()
            }
            // One line per problem of the node's secrets, each with what to do.
            Error::Secrets { findings, .. } => {
                findings
                    .iter()
                    .map(|f| Problem {
                        message: f.line(),
                        hints: f.hint.iter().cloned().collect(),
                    })
                    .collect()
            }
            // One line per artifact lock could not resolve, each with the hint.
            Error::Resolve { failures } => {
                failures
                    .iter()
                    .map(|(label, e)| Problem {
                        message: format!("could not resolve {label}: {e}"),
                        hints: self.hints(),
                    })
                    .collect()
            }
            _ => vec![Problem {
                message: self.to_string(),
                hints: self.hints(),
            }],
        }
    }

    /// A source line with a caret, for errors that point into a file.
    pub fn snippet(&self) -> Option<String> {
        match self {
            Error::Manifest(e) => e.snippet(),
            Error::Lock(e) => e.snippet(),
            _ => None,
        }
    }
}

/// What to do about a registry's answer.
pub(crate) fn registry_hints(e: &crate::oci::client::RegistryError) -> Vec<String> {
    use crate::oci::client::RegistryError as R;
    match e {
        R::Connect { registry, tls: true, .. } => vec![format!(
            "check that {registry} is up and reachable; a registry that speaks plain HTTP needs --insecure-registry {registry}"
        )],
        R::Connect { registry, .. } => vec![format!("check that {registry} is up and reachable")],
        R::Unauthorized { registry, with: None, tls, .. } => vec![format!(
            "log in with `docker login {registry}`, `podman login {registry}` or `nodeforge login {registry}{}`, or set {} and {}",
            insecure_flag(registry, *tls),
            crate::oci::auth::ENV_USERNAME,
            crate::oci::auth::ENV_PASSWORD
        )],
        R::Unauthorized { registry, tls, .. } => vec![format!(
            "check the user name and password (log in again with `docker login {registry}` or `nodeforge login {registry}{}`) and that the account may use this repository",
            insecure_flag(registry, *tls)
        )],
        R::BlobUnknown { registry, repository, tls, .. } => vec![format!(
            "the mirror lacks this artifact: fill it with `nodeforge mirror push oci://{registry}/{repository}{}` where the store has the lockfile's artifacts (after `nodeforge fetch`), or check that --mirror names the repository `mirror push` filled",
            insecure_flag(registry, *tls)
        )],
        R::Credentials(crate::oci::auth::CredentialsError::Helper { helper, registry, key, file, .. }) => vec![format!(
            "install docker-credential-{helper} in $PATH or repair it (try `echo {} | docker-credential-{helper} get`), or remove `{key}` from {file}",
            crate::oci::auth::server_address(registry)
        )],
        R::ManifestUnknown { .. } => vec![
            "check the repository and the tag: nodeforge push tags each node's image with the node's name, <node>-gen<N> and the image id".into(),
        ],
        R::DigestMismatch { .. } => vec![
            "push the image again from the builder; nothing was switched".into(),
        ],
        R::Status { code: Some(c), what, .. }
            if (c == "MANIFEST_INVALID" || c == "UNSUPPORTED")
                && what.starts_with(crate::oci::client::STORING_MANIFEST) =>
        {
            vec!["the registry refused nodeforge's artifact media types: use a registry that stores OCI artifacts (OCI image-spec 1.1; distribution 2.8+, zot, Harbor 2.8+)".into()]
        }
        R::Status { code: Some(c), registry, .. } if c == "UNSUPPORTED" => vec![format!(
            "{registry} takes no pushes to this repository (a pull-through cache, or a read-only registry): push to the registry it mirrors, or to one that accepts pushes"
        )],
        R::Interrupted { .. } => vec![
            "run the same pull again: it resumes where it stopped (what arrived is kept in out/pulls/)".into(),
        ],
        _ => Vec::new(),
    }
}

/// ` --insecure-registry HOST` for a command that must reach a plain-HTTP registry again, or
/// nothing.
pub(crate) fn insecure_flag(registry: &str, tls: bool) -> String {
    if tls {
        String::new()
    } else {
        format!(" --insecure-registry {registry}")
    }
}

impl From<crate::oci::client::RegistryError> for Error {
    fn from(e: crate::oci::client::RegistryError) -> Self {
        Error::Registry(Box::new(e))
    }
}

/// The text of the messages above: lists, counts and suggestions are built here, not inside the
/// `#[error]` attributes, so that each attribute reads as its sentence.
mod text {
    use std::fmt::Display;

    /// `items` written one after another with `sep` between them.
    pub(super) fn joined<T: Display>(items: impl IntoIterator<Item = T>, sep: &str) -> String {
        items
            .into_iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// `1 artifact`, `3 artifacts`.
    pub(super) fn counted(n: usize, one: &str, many: &str) -> String {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    }

    /// `; did you mean worker1?`, or nothing.
    pub(super) fn did_you_mean(suggestion: Option<&str>) -> String {
        suggestion
            .map(|s| format!("; did you mean {s}?"))
            .unwrap_or_default()
    }

    /// `items` joined, or `none` when there are none.
    pub(super) fn or_none(items: &[String], sep: &str, none: &str) -> String {
        if items.is_empty() {
            none.to_string()
        } else {
            items.join(sep)
        }
    }

    /// What to do about a stale lockfile, saying which changes `build` and `fetch` complete by
    /// themselves (entries the manifest adds: a new version, architecture or component) and
    /// which they refuse (a pin the lockfile holds, changed or no longer needed): replacing a
    /// reviewed checksum is `lock`'s, so that it shows in the lockfile's diff.
    pub(super) fn stale_hint(changes: &[crate::lock::Change]) -> String {
        use crate::lock::Change;
        let (new, changed): (Vec<&Change>, Vec<&Change>) = changes
            .iter()
            .partition(|c| matches!(c, Change::Added { .. } | Change::ControlPlane { .. }));
        let mut hint = "run `nodeforge lock` to update the lockfile, then commit it".to_string();
        if !changed.is_empty() {
            hint.push_str(&format!(
                ": `build` and `fetch` add what the manifest adds ({}) but never replace a pin the lockfile holds (changed: {}); a replaced pin is `lock`'s to write, so that a reviewed checksum changes only in the lockfile's diff",
                if new.is_empty() {
                    "nothing new here".to_string()
                } else {
                    format!("new: {}", joined(&new, "; "))
                },
                joined(&changed, "; ")
            ));
        }
        hint
    }

    /// Why a directory cannot take a new project.
    pub(super) fn not_empty(entries: &[String]) -> String {
        if entries.is_empty() {
            "is not an empty directory".to_string()
        } else {
            format!("is not empty (it holds {})", entries.join(", "))
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn helpers_write_lists_counts_and_suggestions() {
            assert_eq!(super::joined(["a", "b"], "; "), "a; b");
            assert_eq!(super::counted(1, "entry is", "entries are"), "1 entry is");
            assert_eq!(
                super::counted(2, "entry is", "entries are"),
                "2 entries are"
            );
            assert_eq!(
                super::did_you_mean(Some("kubelet")),
                "; did you mean kubelet?"
            );
            assert_eq!(super::did_you_mean(None), "");
            assert_eq!(super::or_none(&[], "; ", "none"), "none");
            assert_eq!(super::not_empty(&["x".into()]), "is not empty (it holds x)");
        }
    }
}
