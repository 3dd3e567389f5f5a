//! The corpus of broken inputs (`tests/corpus/`): every broken manifest, lockfile and template
//! gives one clear error naming the file (and the line, where there is one), exit 1, never a panic
//! or a backtrace, and writes nothing.

use std::path::{Path, PathBuf};

use crate::{copy_tree, run_in, TestContext, REPO};

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(REPO).join("tests/corpus").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// The first line is `error: <file>[:line[:col]]: …`, with nothing of a panic anywhere.
#[track_caller]
fn clear_error(r: &crate::Run, file: &str, needs_line: bool, case: &str) {
    assert_eq!(r.code, 1, "{case}: exit code {}\n{}", r.code, r.stderr);
    assert!(
        !r.stderr.contains("panicked") && !r.stderr.contains("RUST_BACKTRACE"),
        "{case}: {}",
        r.stderr
    );
    let first = r.stderr.lines().next().unwrap_or_default();
    let at = first
        .find(file)
        .unwrap_or_else(|| panic!("{case}: the error does not name {file}: {first}"));
    assert!(first.starts_with("error: "), "{case}: {first}");
    if needs_line {
        let after = &first[at + file.len()..];
        assert!(
            after.starts_with(':') && after[1..].starts_with(|c: char| c.is_ascii_digit()),
            "{case}: no line number: {first}"
        );
    }
}

#[test]
fn broken_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    for f in files("manifests") {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let r = run_in(
            tmp.path(),
            &[
                "lock",
                "--check",
                "--manifest",
                f.to_str().unwrap(),
                "--lockfile",
                "x.lock",
            ],
        );
        clear_error(&r, &name, true, &name);
        let r = run_in(
            tmp.path(),
            &[
                "lock",
                "--manifest",
                f.to_str().unwrap(),
                "--lockfile",
                "x.lock",
                "--offline",
            ],
        );
        clear_error(&r, &name, true, &name);
        assert!(
            !tmp.path().join("x.lock").exists(),
            "{name}: a lockfile was written"
        );
        n += 1;
    }
    eprintln!("broken manifests tried: {n}");
    assert!(n >= 50);
}

#[test]
fn broken_lockfiles() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = format!("{REPO}/manifests/kubenet.toml");
    let mut n = 0;
    for f in files("lockfiles") {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let before = std::fs::read(&f).unwrap();
        for cmd in [
            &["lock", "--check"][..],
            &["fetch", "--offline"][..],
            &["build", "--offline"][..],
            &["verify"][..],
        ] {
            let mut args = cmd.to_vec();
            args.extend(["--manifest", &manifest, "--lockfile", f.to_str().unwrap()]);
            let r = run_in(tmp.path(), &args);
            if cmd[0] == "verify" {
                // verify reports every failure as a FAIL line, naming the file.
                assert_eq!(r.code, 1, "{name}: {}", r.stderr);
                assert!(
                    r.stderr.contains(&name) && !r.stderr.contains("panicked"),
                    "{name}: {}",
                    r.stderr
                );
            } else {
                clear_error(
                    &r,
                    &name,
                    !name.starts_with("edited-"),
                    &format!("{name} ({})", cmd[0]),
                );
            }
        }
        assert_eq!(std::fs::read(&f).unwrap(), before, "{name} was rewritten");
        n += 1;
    }
    eprintln!("broken lockfiles tried: {n}");
    assert!(n >= 20);
}

#[test]
fn broken_templates() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["fetch"]).ok();
    let templates = ctx.path().join("manifests/kubenet");
    let pristine = ctx.path().join("pristine");
    copy_tree(&templates, &pristine);
    let mut n = 0;
    for case in files("templates") {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::remove_dir_all(&templates).unwrap();
        copy_tree(&pristine, &templates);
        copy_tree(&case, &templates);
        let r = ctx.run(&["build", "--offline"]);
        // The file named is the broken template (or, for a forbidden install path, the path).
        let mut broken = String::new();
        let mut stack = vec![case.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    broken = p.file_name().unwrap().to_string_lossy().into_owned();
                }
            }
        }
        let needs_line = !matches!(
            name.as_str(),
            "private-key-content"
                | "private-key-name"
                | "kubeconfig-name"
                | "not-utf8"
                | "bin-directory"
        );
        clear_error(&r, &broken, needs_line, &name);
        assert!(
            !ctx.path().join("out/images").exists(),
            "{name}: an image was written"
        );
        n += 1;
    }
    eprintln!("broken templates tried: {n}");
    assert!(n >= 18);
}
