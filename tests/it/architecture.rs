//! The module boundaries ARCHITECTURE.md states, checked on the source: each test reads `src/`
//! and names the file and line that crosses a boundary.

use std::path::{Path, PathBuf};

use crate::REPO;

/// Every `.rs` file under `src/<dir>`, sorted.
fn rust_files(dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![Path::new(REPO).join("src").join(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no source under src/{dir}");
    out
}

/// The code lines of a file (1-based numbers) before its `#[cfg(test)]` module, without
/// comments: what the module itself depends on.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("").to_string()))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect()
}

/// Each line of `files` that contains one of `needles`, as `path:line: text`.
fn offending(files: &[PathBuf], needles: &[&str]) -> Vec<String> {
    let mut v = Vec::new();
    for f in files {
        for (n, l) in code_lines(f) {
            if needles.iter().any(|s| l.contains(s)) {
                let rel = f.strip_prefix(REPO).unwrap_or(f);
                v.push(format!("{}:{n}: {}", rel.display(), l.trim()));
            }
        }
    }
    v
}

#[test]
fn oci_knows_nothing_of_out_fetch_or_ops() {
    let bad = offending(
        &rust_files("oci"),
        &[
            "crate::layout",
            "crate::fetch",
            "crate::ops",
            "crate::generations",
            "crate::store",
            // out/'s tree and the attestation directory's file names.
            "\"out/",
            "join(\"layers\")",
            "join(\"images\")",
            "join(\"nodes\")",
            "join(\"attestations\")",
            "join(\"generations\")",
            "join(\"current\")",
            "sbom.spdx.json",
            ".dsse.json",
            ".roothash.p7s",
        ],
    );
    assert!(
        bad.is_empty(),
        "oci must know nothing of out/, fetch or ops:\n{}",
        bad.join("\n")
    );
}

#[test]
fn ops_error_depends_on_nothing_else_in_ops() {
    let file = Path::new(REPO).join("src/ops/error.rs");
    let bad = offending(&[file], &["crate::ops", "super::"]);
    assert!(
        bad.is_empty(),
        "ops/error.rs imports from ops:\n{}",
        bad.join("\n")
    );
}

#[test]
fn command_wings_import_steps_and_error_never_each_other() {
    let wings = ["build", "history", "registry", "attest"];
    for wing in wings {
        let others: Vec<String> = wings
            .iter()
            .filter(|w| **w != wing)
            .map(|w| format!("crate::ops::{w}"))
            .collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        let bad = offending(&rust_files(&format!("ops/{wing}")), &others);
        assert!(
            bad.is_empty(),
            "ops/{wing} imports another wing:\n{}",
            bad.join("\n")
        );
    }
    let wings: Vec<String> = wings.iter().map(|w| format!("crate::ops::{w}")).collect();
    let wings: Vec<&str> = wings.iter().map(String::as_str).collect();
    let bad = offending(&rust_files("ops/steps"), &wings);
    assert!(
        bad.is_empty(),
        "ops/steps imports a command wing:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_command_file_imports_another() {
    let mut bad = Vec::new();
    for f in rust_files("cli/commands") {
        for (n, l) in code_lines(&f) {
            // `super::super::x` is cli's own; `super::x::` would be another command.
            let rest = l.replace("super::super::", "");
            if rest.contains("super::") && !rest.contains("super::*") {
                bad.push(format!("{}:{n}: {}", f.display(), l.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "shared flag groups belong in cli/args.rs:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_library_below_ops_knows_nothing_of_commands() {
    let mut files = Vec::new();
    for dir in [
        "fetch",
        "oci",
        "image",
        "store",
        "render",
        "trust",
        "lock",
        "manifest",
        "generations",
    ] {
        files.extend(rust_files(dir));
    }
    for f in ["layout.rs", "http.rs", "fsutil.rs", "extract.rs", "hash.rs"] {
        files.push(Path::new(REPO).join("src").join(f));
    }
    let bad = offending(&files, &["crate::ops", "crate::cli"]);
    assert!(
        bad.is_empty(),
        "a library module reaches up into ops or cli:\n{}",
        bad.join("\n")
    );
}

/// Progress is drawn by cli alone: the library reports to a `progress::Reporter`, and whether
/// stderr is a terminal is asked in one place.
#[test]
fn only_cli_draws_progress() {
    let all = rust_files("");
    let outside_cli: Vec<PathBuf> = all
        .iter()
        .filter(|f| !f.starts_with(Path::new(REPO).join("src/cli")))
        .cloned()
        .collect();
    let bad = offending(&outside_cli, &["indicatif"]);
    assert!(
        bad.is_empty(),
        "indicatif outside src/cli/ (report to a progress::Reporter instead):\n{}",
        bad.join("\n")
    );
    let asks = offending(&all, &["is_terminal()"]);
    assert_eq!(
        asks.len(),
        1,
        "whether to draw is decided once (cli/progress.rs):\n{}",
        asks.join("\n")
    );
}
