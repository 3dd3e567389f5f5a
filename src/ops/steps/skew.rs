//! The Kubernetes version skew check `lock`, `build` and `plan` share.

use crate::lock::Lockfile;
use crate::manifest::Manifest;
use crate::ops::error::Error;
use crate::skew;

/// The skew policy on `manifest`, against the control plane version `lock` recorded: an error
/// naming every broken rule, or (with `allow`) a warning for each.
pub(crate) fn check_skew(
    manifest: &Manifest,
    lock: Option<&Lockfile>,
    allow: bool,
) -> Result<Vec<String>, Error> {
    let violations = skew::check(manifest, lock.and_then(|l| l.kube_apiserver.as_deref()));
    if violations.is_empty() {
        return Ok(Vec::new());
    }
    if !allow {
        return Err(Error::Skew { violations });
    }
    Ok(violations
        .into_iter()
        .map(|v| format!("version skew allowed by --allow-skew: {}", v.message))
        .collect())
}
