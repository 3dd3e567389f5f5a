//! Bad manifests: each gives one clear error naming the file, line and key, exit 1, no panic,
//! and writes nothing.

use crate::TestContext;

/// Apply `from → to` to the default manifest and expect `lock --check` to fail with `expect`.
#[track_caller]
fn bad(from: &str, to: &str, expect: &[&str]) {
    let ctx = TestContext::new();
    ctx.edit_manifest(from, to);
    let r = ctx.run(&["lock", "--check"]).fails();
    let first = r.stderr.lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("error: "), "{}", r.stderr);
    for e in expect {
        assert!(r.stderr.contains(e), "stderr lacks {e:?}:\n{}", r.stderr);
    }
    let r = ctx.run(&["lock"]).fails();
    assert!(
        !ctx.lockfile().exists(),
        "a bad manifest writes no lockfile:\n{}",
        r.stderr
    );
}

#[test]
fn unknown_key() {
    bad("domain = \"cluster.local\"", "domain = \"cluster.local\"\ndomian = \"x\"", &["kubenet.toml:9:1: `cluster.domian`: unknown field `domian`, expected one of `name`, `architectures`, `domain`"]);
}

#[test]
fn missing_field() {
    bad(
        "service-cidr = \"10.32.0.0/16\"\n",
        "",
        &["kubenet.toml:", "missing field `service-cidr`"],
    );
}

#[test]
fn duplicate_node_name() {
    bad("name = \"worker1\"", "name = \"worker0\"", &["kubenet.toml:57:8: `nodes.name`: duplicate node name `worker0` (first declared on line 52)"]);
}

#[test]
fn duplicate_vmid() {
    bad("vmid = 6", "vmid = 5", &["kubenet.toml:63:8: `nodes.vmid`: vmid 5 of `worker2` is already used by `worker1` (line 58)"]);
}

#[test]
fn overlapping_node_cidrs() {
    bad(
        "vmid = 6\n",
        "vmid = 6\npod-cidr = \"10.5.128.0/17\"\n",
        &["kubenet.toml:64:12: `nodes.pod-cidr`: 10.5.128.0/17 overlaps 10.5.0.0/16 of `worker1`"],
    );
}

#[test]
fn service_range_overlapping_pods() {
    bad(
        "service-cidr = \"10.32.0.0/16\"",
        "service-cidr = \"10.8.0.0/16\"",
        &["`network.service-cidr`: 10.8.0.0/16 overlaps the pod range 10.0.0.0/12"],
    );
}

#[test]
fn rendered_node_values_are_checked_per_node() {
    // vmid 20 renders 10.20.0.0/16, outside 10.0.0.0/12.
    bad("vmid = 6", "vmid = 20", &["`network.node-pod-cidr`: for node `worker2`: 10.20.0.0/16 is not inside the pod range 10.0.0.0/12"]);
    bad(
        "vmid = 6",
        "vmid = 300",
        &["for node `worker2`: `192.168.1.310` is not an IPv4 address"],
    );
}

#[test]
fn a_version_that_is_not_a_version() {
    bad("containerd = \"1.7.20\"", "containerd = \"latest\"", &["kubenet.toml:22:14: `versions.containerd`: `latest` is not a version (expected MAJOR.MINOR.PATCH, like 1.31.0)"]);
    bad(
        "runc = \"1.1.13\"",
        "runc = \"v1.1.13\"",
        &["`versions.runc`: write `1.1.13`, not `v1.1.13`"],
    );
}

#[test]
fn a_missing_version_key() {
    bad("cri-tools = \"1.31.1\"\n", "", &["`components.crictl.version`: component `crictl` is pinned by `versions.cri-tools`, which the manifest does not set"]);
}

#[test]
fn wrong_types_and_huge_values() {
    bad(
        "vmid = 1\n",
        "vmid = \"one\"\n",
        &["kubenet.toml:38:8: `nodes.vmid`: wrong type: string \"one\", expected a whole number"],
    );
    bad(
        "vmid = 1\n",
        "vmid = 99999999999999\n",
        &["kubenet.toml:38:8: `nodes.vmid`"],
    );
    bad(
        "role = \"control\"\n",
        "role = \"master\"\n",
        &["`nodes.role`: unknown variant `master`, expected `control` or `worker`"],
    );
}

#[test]
fn syntax_error_points_at_the_line() {
    bad(
        "[versions]",
        "[versions",
        &["kubenet.toml:18:10: `versions`: unclosed table, expected `]`"],
    );
}

#[test]
fn bad_names_and_architectures() {
    bad(
        "name = \"worker0\"",
        "name = \"../etc\"",
        &["`nodes.name`: `../etc` is not a valid node name"],
    );
    bad(
        "architectures = [\"amd64\"]",
        "architectures = [\"amd64\", \"AMD64\"]",
        &["`cluster.architectures`: `AMD64` is not a valid architecture"],
    );
    bad(
        "architectures = [\"amd64\"]",
        "architectures = []",
        &["`cluster.architectures`: list at least one architecture"],
    );
}

#[test]
fn url_template_errors_name_the_component() {
    let ctx = TestContext::new();
    let t = std::fs::read_to_string(ctx.manifest()).unwrap();
    ctx.set_manifest(&format!(
        "{t}\n[components.runc]\nurl = \"https://example.org/{{{{ verison }}}}/runc\"\n"
    ));
    ctx.run(&["lock", "--check"])
        .fails()
        .stderr_has("`components.runc.url`: for amd64: undefined value");
    ctx.set_manifest(&format!(
        "{t}\n[components.etcd]\nurl = \"https://example.org/etcd\"\n"
    ));
    ctx.run(&["lock", "--check"])
        .fails()
        .stderr_has("`components.etcd`: component `etcd` is not built in, so it needs `version`");
}

#[test]
fn not_utf8_and_missing_file() {
    let ctx = TestContext::new();
    std::fs::write(ctx.manifest(), b"[cluster]\nname = \"k\xff\"\n").unwrap();
    ctx.run(&["lock", "--check"])
        .fails()
        .stderr_has("kubenet.toml:2: the file is not valid UTF-8");
    ctx.run(&["lock", "--check", "--manifest", "nope.toml"])
        .fails()
        .stderr_has("cannot read nope.toml");
}

#[test]
fn errors_show_the_source_line_with_a_caret() {
    let ctx = TestContext::new();
    ctx.edit_manifest("vmid = 6", "vmid = 5");
    let r = ctx.run(&["lock", "--check"]).fails();
    assert!(
        r.stderr.contains("63 | vmid = 5\n   |        ^"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_node_range_holding_others_names_the_first_by_name() {
    // 10.0.0.0/13 holds the ranges of control0..worker1 (10.1-10.5.0.0/16).
    bad(
        "vmid = 6\n",
        "vmid = 6\npod-cidr = \"10.0.0.0/13\"\n",
        &["kubenet.toml:64:12: `nodes.pod-cidr`: 10.0.0.0/13 overlaps 10.1.0.0/16 of `control0`"],
    );
    // A range inside an earlier node's.
    bad(
        "vmid = 6\n",
        "vmid = 6\npod-cidr = \"10.3.7.0/24\"\n",
        &["kubenet.toml:64:12: `nodes.pod-cidr`: 10.3.7.0/24 overlaps 10.3.0.0/16 of `control2`"],
    );
}

/// A manifest of `n` nodes with /24 pod ranges, `extra` appended to the last node.
fn many_nodes(n: u32, extra: &str) -> String {
    let text =
        std::fs::read_to_string(std::path::Path::new(crate::REPO).join("manifests/kubenet.toml"))
            .unwrap();
    let mut out = text[..text.find("[[nodes]]").unwrap()]
        .replace("pod-cidr = \"10.0.0.0/12\"", "pod-cidr = \"10.0.0.0/8\"")
        .replace(
            "service-cidr = \"10.32.0.0/16\"",
            "service-cidr = \"172.16.0.0/16\"",
        )
        .replace(
            "cluster-dns = \"10.32.0.10\"",
            "cluster-dns = \"172.16.0.10\"",
        )
        .replace(
            "10.{{ vmid }}.0.0/16",
            "10.{{ vmid // 256 }}.{{ vmid % 256 }}.0/24",
        )
        .replace(
            "192.168.1.{{ 10 + vmid }}",
            "192.168.{{ vmid // 200 }}.{{ 10 + vmid % 200 }}",
        );
    for i in 1..=n {
        out.push_str(&format!(
            "[[nodes]]\nname = \"n{i:05}\"\nvmid = {i}\nrole = \"worker\"\n\n"
        ));
    }
    out.push_str(extra);
    out
}

#[test]
fn overlaps_and_duplicates_are_found_among_thousands_of_nodes() {
    let ctx = TestContext::with_manifest(&many_nodes(3000, ""));
    let r = ctx.run(&["lock", "--check"]).fails();
    assert!(
        !r.stderr.contains("kubenet.toml:"),
        "the manifest is valid:\n{}",
        r.stderr
    );
    ctx.set_manifest(&many_nodes(
        3000,
        "[[nodes]]\nname = \"late\"\nvmid = 5000\nrole = \"worker\"\npod-cidr = \"10.4.0.0/22\"\n",
    ));
    ctx.run(&["lock", "--check"])
        .fails()
        .stderr_has("`nodes.pod-cidr`: 10.4.0.0/22 overlaps 10.4.0.0/24 of `n01024`");
    ctx.set_manifest(&many_nodes(
        3000,
        "[[nodes]]\nname = \"late\"\nvmid = 2999\nrole = \"worker\"\n",
    ));
    ctx.run(&["lock", "--check"])
        .fails()
        .stderr_has("`nodes.vmid`: vmid 2999 of `late` is already used by `n02999` (line 15028)");
}
