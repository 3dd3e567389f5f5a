//! Progress of long operations (downloads, uploads, writing images, checking the store), told
//! to a [`Reporter`] the caller provides: the library says what starts, how far it got and when
//! it ends, and draws nothing itself. The binary's reporter draws bars on a terminal (cli
//! decides once whether to); tests and `--json` runs report to nobody. Modelled on uv's
//! `uv-distribution/src/reporter.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a task counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes, out of a known total.
    Bytes,
    /// Things (artifacts, nodes, objects), out of a known total.
    Items,
    /// Things, with no total known in advance.
    Open,
}

/// A task as it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// A short word shown first (`pull`, `fetch`, a component's name).
    pub prefix: String,
    pub unit: Unit,
    /// The total, in `unit`s (not used for [`Unit::Open`]).
    pub len: u64,
    /// What it works on, shown after the counts (`worker1`, `artifacts`).
    pub message: String,
}

/// Whoever shows progress. Called from any thread; ids are the reporter's own.
pub trait Reporter: Send + Sync {
    /// Task `task` starts, as a part of task `within` if given (one download of a fetch); its id.
    fn on_start(&self, task: &Task, within: Option<usize>) -> usize;
    /// Task `id` got to `position` (bytes or things done).
    fn on_progress(&self, id: usize, position: u64);
    /// Task `id` works on something else now.
    fn on_message(&self, id: usize, message: &str);
    /// Task `id` is over (done or failed): show it no more.
    fn on_finish(&self, id: usize);
    /// Run `say`, which writes a line to stderr (a retry's note), without drawing over it.
    fn on_note(&self, say: &mut dyn FnMut()) {
        say();
    }
}

/// Shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn on_start(&self, _task: &Task, _within: Option<usize>) -> usize {
        0
    }
    fn on_progress(&self, _id: usize, _position: u64) {}
    fn on_message(&self, _id: usize, _message: &str) {}
    fn on_finish(&self, _id: usize) {}
}

/// Where an operation reports its progress (an option of the operation): nowhere by default.
#[derive(Clone)]
pub struct Reporting(Arc<dyn Reporter>);

impl Default for Reporting {
    fn default() -> Self {
        Self(Arc::new(Silent))
    }
}

impl std::fmt::Debug for Reporting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reporting(..)")
    }
}

impl Reporting {
    pub fn new(reporter: Arc<dyn Reporter>) -> Self {
        Self(reporter)
    }

    /// Start a task of `len` `unit`s named by `prefix`.
    pub fn start(&self, unit: Unit, len: u64, prefix: &str) -> Progress {
        self.start_task(
            Task {
                prefix: prefix.to_string(),
                unit,
                len,
                message: String::new(),
            },
            None,
        )
    }

    /// Start `task`, as a part of `within` if given.
    pub fn start_task(&self, task: Task, within: Option<&Progress>) -> Progress {
        let id = self.0.on_start(&task, within.map(|p| p.id));
        Progress {
            reporter: self.0.clone(),
            id,
            position: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// One task's progress: clones are the same task (shared between threads).
#[derive(Clone)]
pub struct Progress {
    reporter: Arc<dyn Reporter>,
    id: usize,
    position: Arc<AtomicU64>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("id", &self.id)
            .field("position", &self.position())
            .finish()
    }
}

impl Progress {
    /// A task nobody is shown.
    pub fn hidden() -> Self {
        Reporting::default().start(Unit::Open, 0, "")
    }

    /// `n` more done.
    pub fn inc(&self, n: u64) {
        let at = self
            .position
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        self.reporter.on_progress(self.id, at);
    }

    /// `position` done (a transfer that starts again, or resumes).
    pub fn set_position(&self, position: u64) {
        self.position.store(position, Ordering::Relaxed);
        self.reporter.on_progress(self.id, position);
    }

    pub fn position(&self) -> u64 {
        self.position.load(Ordering::Relaxed)
    }

    pub fn set_message(&self, message: &str) {
        self.reporter.on_message(self.id, message);
    }

    /// Run `say` (it writes a line to stderr) without the progress drawn over it.
    pub fn suspend(&self, mut say: impl FnMut()) {
        self.reporter.on_note(&mut say);
    }

    /// The task is over.
    pub fn finish(&self) {
        self.reporter.on_finish(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Reporter for Log {
        fn on_start(&self, task: &Task, within: Option<usize>) -> usize {
            let mut l = self.0.lock().expect("log");
            l.push(format!("start {} {} {within:?}", task.prefix, task.len));
            l.len()
        }
        fn on_progress(&self, id: usize, position: u64) {
            self.0
                .lock()
                .expect("log")
                .push(format!("{id} at {position}"));
        }
        fn on_message(&self, id: usize, message: &str) {
            self.0
                .lock()
                .expect("log")
                .push(format!("{id} on {message}"));
        }
        fn on_finish(&self, id: usize) {
            self.0.lock().expect("log").push(format!("{id} done"));
        }
    }

    #[test]
    fn a_task_reports_its_position_to_its_reporter() {
        let log = Arc::new(Log::default());
        let r = Reporting::new(log.clone());
        let total = r.start(Unit::Items, 2, "fetch");
        let one = r.start_task(
            Task {
                prefix: "a".into(),
                unit: Unit::Bytes,
                len: 10,
                message: String::new(),
            },
            Some(&total),
        );
        one.inc(4);
        one.clone().inc(6);
        one.set_position(3);
        one.set_message("b");
        one.finish();
        total.inc(1);
        assert_eq!(one.position(), 3);
        assert_eq!(
            *log.0.lock().expect("log"),
            [
                "start fetch 2 None",
                "start a 10 Some(1)",
                "2 at 4",
                "2 at 10",
                "2 at 3",
                "2 on b",
                "2 done",
                "1 at 1"
            ]
        );
    }
}
