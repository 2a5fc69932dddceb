mod common;
use common::*;

const QUICK: &[&str] = &[
    "--max-mib",
    "256",
    "--runs",
    "3",
    "--region-mib",
    "16",
    "--write-pages",
    "256",
];

#[test]
fn fork_grows_with_touched_memory_and_spawn_does_not() {
    // Up to 1 GiB (the default): fork's growth then dwarfs the spawn ways' jitter on a
    // loaded machine (a woken task may wait a scheduler tick).
    let run = run_json(
        "cow",
        &["--max-mib", "1024", "--region-mib", "16", "--write-pages", "256"],
    );
    run.assert_verified();
    let lat = run.observations("fork_latency");
    let sizes: Vec<u64> = lat.iter().map(|o| o["mib"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [1, 64, 256, 1024]);
    let (first, last) = (lat[0], lat[lat.len() - 1]);
    // Page tables grow with the touched memory (2 KiB of entries per MiB of 4 KiB pages).
    assert!(
        last["pte_kib"].as_u64().unwrap()
            > first["pte_kib"].as_u64().unwrap() + 256
    );
    assert!(
        last["fork_min_ns"].as_u64().unwrap()
            > 2 * first["fork_min_ns"].as_u64().unwrap()
    );
    assert!(run.check("spawn_stays_flat"));
    assert!(
        run.observation("fork_cost_per_gib")["fork_ns_per_gib"].as_i64().unwrap()
            > 0
    );
}

#[test]
fn after_fork_the_region_is_shared_half_and_half() {
    let run = run_json("cow", QUICK);
    let after_fork: Vec<_> = run
        .observations("smaps")
        .into_iter()
        .filter(|o| o["phase"] == "after_fork")
        .collect();
    assert_eq!(after_fork.len(), 2);
    for o in after_fork {
        let region = o["region_kib"].as_u64().unwrap();
        assert_eq!(o["rss"].as_u64().unwrap(), region, "{o}");
        let pss = o["pss"].as_u64().unwrap() as i64;
        assert!((pss - region as i64 / 2).abs() <= 8, "PSS is half the RSS: {o}");
        assert_eq!(o["private_dirty"], 0, "{o}");
    }
}

#[test]
fn writing_k_pages_costs_k_faults_and_k_private_pages() {
    let run = run_json("cow", QUICK);
    let f = run.observation("faults");
    let k = f["pages_written"].as_u64().unwrap();
    assert_eq!(k, 256);
    let delta = f["minflt_delta"].as_u64().unwrap();
    assert!((k..=k + 50).contains(&delta), "minor faults {delta} for {k} pages");
    let child = run
        .observations("smaps")
        .into_iter()
        .find(|o| o["phase"] == "after_writes" && o["who"] == "child")
        .cloned()
        .unwrap();
    assert_eq!(child["private_dirty"].as_u64().unwrap(), k * 4, "{child}");
    assert!(child["anon_huge_kib"].is_u64(), "{child}");
    assert!(run.check("parent_data_unchanged"));
    // Both passes over the K pages were timed: the faulting one and the plain one.
    assert!(f["write_ns"].as_u64().unwrap() > 0, "{f}");
    assert!(f["rewrite_ns"].as_u64().unwrap() > 0, "{f}");
    assert!(f["cow_over_plain"].as_f64().unwrap() > 0.0, "{f}");
}

#[test]
fn a_child_that_writes_nothing_turns_the_fault_count() {
    // One thing changed: the child is told to write K pages and writes none.
    let run = run_removed("cow", QUICK, "child_writes_nothing");
    run.assert_not_observed("faults_match_pages_written");
    run.assert_not_observed("shared_portion_shrinks");
    assert!(run.check("parent_data_unchanged"));
}

#[test]
fn a_map_shared_region_is_not_copied_on_write() {
    // One thing changed: the region is MAP_SHARED. fork gives the child no copy of its
    // page-table entries, the child's writes reach the parent, and nothing turns private.
    let run = run_removed("cow", QUICK, "region_shared");
    run.assert_not_observed("pss_is_half_rss_after_fork");
    run.assert_not_observed("shared_portion_shrinks");
    run.assert_not_observed("parent_data_unchanged");
}

#[test]
fn an_untouched_region_makes_fork_flat() {
    // One thing changed: part 1's regions are mapped but never written, so they have no
    // page-table entries to copy, and fork does not grow with their size.
    // Ten runs a size: the fastest of ten forks of the same cost are far closer than
    // the four times the check asks for, even on a loaded machine.
    let args = ["--max-mib", "1024", "--runs", "10", "--region-mib", "16"];
    let run = run_removed("cow", &args, "region_untouched");
    run.assert_not_observed("fork_grows_with_memory");
}

/// Two busy loops, killed when dropped (also when the test fails).
struct Hogs(Vec<std::process::Child>);

impl Drop for Hogs {
    fn drop(&mut self) {
        for h in &mut self.0 {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

#[test]
fn a_busy_machine_does_not_turn_the_verdict() {
    // The timing checks compare fastest runs, which load (it only adds time) cannot
    // invert: the lab verifies under two busy loops, one per CPU of a two-CPU machine.
    let hog = || {
        std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("start a busy loop")
    };
    let _hogs = Hogs(vec![hog(), hog()]);
    let run = run_json(
        "cow",
        &["--max-mib", "1024", "--region-mib", "16", "--write-pages", "256"],
    );
    run.assert_verified();
}

#[test]
fn sigint_in_the_middle_leaves_no_child() {
    // A large region written page by page keeps the child alive long enough to interrupt.
    let mut s = start_json(
        "cow",
        &[
            "--max-mib",
            "64",
            "--runs",
            "1",
            "--region-mib",
            "512",
            "--write-pages",
            "131072",
        ],
    );
    s.wait_for(|v| v["event"] == "observation" && v["kind"] == "smaps")
        .expect("the child was forked");
    interrupt_dies_of(s, libc::SIGINT);
}

#[test]
fn bad_flags_exit_2() {
    assert_usage_error("cow", &["--max-mib", "0"]);
    assert_usage_error("cow", &["--max-mib", "99999"]);
    assert_usage_error("cow", &["--write-pages", "0"]);
    assert_usage_error("cow", &["--region-mib", "1", "--write-pages", "1000"]);
    assert_usage_error("cow", &["--runs", "x"]);
}
