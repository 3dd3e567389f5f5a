//! Staleness: what changed between the inputs a lock was made from and what the manifest now
//! implies, said the way a user thinks of it ("containerd 1.7.20 → 1.7.21").

use std::fmt;

use serde::Serialize;

use super::{inputs_hash, Lockfile};
use crate::manifest::ArtifactSpec;

/// One difference between a lockfile and the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "change")]
pub enum Change {
    /// The manifest needs an artifact the lock does not have.
    Added {
        component: String,
        arch: String,
        version: String,
    },
    /// The lock has an artifact the manifest no longer needs.
    Removed {
        component: String,
        arch: String,
        version: String,
    },
    Version {
        component: String,
        arch: String,
        from: String,
        to: String,
    },
    Url {
        component: String,
        arch: String,
        field: String,
        from: String,
        to: String,
    },
    /// The control plane's kube-apiserver version (`[control-plane]`) moved.
    ControlPlane {
        from: Option<String>,
        to: Option<String>,
    },
    /// The inputs hash differs but no entry does (e.g. a checksum-name template changed).
    Inputs,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Added {
                component,
                arch,
                version,
            } => write!(f, "{component} {version} ({arch}) is not locked yet"),
            Change::Removed {
                component,
                arch,
                version,
            } => write!(
                f,
                "{component} {version} ({arch}) is no longer in the manifest"
            ),
            Change::Version {
                component,
                arch,
                from,
                to,
            } => write!(f, "{component} {from} → {to} ({arch})"),
            Change::Url {
                component,
                arch,
                field,
                from,
                to,
            } => write!(f, "{component} ({arch}) {field} {from} → {to}"),
            Change::ControlPlane { from, to } => write!(
                f,
                "kube-apiserver {} → {} (control plane)",
                from.as_deref().unwrap_or("(not recorded)"),
                to.as_deref().unwrap_or("(not set)")
            ),
            Change::Inputs => write!(f, "the manifest's artifact inputs changed"),
        }
    }
}

/// Every change between `lock` and what the manifest implies (`specs`, and the control plane's
/// `kube_apiserver` version when it sets one); empty when the lock is fresh. Entries are keyed
/// by (component, version, arch): a group running another version adds an entry; a version that
/// replaces the only one of its (component, arch) is reported as moved.
pub fn staleness(
    lock: &Lockfile,
    specs: &[ArtifactSpec],
    kube_apiserver: Option<&str>,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let wanted = |e: &crate::lock::LockEntry| {
        specs
            .iter()
            .any(|s| s.component == e.component && s.arch == e.arch && s.version == e.version)
    };
    // Lock entries no spec wants, each paired with at most one new version.
    let mut unwanted: Vec<&crate::lock::LockEntry> =
        lock.artifacts.iter().filter(|e| !wanted(e)).collect();
    for s in specs {
        let (component, arch) = (s.component.to_string(), s.arch.to_string());
        if let Some(e) = lock.entry_for(s) {
            for (field, from, to) in [
                ("url", &e.url, &s.url),
                ("checksum-url", &e.checksum_url, &s.checksum_url),
            ] {
                if from != to {
                    changes.push(Change::Url {
                        component: component.clone(),
                        arch: arch.clone(),
                        field: field.to_string(),
                        from: from.clone(),
                        to: to.clone(),
                    });
                }
            }
            continue;
        }
        match unwanted
            .iter()
            .position(|e| e.component == s.component && e.arch == s.arch)
        {
            Some(i) => {
                let e = unwanted.remove(i);
                changes.push(Change::Version {
                    component,
                    arch,
                    from: e.version.clone(),
                    to: s.version.clone(),
                });
            }
            None => changes.push(Change::Added {
                component,
                arch,
                version: s.version.clone(),
            }),
        }
    }
    for e in unwanted {
        changes.push(Change::Removed {
            component: e.component.to_string(),
            arch: e.arch.to_string(),
            version: e.version.clone(),
        });
    }
    if lock.kube_apiserver.as_deref() != kube_apiserver {
        changes.push(Change::ControlPlane {
            from: lock.kube_apiserver.clone(),
            to: kube_apiserver.map(str::to_string),
        });
    }
    if changes.is_empty() && inputs_hash(specs) != lock.manifest_hash {
        changes.push(Change::Inputs);
    }
    changes
}
