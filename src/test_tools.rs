//! For unit tests that run an external tool (veritysetup, fsck.erofs, dump.erofs) to check what
//! nodeforge writes: whether the tool is there, and what to do when it is not.

/// Whether `tool` (from the Debian package `package`) is on `PATH`. When it is missing the
/// test is skipped with a note on stderr — except under `CI=true`, where it fails: CI installs
/// every tool (`.ci/run`) and must run every test. Like cargo's `#[cargo_test(requires = …)]`.
pub(crate) fn requires(tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()));
    if !found {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{tool} is not installed (Debian package {package}), and under CI=true every test runs"
        );
        eprintln!("skipped: this test needs {tool} (Debian package {package})");
    }
    found
}
