//! Two-way vault sync (strategy `sync`) between two machines — two homes, two directories,
//! one vault prefix on Garage: propagation both ways, every conflict policy, delete against
//! modify, `ask` and `resolve`, invalid local names, and a seeded random walk with
//! interrupted runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::{Rng, SeedableRng};

use crate::s3::larder_s3;
use crate::*;

/// One machine: its home (vault registry and index) and its directory.
struct Machine {
    home: PathBuf,
    dir: PathBuf,
    host: &'static str,
}

impl Machine {
    fn vault(&self, state: &Path) -> Command {
        let (mut c, _) = larder_s3(state);
        c.env("LARDER_HOME", &self.home)
            .env("LARDER_HOST", self.host)
            .arg("vault");
        c
    }

    fn sync(&self, state: &Path) -> Output {
        run(self.vault(state).args(["sync", "v"]))
    }

    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        files_under(&self.dir)
            .into_iter()
            .map(|(p, b)| {
                (
                    p.strip_prefix(&self.dir)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_owned(),
                    b,
                )
            })
            .filter(|(k, _)| !k.starts_with(".larder"))
            .collect()
    }

    fn write(&self, key: &str, data: &[u8]) {
        write(&self.dir.join(key), data);
    }
}

/// Two machines on a fresh vault prefix with `policy` on both.
fn pair(d: &Path, policy: &str) -> (Machine, Machine) {
    let (_, url) = larder_s3(d);
    let m = |n: &str, host| Machine {
        home: d.join(format!("home-{n}")),
        dir: d.join(format!("dir-{n}")),
        host,
    };
    let (a, b) = (m("a", "laptop"), m("b", "ci"));
    for x in [&a, &b] {
        std::fs::create_dir_all(&x.dir).unwrap();
        let out = run(x
            .vault(d)
            .args(["add", "v"])
            .arg(&x.dir)
            .arg(&url)
            .args(["--strategy", "sync"]));
        assert_eq!(out.status.code(), Some(0));
        let out = run(x
            .vault(d)
            .args(["sync", "set", "v", "--on-sync-conflict", policy]));
        assert_eq!(out.status.code(), Some(0));
    }
    let out = run(a
        .vault(d)
        .args(["sync", "reconcile", "v", "--allow-list-scan"]));
    assert_eq!(out.status.code(), Some(0));
    (a, b)
}

/// Syncs both until neither has a step left nor publishes; both sides then equal. A run may fail while
/// the other machine's index is behind an upload a killed run made (its download answers
/// 412 until that machine publishes again); the rounds after it must succeed.
fn settle(d: &Path, a: &Machine, b: &Machine) {
    let mut last = (None, None);
    for _ in 0..6 {
        let (ra, rb) = (a.sync(d), b.sync(d));
        last = (ra.status.code(), rb.status.code());
        // Still: no step, and no index published (a run with no step of its own publishes
        // what an interrupted run recorded; the other side has yet to see it).
        let quiet = |o: &Output| {
            String::from_utf8_lossy(&o.stdout).trim().is_empty()
                && !String::from_utf8_lossy(&o.stderr).contains("index published")
        };
        if last == (Some(0), Some(0)) && quiet(&ra) && quiet(&rb) {
            break;
        }
    }
    assert_eq!(last, (Some(0), Some(0)), "both still and successful");
    let (fa, fb) = (a.files(), b.files());
    if fa != fb {
        let show = |f: &BTreeMap<String, Vec<u8>>| {
            f.iter()
                .map(|(k, v)| format!("{k} = {}", String::from_utf8_lossy(v)))
                .collect::<Vec<_>>()
                .join("\n  ")
        };
        panic!(
            "the sides differ:\nA:\n  {}\nB:\n  {}",
            show(&fa),
            show(&fb)
        );
    }
}

#[test]
fn s3_creates_modifies_deletes_and_renames_propagate_both_ways() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = pair(d.path(), "ask");
    a.write("a.txt", b"one");
    a.write("docs/b.txt", b"two");
    settle(d.path(), &a, &b);
    assert_eq!(
        b.files().get("docs/b.txt").map(Vec::as_slice),
        Some(&b"two"[..])
    );

    // On B: modify, delete, create, rename.
    b.write("a.txt", b"one, edited on B");
    std::fs::remove_file(b.dir.join("docs/b.txt")).unwrap();
    b.write("new/c.txt", b"three");
    b.write("r1.txt", b"to be renamed");
    settle(d.path(), &a, &b);
    std::fs::rename(b.dir.join("r1.txt"), b.dir.join("r2.txt")).unwrap();
    settle(d.path(), &a, &b);
    let want: BTreeMap<String, Vec<u8>> = [
        ("a.txt", &b"one, edited on B"[..]),
        ("new/c.txt", b"three"),
        ("r2.txt", b"to be renamed"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_vec()))
    .collect();
    assert_eq!(a.files(), want);

    // And back from A.
    a.write("new/c.txt", b"three, edited on A");
    std::fs::remove_file(a.dir.join("a.txt")).unwrap();
    settle(d.path(), &a, &b);
    assert_eq!(
        b.files().get("new/c.txt").map(Vec::as_slice),
        Some(&b"three, edited on A"[..])
    );
    assert!(!b.files().contains_key("a.txt"));
    // Nothing left to do: a second round sends no step.
    let out = run(b.vault(d.path()).args(["--json", "sync", "v"]));
    assert_eq!(summary(&out)["steps"], 0);
}

/// A both-sides edit of `a.txt` (A syncs first, then B) under `policy`; returns B's run.
fn both_modified(d: &Path, policy: &str, b_newer: bool) -> (Machine, Machine, Output) {
    let (a, b) = pair(d, policy);
    a.write("a.txt", b"base");
    settle(d, &a, &b);
    a.write("a.txt", b"from A");
    b.write("a.txt", b"from B!");
    let t = std::time::SystemTime::now()
        + if b_newer {
            std::time::Duration::from_secs(3600)
        } else {
            std::time::Duration::ZERO
        };
    let when = if b_newer {
        t
    } else {
        std::time::SystemTime::now() - std::time::Duration::from_secs(3600)
    };
    std::fs::File::options()
        .write(true)
        .open(b.dir.join("a.txt"))
        .and_then(|f| f.set_modified(when))
        .unwrap();
    assert_eq!(a.sync(d).status.code(), Some(0));
    let out = b.sync(d);
    (a, b, out)
}

fn content(m: &Machine, key: &str) -> Option<Vec<u8>> {
    m.files().get(key).cloned()
}

#[test]
fn s3_each_conflict_policy_gives_its_documented_result() {
    for (policy, b_newer, want) in [
        ("keep_local", false, &b"from B!"[..]),
        ("keep_remote", true, b"from A"),
        ("overwrite", true, b"from B!"),
        ("overwrite", false, b"from A"),
    ] {
        let d = tempfile::tempdir().unwrap();
        let (a, b, out) = both_modified(d.path(), policy, b_newer);
        assert_eq!(out.status.code(), Some(0), "{policy}");
        settle(d.path(), &a, &b);
        assert_eq!(
            content(&a, "a.txt").as_deref(),
            Some(want),
            "{policy}, B newer: {b_newer}"
        );
        assert_eq!(a.files().len(), 1, "{policy}: no copy aside");
    }
}

#[test]
fn s3_keep_both_keeps_both_versions_on_both_sides_inside_the_vault() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, out) = both_modified(d.path(), "keep_both", true);
    assert_eq!(out.status.code(), Some(0));
    settle(d.path(), &a, &b);
    let files = a.files();
    assert_eq!(
        files.get("a.txt").map(Vec::as_slice),
        Some(&b"from B!"[..]),
        "the newer wins"
    );
    let aside: Vec<_> = files
        .keys()
        .filter(|k| k.starts_with("a.conflict-ci-"))
        .collect();
    assert_eq!(aside.len(), 1, "{files:?}");
    assert!(aside[0].ends_with(".txt"));
    assert_eq!(files[aside[0]], b"from A", "the older kept beside it");
    // Nothing was written outside the two vault directories.
    let mut top: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["dir-a", "dir-b", "home-a", "home-b"]);
}

#[test]
fn s3_ask_changes_nothing_until_resolved() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, out) = both_modified(d.path(), "ask", true);
    assert_eq!(out.status.code(), Some(3), "conflicts: the warnings code");
    assert_eq!(
        content(&b, "a.txt").as_deref(),
        Some(&b"from B!"[..]),
        "B unchanged"
    );
    // Again: still nothing, still listed.
    assert_eq!(b.sync(d.path()).status.code(), Some(3));
    assert_eq!(a.sync(d.path()).status.code(), Some(0));
    assert_eq!(
        content(&a, "a.txt").as_deref(),
        Some(&b"from A"[..]),
        "A unchanged"
    );
    let out = run(b.vault(d.path()).args(["--json", "sync", "conflicts", "v"]));
    let c = &json_lines(&out)[0];
    assert_eq!(c["key"], "a.txt");
    assert_eq!(c["kind"], "both modified");
    assert_eq!(c["local"]["size"], 7);
    assert_eq!(c["remote"]["size"], 6);
    assert!(c["remote"]["etag"].is_string());

    let out = run(b
        .vault(d.path())
        .args(["sync", "resolve", "v", "nope.txt", "--keep-local"]));
    assert_eq!(out.status.code(), Some(1));
    let out = run(b.vault(d.path()).args(["sync", "resolve", "v", "a.txt"]));
    assert_eq!(out.status.code(), Some(2), "say how");
    let out = run(b
        .vault(d.path())
        .args(["sync", "resolve", "v", "a.txt", "--keep-local"]));
    assert_eq!(out.status.code(), Some(0));
    settle(d.path(), &a, &b);
    assert_eq!(content(&a, "a.txt").as_deref(), Some(&b"from B!"[..]));
    let out = run(b.vault(d.path()).args(["--json", "sync", "conflicts", "v"]));
    assert!(json_lines(&out).is_empty(), "settled");
}

#[test]
fn s3_deleted_on_one_side_and_modified_on_the_other_is_a_conflict_not_a_deletion() {
    for policy in ["keep_local", "keep_remote", "overwrite", "keep_both", "ask"] {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = pair(d.path(), policy);
        a.write("x.txt", b"v1");
        settle(d.path(), &a, &b);
        a.write("x.txt", b"v2, modified on A");
        std::fs::remove_file(b.dir.join("x.txt")).unwrap();
        assert_eq!(a.sync(d.path()).status.code(), Some(0));
        let out = b.sync(d.path());
        if policy == "ask" {
            assert_eq!(out.status.code(), Some(3));
            assert_eq!(content(&b, "x.txt"), None, "ask: nothing changes");
            let out = run(b.vault(d.path()).args(["--json", "sync", "conflicts", "v"]));
            assert_eq!(
                json_lines(&out)[0]["kind"],
                "deleted locally, modified remotely"
            );
            continue;
        }
        assert_eq!(out.status.code(), Some(0), "{policy}");
        settle(d.path(), &a, &b);
        assert_eq!(
            content(&b, "x.txt").as_deref(),
            Some(&b"v2, modified on A"[..]),
            "{policy}: the modified version is restored"
        );
    }
}

#[test]
fn s3_a_local_name_that_is_not_a_valid_key_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let (a, _b) = pair(d.path(), "ask");
    a.write("ok.txt", b"ok");
    a.write("bad\\name.txt", b"x");
    let out = a.sync(d.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad\\name.txt"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("upload        ok.txt"));
}

/// A seeded random walk: edits on both sides (create, modify, delete, rename), some runs
/// killed midway, then syncs until both sides are still; after every round both sides are
/// equal and the last version each side wrote of every key it did not delete or rename away
/// afterwards is still there (under its key or, for a both-sides edit, beside it: keep_both).
#[test]
fn s3_random_edits_and_interrupted_runs_converge_without_losing_a_version() {
    let rounds: usize = std::env::var("TWOWAY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let d = tempfile::tempdir().unwrap();
    let (a, b) = pair(d.path(), "keep_both");
    let seed = std::env::var("TWOWAY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(42);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let keys = ["a.txt", "b.txt", "d/c.txt", "d/e.bin", "f.md"];
    let (mut edits, mut kills) = (0, 0);
    for round in 0..rounds {
        // Per side and key: the last bytes written, or None once deleted or renamed away.
        let mut last: BTreeMap<(&str, &str), Option<Vec<u8>>> = BTreeMap::new();
        for (side, m) in [("A", &a), ("B", &b)] {
            for _ in 0..rng.gen_range(1..5) {
                let key = keys[rng.gen_range(0..keys.len())];
                let path = m.dir.join(key);
                match rng.gen_range(0..4) {
                    0 | 1 => {
                        let data =
                            format!("{side} round {round} edit {edits} {}", rng.gen::<u32>())
                                .into_bytes();
                        m.write(key, &data);
                        eprintln!(
                            "round {round}: {side} writes {key} = {}",
                            String::from_utf8_lossy(&data)
                        );
                        last.insert((side, key), Some(data));
                    }
                    2 if path.exists() => {
                        std::fs::remove_file(&path).unwrap();
                        eprintln!("round {round}: {side} deletes {key}");
                        last.insert((side, key), None);
                    }
                    _ if path.exists() => {
                        let to = keys[rng.gen_range(0..keys.len())];
                        if !m.dir.join(to).exists() {
                            std::fs::create_dir_all(m.dir.join(to).parent().unwrap()).unwrap();
                            std::fs::rename(&path, m.dir.join(to)).unwrap();
                            eprintln!("round {round}: {side} renames {key} -> {to}");
                            last.insert((side, key), None);
                        }
                    }
                    _ => {}
                }
                edits += 1;
            }
        }
        // Sometimes a run is killed at a random moment.
        if rng.gen_bool(0.5) {
            kills += 1;
            let m = if rng.gen_bool(0.5) { &a } else { &b };
            eprintln!("round {round}: a run on {} is killed", m.host);
            let mut child = m
                .vault(d.path())
                .args(["sync", "v"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(5..400)));
            let _ = child.kill();
            child.wait().unwrap();
        }
        settle(d.path(), &a, &b);
        let now: Vec<Vec<u8>> = a.files().into_values().collect();
        for ((side, key), v) in &last {
            if let Some(v) = v {
                assert!(
                    now.iter().any(|f| f == v),
                    "round {round}: {side}'s last version of `{key}` is lost: {:?}\n{:?}",
                    String::from_utf8_lossy(v),
                    a.files().keys().collect::<Vec<_>>()
                );
            }
        }
    }
    eprintln!("random walk (seed {seed}): {rounds} rounds, {edits} edits, {kills} runs killed");
}

#[test]
fn s3_one_sync_per_vault_at_a_time_and_watch_syncs_every_interval_until_ctrl_c() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = pair(d.path(), "ask");
    a.write("first.txt", b"1");
    assert_eq!(a.sync(d.path()).status.code(), Some(0));

    // Another process holds A's vault: a sync refuses to start, naming it.
    let held = larder_index::lock::lock(&a.home, "v").unwrap();
    assert!(matches!(held, larder_index::lock::Locked::Held(_)));
    let out = a.sync(d.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("being synced by another larder (pid"), "{err}");
    drop(held);

    // Watch every second; a file written meanwhile goes up; Ctrl-C ends it (130).
    let child = a
        .vault(d.path())
        .args(["watch", "v", "--interval", "1s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    a.write("second.txt", b"2");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.sync(d.path()).status.code(), Some(0));
    assert_eq!(
        b.files().get("second.txt").map(Vec::as_slice),
        Some(&b"2"[..])
    );
    let out = run(a.vault(d.path()).args(["--json", "sync", "info", "v"]));
    let runs = json_lines(&out)[0]["last_runs"].as_array().unwrap().len();
    assert!(runs >= 4, "the watch recorded its runs: {runs}");
}
