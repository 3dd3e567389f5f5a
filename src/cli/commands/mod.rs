//! One file per command: its clap arguments, an `exec` that turns them into one `ops` call, and
//! its human output (`--json` prints the report instead).

pub mod build;
pub mod completions;
pub mod components;
pub mod demo_mirror;
pub mod diff;
pub mod fetch;
pub mod flatten;
pub mod gc;
pub mod init;
pub mod list;
pub mod lock;
pub mod mirror;
pub mod plan;
pub mod repair;
pub mod rollback;
pub mod secrets;
pub mod show;
pub mod verify;
// OCI registries and layouts.
pub mod export;
pub mod import;
pub mod login;
pub mod pull;
pub mod push;
pub mod tags;
// Supply chain (issue 15).
pub mod key;
pub mod provenance;
pub mod sbom;
pub mod sign;
