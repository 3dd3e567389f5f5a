//! The library's progress ([`crate::progress::Reporter`]) drawn as indicatif bars on stderr:
//! the one place that draws them. Whether to draw is decided once, in [`reporting`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Reporter, Reporting, Task, Unit};

/// Where the library reports progress: bars on stderr when it is a terminal and the output is
/// not JSON, else nowhere.
pub fn reporting(json: bool) -> Reporting {
    use std::io::IsTerminal;
    if !json && std::io::stderr().is_terminal() {
        Reporting::new(Arc::new(Bars::new()))
    } else {
        Reporting::default()
    }
}

/// Every task as a bar, in one `MultiProgress` (a part drawn above the task it is part of).
struct Bars {
    multi: MultiProgress,
    bars: Mutex<BTreeMap<usize, ProgressBar>>,
    next: AtomicUsize,
}

impl Bars {
    fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(BTreeMap::new()),
            next: AtomicUsize::new(1),
        }
    }

    fn with(&self, id: usize, f: impl FnOnce(&ProgressBar)) {
        if let Some(b) = self.bars.lock().ok().and_then(|m| m.get(&id).cloned()) {
            f(&b);
        }
    }
}

impl Reporter for Bars {
    fn on_start(&self, task: &Task, within: Option<usize>) -> usize {
        let template = match task.unit {
            Unit::Items => "{prefix:>12} [{bar:30}] {pos}/{len} {msg}",
            Unit::Bytes => "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            Unit::Open => "{prefix:>12} {spinner} {pos} {msg}",
        };
        let bar = if task.unit == Unit::Open {
            ProgressBar::no_length()
        } else {
            ProgressBar::new(task.len)
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(task.prefix.clone());
        bar.set_message(task.message.clone());
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let Ok(mut bars) = self.bars.lock() else {
            return id;
        };
        let bar = match within.and_then(|w| bars.get(&w)) {
            Some(parent) => self.multi.insert_before(parent, bar),
            None => self.multi.add(bar),
        };
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bars.insert(id, bar);
        id
    }

    fn on_progress(&self, id: usize, position: u64) {
        self.with(id, |b| b.set_position(position));
    }

    fn on_message(&self, id: usize, message: &str) {
        self.with(id, |b| b.set_message(message.to_string()));
    }

    fn on_finish(&self, id: usize) {
        let bar = self.bars.lock().ok().and_then(|mut m| m.remove(&id));
        if let Some(b) = bar {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
    }

    fn on_note(&self, say: &mut dyn FnMut()) {
        self.multi.suspend(say);
    }
}
