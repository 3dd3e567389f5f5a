//! A node's history: listing, showing, diffing and rolling back generations; gc of what no
//! generation keeps; verify of what is on disk, and repair of what verify finds damaged.

mod gc;
mod log;
mod repair;
mod verify;

pub use gc::{gc, GcOptions, GcReport, KeptBy, KeptCount, KeptGeneration, KeptReasons};
pub use log::{
    diff, list, nested_outputs, rollback, rollback_all, rollback_group, show, DiffReport,
    NestedOut, NodeHistory, Rollback, RollbackAll, ShowReport, Skipped,
};
pub use repair::{repair, RepairReport, Repaired};
pub use verify::{verify, ImageTrust, VerifyOptions, VerifyReport};
