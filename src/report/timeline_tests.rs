//! The timeline reads the facts the labs name (unit tests of `reading.rs` and `lanes.rs`).

use super::lanes::layout;
use super::reading::status_text;
use super::timeline::{MarkKind, Timeline};
use serde_json::{json, Value};

fn section(title: &str, t: u64) -> Value {
    json!({"event": "section", "lab": "zombie", "pid": 100, "title": title, "t_us": t})
}

fn obs(t: u64, v: Value) -> Value {
    let mut v = v;
    v["event"] = "observation".into();
    v["t_us"] = t.into();
    v
}

fn zombie_run() -> Vec<Value> {
    vec![
        section("1. exit, no wait", 1),
        obs(2, json!({"kind": "forked", "pids": [101, 102]})),
        obs(3, json!({"kind": "state", "pid": 101, "ppid": 100, "state": "Z"})),
        obs(
            4,
            json!({"kind": "tree", "root": 100, "processes": [
            {"pid": 100, "ppid": 1, "state": "R", "cmd": "zombie", "depth": 0},
            {"pid": 101, "ppid": 100, "state": "Z", "cmd": "[zombie]", "depth": 1},
            {"pid": 102, "ppid": 100, "state": "Z", "cmd": "[zombie]", "depth": 1}]}),
        ),
        section("2. SIGKILL", 5),
        obs(
            6,
            json!({"kind": "state", "pid": 101, "sent": "SIGKILL", "state": "Z"}),
        ),
        section("3. reap", 7),
        obs(8, json!({"kind": "reaped", "pid": 101, "status": {"exited": 7}})),
        obs(
            9,
            json!({"kind": "reaped", "pid": 102, "status": {"signal": "SIGKILL"}}),
        ),
        obs(10, json!({"kind": "late", "pid": 101, "state": "R"})),
    ]
}

fn kinds(t: &Timeline, panel: usize, pid: i32) -> Vec<MarkKind> {
    let lane = t.panels[panel].lanes.iter().find(|l| l.pid == pid).expect("lane");
    lane.marks.iter().map(|m| m.kind.clone()).collect()
}

#[test]
fn forks_states_signals_and_reaping_become_marks() {
    let t = Timeline::from_events(&zombie_run());
    assert_eq!(t.lab_pid, 100);
    assert_eq!(t.panels.len(), 3);
    assert_eq!(t.panels[0].lanes[0].role, "lab");
    assert_eq!(kinds(&t, 0, 101), [MarkKind::Fork, MarkKind::State('Z')]);
    assert_eq!(t.panels[0].lanes[1].role, "child");
    assert_eq!(t.panels[0].trees.len(), 1);
    assert_eq!(kinds(&t, 1, 101), [MarkKind::State('Z'), MarkKind::Signal]);
    let lane = t.panels[2].lanes.iter().find(|l| l.pid == 101).unwrap();
    assert!(lane.before && lane.state_before == Some('Z'));
    // The later mention of a reaped pid draws nothing.
    assert_eq!(kinds(&t, 2, 101), [MarkKind::Reaped]);
    assert_eq!(lane.marks[0].text, "reaped: exit 7");
    assert_eq!(lane.marks[0].from, Some(100), "its parent reaped it");
    assert_eq!(t.pids(), [100, 101, 102]);
}

#[test]
fn a_change_of_ppid_is_a_reparenting_with_its_tree() {
    let run = vec![
        section("A. orphan", 1),
        obs(
            2,
            json!({"kind": "before", "orphan": 201, "parent": 200, "ppid": 200}),
        ),
        obs(
            3,
            json!({"kind": "parent_exited", "pid": 200, "status": {"exited": 0}}),
        ),
        obs(
            4,
            json!({"kind": "adopted", "orphan": 201, "new_ppid": 1,
            "adopter_comm": "init"}),
        ),
    ];
    let t = Timeline::from_events(&run);
    assert_eq!(kinds(&t, 0, 201), [MarkKind::Seen, MarkKind::Reparent]);
    assert_eq!(kinds(&t, 0, 200), [MarkKind::Seen, MarkKind::Reaped]);
    let tree = t.panels[0].trees.last().expect("a tree after the re-parenting");
    assert!(tree.from_ppids);
    let rows: Vec<(i32, usize, &str)> =
        tree.rows.iter().map(|r| (r.pid, r.depth, r.cmd.as_str())).collect();
    assert!(rows.contains(&(1, 0, "init")) && rows.contains(&(201, 1, "orphan")));
}

#[test]
fn tables_give_work_per_worker_and_families() {
    let run = vec![
        section("2. map", 1),
        obs(
            2,
            json!({"kind": "tasks_per_worker", "headers": ["worker pid", "tasks", "share"],
            "rows": [["11", "8", "1%"], ["12", "992", "99%"]]}),
        ),
        obs(
            3,
            json!({"kind": "family", "headers": ["role", "pid", "ppid", "state"],
            "rows": [["parent", "20", "100", "S"], ["child", "21", "20", "S"]]}),
        ),
    ];
    let t = Timeline::from_events(&run);
    let share = &t.panels[0].shares[0];
    assert_eq!(share.what, "tasks per worker");
    assert_eq!(share.rows, [(11, 8), (12, 992)]);
    assert_eq!(kinds(&t, 0, 21), [MarkKind::State('S')]);
    assert_eq!(
        t.panels[0].lanes.iter().find(|l| l.pid == 20).unwrap().role,
        "parent"
    );
}

#[test]
fn statuses_read_as_waitpid_said() {
    assert_eq!(status_text(&json!({"exited": 7})).as_deref(), Some("exit 7"));
    let killed = json!({"signal": "SIGKILL", "core_dumped": false});
    assert_eq!(status_text(&killed).as_deref(), Some("SIGKILL"));
    assert_eq!(
        status_text(&json!("Exited(Pid(4344), 0)")).as_deref(),
        Some("exit 0")
    );
    let debug = json!("Signaled(Pid(4345), SIGKILL, false)");
    assert_eq!(status_text(&debug).as_deref(), Some("SIGKILL"));
    assert_eq!(status_text(&json!("measured")), None);
    assert_eq!(status_text(&json!({"error": "ECHILD"})), None);
}

#[test]
fn many_lanes_that_read_alike_are_drawn_as_one() {
    let pids: Vec<i32> = (300..330).collect();
    let run = vec![
        section("idle", 1),
        obs(2, json!({"kind": "memory", "pids": pids, "forked": true})),
    ];
    let t = Timeline::from_events(&run);
    let lanes = &t.panels[0].lanes;
    assert_eq!(lanes.len(), 2, "the lab and one lane for the 30 alike");
    assert_eq!(lanes[1].more.len(), 29);
}

#[test]
fn marks_on_a_lane_never_overlap_and_long_sections_wrap() {
    let mut run = vec![section("many", 1)];
    for i in 0..45u64 {
        let pid = 400 + (i % 3) as i64;
        let e = json!({"kind": "state", "pid": pid, "state": if i % 2 == 0 { "S" } else { "R" }});
        run.push(obs(2 + i, e));
    }
    let t = Timeline::from_events(&run);
    let p = &t.panels[0];
    let strips = layout(p, 60);
    assert!(strips.len() >= 2, "45 columns do not fit 60 cells");
    for s in &strips {
        for r in &s.rows {
            let mut spans: Vec<(usize, usize)> = r
                .marks
                .iter()
                .map(|&(x, i)| {
                    (x, x + p.lanes[r.lane].marks[i].text.chars().count())
                })
                .collect();
            spans.sort();
            assert!(spans.windows(2).all(|w| w[0].1 < w[1].0), "{spans:?}");
            assert!(spans.iter().all(|s| s.1 <= 60), "{spans:?}");
        }
        assert!(s.xs.windows(2).all(|w| w[0] < w[1]), "columns keep their order");
    }
}

#[test]
fn the_text_lanes_show_the_marks() {
    let t = Timeline::from_events(&zombie_run());
    let text = t.ascii(80);
    assert!(text.contains("101 child"), "{text}");
    assert!(text.contains("fork"), "{text}");
    assert!(text.contains("Z.kill -KILL"), "{text}");
    assert!(text.contains("reaped: exit 7"), "{text}");
    assert!(text.contains("reaped: SIGKILL"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
}

#[test]
fn facts_reported_late_take_their_place_by_at_us() {
    let run = vec![
        section("3. killed", 1),
        // Reported after the map: the kill (at 5) came after the fork (at 3).
        obs(
            10,
            json!({"kind": "killed", "pid": 501, "sent": "SIGKILL", "at_us": 5}),
        ),
        obs(
            11,
            json!({"kind": "replaced", "new_pid": 501, "old_pid": 500, "at_us": 3}),
        ),
    ];
    let t = Timeline::from_events(&run);
    assert_eq!(kinds(&t, 0, 501), [MarkKind::Fork, MarkKind::Signal]);
    assert_eq!(t.panels[0].times, [3, 5], "columns labelled with when it happened");
}

#[test]
fn a_process_never_seen_again_fades_after_its_last_mark() {
    use super::lanes::SegKind;
    let run = vec![
        section("1.", 1),
        obs(2, json!({"kind": "state", "pid": 601, "ppid": 100, "state": "S"})),
        obs(3, json!({"kind": "state", "pid": 602, "ppid": 100, "state": "S"})),
        section("2.", 4),
        obs(5, json!({"kind": "reaped", "pid": 602, "status": {"exited": 0}})),
    ];
    let t = Timeline::from_events(&run);
    let strip = &layout(&t.panels[0], 60)[0];
    let segs = |pid: i32| {
        let r = strip
            .rows
            .iter()
            .find(|r| t.panels[0].lanes[r.lane].pid == pid)
            .unwrap();
        r.segs.iter().map(|s| s.kind).collect::<Vec<_>>()
    };
    assert_eq!(
        segs(601),
        [SegKind::Alive, SegKind::Unseen],
        "never mentioned again"
    );
    assert_eq!(
        segs(602),
        [SegKind::Alive],
        "reaped in section 2: alive to the edge"
    );
}

#[test]
fn pids_inside_a_namespace_are_not_lanes() {
    // ns_pid 7 is a pid in a PID namespace: no lane, even where it is the only *_pid.
    let run = vec![
        section("1.", 1),
        obs(2, json!({"kind": "orphan", "pid": 701, "ns_pid": 7, "state": "S"})),
        obs(3, json!({"kind": "inside", "ns_pid": 9, "state": "S"})),
    ];
    let t = Timeline::from_events(&run);
    let lanes: Vec<i32> = t.panels[0].lanes.iter().map(|l| l.pid).collect();
    assert!(lanes.contains(&701) && !lanes.contains(&9), "{lanes:?}");
}
