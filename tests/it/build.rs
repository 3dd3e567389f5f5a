//! `nodeforge build` and `show`: golden rendered files, reproducibility, image ids, no-op builds,
//! refusals (private keys, /bin, template errors).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{run_env, TestContext, REPO};

fn built() -> TestContext {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let r = ctx.net(&["build"]).ok();
    // stderr is not a terminal here: no progress is drawn (nor anything else).
    assert_eq!(r.stderr, "", "build wrote to stderr");
    ctx
}

/// node → image id, from `build --json`.
fn ids(v: &serde_json::Value) -> BTreeMap<String, String> {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_string(),
                n["image_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn image_dir(ctx: &TestContext, node: &str) -> PathBuf {
    std::fs::canonicalize(ctx.path().join("out/nodes").join(node).join("current")).unwrap()
}

/// A tar member: (mode, uid, gid, mtime, kind, bytes or link target).
type Member = (u32, u64, u64, u64, char, Vec<u8>);

/// Every member of a node's current image (all its layers), through `nodeforge flatten`.
pub fn members(ctx: &TestContext, node: &str) -> BTreeMap<String, Member> {
    let tar = ctx.path().join(format!("{node}-flat.tar.zst"));
    ctx.run(&["flatten", node, "-o", tar.to_str().unwrap()])
        .ok();
    let m = untar(&tar);
    std::fs::remove_file(&tar).unwrap();
    m
}

/// Every member of a .tar.zst by path.
fn untar(path: &Path) -> BTreeMap<String, Member> {
    let f = std::fs::File::open(path).unwrap();
    let mut ar = tar::Archive::new(zstd::stream::read::Decoder::new(f).unwrap());
    let mut out = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let p = e.path().unwrap().display().to_string();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Regular => 'f',
            other => panic!("unexpected member type {other:?} for {p}"),
        };
        let mut data = Vec::new();
        if kind == 'l' {
            data = e
                .link_name()
                .unwrap()
                .unwrap()
                .display()
                .to_string()
                .into_bytes();
        } else {
            e.read_to_end(&mut data).unwrap();
        }
        assert!(
            h.username().unwrap().unwrap_or("").is_empty()
                && h.groupname().unwrap().unwrap_or("").is_empty()
        );
        out.insert(
            p,
            (
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                kind,
                data,
            ),
        );
    }
    out
}

fn golden_files(node: &str) -> BTreeMap<String, Vec<u8>> {
    let root = Path::new(REPO).join("tests/golden").join(node);
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn rendered_files_of_control0_and_worker1_match_the_seed() {
    let ctx = built();
    for node in ["control0", "worker1"] {
        let members = members(&ctx, node);
        let golden = golden_files(node);
        // Every config and unit of the image is a golden file, and each matches to the byte.
        let rendered: BTreeMap<String, Vec<u8>> = members
            .iter()
            .filter(|(p, m)| {
                m.4 == 'f' && p.starts_with("etc/") && !p.starts_with("etc/extension-release.d/")
            })
            .map(|(p, m)| (p.clone(), m.5.clone()))
            .collect();
        assert_eq!(
            rendered.keys().collect::<Vec<_>>(),
            golden.keys().collect::<Vec<_>>(),
            "{node}"
        );
        for (path, want) in &golden {
            assert_eq!(
                String::from_utf8_lossy(&rendered[path]),
                String::from_utf8_lossy(want),
                "{node}: {path} differs from the golden file"
            );
            assert_eq!(members[path].0, 0o644, "{node}: {path} mode");
        }
    }
}

#[test]
fn images_hold_the_binaries_units_and_enable_links_of_the_seed() {
    let ctx = built();
    let members = members(&ctx, "worker0");
    for bin in [
        "usr/local/bin/kubelet",
        "usr/local/bin/kube-proxy",
        "usr/local/bin/runc",
        "usr/local/bin/crictl",
        "usr/bin/containerd",
        "usr/bin/containerd-shim-runc-v2",
        "usr/bin/ctr",
        "opt/cni/bin/bridge",
        "opt/cni/bin/host-local",
        "opt/cni/bin/loopback",
    ] {
        let m = members.get(bin).unwrap_or_else(|| panic!("{bin} missing"));
        assert_eq!((m.0, m.1, m.2, m.3, m.4), (0o755, 0, 0, 0, 'f'), "{bin}");
    }
    assert!(
        !members
            .keys()
            .any(|p| p.ends_with("LICENSE") || p.ends_with("README.md")),
        "only executables are taken"
    );
    for unit in ["containerd", "kubelet", "kube-proxy"] {
        let link =
            members[&format!("etc/systemd/system/multi-user.target.wants/{unit}.service")].clone();
        assert_eq!(link.4, 'l');
        assert_eq!(
            String::from_utf8(link.5).unwrap(),
            format!("/etc/systemd/system/{unit}.service")
        );
    }
    // The seed's per-VM secrets are referenced, never shipped.
    assert!(!members
        .keys()
        .any(|p| p.ends_with("-key.pem") || p.ends_with("kubeconfig")));
    // The record lists exactly what the image holds.
    let m: serde_json::Value =
        crate::whole_record(&image_dir(&ctx, "worker0").join("manifest.json"));
    let listed: Vec<String> = m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["path"]
                .as_str()
                .unwrap()
                .trim_start_matches('/')
                .to_string()
        })
        .collect();
    let mut in_tar: Vec<String> = members
        .keys()
        .map(|k| k.trim_end_matches('/').to_string())
        .collect();
    in_tar.sort();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(listed_sorted, in_tar);
}

#[test]
fn no_image_ships_bin_sbin_or_lib() {
    let ctx = built();
    for node in [
        "control0", "control1", "control2", "worker0", "worker1", "worker2",
    ] {
        let members = members(&ctx, node);
        for p in members.keys() {
            let top = p.split('/').next().unwrap();
            assert!(
                !["bin", "sbin", "lib", "lib64"].contains(&top),
                "{node} ships {p}"
            );
        }
    }
    // An install rule aiming at /bin is refused with a reason.
    let t = std::fs::read_to_string(ctx.manifest()).unwrap();
    ctx.set_manifest(&format!(
        "{t}\n[components.containerd]\ninstall = [{{ from = \"bin/*\", to = \"/bin/\" }}]\n"
    ));
    ctx.net(&["build"]).fails().stderr_has("component `containerd` installs to `/bin/` (install rule { from = \"bin/*\", to = \"/bin/\" }): what artifacts install goes into the payload layer, which may hold only /usr and /opt");
}

#[test]
fn builds_are_reproducible_across_directories_umasks_and_time_zones() {
    let a = TestContext::new();
    let b = TestContext::new();
    for (ctx, mask, tz) in [(&a, "022", "UTC"), (&b, "077", "Pacific/Chatham")] {
        let mirror = ctx.server.url();
        let args = [
            "--mirrors-only",
            "--trust-mirror-checksums",
            "--mirror",
            &mirror,
        ];
        let lock: Vec<&str> = ["lock"].iter().chain(args.iter()).copied().collect();
        run_env(ctx.path(), &lock, &[("TZ", tz)], Some(mask)).ok();
        let build: Vec<&str> = ["build"].iter().chain(args.iter()).copied().collect();
        run_env(
            ctx.path(),
            &build,
            &[("TZ", tz), ("LC_ALL", "C")],
            Some(mask),
        )
        .ok();
    }
    for node in ["control0", "worker2"] {
        let (da, db) = (image_dir(&a, node), image_dir(&b, node));
        assert_eq!(da.file_name(), db.file_name(), "{node}: same image id");
        for f in [
            "manifest.json",
            "nodeforge-payload.raw",
            "nodeforge-payload.verity",
            "nodeforge-payload.roothash",
            "nodeforge-config.raw",
            "nodeforge-config.verity",
            "nodeforge-config.roothash",
        ] {
            assert!(
                std::fs::read(da.join(f)).unwrap() == std::fs::read(db.join(f)).unwrap(),
                "{node}: {f} differs"
            );
        }
    }
}

#[test]
fn a_change_to_one_worker_changes_only_that_workers_image() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let before = ids(&ctx.net(&["build", "--json"]).ok().json());
    ctx.edit_manifest(
        "name = \"worker1\"\nvmid = 5\nrole = \"worker\"\n",
        "name = \"worker1\"\nvmid = 5\nrole = \"worker\"\nvars = { kubelet_verbosity = 4 }\n",
    );
    let v = ctx.net(&["build", "--json"]).ok().json();
    let after = ids(&v);
    for (node, id) in &before {
        if node == "worker1" {
            assert_ne!(&after[node], id, "worker1 changed");
        } else {
            assert_eq!(&after[node], id, "{node} did not change");
        }
    }
    for n in v["nodes"].as_array().unwrap() {
        let expected = if n["node"] == "worker1" {
            "built"
        } else {
            "unchanged"
        };
        assert_eq!(n["status"], expected, "{n}");
    }
    let members = members(&ctx, "worker1");
    assert!(
        String::from_utf8_lossy(&members["etc/systemd/system/kubelet.service"].5).contains("--v=4")
    );
}

#[test]
fn an_unchanged_build_does_nothing_and_says_so() {
    let ctx = built();
    let mtime = std::fs::metadata(image_dir(&ctx, "worker0").join("nodeforge-config.raw"))
        .unwrap()
        .modified()
        .unwrap();
    ctx.server.clear_log();
    ctx.net(&["build"])
        .ok()
        .stdout_has("nothing to do: all 6 node images are up to date");
    assert!(ctx.server.requests().is_empty());
    assert_eq!(
        std::fs::metadata(image_dir(&ctx, "worker0").join("nodeforge-config.raw"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    // --node builds a subset; an unknown node is an error.
    let v = ctx
        .net(&["build", "--node", "worker1", "--json"])
        .ok()
        .json();
    assert_eq!(ids(&v).keys().collect::<Vec<_>>(), vec!["worker1"]);
    assert!(v["nodes"][0]["manifest_json"]
        .as_str()
        .unwrap()
        .ends_with("manifest.json"));
    ctx.net(&["build", "--node", "worker7"]).fails().stderr_has("`worker7` is not a node of kubenet.toml; did you mean worker0?\nhint: nodes of kubenet.toml: control0, control1, control2, worker0, worker1, worker2");
}

#[test]
fn binaries_are_stored_once_for_all_nodes() {
    let ctx = built();
    let kubelet: Vec<String> = ["control0", "worker2"]
        .iter()
        .map(|n| {
            let m: serde_json::Value =
                crate::whole_record(&image_dir(&ctx, n).join("manifest.json"));
            m["entries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["path"] == "/usr/local/bin/kubelet")
                .unwrap()["blake3"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kubelet[0], kubelet[1]);
    // One object per distinct content: 6 artifacts, 6+1+18 extracted executables, the rendered
    // files (9 templates; the bridge config and kubelet config differ per node; the secrets'
    // placement unit names the node's certificate paths) and the extension-release files (one
    // per layer role and architecture).
    let objects = ctx.store_objects();
    let distinct: std::collections::BTreeSet<&String> = objects.iter().map(|(_, n)| n).collect();
    assert_eq!(objects.len(), distinct.len());
    assert!(
        objects.len() <= 6 + 25 + 7 + 3 * 6 + 2,
        "{} objects",
        objects.len()
    );
}

#[test]
fn show_prints_a_bill_of_materials() {
    let ctx = built();
    let id = image_dir(&ctx, "worker1")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let r = ctx.run(&["show", &id[..10]]).ok();
    r.stdout_has(&format!("image {id} (node worker1, amd64)"))
        .stdout_has("/usr/local/bin/kubelet  kubelet 1.31.0 <- https://dl.k8s.io/release/v1.31.0/bin/linux/amd64/kubelet (sha256 ")
        .stdout_has("/usr/bin/ctr  containerd 1.7.20 [bin/ctr] <- https://github.com/containerd/containerd/releases/download/v1.7.20/containerd-1.7.20-linux-amd64.tar.gz")
        .stdout_has("/etc/cni/net.d/10-bridge.conf  template etc/cni/net.d/10-bridge.conf");
    let v = ctx.run(&["show", &id, "--json"]).ok().json();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(
        v["provenance"]["/etc/kubernetes/kubelet-config.yaml"]["template"],
        "etc/kubernetes/kubelet-config.yaml"
    );
    // A node name shows its current image; NODE@GEN a generation.
    ctx.run(&["show", "worker1"])
        .ok()
        .stdout_has(&format!("image {id} (node worker1, amd64)"));
    ctx.run(&["show", "worker1@1"])
        .ok()
        .stdout_has(&format!("image {id} (node worker1, amd64)"));
    ctx.run(&["show", "zzzz"])
        .fails()
        .stderr_has("no image `zzzz`");
    ctx.run(&["show", ""]).fails();
}

#[test]
fn private_keys_never_go_into_an_image() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let key = ctx
        .path()
        .join("manifests/kubenet/etc/kubernetes/worker1-key.pem");
    std::fs::write(&key, "not really a key\n").unwrap();
    ctx.net(&["build"])
        .fails()
        .stderr_has("worker1-key.pem: private keys and kubeconfigs are never put into an image");
    std::fs::remove_file(&key).unwrap();
    // Content counts, not only names.
    let sneaky = ctx.path().join("manifests/kubenet/etc/ssl-extra.conf");
    std::fs::write(
        &sneaky,
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    ctx.net(&["build"])
        .fails()
        .stderr_has("ssl-extra.conf: this file contains a private key");
    assert!(
        !ctx.path().join("out/images").exists()
            || std::fs::read_dir(ctx.path().join("out/images"))
                .unwrap()
                .count()
                == 0
    );
}

#[test]
fn template_errors_name_the_template_line_and_node() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let t = ctx
        .path()
        .join("manifests/kubenet/etc/kubernetes/kube-proxy-config.yaml");
    let text = std::fs::read_to_string(&t).unwrap();
    std::fs::write(
        &t,
        text.replace("{{ cluster.pod_cidr }}", "{{ cluster.pod_cdir }}"),
    )
    .unwrap();
    ctx.net(&["build"])
        .fails()
        .stderr_has("kube-proxy-config.yaml:6: for node `control0`: undefined value");
    // A rendered value that is empty is an error, not an image.
    std::fs::write(&t, text).unwrap();
    let b = ctx
        .path()
        .join("manifests/kubenet/etc/cni/net.d/99-loopback.conf");
    let text = std::fs::read_to_string(&b).unwrap();
    std::fs::write(
        &b,
        text.replace(
            "{{ versions[\"cni-spec\"] }}",
            "{{ vars.cni_spec | default('') }}",
        ),
    )
    .unwrap();
    ctx.net(&["build"]).fails().stderr_has("99-loopback.conf:2: for node `control0`: `cniVersion` is empty: a required value rendered to nothing");
    // Invalid YAML after rendering.
    std::fs::write(&b, text).unwrap();
    std::fs::write(&t, "kind: [\n").unwrap();
    ctx.net(&["build"])
        .fails()
        .stderr_has("kube-proxy-config.yaml:")
        .stderr_has("invalid YAML");
}

#[test]
fn build_refuses_an_unresolved_lock_entry() {
    let ctx = TestContext::new();
    std::fs::remove_file(ctx.served(&crate::checksum_url_of(&ctx, "kube-proxy"))).unwrap();
    ctx.net(&["lock", "--allow-unresolved"]).ok();
    let r = ctx.net(&["build"]).fails();
    assert_eq!(
        r.stderr,
        "error: kube-proxy 1.31.0 (amd64) has no published sha256 in the lockfile\n\
         hint: run `nodeforge lock --update kube-proxy` where upstream is reachable, then commit the lockfile\n"
    );
}

/// The directory of a node's layer of `role`, from its image's record.
fn layer_dir(ctx: &TestContext, node: &str, role: &str) -> PathBuf {
    crate::layer_of(&image_dir(ctx, node), role)
}

#[test]
fn every_node_shares_one_payload_layer_and_has_its_own_config_layer() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let v = ctx.net(&["build", "--json"]).ok().json();
    let nodes = v["nodes"].as_array().unwrap();
    let payloads: std::collections::BTreeSet<&str> = nodes
        .iter()
        .map(|n| n["layers"][0]["id"].as_str().unwrap())
        .collect();
    let configs: std::collections::BTreeSet<&str> = nodes
        .iter()
        .map(|n| n["layers"][1]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        payloads.len(),
        1,
        "one binary set, one payload: {payloads:?}"
    );
    assert_eq!(configs.len(), 6, "a config layer per node");
    // The payload is written once, by the first node that needs it.
    let written = nodes
        .iter()
        .filter(|n| n["layers"][0]["written"] == true)
        .count();
    assert_eq!(written, 1);
    for n in nodes {
        assert_eq!(n["layers"][0]["role"], "payload");
        assert_eq!(n["layers"][1]["role"], "config");
        assert_eq!(n["layers"][1]["written"], true);
        assert_eq!(n["layers"][0]["root_hash"].as_str().unwrap().len(), 64);
    }
    // On disk: one payload directory, every image links to it.
    let layers: Vec<PathBuf> = std::fs::read_dir(ctx.path().join("out/layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(layers.len(), 7);
    let payload = layer_dir(&ctx, "control0", "payload");
    for node in ["control1", "worker2"] {
        assert_eq!(layer_dir(&ctx, node, "payload"), payload);
        assert_ne!(
            layer_dir(&ctx, node, "config"),
            layer_dir(&ctx, "control0", "config")
        );
    }
    // The payload holds only /usr and /opt, the config layer only /etc: their records say so,
    // and each is kilobytes against the payload's megabytes.
    for (dir, tops, name) in [
        (payload.clone(), vec!["usr", "opt"], "nodeforge-payload"),
        (
            layer_dir(&ctx, "worker1", "config"),
            vec!["etc"],
            "nodeforge-config",
        ),
    ] {
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("layer.json")).unwrap()).unwrap();
        for e in rec["entries"].as_array().unwrap() {
            let top = e["path"].as_str().unwrap().split('/').nth(1).unwrap();
            assert!(tops.contains(&top), "{name}: {e}");
        }
        let roothash = std::fs::read_to_string(dir.join(format!("{name}.roothash"))).unwrap();
        assert_eq!(
            roothash.trim_end(),
            rec["verity"]["root_hash"].as_str().unwrap()
        );
    }
    let size = |role| {
        std::fs::metadata(layer_dir(&ctx, "worker1", role).join(format!("nodeforge-{role}.raw")))
            .unwrap()
            .len()
    };
    assert!(
        size("config") < 256 * 1024,
        "config layer: {} bytes",
        size("config")
    );
    assert!(size("payload") > size("config"));
}

#[test]
fn each_layer_carries_its_systemd_extension_release_file() {
    let ctx = built();
    let m = members(&ctx, "worker1");
    for path in [
        "usr/lib/extension-release.d/extension-release.nodeforge-payload",
        "etc/extension-release.d/extension-release.nodeforge-config",
    ] {
        assert_eq!(
            String::from_utf8_lossy(&m[path].5),
            "ID=_any\nARCHITECTURE=x86-64\n",
            "{path}"
        );
        assert_eq!(m[path].0, 0o644);
    }
}

#[test]
fn a_node_image_holds_only_usr_opt_and_etc() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    // A template outside /etc is refused, naming the template file and the rule.
    let dir = ctx.path().join("manifests/kubenet/var/lib/kubelet");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("extra.conf"), "x = 1\n").unwrap();
    ctx.net(&["build"])
        .fails()
        .stderr_has("manifests/kubenet/var/lib/kubelet/extra.conf: `/var/lib/kubelet/extra.conf` (from template var/lib/kubelet/extra.conf) goes into the config layer, which may hold only /etc");
    std::fs::remove_dir_all(ctx.path().join("manifests/kubenet/var")).unwrap();
    let usr = ctx.path().join("manifests/kubenet/usr/lib");
    std::fs::create_dir_all(&usr).unwrap();
    std::fs::write(usr.join("x.conf"), "x = 1\n").unwrap();
    ctx.net(&["build"])
        .fails()
        .stderr_has("goes into the config layer, which may hold only /etc");
    std::fs::remove_dir_all(ctx.path().join("manifests/kubenet/usr")).unwrap();
    // An install rule outside /usr and /opt is refused, naming the manifest and the rule.
    let t = std::fs::read_to_string(ctx.manifest()).unwrap();
    ctx.set_manifest(&format!(
        "{t}\n[components.runc]\ninstall = [{{ to = \"/etc/runc\" }}]\n"
    ));
    ctx.net(&["build"])
        .fails()
        .stderr_has("kubenet.toml: component `runc` installs to `/etc/runc` (install rule { to = \"/etc/runc\" }): what artifacts install goes into the payload layer, which may hold only /usr and /opt");
    assert!(!ctx.path().join("out/images").exists(), "nothing built");
}

#[test]
fn flatten_writes_the_whole_image_as_one_tar_or_erofs_file() {
    let ctx = built();
    let tar = ctx.path().join("w1.tar.zst");
    let again = ctx.path().join("w1-again.tar.zst");
    ctx.run(&["flatten", "worker1", "-o", tar.to_str().unwrap()])
        .ok();
    ctx.run(&["flatten", "worker1", "-o", again.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read(&tar).unwrap(),
        std::fs::read(&again).unwrap(),
        "deterministic"
    );
    let m = untar(&tar);
    assert!(
        m.contains_key("usr/local/bin/kubelet") && m.contains_key("etc/containerd/config.toml")
    );
    let erofs = ctx.path().join("w1.erofs");
    let v = ctx
        .run(&[
            "flatten",
            "worker1",
            "-o",
            erofs.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(v["format"], "erofs");
    let root = v["root_hash"].as_str().unwrap();
    let verity = ctx.path().join("w1.erofs.verity");
    let out = std::process::Command::new("veritysetup")
        .args([
            "verify",
            erofs.to_str().unwrap(),
            verity.to_str().unwrap(),
            root,
        ])
        .output()
        .expect("veritysetup (cryptsetup-bin) is needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing half-written is left beside the output.
    let names: Vec<String> = std::fs::read_dir(ctx.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".nodeforge"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn fetch_and_build_say_what_to_run_without_a_lockfile_or_with_a_stale_one() {
    let ctx = TestContext::new();
    for cmd in ["fetch", "build"] {
        ctx.net(&[cmd])
            .fails()
            .stderr_has("hint: run `nodeforge lock` to create it");
    }
    ctx.net(&["lock"]).ok();
    ctx.edit_manifest("containerd = \"1.7.20\"", "containerd = \"1.7.21\"");
    for cmd in ["fetch", "build"] {
        ctx.net(&[cmd])
            .fails()
            .stderr_has("lockfile is stale: containerd 1.7.20 → 1.7.21 (amd64)")
            .stderr_has("hint: run `nodeforge lock` to update the lockfile, then commit it: `build` and `fetch` add what the manifest adds (nothing new here) but never replace a pin the lockfile holds (changed: containerd 1.7.20 → 1.7.21 (amd64)); a replaced pin is `lock`'s to write, so that a reviewed checksum changes only in the lockfile's diff\n");
    }
    // A new version beside the changed one: both named, which build would add and which not.
    ctx.edit_manifest("runc = \"1.1.13\"", "runc = \"1.1.14\"");
    ctx.net(&["build"]).fails().stderr_has(
        "but never replace a pin the lockfile holds (changed: containerd 1.7.20 → 1.7.21 (amd64); runc 1.1.13 → 1.1.14 (amd64))",
    );
    ctx.edit_manifest("runc = \"1.1.14\"", "runc = \"1.1.13\"");
    ctx.edit_manifest("containerd = \"1.7.21\"", "containerd = \"1.7.20\"");
    ctx.edit_manifest(
        "architectures = [\"amd64\"]",
        "architectures = [\"amd64\", \"arm64\"]",
    );
    ctx.edit_manifest("containerd = \"1.7.20\"", "containerd = \"1.7.21\"");
    ctx.net(&["build"]).fails().stderr_has(
        "hint: run `nodeforge lock` to update the lockfile, then commit it: `build` and `fetch` add what the manifest adds (new: ",
    );
    assert!(!ctx.path().join("out/images").exists(), "nothing built");
}

#[test]
fn the_mirror_can_come_from_the_environment() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let mirror = ctx.server.url();
    crate::run_env(
        ctx.path(),
        &["fetch", "--mirrors-only", "--retries", "1"],
        &[("NODEFORGE_MIRROR", mirror.as_str())],
        None,
    )
    .ok()
    .stdout_has("fetched 6 artifacts (");
    crate::run_env(
        ctx.path(),
        &["fetch", "--mirrors-only"],
        &[("NODEFORGE_MIRROR", "ftp://nowhere")],
        None,
    )
    .fails()
    .stderr_has("NODEFORGE_MIRROR: ");
}

#[test]
fn components_lists_every_version_and_url() {
    let ctx = TestContext::new();
    ctx.run(&["components"])
        .ok()
        .stdout_has("kubelet")
        .stdout_has("https://dl.k8s.io/release/v1.31.0/bin/linux/amd64/kubelet")
        .stdout_has("containerd-1.7.20-linux-amd64.tar.gz");
    let v = ctx.run(&["components", "--json"]).ok().json();
    assert!(
        v.to_string().contains("cni-plugins-linux-amd64-v1.5.1.tgz"),
        "{v}"
    );
}

#[test]
fn an_arm64_node_gets_arm64_binaries_from_the_same_manifest() {
    let ctx = TestContext::new();
    ctx.edit_manifest(
        "architectures = [\"amd64\"]",
        "architectures = [\"amd64\", \"arm64\"]",
    );
    ctx.edit_manifest(
        "name = \"worker2\"\nvmid = 6\nrole = \"worker\"\n",
        "name = \"worker2\"\nvmid = 6\nrole = \"worker\"\narch = \"arm64\"\n",
    );
    // Stand-ins for both architectures, then lock, build, show.
    let m = nodeforge::manifest::Manifest::load(&ctx.manifest()).unwrap();
    nodeforge::standin::write_mirror(&m, ctx.server.root(), 8192).unwrap();
    ctx.net(&["lock"]).ok();
    assert!(ctx.lock_text().contains("runc.arm64"));
    let v = ctx.net(&["build", "--json"]).ok().json();
    let ids = ids(&v);
    assert_eq!(ids.len(), 6);
    ctx.run(&["show", "worker2"])
        .ok()
        .stdout_has(&format!("image {} (node worker2, arm64)", ids["worker2"]))
        .stdout_has("/usr/local/bin/kubelet  kubelet 1.31.0 <- https://dl.k8s.io/release/v1.31.0/bin/linux/arm64/kubelet")
        .stdout_has("/usr/local/bin/runc  runc 1.1.13 <- https://github.com/opencontainers/runc/releases/download/v1.1.13/runc.arm64");
    ctx.run(&["show", "worker1"])
        .ok()
        .stdout_has("(node worker1, amd64)")
        .stdout_has("bin/linux/amd64/kubelet");
    // Two binary sets, so two payload layers; every image still verifies and rebuilds.
    let roles: Vec<String> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["layers"][0]["id"].as_str().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(roles.len(), 2, "{roles:?}");
    ctx.run(&["verify", "--rebuild"]).ok();
}

#[test]
fn names_and_link_targets_over_100_bytes_are_written_to_tar() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let tree = ctx.path().join("manifests/kubenet");
    let unit = format!("nodeforge-{}.service", "long-unit-name-".repeat(6));
    let deep = format!("etc/{}/settings.conf", "a-rather-deep-directory".repeat(5));
    assert!(format!("etc/systemd/system/{unit}").len() > 100 && deep.len() > 100);
    std::fs::write(
        tree.join("etc/systemd/system").join(&unit),
        "[Unit]\nDescription=long\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    let deep_path = tree.join(&deep);
    std::fs::create_dir_all(deep_path.parent().unwrap()).unwrap();
    std::fs::write(&deep_path, "x = 1\n").unwrap();
    ctx.net(&["build"]).ok();
    let m = members(&ctx, "worker1");
    assert_eq!(m[&format!("etc/systemd/system/{unit}")].5, b"[Unit]\nDescription=long\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n");
    let link = &m[&format!("etc/systemd/system/multi-user.target.wants/{unit}")];
    assert_eq!(link.4, 'l');
    assert_eq!(
        String::from_utf8_lossy(&link.5),
        format!("/etc/systemd/system/{unit}")
    );
    assert_eq!(m[&deep].5, b"x = 1\n");
    // GNU tar reads the same names.
    let flat = ctx.path().join("flat.tar.zst");
    ctx.run(&["flatten", "worker1", "-o", flat.to_str().unwrap()])
        .ok();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut zstd::stream::read::Decoder::new(std::fs::File::open(&flat).unwrap()).unwrap(),
        &mut plain,
    )
    .unwrap();
    let plain_path = ctx.path().join("flat.tar");
    std::fs::write(&plain_path, plain).unwrap();
    let out = std::process::Command::new("tar")
        .args(["-tvf", plain_path.to_str().unwrap()])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}");
    assert!(listing.contains(&format!(
        "etc/systemd/system/multi-user.target.wants/{unit} -> /etc/systemd/system/{unit}"
    )));
    assert!(listing.contains(&deep));
}

#[test]
fn template_error_lines_are_exact_beyond_65535() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let t = ctx
        .path()
        .join("manifests/kubenet/etc/kubernetes/long.conf");
    let filler = "# filler\n".repeat(69_999);
    // A render error (an undefined value) on line 70000.
    std::fs::write(&t, format!("{filler}x = {{{{ no_such_value }}}}\n")).unwrap();
    ctx.net(&["build"])
        .fails()
        .stderr_has("long.conf:70000: for node `control0`: undefined value");
    // A syntax error on line 70000.
    std::fs::write(&t, format!("{filler}{{% if %}}\n")).unwrap();
    ctx.net(&["build"])
        .fails()
        .stderr_has("long.conf:70000: for node `(any)`: syntax error");
}
