//! Section 7: the comparison table and the table of the chapter's claims. Each scenario
//! adds its own rows (its figures, its claims and whether they held); this file only
//! lays them out.

use proclab::Lab;
use std::fmt::Display;

#[derive(Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
    claims: Vec<Vec<String>>,
}

impl Table {
    /// A row of the comparison: the thread figure, the process figure, and how many times
    /// the thread figure the process figure is.
    pub fn compare(
        &mut self,
        work: &str,
        thread: impl Display,
        process: impl Display,
        times: f64,
    ) {
        let times =
            if times.is_finite() { format!("{times:.2}x") } else { "-".into() };
        self.rows.push(vec![
            work.into(),
            thread.to_string(),
            process.to_string(),
            times,
        ]);
    }

    /// A claim of the chapter, what was measured, whether it held on this run, and
    /// whether the verdict rests on it (a check) or it is only reported.
    pub fn claim(
        &mut self,
        claim: &str,
        measured: String,
        held: bool,
        check: bool,
    ) {
        self.claims.push(vec![
            claim.into(),
            measured,
            if held { "held here" } else { "NOT here" }.into(),
            if check { "check" } else { "reported" }.into(),
        ]);
    }

    pub fn show(&self, lab: &mut Lab) {
        let heads = ["work", "thread way", "process way", "process / thread"];
        lab.table("comparison", &heads, &self.rows);
        let heads = ["claim", "measured here", "held?", "kind"];
        lab.table("claims", &heads, &self.claims);
    }
}

/// `a / b`, for ratios of durations and sizes (infinite when `b` is zero).
pub fn times(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::INFINITY
    }
}
