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
