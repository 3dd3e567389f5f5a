use super::*;

fn entry(component: &str, arch: &str, resolution: Resolution) -> LockEntry {
    LockEntry {
        component: ComponentName::new(component).expect("name"),
        version: "1.0.0".into(),
        arch: Arch::new(arch).expect("arch"),
        url: format!("https://example.org/{component}-{arch}"),
        checksum_url: format!("https://example.org/{component}-{arch}.sha256"),
        resolution,
    }
}

fn sample() -> Lockfile {
    let sha = Sha256::of(b"x");
    Lockfile::new(
        Blake3::of(b"inputs"),
        vec![
            entry(
                "runc",
                "arm64",
                Resolution::Resolved {
                    sha256: sha,
                    size: Some(3),
                },
            ),
            entry(
                "kube-proxy",
                "amd64",
                Resolution::Unresolved {
                    reason: "not \"published\"".into(),
                },
            ),
            entry(
                "runc",
                "amd64",
                Resolution::Resolved {
                    sha256: sha,
                    size: None,
                },
            ),
        ],
    )
}

#[test]
fn write_then_read_round_trips_and_sorts() {
    let lock = sample();
    let text = lock.to_text();
    let back = Lockfile::parse(&SourceFile::new(Path::new("x.lock"), text.clone())).expect("parse");
    assert_eq!(back, lock);
    assert_eq!(back.to_text(), text, "the writer is stable");
    let order: Vec<String> = back.artifacts.iter().map(LockEntry::label).collect();
    assert_eq!(
        order,
        vec![
            "kube-proxy 1.0.0 (amd64)",
            "runc 1.0.0 (amd64)",
            "runc 1.0.0 (arm64)"
        ]
    );
}

#[test]
fn any_edit_changes_the_lock_id() {
    let text = sample().to_text();
    for (from, to) in [
        ("size = 3", "size = 4"),
        ("1.0.0", "1.0.1"),
        ("'not \"published\"'", "'published'"),
    ] {
        let edited = text.replacen(from, to, 1);
        assert_ne!(edited, text, "{from}");
        let r = Lockfile::parse(&SourceFile::new(Path::new("x.lock"), edited));
        assert!(matches!(r, Err(LockError::Edited { .. })), "{from}: {r:?}");
    }
    // Comments and blank lines are not content.
    let commented = text.replace("\n[[artifact]]", "\n# reviewed\n\n[[artifact]]");
    assert!(Lockfile::parse(&SourceFile::new(Path::new("x.lock"), commented)).is_ok());
}

#[test]
fn an_entry_is_resolved_or_unresolved_never_both() {
    let text = sample()
        .to_text()
        .replacen("sha256 = ", "unresolved = \"x\"\nsha256 = ", 1);
    let r = Lockfile::parse(&SourceFile::new(Path::new("x.lock"), text));
    assert!(matches!(r, Err(LockError::Syntax { .. })), "{r:?}");
}

#[test]
fn several_versions_of_a_component_and_the_control_plane_round_trip() {
    let mut newer = entry(
        "runc",
        "amd64",
        Resolution::Resolved {
            sha256: Sha256::of(b"y"),
            size: None,
        },
    );
    newer.version = "1.1.0".into();
    let mut lock = sample();
    lock.artifacts.push(newer);
    let lock = Lockfile::new(lock.manifest_hash, lock.artifacts)
        .with_kube_apiserver(Some("1.31.0".into()));
    let text = lock.to_text();
    assert!(text.contains("\nkube-apiserver = \"1.31.0\"\n"), "{text}");
    let back = Lockfile::parse(&SourceFile::new(Path::new("x.lock"), text)).expect("parse");
    assert_eq!(back, lock);
    let runc = ComponentName::new("runc").expect("name");
    let amd64 = Arch::new("amd64").expect("arch");
    assert!(back.entry(&runc, "1.0.0", &amd64).is_some());
    assert!(back.entry(&runc, "1.1.0", &amd64).is_some());
    assert!(back.entry(&runc, "1.2.0", &amd64).is_none());
}

#[test]
fn a_lockfile_without_a_control_plane_keeps_its_lock_id() {
    // Written before `kube-apiserver` existed: read as it is, its lock-id unchanged.
    let lock = sample();
    let text = lock.to_text();
    assert!(!text.contains("kube-apiserver"));
    let back = Lockfile::parse(&SourceFile::new(Path::new("x.lock"), text)).expect("parse");
    assert_eq!(back.kube_apiserver, None);
    assert_eq!(back.lock_id(), lock.lock_id());
    // Recording one changes the lock-id (and `lock --check` calls the lock stale).
    assert_ne!(
        lock.clone()
            .with_kube_apiserver(Some("1.31.0".into()))
            .lock_id(),
        lock.lock_id()
    );
}
