//! The worker's own wait-for graph: each thread records the locks it holds and the one it
//! waits for. The detector that follows it round a cycle, `WaitFor::cycle`, is in the lab
//! file (the chapter shows it).

use std::time::Instant;

/// (thread, lock it holds, lock it waits for, thread holding that lock), as indices.
pub type Edge = (usize, usize, usize, usize);

/// The wait-for graph: for each thread, the locks it holds and the one it waits for.
#[derive(Default)]
pub struct WaitFor {
    pub nodes: std::sync::Mutex<Vec<Node>>,
}

pub struct Node {
    pub name: String,
    pub id: std::thread::ThreadId,
    pub holds: Vec<usize>,
    pub wants: Option<usize>,
    pub since: Instant,
}

impl WaitFor {
    pub fn join(&self, name: &str) -> usize {
        let mut n = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        n.push(Node {
            name: name.into(),
            id: std::thread::current().id(),
            holds: vec![],
            wants: None,
            since: Instant::now(),
        });
        n.len() - 1
    }
    pub fn wants(&self, me: usize, lock: usize) {
        let mut n = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        n[me].wants = Some(lock);
        n[me].since = Instant::now();
    }
    pub fn got(&self, me: usize, lock: usize) {
        let mut n = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        n[me].wants = None;
        n[me].holds.push(lock);
    }
}
