//! The cluster as the user declares it (`manifests/*.toml`): parsing with spans, validation, and
//! the component defaults (upstream URL templates and checksum locations) kept as data in
//! `components.toml`. Everything downstream sees only the checked [`Manifest`].

mod names;
mod raw;
pub mod secrets;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::Serialize;
use toml::Spanned;

pub use names::{Arch, ComponentName, NodeName};
pub use raw::{check_version, url_file_name};
pub use secrets::{SecretDecl, SecretKind};

use crate::source::{self, Location, SourceFile};

/// The built-in component table: upstream's URL layout, as data.
pub const DEFAULT_COMPONENTS: &str = include_str!("components.toml");

/// A manifest that cannot be used, with the place that says why.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Read(#[from] source::ReadError),
    #[error("{loc}: {}{message}", key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default())]
    Invalid {
        loc: Location,
        key: Option<String>,
        message: String,
    },
}

impl ManifestError {
    /// The source line with a caret under the offending token, when there is one.
    pub fn snippet(&self) -> Option<String> {
        match self {
            ManifestError::Invalid { loc, .. } => loc.snippet(),
            ManifestError::Read(_) => None,
        }
    }
}

/// A node's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Control,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Control => "control",
            Role::Worker => "worker",
        }
    }
}

/// A component after defaults and overrides were merged and its templates checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    pub name: ComponentName,
    /// The `[versions]` key that pins it.
    pub version_key: String,
    pub version: String,
    pub url_template: String,
    pub checksum_url_template: String,
    pub checksum_name_template: Option<String>,
    /// What a node takes from the artifact, and where it goes.
    pub install: Vec<InstallRule>,
}

/// One install rule: the artifact itself (`from` absent) or the executable archive members
/// matching `from` (a path whose segments may contain `*`), installed at `to` (a directory when it
/// ends in `/`), mode 0755.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallRule {
    pub from: Option<String>,
    pub to: String,
}

impl InstallRule {
    pub fn new(from: Option<&str>, to: &str) -> Result<Self, String> {
        let bad_segment = |p: &str| p.split('/').any(|s| s == ".." || s == ".");
        if !to.starts_with('/') || to.contains("//") || bad_segment(to) || to == "/" {
            return Err(format!(
                "install target `{to}` must be an absolute path without `.` or `..`"
            ));
        }
        let from = from.map(|f| f.trim_start_matches("./").to_string());
        if let Some(f) = &from {
            if f.is_empty() || f.starts_with('/') || bad_segment(f) {
                return Err(format!(
                    "install source `{f}` must be a relative archive path without `.` or `..`"
                ));
            }
            if f.contains('*') && !to.ends_with('/') {
                return Err(format!("install source `{f}` is a pattern, so its target `{to}` must be a directory ending in `/`"));
            }
        } else if to.ends_with('/') {
            return Err(format!(
                "install target `{to}` must name the file, not a directory"
            ));
        }
        Ok(Self {
            from,
            to: to.to_string(),
        })
    }

    /// Whether an archive member (its path, `./` stripped) matches `from`.
    pub fn matches(&self, member: &str) -> bool {
        let Some(pattern) = &self.from else {
            return false;
        };
        let member = member.trim_start_matches("./");
        let (ps, ms): (Vec<&str>, Vec<&str>) =
            (pattern.split('/').collect(), member.split('/').collect());
        ps.len() == ms.len()
            && ps
                .iter()
                .zip(&ms)
                .all(|(p, m)| *m != ".." && *m != "." && !m.is_empty() && glob_segment(p, m))
    }

    /// Where a matched member (or the artifact itself, named `name`) goes.
    pub fn target(&self, name: &str) -> String {
        if self.to.ends_with('/') {
            let base = name.rsplit('/').next().unwrap_or(name);
            format!("{}{base}", self.to)
        } else {
            self.to.clone()
        }
    }
}

/// `*` matches any run of characters within one path segment.
fn glob_segment(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(text) = text.strip_prefix(head) else {
                return false;
            };
            (0..=text.len())
                .filter(|i| text.is_char_boundary(*i))
                .any(|i| glob_segment(rest, &text[i..]))
        }
    }
}

/// One artifact the cluster needs: a component at a version for an architecture, with its URLs
/// rendered. This is exactly what a lock entry is resolved from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ArtifactSpec {
    pub component: ComponentName,
    pub arch: Arch,
    pub version: String,
    pub url: String,
    pub checksum_url: String,
    /// The file name to select in a checksum file listing several.
    pub checksum_name: String,
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub name: NodeName,
    pub vmid: u32,
    pub role: Role,
    pub arch: Arch,
    pub ip: Ipv4Addr,
    pub pod_cidr: Ipv4Net,
    /// Template variables: the manifest's `[vars]` overridden by the node's own `vars`.
    pub vars: BTreeMap<String, toml::Value>,
    /// The `[groups.*]` it belongs to, if any.
    pub group: Option<String>,
}

/// A node group (`[groups.<name>]`): nodes that run their own versions on top of the cluster's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub name: String,
    /// Its nodes, in the order the manifest lists them.
    pub nodes: Vec<NodeName>,
    /// The `[versions]` keys it overrides, and their values.
    pub versions: BTreeMap<String, String>,
    /// Rolled out first among the workers (`plan` orders it so).
    pub canary: bool,
    /// The cluster's components with the group's versions.
    pub components: BTreeMap<ComponentName, Component>,
}

/// Cluster-wide network ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub cluster_dns: Ipv4Addr,
}

/// A checked manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    #[serde(skip)]
    pub path: PathBuf,
    pub name: String,
    pub architectures: Vec<Arch>,
    pub domain: String,
    pub network: Network,
    pub versions: BTreeMap<String, String>,
    pub components: BTreeMap<ComponentName, Component>,
    pub nodes: BTreeMap<NodeName, Node>,
    /// The directory of config and unit templates, laid out like `/`.
    #[serde(skip)]
    pub templates: PathBuf,
    /// Template variables for every node (`[vars]`).
    pub vars: BTreeMap<String, toml::Value>,
    /// `[groups.*]`, by name.
    pub groups: BTreeMap<String, Group>,
    /// `[control-plane] kube-apiserver`, when the manifest sets it.
    pub kube_apiserver: Option<String>,
    /// `[[secrets]]`: the secret files each node needs, in the manifest's order.
    pub secrets: Vec<SecretDecl>,
}

impl Manifest {
    /// Read, parse and validate a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let src = source::read_text(path)?;
        Self::parse(&src)
    }

    /// Parse and validate manifest text (the path is used in messages only).
    pub fn parse(src: &SourceFile) -> Result<Self, ManifestError> {
        let defaults = SourceFile::new(
            Path::new("<built-in components.toml>"),
            DEFAULT_COMPONENTS.to_string(),
        );
        let raw_defaults: BTreeMap<Spanned<String>, Spanned<raw::RawComponent>> =
            parse_toml(&defaults)?;
        let raw: raw::RawManifest = parse_toml(src)?;
        raw::validate(src, &defaults, raw, raw_defaults)
    }

    /// Every artifact the cluster needs: the cluster's components and every group's, for every
    /// architecture, each (component, version, arch) once, sorted.
    pub fn artifacts(&self) -> Vec<ArtifactSpec> {
        let mut out = BTreeSet::new();
        for components in self.component_sets() {
            for c in components.values() {
                for arch in &self.architectures {
                    // Templates were rendered for every architecture during validation.
                    if let Ok(spec) = raw::render_artifact(c, arch) {
                        out.insert(spec);
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// The cluster's components, then every group's (each a full set, its versions applied).
    pub fn component_sets(&self) -> impl Iterator<Item = &BTreeMap<ComponentName, Component>> {
        std::iter::once(&self.components).chain(self.groups.values().map(|g| &g.components))
    }

    /// The components a node runs: its group's versions, else the cluster's.
    pub fn components_of(&self, node: &Node) -> &BTreeMap<ComponentName, Component> {
        self.components_of_group(node.group.as_ref())
    }

    /// The components of group `group` (none, or a group the manifest lacks: the cluster's).
    pub fn components_of_group(
        &self,
        group: Option<&String>,
    ) -> &BTreeMap<ComponentName, Component> {
        group
            .and_then(|g| self.groups.get(g))
            .map_or(&self.components, |g| &g.components)
    }

    /// The `[versions]` a node's templates see: the cluster's, overridden by its group's.
    pub fn versions_of(&self, node: &Node) -> BTreeMap<String, String> {
        let mut v = self.versions.clone();
        if let Some(g) = node.group.as_ref().and_then(|g| self.groups.get(g)) {
            v.extend(g.versions.clone());
        }
        v
    }

    /// The control plane's kube-apiserver version: `[control-plane] kube-apiserver`, else the
    /// cluster's `versions.kubernetes` (the seed's control plane runs the cluster's Kubernetes).
    pub fn kube_apiserver(&self) -> Option<&str> {
        self.kube_apiserver
            .as_deref()
            .or_else(|| self.versions.get("kubernetes").map(String::as_str))
    }

    /// The manifest's stem (`kubenet` for `manifests/kubenet.toml`).
    pub fn stem(&self) -> String {
        self.path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(&self.name)
            .to_string()
    }

    /// Names of the components, for messages.
    pub fn component_names(&self) -> BTreeSet<String> {
        self.components.keys().map(|c| c.to_string()).collect()
    }
}

/// Deserialize TOML text, turning any error into a located one.
fn parse_toml<T: serde::de::DeserializeOwned>(src: &SourceFile) -> Result<T, ManifestError> {
    toml::from_str(&src.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        ManifestError::Invalid {
            loc: src.location(span.clone()),
            key: src.toml_key_at(span.start),
            message: tidy_serde_message(e.message()),
        }
    })
}

/// serde's messages end in a newline and mention Rust types; keep the words a user needs.
pub(crate) fn tidy_serde_message(msg: &str) -> String {
    msg.trim()
        .replace("invalid type: ", "wrong type: ")
        .replace("u32", "a whole number")
        .replace("u64", "a whole number")
}

#[cfg(test)]
mod tests;
