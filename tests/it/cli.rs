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
            "--trust-mirror-checksums",
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
        "--trust-mirror-checksums",
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
         --mirrors-only --trust-mirror-checksums --mirror file://out/mirror && nodeforge build --offline --mirror \
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
            "--trust-mirror-checksums",
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
        r.stdout.starts_with("wrote 36 man pages to man1"),
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

/// `mirror push` to a plain-HTTP registry prints its whole lock tag and a follow-up command
/// that reaches the registry as the push did; a refused login's hint has `--insecure-registry`
/// too.
#[test]
fn mirror_push_and_login_hints_carry_the_insecure_registry() {
    let Some(registry) = crate::oci::LocalRegistry::start_with(Some(("fleet", "s3cret"))) else {
        return;
    };
    let host = registry.host();
    let ctx = crate::built();
    let home = ctx.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let home = home.to_str().unwrap();
    let env = |login: bool| {
        let mut e = vec![("HOME", home), ("XDG_RUNTIME_DIR", home)];
        if login {
            e.extend([
                ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
                ("NODEFORGE_REGISTRY_PASSWORD", "s3cret"),
            ]);
        }
        e
    };
    let target = format!("oci://{host}/artifacts");
    let push = ["mirror", "push", &target, "--insecure-registry", &host];
    let r = crate::run_env(ctx.path(), &push, &env(false), None).fails();
    r.stderr_has(&format!(
        "hint: log in with `docker login {host}`, `podman login {host}` or `nodeforge login {host} --insecure-registry {host}`"
    ));
    let r = crate::run_env(ctx.path(), &push, &env(true), None).ok();
    let lock_id = r
        .stdout
        .split("tagged lock-blake3-")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .unwrap_or_else(|| panic!("no lock tag: {}", r.stdout));
    assert_eq!(lock_id.len(), 64, "the whole lock id: {}", r.stdout);
    assert!(lock_id.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        r.stdout.ends_with(&format!(
            ", latest\nuse it with: nodeforge fetch --mirror {target} --insecure-registry {host}\n"
        )),
        "{}",
        r.stdout
    );
    assert!(r.stdout.starts_with("pushed "), "{}", r.stdout);
}

/// Plurals, a read rate in the sizes' units, no trailing spaces, gc's dry run in a few lines,
/// `show --boot`'s paths canonical from a subdirectory, `list` outside a project and beside
/// `make demo`'s output.
#[test]
fn messages_say_what_they_mean() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build", "--node", "worker1"]).ok();

    let v = ctx.run(&["verify"]).ok();
    assert!(v.stdout.contains(", 1 image, 2 layers in "), "{}", v.stdout);
    assert!(!v.stdout.contains("GB/s"), "{}", v.stdout);
    let r = ctx.run(&["show", "worker1"]).ok();
    assert!(
        r.stdout.lines().all(|l| l == l.trim_end()),
        "trailing spaces:\n{}",
        r.stdout
    );
    let gc = ctx.run(&["gc", "--dry-run"]).ok();
    let out = ctx.path().join("out");
    assert!(
        gc.stdout.starts_with(
            "nothing to free: everything in out is in use (kept 1 generation, 1 image, 2 layers, "
        ),
        "{}",
        gc.stdout
    );
    assert_eq!(gc.stdout.lines().count(), 2, "{}", gc.stdout);
    assert!(gc
        .stdout
        .ends_with("(`nodeforge -v gc --dry-run` says why each thing is kept)\n"));

    // From a subdirectory: absolute, canonical paths (no `sub/deeper/../../out`).
    let deeper = ctx.path().join("sub/deeper");
    std::fs::create_dir_all(&deeper).unwrap();
    let boot = crate::run_in(&deeper, &["show", "worker1", "--boot"]).ok();
    let canonical = std::fs::canonicalize(&out).unwrap();
    assert!(
        boot.stdout.contains(&format!(
            "  nf-payload           {}/nodes/worker1/current/nodeforge-payload.raw\n",
            canonical.display()
        )),
        "{}",
        boot.stdout
    );
    assert!(!boot.stdout.contains(".."), "{}", boot.stdout);

    // `list` where no project is: the error `build` gives.
    let elsewhere = tempfile::tempdir().unwrap();
    let r = crate::run_in(elsewhere.path(), &["list"]).fails();
    assert!(
        r.stderr.ends_with("not inside a nodeforge project\nhint: run nodeforge in the project's directory (the one holding manifests/) or below it, or pass --manifest PATH\n"),
        "{}",
        r.stderr
    );
    // An out/ whose generations are in out/demo (as `make demo` leaves it): where to look.
    let demo = ctx.path().join("demo-out");
    std::fs::rename(&out, &demo).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::rename(&demo, out.join("demo")).unwrap();
    std::fs::copy(ctx.lockfile(), out.join("demo/kubenet.lock")).unwrap();
    let r = ctx.run(&["list"]).ok();
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "note: no node has generations in out yet: `nodeforge build` makes them\n\
         hint: out/demo holds generations (`make demo` writes out/demo): `nodeforge list --out out/demo --lockfile out/demo/kubenet.lock`\n"
    );
}

/// `flatten -o worker1.img` asks for the format instead of writing a tar under a disk's name;
/// an EROFS output and its tree get the tar's mode (0644), not the store's 0444.
#[test]
fn flatten_asks_for_the_format_and_writes_user_files() {
    use std::os::unix::fs::PermissionsExt;
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build", "--node", "worker1"]).ok();
    let r = ctx
        .run(&["flatten", "worker1", "-o", "worker1.img"])
        .fails();
    assert_eq!(
        r.stderr,
        "error: cannot tell the format from the name `worker1.img`: pass --format erofs (one \
         EROFS file, its dm-verity tree in worker1.img.verity) or --format tar.zst, or name it \
         .erofs or .tar.zst\n"
    );
    assert!(!ctx.path().join("worker1.img").exists());
    ctx.run(&[
        "flatten",
        "worker1",
        "-o",
        "worker1.img",
        "--format",
        "erofs",
    ])
    .ok();
    ctx.run(&["flatten", "worker1", "-o", "worker1.tar.zst"])
        .ok();
    for f in ["worker1.img", "worker1.img.verity", "worker1.tar.zst"] {
        let mode = std::fs::metadata(ctx.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{f}");
    }
}

/// `build --sign` on unchanged images says it signed them; `verify --key` failing on an
/// unsigned generation says how to sign it, or to gc it.
#[test]
fn signing_unchanged_images_is_said_and_verify_hints_at_sign() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build", "--node", "worker1"]).ok();
    ctx.run(&["key", "generate", "k.key"]).ok();
    let r = ctx
        .run(&["build", "--offline", "--node", "worker1", "--sign", "k.key"])
        .ok();
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("1 node image is up to date; signed 1 image with k.key (")
            && last.ends_with("s)"),
        "{}",
        r.stdout
    );
    let r = ctx.run(&["build", "--offline", "--node", "worker1"]).ok();
    assert!(r
        .stdout
        .lines()
        .last()
        .unwrap()
        .starts_with("nothing to do: 1 node image is up to date ("));
    ctx.run(&["verify", "--key", "k.key.pub"]).ok();
    // A second generation, unsigned.
    let conf = ctx
        .path()
        .join("manifests/kubenet/etc/modules-load.d/br_netfilter.conf");
    std::fs::write(&conf, "br_netfilter\noverlay\n").unwrap();
    ctx.run(&["build", "--offline", "--node", "worker1"]).ok();
    let r = ctx.run(&["verify", "--key", "k.key.pub"]).fails();
    assert!(
        r.stderr.contains(
            "(worker1@2): not signed by a trusted key: it is not signed\n\
             hint: sign each image you have checked with a trusted key: `nodeforge sign worker1@2 --key PRIVATE_KEY`; or remove the generations no node should go back to: `nodeforge gc --keep-generations N`\n"
        ),
        "{}",
        r.stderr
    );
}

/// Flip a byte in the middle of the payload layer's EROFS file, in place (same inode); its
/// directory.
fn damage_the_payload_layer(ctx: &TestContext) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let layers = ctx.path().join("out/layers");
    let payload = std::fs::read_dir(&layers)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| d.join("nodeforge-payload.raw").is_file())
        .unwrap();
    let raw = payload.join("nodeforge-payload.raw");
    let mut bytes = std::fs::read(&raw).unwrap();
    bytes[70000] ^= 0xff;
    std::fs::set_permissions(&raw, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&raw)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .unwrap();
    std::fs::set_permissions(&raw, std::fs::Permissions::from_mode(0o444)).unwrap();
    payload
}

/// `rollback --to` over a damaged layer writes it again from the store and says so.
#[test]
fn rollback_says_it_wrote_a_damaged_layer_again() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build", "--node", "worker1"]).ok();
    let payload = damage_the_payload_layer(&ctx);
    let id = payload.file_name().unwrap().to_string_lossy().into_owned();
    let r = ctx.run(&["rollback", "worker1", "--to", "@1"]).ok();
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!(
            "note: worker1: layer {} was damaged (layer {id}: ",
            &id[..12]
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.ends_with(&format!(
            "{} is not the EROFS file its entries make from the store); it was set aside and written again from the store\n",
            std::path::Path::new(&id).join("nodeforge-payload.raw").display()
        )),
        "{}",
        r.stderr
    );
    // Written again: the next rollback finds nothing to repair.
    let v = ctx
        .run(&["rollback", "worker1", "--to", "@1", "--json"])
        .ok()
        .json();
    assert_eq!(
        v["rolled_back"][0]["repaired_layers"],
        serde_json::json!([]),
        "{v}"
    );
    ctx.run(&["verify"]).ok();
}

/// A payload layer damaged in place: verify fails and points at repair; repair writes it again
/// from the store (once, linked into both images), says so, and verify passes again.
#[test]
fn repair_writes_a_damaged_layer_again() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build", "--node", "worker1", "--node", "worker2"])
        .ok();
    ctx.run(&["repair"])
        .ok()
        .stdout_has("nothing to repair: 3 layers and 2 images in out are intact\n");
    let payload = damage_the_payload_layer(&ctx);

    // build does not call the damaged layer "up to date": it names it and points at repair.
    let id = payload.file_name().unwrap().to_string_lossy().into_owned();
    let r = ctx
        .net(&["build", "--node", "worker1", "--node", "worker2"])
        .fails();
    assert!(
        r.stderr.starts_with("error: ")
            && r.stderr.contains(&format!(
                "{}: the layer is damaged (layer {id}: its EROFS file hashes to verity root ",
                std::path::Path::new(&id)
                    .join("nodeforge-payload.raw")
                    .display()
            )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("build neither takes it as it is nor writes over it\nhint: `nodeforge verify` lists what is damaged; `nodeforge repair` writes layers and images again"),
        "{}",
        r.stderr
    );
    ctx.run(&["verify"]).fails().stderr_has(
        "hint: `nodeforge repair` writes damaged layers and images again from the store and the generations' records, and says what it fixed\n",
    );
    let r = ctx.run(&["repair"]).ok();
    let first = r.stdout.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "repaired layer {} (used by worker1@1, worker2@1): {} is not the EROFS file its entries make from the store (and 3 more problems)",
            &id[..12],
            std::path::Path::new("out/layers").join(&id).join("nodeforge-payload.raw").display()
        )
    );
    assert!(
        r.stdout
            .ends_with("repaired 1 layer and 2 images of the 3 layers and 2 images in out\n"),
        "{}",
        r.stdout
    );
    ctx.run(&["verify"]).ok();
    ctx.run(&["repair"]).ok().stdout_has("nothing to repair");
    ctx.net(&["build", "--node", "worker1", "--node", "worker2"])
        .ok()
        .stdout_has("nothing to do: all 2 node images are up to date");
}

/// `tags` lists a repository's node images with their nodes, generations, tags and whether a
/// trusted key signed them; a mirror's tags are "other tags".
#[test]
fn tags_lists_a_repositorys_node_images() {
    let Some(registry) = crate::oci::LocalRegistry::start() else {
        return;
    };
    let host = registry.host();
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build", "--node", "worker1", "--node", "worker2"])
        .ok();
    ctx.run(&["key", "generate", "k.key"]).ok();
    ctx.run(&["sign", "worker1", "--key", "k.key"]).ok();
    let repo = format!("{host}/kubenet");
    let insecure = ["--insecure-registry", host.as_str()];
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(insecure);
        ctx.run(&all)
    };
    run(&["push", &repo]).ok();
    let w1 = crate::current_id(&ctx, "worker1");
    let w2 = crate::current_id(&ctx, "worker2");

    let r = run(&["tags", &repo]).ok();
    assert_eq!(
        r.stdout,
        format!(
            "worker1    image {} (amd64) generation 1: signed by key {} (not checked); tags {}, worker1, worker1-gen1\n\
             worker2    image {} (amd64) generation 1: unsigned; tags {}, worker2, worker2-gen1\n\
             2 node images in {repo}\n",
            &w1[..12],
            &keyid(&ctx)[..16],
            &w1[..12],
            &w2[..12],
            &w2[..12],
        )
    );
    let r = run(&["tags", &repo, "--key", "k.key.pub"]).ok();
    assert!(r.stdout.contains(&format!(
        "generation 1: signed by trusted key {}",
        &keyid(&ctx)[..16]
    )));
    assert!(r
        .stdout
        .contains("generation 1: NOT signed by a trusted key (unsigned); tags"));
    let j = run(&["tags", &repo, "--json", "--key", "k.key.pub"])
        .ok()
        .json();
    assert_eq!(j["images"][0]["node"], "worker1");
    assert_eq!(j["images"][0]["trusted"], true);
    assert_eq!(j["images"][1]["trusted"], false);
    assert_eq!(j["images"][1]["generations"], serde_json::json!([1]));
    // A tag is refused: tags lists them all.
    run(&["tags", &format!("{repo}:worker1")])
        .fails()
        .stderr_has("names a tag or digest");
}

/// The key id of `k.key` as `key generate` printed it.
fn keyid(ctx: &TestContext) -> String {
    ctx.run(&["--json", "sign", "worker1", "--key", "k.key"])
        .ok()
        .json()["keyid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Ctrl-C says which command it stopped and what that leaves; exit code 130.
#[test]
fn ctrl_c_says_what_was_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    // `login --password-stdin` waits for its stdin: interrupted there.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nodeforge"))
        .args([
            "login",
            "127.0.0.1:9",
            "--username",
            "u",
            "--password-stdin",
        ])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Held open until the child is gone: an EOF would end the login by itself.
    let stdin = child.stdin.take();
    // Time to parse and install the handler, on a loaded machine too.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let kill = std::process::Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "\nnodeforge login: interrupted. Nothing half-written was put in place (what finished is kept, temporaries are cleaned by the next run); run it again to go on: downloads resume where they stopped\n"
    );
}
