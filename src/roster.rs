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
    number: 5,
    name: "pipe",
    file: "05_pipe.rs",
    chapter: "05-pipe.md",
    shows: "pipe bytes arrive intact; EOF needs every write end closed; capacity, PIPE_BUF atomicity, SIGPIPE/EPIPE, throughput",
    args: &[],
},
LabInfo {
    number: 6,
    name: "shm",
    file: "06_shared_memory.rs",
    chapter: "06-shm.md",
    shows: "MAP_SHARED memory is shared after fork, named POSIX shm, lost updates fixed three ways, zero-copy throughput",
    args: &[],
}];

/// The lab called `name`.
pub fn find(name: &str) -> Option<&'static LabInfo> {
    LABS.iter().find(|l| l.name == name)
}
