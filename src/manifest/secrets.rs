//! `[[secrets]]`: the secret files each node needs, as data. Each entry names one file of the
//! secrets directory (`from`, a template), where it goes on the node (`to`, a template), its
//! mode and owner there, which nodes take it, and what it is (`kind`), so that
//! `nodeforge secrets check` knows what to verify. The entries are checked here once, where
//! they are written (`file:line:col`); `crate::credentials` renders them per node and checks
//! the files.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::raw::Ctx;
use super::{ManifestError, Node, NodeName, Role};

/// The longest credential name: QEMU's fw_cfg file names hold at most 55 bytes, and
/// `opt/io.systemd.credentials/` takes 27 of them.
pub const MAX_SECRET_NAME: usize = 55 - FW_CFG_PREFIX.len();

/// Where systemd (252 and later) looks for system credentials among QEMU's fw_cfg files.
pub const FW_CFG_PREFIX: &str = "opt/io.systemd.credentials/";

/// What a declared secret file is, and so what is checked of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    /// The cluster's certificate authority (PEM certificates): what the others are signed by.
    Ca,
    /// A PEM X.509 certificate signed by the CA (intermediates may follow it in the file).
    Certificate,
    /// The PEM private key of a certificate (`key-of`): RSA, ECDSA P-256 or Ed25519.
    Key,
    /// A kubeconfig: a server, the CA, and a client certificate and key (embedded or by path).
    Kubeconfig,
    /// Any other file: only its presence and mode are checked.
    File,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Ca => "ca",
            SecretKind::Certificate => "certificate",
            SecretKind::Key => "key",
            SecretKind::Kubeconfig => "kubeconfig",
            SecretKind::File => "file",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            SecretKind::Ca,
            SecretKind::Certificate,
            SecretKind::Key,
            SecretKind::Kubeconfig,
            SecretKind::File,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Kinds that hold a private key (or may: a kubeconfig's client key): never group or
    /// world readable on the node.
    pub fn is_private(self) -> bool {
        matches!(self, SecretKind::Key | SecretKind::Kubeconfig)
    }
}

/// One `[[secrets]]` entry, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretDecl {
    /// Its name, also its systemd credential id (`/run/credentials/@system/<name>`).
    pub name: String,
    pub kind: SecretKind,
    /// Template: the file's path inside the secrets directory.
    pub from: String,
    /// Template: its absolute path on the node.
    pub to: String,
    /// Its permission bits on the node.
    pub mode: u32,
    /// `user:group` on the node.
    pub owner: String,
    /// The nodes that take it (all when absent).
    pub nodes: Option<BTreeSet<NodeName>>,
    /// The roles whose nodes take it (all when absent).
    pub roles: Option<BTreeSet<Role>>,
    /// The units that read it: the placement unit is ordered before them and wanted by them.
    pub units: Vec<String>,
    /// The `kind = "ca"` entry that signs it (certificates and kubeconfigs), when the manifest
    /// declares a CA.
    pub ca: Option<String>,
    /// A serving certificate: its subjectAltName holds the node's hostname and address.
    pub serving: bool,
    /// Template: the subject CN (the Kubernetes user) of the certificate, or of the
    /// kubeconfig's client certificate.
    pub cn: Option<String>,
    /// Templates: subject O values (Kubernetes groups) it must carry.
    pub o: Vec<String>,
    /// `kind = "key"`: the certificate entry whose key it is.
    pub key_of: Option<String>,
    /// Template: `kind = "kubeconfig"`: the server it must name.
    pub server: Option<String>,
    /// The manifest line of the entry, for messages.
    pub line: usize,
}

impl SecretDecl {
    /// Whether `node` takes this secret.
    pub fn applies_to(&self, node: &Node) -> bool {
        self.nodes.as_ref().is_none_or(|n| n.contains(&node.name))
            && self.roles.as_ref().is_none_or(|r| r.contains(&node.role))
    }

    /// The fields that are templates, by their manifest key, for rendering.
    pub fn templates(&self) -> Vec<(&'static str, &str)> {
        let mut t = vec![("from", self.from.as_str()), ("to", self.to.as_str())];
        if let Some(cn) = &self.cn {
            t.push(("cn", cn));
        }
        t.extend(self.o.iter().map(|o| ("o", o.as_str())));
        if let Some(s) = &self.server {
            t.push(("server", s));
        }
        t
    }
}

/// One `[[secrets]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawSecret {
    name: Spanned<String>,
    kind: Spanned<String>,
    from: Spanned<String>,
    to: Spanned<String>,
    mode: Spanned<toml::Value>,
    owner: Option<Spanned<String>>,
    nodes: Option<Spanned<Vec<Spanned<String>>>>,
    roles: Option<Spanned<Vec<Spanned<Role>>>>,
    #[serde(default)]
    units: Vec<Spanned<String>>,
    ca: Option<Spanned<String>>,
    serving: Option<Spanned<bool>>,
    cn: Option<Spanned<String>>,
    o: Option<Spanned<Vec<Spanned<String>>>>,
    key_of: Option<Spanned<String>>,
    server: Option<Spanned<String>>,
}

/// A systemd credential name that is also a file name in the secrets' places: letters, digits,
/// `.`, `_`, `-`; not starting with `.`; short enough for an fw_cfg file name.
fn check_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(format!(
            "`{s}` is not a valid secret name: use letters, digits, `.`, `_` and `-` (it is the systemd credential id)"
        ));
    }
    if s.len() > MAX_SECRET_NAME {
        return Err(format!(
            "`{s}` is {} characters long; a secret name has at most {MAX_SECRET_NAME} (QEMU's fw_cfg names hold 55 bytes, `{FW_CFG_PREFIX}` included)",
            s.len()
        ));
    }
    Ok(())
}

/// Characters a path on the node may hold: it goes into a unit's command line and a
/// cloud-config unquoted, so no spaces, quotes, `%` (a unit specifier) or `\`.
pub fn is_plain_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '@' | ':' | '=')
}

/// Where a secret may not go on the node: the image's read-only layers, kernel file systems,
/// and the places the credentials themselves live.
pub const FORBIDDEN_TARGETS: &[&str] = &[
    "/usr",
    "/opt",
    "/proc",
    "/sys",
    "/dev",
    "/bin",
    "/sbin",
    "/lib",
    "/run/credentials",
    PLACED_DIR,
];

/// Where the placement unit copies each secret on the node (a tmpfs): `/run/nodeforge/secrets`.
pub const PLACED_DIR: &str = "/run/nodeforge/secrets";

/// Check a rendered `to`: an absolute, clean path of plain characters, outside
/// [`FORBIDDEN_TARGETS`].
pub fn check_target(to: &str) -> Result<(), String> {
    if !to.starts_with('/')
        || to.ends_with('/')
        || to
            .split('/')
            .skip(1)
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "`{to}` must be an absolute file path without `.`, `..` or `//`"
        ));
    }
    if let Some(c) = to.chars().find(|c| !is_plain_path_char(*c)) {
        return Err(format!(
            "`{to}` holds `{}`: a path on the node may hold letters, digits and `/._-+@:=` only",
            c.escape_default()
        ));
    }
    if let Some(top) = FORBIDDEN_TARGETS
        .iter()
        .find(|t| to == **t || to.starts_with(&format!("{t}/")))
    {
        return Err(format!(
            "`{to}` is under {top}, where a secret cannot go (the image's read-only layers, kernel file systems, or where the credentials themselves live)"
        ));
    }
    Ok(())
}

/// Check a rendered `from`: a relative, clean path inside the secrets directory.
pub fn check_source(from: &str) -> Result<(), String> {
    if from.is_empty()
        || from.starts_with('/')
        || from.ends_with('/')
        || from
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "`{from}` must be a relative file path inside the secrets directory, without `.`, `..` or `//`"
        ));
    }
    if from.chars().any(char::is_control) {
        return Err(format!(
            "`{}` holds a control character",
            from.escape_default()
        ));
    }
    Ok(())
}

/// `"0600"`: octal permission bits, as a string (a TOML integer `600` would be decimal).
fn parse_mode(v: &toml::Value) -> Result<u32, String> {
    let toml::Value::String(s) = v else {
        return Err(format!(
            "write the mode as a string of octal digits, like \"0600\" (not {v})"
        ));
    };
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && digits.len() <= 4 && m <= 0o777 => Ok(m),
        Ok(_) if !digits.is_empty() && digits.len() <= 4 => Err(format!(
            "mode \"{s}\" sets setuid, setgid or sticky bits, which a secret file never needs"
        )),
        _ => Err(format!(
            "\"{s}\" is not a mode: write octal permission bits, like \"0600\""
        )),
    }
}

/// `user` or `user:group` (names or numeric ids); `user` alone means group root, as `install -o`
/// and cloud-init's `owner` leave it.
fn parse_owner(s: &str) -> Result<String, String> {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 32
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && !p.starts_with('-')
    };
    match s.split_once(':') {
        Some((u, g)) if part(u) && part(g) => Ok(s.to_string()),
        None if part(s) => Ok(format!("{s}:root")),
        _ => Err(format!(
            "`{s}` is not an owner: write `user` or `user:group` (names or numeric ids)"
        )),
    }
}

/// A unit name a `[Install] WantedBy=` and `Before=` can hold.
fn check_unit(s: &str) -> Result<(), String> {
    const SUFFIXES: &[&str] = &[
        ".service", ".socket", ".timer", ".mount", ".target", ".path", ".slice",
    ];
    let ok = SUFFIXES.iter().any(|x| s.len() > x.len() && s.ends_with(x))
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b':'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{s}` is not a unit name (like kubelet.service)"))
    }
}

/// Check a template's syntax once (it is rendered per node later).
fn check_template(s: &str) -> Result<(), String> {
    let env = minijinja::Environment::new();
    env.template_from_str(s).map(|_| ()).map_err(|e| {
        let mut msg = e.kind().to_string();
        if let Some(d) = e.detail() {
            msg.push_str(": ");
            msg.push_str(d);
        }
        msg
    })
}

/// Validate the `[[secrets]]` entries against the nodes.
pub(super) fn validate(
    ctx: &Ctx<'_>,
    raw: &[Spanned<RawSecret>],
    nodes: &BTreeMap<NodeName, Node>,
) -> Result<Vec<SecretDecl>, ManifestError> {
    let mut decls: Vec<SecretDecl> = Vec::new();
    // name → the span of its `name`, for references and duplicates.
    let mut spans: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for entry in raw {
        let r = entry.get_ref();
        let key = |f: &str| format!("secrets.{f}");
        let name = r.name.get_ref().clone();
        check_name(&name).map_err(|e| ctx.err(r.name.span(), key("name"), e))?;
        if let Some(first) = spans.get(&name) {
            return Err(ctx.err(
                r.name.span(),
                key("name"),
                format!(
                    "secret `{name}` is declared twice (first on line {})",
                    ctx.src.location(first.clone()).line
                ),
            ));
        }
        spans.insert(name.clone(), r.name.span());
        let kind = SecretKind::parse(r.kind.get_ref()).ok_or_else(|| {
            ctx.err(
                r.kind.span(),
                key("kind"),
                format!(
                    "`{}` is not a kind of secret (ca, certificate, key, kubeconfig, file)",
                    r.kind.get_ref()
                ),
            )
        })?;
        for (f, v) in [("from", &r.from), ("to", &r.to)] {
            check_template(v.get_ref()).map_err(|e| ctx.err(v.span(), key(f), e))?;
        }
        if !r.to.get_ref().starts_with('/') {
            return Err(ctx.err(
                r.to.span(),
                key("to"),
                format!("`{}` must be an absolute path on the node", r.to.get_ref()),
            ));
        }
        if !r.to.get_ref().contains("{{") {
            check_target(r.to.get_ref()).map_err(|e| ctx.err(r.to.span(), key("to"), e))?;
        }
        if !r.from.get_ref().contains("{{") {
            check_source(r.from.get_ref()).map_err(|e| ctx.err(r.from.span(), key("from"), e))?;
        }
        let mode =
            parse_mode(r.mode.get_ref()).map_err(|e| ctx.err(r.mode.span(), key("mode"), e))?;
        if kind.is_private() && mode & 0o077 != 0 {
            return Err(ctx.err(
                r.mode.span(),
                key("mode"),
                format!(
                    "a {} holds a private key: mode {mode:04o} lets group or others read it on the node (use \"0600\" or \"0400\")",
                    kind.as_str()
                ),
            ));
        }
        let owner = match &r.owner {
            Some(o) => parse_owner(o.get_ref()).map_err(|e| ctx.err(o.span(), key("owner"), e))?,
            None => "root:root".to_string(),
        };
        let node_set = match &r.nodes {
            None => None,
            Some(list) => {
                let mut set = BTreeSet::new();
                for n in list.get_ref() {
                    let name = NodeName::new(n.get_ref())
                        .ok()
                        .filter(|name| nodes.contains_key(name))
                        .ok_or_else(|| {
                            ctx.err(
                                n.span(),
                                key("nodes"),
                                format!("`{}` is not a node of the manifest", n.get_ref()),
                            )
                        })?;
                    set.insert(name);
                }
                Some(set)
            }
        };
        let roles = r
            .roles
            .as_ref()
            .map(|l| l.get_ref().iter().map(|r| *r.get_ref()).collect());
        let mut units = Vec::new();
        for u in &r.units {
            check_unit(u.get_ref()).map_err(|e| ctx.err(u.span(), key("units"), e))?;
            units.push(u.get_ref().clone());
        }
        // Fields that only some kinds take.
        let only = |present: Option<Range<usize>>, field: &str, kinds: &[SecretKind]| match present
        {
            Some(span) if !kinds.contains(&kind) => Err(ctx.err(
                span,
                key(field),
                format!(
                    "`{field}` does not apply to a secret of kind `{}` (only to {})",
                    kind.as_str(),
                    kinds
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            _ => Ok(()),
        };
        use SecretKind as K;
        only(
            r.ca.as_ref().map(Spanned::span),
            "ca",
            &[K::Certificate, K::Kubeconfig],
        )?;
        only(
            r.serving.as_ref().map(Spanned::span),
            "serving",
            &[K::Certificate],
        )?;
        only(
            r.cn.as_ref().map(Spanned::span),
            "cn",
            &[K::Certificate, K::Kubeconfig],
        )?;
        only(
            r.o.as_ref().map(Spanned::span),
            "o",
            &[K::Certificate, K::Kubeconfig],
        )?;
        only(r.key_of.as_ref().map(Spanned::span), "key-of", &[K::Key])?;
        only(
            r.server.as_ref().map(Spanned::span),
            "server",
            &[K::Kubeconfig],
        )?;
        let mut o = Vec::new();
        for v in r.o.iter().flat_map(|l| l.get_ref()) {
            check_template(v.get_ref()).map_err(|e| ctx.err(v.span(), key("o"), e))?;
            o.push(v.get_ref().clone());
        }
        for (f, v) in [("cn", &r.cn), ("server", &r.server)] {
            if let Some(v) = v {
                check_template(v.get_ref()).map_err(|e| ctx.err(v.span(), key(f), e))?;
            }
        }
        if kind == K::Key && r.key_of.is_none() {
            return Err(ctx.err(
                entry.span(),
                key("key-of"),
                format!("key `{name}` needs `key-of`: the certificate entry it is the key of"),
            ));
        }
        decls.push(SecretDecl {
            name,
            kind,
            from: r.from.get_ref().clone(),
            to: r.to.get_ref().clone(),
            mode,
            owner,
            nodes: node_set,
            roles,
            units,
            ca: r.ca.as_ref().map(|c| c.get_ref().clone()),
            serving: r.serving.as_ref().is_some_and(|s| *s.get_ref()),
            cn: r.cn.as_ref().map(|c| c.get_ref().clone()),
            o,
            key_of: r.key_of.as_ref().map(|k| k.get_ref().clone()),
            server: r.server.as_ref().map(|s| s.get_ref().clone()),
            line: ctx.src.location(entry.span()).line,
        });
    }
    resolve_references(ctx, raw, &mut decls, nodes)?;
    Ok(decls)
}

/// `ca` and `key-of` name entries of the right kind that every node taking the referring
/// entry takes too; a certificate or kubeconfig without `ca` gets the manifest's only CA.
fn resolve_references(
    ctx: &Ctx<'_>,
    raw: &[Spanned<RawSecret>],
    decls: &mut [SecretDecl],
    nodes: &BTreeMap<NodeName, Node>,
) -> Result<(), ManifestError> {
    let kinds: BTreeMap<String, SecretKind> =
        decls.iter().map(|d| (d.name.clone(), d.kind)).collect();
    let cas: Vec<String> = decls
        .iter()
        .filter(|d| d.kind == SecretKind::Ca)
        .map(|d| d.name.clone())
        .collect();
    for (d, r) in decls.iter_mut().zip(raw) {
        let r = r.get_ref();
        let refs = [
            (&r.ca, "ca", &[SecretKind::Ca][..]),
            (
                &r.key_of,
                "key-of",
                &[SecretKind::Certificate, SecretKind::Ca][..],
            ),
        ];
        for (field, key, want) in refs {
            if let Some(v) = field {
                if !kinds.get(v.get_ref()).is_some_and(|k| want.contains(k)) {
                    return Err(ctx.err(
                        v.span(),
                        format!("secrets.{key}"),
                        format!(
                            "`{}` is not a secret of kind {} in this manifest",
                            v.get_ref(),
                            want.iter()
                                .map(|k| k.as_str())
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    ));
                }
            }
        }
        if d.ca.is_none() && matches!(d.kind, SecretKind::Certificate | SecretKind::Kubeconfig) {
            match cas.as_slice() {
                [one] => d.ca = Some(one.clone()),
                [] => {}
                _ => {
                    return Err(ctx.err(
                        r.name.span(),
                        "secrets.ca",
                        format!(
                            "the manifest declares several CAs ({}): say which one signs `{}` with `ca = \"…\"`",
                            cas.join(", "),
                            d.name
                        ),
                    ))
                }
            }
        }
    }
    // A referred entry must reach every node the referring one reaches.
    let by_name: BTreeMap<&str, &SecretDecl> = decls.iter().map(|d| (d.name.as_str(), d)).collect();
    for (d, r) in decls.iter().zip(raw) {
        for (other, key) in [(&d.ca, "ca"), (&d.key_of, "key-of")] {
            let Some(other) = other.as_ref().and_then(|o| by_name.get(o.as_str())) else {
                continue;
            };
            if let Some(n) = nodes
                .values()
                .find(|n| d.applies_to(n) && !other.applies_to(n))
            {
                let span = match key {
                    "ca" => r
                        .get_ref()
                        .ca
                        .as_ref()
                        .map_or(r.get_ref().name.span(), Spanned::span),
                    _ => r
                        .get_ref()
                        .key_of
                        .as_ref()
                        .map_or(r.get_ref().name.span(), Spanned::span),
                };
                return Err(ctx.err(
                    span,
                    format!("secrets.{key}"),
                    format!(
                        "`{}` goes to node `{}`, but `{}` (its {key}) does not: give both the same `nodes`/`roles`",
                        d.name, n.name, other.name
                    ),
                ));
            }
        }
    }
    Ok(())
}
