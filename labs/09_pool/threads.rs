//! The same job with threads, for section 5 and the bench: the thread pool's `map` and
//! drop (its `start`, which the chapter shows, is in three_ways.rs), and rayon.

use super::task::{work, Task};
use crossbeam::channel::{Receiver, Sender};
use std::thread::JoinHandle;

/// A thread pool over a crossbeam channel: any free thread takes the next task.
pub struct ThreadPool {
    pub tasks: Option<Sender<(usize, Task)>>,
    pub results: Receiver<(usize, u64)>,
    pub threads: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    pub fn map(&self, tasks: &[Task]) -> Vec<u64> {
        let tx = self.tasks.as_ref().expect("running");
        for (id, t) in tasks.iter().enumerate() {
            tx.send((id, *t)).expect("workers alive");
        }
        let mut out = vec![0; tasks.len()];
        for _ in 0..tasks.len() {
            let (id, v) = self.results.recv().expect("workers alive");
            out[id] = v; // back in input order
        }
        out
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.tasks.take(); // closing the channel ends every thread's loop
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

pub fn rayon_map(pool: &rayon::ThreadPool, tasks: &[Task]) -> Vec<u64> {
    use rayon::prelude::*;
    pool.install(|| tasks.par_iter().map(|t| work(t.x, t.rounds)).collect()) // work stealing
}
