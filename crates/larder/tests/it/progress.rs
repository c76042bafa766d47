//! Progress as a user sees it: on a terminal (a pty from `script`), a bar whose bytes, rate
//! and ETA move while a 200 MiB file uploads, with a line of its own for that file; off a
//! terminal, a heartbeat line every `--stats-interval`, JSON with `--json`.

use std::collections::BTreeSet;
use std::process::Command;

use crate::s3::larder_s3;
use crate::*;

/// The text of a terminal transcript: escape sequences removed, one line per redraw.
fn frames(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ … final byte in @..~
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split(['\r', '\n'])
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn s3_a_terminal_shows_bytes_rate_and_eta_moving_while_a_large_file_uploads() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let big: Vec<u8> = (0..200u32 << 20).map(|i| (i % 251) as u8).collect();
    write(&src.join("big.bin"), &big);
    let (c, url) = larder_s3(d.path());
    let transcript = d.path().join("typescript");
    // 50 MiB/s: four seconds of bar.
    let cmd = format!(
        "{} sync --rate-limit-bandwidth 50Mi {} {url}",
        env!("CARGO_BIN_EXE_larder"),
        src.display()
    );
    let mut script = Command::new("script");
    script.args(["-qfec", &cmd]).arg(&transcript);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let out = run(script.env_remove("LARDER_JSON"));
    assert_eq!(out.status.code(), Some(0));
    let frames = frames(&std::fs::read(&transcript).unwrap());
    let bar: Vec<&String> = frames
        .iter()
        .filter(|f| f.contains("/200.00 MiB") && f.contains("ETA"))
        .collect();
    let moved: BTreeSet<String> = bar
        .iter()
        .filter_map(|f| {
            let mut words = f.split("/200.00 MiB").next()?.rsplit(' ');
            let (unit, n) = (words.next()?, words.next()?);
            Some(format!("{n} {unit}"))
        })
        .collect();
    let etas: BTreeSet<&str> = bar
        .iter()
        .filter_map(|f| f.split("ETA ").nth(1)?.split(' ').next())
        .collect();
    let rates: BTreeSet<&str> = bar
        .iter()
        .filter_map(|f| f.split("/200.00 MiB ").nth(1)?.split(" ETA").next())
        .collect();
    eprintln!("a frame: {:?}", bar.get(bar.len() / 2));
    assert!(
        moved.len() >= 3,
        "bytes move while the file uploads: {moved:?}"
    );
    assert!(etas.len() >= 2, "the ETA moves: {etas:?}");
    assert!(rates.iter().any(|r| r.ends_with("/s")), "a rate: {rates:?}");
    assert!(
        frames
            .iter()
            .any(|f| f.starts_with("big.bin") && f.contains("MiB")),
        "the large file has a line of its own"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.starts_with("transferred 1 objects (200.00 MiB)")),
        "the summary after the bar"
    );
}

#[test]
fn s3_off_a_terminal_a_heartbeat_line_every_stats_interval() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("a.bin"), &vec![7u8; 12 << 20]);
    // 12 MiB at 4 MiB/s: about 3 s, so about three heartbeats a second apart.
    let sync = |flags: &[&str], to: &str| {
        let (mut c, url) = larder_s3(d.path());
        run(c
            .arg("sync")
            .args(flags)
            .args(["--rate-limit-bandwidth", "4Mi", "--stats-interval", "1s"])
            .arg(&src)
            .arg(format!("{url}{to}")))
    };
    let out = sync(&[], "");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    let beats: Vec<&str> = err.lines().filter(|l| l.contains(" moved, ")).collect();
    assert!(beats.len() >= 2, "a line a second for ~3 s: {err}");
    assert!(
        beats[0].starts_with("larder: ") && beats[0].contains("elapsed"),
        "{err}"
    );

    let out = sync(&["--json"], "");
    let beats: Vec<serde_json::Value> = json_lines(&out)
        .into_iter()
        .filter(|l| l["event"] == "progress")
        .collect();
    assert!(beats.len() >= 2, "JSON heartbeats on stdout");
    assert!(
        beats.iter().all(|b| b["total_bytes"] == 12 << 20),
        "{beats:?}"
    );

    // As long a run as the first, which printed two or more: none now.
    let out = sync(&["--no-progress"], "-quiet");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(" moved, "),
        "--no-progress"
    );
}
