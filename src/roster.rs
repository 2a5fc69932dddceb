//! The labs, in the order of the book. `lab` lists them, `lab all` runs them, `lab record`
//! writes their measured outputs, and the layout test checks each has its bin, chapter,
//! measured output and README row.

/// One lab of the roster.
#[derive(Clone, Copy, Debug)]
pub struct LabInfo {
    pub number: u32,
    /// The bin name: `cargo run --bin NAME`.
    pub name: &'static str,
    /// The file under `labs/`.
    pub file: &'static str,
    /// The chapter under `book/src/`.
    pub chapter: &'static str,
    /// One line: what it shows.
    pub shows: &'static str,
    /// Arguments `lab all` and `lab record` pass (the defaults unless a lab needs a mode).
    pub args: &'static [&'static str],
}

pub const LABS: &[LabInfo] = &[LabInfo {
    number: 3,
    name: "zombie",
    file: "03_zombie.rs",
    chapter: "03-zombie.md",
    shows: "an exited child stays as Z until reaped; SIGKILL cannot remove it; SIG_IGN avoids it",
    args: &[],
},
LabInfo {
    number: 8,
    name: "threads-vs-processes",
    file: "08_threads_vs_processes.rs",
    chapter: "08-threads-vs-processes.md",
    shows: "start-up, memory (PSS), round trips, bulk hand-over and compute, thread way vs process way, measured",
    args: &[],
},
LabInfo {
    number: 12,
    name: "cow",
    file: "12_copy_on_write.rs",
    chapter: "12-cow.md",
    shows: "fork cost grows with touched memory (page tables), vfork/posix_spawn stay flat; pages copied only when written",
    args: &[],
}];

/// The lab called `name`.
pub fn find(name: &str) -> Option<&'static LabInfo> {
    LABS.iter().find(|l| l.name == name)
}
