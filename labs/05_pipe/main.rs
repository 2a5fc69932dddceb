//! # pipe: what a learner gets wrong about pipes, each one observed
//!
//! A pipe is a byte stream in the kernel with a read end and a write end, inherited
//! across `fork`: bytes arrive intact, EOF needs every write end closed, capacity and
//! back-pressure, atomic writes up to PIPE_BUF, two-way and its deadlock, SIGPIPE and
//! EPIPE, throughput against memcpy. One file per section, in book order.
//!
//! Chapter: book/src/05-pipe.md

mod args; // the flags
mod capacity; // 3. capacity, a writer parked while the pipe is full, F_SETPIPE_SZ
mod eof; // 2. EOF needs every write end closed
mod filler; // the child that fills a pipe until EAGAIN (section 3), FIONREAD
mod one_way; // 1. one message, parent to child, intact
mod pipe_buf; // 4. writes up to PIPE_BUF are atomic, bigger ones can tear
mod sigpipe; // 6. SIGPIPE, or EPIPE when it is ignored
mod throughput; // 7. throughput against memcpy
mod two_way; // 5. request and reply over two pipes, and the deadlock it risks
mod watch; // the watchdog that finds children stuck, and the net under the others

use clap::Parser;
use proclab::Lab;

fn main() {
    let args = args::Args::parse();
    let mut lab = Lab::start(
        "pipe",
        "pipes deliver bytes intact and in order, end at EOF only when every write \
         end is closed, hold F_GETPIPE_SZ bytes in page-sized slots and block the \
         writer beyond, keep \
         writes of at most PIPE_BUF whole, and kill (SIGPIPE) or fail (EPIPE) a \
         writer with no reader",
        &args.common,
    );
    lab.section("1. One-way: parent to child, unused ends closed");
    one_way::run(&mut lab, &args);
    lab.section("2. EOF needs every write end closed");
    eof::run(&mut lab, &args);
    lab.section("3. Capacity and back-pressure");
    let size = capacity::run(&mut lab, &args); // F_GETPIPE_SZ, for 4 and 5
    lab.section("4. Writes up to PIPE_BUF are atomic");
    pipe_buf::run(&mut lab, &args, size);
    lab.section("5. Two-way: request and reply, and the deadlock it risks");
    two_way::run(&mut lab, &args, size);
    lab.section("6. SIGPIPE and EPIPE: writing with no reader left");
    sigpipe::run(&mut lab);
    lab.section("7. Throughput against memcpy");
    throughput::run(&mut lab, &args);
    lab.finish()
}
