//! Rolling upgrades: node groups with their own versions, the Kubernetes version skew policy
//! checked on `lock`, `build` and `plan`, `plan`'s rollout order and image ids, and
//! `rollback --group`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{node_in, TestContext};

/// A canary group running Kubernetes `version` on worker0.
fn canary(version: &str) -> String {
    format!(
        "\n[groups.canary]\ncanary = true\nnodes = [\"worker0\"]\nversions = {{ kubernetes = \"{version}\" }}\n"
    )
}

/// The default manifest with `extra` appended.
fn with(ctx: &TestContext, extra: &str) {
    let t = std::fs::read_to_string(Path::new(crate::REPO).join("manifests/kubenet.toml")).unwrap();
    ctx.set_manifest(&format!("{t}{extra}"));
}

/// A project whose mirror serves the stand-ins of the default manifest and of `extra`'s.
fn context_with(extra: &str) -> TestContext {
    let ctx = TestContext::new();
    with(&ctx, extra);
    let m = nodeforge::manifest::Manifest::load(&ctx.manifest()).unwrap();
    nodeforge::standin::write_mirror(&m, ctx.server.root(), 8192).unwrap();
    with(&ctx, "");
    ctx.net(&["lock"]).ok();
    ctx
}

/// Each node's current image id.
fn current_ids(ctx: &TestContext) -> BTreeMap<String, String> {
    let list = ctx.run(&["list", "--json"]).ok().json();
    list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let cur = n["current"].as_u64().unwrap();
            let g = n["generations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["number"].as_u64() == Some(cur))
                .unwrap();
            (
                n["node"].as_str().unwrap().to_string(),
                g["image_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every file under `dir` with its size and modification time: what "writes nothing" compares.
fn tree(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for e in walk(dir) {
        let m = std::fs::symlink_metadata(&e).unwrap();
        out.push((e.display().to_string(), m.len(), m.modified().unwrap()));
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_group_overrides_versions_and_locks_every_version_in_use() {
    let ctx = context_with(&canary("1.31.1"));
    with(&ctx, &canary("1.31.1"));
    let r = ctx.net(&["lock"]).ok();
    assert!(
        r.stdout.contains("added kubelet 1.31.1 (amd64)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("added kube-proxy 1.31.1 (amd64)"),
        "{}",
        r.stdout
    );
    let lock = ctx.lock_text();
    // Both versions of each Kubernetes binary, the cluster's and the canary's, once each.
    for v in ["1.31.0", "1.31.1"] {
        for c in ["kubelet", "kube-proxy"] {
            let entry = format!("component = \"{c}\"\nversion = \"{v}\"\narch = \"amd64\"");
            assert_eq!(lock.matches(&entry).count(), 1, "{c} {v}:\n{lock}");
        }
    }
    assert!(lock.contains("\nkube-apiserver = \"1.31.0\"\n"), "{lock}");
    ctx.run(&["lock", "--check"])
        .ok()
        .stdout_has("is fresh: 8 artifacts");
    // The canary's binaries are its own; its templates see its versions.
    ctx.net(&["build"]).ok();
    let worker0 = ctx.run(&["show", "worker0", "--json"]).ok().json();
    let worker1 = ctx.run(&["show", "worker1", "--json"]).ok().json();
    let version_of = |show: &serde_json::Value, path: &str| {
        show["provenance"][path]["version"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(version_of(&worker0, "/usr/local/bin/kubelet"), "1.31.1");
    assert_eq!(version_of(&worker1, "/usr/local/bin/kubelet"), "1.31.0");
    assert_eq!(version_of(&worker0, "/usr/bin/containerd"), "1.7.20");
    // Dropping the group: the lock forgets the versions nobody runs.
    with(&ctx, "");
    ctx.run(&["lock", "--check"])
        .fails()
        .stderr_has("kubelet 1.31.1 (amd64) is no longer in the manifest");
    ctx.net(&["lock"]).ok();
    assert!(
        !ctx.lock_text()
            .contains("component = \"kubelet\"\nversion = \"1.31.1\""),
        "{}",
        ctx.lock_text()
    );
}

#[test]
fn nodes_whose_versions_did_not_change_keep_their_image_ids() {
    let extra = format!(
        "{}\n[groups.pair]\nnodes = [\"worker1\", \"worker2\"]\nversions = {{ containerd = \"1.7.21\" }}\n",
        canary("1.31.1")
    );
    let ctx = context_with(&extra);
    ctx.net(&["build"]).ok();
    let before = current_ids(&ctx);
    with(&ctx, &extra);
    let r = ctx.net(&["build", "--json"]).ok().json();
    let after = current_ids(&ctx);
    for n in ["control0", "control1", "control2"] {
        assert_eq!(before[n], after[n], "{n} changed");
    }
    for n in ["worker0", "worker1", "worker2"] {
        assert_ne!(before[n], after[n], "{n} did not change");
    }
    let payload = |node: &str| {
        node_in(&r, node)["layers"][0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // One payload per binary set: the group's two nodes share theirs; each group has its own.
    assert_eq!(payload("worker1"), payload("worker2"));
    assert_eq!(payload("control0"), payload("control1"));
    assert_ne!(payload("worker0"), payload("control0"));
    assert_ne!(payload("worker1"), payload("control0"));
    assert_ne!(payload("worker0"), payload("worker1"));
    // A node whose versions moved and whose config did not: a new image and payload, its config
    // layer the one it had (and reported as such, not as written).
    let layer = |node: &str, i: usize| node_in(&r, node)["layers"][i].clone();
    assert_eq!(layer("worker0", 0)["role"], "payload");
    assert_eq!(layer("worker0", 0)["written"], true);
    assert_eq!(layer("worker0", 1)["role"], "config");
    assert_eq!(
        layer("worker0", 1)["written"],
        false,
        "{}",
        layer("worker0", 1)
    );
    // And back: the ungrouped manifest builds exactly the images it built before.
    with(&ctx, "");
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    assert_eq!(current_ids(&ctx), before);
}

#[test]
fn plan_of_a_canary_upgrade_is_pinned_and_writes_nothing() {
    let ctx = context_with(&canary("1.31.1"));
    ctx.net(&["build"]).ok();
    with(&ctx, &canary("1.31.1"));
    ctx.net(&["fetch"]).ok();
    let lock = ctx.lock_text();
    let out_before = tree(&ctx.path().join("out"));
    let from = current_ids(&ctx)["worker0"].clone();
    let r = ctx.run(&["plan"]).ok();
    assert_eq!(r.stderr, "");
    assert_eq!(
        tree(&ctx.path().join("out")),
        out_before,
        "plan wrote to out/"
    );
    assert_eq!(ctx.lock_text(), lock);
    let plan = ctx.run(&["plan", "--json"]).ok().json();
    // The ids it names are the ones build makes.
    ctx.net(&["build"]).ok();
    let to = current_ids(&ctx)["worker0"].clone();
    assert_eq!(plan["steps"][0]["nodes"][0]["to"], to.as_str());
    assert_eq!(plan["steps"][0]["nodes"][0]["from"], from.as_str());
    assert_eq!(
        r.stdout,
        format!(
            "step 1: canary group `canary`\n  \
             worker0    {} → {}  kube-proxy 1.31.0 → 1.31.1, kubelet 1.31.0 → 1.31.1\n  \
             then: nodeforge build --node worker0\n\
             unchanged: control0, control1, control2, worker1, worker2\n",
            &from[..12],
            &to[..12]
        )
    );
    ctx.run(&["plan"])
        .ok()
        .stdout_has("nothing to do: every node image is up to date");
}

#[test]
fn plan_orders_the_control_plane_first_and_names_what_it_lacks() {
    let ctx = context_with(&canary("1.31.1"));
    ctx.net(&["build"]).ok();
    // Control plane and canary at once, before anything is locked or fetched for 1.31.1.
    let t = std::fs::read_to_string(ctx.manifest()).unwrap();
    ctx.set_manifest(&format!(
        "{}{}\n[groups.cp]\nnodes = [\"control0\", \"control1\", \"control2\"]\nversions = {{ kubernetes = \"1.31.1\" }}\n",
        t.replace("kube-apiserver = \"1.31.0\"", "kube-apiserver = \"1.31.1\""),
        canary("1.31.1")
    ));
    let r = ctx.run(&["plan", "--json"]).ok().json();
    let kinds: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["control-plane", "canary"]);
    assert_eq!(r["steps"][0]["kube_apiserver"]["from"], "1.31.0");
    assert_eq!(r["steps"][0]["kube_apiserver"]["to"], "1.31.1");
    assert_eq!(r["steps"][0]["nodes"].as_array().unwrap().len(), 3);
    assert!(r["steps"][1]["nodes"][0]["to"].is_null(), "{r}");
    assert_eq!(
        r["needs"],
        serde_json::json!([
            "kube-proxy 1.31.1 (amd64) is not in the lockfile: lock it",
            "kubelet 1.31.1 (amd64) is not in the lockfile: lock it"
        ])
    );
    assert_eq!(r["lock_first"], true);
    // The text's next step: lock first, as the build would otherwise fail on the lockfile.
    let text = ctx.run(&["plan"]).ok();
    text.stdout_has("  then: nodeforge lock (the lockfile lacks what `needs` names), then nodeforge build --node control0 --node control1 --node control2\n");
    assert!(!ctx
        .lock_text()
        .contains("component = \"kubelet\"\nversion = \"1.31.1\""));
}

#[test]
fn skew_is_an_error_naming_the_rule_and_the_nodes() {
    // A canary a minor ahead of the control plane.
    let ctx = context_with(&canary("1.32.0"));
    with(&ctx, &canary("1.32.0"));
    let lock = ctx.lock_text();
    for cmd in ["lock", "build", "plan"] {
        let r = if cmd == "plan" {
            ctx.run(&[cmd]).fails()
        } else {
            ctx.net(&[cmd]).fails()
        };
        assert_eq!(
            r.stderr.lines().next().unwrap(),
            "error: version skew: kubelet 1.32.0 on worker0 (group `canary`) is newer than the control plane's kube-apiserver 1.31.0 (rule kubelet-newer-than-apiserver: kubelet must not be newer than kube-apiserver; the control plane is upgraded first)",
            "{cmd:?}"
        );
        assert!(r.stderr.contains("rule kube-proxy-newer-than-apiserver"));
        assert!(r.stderr.contains("hint: upgrade the control plane first: set [control-plane] kube-apiserver = \"1.32.0\""));
        assert!(r.stderr.contains("hint: or pass --allow-skew"));
    }
    assert_eq!(ctx.lock_text(), lock, "a refused lock writes nothing");
    assert!(!ctx.path().join("out/nodes").exists());

    // Four minors behind.
    with(&ctx, &canary("1.27.0"));
    ctx.net(&["lock"])
        .fails()
        .stderr_has("error: version skew: kubelet 1.27.0 on worker0 (group `canary`) is 4 minor versions older than the control plane's kube-apiserver 1.31.0 (rule kubelet-too-old: at most 3 older)");

    // The control plane two minors past what was locked.
    with(&ctx, "");
    let t = std::fs::read_to_string(ctx.manifest()).unwrap();
    ctx.set_manifest(&t.replace("kube-apiserver = \"1.31.0\"", "kube-apiserver = \"1.33.0\""));
    ctx.net(&["lock"])
        .fails()
        .stderr_has("error: version skew: the control plane's kube-apiserver moves from 1.31.0 to 1.33.0, 2 minor versions at once (rule control-plane-one-minor: the control plane is upgraded one minor version at a time)\nhint: set [control-plane] kube-apiserver to a 1.32 release first");

    // kube-proxy pinned apart from kubelet.
    ctx.set_manifest(&t.replace(
        "cni-spec = \"1.0.0\"",
        "cni-spec = \"1.0.0\"\nkube-proxy = \"1.27.0\"\n\n[components.kube-proxy]\nversion = \"kube-proxy\"",
    ));
    let r = ctx.run(&["plan"]).fails();
    assert!(
        r.stderr
            .contains("(rule kube-proxy-too-old: at most 3 older)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("error: version skew: kube-proxy 1.27.0 and kubelet 1.31.0 on control0, control1, control2, worker0, worker1, worker2 are 4 minor versions apart (rule kube-proxy-kubelet-skew"), "{}", r.stderr);
}

#[test]
fn allow_skew_goes_ahead_with_a_warning() {
    let ctx = context_with(&canary("1.32.0"));
    with(&ctx, &canary("1.32.0"));
    let r = ctx.net(&["build", "--allow-skew"]).ok();
    assert!(
        r.stderr.contains("warning: version skew allowed by --allow-skew: kubelet 1.32.0 on worker0 (group `canary`) is newer than the control plane's kube-apiserver 1.31.0"),
        "{}",
        r.stderr
    );
    let r = ctx.run(&["plan", "--allow-skew"]).ok();
    assert!(r
        .stderr
        .contains("warning: version skew allowed by --allow-skew"));
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
}

#[test]
fn rollback_of_a_group_leaves_the_others_alone() {
    let ctx = context_with(&canary("1.31.1"));
    ctx.net(&["build"]).ok();
    let first = current_ids(&ctx);
    with(&ctx, &canary("1.31.1"));
    crate::set_verbosity(&ctx, 3); // every node changes
    ctx.net(&["build"]).ok();
    let second = current_ids(&ctx);
    let r = ctx.run(&["rollback", "--group", "canary"]).ok();
    assert!(
        r.stdout.starts_with("worker0: generation 2 → 1 (image "),
        "{}",
        r.stdout
    );
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    let now = current_ids(&ctx);
    assert_eq!(now["worker0"], first["worker0"]);
    for n in ["control0", "control1", "control2", "worker1", "worker2"] {
        assert_eq!(now[n], second[n], "{n} moved");
        assert_ne!(now[n], first[n]);
    }
    // A build forward after the rollback makes generation 3, with generation 2's image: the
    // next `rollback --group` goes back past 2 to 1 and says so (it used to stop on 2, the
    // same image, and switch nothing).
    ctx.net(&["build"]).ok();
    assert_eq!(current_ids(&ctx)["worker0"], second["worker0"]);
    let r = ctx.run(&["rollback", "--group", "canary"]).ok();
    assert_eq!(
        r.stdout,
        format!(
            "worker0: generation 3 → 1 (image {}); skipped generation 2: the same image as generation 3\n",
            first["worker0"]
        )
    );
    assert_eq!(current_ids(&ctx)["worker0"], first["worker0"]);
    ctx.run(&["rollback", "--group", "canray"])
        .fails()
        .stderr_has(
        "`canray` is not a group of manifests/kubenet.toml (groups: canary); did you mean canary?",
    );
}

#[test]
fn group_mistakes_point_at_the_manifest() {
    // The groups are appended to the default manifest: lines count from its end.
    let base = std::fs::read_to_string(Path::new(crate::REPO).join("manifests/kubenet.toml"))
        .unwrap()
        .lines()
        .count();
    let at = |line: usize, col: usize| format!("kubenet.toml:{}:{col}:", base + line);
    let cases: [(String, String); 4] = [
        (
            "\n[groups.a]\nnodes = [\"worker9\"]\n".into(),
            format!("{} `groups.a.nodes`: group `a` names `worker9`, which is not a node of the manifest", at(3, 10)),
        ),
        (
            "\n[groups.a]\nnodes = [\"worker0\"]\n\n[groups.b]\nnodes = [\"worker1\", \"worker0\"]\n".into(),
            format!("{} `groups.b.nodes`: `worker0` is already in group `a`: a node belongs to at most one group", at(6, 21)),
        ),
        (
            "\n[groups.a]\nnodes = [\"worker0\"]\nversions = { kubelet = \"1.31.1\" }\n".into(),
            format!("{} `groups.a.versions.kubelet`: `kubelet` is not a key of [versions] (keys: cni-plugins, cni-spec, containerd, cri-tools, kubernetes, runc): a group overrides the cluster's versions", at(4, 14)),
        ),
        (
            "\n[groups.a]\nnodes = [\"worker0\"]\nversions = { kubernetes = \"v1.31.1\" }\n".into(),
            format!("{} `groups.a.versions.kubernetes`: write `1.31.1`, not `v1.31.1`", at(4, 27)),
        ),
    ];
    for (extra, expect) in &cases {
        let ctx = TestContext::new();
        with(&ctx, extra);
        let r = ctx.run(&["lock", "--check"]).fails();
        assert!(
            r.stderr.contains(expect.as_str()),
            "stderr lacks {expect:?}:\n{}",
            r.stderr
        );
        assert!(r.stderr.contains('^'), "{}", r.stderr);
    }
    let ctx = TestContext::new();
    let t = std::fs::read_to_string(ctx.manifest()).unwrap();
    ctx.set_manifest(&t.replace("kube-apiserver = \"1.31.0\"", "kube-apiserver = \"1.31\""));
    ctx.run(&["lock", "--check"])
        .fails()
        .stderr_has("kubenet.toml:30:18: `control-plane.kube-apiserver`: `1.31` is not a version");
}

#[test]
fn the_control_plane_moves_one_minor_and_the_lock_records_it() {
    let ctx = context_with("");
    let t = std::fs::read_to_string(ctx.manifest()).unwrap();
    ctx.set_manifest(&t.replace("kube-apiserver = \"1.31.0\"", "kube-apiserver = \"1.32.0\""));
    ctx.run(&["lock", "--check"])
        .fails()
        .stderr_has("lockfile is stale: kube-apiserver 1.31.0 → 1.32.0 (control plane)");
    // `--locked` refuses to record it; `lock` records it and says so.
    ctx.net(&["build", "--locked"])
        .fails()
        .stderr_has("kube-apiserver 1.31.0 → 1.32.0 (control plane) is not recorded");
    let r = ctx.net(&["lock", "--json"]).ok().json();
    assert_eq!(r["kube_apiserver"], "1.32.0");
    assert_eq!(r["previous_kube_apiserver"], "1.31.0");
    assert!(ctx.lock_text().contains("\nkube-apiserver = \"1.32.0\"\n"));
    ctx.run(&["lock", "--check"]).ok();
    // The next minor is measured from 1.32.0: 1.33.0 is one step, 1.34.0 two.
    let t = std::fs::read_to_string(ctx.manifest()).unwrap();
    ctx.set_manifest(&t.replace("kube-apiserver = \"1.32.0\"", "kube-apiserver = \"1.34.0\""));
    ctx.net(&["lock"])
        .fails()
        .stderr_has("moves from 1.32.0 to 1.34.0, 2 minor versions at once");
    ctx.set_manifest(&t.replace("kube-apiserver = \"1.32.0\"", "kube-apiserver = \"1.33.0\""));
    ctx.net(&["lock"])
        .ok()
        .stdout_has("     moved kube-apiserver 1.32.0 → 1.33.0 (control plane)\n");
}
