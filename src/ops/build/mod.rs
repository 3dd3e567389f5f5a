//! From manifest to node images: lock, fetch, build, plan, flatten, boot, the component list
//! and the artifact mirror.

mod boot;
mod components;
mod fetch;
mod flatten;
mod images;
mod lock;
mod mirror;
mod plan;

pub use boot::{boot_plan, BootDisk, BootPlan};
pub use components::{components, demo_mirror};
pub use fetch::{fetch, ArtifactStatus, FetchOptions, FetchReport, FetchedArtifact};
pub use flatten::{flatten, FlattenReport};
pub use images::{build, BuildOptions, BuildReport, LayerBuild, NodeBuild, NodeStatus};
pub use lock::{lock, EntryStatus, LockOptions, LockReport, LockedEntry};
pub use mirror::{export_mirror, ExportReport};
pub use plan::{plan, NodeChange, PlanOptions, PlanReport, PlanStep, StepKind, VersionMove};
