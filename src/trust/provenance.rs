//! SLSA Provenance v1 (<https://slsa.dev/provenance/v1>) of a node image, as an in-toto
//! Statement v1: the subjects are the image's files with their sha256; the build definition
//! records the node, the manifest's input hash and the lock-id; the resolved dependencies are the
//! locked artifacts the image installs (URL and upstream's sha256). No time is recorded: the
//! statement is a function of the image and its inputs.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{Statement, Subject, STATEMENT_TYPE};
use crate::image::{ImageManifest, Provenance};

/// SLSA Provenance v1's predicate type.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";

/// The build type: what `externalParameters` and `internalParameters` mean.
pub const BUILD_TYPE: &str = "https://nodeforge.dev/build/node-image/v1";

/// What the provenance of an image records besides the image itself.
#[derive(Debug, Clone)]
pub struct BuildInputs {
    /// The image's files (name in its directory → sha256), the statement's subjects.
    pub files: BTreeMap<String, String>,
    /// The lock-id of the lockfile the image was built from (from its generation).
    pub lock_id: Option<String>,
    /// The manifest's input hash that lockfile records, when the lockfile at hand is that one.
    pub manifest_hash: Option<String>,
    pub tool_version: String,
}

pub fn statement(m: &ImageManifest, inputs: &BuildInputs) -> Statement<Value> {
    let subject = inputs
        .files
        .iter()
        .map(|(name, sha)| Subject::new(name, "sha256", sha))
        .collect();
    // Each locked artifact the image installs, once.
    let mut deps: BTreeMap<(String, String), Value> = BTreeMap::new();
    for p in m.provenance.values() {
        if let Provenance::Artifact {
            component,
            version,
            arch,
            url,
            sha256,
            ..
        } = p
        {
            deps.entry((url.clone(), sha256.clone()))
                .or_insert_with(|| {
                    json!({
                        "uri": url,
                        "digest": {"sha256": sha256},
                        "name": format!("{component} {version} ({arch})"),
                    })
                });
        }
    }
    let mut external = json!({
        "node": m.node,
        "arch": m.arch,
        "image": m.id,
    });
    if let Some(l) = &inputs.lock_id {
        external["lockId"] = json!(l);
    }
    if let Some(h) = &inputs.manifest_hash {
        external["manifestHash"] = json!(h);
    }
    Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject,
        predicate_type: SLSA_PROVENANCE_V1.into(),
        predicate: json!({
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {"nodeforgeVersion": inputs.tool_version},
                "resolvedDependencies": deps.into_values().collect::<Vec<_>>(),
            },
            "runDetails": {
                "builder": {
                    "id": format!("https://nodeforge.dev/builder/nodeforge@{}", inputs.tool_version),
                    "version": {"nodeforge": inputs.tool_version},
                },
                "metadata": {"invocationId": format!("image:{}", m.id)},
            },
        }),
    }
}
