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
fn no_network_namespace_of_a_lab_is_left() {
    // The labs that make network namespaces name them proclab-LAB-PID-ROLE; `ip netns list`
    // reads /run/netns.
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("proclab"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "network namespaces left (ip netns list): {left:?}");
}
