//! Lines several commands print alike: what a pull or an import says of an image's
//! attestations, counts with their plurals, and the warnings of a secrets check.

use crate::credentials::{Finding, Severity};
use crate::ops;

/// What a pull or import says of an image's signatures and attestation files.
pub(crate) fn trust_lines(node: &str, a: &ops::PulledAttestations) {
    let keys = |k: &[String]| {
        k.iter()
            .map(|k| k.get(..16).unwrap_or(k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if a.trust_checked {
        say!("{node}: signed by trusted key {}", keys(&a.signed_by));
    } else if a.signature_keys.is_empty() {
        eprintln!("note: {node}: the image came unsigned (no signature among its referrers); pass --key or --trusted-keys to require one");
    } else {
        eprintln!(
            "note: {node}: the image came signed by key {} (not checked: pass --key or --trusted-keys to require it)",
            keys(&a.signature_keys)
        );
    }
    for f in &a.files {
        if f.status == ops::FileStatus::KeptLocal {
            eprintln!(
                "warning: {node}: kept this host's {} (the pulled one has other bytes, {})",
                f.name, f.digest
            );
        }
    }
    for c in &a.conflicts {
        eprintln!("warning: {node}: two attestation manifests hold other bytes for {c}: the newest one's was taken");
    }
}

/// `1 blob`, `3 blobs`.
pub(crate) fn blobs(n: usize) -> String {
    counted(n, "blob")
}

/// A count and its noun, plural unless 1: `1 image`, `2 images`, `0 entries`, `3 other files`.
pub(crate) fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

/// Warnings (and their hints) on stderr.
pub(crate) fn print_warnings(warnings: &[Finding]) {
    for w in warnings.iter().filter(|w| w.severity == Severity::Warning) {
        eprintln!("warning: {}", w.line());
        if let Some(h) = &w.hint {
            crate::cli::print_hint(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn counts_say_their_plurals() {
        assert_eq!(counted(1, "image"), "1 image");
        assert_eq!(counted(0, "image"), "0 images");
        assert_eq!(counted(2, "entry"), "2 entries");
        assert_eq!(counted(1, "entry"), "1 entry");
        assert_eq!(counted(3, "key"), "3 keys");
        assert_eq!(counted(2, "store object"), "2 store objects");
    }
}
