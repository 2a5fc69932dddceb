mod common;
use common::*;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One default run, shared by the tests that only read its observations.
fn default_run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| run_json("pipe", &[]))
}

#[test]
fn default_run_verifies() {
    default_run().assert_verified();
}

#[test]
fn bytes_arrive_intact_with_the_same_checksum() {
    let o = default_run().observation("oneway");
    assert_eq!(o["sent_len"], o["recv_len"], "{o}");
    assert_eq!(o["sent_sum"], o["recv_sum"], "{o}");
    assert_eq!(o["sent_len"], 256 << 10);
}

#[test]
fn forgotten_write_end_sleeps_in_pipe_read_until_the_watchdog_and_fixed_sees_eof() {
    let eof = default_run().observations("eof");
    assert_eq!(eof.len(), 2);
    let bug = eof
        .iter()
        .find(|o| o["reader_closes_write_end"] == false)
        .expect("bug run");
    assert_eq!(bug["watchdog_fired"], true, "{bug}");
    assert_eq!(bug["stuck"], true, "{bug}");
    assert_eq!(bug["state"], "S", "{bug}");
    assert!(bug["wchan"].as_str().unwrap().contains("pipe_read"), "{bug}");
    assert_eq!(bug["status"]["signal"], "SIGKILL", "{bug}");
    let fixed = eof
        .iter()
        .find(|o| o["reader_closes_write_end"] == true)
        .expect("fixed run");
    assert_eq!(fixed["stuck"], false, "{fixed}");
    assert_eq!(fixed["status"]["exited"], 0, "{fixed}");
}

#[test]
fn capacity_back_pressure_and_setpipe_sz() {
    let run = default_run();
    let cap = run.observation("capacity");
    assert_eq!(cap["filled"], cap["f_getpipe_sz"], "{cap}");
    assert_eq!(cap["status"]["exited"], 0, "the filler stopped at EAGAIN: {cap}");
    let size = cap["f_getpipe_sz"].as_u64().unwrap();
    let page = cap["page"].as_u64().unwrap();
    assert_eq!(size, 16 * page, "a new pipe has 16 slots of a page: {cap}");
    let odd = run.observation("capacity_odd");
    assert!(odd["filled"].as_u64().unwrap() < size, "{odd}");
    assert_eq!(odd["filled"], odd["expected"], "{odd}");
    let parked = run.observation("parked");
    assert_eq!(parked["state"], "S", "{parked}");
    assert!(parked["wchan"].as_str().unwrap().contains("pipe_write"), "{parked}");
    assert_eq!(
        parked["queued"].as_u64(),
        Some(size),
        "a full pipe holds its capacity"
    );
    let drained = run.observation("drained");
    assert_eq!(drained["drained"], drained["total"], "{drained}");
    assert_eq!(drained["pid"], parked["pid"], "{drained}");
    let set = run.observation("setpipe_sz");
    assert_eq!(set["f_getpipe_sz"], set["filled"], "{set}");
    assert!(set["granted"].as_u64().unwrap() >= set["asked"].as_u64().unwrap());
}

#[test]
fn writes_up_to_pipe_buf_are_never_torn() {
    let run = default_run();
    let split = run.observation("split_write");
    assert!(
        split["written"].as_u64().unwrap() < split["asked"].as_u64().unwrap(),
        "{split}"
    );
    let atomic = run.observation("atomic_write");
    assert!(atomic["result"].as_str().unwrap().contains("EAGAIN"), "{atomic}");
    assert_eq!(atomic["queued_before"], atomic["queued_after"], "{atomic}");
    let races = run.observations("race");
    let small = races.iter().find(|o| o["record"] == 4096).expect("PIPE_BUF race");
    assert_eq!(small["torn"], 0, "{small}");
    assert_eq!(small["records"], 4 * 32);
    for n in small["intact_per_writer"].as_array().unwrap() {
        assert_eq!(n, 32, "{small}");
    }
    // Above PIPE_BUF tearing is allowed, not promised: only the accounting is asserted.
    let big = races.iter().find(|o| o["record"] == 128 << 10).expect("big race");
    let intact: u64 = big["intact_per_writer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(
        intact + big["torn"].as_u64().unwrap(),
        big["records"].as_u64().unwrap(),
        "{big}"
    );
}

#[test]
fn request_reply_and_big_exchange_deadlock() {
    let run = default_run();
    assert!(run.check("request_reply"));
    let ex = run.observations("exchange");
    let stuck =
        ex.iter().find(|o| o["b_reads_first"] == false).expect("deadlock run");
    assert_eq!(stuck["watchdog_fired"], true, "{stuck}");
    let procs = stuck["stuck"].as_array().unwrap();
    assert_eq!(procs.len(), 2, "{stuck}");
    for p in procs {
        assert_eq!(p["state"], "S");
        assert!(p["wchan"].as_str().unwrap().contains("pipe_write"), "{p}");
    }
    let fixed = ex.iter().find(|o| o["b_reads_first"] == true).expect("fixed run");
    assert_eq!(fixed["stuck"].as_array().map(Vec::len), Some(0), "{fixed}");
    for st in fixed["statuses"].as_array().unwrap() {
        assert_eq!(st["exited"], 0, "{fixed}");
    }
}

#[test]
fn sigpipe_kills_and_epipe_when_ignored() {
    let run = default_run();
    let all = run.observations("sigpipe");
    let dfl = all.iter().find(|o| o["sigpipe"] == "default").expect("default");
    assert_eq!(dfl["status"]["signal"], "SIGPIPE", "{dfl}");
    let ign = all.iter().find(|o| o["sigpipe"] == "ignored").expect("ignored");
    assert_eq!(ign["status"]["exited"], libc::EPIPE, "{ign}");
}

#[test]
fn throughput_table_has_three_write_sizes() {
    let t = default_run().observation("throughput");
    let rows = t["rows"].as_array().unwrap();
    let sizes: Vec<&str> = rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(sizes, ["4 KiB", "64 KiB", "1 MiB"]);
    assert!(default_run().check("throughput_bytes_complete"));
    // A timing claim is reported as held or not, never a check a busy machine can fail.
    let below = default_run().observation("below_memcpy");
    assert!(below["held"].is_boolean(), "{below}");
    let ratio = default_run().observation("rtt_ratio");
    assert!(ratio["held"].is_boolean(), "{ratio}");
}

#[test]
fn small_settings_still_verify() {
    let run = run_json(
        "pipe",
        &[
            "--writers",
            "2",
            "--records",
            "4",
            "--rounds",
            "10",
            "--mib",
            "1",
            "--bytes",
            "1",
            "--deadline-ms",
            "100",
        ],
    );
    run.assert_verified();
}

/// Small settings: the removal runs only need the section they change.
const QUICK: &[&str] = &["--rounds", "10", "--mib", "1", "--records", "4"];

#[test]
fn a_short_write_turns_bytes_intact() {
    run_removed("pipe", QUICK, "short_write").assert_not_observed("bytes_intact");
}

#[test]
fn a_reader_without_the_forgotten_end_sees_eof_and_the_hang_check_turns() {
    run_removed("pipe", QUICK, "no_forgotten_end")
        .assert_not_observed("forgotten_write_end_hangs");
}

#[test]
fn a_parent_that_keeps_its_write_end_gives_no_eof() {
    let run = run_removed("pipe", QUICK, "parent_keeps_write_end");
    run.assert_not_observed("closed_write_end_sees_eof");
    let fixed = run
        .observations("eof")
        .into_iter()
        .find(|o| o["reader_closes_write_end"] == true)
        .cloned()
        .expect("fixed run");
    assert_eq!(fixed["stuck"], true, "the reader still waits for EOF: {fixed}");
}

#[test]
fn an_exchange_that_fits_in_the_pipe_does_not_deadlock() {
    run_removed("pipe", QUICK, "exchange_fits")
        .assert_not_observed("big_exchange_deadlocks");
}

#[test]
fn a_blocking_fill_sleeps_in_pipe_write_and_the_capacity_check_turns() {
    let run = run_removed("pipe", QUICK, "blocking_fill");
    run.assert_not_observed("capacity_matches");
    let cap = run.observation("capacity");
    assert_eq!(cap["state"], "S", "the filler slept instead of EAGAIN: {cap}");
    assert_eq!(cap["status"]["signal"], "SIGKILL", "{cap}");
}

#[test]
fn writes_of_whole_pages_turn_the_pages_check() {
    run_removed("pipe", QUICK, "whole_page_writes")
        .assert_not_observed("capacity_in_pages");
}

#[test]
fn the_reader_is_observed_while_it_waits_for_eof() {
    let readers = default_run().observations("reader");
    let bug = readers
        .iter()
        .find(|o| o["reader_closes_write_end"] == false)
        .expect("bug run");
    assert_eq!(bug["state"], "S", "{bug}");
    assert!(bug["wchan"].as_str().unwrap().contains("pipe_read"), "{bug}");
    let fixed = readers
        .iter()
        .find(|o| o["reader_closes_write_end"] == true)
        .expect("fixed run");
    assert_eq!(fixed["state"], "Z", "it saw EOF and exited: {fixed}");
}

#[test]
fn a_writer_that_keeps_sigpipe_ignored_is_not_killed() {
    run_removed("pipe", QUICK, "sigpipe_inherited")
        .assert_not_observed("sigpipe_kills");
}

#[test]
fn sigkill_during_the_two_way_deadlock_leaves_nothing() {
    // A long deadline keeps both writers stuck in pipe_write while the lab is killed.
    let mut s = start_json("pipe", &["--deadline-ms", "10000", "--rounds", "10"]);
    s.wait_for(|v| v["event"] == "check" && v["name"] == "request_reply")
        .expect("section 5 under way");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let stuck = tagged_processes(&s.tag)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/wchan"))
                    .is_ok_and(|w| w.contains("pipe_write"))
            })
            .count();
        if stuck == 2 {
            break;
        }
        assert!(Instant::now() < until, "the two writers never blocked");
        std::thread::sleep(Duration::from_millis(10));
    }
    sigkill_leaves_nothing(s);
}

#[test]
fn sigint_while_a_reader_is_stuck_leaves_nothing() {
    // A long deadline keeps the buggy reader stuck in pipe_read while the lab is interrupted.
    let mut s = start_json("pipe", &["--deadline-ms", "10000"]);
    s.wait_for(|v| v["event"] == "check" && v["name"] == "bytes_intact")
        .expect("section 1 done");
    interrupt_dies_of(s, libc::SIGINT);
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("pipe", &["--writers", "1"]);
    assert_usage_error("pipe", &["--big", "4096"]);
    assert_usage_error("pipe", &["--pipe-size", "4194304"]);
    assert_usage_error("pipe", &["--mib", "0"]);
    assert_usage_error("pipe", &["--deadline-ms", "10"]);
    assert_usage_error("pipe", &["--rounds", "5"]);
    assert_usage_error("pipe", &["--no-such-flag"]);
}
