//! A progress bar on stderr for long jobs (prewarm), drawn only when stderr is a terminal so
//! logs and scripts see just the summary line.

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Progress of `total` units of work.
pub struct Progress {
    total: usize,
    done: usize,
    failed: usize,
    draw: bool,
    started: Instant,
}

impl Progress {
    /// A bar for `total` units; drawn if stderr is a terminal and `quiet` is false.
    pub fn new(total: usize, quiet: bool) -> Progress {
        Progress {
            total,
            done: 0,
            failed: 0,
            draw: !quiet && std::io::stderr().is_terminal(),
            started: Instant::now(),
        }
    }

    /// Records one finished unit (`ok` or not) described by `label`, and redraws.
    pub fn step(&mut self, ok: bool, label: &str) {
        self.done += 1;
        if !ok {
            self.failed += 1;
        }
        if self.draw {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", self.line(label));
            let _ = err.flush();
        }
    }

    /// The bar as text: `[#####-----] 5/10  1 failed  label`.
    pub fn line(&self, label: &str) -> String {
        const WIDTH: usize = 24;
        let filled = (self.done * WIDTH).checked_div(self.total).unwrap_or(WIDTH);
        let mut s = format!(
            "[{}{}] {}/{}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled.min(WIDTH)),
            self.done,
            self.total
        );
        if self.failed > 0 {
            s.push_str(&format!("  {} failed", self.failed));
        }
        if !label.is_empty() {
            let short: String = label.chars().take(60).collect();
            s.push_str("  ");
            s.push_str(&short);
        }
        s
    }

    /// Clears the bar (the caller prints the summary).
    pub fn finish(&self) {
        if self.draw {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }

    /// Seconds since the bar was made.
    pub fn elapsed_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_in_proportion_and_counts_failures() {
        let mut p = Progress::new(4, true);
        p.step(true, "a");
        p.step(false, "b");
        assert_eq!(
            p.line("x"),
            format!("[{}{}] 2/4  1 failed  x", "#".repeat(12), "-".repeat(12))
        );
    }

    #[test]
    fn an_empty_job_draws_a_full_bar() {
        let p = Progress::new(0, true);
        assert_eq!(p.line(""), format!("[{}] 0/0", "#".repeat(24)));
    }
}
