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
            Change::Inputs => write!(f, "the manifest's artifact inputs changed"),
        }
    }
}

/// Every change between `lock` and the manifest's `specs`; empty when the lock is fresh.
pub fn staleness(lock: &Lockfile, specs: &[ArtifactSpec]) -> Vec<Change> {
    let mut changes = Vec::new();
    for s in specs {
        let (component, arch) = (s.component.to_string(), s.arch.to_string());
        match lock.entry(&s.component, &s.arch) {
            None => changes.push(Change::Added {
                component,
                arch,
                version: s.version.clone(),
            }),
            Some(e) if e.version != s.version => changes.push(Change::Version {
                component,
                arch,
                from: e.version.clone(),
                to: s.version.clone(),
            }),
            Some(e) => {
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
            }
        }
    }
    for e in &lock.artifacts {
        if !specs
            .iter()
            .any(|s| s.component == e.component && s.arch == e.arch)
        {
            changes.push(Change::Removed {
                component: e.component.to_string(),
                arch: e.arch.to_string(),
                version: e.version.clone(),
            });
        }
    }
    if changes.is_empty() && inputs_hash(specs) != lock.manifest_hash {
        changes.push(Change::Inputs);
    }
    changes
}
