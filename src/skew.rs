//! The Kubernetes version skew policy (<https://kubernetes.io/releases/version-skew-policy/>),
//! checked on what a manifest makes each node run: kubelet and kube-proxy never newer than the
//! control plane's kube-apiserver and at most three minors older (two before 1.25), kube-proxy
//! within three minors of the kubelet beside it, and the control plane moving one minor at a
//! time from the version last locked. The policy speaks of minor versions: patch releases of
//! one minor may be mixed freely, which is what a canary of a patch upgrade does.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::manifest::{ComponentName, Manifest};

/// A rule of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// kubelet must not be newer than kube-apiserver (the control plane is upgraded first).
    KubeletNewerThanApiserver,
    /// kubelet may be at most three minors older than kube-apiserver (two for kubelet < 1.25).
    KubeletTooOld,
    /// kube-proxy must not be newer than kube-apiserver.
    KubeProxyNewerThanApiserver,
    /// kube-proxy may be at most three minors older than kube-apiserver (two before 1.25).
    KubeProxyTooOld,
    /// kube-proxy may be at most three minors older or newer than the kubelet beside it.
    KubeProxyKubeletSkew,
    /// The control plane moves at most one minor version at a time.
    ControlPlaneOneMinor,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::KubeletNewerThanApiserver => "kubelet-newer-than-apiserver",
            Rule::KubeletTooOld => "kubelet-too-old",
            Rule::KubeProxyNewerThanApiserver => "kube-proxy-newer-than-apiserver",
            Rule::KubeProxyTooOld => "kube-proxy-too-old",
            Rule::KubeProxyKubeletSkew => "kube-proxy-kubelet-skew",
            Rule::ControlPlaneOneMinor => "control-plane-one-minor",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broken rule, with the nodes (and group) it concerns and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub rule: Rule,
    /// The group the nodes belong to (none: the cluster's versions, or the control plane).
    pub group: Option<String>,
    pub nodes: Vec<String>,
    pub message: String,
    pub hint: String,
}

/// (major, minor) of a version the manifest already validated.
fn minor_of(v: &str) -> Option<(u64, u64)> {
    semver::Version::parse(v).ok().map(|v| (v.major, v.minor))
}

/// How many minors `a` is ahead of `b` (negative: behind); another major counts as far away.
fn minors(a: (u64, u64), b: (u64, u64)) -> i64 {
    let scale = |(major, minor): (u64, u64)| {
        i64::try_from(major)
            .unwrap_or(i64::MAX / 2_000)
            .saturating_mul(1_000)
            .saturating_add(i64::try_from(minor).unwrap_or(999))
    };
    scale(a) - scale(b)
}

/// How many minors older than kube-apiserver (or than the kubelet) a component may be: three
/// from 1.25 on, two before.
fn allowed_older(v: (u64, u64)) -> i64 {
    if v >= (1, 25) {
        3
    } else {
        2
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The control plane's own rule: kube-apiserver moves one minor version at a time.
fn control_plane_step(api: Option<&str>, previous_apiserver: Option<&str>) -> Option<Violation> {
    if let (Some(new), Some(old)) = (api, previous_apiserver) {
        if let (Some(n), Some(o)) = (minor_of(new), minor_of(old)) {
            let step = minors(n, o);
            if step > 1 {
                return Some(Violation {
                    rule: Rule::ControlPlaneOneMinor,
                    group: None,
                    nodes: Vec::new(),
                    message: format!(
                        "the control plane's kube-apiserver moves from {old} to {new}, {step} minor versions at once (rule {}: the control plane is upgraded one minor version at a time)",
                        Rule::ControlPlaneOneMinor
                    ),
                    hint: format!(
                        "set [control-plane] kube-apiserver to a {}.{} release first, lock, build and roll it out, then move on",
                        o.0,
                        o.1.saturating_add(1)
                    ),
                });
            }
        }
    }
    None
}

/// A bucket of nodes: their group, kubelet version and kube-proxy version.
type Key = (Option<String>, Option<String>, Option<String>);

/// The nodes by group and kubelet and kube-proxy versions: nodes running the same ones in the
/// same group are checked once.
fn version_buckets(manifest: &Manifest) -> BTreeMap<Key, Vec<String>> {
    let kubelet = ComponentName::new("kubelet").ok();
    let proxy = ComponentName::new("kube-proxy").ok();
    let mut buckets: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    for node in manifest.nodes.values() {
        let comps = manifest.components_of(node);
        let version = |c: &Option<ComponentName>| {
            c.as_ref()
                .and_then(|c| comps.get(c))
                .map(|c| c.version.clone())
        };
        buckets
            .entry((node.group.clone(), version(&kubelet), version(&proxy)))
            .or_default()
            .push(node.name.to_string());
    }
    buckets
}

/// The node-side rules for one bucket of nodes: kubelet and kube-proxy against kube-apiserver,
/// and kube-proxy against the kubelet beside it.
fn bucket_violations(
    (group, kubelet_v, proxy_v): Key,
    nodes: Vec<String>,
    api: Option<&str>,
    api_minor: Option<(u64, u64)>,
    out: &mut Vec<Violation>,
) {
    let whose = match &group {
        Some(g) => format!("{} (group `{g}`)", nodes.join(", ")),
        None => nodes.join(", "),
    };
    let mut push = |rule: Rule, message: String, hint: String| {
        out.push(Violation {
            rule,
            group: group.clone(),
            nodes: nodes.clone(),
            message,
            hint,
        });
    };
    let set_where = match &group {
        Some(g) => format!("[groups.{g}.versions]"),
        None => "[versions]".to_string(),
    };
    for (name, v, newer_rule, old_rule) in [
        (
            "kubelet",
            &kubelet_v,
            Rule::KubeletNewerThanApiserver,
            Rule::KubeletTooOld,
        ),
        (
            "kube-proxy",
            &proxy_v,
            Rule::KubeProxyNewerThanApiserver,
            Rule::KubeProxyTooOld,
        ),
    ] {
        let (Some(v), Some(api), Some(a)) = (v, api, api_minor) else {
            continue;
        };
        let Some(m) = minor_of(v) else { continue };
        let ahead = minors(m, a);
        if ahead > 0 {
            push(
                newer_rule,
                format!(
                    "{name} {v} on {whose} is newer than the control plane's kube-apiserver {api} (rule {newer_rule}: {name} must not be newer than kube-apiserver; the control plane is upgraded first)"
                ),
                format!(
                    "upgrade the control plane first: set [control-plane] kube-apiserver = \"{v}\", lock and roll out the control plane, then these nodes"
                ),
            );
        } else if -ahead > allowed_older(m) {
            push(
                old_rule,
                format!(
                    "{name} {v} on {whose} is {} minor version{} older than the control plane's kube-apiserver {api} (rule {old_rule}: at most {} older)",
                    -ahead,
                    plural(-ahead),
                    allowed_older(m)
                ),
                format!(
                    "upgrade these nodes ({set_where}) before the control plane moves further, or keep kube-apiserver within {} minors of {v}",
                    allowed_older(m)
                ),
            );
        }
    }
    if let (Some(k), Some(p)) = (&kubelet_v, &proxy_v) {
        if let (Some(km), Some(pm)) = (minor_of(k), minor_of(p)) {
            let apart = minors(pm, km).abs();
            if apart > allowed_older(pm) {
                push(
                    Rule::KubeProxyKubeletSkew,
                    format!(
                        "kube-proxy {p} and kubelet {k} on {whose} are {apart} minor versions apart (rule {}: kube-proxy may be at most {} minors older or newer than the kubelet beside it)",
                        Rule::KubeProxyKubeletSkew,
                        allowed_older(pm)
                    ),
                    format!("pin kube-proxy and kubelet closer together in {set_where}"),
                );
            }
        }
    }
}

/// Every violation of the policy by `manifest`; `previous_apiserver` is the kube-apiserver
/// version the lockfile recorded, for the one-minor-at-a-time rule.
pub fn check(manifest: &Manifest, previous_apiserver: Option<&str>) -> Vec<Violation> {
    let mut out = Vec::new();
    let api = manifest.kube_apiserver();
    let api_minor = api.and_then(minor_of);
    out.extend(control_plane_step(api, previous_apiserver));
    for (key, nodes) in version_buckets(manifest) {
        bucket_violations(key, nodes, api, api_minor, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minors_and_limits() {
        assert_eq!(minors((1, 31), (1, 31)), 0);
        assert_eq!(minors((1, 32), (1, 31)), 1);
        assert_eq!(minors((1, 27), (1, 31)), -4);
        assert!(minors((2, 0), (1, 31)) > 1);
        assert_eq!(allowed_older((1, 25)), 3);
        assert_eq!(allowed_older((1, 24)), 2);
    }

    fn manifest(from: &str, to: &str) -> Manifest {
        let text = std::fs::read_to_string("manifests/kubenet.toml")
            .expect("default manifest")
            .replace(from, to);
        Manifest::parse(&crate::source::SourceFile::new(
            std::path::Path::new("m.toml"),
            text,
        ))
        .expect("valid")
    }

    fn rules(v: &[Violation]) -> Vec<&'static str> {
        v.iter().map(|v| v.rule.as_str()).collect()
    }

    #[test]
    fn an_absurd_locked_version_is_a_violation_not_a_panic() {
        let m = manifest("", "");
        let v = check(&m, Some("0.18446744073709551615.0"));
        assert_eq!(rules(&v), ["control-plane-one-minor"]);
        assert!(
            v[0].hint.contains("0.18446744073709551615"),
            "{}",
            v[0].hint
        );
    }

    #[test]
    fn the_seed_cluster_keeps_the_policy() {
        let m = manifest("", "");
        assert!(check(&m, Some("1.31.0")).is_empty());
        // A patch ahead of the control plane is the same minor: allowed.
        let m = manifest("kubernetes = \"1.31.0\"", "kubernetes = \"1.31.5\"");
        assert!(check(&m, Some("1.31.0")).is_empty());
    }

    #[test]
    fn kubelets_before_1_25_may_be_two_minors_older_only() {
        let m = manifest("kubernetes = \"1.31.0\"", "kubernetes = \"1.22.0\"");
        let m = Manifest {
            kube_apiserver: Some("1.25.0".into()),
            ..m
        };
        assert_eq!(
            rules(&check(&m, None)),
            ["kubelet-too-old", "kube-proxy-too-old"]
        );
        let m = Manifest {
            kube_apiserver: Some("1.24.0".into()),
            ..m
        };
        assert!(check(&m, None).is_empty());
        // One minor up from what was locked is a step; two are a jump.
        assert!(check(&m, Some("1.23.0")).is_empty());
        assert_eq!(
            rules(&check(&m, Some("1.22.0"))),
            ["control-plane-one-minor"]
        );
    }
}
