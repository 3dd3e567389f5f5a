//! The operator's experience: what a mistyped name, a missing generation, a rollback with
//! nothing to do, a subdirectory or a typo in `[vars]` say.

use crate::TestContext;

const NODES: &str =
    "hint: nodes of kubenet.toml: control0, control1, control2, worker0, worker1, worker2";

/// A mistyped node name gets the same sentence, with a suggestion, from every command that
/// takes a node.
#[test]
fn a_mistyped_node_name_suggests_the_node() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    let msg = "error: `workr1` is not a node of kubenet.toml; did you mean worker1?\n";
    let tmp = ctx.path().join("flat.tar.zst");
    let tmp = tmp.to_str().unwrap();
    for args in [
        vec!["build", "--node", "workr1"],
        vec!["list", "--node", "workr1"],
        vec!["rollback", "workr1"],
        vec!["show", "workr1"],
        vec!["show", "workr1@1"],
        vec!["show", "workr1", "--boot"],
        vec!["diff", "worker1", "workr1"],
        vec!["diff", "workr1@1", "worker1"],
        vec!["flatten", "workr1", "-o", tmp],
    ] {
        let r = if args[0] == "build" {
            ctx.net(&args)
        } else {
            ctx.run(&args)
        };
        let r = r.fails();
        assert_eq!(r.stderr, format!("{msg}{NODES}\n"), "{args:?}");
    }
    // Nothing close: no suggestion, the list of nodes.
    let r = ctx.run(&["list", "--node", "db9"]).fails();
    assert_eq!(
        r.stderr,
        format!("error: `db9` is not a node of kubenet.toml\n{NODES}\n")
    );
    // A node of the manifest that was never built still says to build it.
    std::fs::remove_dir_all(ctx.path().join("out/nodes/worker2")).unwrap();
    ctx.run(&["rollback", "worker2"])
        .fails()
        .stderr_has("node `worker2` has no generations yet: run `nodeforge build` first");
}

/// `diff`/`show` of a generation that does not exist say which ones do.
#[test]
fn a_missing_generation_lists_the_ones_there_are() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    crate::set_verbosity(&ctx, 3);
    ctx.net(&["build"]).ok();
    let msg = "error: node `worker1` has no generation 9: worker1 has generations 1, 2\n";
    for args in [
        vec!["show", "worker1@9"],
        vec!["show", "worker1@9", "--boot"],
        vec!["diff", "worker1@1", "worker1@9"],
    ] {
        let r = ctx.run(&args).fails();
        assert_eq!(r.stderr, msg, "{args:?}");
        assert!(!r.stderr.contains("os error"), "{}", r.stderr);
    }
    ctx.run(&["diff", "worker1@1", "worker1@2"]).ok();
}

fn current_image(ctx: &TestContext, node: &str) -> String {
    let p = std::fs::canonicalize(ctx.path().join("out/nodes").join(node).join("current")).unwrap();
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// `rollback --all` with nothing to go back to, `rollback --to` the current image, and a build
/// after a rollback say what they do.
#[test]
fn rollbacks_say_what_they_did_and_did_not_do() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    let nodes = [
        "control0", "control1", "control2", "worker0", "worker1", "worker2",
    ];
    let r = ctx.run(&["rollback", "--all"]).fails();
    assert_eq!(
        r.stderr,
        format!(
            "error: no node can be rolled back: {}\n",
            nodes
                .iter()
                .map(|n| format!("node `{n}` has no generation before 1"))
                .collect::<Vec<_>>()
                .join("; ")
        )
    );
    crate::set_verbosity(&ctx, 3);
    ctx.net(&["build"]).ok();
    let id = current_image(&ctx, "worker1");
    // To the image it is on: says so, switches nothing.
    let r = ctx.run(&["rollback", "worker1", "--to", &id[..10]]).ok();
    assert_eq!(
        r.stdout,
        format!("worker1 is already on generation 2 (image {id}): nothing to switch\n")
    );
    assert_eq!(current_image(&ctx, "worker1"), id);
    // A build after a rollback moves the node forward again, and says so.
    ctx.run(&["rollback", "worker1"]).ok();
    let r = ctx.net(&["build"]).ok();
    assert_eq!(
        r.stderr,
        "note: worker1: was rolled back to generation 1; this build makes generation 3 current\n"
    );
    assert_eq!(current_image(&ctx, "worker1"), id);
    // The next one has nothing to say.
    assert_eq!(ctx.net(&["build"]).ok().stderr, "");
    // Generations 2 and 3 hold one image: a rollback goes past 2, to 1, and says so; `--all`
    // does the same for every node.
    let r = ctx.run(&["rollback", "worker1"]).ok();
    assert_eq!(
        r.stdout,
        format!(
            "worker1: generation 3 → 1 (image {}); skipped generation 2: the same image as generation 3\n",
            current_image(&ctx, "worker1")
        )
    );
    assert_ne!(current_image(&ctx, "worker1"), id);
    ctx.run(&["rollback", "worker1", "--to", "@3"]).ok();
    let v = ctx.run(&["rollback", "--all", "--json"]).ok().json();
    let w1 = v["rolled_back"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["node"] == "worker1")
        .unwrap();
    assert_eq!(
        (w1["from"].as_u64(), w1["to"].as_u64()),
        (Some(3), Some(1)),
        "{v}"
    );
    assert_eq!(w1["skipped_generations"], serde_json::json!([2]), "{v}");
}

/// `rollback --to`: a number that is both a generation and the start of an image id is refused
/// with both readings, another node's `NODE@N` is named, and a miss points at `list`. (The
/// readings that succeed: `history::rollback_to_an_id_prefix_and_ambiguity` and the unit tests
/// of `generations::target`.)
#[test]
fn rollback_to_mistakes_say_what_to_write() {
    // Made directly, so which ids start with which digits is certain.
    let out = tempfile::tempdir().unwrap();
    let (a, b) = ("a".repeat(64), "2".repeat(64));
    for id in [&a, &b, &a] {
        nodeforge::generations::record(out.path(), "n", id, "l", b"{}").unwrap();
    }
    let run = |to: &str| crate::run_in(out.path(), &["--out", ".", "rollback", "n", "--to", to]);
    let cur = || nodeforge::generations::current(out.path(), "n");
    let r = run("2").fails();
    assert_eq!(
        r.stderr,
        "error: `--to 2` is ambiguous for node `n`: generation 2 (image 2222222222222222), or image 2222222222222222 (generation 2), whose id starts with `2`\n\
         hint: write `--to @2` (or `--to n@2`) for the generation, or more of the id for the image\n"
    );
    assert_eq!(cur(), Some(3), "nothing switched");
    let r = run("zzz").fails();
    assert_eq!(
        r.stderr,
        "error: `--to zzz` is neither a generation of node `n` nor the start of an image id it had\n\
         hint: `nodeforge list --node n` shows its generations and their image ids; pass one as `--to @N` or an id (prefix)\n"
    );
    run("m@2")
        .fails()
        .stderr_has("error: `--to m@2` names node `m`, not `n`\nhint: to roll back `m`, run `nodeforge rollback m --to m@2`\n");
    run("@9")
        .fails()
        .stderr_has("error: node `n` has no generation 9: n has generations 1, 2, 3\n");
}

/// Every directory under `root`, sorted.
fn dirs(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                out.push(e.path());
                todo.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// `verify` and `gc --dry-run` read: on an empty or mistyped --out they create nothing (as
/// root, permissions cannot show it; the directories they would make can).
#[test]
fn read_only_commands_create_no_directories() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let before = dirs(ctx.path());
    for out in ["out", "no/such/out"] {
        let r = ctx.run(&["--out", out, "verify"]).ok();
        assert!(
            r.stderr.contains("holds no store objects and no images"),
            "{}",
            r.stderr
        );
        ctx.run(&["--out", out, "verify", "--rebuild"]).ok();
        let v = ctx
            .run(&["--out", out, "gc", "--dry-run", "--json"])
            .ok()
            .json();
        assert_eq!(v["removed_objects"], 0, "{v}");
        ctx.run(&["--out", out, "gc", "--dry-run"]).ok();
        assert_eq!(dirs(ctx.path()), before, "--out {out}");
    }
    // On a built tree they create nothing either.
    ctx.net(&["build"]).ok();
    let before = dirs(ctx.path());
    ctx.run(&["verify"]).ok();
    ctx.run(&["gc", "--dry-run", "--keep-generations", "1"])
        .ok();
    assert_eq!(dirs(ctx.path()), before);
}

/// From a subdirectory, the project is found upwards (like cargo): the manifest, lockfile and
/// `out` are the project's, and nothing is said about it; outside any project, a clear error.
#[test]
fn a_subdirectory_finds_the_project_root() {
    let ctx = TestContext::new();
    let sub = ctx.path().join("docs/notes");
    std::fs::create_dir_all(&sub).unwrap();
    let mirror = ctx.server.url();
    let net = |args: &[&str]| {
        let mut all = args.to_vec();
        // The fixture server stands in for upstream, as a mirror: its checksum files pin.
        all.extend([
            "--mirrors-only",
            "--trust-mirror-checksums",
            "--mirror",
            &mirror,
            "--retries",
            "1",
        ]);
        crate::run_in(&sub, &all)
    };
    let r = net(&["lock"]).ok();
    assert!(!r.stderr.contains("project"), "{}", r.stderr);
    assert!(ctx.lockfile().is_file());
    net(&["build"]).ok();
    assert!(ctx.path().join("out/nodes/worker1/current").exists());
    assert_eq!(
        std::fs::read_dir(&sub).unwrap().count(),
        0,
        "nothing is made in the subdirectory"
    );
    crate::run_in(&sub, &["list", "--node", "worker1"])
        .ok()
        .stdout_has("worker1\n  *   1  ");
    crate::run_in(&sub, &["verify"]).ok();
    // An explicit --out is relative to where the command runs.
    crate::run_in(&sub, &["--out", "here", "verify"]).ok();
    assert!(!sub.join("here").exists());

    // Outside any project: says so, creates nothing.
    let elsewhere = tempfile::tempdir().unwrap();
    for args in [vec!["build"], vec!["lock", "--check"], vec!["verify"]] {
        let r = crate::run_in(elsewhere.path(), &args).fails();
        assert_eq!(
            r.stderr,
            format!(
                "error: no manifests/kubenet.toml in {} or any directory above it: not inside a nodeforge project\n\
                 hint: run nodeforge in the project's directory (the one holding manifests/) or below it, or pass --manifest PATH\n",
                elsewhere.path().display()
            ),
            "{args:?}"
        );
    }
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

/// A `vars` key no template reads is a warning naming the node (or `[vars]`) and the key, with
/// the key that was likely meant; the build goes on.
#[test]
fn an_unread_vars_key_is_a_warning() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let t = std::fs::read_to_string(ctx.manifest()).unwrap();
    ctx.set_manifest(&format!("{t}\n[vars]\nkubelet_verbosty = 5\n"));
    ctx.edit_manifest(
        "name = \"worker1\"\n",
        "name = \"worker1\"\nvars = { kubelet_verbosty = 4, kubelet_verbosity = 3 }\n",
    );
    let r = ctx.net(&["build"]).ok();
    assert_eq!(
        r.stderr,
        "warning: kubenet.toml: [vars] key `kubelet_verbosty` is read by no template; did you mean kubelet_verbosity?\n\
         warning: worker1: vars key `kubelet_verbosty` is read by no template; did you mean kubelet_verbosity?\n"
    );
    // Spelled right: nothing to say.
    crate::set_verbosity(&ctx, 5);
    ctx.edit_manifest("kubelet_verbosty = 4, ", "");
    let r = ctx.net(&["build"]).ok();
    assert_eq!(r.stderr, "");
}

/// The names of a `--help`'s subcommands (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.split("\nCommands:\n")
        .nth(1)
        .map(|s| {
            s.lines()
                .take_while(|l| l.starts_with("  "))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|c| *c != "help")
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Every option and argument of every command's `--help` says what it is for; the main
/// commands show examples.
#[test]
fn every_help_option_has_a_description_and_main_commands_have_examples() {
    let dir = tempfile::tempdir().unwrap();
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    while let Some(cmd) = todo.pop() {
        let mut args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        args.push("--help");
        let help = crate::run_in(dir.path(), &args).ok().stdout;
        seen += 1;
        for sub in subcommands(&help) {
            let mut c = cmd.clone();
            c.push(sub);
            todo.push(c);
        }
        let mut section = "";
        for line in help.lines() {
            if !line.starts_with(' ') {
                section = line;
                continue;
            }
            if !section.ends_with("options:") && section != "Options:" && section != "Arguments:" {
                continue;
            }
            // Common options are grouped apart from a command's own.
            if section == "Options:" && !cmd.is_empty() {
                assert!(
                    !line.contains("--manifest") && !line.contains("--json"),
                    "`nodeforge {}`: {line:?} belongs under Common options",
                    cmd.join(" ")
                );
            }
            let spec = line.trim_start();
            let described = spec
                .split_once("  ")
                .is_some_and(|(_, d)| !d.trim().is_empty());
            assert!(
                described,
                "`nodeforge {}`: {spec:?} has no description",
                cmd.join(" ")
            );
        }
        if cmd.len() == 1 {
            assert!(help.contains("\nCommon options:\n"), "{help}");
        }
        if cmd.len() == 1 && ["build", "fetch", "lock"].contains(&cmd[0].as_str()) {
            assert!(help.contains("\nNetwork options:\n"), "{help}");
        }
        let main = ["build", "lock", "fetch", "rollback", "verify", "show"];
        if cmd.len() == 1 && main.contains(&cmd[0].as_str()) {
            let examples = help
                .split("\nExamples:\n")
                .nth(1)
                .unwrap_or_else(|| panic!("`nodeforge {}` has no examples:\n{help}", cmd[0]));
            assert!(
                examples.lines().all(|l| l.starts_with("  nodeforge ")),
                "{examples}"
            );
            assert!(
                examples.contains(&format!(" {} ", cmd[0]))
                    || examples.contains(&format!(" {}\n", cmd[0])),
                "{examples}"
            );
        }
    }
    assert!(seen >= 15, "{seen} help pages");
}

/// The last lines of fetch and build count what happened, and name the real `--out`.
#[test]
fn summaries_count_truthfully() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let last = |r: &crate::Run| r.stdout.lines().last().unwrap_or_default().to_string();
    let r = ctx.net(&["fetch"]).ok();
    assert!(
        last(&r).starts_with("fetched 6 artifacts (")
            && last(&r).contains("), 0 already in the store, 0 failed, in "),
        "{}",
        r.stdout
    );
    let r = ctx.net(&["fetch"]).ok();
    assert!(
        last(&r).starts_with("fetched 0 artifacts (0 B), 6 already in the store, 0 failed, in "),
        "{}",
        r.stdout
    );
    let built = |r: &crate::Run, counts: &str, out: &str| {
        let line = last(r);
        assert!(
            line.starts_with(&format!("built {counts} node images in "))
                && line.ends_with(&format!("s; {out}/nodes/<node>/current points at each")),
            "{}",
            r.stdout
        );
    };
    built(&ctx.net(&["build"]).ok(), "6, reused 0, unchanged 0", "out");
    crate::set_verbosity(&ctx, 3);
    built(&ctx.net(&["build"]).ok(), "6, reused 0, unchanged 0", "out");
    // Back to generation 1 and forward again: worker1's image exists, the others did not move.
    ctx.run(&["rollback", "worker1"]).ok();
    built(&ctx.net(&["build"]).ok(), "0, reused 1, unchanged 5", "out");
    // The real --out, not `out`.
    built(
        &ctx.net(&["--out", "elsewhere", "build", "--node", "worker0"])
            .ok(),
        "1, reused 0, unchanged 0",
        "elsewhere",
    );
    ctx.net(&["build"])
        .ok()
        .stdout_has("nothing to do: all 6 node images are up to date");
}

/// On a read-only `out/` (a bind mount with `ro`), everything that needs no writing works: verify,
/// list, show, show --boot, diff, gc --dry-run, flatten elsewhere, and a build with nothing to do.
#[test]
fn a_read_only_out_serves_every_command_that_writes_nothing() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    // An out/ made before images had SBOMs beside them (`build` writes none on a read-only one).
    std::fs::remove_dir_all(ctx.path().join("out/attestations")).unwrap();
    let ro = ctx.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["--bind", "-o", "ro"])
        .arg(ctx.path().join("out"))
        .arg(&ro)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: a read-only bind mount needs root");
        return;
    }
    let flat = ctx.path().join("w1.tar.zst");
    let export = ctx.path().join("w1.oci");
    let runs: Vec<Vec<&str>> = vec![
        vec!["verify"],
        vec!["list"],
        vec!["show", "worker1"],
        vec!["show", "worker1", "--boot"],
        vec!["diff", "worker0", "worker1"],
        vec!["gc", "--dry-run"],
        vec!["flatten", "worker1", "-o", flat.to_str().unwrap()],
        vec!["build", "--offline"],
        vec!["sbom", "worker1"],
        vec!["provenance", "worker1"],
        // Writes the whole record it sends outside out/ (out/ keeps it without its entries).
        vec![
            "export",
            "--node",
            "worker1",
            "--oci-layout",
            export.to_str().unwrap(),
        ],
    ];
    let mut failed = Vec::new();
    for args in &runs {
        let mut all = vec!["--out", "ro"];
        all.extend(args.iter().copied());
        let r = ctx.run(&all);
        if r.code != 0 {
            failed.push(format!("{args:?}: {}", r.stderr));
        }
        if args[0] == "build" && !r.stderr.contains("no SBOM written") {
            failed.push(format!(
                "{args:?} does not say it wrote no SBOM: {}",
                r.stderr
            ));
        }
    }
    let _ = std::process::Command::new("umount").arg(&ro).status();
    assert!(failed.is_empty(), "{failed:#?}");
}

/// NODEFORGE_OFFLINE takes what people write in an environment: 1/0, true/false, yes/no.
#[test]
fn offline_from_the_environment_takes_1_0_yes_no() {
    let ctx = TestContext::new();
    let run = |v: &str| {
        crate::run_env(
            ctx.path(),
            &[
                "lock",
                "--mirrors-only",
                "--mirror",
                "http://127.0.0.1:9/",
                "--retries",
                "0",
            ],
            &[("NODEFORGE_OFFLINE", v)],
            None,
        )
    };
    let note = "note: --offline: mirror http://127.0.0.1:9 is skipped";
    for v in ["1", "true", "yes", "on", "TRUE", "Yes"] {
        let r = run(v);
        assert!(
            r.stderr.contains(note),
            "NODEFORGE_OFFLINE={v}: {}",
            r.stderr
        );
    }
    for v in ["0", "false", "no", "off"] {
        let r = run(v);
        assert!(
            !r.stderr.contains(note),
            "NODEFORGE_OFFLINE={v}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("NODEFORGE_OFFLINE"), "{}", r.stderr);
    }
    let r = run("maybe");
    assert_eq!(r.code, 2, "a command-line mistake, as clap's: {}", r.stderr);
    assert!(
        r.stderr
            .starts_with("error: invalid value 'maybe' for '--offline': value was not a boolean"),
        "{}",
        r.stderr
    );
}

/// A node name where `--node` is meant: clap's error, with the way to write it.
#[test]
fn a_positional_node_name_hints_at_node() {
    let ctx = TestContext::new();
    for cmd in ["build", "list"] {
        let r = ctx.run(&[cmd, "worker1"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert_eq!(
            r.stderr,
            format!(
                "error: unexpected argument 'worker1' found\n\n  \
                 tip: use --node worker1: `nodeforge {cmd}` takes the node as an option\n\n\
                 Usage: nodeforge {cmd} [OPTIONS]\n\nFor more information, try '--help'.\n"
            )
        );
    }
    // An unexpected option, or a command without --node: clap's error alone.
    let r = ctx.run(&["build", "--nodes"]);
    assert!(!r.stderr.contains("tip: use --node"), "{}", r.stderr);
    let r = ctx.run(&["gc", "worker1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!r.stderr.contains("--node"), "{}", r.stderr);
}
