//! A worker's own wait-for graph: each thread records the locks it holds and the one it
//! waits for, and `WaitFor::cycle` follows "waits for a lock held by" round a cycle.

use crate::wire::Edge;
use std::sync::{Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Instant;

/// For each thread: the locks it holds and the one it waits for.
#[derive(Default)]
pub struct WaitFor {
    nodes: Mutex<Vec<Node>>,
}

struct Node {
    name: String,
    id: ThreadId,
    holds: Vec<usize>,
    wants: Option<usize>,
    since: Instant, // when it last asked for a lock
}

/// (thread, lock it holds, lock it waits for, thread holding that), as indices.
pub type Hop = (usize, usize, usize, usize);

impl WaitFor {
    fn nodes(&self) -> MutexGuard<'_, Vec<Node>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The calling thread joins the graph as `name`; returns its index.
    pub fn join(&self, name: &str) -> usize {
        let mut n = self.nodes();
        let (id, since) = (std::thread::current().id(), Instant::now());
        n.push(Node { name: name.into(), id, holds: vec![], wants: None, since });
        n.len() - 1
    }

    /// Thread `me` asks for `lock` (and may block on it).
    pub fn wants(&self, me: usize, lock: usize) {
        let mut n = self.nodes();
        n[me].wants = Some(lock);
        n[me].since = Instant::now();
    }

    /// Thread `me` got `lock`.
    pub fn got(&self, me: usize, lock: usize) {
        let mut n = self.nodes();
        n[me].wants = None;
        n[me].holds.push(lock);
    }

    // ANCHOR: cycle
    /// Follow "waits for a lock held by" from each thread; coming back to the
    /// start is a cycle. Returns its hops and when its last thread asked.
    pub fn cycle(&self) -> Option<(Vec<Hop>, Instant)> {
        let n = self.nodes();
        let holder = |lock| n.iter().position(|t| t.holds.contains(&lock));
        for start in 0..n.len() {
            let (mut t, mut hops) = (start, Vec::new());
            while let (Some(lock), Some(&held)) = (n[t].wants, n[t].holds.first()) {
                let Some(next) = holder(lock) else { break };
                hops.push((t, held, lock, next));
                if next == start {
                    let formed = hops.iter().map(|h| n[h.0].since).max()?;
                    return Some((hops, formed));
                }
                if hops.len() > n.len() {
                    break; // a cycle that does not pass through `start`
                }
                t = next;
            }
        }
        None
    }
    // ANCHOR_END: cycle

    /// The hops of a cycle by thread and lock name.
    pub fn named(&self, hops: &[Hop], locks: &[String]) -> Vec<Edge> {
        let n = self.nodes();
        let edge = |&(t, held, wanted, by): &Hop| Edge {
            thread: n[t].name.clone(),
            holds: locks[held].clone(),
            waits_for: locks[wanted].clone(),
            held_by: n[by].name.clone(),
        };
        hops.iter().map(edge).collect()
    }

    /// The name a thread joined with.
    pub fn name_of(&self, id: ThreadId) -> String {
        let n = self.nodes();
        n.iter().find(|t| t.id == id).map(|t| t.name.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_of_waits_is_a_cycle_and_a_chain_is_not() {
        let g = WaitFor::default();
        let (t1, t2) = (g.join("t1"), g.join("t2"));
        g.got(t1, 0);
        g.got(t2, 1);
        g.wants(t1, 1);
        assert!(g.cycle().is_none(), "t1 waits for t2, which waits for nothing");
        g.wants(t2, 0);
        let (hops, _) = g.cycle().expect("t1 -> t2 -> t1");
        let locks = ["A".to_string(), "B".to_string()];
        let names: Vec<_> = g
            .named(&hops, &locks)
            .iter()
            .map(|e| {
                format!("{} {} {} {}", e.thread, e.holds, e.waits_for, e.held_by)
            })
            .collect();
        assert_eq!(names, ["t1 A B t2", "t2 B A t1"]);
    }
}
