//! Runs last (cargo runs integration tests in file-name order): after the whole suite no
//! process started by a test is alive and nothing of proclab's is left in /dev/shm.
mod common;

#[test]
fn no_process_of_any_test_run_is_alive() {
    let needle = format!("{}={}", common::TAG_VAR, common::tag_prefix());
    let mut alive = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env.split(|&b| b == 0).any(|kv| kv.starts_with(needle.as_bytes())) {
                alive.push(pid);
            }
        }
    }
    // This test process itself never carries the tag.
    assert!(
        alive.is_empty(),
        "processes started by the test suite are still alive: {alive:?}"
    );
}

#[test]
fn nothing_left_in_dev_shm() {
    let left = common::shm_entries();
    assert!(left.is_empty(), "proclab segments left in /dev/shm: {left:?}");
}

#[test]
fn no_cgroup_of_a_dead_lab_is_left() {
    // The pid1 lab names its cgroups proclab-pid1-PID-STARTTIME and removes them on
    // every way out but SIGKILL; the next run removes those of dead labs. One whose lab
    // is gone after the whole suite is a leak.
    let start_of = |pid: &str| -> Option<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = stat.rsplit(')').next()?.split_whitespace().nth(19)?;
        Some(after.to_string()) // field 22, the start time
    };
    let mut stale = Vec::new();
    for dir in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"] {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(owner) = name.strip_prefix("proclab-pid1-") else { continue };
            let (pid, start) = owner.split_once('-').unwrap_or((owner, ""));
            if start_of(pid).as_deref() != Some(start) {
                stale.push(format!("{dir}/{name}"));
            }
        }
    }
    assert!(stale.is_empty(), "cgroups of labs that are gone: {stale:?}");
}
