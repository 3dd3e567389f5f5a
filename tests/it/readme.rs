//! The README's quickstart, run as written: every `$ ` line of the ```console blocks under
//! "## Quickstart", one after another, with the `nodeforge` this test builds first on PATH, a
//! fresh HOME (the quickstart works in `~/quickstart`), starting in the repository, offline.
//! Each command must succeed and print exactly the lines the README shows under it, once the
//! things that vary are normalised: durations (`0.39s`), times (`2026-12-05T18:05:44Z`) and the
//! home directory (shown as `/home/me`); blank lines and trailing spaces do not count. A shown output that ends in a line `…` was cut there:
//! the real one must begin with the lines shown.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::REPO;

/// One `$ command` of the quickstart and the output lines the README shows for it.
struct Step {
    command: String,
    shown: Vec<String>,
}

/// The `$ ` lines and their outputs, in order, of every ```console block of the section.
fn quickstart(readme: &str) -> Vec<Step> {
    let start = readme
        .find("\n## Quickstart")
        .expect("README.md has a `## Quickstart` section");
    let rest = &readme[start + 1..];
    let section = &rest[..rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3)];
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    for line in section.lines() {
        if line.starts_with("```") {
            in_console = !in_console && line == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_string(),
                shown: Vec::new(),
            });
        } else if !line.trim().is_empty() {
            let step = steps
                .last_mut()
                .unwrap_or_else(|| panic!("README quickstart: output before any command: {line}"));
            step.shown.push(line.to_string());
        }
    }
    steps
}

/// `2026-12-05T18:05:44Z` (a time `list` prints).
fn is_time(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// `0.39s`, `12ms`, with any `,;)` after it (a duration a report prints).
fn is_duration(t: &str) -> bool {
    let t = t.trim_end_matches([',', ';', ')']);
    let Some(n) = t.strip_suffix("ms").or_else(|| t.strip_suffix('s')) else {
        return false;
    };
    !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit() || c == '.')
        && n.contains(char::is_numeric)
}

/// A line with what varies between runs replaced, and trailing spaces dropped.
fn normalise(line: &str, home: &str) -> String {
    let line = line.replace(home, "/home/me");
    let mut out = String::new();
    for (i, token) in line.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if is_time(token) {
            out.push_str("<time>");
        } else if is_duration(token) {
            out.push_str("<duration>");
        } else {
            out.push_str(token);
        }
    }
    out.trim_end().to_string()
}

#[test]
fn the_readme_quickstart_runs_as_written() {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    let steps = quickstart(&readme);
    assert!(
        steps.len() >= 8,
        "the README's quickstart has {} commands",
        steps.len()
    );
    for want in ["demo-mirror", "lock", "build", "show", "--boot", "rollback"] {
        assert!(
            steps.iter().any(|s| s.command.contains(want)),
            "the README's quickstart runs no `{want}`"
        );
    }
    let home = tempfile::tempdir().unwrap();
    let home_path = std::fs::canonicalize(home.path()).unwrap();
    let home_str = home_path.to_str().unwrap().to_string();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_nodeforge"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let pwd_file = home_path.join(".pwd");
    let mut cwd = PathBuf::from(REPO);
    for step in &steps {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            r#"cd "$1" && eval "$2" 2>&1; rc=$?; pwd >"$3"; exit $rc"#,
            "sh",
        ])
        .arg(&cwd)
        .arg(&step.command)
        .arg(&pwd_file)
        .env("HOME", &home_path)
        .env("PATH", &path)
        .env("NO_COLOR", "1")
        .env_remove("CI");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("NODEFORGE_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd.output().unwrap();
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "README quickstart: `{}` failed ({}):\n{printed}",
            step.command,
            out.status
        );
        cwd = PathBuf::from(std::fs::read_to_string(&pwd_file).unwrap().trim_end());
        let got: Vec<String> = printed
            .lines()
            .map(|l| normalise(l, &home_str))
            .filter(|l| !l.is_empty())
            .collect();
        let (shown, cut) = match step.shown.split_last() {
            Some((last, before)) if last == "…" => (before, true),
            _ => (&step.shown[..], false),
        };
        let shown: Vec<String> = shown.iter().map(|l| normalise(l, "/home/me")).collect();
        let got = if cut && got.len() > shown.len() {
            &got[..shown.len()]
        } else {
            &got[..]
        };
        assert_eq!(
            got,
            &shown[..],
            "README quickstart: `{}` printed something else than the README shows (left: the run, \
             right: the README; paste the run's output into the README)",
            step.command
        );
    }
}
