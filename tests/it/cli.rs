//! The command line itself: global options before or after the subcommand, `-q`/`-v`, and
//! command-line mistakes as `--json` error objects.

use crate::TestContext;

/// Network options, `-j` and `--json` work before the subcommand as after it (as cargo's).
#[test]
fn global_options_work_before_or_after_the_subcommand() {
    let ctx = TestContext::new();
    let mirror = ctx.server.url();
    let before = ctx
        .run(&[
            "--json",
            "--mirrors-only",
            "--mirror",
            &mirror,
            "--retries",
            "1",
            "-j",
            "2",
            "lock",
        ])
        .ok();
    assert_eq!(before.json()["kind"], "lock-report");
    ctx.run(&["--offline", "-j", "1", "--mirror", &mirror, "fetch"])
        .fails()
        .stderr_has("offline");
    ctx.run(&[
        "fetch",
        "--json",
        "--mirrors-only",
        "--mirror",
        &mirror,
        "-j",
        "1",
    ])
    .ok();
    // After the fetch, offline works whichever side of `build` it is on.
    ctx.run(&["--offline", "build", "--node", "worker1"]).ok();
    ctx.run(&["build", "--offline", "--node", "worker1"]).ok();
    // Commands that take a thread count read the same -j.
    ctx.run(&["-j", "1", "verify"]).ok();
    ctx.run(&["plan", "-j", "1"]).ok();
}

/// `-q` drops `note:` lines, `-v` adds the causes of an error; both together are refused.
#[test]
fn quiet_and_verbose() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["fetch"]).ok();
    let note = "note: --offline: mirror http://127.0.0.1:9 is skipped";
    ctx.run(&["fetch", "--offline", "--mirror", "http://127.0.0.1:9/"])
        .ok()
        .stderr_has(note);
    let r = ctx
        .run(&[
            "-q",
            "fetch",
            "--offline",
            "--mirror",
            "http://127.0.0.1:9/",
        ])
        .ok();
    assert!(!r.stderr.contains("note:"), "{}", r.stderr);

    let pull = [
        "pull",
        "127.0.0.1:9/kubenet:worker1",
        "--insecure-registry",
        "127.0.0.1:9",
        "--retries",
        "0",
    ];
    let plain = ctx.run(&pull).fails();
    assert!(!plain.stderr.contains("caused by:"), "{}", plain.stderr);
    let mut verbose = vec!["-v"];
    verbose.extend(pull);
    ctx.run(&verbose).fails().stderr_has(
        "caused by: error sending request for url (http://127.0.0.1:9/v2/kubenet/manifests/worker1)",
    );
    let r = ctx.run(&["-q", "-v", "list"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r
        .stderr
        .starts_with("error: the argument '--quiet' cannot be used with '--verbose'"));
}

/// A command-line mistake with `--json` prints docs/json.md's error object on stdout (and
/// clap's text on stderr), exit code 2.
#[test]
fn a_command_line_mistake_is_a_json_error_object() {
    let ctx = TestContext::new();
    for args in [
        vec!["build", "worker1", "--json"],
        vec!["--json", "build", "worker1"],
    ] {
        let r = ctx.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r
            .stderr
            .starts_with("error: unexpected argument 'worker1' found"));
        let j = r.json();
        assert_eq!(j["kind"], "error");
        assert_eq!(j["version"], 1);
        assert_eq!(j["error"], "unexpected argument 'worker1' found");
        assert_eq!(
            j["hints"],
            serde_json::json!([
                "use --node worker1: `nodeforge build` takes the node as an option",
                "usage: nodeforge build [OPTIONS]",
                "pass --help for every option"
            ])
        );
        assert_eq!(j["errors"][0]["message"], j["error"]);
    }
    // Without --json stdout stays empty; after `--` it is an argument, not the option.
    let r = ctx.run(&["build", "--frobnicate"]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""));
    let r = ctx.run(&["diff", "--", "--json"]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""), "{}", r.stderr);
}

/// `init` writes the seed's manifest and templates into a new or empty directory, which then
/// builds offline as its next steps say, and refuses a directory that holds anything.
#[test]
fn init_makes_a_project_that_builds() {
    let dir = tempfile::tempdir().unwrap();
    let r = crate::run_in(dir.path(), &["init", "proj"]).ok();
    assert_eq!(
        r.stdout,
        "created proj: manifests/kubenet.toml (cluster `kubenet`, 6 nodes: control0, control1, \
         control2, worker0, worker1, worker2), its 9 templates and .gitignore\n\
         next: cd proj && nodeforge lock && nodeforge build\n\
         offline: cd proj && nodeforge demo-mirror out/mirror && nodeforge lock --offline \
         --mirrors-only --mirror file://out/mirror && nodeforge build --offline --mirror \
         file://out/mirror\n"
    );
    let proj = dir.path().join("proj");
    let repo = std::path::Path::new(crate::REPO);
    assert_eq!(
        std::fs::read(proj.join("manifests/kubenet.toml")).unwrap(),
        std::fs::read(repo.join("manifests/kubenet.toml")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(proj.join(".gitignore")).unwrap(),
        "/out\n"
    );
    // The offline next step, as printed.
    crate::run_in(&proj, &["demo-mirror", "out/mirror"]).ok();
    crate::run_in(
        &proj,
        &[
            "lock",
            "--offline",
            "--mirrors-only",
            "--mirror",
            "file://out/mirror",
        ],
    )
    .ok();
    crate::run_in(
        &proj,
        &["build", "--offline", "--mirror", "file://out/mirror"],
    )
    .ok()
    .stdout_has("built 6, reused 0, unchanged 0 node images");

    // Not over anything: a directory with files, or a file.
    let r = crate::run_in(dir.path(), &["init", "proj"]).fails();
    assert_eq!(
        r.stderr,
        "error: proj is not empty (it holds .gitignore, lockfiles, manifests, out): a new \
         project goes into a new or empty directory\n\
         hint: pass a new directory (`nodeforge init kubenet`), or run nodeforge in the \
         project that is there\n"
    );
    std::fs::write(dir.path().join("file"), "x").unwrap();
    crate::run_in(dir.path(), &["init", "file"])
        .fails()
        .stderr_has("error: file is not an empty directory");
    // An empty directory (the current one by default) is filled, with no temporary left.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    crate::run_in(&empty, &["init"]).ok();
    let mut names: Vec<String> = std::fs::read_dir(&empty)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".gitignore", "manifests"]);
}

/// Completions and man pages come from the command line's definition: every command is in them.
#[test]
fn completions_and_man_pages() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = crate::run_in(dir.path(), &["completions", shell]).ok();
        for word in ["rollback", "offline", "init"] {
            assert!(r.stdout.contains(word), "{shell} lacks {word}");
        }
    }
    let r = crate::run_in(dir.path(), &["completions", "tcsh"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid value 'tcsh'"), "{}", r.stderr);

    let page = crate::run_in(dir.path(), &["man"]).ok();
    assert!(page.stdout.contains(".TH nodeforge 1"), "{}", page.stdout);
    let r = crate::run_in(dir.path(), &["man", "--dir", "man1"]).ok();
    assert!(
        r.stdout.starts_with("wrote 34 man pages to man1"),
        "{}",
        r.stdout
    );
    let build = std::fs::read_to_string(dir.path().join("man1/nodeforge-build.1")).unwrap();
    assert!(
        build.contains(&format!(
            ".TH nodeforge-build 1  \"nodeforge {}\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{build}"
    );
    assert!(build.contains("\\-\\-offline"), "{build}");
    assert!(dir.path().join("man1/nodeforge-mirror-push.1").is_file());
    crate::run_in(dir.path(), &["man", "--json"])
        .fails()
        .stderr_has("man prints a page, not a report");
}
