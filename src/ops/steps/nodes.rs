//! Node names as the operator types them: the one lookup every command that takes a node uses,
//! with a suggestion (by edit distance) for a mistyped name.

use std::path::Path;

use crate::generations;
use crate::manifest::Manifest;
use crate::ops::error::Error;

/// The nodes a name may refer to: the manifest's (when it loads) and those with generations in
/// `out`, and what to call their source in a message (the manifest's file name, or `out`).
pub(crate) struct KnownNodes {
    pub source: String,
    pub manifest: Vec<String>,
    pub built: Vec<String>,
}

impl KnownNodes {
    pub fn read(manifest: &Path, out: &Path) -> Self {
        let built = generations::nodes(out);
        match Manifest::load(manifest) {
            Ok(m) => KnownNodes {
                source: manifest.file_name().map_or_else(
                    || manifest.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                ),
                manifest: m.nodes.keys().map(ToString::to_string).collect(),
                built,
            },
            Err(_) => KnownNodes {
                source: out.display().to_string(),
                manifest: Vec::new(),
                built,
            },
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.manifest.iter().chain(&self.built).any(|n| n == name)
    }

    /// Every known node, sorted, once.
    pub fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = self.manifest.iter().chain(&self.built).cloned().collect();
        all.sort();
        all.dedup();
        all
    }

    /// The error for a name that is none of them.
    pub fn unknown(&self, name: &str) -> Error {
        let known = self.all();
        Error::UnknownNode {
            node: name.to_string(),
            source_name: self.source.clone(),
            suggestion: suggest(name, &known),
            known,
        }
    }

    /// `Ok` when `name` is a node of the manifest or has generations; else the error with a
    /// suggestion.
    pub fn check(&self, name: &str) -> Result<(), Error> {
        if self.contains(name) {
            Ok(())
        } else {
            Err(self.unknown(name))
        }
    }
}

/// Check that `name` is a node of the manifest (or has generations in `out`).
pub(crate) fn check_node(manifest: &Path, out: &Path, name: &str) -> Result<(), Error> {
    KnownNodes::read(manifest, out).check(name)
}

/// The closest of `candidates` to `name`, when it is close enough to be a typo: at most a third
/// of the name's characters (and at least one) apart.
pub fn suggest(name: &str, candidates: &[String]) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, (*c).clone()))
        .map(|(_, c)| c.clone())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            let del = prev[j + 1] + 1;
            let ins = row[j] + 1;
            row.push(sub.min(del).min(ins));
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let nodes: Vec<String> = ["control0", "worker0", "worker1"]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(suggest("workr1", &nodes).as_deref(), Some("worker1"));
        assert_eq!(suggest("worker2", &nodes).as_deref(), Some("worker0"));
        assert_eq!(suggest("contrl0", &nodes).as_deref(), Some("control0"));
        assert_eq!(suggest("zzz", &nodes), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
