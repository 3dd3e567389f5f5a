//! Orchestration of the commands. Every command is one function here taking an options struct
//! and returning a report; only this module combines manifest, lock, fetch and store. It knows
//! nothing of clap or of how reports are printed.
//!
//! The commands live in wings by what they serve: `build/` (from manifest to node images),
//! `history/` (generations, gc, verify), `registry/` (OCI registries and layouts) and `attest/`
//! (keys, signing, SBOMs, provenance). What several commands share is in `steps/`; a wing
//! imports `steps` and `error`, never another wing. This file only re-exports.

mod attest;
mod build;
mod error;
mod history;
mod registry;
mod steps;

pub use build::{
    boot_plan, build, components, demo_mirror, export_mirror, fetch, flatten, init, lock, plan,
    ArtifactStatus, BootDisk, BootPlan, BuildOptions, BuildReport, EntryStatus, ExportReport,
    FetchOptions, FetchReport, FetchedArtifact, FlattenReport, InitReport, LayerBuild, LockOptions,
    LockReport, LockedEntry, NodeBuild, NodeChange, NodeStatus, PlanOptions, PlanReport, PlanStep,
    StepKind, VersionMove,
};
pub use build::{
    boot_plan_with_secrets, parse_margin, secrets_check, secrets_user_data, SecretsCheckOptions,
    SecretsCheckReport, SecretsOptions, UserDataOptions, UserDataReport,
};
pub use error::{failure_problems, ArtifactFailure, Error, FailureCause, Problem, ResolveError};
pub use history::{
    diff, gc, list, nested_outputs, repair, rollback, rollback_all, rollback_group, show, verify,
    DiffReport, GcOptions, GcReport, ImageTrust, KeptBy, KeptCount, KeptGeneration, KeptReasons,
    NestedOut, NodeHistory, RepairReport, Repaired, Rollback, RollbackAll, ShowReport, Skipped,
    VerifyOptions, VerifyReport,
};
pub use steps::{
    check_lock, default_lockfile, find_image, resolve_image, suggest, FlatFormat, LockCheck,
};
// OCI registries and layouts.
pub use registry::{
    export, import, login, logout, mirror_push, pull, push, tags, AttestationPush, BlobReport,
    BlobStatus, ExportOptions, FileStatus, ImportOptions, ImportReport, LayoutExportReport,
    LoginOptions, LoginReport, LogoutReport, MirrorPushOptions, MirrorPushReport, NodePush,
    PullOptions, PullReport, PulledAttestations, PulledFile, PushOptions, PushReport, ReferrersVia,
    TaggedImage, TagsOptions, TagsReport,
};
// Supply chain (issue 15). `image_signatures` and `attestation_files` are what push/pull need.
pub use attest::{
    key_generate, provenance, sbom, sign, KeyGenOptions, KeyReport, SbomOptions, SignOptions,
    SignReport, SignedImage,
};
pub use steps::{attestation_files, image_signatures, SignatureStatus};
