//! Each node's secrets: the manifest's `[[secrets]]` rendered per node ([`Templates::plan`]),
//! checked against the files of a secrets directory ([`check()`]: presence, modes, certificates,
//! keys, kubeconfigs, against the CA and the node), and delivered at boot without ever entering
//! an image ([`deliver`]: QEMU fw_cfg arguments and libvirt `<sysinfo type='fwcfg'>` entries
//! that pass each file as a systemd system credential, the config layer's unit that places the
//! credentials at their paths in memory, and a cloud-init `#cloud-config` for hosts without
//! fw_cfg). Pure: no clap, no printing; `ops/secrets.rs` reads the directory and writes files.
//!
//! Nothing here writes a secret anywhere: the fw_cfg and libvirt renderings name the files by
//! path, the placement unit names credentials by id, and only the cloud-config (written by
//! `ops`, mode 0600, outside `out/`) carries content.

pub mod check;
pub mod deliver;
mod kubeconfig;
mod pem;
mod x509;

use std::path::{Path, PathBuf};

use crate::manifest::secrets::{check_source, check_target};
use crate::manifest::{Manifest, Node, SecretDecl};

pub use check::{check, CheckOptions, CheckOutcome, CheckedFile, Finding, NodeFiles, Severity};

/// A `[[secrets]]` template that does not render into a usable value for a node.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: secret `{secret}`: `{field}` for node `{node}`: {message}", manifest.display())]
pub struct PlanError {
    pub manifest: PathBuf,
    pub line: usize,
    pub secret: String,
    pub node: String,
    pub field: String,
    pub message: String,
}

/// One declared secret of one node, its templates rendered.
#[derive(Debug, Clone)]
pub struct Planned<'m> {
    pub decl: &'m SecretDecl,
    /// Its path inside the secrets directory.
    pub from: String,
    /// Its path on the node.
    pub to: String,
    pub cn: Option<String>,
    pub o: Vec<String>,
    pub server: Option<String>,
}

/// Every secret one node takes, in the manifest's order.
#[derive(Debug, Clone)]
pub struct NodePlan<'m> {
    pub node: &'m Node,
    pub files: Vec<Planned<'m>>,
}

impl<'m> NodePlan<'m> {
    /// The node's entry named `name`.
    pub fn get(&self, name: &str) -> Option<&Planned<'m>> {
        self.files.iter().find(|f| f.decl.name == name)
    }
}

/// The `[[secrets]]` templates of a manifest, compiled once and rendered per node with the
/// variables config templates see (`node.*`, `cluster.*`, `versions`, `vars`).
pub struct Templates<'m> {
    manifest: &'m Manifest,
    env: minijinja::Environment<'m>,
}

impl<'m> Templates<'m> {
    pub fn new(manifest: &'m Manifest) -> Result<Self, Box<PlanError>> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_fuel(Some(100_000));
        for (i, d) in manifest.secrets.iter().enumerate() {
            for (j, (field, t)) in d.templates().into_iter().enumerate() {
                env.add_template_owned(format!("{i}/{j}"), t.to_string())
                    .map_err(|e| {
                        Box::new(PlanError {
                            manifest: manifest.path.clone(),
                            line: d.line,
                            secret: d.name.clone(),
                            node: "(any)".into(),
                            field: field.into(),
                            message: crate::render::describe(&e),
                        })
                    })?;
            }
        }
        Ok(Self { manifest, env })
    }

    /// The secrets `node` takes, rendered and checked: relative `from`s, absolute `to`s outside
    /// the image's layers, no two at one path.
    pub fn plan(&self, node: &'m Node) -> Result<NodePlan<'m>, Box<PlanError>> {
        let ctx = crate::render::context(self.manifest, node);
        let mut files: Vec<Planned<'m>> = Vec::new();
        for (i, d) in self.manifest.secrets.iter().enumerate() {
            if !d.applies_to(node) {
                continue;
            }
            let fail = |field: &str, message: String| {
                Box::new(PlanError {
                    manifest: self.manifest.path.clone(),
                    line: d.line,
                    secret: d.name.clone(),
                    node: node.name.to_string(),
                    field: field.to_string(),
                    message,
                })
            };
            let mut values = Vec::new();
            for (j, (field, _)) in d.templates().into_iter().enumerate() {
                let v = self
                    .env
                    .get_template(&format!("{i}/{j}"))
                    .and_then(|t| t.render(&ctx))
                    .map_err(|e| fail(field, crate::render::describe(&e)))?;
                let v = v.trim().to_string();
                if v.is_empty() {
                    return Err(fail(field, "renders to nothing".into()));
                }
                if v.chars().any(char::is_control) {
                    return Err(fail(
                        field,
                        format!("`{}` holds a control character", v.escape_default()),
                    ));
                }
                values.push((field, v));
            }
            let take = |f: &'static str| {
                values
                    .iter()
                    .filter(move |(k, _)| *k == f)
                    .map(|(_, v)| v.clone())
            };
            let from = take("from").next().unwrap_or_default();
            let to = take("to").next().unwrap_or_default();
            check_source(&from).map_err(|e| fail("from", e))?;
            check_target(&to).map_err(|e| fail("to", e))?;
            if let Some(other) = files.iter().find(|f| f.to == to) {
                return Err(fail(
                    "to",
                    format!("`{to}` is also where `{}` goes", other.decl.name),
                ));
            }
            files.push(Planned {
                decl: d,
                cn: take("cn").next(),
                o: take("o").collect(),
                server: take("server").next(),
                from,
                to,
            });
        }
        Ok(NodePlan { node, files })
    }
}

/// The file of a planned secret in the secrets directory.
pub fn source_path(dir: &Path, p: &Planned<'_>) -> PathBuf {
    dir.join(&p.from)
}
