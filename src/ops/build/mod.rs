//! From manifest to node images: lock, fetch, build, plan, flatten, boot, the component list,
//! the artifact mirror, a new project (init) and each node's secrets (checked, and delivered at boot).

mod boot;
mod components;
mod fetch;
mod flatten;
mod images;
mod init;
mod lock;
mod mirror;
mod plan;
mod secrets;

pub use boot::{boot_plan, BootDisk, BootPlan};
pub use components::{components, demo_mirror};
pub use fetch::{fetch, ArtifactStatus, FetchOptions, FetchReport, FetchedArtifact};
pub use flatten::{flatten, FlattenReport};
pub use images::{build, BuildOptions, BuildReport, LayerBuild, NodeBuild, NodeStatus};
pub use init::{init, InitReport};
pub use lock::{lock, EntryStatus, LockOptions, LockReport, LockedEntry};
pub use mirror::{export_mirror, ExportReport};
pub use plan::{plan, NodeChange, PlanOptions, PlanReport, PlanStep, StepKind, VersionMove};
pub use secrets::{
    boot_plan_with_secrets, parse_margin, secrets_check, secrets_user_data, SecretsCheckOptions,
    SecretsCheckReport, SecretsOptions, UserDataOptions, UserDataReport,
};
