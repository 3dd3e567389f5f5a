//! The corpus of broken inputs (`tests/corpus/`), one test per fixture: every broken manifest,
//! lockfile and template gives one clear error naming the file (and the line, where there is
//! one), exit 1, never a panic or a backtrace, and writes nothing; and its whole stderr is the
//! one recorded beside it (`bad-cidr.toml` → `bad-cidr.stderr`, a template case `x/` →
//! `x.stderr`), with the repository, temp directory and server address filtered.
//!
//! `NODEFORGE_BLESS=1 cargo test --test it corpus` rewrites the `.stderr` files from the current
//! output; review them with `git diff tests/corpus`. A new fixture needs a line in the lists at
//! the end (`every_fixture_has_a_test` says which).

use std::path::{Path, PathBuf};

use crate::{copy_tree, run_in, Run, TestContext, REPO};

fn corpus(kind: &str) -> PathBuf {
    Path::new(REPO).join("tests/corpus").join(kind)
}

/// The first line is `error: <file>[:line[:col]]: …`, with nothing of a panic anywhere.
#[track_caller]
fn clear_error(r: &Run, file: &str, needs_line: bool, case: &str) {
    assert_eq!(r.code, 1, "{case}: exit code {}\n{}", r.code, r.stderr);
    assert!(
        !r.stderr.contains("panicked") && !r.stderr.contains("RUST_BACKTRACE"),
        "{case}: {}",
        r.stderr
    );
    let first = r.stderr.lines().next().unwrap_or_default();
    let at = first
        .find(file)
        .unwrap_or_else(|| panic!("{case}: the error does not name {file}: {first}"));
    assert!(first.starts_with("error: "), "{case}: {first}");
    if needs_line {
        let after = &first[at + file.len()..];
        assert!(
            after.starts_with(':') && after[1..].starts_with(|c: char| c.is_ascii_digit()),
            "{case}: no line number: {first}"
        );
    }
}

/// What a fixture's runs printed on stderr, one section per command, as `.stderr` files hold it.
#[derive(Default)]
struct Transcript {
    text: String,
    /// (what, placeholder): replaced in every section, longest first.
    filters: Vec<(String, &'static str)>,
}

impl Transcript {
    fn new(filters: &[(&Path, &'static str)]) -> Self {
        let mut filters: Vec<(String, &'static str)> = filters
            .iter()
            .map(|(p, name)| (p.to_string_lossy().into_owned(), *name))
            .collect();
        filters.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Self {
            text: String::new(),
            filters,
        }
    }

    fn filter(&mut self, what: &str, placeholder: &'static str) {
        self.filters.push((what.to_string(), placeholder));
        self.filters
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    fn add(&mut self, command: &[&str], r: &Run) {
        let mut stderr = r.stderr.clone();
        for (what, placeholder) in &self.filters {
            stderr = stderr.replace(what.as_str(), placeholder);
        }
        let command: Vec<String> = command
            .iter()
            .map(|a| {
                let mut a = (*a).to_string();
                for (what, placeholder) in &self.filters {
                    a = a.replace(what.as_str(), placeholder);
                }
                a
            })
            .collect();
        self.text.push_str(&format!(
            "$ nodeforge {}\n[exit {}]\n{stderr}",
            command.join(" "),
            r.code
        ));
        if !self.text.ends_with('\n') {
            self.text.push('\n');
        }
    }

    /// Compare with (or, under `NODEFORGE_BLESS=1`, write) the expected stderr file.
    #[track_caller]
    fn check(&self, expected: &Path) {
        if std::env::var_os("NODEFORGE_BLESS").is_some_and(|v| v == "1") {
            std::fs::write(expected, &self.text).unwrap();
            return;
        }
        let Ok(want) = std::fs::read_to_string(expected) else {
            panic!(
                "{} is missing; NODEFORGE_BLESS=1 cargo test --test it corpus writes it. The output:\n{}",
                expected.display(),
                self.text
            );
        };
        if want != self.text {
            let diff = similar::TextDiff::from_lines(&want, &self.text)
                .unified_diff()
                .header("expected", "actual")
                .to_string();
            panic!(
                "stderr differs from {} (NODEFORGE_BLESS=1 to accept the new output):\n{diff}",
                expected.display()
            );
        }
    }
}

/// `lock --check` and `lock --offline` on a broken manifest: a clear error, no lockfile.
fn broken_manifest(name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let f = corpus("manifests").join(name);
    let mut t = Transcript::new(&[(tmp.path(), "[TMP]"), (Path::new(REPO), "[REPO]")]);
    for cmd in [&["lock", "--check"][..], &["lock", "--offline"][..]] {
        let mut args = cmd.to_vec();
        args.extend(["--manifest", f.to_str().unwrap(), "--lockfile", "x.lock"]);
        let r = run_in(tmp.path(), &args);
        clear_error(&r, name, true, name);
        t.add(&args, &r);
    }
    assert!(
        !tmp.path().join("x.lock").exists(),
        "{name}: a lockfile was written"
    );
    t.check(&f.with_extension("stderr"));
}

/// Every command that reads the lockfile, on a broken one: a clear error (verify: FAIL lines
/// naming it), and the lockfile left as it was.
fn broken_lockfile(name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = format!("{REPO}/manifests/kubenet.toml");
    let f = corpus("lockfiles").join(name);
    let before = std::fs::read(&f).unwrap();
    let mut t = Transcript::new(&[(tmp.path(), "[TMP]"), (Path::new(REPO), "[REPO]")]);
    for cmd in [
        &["lock", "--check"][..],
        &["fetch", "--offline"][..],
        &["build", "--offline"][..],
        &["verify"][..],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--manifest", &manifest, "--lockfile", f.to_str().unwrap()]);
        let r = run_in(tmp.path(), &args);
        if cmd[0] == "verify" {
            // verify reports every failure as a FAIL line, naming the file.
            assert_eq!(r.code, 1, "{name}: {}", r.stderr);
            assert!(
                r.stderr.contains(name) && !r.stderr.contains("panicked"),
                "{name}: {}",
                r.stderr
            );
        } else {
            clear_error(
                &r,
                name,
                !name.starts_with("edited-"),
                &format!("{name} ({})", cmd[0]),
            );
        }
        t.add(&args, &r);
    }
    assert_eq!(std::fs::read(&f).unwrap(), before, "{name} was rewritten");
    t.check(&f.with_extension("stderr"));
}

/// A broken template tree (the pristine one with the case's files laid over it): `build`
/// names the broken template and writes no image.
fn broken_template(name: &str) {
    let case = corpus("templates").join(name);
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["fetch"]).ok();
    copy_tree(&case, &ctx.path().join("manifests/kubenet"));
    let r = ctx.run(&["build", "--offline"]);
    // The file named is the broken template (or, for a forbidden install path, the path).
    let mut broken = String::new();
    let mut stack = vec![case.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                broken = p.file_name().unwrap().to_string_lossy().into_owned();
            }
        }
    }
    let needs_line = !matches!(
        name,
        "private-key-content"
            | "private-key-name"
            | "kubeconfig-name"
            | "not-utf8"
            | "bin-directory"
    );
    clear_error(&r, &broken, needs_line, name);
    assert!(
        !ctx.path().join("out/images").exists(),
        "{name}: an image was written"
    );
    let mut t = Transcript::new(&[(ctx.path(), "[TMP]"), (Path::new(REPO), "[REPO]")]);
    t.filter(&ctx.server.url(), "[SERVER]");
    t.add(&["build", "--offline"], &r);
    t.check(&corpus("templates").join(format!("{name}.stderr")));
}

/// One `#[test]` per fixture, and the list of fixtures that `every_fixture_has_a_test` checks.
macro_rules! corpus {
    ($kind:ident, $check:ident, $($test:ident => $file:literal,)*) => {
        mod $kind {
            pub const FIXTURES: &[&str] = &[$($file),*];
            $(
                #[test]
                fn $test() {
                    super::$check($file);
                }
            )*
        }
    };
}

/// Every fixture has a test, and every `.stderr` a fixture: a new file in `tests/corpus/` cannot
/// go untested, nor a removed one leave its expectation behind.
#[test]
fn every_fixture_has_a_test() {
    for (kind, listed) in [
        ("manifests", manifests::FIXTURES),
        ("lockfiles", lockfiles::FIXTURES),
        ("templates", templates::FIXTURES),
    ] {
        let mut fixtures = Vec::new();
        let mut expected = Vec::new();
        for e in std::fs::read_dir(corpus(kind)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            match name.strip_suffix(".stderr") {
                Some(stem) => expected.push(stem.to_string()),
                None => fixtures.push(name),
            }
        }
        fixtures.sort();
        let mut listed: Vec<String> = listed.iter().map(|s| (*s).to_string()).collect();
        listed.sort();
        assert_eq!(
            fixtures, listed,
            "tests/corpus/{kind}: the fixtures and the list in corpus.rs differ"
        );
        let stems: Vec<String> = fixtures
            .iter()
            .map(|f| {
                Path::new(f)
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        for stem in expected {
            assert!(
                stems.contains(&stem),
                "tests/corpus/{kind}/{stem}.stderr has no fixture"
            );
        }
    }
}

corpus! { manifests, broken_manifest,
    bad_arch => "bad-arch.toml",
    bad_cidr => "bad-cidr.toml",
    bad_domain => "bad-domain.toml",
    bad_node_name => "bad-node-name.toml",
    binary_garbage => "binary-garbage.toml",
    bom_prefixed => "bom-prefixed.toml",
    component_incomplete => "component-incomplete.toml",
    component_unknown_version_key => "component-unknown-version-key.toml",
    crlf_with_error => "crlf-with-error.toml",
    cyclic_version_reference => "cyclic-version-reference.toml",
    dns_outside_services => "dns-outside-services.toml",
    duplicate_architecture => "duplicate-architecture.toml",
    duplicate_ip => "duplicate-ip.toml",
    duplicate_key => "duplicate-key.toml",
    duplicate_node_name => "duplicate-node-name.toml",
    duplicate_table => "duplicate-table.toml",
    duplicate_vmid => "duplicate-vmid.toml",
    empty_file => "empty-file.toml",
    host_bits_cidr => "host-bits-cidr.toml",
    huge_cidr_prefix => "huge-cidr-prefix.toml",
    huge_integer_overflow => "huge-integer-overflow.toml",
    huge_negative_vmid => "huge-negative-vmid.toml",
    huge_string_name => "huge-string-name.toml",
    huge_vmid => "huge-vmid.toml",
    install_climbing_source => "install-climbing-source.toml",
    install_pattern_to_file => "install-pattern-to-file.toml",
    install_relative_target => "install-relative-target.toml",
    missing_cluster => "missing-cluster.toml",
    missing_node_role => "missing-node-role.toml",
    missing_versions => "missing-versions.toml",
    no_architectures => "no-architectures.toml",
    no_nodes => "no-nodes.toml",
    node_arch_not_listed => "node-arch-not-listed.toml",
    node_cidr_outside_pods => "node-cidr-outside-pods.toml",
    node_ip_in_pod_range => "node-ip-in-pod-range.toml",
    not_a_version => "not-a-version.toml",
    not_utf8 => "not-utf8.toml",
    only_comments => "only-comments.toml",
    overlapping_node_cidrs => "overlapping-node-cidrs.toml",
    overlapping_service_range => "overlapping-service-range.toml",
    path_node_name => "path-node-name.toml",
    secret_key_of_unknown => "secret-key-of-unknown.toml",
    secret_key_readable_by_group => "secret-key-readable-by-group.toml",
    secret_mode_integer => "secret-mode-integer.toml",
    secret_name_too_long => "secret-name-too-long.toml",
    secret_to_under_usr => "secret-to-under-usr.toml",
    secret_unknown_kind => "secret-unknown-kind.toml",
    syntax_bare_value => "syntax-bare-value.toml",
    syntax_garbage_line => "syntax-garbage-line.toml",
    syntax_unclosed_string => "syntax-unclosed-string.toml",
    syntax_unclosed_table => "syntax-unclosed-table.toml",
    template_recursion => "template-recursion.toml",
    template_syntax => "template-syntax.toml",
    template_undefined_variable => "template-undefined-variable.toml",
    templates_dir_escapes => "templates-dir-escapes.toml",
    unknown_component_key => "unknown-component-key.toml",
    unknown_node_key => "unknown-node-key.toml",
    unknown_top_key => "unknown-top-key.toml",
    url_bad_scheme => "url-bad-scheme.toml",
    url_not_a_url => "url-not-a-url.toml",
    url_template_unknown_var => "url-template-unknown-var.toml",
    version_two_parts => "version-two-parts.toml",
    version_with_v => "version-with-v.toml",
    wrong_type_architectures => "wrong-type-architectures.toml",
    wrong_type_install => "wrong-type-install.toml",
    wrong_type_nodes => "wrong-type-nodes.toml",
    wrong_type_versions => "wrong-type-versions.toml",
    wrong_type_vmid => "wrong-type-vmid.toml",
}

corpus! { lockfiles, broken_lockfile,
    artifact_not_a_table => "artifact-not-a-table.lock",
    bad_component_name => "bad-component-name.lock",
    bad_sha256 => "bad-sha256.lock",
    both_sha256_and_unresolved => "both-sha256-and-unresolved.lock",
    duplicate_entry => "duplicate-entry.lock",
    edited_sha256 => "edited-sha256.lock",
    edited_url => "edited-url.lock",
    empty => "empty.lock",
    future_version => "future-version.lock",
    huge_size => "huge-size.lock",
    lock_id_not_blake3 => "lock-id-not-blake3.lock",
    lock_id_short => "lock-id-short.lock",
    missing_lock_id => "missing-lock-id.lock",
    missing_version => "missing-version.lock",
    negative_size => "negative-size.lock",
    neither_sha256_nor_unresolved => "neither-sha256-nor-unresolved.lock",
    not_utf8 => "not-utf8.lock",
    syntax_error => "syntax-error.lock",
    truncated => "truncated.lock",
    unknown_key => "unknown-key.lock",
    version_as_string => "version-as-string.lock",
    wrong_type_size => "wrong-type-size.lock",
}

corpus! { templates, broken_template,
    bin_directory => "bin-directory",
    endless_loop => "endless-loop",
    include_self => "include-self",
    invalid_json => "invalid-json",
    invalid_toml => "invalid-toml",
    invalid_yaml => "invalid-yaml",
    json_empty_value => "json-empty-value",
    kubeconfig_name => "kubeconfig-name",
    not_utf8 => "not-utf8",
    private_key_content => "private-key-content",
    private_key_name => "private-key-name",
    syntax_bad_expression => "syntax-bad-expression",
    syntax_unclosed_block => "syntax-unclosed-block",
    toml_duplicate_table => "toml-duplicate-table",
    undefined_attribute_chain => "undefined-attribute-chain",
    undefined_variable => "undefined-variable",
    unit_empty_execstart => "unit-empty-execstart",
    unit_not_key_value => "unit-not-key-value",
    yaml_duplicate_key => "yaml-duplicate-key",
    yaml_missing_value => "yaml-missing-value",
}
