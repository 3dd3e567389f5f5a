//! Concurrent runs and crashes: two processes on one `out/`, gc during builds, and SIGKILL at
//! many points of fetch and build. The store must never hold a wrong byte, `current` must never
//! point at a half-written image, and the next run must complete.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{set_verbosity, TestContext};

/// A project whose stand-ins are large enough for kill points to land inside downloads,
/// extraction and compression.
fn big() -> TestContext {
    let ctx = TestContext::new();
    let m = nodeforge::manifest::Manifest::load(&ctx.manifest()).unwrap();
    nodeforge::standin::write_mirror(&m, ctx.server.root(), 512 << 10).unwrap();
    ctx.net(&["lock"]).ok();
    ctx
}

fn spawn(ctx: &TestContext, args: &[&str]) -> Child {
    let mirror = ctx.server.url();
    Command::new(env!("CARGO_BIN_EXE_nodeforge"))
        .args(args)
        .args(["--mirrors-only", "--mirror", &mirror, "--retries", "1"])
        .current_dir(ctx.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every object hashes to its address, every `current` leads to a complete image, and every image
/// matches its manifest: `verify` checks all of that (the lockfile too).
fn assert_consistent(ctx: &TestContext, when: &str) {
    let r = ctx.run(&["verify"]);
    assert_eq!(r.code, 0, "{when}: verify failed:\n{}", r.stderr);
    for node in std::fs::read_dir(ctx.path().join("out/nodes"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let current = node.path().join("current");
        if std::fs::symlink_metadata(&current).is_ok() {
            let dir = std::fs::canonicalize(&current)
                .unwrap_or_else(|e| panic!("{when}: {} dangles: {e}", current.display()));
            assert!(
                dir.join("manifest.json").is_file()
                    && dir.join("nodeforge-payload.raw").is_file()
                    && dir.join("nodeforge-config.raw").is_file(),
                "{when}: half an image is current"
            );
        }
    }
}

#[test]
fn two_fetches_download_each_artifact_once() {
    let ctx = big();
    ctx.server.clear_log();
    let a = spawn(&ctx, &["fetch"]);
    let b = spawn(&ctx, &["fetch"]);
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut per_path = std::collections::BTreeMap::new();
    for r in ctx
        .server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
    {
        *per_path.entry(r.path).or_insert(0) += 1;
    }
    assert_eq!(per_path.len(), 6);
    assert!(
        per_path.values().all(|n| *n == 1),
        "one download per artifact: {per_path:?}"
    );
    assert_eq!(ctx.store_objects().len(), 6);
    assert_consistent(&ctx, "after two fetches");
}

#[test]
fn concurrent_builds_and_gc_leave_a_consistent_out_dir() {
    let ctx = big();
    let a = spawn(&ctx, &["build"]);
    let b = spawn(&ctx, &["build"]);
    let g = Command::new(env!("CARGO_BIN_EXE_nodeforge"))
        .args(["gc", "--keep-generations", "1"])
        .current_dir(ctx.path())
        .output()
        .unwrap();
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_consistent(&ctx, "after concurrent builds and gc");
    ctx.net(&["build"]).ok().stdout_has("nothing to do");
    ctx.run(&["verify", "--rebuild"]).ok();
}

fn timed_build(ctx: &TestContext) -> Duration {
    let t = Instant::now();
    assert!(spawn(ctx, &["build"]).wait().unwrap().success());
    t.elapsed().max(Duration::from_millis(20))
}

#[test]
fn sigkill_at_many_points_never_breaks_the_store_or_current() {
    let ctx = big();
    // How long each kind of run takes uninterrupted, to spread the kill points over it:
    // cold (fetch, extract, compress everything), a config change (render, compress, switch),
    // and a no-op.
    let cold = timed_build(&ctx);
    set_verbosity(&ctx, 9);
    let change = timed_build(&ctx);
    let noop = timed_build(&ctx);
    let points = 30u32;
    let per_kind = points / 3;
    let mut killed_mid_run = 0;
    for i in 0..points {
        let (kind, k) = (i % 3, i / 3 + 1);
        let full = match kind {
            0 => {
                let _ = std::fs::remove_dir_all(ctx.path().join("out"));
                cold
            }
            1 => {
                set_verbosity(&ctx, i % 7);
                change
            }
            _ => noop,
        };
        let mut child = spawn(&ctx, &["build"]);
        std::thread::sleep(full * k / (per_kind + 3));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_consistent(&ctx, &format!("kill point {i}"));
        // The next run completes and leaves no temp files behind.
        ctx.net(&["build"]).ok();
        assert_no_leftovers(&ctx, &format!("kill point {i}"));
    }
    ctx.run(&["verify", "--rebuild"]).ok();
    eprintln!("kill points tried: {points}, killed mid-run: {killed_mid_run} (cold {cold:?}, change {change:?}, no-op {noop:?})");
    assert!(
        killed_mid_run >= points / 3,
        "too few kills landed inside a run ({killed_mid_run}/{points})"
    );
}

/// Run `args` (no network flags) in the project.
fn spawn_plain(ctx: &TestContext, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_nodeforge"))
        .args(args)
        .current_dir(ctx.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn timed(mut child: Child) -> Duration {
    let t = Instant::now();
    assert!(child.wait().unwrap().success());
    t.elapsed().max(Duration::from_millis(10))
}

/// No temp file of a killed run survives the next one, anywhere under out/.
fn assert_no_leftovers(ctx: &TestContext, when: &str) {
    let mut stack = vec![ctx.path().join("out")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(".nodeforge-tmp-"),
                "{when}: {} left behind",
                e.path().display()
            );
            if e.file_type().is_ok_and(|t| t.is_dir()) && name != "store" {
                stack.push(e.path());
            }
        }
    }
    assert!(ctx.store_tmp_is_empty(), "{when}: store temp files left");
}

#[test]
fn sigkill_during_fetch_gc_and_rollback_never_breaks_anything() {
    let ctx = big();
    let points = 10u32;
    let mut tried = 0;
    let mut mid_run = 0;
    let mut kill_at = |ctx: &TestContext, mut child: Child, after: Duration, what: &str| {
        std::thread::sleep(after);
        if child.try_wait().unwrap().is_none() {
            mid_run += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        tried += 1;
        assert_consistent(ctx, what);
    };

    // fetch, from an empty store.
    let full = timed(spawn(&ctx, &["fetch"]));
    for k in 1..=points {
        let _ = std::fs::remove_dir_all(ctx.path().join("out"));
        let when = format!("fetch, kill point {k}");
        kill_at(
            &ctx,
            spawn(&ctx, &["fetch"]),
            full * k / (points + 2),
            &when,
        );
        ctx.net(&["fetch"]).ok();
        assert_no_leftovers(&ctx, &when);
    }

    // gc, with generations and images to remove each time.
    ctx.net(&["build"]).ok();
    for k in 1..=points {
        for v in [k + 10, k + 20] {
            set_verbosity(&ctx, v);
            ctx.net(&["build"]).ok();
        }
        let full = timed(spawn_plain(
            &ctx,
            &["gc", "--keep-generations", "1", "--dry-run"],
        ));
        let when = format!("gc, kill point {k}");
        kill_at(
            &ctx,
            spawn_plain(&ctx, &["gc", "--keep-generations", "1"]),
            full * k / (points + 2),
            &when,
        );
        ctx.run(&["gc", "--keep-generations", "1"]).ok();
        ctx.run(&["list"]).ok();
        ctx.net(&["build"]).ok();
        assert_no_leftovers(&ctx, &when);
    }

    // rollback of every node, back and forth.
    set_verbosity(&ctx, 99);
    ctx.net(&["build"]).ok();
    let full = timed(spawn_plain(&ctx, &["rollback", "--all"]));
    for k in 1..=points {
        let when = format!("rollback, kill point {k}");
        ctx.net(&["build"]).ok();
        kill_at(
            &ctx,
            spawn_plain(&ctx, &["rollback", "--all"]),
            full * k / (points + 2),
            &when,
        );
        ctx.run(&["list"]).ok();
        assert_no_leftovers(&ctx, &when);
    }
    ctx.net(&["build"]).ok();
    ctx.run(&["verify", "--rebuild"]).ok();
    eprintln!("kill points tried in fetch, gc and rollback: {tried}, killed mid-run: {mid_run}");
    assert_eq!(tried, 3 * points);
    assert!(
        mid_run >= points,
        "too few kills landed inside a run ({mid_run})"
    );
}
