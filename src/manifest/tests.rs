use super::*;

fn load(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(&SourceFile::new(Path::new("m.toml"), text.to_string()))
}

fn default_text() -> String {
    std::fs::read_to_string("manifests/kubenet.toml").expect("default manifest")
}

#[test]
fn the_default_manifest_is_the_seed_cluster() {
    let m = load(&default_text()).expect("valid");
    assert_eq!(m.architectures, vec![Arch::new("amd64").expect("arch")]);
    assert_eq!(m.domain, "cluster.local");
    assert_eq!(m.network.pod_cidr.to_string(), "10.0.0.0/12");
    assert_eq!(m.network.service_cidr.to_string(), "10.32.0.0/16");
    assert_eq!(m.network.cluster_dns.to_string(), "10.32.0.10");
    let versions: Vec<(&str, &str)> = m
        .versions
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        versions,
        vec![
            ("cni-plugins", "1.5.1"),
            ("cni-spec", "1.0.0"),
            ("containerd", "1.7.20"),
            ("cri-tools", "1.31.1"),
            ("kubernetes", "1.31.0"),
            ("runc", "1.1.13"),
        ]
    );
    let nodes: Vec<String> = m
        .nodes
        .values()
        .map(|n| {
            format!(
                "{} {} {} {} {}",
                n.name,
                n.vmid,
                n.role.as_str(),
                n.ip,
                n.pod_cidr
            )
        })
        .collect();
    assert_eq!(
        nodes,
        vec![
            "control0 1 control 192.168.1.11 10.1.0.0/16",
            "control1 2 control 192.168.1.12 10.2.0.0/16",
            "control2 3 control 192.168.1.13 10.3.0.0/16",
            "worker0 4 worker 192.168.1.14 10.4.0.0/16",
            "worker1 5 worker 192.168.1.15 10.5.0.0/16",
            "worker2 6 worker 192.168.1.16 10.6.0.0/16",
        ]
    );
    let urls: Vec<String> = m.artifacts().iter().map(|a| a.url.clone()).collect();
    assert!(urls.contains(&"https://dl.k8s.io/release/v1.31.0/bin/linux/amd64/kubelet".to_string()));
    assert!(urls.contains(
        &"https://github.com/opencontainers/runc/releases/download/v1.1.13/runc.amd64".to_string()
    ));
    let runc = m
        .artifacts()
        .into_iter()
        .find(|a| a.component.as_str() == "runc")
        .expect("runc");
    assert_eq!(runc.checksum_name, "runc.amd64");
}

#[test]
fn arm64_nodes_and_url_overrides_need_no_code() {
    let text = default_text()
        .replace("architectures = [\"amd64\"]", "architectures = [\"amd64\", \"arm64\"]")
        .replace("name = \"worker2\"\nvmid = 6\nrole = \"worker\"", "name = \"worker2\"\nvmid = 6\nrole = \"worker\"\narch = \"arm64\"")
        + "\n[[nodes]]\nname = \"worker3\"\nvmid = 7\nrole = \"worker\"\n\n[components.kubelet]\nurl = \"https://mirror.example/k8s/{{ version }}/{{ arch }}/kubelet\"\n";
    let m = load(&text).expect("valid");
    assert_eq!(m.nodes.len(), 7);
    assert_eq!(
        m.nodes[&NodeName::new("worker2").expect("n")].arch.as_str(),
        "arm64"
    );
    assert_eq!(
        m.nodes[&NodeName::new("worker3").expect("n")]
            .ip
            .to_string(),
        "192.168.1.17"
    );
    let specs = m.artifacts();
    assert_eq!(specs.len(), 12, "six components for two architectures");
    let k = specs
        .iter()
        .find(|s| s.component.as_str() == "kubelet" && s.arch.as_str() == "arm64")
        .expect("kubelet arm64");
    assert_eq!(k.url, "https://mirror.example/k8s/1.31.0/arm64/kubelet");
    assert_eq!(
        k.checksum_url,
        "https://mirror.example/k8s/1.31.0/arm64/kubelet.sha256"
    );
}

#[test]
fn no_input_panics() {
    // A few hostile shapes: every one is an error value, never a panic.
    for text in [
        "",
        "[",
        "nodes = 3",
        "[cluster]\nname = 1",
        "[[nodes]]\nvmid = -1",
        "\u{0}",
        "[cluster]\nname=\"a\"\narchitectures=[\"amd64\"]\ndomain=\"x\"\n[network]\npod-cidr=\"10.0.0.0/33\"\nservice-cidr=\"x\"\ncluster-dns=\"y\"\n[versions]\n[[nodes]]\nname=\"n\"\nvmid=1\nrole=\"worker\"\n",
    ] {
        assert!(load(text).is_err(), "{text:?} accepted");
    }
}

#[test]
fn a_group_overrides_versions_for_its_nodes_only() {
    let text = format!(
        "{}\n[groups.canary]\ncanary = true\nnodes = [\"worker0\"]\nversions = {{ kubernetes = \"1.31.1\", containerd = \"1.7.21\" }}\n",
        default_text()
    );
    let m = load(&text).expect("valid");
    let node = |n: &str| &m.nodes[&NodeName::new(n).expect("name")];
    let kubelet = ComponentName::new("kubelet").expect("name");
    assert_eq!(m.components_of(node("worker0"))[&kubelet].version, "1.31.1");
    assert_eq!(m.components_of(node("worker1"))[&kubelet].version, "1.31.0");
    assert_eq!(m.versions_of(node("worker0"))["containerd"], "1.7.21");
    assert_eq!(m.versions_of(node("worker0"))["runc"], "1.1.13");
    assert_eq!(node("worker0").group.as_deref(), Some("canary"));
    assert_eq!(node("worker1").group, None);
    // Every version in use is an artifact, once.
    let labels: Vec<String> = m
        .artifacts()
        .iter()
        .map(|a| format!("{} {}", a.component, a.version))
        .collect();
    assert_eq!(
        labels,
        [
            "cni-plugins 1.5.1",
            "containerd 1.7.20",
            "containerd 1.7.21",
            "crictl 1.31.1",
            "kube-proxy 1.31.0",
            "kube-proxy 1.31.1",
            "kubelet 1.31.0",
            "kubelet 1.31.1",
            "runc 1.1.13"
        ]
    );
    assert_eq!(m.kube_apiserver(), Some("1.31.0"));
}
