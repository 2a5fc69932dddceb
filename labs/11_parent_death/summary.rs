//! The summary: did the children die with their parent? One row per way run, and what
//! each way showed (only where its check held).

use proclab::{observe, Lab};

/// What one way showed, for the summary.
pub struct Way {
    pub name: &'static str,
    pub parent_death: &'static str,
    /// What became of the children ("killed by SIGTERM: 3").
    pub children: String,
    pub died_with_it: bool,
    /// Whether the way's check held: its lesson is shown only then.
    pub held: bool,
    pub lesson: &'static str,
}

pub fn show(lab: &mut Lab, ways: &[Way]) {
    lab.section("Summary: did the children die with their parent?");
    let rows: Vec<Vec<String>> = ways
        .iter()
        .map(|w| {
            let died = if w.died_with_it { "yes" } else { "NO" };
            vec![
                w.name.into(),
                w.parent_death.into(),
                w.children.clone(),
                died.into(),
            ]
        })
        .collect();
    let headers = [
        "scenario",
        "how the parent died",
        "what became of the children",
        "died with it",
    ];
    lab.table("summary", &headers, &rows);
    let shown: Vec<String> = ways
        .iter()
        .map(|w| {
            let lesson = if w.held { w.lesson } else { "not shown on this run" };
            format!("{}: {lesson}", w.name)
        })
        .collect();
    let lines = shown.join("\n    ");
    observe!(lab, "ways", "what each way showed:\n    {lines}", shown);
}
