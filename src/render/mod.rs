//! Config files and systemd units: the template tree of a manifest (laid out like `/`), rendered
//! per node with minijinja (strict variables), and validated before anything goes into an image:
//! YAML, JSON and TOML are parsed back, units are checked for shape, empty required values and
//! private keys are refused. Errors name the template, line and node.

mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::manifest::{Manifest, Node};

/// A template that cannot be loaded or rendered, or whose output is invalid.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read the templates in {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Refused { path: PathBuf, message: String },
    #[error("{}{}: for node `{node}`: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        node: String,
        message: String,
    },
}

/// One template file.
#[derive(Debug, Clone)]
pub struct Template {
    /// Path below the template root, `/`-separated (`etc/cni/net.d/10-bridge.conf`).
    pub rel: String,
    pub source: String,
    /// 0755 when the template file is executable, else 0644.
    pub mode: u32,
}

/// Instructions a template may execute per render: far above any config file, far below a hang.
const TEMPLATE_FUEL: u64 = 2_000_000;

/// A rendered file, ready to go into an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// Absolute path in the image (`/etc/cni/net.d/10-bridge.conf`).
    pub path: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
    /// The template it came from, relative to the template root.
    pub template: String,
}

/// Names of files that hold per-VM secrets: they are provisioned on the VM, never put in an image.
fn is_secret_name(name: &str) -> bool {
    name.ends_with("-key.pem")
        || name.ends_with(".key")
        || name.ends_with(".kubeconfig")
        || name == "kubeconfig"
        || name.ends_with(".p12")
        || name.ends_with(".pfx")
}

/// Whether bytes contain a PEM or OpenSSH private key (see [`crate::secrets`]).
pub fn contains_private_key(bytes: &[u8]) -> bool {
    crate::secrets::find_private_key(bytes).is_some()
}

/// A `vars` value with a line break, NUL or other control character would inject lines (a
/// directive into a unit, a key into a YAML file) wherever a template renders it: refused,
/// naming the key and the node.
fn check_vars(manifest: &Manifest, node: &Node) -> Result<(), RenderError> {
    fn bad(v: &toml::Value) -> bool {
        match v {
            toml::Value::String(s) => s.chars().any(|c| c.is_control() && c != '\t'),
            toml::Value::Array(a) => a.iter().any(bad),
            toml::Value::Table(t) => t
                .iter()
                .any(|(k, v)| bad(v) || k.chars().any(char::is_control)),
            _ => false,
        }
    }
    for (scope, vars) in [("[vars]", &manifest.vars), ("the node's vars", &node.vars)] {
        for (key, value) in vars.iter() {
            if bad(value) {
                return Err(RenderError::Refused {
                    path: manifest.path.clone(),
                    message: format!(
                        "node `{}`: {scope} `{key}` holds a line break or another control character, which would inject lines into the files it is rendered into",
                        node.name
                    ),
                });
            }
        }
    }
    Ok(())
}

/// A `vars` key no template reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadVar {
    /// The node that sets it, or None for the manifest's `[vars]`.
    pub node: Option<String>,
    pub key: String,
    /// The keys the templates do read.
    pub read: Vec<String>,
}

/// The expression and statement regions of a template: what is inside `{{ }}` and `{% %}`.
fn code_regions(source: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = source;
    loop {
        let open = match (rest.find("{{"), rest.find("{%")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        let close = if rest[open..].starts_with("{{") {
            "}}"
        } else {
            "%}"
        };
        let body = &rest[open + 2..];
        match body.find(close) {
            Some(end) => {
                out.push(&body[..end]);
                rest = &body[end + 2..];
            }
            None => {
                out.push(body);
                break;
            }
        }
    }
    out
}

/// Add the keys `code` reads from `vars` to `keys`; None when it uses `vars` otherwise.
fn vars_in(code: &str, keys: &mut BTreeSet<String>) -> Option<()> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(at) = code[from..].find("vars").map(|i| i + from) {
        from = at + 4;
        let before = code[..at].chars().next_back();
        let after = &code[at + 4..];
        if before.is_some_and(|c| ident(c) || c == '.') || after.starts_with(ident) {
            continue; // part of another name (`myvars`, `x.vars`, `vars2`)
        }
        let after = after.trim_start();
        if let Some(rest) = after.strip_prefix('.') {
            let key: String = rest
                .trim_start()
                .chars()
                .take_while(|c| ident(*c))
                .collect();
            if key.is_empty() {
                return None;
            }
            keys.insert(key);
        } else if let Some(rest) = after.strip_prefix('[') {
            let rest = rest.trim_start();
            let quote = rest.chars().next().filter(|q| *q == '"' || *q == '\'')?;
            let lit = &rest[1..];
            let end = lit.find(quote)?;
            keys.insert(lit[..end].to_string());
        } else {
            return None;
        }
    }
    Some(())
}

/// The template tree of a manifest, loaded once.
#[derive(Debug, Clone)]
pub struct TemplateSet {
    pub root: PathBuf,
    pub templates: Vec<Template>,
    /// The templates compiled, once for every node (made by the first render).
    compiled: std::sync::OnceLock<minijinja::Environment<'static>>,
}

impl TemplateSet {
    /// Load every file below `root`. Symlinks, special files, secret-looking names and files
    /// holding private keys are refused.
    pub fn load(root: &Path) -> Result<Self, RenderError> {
        let io = |path: &Path, source| RenderError::Io {
            path: path.to_path_buf(),
            source,
        };
        let refuse = |path: &Path, message: String| RenderError::Refused {
            path: path.to_path_buf(),
            message,
        };
        let mut templates = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = crate::fsutil::read_dir(&dir).map_err(|e| io(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io(&dir, e))?;
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_string)
                else {
                    return Err(refuse(
                        &path,
                        "file names in the template tree must be UTF-8".into(),
                    ));
                };
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                if !meta.is_file() {
                    return Err(refuse(
                        &path,
                        "only regular files can be templates (no symlinks or special files)".into(),
                    ));
                }
                if is_secret_name(&name) {
                    return Err(refuse(
                        &path,
                        "private keys and kubeconfigs are never put into an image: provision them on each VM (see the README)".into(),
                    ));
                }
                let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
                if contains_private_key(&bytes) {
                    return Err(refuse(&path, "this file contains a private key; images never carry private keys: provision it on each VM".into()));
                }
                let source = String::from_utf8(bytes)
                    .map_err(|_| refuse(&path, "templates must be UTF-8 text".into()))?;
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                use std::os::unix::fs::PermissionsExt;
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                templates.push(Template { rel, source, mode });
            }
        }
        templates.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(Self {
            root: root.to_path_buf(),
            templates,
            compiled: std::sync::OnceLock::new(),
        })
    }

    /// The `vars` keys the templates read (`vars.key`, `vars["key"]`, `vars['key']` inside
    /// `{{ }}` and `{% %}`), or None when some template uses `vars` in another way (a loop over
    /// it, a computed key): then any key may be read.
    pub fn vars_read(&self) -> Option<BTreeSet<String>> {
        let mut keys = BTreeSet::new();
        for t in &self.templates {
            for code in code_regions(&t.source) {
                vars_in(code, &mut keys)?;
            }
        }
        Some(keys)
    }

    /// The `vars` keys each node has that no template reads: typos that silently fall back to a
    /// default. Keys of the manifest's `[vars]` a node inherits come once, with node None.
    pub fn unread_vars(&self, manifest: &Manifest, nodes: &[&Node]) -> Vec<UnreadVar> {
        let Some(read) = self.vars_read() else {
            return Vec::new();
        };
        let mut out: Vec<UnreadVar> = manifest
            .vars
            .keys()
            .filter(|k| !read.contains(*k))
            .map(|k| UnreadVar {
                node: None,
                key: k.clone(),
                read: read.iter().cloned().collect(),
            })
            .collect();
        for n in nodes {
            for (k, v) in &n.vars {
                if !read.contains(k) && manifest.vars.get(k) != Some(v) {
                    out.push(UnreadVar {
                        node: Some(n.name.to_string()),
                        key: k.clone(),
                        read: read.iter().cloned().collect(),
                    });
                }
            }
        }
        out
    }

    fn env(&self) -> Result<minijinja::Environment<'static>, RenderError> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // A template that loops forever or renders gigabytes is an error, not a hang.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_recursion_limit(32);
        for t in &self.templates {
            env.add_template_owned(t.rel.clone(), t.source.clone())
                .map_err(|e| RenderError::Invalid {
                    path: self.root.join(&t.rel),
                    line: error_line(&e, &t.source),
                    node: "(any)".into(),
                    message: describe(&e),
                })?;
        }
        Ok(env)
    }

    /// Render every template for one node, validated.
    pub fn render_node(
        &self,
        manifest: &Manifest,
        node: &Node,
    ) -> Result<Vec<Rendered>, RenderError> {
        check_vars(manifest, node)?;
        let env = match self.compiled.get() {
            Some(env) => env,
            None => {
                let env = self.env()?;
                self.compiled.get_or_init(|| env)
            }
        };
        let ctx = context(manifest, node);
        let mut out = Vec::new();
        for t in &self.templates {
            let path = self.root.join(&t.rel);
            let invalid = |line: Option<usize>, message: String| RenderError::Invalid {
                path: path.clone(),
                line,
                node: node.name.to_string(),
                message,
            };
            let line = |e: &minijinja::Error| {
                let source = e
                    .name()
                    .and_then(|name| self.templates.iter().find(|o| o.rel == name))
                    .map_or(t.source.as_str(), |o| o.source.as_str());
                error_line(e, source)
            };
            let tmpl = env
                .get_template(&t.rel)
                .map_err(|e| invalid(line(&e), describe(&e)))?;
            let text = tmpl
                .render(&ctx)
                .map_err(|e| invalid(line(&e), describe(&e)))?;
            let target = format!("/{}", t.rel);
            validate::check(&target, &text).map_err(|(line, msg)| invalid(line, msg))?;
            if contains_private_key(text.as_bytes()) {
                return Err(invalid(
                    None,
                    "the rendered file contains a private key; images never carry private keys"
                        .into(),
                ));
            }
            out.push(Rendered {
                path: target,
                bytes: text.into_bytes(),
                mode: t.mode,
                template: t.rel.clone(),
            });
        }
        Ok(out)
    }
}

/// The variables a template sees (also `[[secrets]]` templates, `crate::credentials`).
pub fn context(manifest: &Manifest, node: &Node) -> minijinja::Value {
    // The node's group overrides the cluster's versions.
    let versions: BTreeMap<String, String> = manifest.versions_of(node);
    minijinja::context! {
        node => minijinja::context! {
            name => node.name.as_str(),
            vmid => node.vmid,
            role => node.role.as_str(),
            arch => node.arch.as_str(),
            ip => node.ip.to_string(),
            pod_cidr => node.pod_cidr.to_string(),
        },
        cluster => minijinja::context! {
            name => manifest.name.as_str(),
            domain => manifest.domain.as_str(),
            pod_cidr => manifest.network.pod_cidr.to_string(),
            service_cidr => manifest.network.service_cidr.to_string(),
            dns => manifest.network.cluster_dns.to_string(),
        },
        versions => versions,
        vars => minijinja::Value::from_serialize(&node.vars),
    }
}

/// The line of a template error, exact in a template of any length: minijinja counts lines in a
/// `u16` (stopping at 65535), so the line is counted from the error's byte offset when it has one.
fn error_line(e: &minijinja::Error, source: &str) -> Option<usize> {
    match e.range() {
        Some(r) if r.start <= source.len() => {
            Some(1 + memchr::memchr_iter(b'\n', &source.as_bytes()[..r.start]).count())
        }
        _ => e.line(),
    }
}

/// A template error in words: its kind, then its detail.
pub fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.kind().to_string();
    if let Some(d) = e.detail() {
        msg.push_str(": ");
        msg.push_str(d);
    }
    msg
}

/// The `multi-user.target.wants/` (etc.) symlinks `systemctl enable` would make for the units
/// among `files`: (link path, target path), from each unit's `[Install] WantedBy=`/`RequiredBy=`.
pub fn enable_links(files: &[Rendered]) -> Vec<(String, String)> {
    let mut links = Vec::new();
    for f in files {
        let Some(name) = f.path.strip_prefix("/etc/systemd/system/") else {
            continue;
        };
        if name.contains('/') || !validate::is_unit(name) {
            continue;
        }
        let text = String::from_utf8_lossy(&f.bytes);
        let mut section = "";
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                section = line;
                continue;
            }
            if section != "[Install]" {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let suffix = match key.trim() {
                "WantedBy" => "wants",
                "RequiredBy" => "requires",
                _ => continue,
            };
            for target in value.split_whitespace() {
                links.push((
                    format!("/etc/systemd/system/{target}.{suffix}/{name}"),
                    f.path.clone(),
                ));
            }
        }
    }
    links.sort();
    links.dedup();
    links
}

#[cfg(test)]
mod vars_tests {
    use super::*;

    fn read(src: &str) -> Option<Vec<String>> {
        let mut keys = BTreeSet::new();
        for c in code_regions(src) {
            vars_in(c, &mut keys)?;
        }
        Some(keys.into_iter().collect())
    }

    #[test]
    fn vars_read_by_templates() {
        assert_eq!(
            read("--v={{ vars.kubelet_verbosity | default(2) }} vars here {% if vars[\"a-b\"] %}x{% endif %}{{ myvars.c }}"),
            Some(vec!["a-b".to_string(), "kubelet_verbosity".to_string()])
        );
        assert_eq!(read("{% for k in vars %}{{ k }}{% endfor %}"), None);
        assert_eq!(read("{{ vars[name] }}"), None);
        assert_eq!(read("no code, vars in text"), Some(vec![]));
    }
}
