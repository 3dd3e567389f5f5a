//! The manifest as written (serde types carrying spans) and its validation into [`Manifest`].
//! Every check here reports the file, line and key of the value it rejects.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::Range;

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use super::{
    Arch, ArtifactSpec, Component, ComponentName, Group, InstallRule, Manifest, ManifestError,
    Network, Node, NodeName, Role,
};
use crate::source::SourceFile;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawManifest {
    cluster: RawCluster,
    network: RawNetwork,
    versions: Spanned<BTreeMap<Spanned<String>, Spanned<String>>>,
    #[serde(default)]
    components: BTreeMap<Spanned<String>, Spanned<RawComponent>>,
    #[serde(default)]
    image: RawImage,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
    nodes: Spanned<Vec<Spanned<RawNode>>>,
    #[serde(default)]
    groups: BTreeMap<Spanned<String>, Spanned<RawGroup>>,
    control_plane: Option<RawControlPlane>,
    #[serde(default)]
    secrets: Vec<Spanned<super::secrets::RawSecret>>,
}

/// `[groups.<name>]`: nodes that run their own versions on top of the cluster's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawGroup {
    nodes: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    versions: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    canary: bool,
}

/// `[control-plane]`: what the control plane runs that nodeforge does not build.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawControlPlane {
    kube_apiserver: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawImage {
    templates: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawInstall {
    from: Option<String>,
    to: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCluster {
    name: Spanned<String>,
    architectures: Spanned<Vec<Spanned<String>>>,
    domain: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNetwork {
    pod_cidr: Spanned<String>,
    service_cidr: Spanned<String>,
    cluster_dns: Spanned<String>,
    node_pod_cidr: Option<Spanned<String>>,
    node_ip: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawComponent {
    version: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    checksum_url: Option<Spanned<String>>,
    checksum_name: Option<Spanned<String>>,
    install: Option<Spanned<Vec<RawInstall>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNode {
    name: Spanned<String>,
    vmid: Spanned<u32>,
    role: Spanned<Role>,
    arch: Option<Spanned<String>>,
    ip: Option<Spanned<String>>,
    pod_cidr: Option<Spanned<String>>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
}

/// Builds located errors for one source file.
pub(super) struct Ctx<'a> {
    pub(super) src: &'a SourceFile,
}

impl Ctx<'_> {
    pub(super) fn err(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ManifestError {
        ManifestError::Invalid {
            loc: self.src.location(span),
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

/// Made once per process: a manifest's URL templates are rendered for every component and
/// architecture, several times per command.
fn template_env() -> &'static minijinja::Environment<'static> {
    static ENV: std::sync::OnceLock<minijinja::Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env
    })
}

/// Render a one-line template (a URL, an address) with strict variables.
pub(crate) fn render_str(template: &str, ctx: minijinja::Value) -> Result<String, String> {
    template_env()
        .render_str(template, ctx)
        .map(|s| s.trim().to_string())
        .map_err(|e| {
            let mut msg = e.kind().to_string();
            if let Some(detail) = e.detail() {
                msg.push_str(": ");
                msg.push_str(detail);
            }
            msg
        })
}

/// Render a component's URL templates for one architecture.
pub(crate) fn render_artifact(
    c: &Component,
    arch: &Arch,
) -> Result<ArtifactSpec, (&'static str, String)> {
    let base = minijinja::context! {
        version => c.version.as_str(),
        arch => arch.as_str(),
        component => c.name.as_str(),
    };
    let url = render_str(&c.url_template, base.clone()).map_err(|e| ("url", e))?;
    check_url(&url).map_err(|e| ("url", e))?;
    let with_url = minijinja::context! { url => url.as_str(), ..base.clone() };
    let checksum_url =
        render_str(&c.checksum_url_template, with_url.clone()).map_err(|e| ("checksum-url", e))?;
    check_url(&checksum_url).map_err(|e| ("checksum-url", e))?;
    let checksum_name = match &c.checksum_name_template {
        Some(t) => render_str(t, with_url).map_err(|e| ("checksum-name", e))?,
        None => url_file_name(&url).to_string(),
    };
    if checksum_name.is_empty() || checksum_name.contains('/') {
        return Err((
            "checksum-name",
            format!("`{checksum_name}` is not a file name"),
        ));
    }
    Ok(ArtifactSpec {
        component: c.name.clone(),
        arch: arch.clone(),
        version: c.version.clone(),
        url,
        checksum_url,
        checksum_name,
    })
}

/// The last path segment of a URL.
pub fn url_file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host_str().is_some() => {}
        "file" => {}
        other => {
            return Err(format!(
                "`{url}`: unsupported scheme `{other}` (use https, http or file)"
            ))
        }
    }
    if url_file_name(url).is_empty() {
        return Err(format!("`{url}` does not end in a file name"));
    }
    Ok(())
}

/// `1.31.0`, `1.31.0-rc.1`: a semantic version, without the `v` that templates add.
pub fn check_version(s: &str) -> Result<(), String> {
    if let Some(rest) = s.strip_prefix('v') {
        if semver::Version::parse(rest).is_ok() {
            return Err(format!(
                "write `{rest}`, not `{s}`: the URL templates add the `v` where upstream wants one"
            ));
        }
    }
    semver::Version::parse(s)
        .map(|_| ())
        .map_err(|_| format!("`{s}` is not a version (expected MAJOR.MINOR.PATCH, like 1.31.0)"))
}

fn parse_cidr(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| format!("`{s}` is not an IPv4 CIDR (like 10.0.0.0/12)"))?;
    if net.trunc() != net {
        return Err(format!(
            "`{s}` has host bits set; the network is `{}`",
            net.trunc()
        ));
    }
    Ok(net)
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Among disjoint ranges keyed by first address, the first by name of those overlapping `net`
/// (as a scan of the nodes in name order would report it).
fn first_overlap<'a>(
    by_start: &'a BTreeMap<u32, (u32, NodeName)>,
    net: &Ipv4Net,
) -> Option<&'a NodeName> {
    let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
    let before = by_start
        .range(..first)
        .next_back()
        .filter(|(_, (end, _))| *end >= first);
    before
        .into_iter()
        .chain(by_start.range(first..=last))
        .map(|(_, (_, name))| name)
        .min()
}

fn check_domain(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("`{s}` is not a DNS domain (like cluster.local)"))
    }
}

/// Merge the built-in component table with the manifest's overrides.
fn merge_components(
    ctx: &Ctx<'_>,
    defaults_ctx: &Ctx<'_>,
    defaults: BTreeMap<Spanned<String>, Spanned<RawComponent>>,
    overrides: BTreeMap<Spanned<String>, Spanned<RawComponent>>,
) -> Result<BTreeMap<ComponentName, (RawComponent, bool)>, ManifestError> {
    let mut merged: BTreeMap<ComponentName, (RawComponent, bool)> = BTreeMap::new();
    for (name, c) in defaults {
        let cname = ComponentName::new(name.get_ref())
            .map_err(|e| defaults_ctx.err(name.span(), name.get_ref().clone(), e))?;
        merged.insert(cname, (c.into_inner(), false));
    }
    for (name, c) in overrides {
        let key = format!("components.{}", name.get_ref());
        let cname =
            ComponentName::new(name.get_ref()).map_err(|e| ctx.err(name.span(), &key, e))?;
        let over = c.into_inner();
        let entry = merged.entry(cname).or_default();
        let base = &mut entry.0;
        entry.1 = true;
        if over.version.is_some() {
            base.version = over.version;
        }
        if over.url.is_some() {
            base.url = over.url;
        }
        if over.checksum_url.is_some() {
            base.checksum_url = over.checksum_url;
        }
        if over.checksum_name.is_some() {
            base.checksum_name = over.checksum_name;
        }
        if over.install.is_some() {
            base.install = over.install;
        }
        for (field, present) in [
            ("version", base.version.is_some()),
            ("url", base.url.is_some()),
            ("checksum-url", base.checksum_url.is_some()),
        ] {
            if !present {
                return Err(ctx.err(
                    name.span(),
                    &key,
                    format!(
                        "component `{}` is not built in, so it needs `{field}`",
                        name.get_ref()
                    ),
                ));
            }
        }
    }
    Ok(merged)
}

pub(super) fn validate(
    src: &SourceFile,
    defaults_src: &SourceFile,
    raw: RawManifest,
    raw_defaults: BTreeMap<Spanned<String>, Spanned<RawComponent>>,
) -> Result<Manifest, ManifestError> {
    let ctx = Ctx { src };
    let dctx = Ctx { src: defaults_src };
    let (name, domain, architectures) = cluster(&ctx, raw.cluster)?;
    let network = network(&ctx, &raw.network)?;
    let versions = versions(&ctx, &raw.versions)?;
    let components = components(
        &ctx,
        &dctx,
        &versions,
        &architectures,
        raw_defaults,
        raw.components,
    )?;
    let nodes = nodes(
        &NodeContext {
            ctx: &ctx,
            raw_network: &raw.network,
            vars: &raw.vars,
            network: &network,
            architectures: &architectures,
        },
        &raw.nodes,
    )?;
    let templates = templates(&ctx, &raw.image)?;
    let (groups, nodes) = groups(
        &ctx,
        &raw.groups,
        &versions,
        &components,
        &architectures,
        nodes,
    )?;
    let kube_apiserver = match &raw.control_plane {
        Some(cp) => {
            check_version(cp.kube_apiserver.get_ref()).map_err(|e| {
                ctx.err(cp.kube_apiserver.span(), "control-plane.kube-apiserver", e)
            })?;
            Some(cp.kube_apiserver.get_ref().clone())
        }
        None => None,
    };
    let secrets = super::secrets::validate(&ctx, &raw.secrets, &nodes)?;
    Ok(Manifest {
        path: src.path.clone(),
        secrets,
        templates,
        vars: raw.vars,
        name,
        architectures,
        domain,
        network,
        versions,
        components,
        nodes,
        groups,
        kube_apiserver,
    })
}

/// The groups by name, and the nodes with their group set.
type GroupsAndNodes = (BTreeMap<String, Group>, BTreeMap<NodeName, Node>);

/// `[groups.*]`: each names nodes of the manifest (each node in at most one group) and
/// overrides `[versions]` keys the cluster sets; its components are the cluster's with those
/// versions, their URLs rendered for every architecture.
fn groups(
    ctx: &Ctx<'_>,
    raw: &BTreeMap<Spanned<String>, Spanned<RawGroup>>,
    versions: &BTreeMap<String, String>,
    components: &BTreeMap<ComponentName, Component>,
    architectures: &[Arch],
    mut nodes: BTreeMap<NodeName, Node>,
) -> Result<GroupsAndNodes, ManifestError> {
    let mut groups = BTreeMap::new();
    for (gname, g) in raw {
        let key = format!("groups.{}", gname.get_ref());
        NodeName::new(gname.get_ref())
            .map_err(|e| ctx.err(gname.span(), &key, e.replace("node name", "group name")))?;
        let g = g.get_ref();
        if g.nodes.get_ref().is_empty() {
            return Err(ctx.err(
                g.nodes.span(),
                format!("{key}.nodes"),
                format!("group `{}` lists no nodes", gname.get_ref()),
            ));
        }
        let mut members = Vec::new();
        for n in g.nodes.get_ref() {
            let nkey = format!("{key}.nodes");
            let node = NodeName::new(n.get_ref())
                .ok()
                .and_then(|name| nodes.get_mut(&name))
                .ok_or_else(|| {
                    ctx.err(
                        n.span(),
                        &nkey,
                        format!(
                            "group `{}` names `{}`, which is not a node of the manifest",
                            gname.get_ref(),
                            n.get_ref()
                        ),
                    )
                })?;
            if let Some(other) = &node.group {
                let msg = if other == gname.get_ref() {
                    format!("`{}` is listed twice in group `{other}`", node.name)
                } else {
                    format!(
                        "`{}` is already in group `{other}`: a node belongs to at most one group",
                        node.name
                    )
                };
                return Err(ctx.err(n.span(), &nkey, msg));
            }
            node.group = Some(gname.get_ref().clone());
            members.push(node.name.clone());
        }
        let mut overrides = BTreeMap::new();
        for (k, v) in &g.versions {
            let vkey = format!("{key}.versions.{}", k.get_ref());
            if !versions.contains_key(k.get_ref()) {
                return Err(ctx.err(
                    k.span(),
                    &vkey,
                    format!(
                        "`{}` is not a key of [versions] (keys: {}): a group overrides the cluster's versions",
                        k.get_ref(),
                        versions.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            check_version(v.get_ref()).map_err(|e| ctx.err(v.span(), &vkey, e))?;
            overrides.insert(k.get_ref().clone(), (v.get_ref().clone(), v.span()));
        }
        let mut comps = components.clone();
        for c in comps.values_mut() {
            if let Some((v, span)) = overrides.get(&c.version_key) {
                c.version = v.clone();
                for arch in architectures {
                    render_artifact(c, arch).map_err(|(field, e)| {
                        ctx.err(
                            span.clone(),
                            format!("{key}.versions.{}", c.version_key),
                            format!("component `{}` {field} for {arch}: {e}", c.name),
                        )
                    })?;
                }
            }
        }
        groups.insert(
            gname.get_ref().clone(),
            Group {
                name: gname.get_ref().clone(),
                nodes: members,
                versions: overrides.into_iter().map(|(k, (v, _))| (k, v)).collect(),
                canary: g.canary,
                components: comps,
            },
        );
    }
    Ok((groups, nodes))
}

/// `[cluster]`: the name, the domain and the architectures (each listed once).
fn cluster(
    ctx: &Ctx<'_>,
    cluster: RawCluster,
) -> Result<(String, String, Vec<Arch>), ManifestError> {
    let name = cluster.name;
    NodeName::new(name.get_ref()).map_err(|_| {
        ctx.err(
            name.span(),
            "cluster.name",
            format!(
                "`{}` is not a valid cluster name: use lower-case letters, digits and `-`",
                name.get_ref()
            ),
        )
    })?;
    let domain = cluster.domain;
    check_domain(domain.get_ref()).map_err(|e| ctx.err(domain.span(), "cluster.domain", e))?;
    let arch_list = cluster.architectures;
    if arch_list.get_ref().is_empty() {
        return Err(ctx.err(
            arch_list.span(),
            "cluster.architectures",
            "list at least one architecture, like [\"amd64\"]",
        ));
    }
    let mut architectures: Vec<Arch> = Vec::new();
    for a in arch_list.get_ref() {
        let arch =
            Arch::new(a.get_ref()).map_err(|e| ctx.err(a.span(), "cluster.architectures", e))?;
        if architectures.contains(&arch) {
            return Err(ctx.err(
                a.span(),
                "cluster.architectures",
                format!("`{arch}` is listed twice"),
            ));
        }
        architectures.push(arch);
    }
    Ok((name.into_inner(), domain.into_inner(), architectures))
}

/// `[network]`: the pod and service ranges (apart) and the cluster DNS (in the service range).
fn network(ctx: &Ctx<'_>, n: &RawNetwork) -> Result<Network, ManifestError> {
    let pod_cidr = parse_cidr(n.pod_cidr.get_ref())
        .map_err(|e| ctx.err(n.pod_cidr.span(), "network.pod-cidr", e))?;
    let service_cidr = parse_cidr(n.service_cidr.get_ref())
        .map_err(|e| ctx.err(n.service_cidr.span(), "network.service-cidr", e))?;
    if overlaps(&pod_cidr, &service_cidr) {
        return Err(ctx.err(
            n.service_cidr.span(),
            "network.service-cidr",
            format!("{service_cidr} overlaps the pod range {pod_cidr}"),
        ));
    }
    let cluster_dns: Ipv4Addr = n.cluster_dns.get_ref().parse().map_err(|_| {
        ctx.err(
            n.cluster_dns.span(),
            "network.cluster-dns",
            format!("`{}` is not an IPv4 address", n.cluster_dns.get_ref()),
        )
    })?;
    if !service_cidr.contains(&cluster_dns) {
        return Err(ctx.err(
            n.cluster_dns.span(),
            "network.cluster-dns",
            format!("{cluster_dns} is outside the service range {service_cidr}"),
        ));
    }
    Ok(Network {
        pod_cidr,
        service_cidr,
        cluster_dns,
    })
}

/// `[versions]`: keys named like components, values `MAJOR.MINOR.PATCH`.
fn versions(
    ctx: &Ctx<'_>,
    raw: &Spanned<BTreeMap<Spanned<String>, Spanned<String>>>,
) -> Result<BTreeMap<String, String>, ManifestError> {
    let mut versions = BTreeMap::new();
    for (k, v) in raw.get_ref() {
        let key = format!("versions.{}", k.get_ref());
        ComponentName::new(k.get_ref())
            .map_err(|e| ctx.err(k.span(), &key, e.replace("component name", "version key")))?;
        check_version(v.get_ref()).map_err(|e| ctx.err(v.span(), &key, e))?;
        versions.insert(k.get_ref().clone(), v.get_ref().clone());
    }
    Ok(versions)
}

/// Components: the built-in table merged with `[components.*]`, each pinned by a `[versions]`
/// key, with install rules that parse and URLs that render for every architecture.
fn components(
    ctx: &Ctx<'_>,
    dctx: &Ctx<'_>,
    versions: &BTreeMap<String, String>,
    architectures: &[Arch],
    raw_defaults: BTreeMap<Spanned<String>, Spanned<RawComponent>>,
    overrides: BTreeMap<Spanned<String>, Spanned<RawComponent>>,
) -> Result<BTreeMap<ComponentName, Component>, ManifestError> {
    let overrides_spans: BTreeMap<String, Range<usize>> = overrides
        .iter()
        .map(|(k, v)| (k.get_ref().clone(), v.span()))
        .collect();
    let merged = merge_components(ctx, dctx, raw_defaults, overrides)?;
    let mut components = BTreeMap::new();
    for (cname, (c, overridden)) in merged {
        // Messages point into the manifest when it set the value, else into the built-in table.
        let (vctx, fallback) = if overridden {
            (
                ctx,
                overrides_spans.get(cname.as_str()).cloned().unwrap_or(0..0),
            )
        } else {
            (dctx, 0..0)
        };
        let span_of =
            |f: &Option<Spanned<String>>| f.as_ref().map_or(fallback.clone(), |s| s.span());
        let key_of = |f: &str| format!("components.{cname}.{f}");
        let (Some(version_key), Some(url), Some(checksum_url)) =
            (&c.version, &c.url, &c.checksum_url)
        else {
            return Err(vctx.err(fallback.clone(), key_of("version"), "incomplete component"));
        };
        let Some(version) = versions.get(version_key.get_ref()) else {
            let vc = if c.version.as_ref().is_some_and(|v| {
                overridden
                    && ctx
                        .src
                        .text
                        .get(v.span())
                        .is_some_and(|t| t.contains(v.get_ref()))
            }) {
                ctx
            } else {
                vctx
            };
            return Err(vc.err(
                span_of(&c.version),
                key_of("version"),
                format!(
                    "component `{cname}` is pinned by `versions.{}`, which the manifest does not set (add `{} = \"x.y.z\"` under [versions])",
                    version_key.get_ref(),
                    version_key.get_ref()
                ),
            ));
        };
        let comp = Component {
            name: cname.clone(),
            version_key: version_key.get_ref().clone(),
            version: version.clone(),
            url_template: url.get_ref().clone(),
            checksum_url_template: checksum_url.get_ref().clone(),
            checksum_name_template: c.checksum_name.as_ref().map(|s| s.get_ref().clone()),
            install: match &c.install {
                None => Vec::new(),
                Some(rules) => rules
                    .get_ref()
                    .iter()
                    .map(|r| InstallRule::new(r.from.as_deref(), &r.to))
                    .collect::<Result<_, _>>()
                    .map_err(|e| vctx.err(rules.span(), key_of("install"), e))?,
            },
        };
        for arch in architectures {
            render_artifact(&comp, arch).map_err(|(field, e)| {
                let f = match field {
                    "url" => &c.url,
                    "checksum-url" => &c.checksum_url,
                    _ => &c.checksum_name,
                };
                vctx.err(span_of(f), key_of(field), format!("for {arch}: {e}"))
            })?;
        }
        components.insert(cname, comp);
    }
    Ok(components)
}

/// What the nodes checked so far hold, so that the next one cannot take it again.
#[derive(Default)]
struct Taken {
    /// vmid → the node and the line of its `vmid`.
    by_vmid: BTreeMap<u32, (NodeName, usize)>,
    by_ip: BTreeMap<Ipv4Addr, NodeName>,
    /// node name → the line it is declared on.
    names_line: BTreeMap<NodeName, usize>,
    /// Node pod ranges by first address: (last address, node). They are disjoint, so the one
    /// overlapping a new range is found in O(log n), not by comparing with every node.
    by_cidr: BTreeMap<u32, (u32, NodeName)>,
}

/// What every node is checked against: the cluster's ranges and architectures, and the
/// `[network]` templates and `[vars]` a node falls back on.
struct NodeContext<'a> {
    ctx: &'a Ctx<'a>,
    raw_network: &'a RawNetwork,
    vars: &'a BTreeMap<String, toml::Value>,
    network: &'a Network,
    architectures: &'a [Arch],
}

/// `[[nodes]]`: at least one; names, vmids, addresses unique; pod ranges inside the cluster's
/// pod range and apart.
fn nodes(
    nc: &NodeContext<'_>,
    raw_nodes: &Spanned<Vec<Spanned<RawNode>>>,
) -> Result<BTreeMap<NodeName, Node>, ManifestError> {
    if raw_nodes.get_ref().is_empty() {
        return Err(nc
            .ctx
            .err(raw_nodes.span(), "nodes", "the manifest declares no nodes"));
    }
    let mut nodes: BTreeMap<NodeName, Node> = BTreeMap::new();
    let mut taken = Taken::default();
    for rn in raw_nodes.get_ref() {
        let node = node(nc, rn.get_ref(), &nodes, &mut taken)?;
        nodes.insert(node.name.clone(), node);
    }
    Ok(nodes)
}

/// One `[[nodes]]` entry; its address and pod range are its own or rendered from `[network]`.
fn node(
    nc: &NodeContext<'_>,
    rn: &RawNode,
    nodes: &BTreeMap<NodeName, Node>,
    taken: &mut Taken,
) -> Result<Node, ManifestError> {
    let NodeContext {
        ctx, architectures, ..
    } = nc;
    let name =
        NodeName::new(rn.name.get_ref()).map_err(|e| ctx.err(rn.name.span(), "nodes.name", e))?;
    if let Some(line) = taken.names_line.get(&name) {
        return Err(ctx.err(
            rn.name.span(),
            "nodes.name",
            format!("duplicate node name `{name}` (first declared on line {line})"),
        ));
    }
    taken
        .names_line
        .insert(name.clone(), ctx.src.location(rn.name.span()).line);
    let vmid = *rn.vmid.get_ref();
    if let Some((other, line)) = taken.by_vmid.get(&vmid) {
        return Err(ctx.err(
            rn.vmid.span(),
            "nodes.vmid",
            format!("vmid {vmid} of `{name}` is already used by `{other}` (line {line})"),
        ));
    }
    taken
        .by_vmid
        .insert(vmid, (name.clone(), ctx.src.location(rn.vmid.span()).line));
    let role = *rn.role.get_ref();
    let arch = match &rn.arch {
        Some(a) => {
            let arch = Arch::new(a.get_ref()).map_err(|e| ctx.err(a.span(), "nodes.arch", e))?;
            if !architectures.contains(&arch) {
                return Err(ctx.err(
                    a.span(),
                    "nodes.arch",
                    format!("`{arch}` is not listed in cluster.architectures"),
                ));
            }
            arch
        }
        None => architectures[0].clone(),
    };
    let mut node_vars = nc.vars.clone();
    node_vars.extend(rn.vars.clone());
    let fields = NodeFields {
        ctx,
        rn,
        name: &name,
        vars: minijinja::context! { name => name.as_str(), vmid => vmid, role => role.as_str() },
    };
    let ip = node_ip(nc, &fields, taken)?;
    taken.by_ip.insert(ip, name.clone());
    let node_cidr = node_pod_cidr(nc, &fields, nodes, taken)?;
    taken.by_cidr.insert(
        u32::from(node_cidr.network()),
        (u32::from(node_cidr.broadcast()), name.clone()),
    );
    Ok(Node {
        name,
        vmid,
        role,
        arch,
        ip,
        pod_cidr: node_cidr,
        vars: node_vars,
        group: None,
    })
}

/// A node's own value of a field, or the `[network]` template rendered for it.
struct NodeFields<'a> {
    ctx: &'a Ctx<'a>,
    rn: &'a RawNode,
    name: &'a NodeName,
    /// What `[network]` templates see: `name`, `vmid`, `role`.
    vars: minijinja::Value,
}

impl NodeFields<'_> {
    /// The value, where it is, the key to name in errors, and whether it was rendered.
    fn value(
        &self,
        own: &Option<Spanned<String>>,
        tpl: &Option<Spanned<String>>,
        own_key: &str,
        tpl_key: &str,
    ) -> Result<(String, Range<usize>, String, bool), ManifestError> {
        let (ctx, name) = (self.ctx, self.name);
        match (own, tpl) {
            (Some(v), _) => Ok((v.get_ref().clone(), v.span(), own_key.to_string(), false)),
            (None, Some(t)) => render_str(t.get_ref(), self.vars.clone())
                .map(|s| (s, t.span(), tpl_key.to_string(), true))
                .map_err(|e| ctx.err(t.span(), tpl_key, format!("for node `{name}`: {e}"))),
            (None, None) => Err(ctx.err(
                self.rn.name.span(),
                own_key,
                format!(
                    "node `{name}` has no `{}` and the manifest sets no `{tpl_key}`",
                    own_key.trim_start_matches("nodes.")
                ),
            )),
        }
    }

    /// A message about a rendered value names the node (the template's line is shared).
    fn for_node(&self, rendered: bool, msg: String) -> String {
        if rendered {
            format!("for node `{}`: {msg}", self.name)
        } else {
            msg
        }
    }
}

/// A node's address: an IPv4 address no other node has, outside the pod and service ranges.
fn node_ip(
    nc: &NodeContext<'_>,
    f: &NodeFields<'_>,
    taken: &Taken,
) -> Result<Ipv4Addr, ManifestError> {
    let ctx = nc.ctx;
    let (ip_s, ip_span, ip_key, ip_rendered) = f.value(
        &f.rn.ip,
        &nc.raw_network.node_ip,
        "nodes.ip",
        "network.node-ip",
    )?;
    let ip: Ipv4Addr = ip_s.parse().map_err(|_| {
        ctx.err(
            ip_span.clone(),
            &ip_key,
            f.for_node(ip_rendered, format!("`{ip_s}` is not an IPv4 address")),
        )
    })?;
    if let Some(other) = taken.by_ip.get(&ip) {
        return Err(ctx.err(
            ip_span,
            &ip_key,
            f.for_node(
                ip_rendered,
                format!("address {ip} is already used by `{other}`"),
            ),
        ));
    }
    for (range, what) in [
        (&nc.network.pod_cidr, "pod range"),
        (&nc.network.service_cidr, "service range"),
    ] {
        if range.contains(&ip) {
            return Err(ctx.err(
                ip_span.clone(),
                &ip_key,
                f.for_node(
                    ip_rendered,
                    format!("address {ip} lies inside the {what} {range}"),
                ),
            ));
        }
    }
    Ok(ip)
}

/// A node's pod range: inside the cluster's pod range, apart from every other node's.
fn node_pod_cidr(
    nc: &NodeContext<'_>,
    f: &NodeFields<'_>,
    nodes: &BTreeMap<NodeName, Node>,
    taken: &Taken,
) -> Result<Ipv4Net, ManifestError> {
    let (ctx, pod_cidr) = (nc.ctx, &nc.network.pod_cidr);
    let (c_s, c_span, c_key, c_rendered) = f.value(
        &f.rn.pod_cidr,
        &nc.raw_network.node_pod_cidr,
        "nodes.pod-cidr",
        "network.node-pod-cidr",
    )?;
    let node_cidr =
        parse_cidr(&c_s).map_err(|e| ctx.err(c_span.clone(), &c_key, f.for_node(c_rendered, e)))?;
    if !pod_cidr.contains(&node_cidr) {
        return Err(ctx.err(
            c_span,
            &c_key,
            f.for_node(
                c_rendered,
                format!("{node_cidr} is not inside the pod range {pod_cidr}"),
            ),
        ));
    }
    if let Some(other) = first_overlap(&taken.by_cidr, &node_cidr).and_then(|n| nodes.get(n)) {
        return Err(ctx.err(
            c_span,
            &c_key,
            f.for_node(
                c_rendered,
                format!(
                    "{node_cidr} overlaps {} of `{}`",
                    other.pod_cidr, other.name
                ),
            ),
        ));
    }
    Ok(node_cidr)
}

/// `[image]`: the template tree, a directory below the manifest's (default: the manifest's
/// name without `.toml`).
fn templates(ctx: &Ctx<'_>, image: &RawImage) -> Result<std::path::PathBuf, ManifestError> {
    let src = ctx.src;
    let dir = src
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    Ok(match &image.templates {
        Some(t) => {
            let p = std::path::Path::new(t.get_ref());
            if t.get_ref().is_empty()
                || p.components().any(|c| {
                    matches!(
                        c,
                        std::path::Component::ParentDir
                            | std::path::Component::RootDir
                            | std::path::Component::Prefix(_)
                    )
                })
            {
                return Err(ctx.err(
                    t.span(),
                    "image.templates",
                    format!(
                        "`{}` must be a directory below the manifest's own",
                        t.get_ref()
                    ),
                ));
            }
            dir.join(p)
        }
        None => dir.join(src.path.file_stem().unwrap_or_default()),
    })
}
