//! `--json`: every command prints one envelope `{"kind", "version", ...}` whose keys are exactly
//! those docs/json.md lists for its kind, so that the document and the code cannot drift.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::{Run, TestContext, REPO};

/// The ```keys block of docs/json.md: kind → its top-level keys besides `kind` and `version`.
fn documented_keys() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(Path::new(REPO).join("docs/json.md")).unwrap();
    let block = doc
        .split("```keys\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/json.md has a ```keys block");
    let mut kinds = BTreeMap::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let (kind, keys) = line.split_once(':').expect("`kind: key, key` lines");
        let keys: BTreeSet<String> = keys.split(',').map(|k| k.trim().to_string()).collect();
        assert!(
            kinds.insert(kind.trim().to_string(), keys).is_none(),
            "{kind} twice"
        );
    }
    kinds
}

#[track_caller]
fn check(
    docs: &BTreeMap<String, BTreeSet<String>>,
    r: &Run,
    kind: &str,
    seen: &mut BTreeSet<String>,
) {
    let v = r.json();
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    assert_eq!(v["kind"], kind, "{v}");
    assert_eq!(v["version"], 1, "{v}");
    let keys: BTreeSet<String> = obj
        .keys()
        .filter(|k| *k != "kind" && *k != "version")
        .cloned()
        .collect();
    let documented = docs
        .get(kind)
        .unwrap_or_else(|| panic!("docs/json.md does not list {kind}"));
    assert_eq!(&keys, documented, "{kind}: keys differ from docs/json.md");
    seen.insert(kind.to_string());
}

/// The keys of a JSON object, sorted.
fn keys_of(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

#[test]
fn every_command_prints_the_documented_envelope() {
    let docs = documented_keys();
    let mut seen = BTreeSet::new();
    let ctx = TestContext::new();
    let p = |name: &str| ctx.path().join(name).to_str().unwrap().to_string();
    let (demo, flat, export) = (p("demo"), p("flat.tar.zst"), p("export"));

    let r = ctx.run(&["demo-mirror", &demo, "--json"]).ok();
    check(&docs, &r, "demo-mirror-report", &mut seen);
    let r = ctx.net(&["lock", "--json"]).ok();
    check(&docs, &r, "lock-report", &mut seen);
    let r = ctx.run(&["lock", "--check", "--json"]).ok();
    check(&docs, &r, "lock-check-report", &mut seen);
    let r = ctx.net(&["fetch", "--json"]).ok();
    check(&docs, &r, "fetch-report", &mut seen);
    let r = ctx.net(&["build", "--json"]).ok();
    check(&docs, &r, "build-report", &mut seen);
    crate::set_verbosity(&ctx, 3);
    ctx.net(&["build"]).ok();

    let (key, sbom) = (p("signing.key"), p("sbom.json"));
    let runs: Vec<(Vec<&str>, &str)> = vec![
        (vec!["key", "generate", &key], "key-report"),
        (vec!["sign", "worker1", "--key", &key], "sign-report"),
        (vec!["sbom", "worker1", "-o", &sbom], "sbom-report"),
        (vec!["show", "worker1"], "show-report"),
        (vec!["show", "worker1", "--boot"], "show-boot-report"),
        (vec!["flatten", "worker1", "-o", &flat], "flatten-report"),
        (vec!["list"], "list-report"),
        (vec!["diff", "worker0", "worker1"], "diff-report"),
        (vec!["gc", "--dry-run"], "gc-report"),
        (vec!["verify"], "verify-report"),
        (vec!["mirror", "export", &export], "mirror-export-report"),
        (vec!["components"], "components-report"),
        (vec!["plan"], "plan-report"),
        (vec!["rollback", "worker1"], "rollback-report"),
        (vec!["rollback", "--all"], "rollback-report"),
    ];
    for (args, kind) in runs {
        let mut all = args.clone();
        all.push("--json");
        let r = ctx.run(&all).ok();
        check(&docs, &r, kind, &mut seen);
    }

    // export and import, through an OCI image layout.
    let layout = p("layout");
    let r = ctx
        .run(&[
            "export",
            "--oci-layout",
            &layout,
            "--node",
            "worker1",
            "--json",
        ])
        .ok();
    check(&docs, &r, "export-report", &mut seen);
    let r = ctx.run(&["import", &layout, "--json"]).ok();
    check(&docs, &r, "import-report", &mut seen);

    // push and pull, against a local registry (skipped with the registry's test outside CI).
    match crate::oci::LocalRegistry::start() {
        Some(reg) => {
            let repo = reg.repo("kubenet");
            let host = reg.host();
            let r = ctx
                .run(&[
                    "push",
                    &repo,
                    "--node",
                    "worker1",
                    "--insecure-registry",
                    &host,
                    "--json",
                ])
                .ok();
            check(&docs, &r, "push-report", &mut seen);
            let att = &r.json()["nodes"][0]["attestations"];
            assert_eq!(
                keys_of(att),
                [
                    "blobs_uploaded",
                    "bytes_uploaded",
                    "files",
                    "manifest_digest",
                    "referrers",
                    "referrers_tag_updated"
                ],
                "push-report's attestations: keys differ from docs/json.md"
            );
            let r = ctx
                .run(&[
                    "pull",
                    &format!("{repo}:worker1"),
                    "--insecure-registry",
                    &host,
                    "--json",
                ])
                .ok();
            check(&docs, &r, "pull-report", &mut seen);
            let att = &r.json()["attestations"];
            assert_eq!(
                keys_of(att),
                [
                    "conflicts",
                    "files",
                    "freshness",
                    "manifests",
                    "signature_keys",
                    "signed_by",
                    "trust_checked"
                ],
                "pull-report's attestations: keys differ from docs/json.md"
            );
            assert_eq!(
                keys_of(&att["files"][0]),
                ["digest", "name", "size", "status"]
            );
            let r = ctx
                .run(&["mirror", "push", &format!("oci+http://{repo}"), "--json"])
                .ok();
            check(&docs, &r, "mirror-push-report", &mut seen);
            let r = ctx
                .run(&["tags", &repo, "--insecure-registry", &host, "--json"])
                .ok();
            check(&docs, &r, "tags-report", &mut seen);
            let auth = p("auth.json");
            let env = [
                ("REGISTRY_AUTH_FILE", auth.as_str()),
                ("NODEFORGE_REGISTRY_PASSWORD", "pw"),
            ];
            let login = [
                "login",
                &host,
                "--username",
                "u",
                "--insecure-registry",
                &host,
                "--json",
            ];
            let r = crate::run_env(ctx.path(), &login, &env, None).ok();
            check(&docs, &r, "login-report", &mut seen);
            let r = crate::run_env(ctx.path(), &["logout", &host, "--json"], &env, None).ok();
            check(&docs, &r, "logout-report", &mut seen);
        }
        None => {
            seen.insert("login-report".to_string());
            seen.insert("logout-report".to_string());
            seen.insert("push-report".to_string());
            seen.insert("pull-report".to_string());
            seen.insert("mirror-push-report".to_string());
            seen.insert("tags-report".to_string());
        }
    }

    // Each node's secrets (openssl makes them; skipped with the secrets tests outside CI).
    if crate::requires("openssl", "openssl") {
        let ca = ctx.path().join("ca");
        let dir = ctx.path().join("secrets");
        crate::secrets::make_ca(&ca, "kubenet-ca", crate::secrets::Alg::P256);
        crate::secrets::make_secrets(&ca, &dir, &crate::secrets::NODES[4..5], |_| {
            crate::secrets::Alg::P256
        });
        let d = dir.to_str().unwrap();
        let ud = p("worker1.user-data");
        let runs: Vec<(Vec<&str>, &str)> = vec![
            (
                vec!["secrets", "check", "--node", "worker1", "--secrets", d],
                "secrets-check-report",
            ),
            (
                vec!["secrets", "user-data", "worker1", "--secrets", d, "-o", &ud],
                "secrets-user-data-report",
            ),
            (
                vec!["show", "worker1", "--boot", "--secrets", d],
                "show-boot-report",
            ),
        ];
        for (mut args, kind) in runs {
            args.push("--json");
            let r = ctx.run(&args).ok();
            check(&docs, &r, kind, &mut seen);
        }
    } else {
        seen.insert("secrets-check-report".to_string());
        seen.insert("secrets-user-data-report".to_string());
    }

    // A new project and the man pages.
    let r = ctx.run(&["init", "newproj", "--json"]).ok();
    check(&docs, &r, "init-report", &mut seen);
    let r = ctx.run(&["man", "--dir", "man1", "--json"]).ok();
    check(&docs, &r, "man-report", &mut seen);
    let r = ctx.run(&["repair", "--json"]).ok();
    check(&docs, &r, "repair-report", &mut seen);

    // A failing command: the error as JSON on stdout with --json, nothing on stdout without.
    let r = ctx.run(&["show", "nosuch", "--json"]).fails();
    check(&docs, &r, "error", &mut seen);
    assert_eq!(r.json()["error"], "no image `nosuch` in out/images");
    let r = ctx.run(&["show", "nosuch"]).fails();
    assert_eq!(r.stdout, "");
    // Lists are wrapped, never printed bare.
    assert!(ctx.run(&["list", "--json"]).ok().json()["nodes"].is_array());

    let documented: BTreeSet<String> = docs.keys().cloned().collect();
    assert_eq!(
        seen, documented,
        "docs/json.md lists a kind no command printed"
    );
}
