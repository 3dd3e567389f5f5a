//! What several commands share: opening the store, the lock check, rendering node images,
//! materializing layers and images, finding images and nodes, the skew check, and the
//! attestation files beside an image. Steps import nothing of the command wings.

pub(crate) mod attestations;
pub(crate) mod common;
pub(crate) mod images;
pub(crate) mod lockfile;
pub(crate) mod materialize;
pub(crate) mod nodes;
pub(crate) mod render;
pub(crate) mod skew;

pub use attestations::{attestation_files, image_signatures, SignatureStatus};
pub use common::default_lockfile;
pub(crate) use common::{open_store, open_store_exclusive, open_store_read_only, parallel_map};
pub use images::resolve_image;
pub use lockfile::{check_lock, LockCheck};
pub use materialize::{find_image, FlatFormat};
pub use nodes::suggest;
