//! `secrets check`: every declared file of every node against the secrets directory, the CA and
//! the node. Each file is read and parsed once however many nodes take it (a CA, kube-proxy's
//! kubeconfig); the nodes are checked in parallel; a problem many nodes share is one finding
//! naming them all. Errors stop delivery; warnings (a certificate expiring within the margin,
//! an algorithm nodeforge does not check) do not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::kubeconfig::{self, Kubeconfig, Source};
use super::x509::{self, Cert, KeyError, PublicKey, Verified};
use super::{NodePlan, Planned};
use crate::manifest::SecretKind;

/// The most a secret file may hold: systemd refuses larger credentials (1 MiB), and no
/// certificate or kubeconfig comes near it.
pub const MAX_SECRET_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Certificates expiring within this margin are a warning.
    pub expiry_margin: Duration,
    /// How the margin was given (`30d`), for messages.
    pub margin_text: String,
    /// The time the validity periods are judged at.
    pub now: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem with one declared file, for the nodes that share it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub nodes: Vec<String>,
    /// The `[[secrets]]` entry.
    pub secret: String,
    /// The file in the secrets directory.
    pub file: PathBuf,
    /// What is wrong in it: `file`, `mode`, `subject`, `subjectAltName`, `notAfter`,
    /// `users[x].user.client-key-data` …
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Finding {
    /// `worker1: kubelet.pem (secrets/worker1.pem): subject: CN is …`.
    pub fn line(&self) -> String {
        let nodes = if self.nodes.len() <= 3 {
            self.nodes.join(", ")
        } else {
            format!(
                "{} and {} more nodes",
                self.nodes[..3].join(", "),
                self.nodes.len() - 3
            )
        };
        format!(
            "{nodes}: {} ({}): {}: {}",
            self.secret,
            self.file.display(),
            self.field,
            self.message
        )
    }
}

/// One file of one node, as checked.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedFile {
    pub name: String,
    pub kind: SecretKind,
    /// Where it is read from.
    pub file: PathBuf,
    /// Where it goes on the node, with what mode (decimal, as everywhere in `--json`) and owner.
    pub to: String,
    pub mode: u32,
    pub owner: String,
    /// The (first) certificate's notAfter, RFC 3339, for certificates and CAs.
    pub not_after: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeFiles {
    pub node: String,
    pub files: Vec<CheckedFile>,
}

#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub nodes: Vec<NodeFiles>,
    /// Errors first, then warnings; each in the order the nodes and entries were checked.
    pub findings: Vec<Finding>,
}

impl CheckOutcome {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }
}

/// A problem before it is tied to a node, entry and file.
#[derive(Debug, Clone)]
struct Issue {
    severity: Severity,
    field: String,
    message: String,
    hint: Option<String>,
}

fn error(field: impl Into<String>, message: impl Into<String>, hint: Option<String>) -> Issue {
    Issue {
        severity: Severity::Error,
        field: field.into(),
        message: message.into(),
        hint,
    }
}

fn warning(field: impl Into<String>, message: impl Into<String>, hint: Option<String>) -> Issue {
    Issue {
        severity: Severity::Warning,
        field: field.into(),
        message: message.into(),
        hint,
    }
}

/// What a file holds, parsed by its kind.
enum Content {
    Certs(Vec<Cert>),
    Key(PublicKey),
    Kube(Box<Kubeconfig>),
    /// A key of an algorithm nodeforge does not compare, or a plain file.
    Opaque,
}

/// A file of the secrets directory, read once: what is wrong with it as a file, and its
/// content when it parsed.
struct Loaded {
    issues: Vec<Issue>,
    content: Option<Content>,
}

fn field_of(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::Ca | SecretKind::Certificate => "certificate",
        SecretKind::Key => "private key",
        SecretKind::Kubeconfig => "kubeconfig",
        SecretKind::File => "file",
    }
}

fn load(path: &Path, kind: SecretKind) -> Loaded {
    use std::os::unix::fs::PermissionsExt as _;
    let mut issues = Vec::new();
    let fail = |issues: Vec<Issue>| Loaded {
        issues,
        content: None,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail(vec![error(
                "file",
                "missing",
                Some("put the node's file there (the README's Secrets section makes them with openssl), or change the entry's `from` in the manifest".into()),
            )])
        }
        Err(e) => return fail(vec![error("file", format!("cannot read: {e}"), None)]),
    };
    if !meta.is_file() {
        return fail(vec![error(
            "file",
            "is not a regular file",
            Some("a secret is a regular file (a symlink to one is followed)".into()),
        )]);
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        issues.push(error(
            "mode",
            format!(
                "{mode:04o}: group or others can read it; a secret is readable only by its owner"
            ),
            Some(format!(
                "chmod 600 {} (or chmod -R go= on the secrets directory)",
                path.display()
            )),
        ));
    }
    if meta.len() > MAX_SECRET_BYTES {
        issues.push(error(
            "file",
            format!(
                "is {} bytes; a secret holds at most {MAX_SECRET_BYTES} (systemd's limit for a credential)",
                meta.len()
            ),
            None,
        ));
        return fail(issues);
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => zeroize::Zeroizing::new(b),
        Err(e) => {
            issues.push(error("file", format!("cannot read: {e}"), None));
            return fail(issues);
        }
    };
    if kind == SecretKind::File {
        return Loaded {
            issues,
            content: Some(Content::Opaque),
        };
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        issues.push(error(
            field_of(kind),
            "is not text: PEM and YAML files are",
            Some("write PEM (openssl's default output), not DER".into()),
        ));
        return fail(issues);
    };
    let content = match kind {
        SecretKind::Ca | SecretKind::Certificate => match x509::certificates(text) {
            Ok(c) => Some(Content::Certs(c)),
            Err(e) => {
                issues.push(error("certificate", e, None));
                None
            }
        },
        SecretKind::Key => match x509::private_key_public(text) {
            Ok(k) => Some(Content::Key(k)),
            Err(KeyError::Invalid(e)) => {
                issues.push(error("private key", e, None));
                None
            }
            Err(KeyError::Unsupported(e)) => {
                issues.push(warning(
                    "private key",
                    format!("{e}: whether it is the certificate's key is not checked"),
                    None,
                ));
                Some(Content::Opaque)
            }
        },
        SecretKind::Kubeconfig => match kubeconfig::parse(text) {
            Ok(k) => Some(Content::Kube(Box::new(k))),
            Err(e) => {
                issues.push(error(e.field, e.message, None));
                None
            }
        },
        SecretKind::File => Some(Content::Opaque),
    };
    Loaded { issues, content }
}

/// Check the planned secrets of every node against the files of `dir`.
pub fn check(dir: &Path, plans: &[NodePlan<'_>], opts: &CheckOptions) -> CheckOutcome {
    use rayon::prelude::*;
    // Every distinct file, read and parsed once.
    let mut keys: Vec<(PathBuf, SecretKind)> = plans
        .iter()
        .flat_map(|p| p.files.iter().map(|f| (dir.join(&f.from), f.decl.kind)))
        .collect();
    keys.sort();
    keys.dedup();
    let loaded: HashMap<(PathBuf, SecretKind), Loaded> = keys
        .into_par_iter()
        .map(|(path, kind)| {
            let l = load(&path, kind);
            ((path, kind), l)
        })
        .collect();
    let per_node: Vec<(NodeFiles, Vec<Finding>)> = plans
        .par_iter()
        .map(|plan| {
            NodeCheck {
                dir,
                plan,
                loaded: &loaded,
                opts,
            }
            .run()
        })
        .collect();
    let mut nodes = Vec::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut seen: HashMap<(Severity, String, PathBuf, String, String), usize> = HashMap::new();
    for (files, fs) in per_node {
        nodes.push(files);
        for f in fs {
            let key = (
                f.severity,
                f.secret.clone(),
                f.file.clone(),
                f.field.clone(),
                f.message.clone(),
            );
            match seen.get(&key) {
                Some(&i) => findings[i].nodes.extend(f.nodes),
                None => {
                    seen.insert(key, findings.len());
                    findings.push(f);
                }
            }
        }
    }
    findings.sort_by_key(|f| f.severity);
    CheckOutcome { nodes, findings }
}

/// What a certificate must be: signed by the CA, its identity, its SANs.
struct Expect<'a> {
    cn: Option<&'a str>,
    o: &'a [String],
    serving: bool,
}

struct NodeCheck<'a, 'm> {
    dir: &'a Path,
    plan: &'a NodePlan<'m>,
    loaded: &'a HashMap<(PathBuf, SecretKind), Loaded>,
    opts: &'a CheckOptions,
}

impl<'m> NodeCheck<'_, 'm> {
    fn loaded(&self, p: &Planned<'_>) -> Option<&Loaded> {
        self.loaded.get(&(self.dir.join(&p.from), p.decl.kind))
    }

    /// The certificates of the node's entry `name`, when they parsed.
    fn certs_of(&self, name: &str) -> Option<(&Planned<'m>, &[Cert])> {
        let p = self.plan.get(name)?;
        match self.loaded(p)?.content.as_ref()? {
            Content::Certs(c) if !c.is_empty() => Some((p, c.as_slice())),
            _ => None,
        }
    }

    /// The CA of an entry: its name and certificates, when the manifest declares one and it
    /// parsed (a CA that did not is reported once, as itself).
    fn ca_of<'s>(&'s self, p: &'s Planned<'_>) -> Option<(&'s str, &'s [Cert])> {
        let name = p.decl.ca.as_deref()?;
        self.certs_of(name).map(|(_, c)| (name, c))
    }

    /// The node's entry that puts a file at `to` on the node.
    fn at_path(&self, to: &str) -> Option<&Planned<'m>> {
        self.plan.files.iter().find(|f| f.to == to)
    }

    fn run(&self) -> (NodeFiles, Vec<Finding>) {
        let node = self.plan.node.name.to_string();
        let mut findings = Vec::new();
        let mut files = Vec::new();
        for p in &self.plan.files {
            let file = self.dir.join(&p.from);
            let mut issues = Vec::new();
            let mut not_after = None;
            if let Some(l) = self.loaded(p) {
                issues.extend(l.issues.iter().cloned());
                match &l.content {
                    Some(Content::Certs(certs)) if p.decl.kind == SecretKind::Ca => {
                        not_after = certs.first().map(Cert::not_after_text);
                        issues.extend(self.check_ca(certs));
                    }
                    Some(Content::Certs(certs)) => {
                        not_after = certs.first().map(Cert::not_after_text);
                        let exp = Expect {
                            cn: p.cn.as_deref(),
                            o: &p.o,
                            serving: p.decl.serving,
                        };
                        issues.extend(self.check_cert(certs, &exp, self.ca_of(p), ""));
                    }
                    Some(Content::Key(k)) => issues.extend(self.check_key(p, k)),
                    Some(Content::Kube(k)) => issues.extend(self.check_kubeconfig(p, k)),
                    Some(Content::Opaque) | None => {}
                }
            }
            findings.extend(issues.into_iter().map(|i| Finding {
                severity: i.severity,
                nodes: vec![node.clone()],
                secret: p.decl.name.clone(),
                file: file.clone(),
                field: i.field,
                message: i.message,
                hint: i.hint,
            }));
            files.push(CheckedFile {
                name: p.decl.name.clone(),
                kind: p.decl.kind,
                file,
                to: p.to.clone(),
                mode: p.decl.mode,
                owner: p.decl.owner.clone(),
                not_after,
            });
        }
        (NodeFiles { node, files }, findings)
    }

    /// notBefore and notAfter against the clock and the margin.
    fn validity(&self, c: &Cert, prefix: &str) -> Vec<Issue> {
        let now = self.opts.now;
        let mut out = Vec::new();
        if x509::until(now, c.not_before()).is_ok_and(|d| !d.is_zero()) {
            out.push(error(
                format!("{prefix}notBefore"),
                format!("{}: not valid before {}", c.subject(), c.not_before_text()),
                Some("check the clock of the machine that issued it, or issue it again".into()),
            ));
        }
        match x509::until(now, c.not_after()) {
            Err(_) => out.push(error(
                format!("{prefix}notAfter"),
                format!("{}: expired on {}", c.subject(), c.not_after_text()),
                Some("issue a new certificate from the CA (the README's Secrets section shows how) and check again".into()),
            )),
            Ok(left) if left < self.opts.expiry_margin => out.push(warning(
                format!("{prefix}notAfter"),
                format!(
                    "{}: expires on {}, in {} days (within --expiry-margin {})",
                    c.subject(),
                    c.not_after_text(),
                    left.as_secs() / 86_400,
                    self.opts.margin_text
                ),
                Some("renew it before it expires: kubelet and kube-proxy stop talking to the API server then".into()),
            )),
            Ok(_) => {}
        }
        out
    }

    fn check_ca(&self, certs: &[Cert]) -> Vec<Issue> {
        let mut out = Vec::new();
        for c in certs {
            out.extend(self.validity(c, ""));
            if c.is_ca() == Some(false) {
                out.push(error(
                    "basicConstraints",
                    format!("{}: is not a CA (CA:FALSE)", c.subject()),
                    Some(
                        "the CA entry names the cluster's CA certificate (ca.pem), not a node's"
                            .into(),
                    ),
                ));
            }
            if c.self_issued() {
                match c.signed_by(c) {
                    Verified::Bad => out.push(error(
                        "signature",
                        format!(
                            "{}: its self-signature does not verify: the file is damaged",
                            c.subject()
                        ),
                        None,
                    )),
                    Verified::Unsupported(what) => out.push(warning(
                        "signature",
                        format!("{}: not checked: {what}", c.subject()),
                        None,
                    )),
                    Verified::Good => {}
                }
            }
        }
        out
    }

    /// A certificate (the first of `certs`; the rest are intermediates) against the CA and
    /// what the manifest expects of it. `prefix` names where it is (a kubeconfig's key).
    fn check_cert(
        &self,
        certs: &[Cert],
        exp: &Expect<'_>,
        ca: Option<(&str, &[Cert])>,
        prefix: &str,
    ) -> Vec<Issue> {
        let Some(leaf) = certs.first() else {
            return vec![error(
                format!("{prefix}certificate"),
                "holds no certificate",
                None,
            )];
        };
        let mut out = self.validity(leaf, prefix);
        if let Some((name, cas)) = ca {
            out.extend(issued_by(leaf, &certs[1..], name, cas, prefix));
        }
        self.identity(leaf, exp, prefix, &mut out);
        out
    }

    /// Subject, extended key usage and subjectAltName against what the entry expects.
    fn identity(&self, leaf: &Cert, exp: &Expect<'_>, prefix: &str, out: &mut Vec<Issue>) {
        let node = self.plan.node;
        let subj = |o: &[String]| {
            let mut s = format!("/CN={}", exp.cn.unwrap_or("…"));
            for x in o {
                s.push_str(&format!("/O={x}"));
            }
            s
        };
        if let Some(cn) = exp.cn {
            let have = leaf.subject_cn();
            if have.len() != 1 || have[0] != cn {
                let node_hint = if cn.starts_with("system:node:") {
                    "the Node authorizer knows a kubelet by CN=system:node:<node name> and O=system:nodes; "
                } else {
                    ""
                };
                out.push(error(
                    format!("{prefix}subject"),
                    match have.as_slice() {
                        [] => format!("has no CN; expected CN `{cn}`"),
                        [one] => format!("CN is `{one}`, not `{cn}`"),
                        many => format!(
                            "has {} CNs ({}); expected one, `{cn}`",
                            many.len(),
                            many.join(", ")
                        ),
                    },
                    Some(format!(
                        "{node_hint}issue this node's certificate with -subj \"{}\"",
                        subj(exp.o)
                    )),
                ));
            }
        }
        let have_o = leaf.subject_o();
        let missing: Vec<&String> = exp.o.iter().filter(|o| !have_o.contains(o)).collect();
        if !missing.is_empty() {
            out.push(error(
                format!("{prefix}subject"),
                format!(
                    "O lacks {} (has {})",
                    missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
                    if have_o.is_empty() {
                        "no O".to_string()
                    } else {
                        have_o.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
                    }
                ),
                Some(format!(
                    "Kubernetes reads a client certificate's O as its groups{}: issue it with -subj \"{}\"",
                    if missing.iter().any(|m| *m == "system:nodes") {
                        " (the Node authorizer requires system:nodes)"
                    } else {
                        ""
                    },
                    subj(exp.o)
                )),
            ));
        }
        if (exp.cn.is_some() || !exp.o.is_empty()) && !leaf.allows_client_auth() {
            out.push(error(
                format!("{prefix}extendedKeyUsage"),
                "lacks clientAuth: the API server refuses it as a client certificate",
                Some("issue it with -addext \"extendedKeyUsage=clientAuth,serverAuth\"".into()),
            ));
        }
        if exp.serving {
            let dns = node.name.to_string();
            let ip = node.ip.to_string();
            let add = format!(
                "issue it with -addext \"subjectAltName=DNS:{dns},IP:{ip}\" (the node's name and address in the manifest)"
            );
            match leaf.san() {
                None => out.push(error(
                    format!("{prefix}subjectAltName"),
                    format!("missing: kubelet's serving certificate must name the node (DNS:{dns}, IP:{ip})"),
                    Some(add),
                )),
                Some(san) => {
                    let mut lacks = Vec::new();
                    if !san.dns.contains(&dns) {
                        lacks.push(format!("DNS:{dns}"));
                    }
                    if !san.ips.contains(&ip) {
                        lacks.push(format!("IP:{ip}"));
                    }
                    if !lacks.is_empty() {
                        out.push(error(
                            format!("{prefix}subjectAltName"),
                            format!("lacks {} (has {})", lacks.join(", "), san.describe()),
                            Some(add),
                        ));
                    }
                }
            }
            if !leaf.allows_server_auth() {
                out.push(error(
                    format!("{prefix}extendedKeyUsage"),
                    "lacks serverAuth: kubelet cannot serve TLS with it",
                    Some("issue it with -addext \"extendedKeyUsage=clientAuth,serverAuth\"".into()),
                ));
            }
        }
    }

    fn check_key(&self, p: &Planned<'_>, key: &PublicKey) -> Vec<Issue> {
        let Some(name) = p.decl.key_of.as_deref() else {
            return Vec::new();
        };
        let Some((cp, certs)) = self.certs_of(name) else {
            return Vec::new();
        };
        key_matches(
            key,
            &certs[0],
            "public key",
            name,
            &self.dir.join(&cp.from).display().to_string(),
        )
        .into_iter()
        .collect()
    }

    fn check_kubeconfig(&self, p: &Planned<'_>, k: &Kubeconfig) -> Vec<Issue> {
        let mut out = Vec::new();
        let ck = &k.cluster_key;
        let uk = &k.user_key;
        match &k.server {
            None => out.push(error(
                format!("{ck}.server"),
                "names no server",
                Some("set it to the API server's URL: kubectl config set-cluster … --server=https://HOST:6443".into()),
            )),
            Some(s) if !s.starts_with("https://") => out.push(error(
                format!("{ck}.server"),
                format!("`{s}` is not an https:// URL"),
                Some("the API server speaks TLS: https://HOST:6443".into()),
            )),
            Some(s) => {
                if let Some(want) = p.server.as_deref().filter(|w| *w != s) {
                    out.push(error(
                        format!("{ck}.server"),
                        format!("is `{s}`, not `{want}` (the manifest's `server`)"),
                        Some("make the kubeconfig again with the cluster's server".into()),
                    ));
                }
            }
        }
        if k.insecure {
            out.push(error(
                format!("{ck}.insecure-skip-tls-verify"),
                "is true: the API server's certificate would not be checked at all",
                Some("remove it and embed the cluster's CA (--certificate-authority=ca.pem --embed-certs=true)".into()),
            ));
        }
        let ca = self.ca_of(p);
        match &k.ca {
            None if !k.insecure => out.push(error(
                format!("{ck}.certificate-authority-data"),
                "missing: the kubeconfig carries no CA (nor a certificate-authority path)",
                Some("embed the cluster's CA: kubectl config set-cluster … --certificate-authority=ca.pem --embed-certs=true".into()),
            )),
            None => {}
            Some(Source::Data(pem)) => match x509::certificates(pem) {
                Err(e) => out.push(error(format!("{ck}.certificate-authority-data"), e, None)),
                Ok(embedded) => {
                    if let Some((name, cas)) = ca {
                        if !embedded.iter().any(|e| cas.iter().any(|c| c.der == e.der)) {
                            out.push(error(
                                format!("{ck}.certificate-authority-data"),
                                format!(
                                    "is another CA ({}), not `{name}` ({})",
                                    embedded.first().map_or_else(String::new, Cert::subject),
                                    cas[0].subject()
                                ),
                                Some(format!("embed the cluster's CA, the file of `{name}`: kubectl config set-cluster … --certificate-authority=ca.pem --embed-certs=true")),
                            ));
                        }
                    }
                }
            },
            Some(Source::Path(path)) => {
                let want = p.decl.ca.as_deref().and_then(|n| self.plan.get(n));
                match want {
                    Some(w) if w.to == *path => {}
                    Some(w) => out.push(error(
                        format!("{ck}.certificate-authority"),
                        format!("points at `{path}`, not where the CA `{}` goes ({})", w.decl.name, w.to),
                        Some(format!("point it at {} or embed the CA (--embed-certs=true)", w.to)),
                    )),
                    None if self.at_path(path).is_none() => out.push(error(
                        format!("{ck}.certificate-authority"),
                        format!("points at `{path}`, which no [[secrets]] entry of this node puts there"),
                        Some("embed the CA (--embed-certs=true), or declare the file in [[secrets]]".into()),
                    )),
                    None => {}
                }
            }
        }
        let exp = Expect {
            cn: p.cn.as_deref(),
            o: &p.o,
            serving: false,
        };
        // The client certificate: embedded (checked here in full) or another entry's file
        // (checked as that entry; here only that it is the identity this kubeconfig needs).
        let mut client: Option<(Cert, String)> = None;
        match &k.client_cert {
            Some(Source::Data(pem)) => {
                let field = format!("{uk}.client-certificate-data");
                match x509::certificates(pem) {
                    Err(e) => out.push(error(field, e, None)),
                    Ok(mut certs) => {
                        out.extend(self.check_cert(&certs, &exp, ca, &format!("{field} ")));
                        if !certs.is_empty() {
                            client = Some((certs.swap_remove(0), field));
                        }
                    }
                }
            }
            Some(Source::Path(path)) => {
                let field = format!("{uk}.client-certificate");
                match self.at_path(path) {
                    Some(e) => {
                        if let Some((_, certs)) = self.certs_of(&e.decl.name) {
                            let mut ids = Vec::new();
                            self.identity(&certs[0], &exp, &format!("{field} "), &mut ids);
                            out.extend(ids);
                            if let Ok(c) = Cert::from_der(&certs[0].der) {
                                client = Some((c, field));
                            }
                        }
                    }
                    None => out.push(error(
                        field,
                        format!("points at `{path}`, which no [[secrets]] entry of this node puts there"),
                        Some("embed the client certificate (--embed-certs=true), or declare the file in [[secrets]]".into()),
                    )),
                }
            }
            None => match &k.other_auth {
                Some(how) if exp.cn.is_some() || !exp.o.is_empty() => out.push(error(
                    uk.clone(),
                    format!(
                        "authenticates with `{how}`, not a client certificate: its identity ({}) cannot be checked",
                        exp.cn.map_or_else(|| exp.o.join(", "), |c| format!("CN {c}"))
                    ),
                    Some("use the client certificate the manifest's `cn`/`o` describe (kubectl config set-credentials … --client-certificate=… --client-key=… --embed-certs=true)".into()),
                )),
                Some(_) => {}
                None => out.push(error(
                    uk.clone(),
                    "has no client certificate (client-certificate-data) or other credentials",
                    Some("kubectl config set-credentials … --client-certificate=CERT --client-key=KEY --embed-certs=true".into()),
                )),
            },
        }
        if let Some((cert, cert_field)) = client {
            match &k.client_key {
                None => out.push(error(
                    format!("{uk}.client-key-data"),
                    "missing: a client certificate needs its key",
                    Some(
                        "kubectl config set-credentials … --client-key=KEY --embed-certs=true"
                            .into(),
                    ),
                )),
                Some(Source::Data(pem)) => {
                    let field = format!("{uk}.client-key-data");
                    match x509::private_key_public(pem) {
                        Ok(key) => out.extend(key_matches(
                            &key,
                            &cert,
                            &field,
                            &cert_field,
                            "the kubeconfig",
                        )),
                        Err(KeyError::Invalid(e)) => out.push(error(field, e, None)),
                        Err(KeyError::Unsupported(e)) => out.push(warning(
                            field,
                            format!(
                                "{e}: whether it is the client certificate's key is not checked"
                            ),
                            None,
                        )),
                    }
                }
                Some(Source::Path(path)) => {
                    let field = format!("{uk}.client-key");
                    match self.at_path(path).and_then(|e| self.loaded(e)) {
                        Some(l) => {
                            if let Some(Content::Key(key)) = &l.content {
                                out.extend(key_matches(key, &cert, &field, &cert_field, "the kubeconfig"));
                            }
                        }
                        None => out.push(error(
                            field,
                            format!("points at `{path}`, which no [[secrets]] entry of this node puts there"),
                            Some("embed the key (--embed-certs=true), or declare the file in [[secrets]]".into()),
                        )),
                    }
                }
            }
        }
        out
    }
}

/// Whether `key` is the key of `cert` (named `cert_name` in `cert_where`).
fn key_matches(
    key: &PublicKey,
    cert: &Cert,
    field: &str,
    cert_name: &str,
    cert_where: &str,
) -> Option<Issue> {
    match cert.public_key() {
        Ok(c) if c == *key => None,
        Ok(c) => Some(error(
            field,
            format!(
                "is not the key of `{cert_name}` ({cert_where}): their public keys differ ({} key vs {} certificate {})",
                key.algorithm(),
                c.algorithm(),
                cert.subject()
            ),
            Some("a node's key and certificate belong together: `openssl pkey -in KEY -pubout` and `openssl x509 -in CERT -noout -pubkey` must print the same; copy the key the certificate was issued for".into()),
        )),
        Err(e) => Some(warning(
            field,
            format!("the certificate `{cert_name}` holds {e}: whether this is its key is not checked"),
            None,
        )),
    }
}

/// Whether `leaf` chains up to one of `cas` (through `chain`, the intermediates after it).
fn issued_by(leaf: &Cert, chain: &[Cert], name: &str, cas: &[Cert], prefix: &str) -> Option<Issue> {
    let hint = || {
        Some(format!(
            "issue it from the cluster's CA (`{name}`): openssl x509 -req -CA ca.pem -CAkey ca-key.pem …"
        ))
    };
    if let Some(weak) = std::iter::once(leaf).chain(chain).find(|c| c.sha1_signed()) {
        return Some(error(
            format!("{prefix}signature"),
            format!(
                "{}: signed with SHA-1, which Kubernetes (Go's crypto/x509) refuses",
                weak.subject()
            ),
            Some("issue it again with SHA-256 (openssl's default: -sha256)".into()),
        ));
    }
    let mut cur = leaf;
    for _ in 0..=chain.len() {
        if let Some(ca) = cas.iter().find(|c| cur.names_issuer(c)) {
            return match cur.signed_by(ca) {
                Verified::Good => None,
                Verified::Bad => Some(error(
                    format!("{prefix}signature"),
                    format!(
                        "{}: its signature does not verify with the key of the CA `{name}` ({}): another CA of that name issued it",
                        cur.subject(),
                        ca.subject()
                    ),
                    hint(),
                )),
                Verified::Unsupported(what) => Some(warning(
                    format!("{prefix}signature"),
                    format!("{}: not checked against the CA `{name}`: {what}", cur.subject()),
                    None,
                )),
            };
        }
        let Some(next) = chain.iter().find(|c| cur.names_issuer(c)) else {
            break;
        };
        match cur.signed_by(next) {
            Verified::Good => cur = next,
            Verified::Bad => {
                return Some(error(
                    format!("{prefix}signature"),
                    format!(
                        "{}: its signature does not verify with the key of the intermediate {} in the same file",
                        cur.subject(),
                        next.subject()
                    ),
                    hint(),
                ))
            }
            Verified::Unsupported(what) => {
                return Some(warning(
                    format!("{prefix}signature"),
                    format!("{}: not checked: {what}", cur.subject()),
                    None,
                ))
            }
        }
    }
    Some(error(
        format!("{prefix}issuer"),
        format!(
            "{} was issued by {}, not by the CA `{name}` ({})",
            leaf.subject(),
            cur.issuer(),
            cas[0].subject()
        ),
        hint(),
    ))
}
