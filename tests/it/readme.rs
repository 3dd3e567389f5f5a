//! The README's quickstart and worked upgrade, run as written: every `$ ` line of the
//! ```console blocks under "## Quickstart" (and "## A worked upgrade"), one after another, with
//! the `nodeforge` this test builds first on PATH, a fresh HOME (the quickstart works in
//! `~/quickstart`, starting in the repository; the upgrade in a project of its own, applying the
//! manifest changes its text and ```toml blocks describe), offline.
//! Each command must succeed and print exactly the lines the README shows under it, once the
//! things that vary are normalised: durations (`0.39s`), times (`2026-12-05T18:05:44Z`) and the
//! home directory (shown as `/home/me`); blank lines and trailing spaces do not count. A shown output that ends in a line `…` was cut there:
//! the real one must begin with the lines shown. A shown output that starts with `error:` is a
//! command that must fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::REPO;

/// One `$ command` of the quickstart and the output lines the README shows for it.
struct Step {
    command: String,
    shown: Vec<String>,
}

/// What a README section holds, in order: commands with their shown output, ```toml blocks,
/// and the lines of text outside blocks.
enum Item {
    Run(Step),
    Toml(String),
    Text(String),
}

/// The items of the README section that starts with `heading`, up to the next `## `.
fn section(readme: &str, heading: &str) -> Vec<Item> {
    let start = readme
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("README.md has no `{heading}` section"));
    let rest = &readme[start + 1..];
    let section = &rest[..rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3)];
    let mut items: Vec<Item> = Vec::new();
    let mut block: Option<&str> = None;
    for line in section.lines() {
        if let Some(kind) = line.strip_prefix("```") {
            match block {
                None => {
                    block = Some(kind);
                    if kind == "toml" {
                        items.push(Item::Toml(String::new()));
                    }
                }
                Some(_) => block = None,
            }
            continue;
        }
        match block {
            None => items.push(Item::Text(line.to_string())),
            Some("toml") => {
                if let Some(Item::Toml(t)) = items.last_mut() {
                    t.push_str(line);
                    t.push('\n');
                }
            }
            Some("console") => {
                if let Some(command) = line.strip_prefix("$ ") {
                    items.push(Item::Run(Step {
                        command: command.to_string(),
                        shown: Vec::new(),
                    }));
                } else if !line.trim().is_empty() {
                    match items.last_mut() {
                        Some(Item::Run(step)) => step.shown.push(line.to_string()),
                        _ => panic!("README {heading}: output before any command: {line}"),
                    }
                }
            }
            Some(_) => {}
        }
    }
    items
}

fn steps(items: &[Item]) -> Vec<&Step> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Run(s) => Some(s),
            _ => None,
        })
        .collect()
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

/// Runs README commands one after another in a fresh HOME, as a shell would (a `cd` carries on).
struct Runner {
    _home: tempfile::TempDir,
    home: PathBuf,
    path: String,
    cwd: PathBuf,
}

impl Runner {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = std::fs::canonicalize(dir.path()).unwrap();
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_nodeforge"));
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Self {
            _home: dir,
            home,
            path,
            cwd: PathBuf::from(REPO),
        }
    }

    /// Run `step` and compare what it prints with what the README shows.
    #[track_caller]
    fn run(&mut self, what: &str, step: &Step) {
        let pwd_file = self.home.join(".pwd");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            r#"cd "$1" && eval "$2" 2>&1; rc=$?; pwd >"$3"; exit $rc"#,
            "sh",
        ])
        .arg(&self.cwd)
        .arg(&step.command)
        .arg(&pwd_file)
        .env("HOME", &self.home)
        .env("PATH", &self.path)
        .env("NO_COLOR", "1")
        .env_remove("CI");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("NODEFORGE_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd.output().unwrap();
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        let must_fail = step.shown.first().is_some_and(|l| l.starts_with("error:"));
        assert_eq!(
            out.status.success(),
            !must_fail,
            "README {what}: `{}` {} ({}):\n{printed}",
            step.command,
            if must_fail {
                "succeeded, and the README shows an error"
            } else {
                "failed"
            },
            out.status
        );
        self.cwd = PathBuf::from(std::fs::read_to_string(&pwd_file).unwrap().trim_end());
        let home = self.home.to_str().unwrap();
        let got: Vec<String> = printed
            .lines()
            .map(|l| normalise(l, home))
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
            "README {what}: `{}` printed something else than the README shows (left: the run, \
             right: the README; paste the run's output into the README)",
            step.command
        );
    }
}

#[test]
fn the_readme_quickstart_runs_as_written() {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    let items = section(&readme, "## Quickstart");
    let steps = steps(&items);
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
    let mut runner = Runner::new();
    for step in steps {
        runner.run("quickstart", step);
    }
}

/// The worked upgrade, in a project with the repository's manifests and no lockfile. Its manifest
/// changes are in its text and ```toml blocks: step 1 appends the canary group; step 2 sets
/// `[control-plane] kube-apiserver = "1.31.1"` and appends the control group; step 3 sets
/// `[versions] kubernetes = "1.31.1"` and removes both groups; the policy example appends a
/// canary on 1.32.0.
#[test]
fn the_readme_worked_upgrade_runs_as_written() {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    let items = section(&readme, "## A worked upgrade");
    assert!(
        steps(&items).len() >= 15,
        "the worked upgrade has its steps"
    );
    let mut runner = Runner::new();
    let project = runner.home.join("upgrade");
    crate::copy_tree(
        &Path::new(REPO).join("manifests"),
        &project.join("manifests"),
    );
    std::fs::create_dir_all(project.join("lockfiles")).unwrap();
    runner.cwd.clone_from(&project);
    let manifest = project.join("manifests/kubenet.toml");
    let edit = |f: &dyn Fn(String) -> String| {
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, f(text)).unwrap();
    };
    let set = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the manifest has no `{from}`");
        text.replacen(from, to, 1)
    };
    let mut tomls = 0;
    for item in &items {
        match item {
            Item::Run(step) => runner.run("worked upgrade", step),
            Item::Toml(toml) => {
                tomls += 1;
                edit(&|t| {
                    let t = if tomls == 2 {
                        set(
                            t,
                            "kube-apiserver = \"1.31.0\"",
                            "kube-apiserver = \"1.31.1\"",
                        )
                    } else {
                        t
                    };
                    format!("{t}\n{toml}")
                });
            }
            Item::Text(line) if line.starts_with("**3. The workers.**") => edit(&|t| {
                let t = set(t, "\nkubernetes = \"1.31.0\"", "\nkubernetes = \"1.31.1\"");
                let at = t.find("\n[groups.canary]").expect("the canary group");
                format!("{}\n", &t[..at])
            }),
            Item::Text(_) => {}
        }
    }
    assert_eq!(tomls, 3, "the worked upgrade's three manifest changes");
}
