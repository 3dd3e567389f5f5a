//! nodeforge: a content-addressed, reproducible builder of Kubernetes node images.
//!
//! Data flows one way: manifest → lock → store → (render → image → generations).
//!
//! | module        | owns                                                                      |
//! |---------------|---------------------------------------------------------------------------|
//! | `manifest`    | `manifests/*.toml`: schema, validation, component defaults (data)          |
//! | `lock`        | `lockfiles/*.lock`: model, canonical writer/reader, staleness              |
//! | `checksum`    | upstream's published checksum files, all three shapes                      |
//! | `source`      | where an artifact may come from: upstream and mirrors, in order            |
//! | `http`        | the HTTP client, the one retry loop and its backoff, errors in one line    |
//! | `fetch`       | HTTP and `file://` downloads, mirrors, retries, progress                   |
//! | `store`       | `out/store/`: content-addressed objects, the sha256 index, locks           |
//! | `extract`     | what an artifact installs, streamed out of its archive once into the store |
//! | `secrets`     | finding private keys in bytes and streams, in any framing                  |
//! | `credentials` | each node's secret files: checks, fw_cfg and cloud-init delivery        |
//! | `render`      | templates + node variables → validated file bytes and enable links         |
//! | `image`       | entries, layers and their roles, ids, records; EROFS, dm-verity, tar writers |
//! | `trust`       | Ed25519 keys, DSSE envelopes, in-toto statements, SLSA provenance        |
//! | `sbom`        | SPDX 2.3 and CycloneDX 1.5 SBOMs of an image                              |
//! | `layout`      | `out/`'s tree: the only code that knows where layers, images, nodes live   |
//! | `oci`         | node images as OCI artifacts; registry client, auth, references           |
//! | `generations` | per-node history, the `current` pointer, rollback targets                  |
//! | `hash`        | typed digests (sha256, blake3), strict parsing                             |
//! | `fsutil`      | atomic writes, temp directories committed whole, directory fsyncs          |
//! | `skew`        | the Kubernetes version skew policy, checked on a manifest's node versions  |
//! | `standin`     | stand-in artifacts in upstream's shapes, for the demo and tests            |
//! | `project`     | the files of a new project (`init`): the seed's manifest and templates     |
//! | `ops`         | orchestration of the commands; the only module combining others           |
//! | `progress`    | what long operations report as they go (`Reporter`); cli draws it          |
//! | `cli`         | clap, human and `--json` output, exit codes                                |

pub mod checksum;
pub mod cli;
pub mod credentials;
pub mod extract;
pub mod fetch;
pub mod fsutil;
pub mod generations;
pub mod hash;
pub mod http;
pub mod image;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod oci;
pub mod ops;
pub mod progress;
pub mod project;
pub mod render;
pub mod sbom;
pub mod secrets;
pub mod skew;
pub mod source;
pub mod standin;
pub mod store;
pub mod term;
#[cfg(test)]
mod test_tools;
pub mod trust;
pub mod verified;
