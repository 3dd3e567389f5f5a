//! nodeforge: a content-addressed, reproducible builder of Kubernetes node images.
//!
//! Data flows one way: manifest → lock → store → (render → image → generations).
//!
//! | module       | owns                                                             |
//! |--------------|------------------------------------------------------------------|
//! | `manifest`   | `manifests/*.toml`: schema, validation, component defaults (data) |
//! | `lock`       | `lockfiles/*.lock`: model, canonical writer/reader, staleness     |
//! | `checksum`   | upstream's published checksum files, all three shapes             |
//! | `fetch`      | HTTP and `file://` downloads, mirrors, retries, progress          |
//! | `store`      | `out/store/`: content-addressed objects, the sha256 index, locks  |
//! | `ops`        | orchestration of the commands; the only module combining others  |
//! | `cli`        | clap, human and `--json` output, exit codes                      |

pub mod checksum;
pub mod cli;
pub mod extract;
pub mod fetch;
pub mod fsutil;
pub mod generations;
pub mod hash;
pub mod image;
pub mod lock;
pub mod manifest;
pub mod ops;
pub mod render;
pub mod secrets;
pub mod source;
pub mod standin;
pub mod store;
#[cfg(test)]
mod test_tools;
