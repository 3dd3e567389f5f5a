//! OCI registries and layouts: push, pull, export, import, the artifact mirror's push, login and
//! logout, listing a repository's node images (tags), and the attestations that travel with an image (`referrers`).

mod export;
mod import;
mod login;
mod logout;
mod mirror_push;
mod pull;
mod push;
mod referrers;
mod tags;

pub use export::{export, ExportOptions, LayoutExportReport};
pub use import::{import, ImportOptions, ImportReport};
pub use login::{login, LoginOptions, LoginReport};
pub use logout::{logout, LogoutReport};
pub use mirror_push::{mirror_push, MirrorPushOptions, MirrorPushReport};
pub use pull::{pull, PullOptions, PullReport};
pub use push::{push, BlobReport, BlobStatus, NodePush, PushOptions, PushReport};
pub use referrers::{AttestationPush, FileStatus, PulledAttestations, PulledFile, ReferrersVia};
pub use tags::{tags, TaggedImage, TagsOptions, TagsReport};
