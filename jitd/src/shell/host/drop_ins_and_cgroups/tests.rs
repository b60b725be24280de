//! Stories for reconciliation: the host converges to the records whatever state a crash left.
//! Crashes are real: the test re-runs this test binary with `JITD_FAILPOINT` set, and the child
//! aborts in the middle of installing or removing.

use super::*;
use crate::core::recording::Record;
use crate::shell::testing::{scratch_sudoers_at, unique_id, ScratchSudoers};
use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The crash child's test name, from this module's path, so that moving the file cannot
/// make the child run no test at all (and "not crash").
fn child_story() -> String {
    let module = module_path!();
    let module = module.split_once("::").map_or(module, |(_, rest)| rest);
    format!("{module}::a_grant_is_installed_and_withdrawn_in_a_scratch_directory")
}

fn spec(id: &str, command: Option<&[&str]>) -> GrantSpec {
    GrantSpec {
        id: id.to_owned(),
        uid: 0,
        user: "root".to_owned(),
        command: command.map(|c| c.iter().map(|s| s.to_string()).collect()),
        // Whole seconds, so the rendering is stable within a test.
        expires_at: DateTime::from_timestamp(Utc::now().timestamp() + 600, 0).unwrap(),
        record: Record::Off,
    }
}

fn enforcer(sudoers: SudoersDir) -> Enforcer {
    Enforcer {
        sudoers,
        sessions: Sessions::without_cgroups(),
        kill_grace: Duration::from_secs(1),
    }
}

/// Also the crash child: with `JITD_TEST_SCRATCH` set it works in the parent's scratch
/// directory, and `JITD_FAILPOINT` aborts it at the named step.
#[test]
fn a_grant_is_installed_and_withdrawn_in_a_scratch_directory() {
    let own;
    let root = match std::env::var_os("JITD_TEST_SCRATCH") {
        Some(parents) => std::path::PathBuf::from(parents),
        None => {
            own = ScratchSudoers::new();
            own.tmp.path().to_owned()
        }
    };
    let enforcer = enforcer(scratch_sudoers_at(&root));
    let grant = spec("crash1", Some(&["/usr/bin/id", "-u"]));

    enforcer.install_grant(&grant).expect("install");
    assert_eq!(
        enforcer.sudoers.installed().unwrap(),
        vec!["crash1".to_string()]
    );
    assert!(enforcer.sudoers.remove(&grant.id).unwrap());
    assert_eq!(enforcer.sudoers.installed().unwrap(), Vec::<String>::new());
}

/// Runs the story above in a child process that aborts at `failpoint`.
fn crash_at(failpoint: &str, scratch: &ScratchSudoers) {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &child_story(), "--nocapture", "--test-threads=1"])
        .env("JITD_FAILPOINT", failpoint)
        .env("JITD_TEST_SCRATCH", scratch.tmp.path())
        .output()
        .expect("run the crash child");
    assert!(
        !status.status.success(),
        "the child must have crashed at {failpoint}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_crash_at_any_step_of_installing_or_removing_converges_at_the_next_reconcile() {
    let grant = spec("crash1", Some(&["/usr/bin/id", "-u"]));
    for (failpoint, left_behind) in [
        ("after_temp_write", ".jit_crash1.tmp"),
        ("after_rename", "jit_crash1"),
        ("before_remove", "jit_crash1"),
    ] {
        for grant_still_active in [false, true] {
            let scratch = ScratchSudoers::new();
            crash_at(failpoint, &scratch);
            assert_eq!(files_in(&scratch.dir()), vec![left_behind.to_string()]);

            let enforcer = enforcer(scratch.sudoers());
            let active = if grant_still_active {
                vec![grant.clone()]
            } else {
                vec![]
            };
            let actions = enforcer.reconcile_drop_ins(&active, &HashSet::new());
            assert!(
                actions
                    .iter()
                    .all(|a| !matches!(a, ReconcileAction::Failed { .. })),
                "{actions:?}"
            );
            if grant_still_active {
                assert_eq!(files_in(&scratch.dir()), vec!["jit_crash1".to_string()]);
                assert_eq!(
                    enforcer.sudoers.installed_content("crash1").unwrap(),
                    Some(
                        enforcer
                            .sudoers
                            .render(
                                "crash1",
                                0,
                                "root",
                                grant.command.as_ref().unwrap(),
                                grant.expires_at,
                                Record::Off
                            )
                            .unwrap()
                    ),
                    "{failpoint}"
                );
            } else {
                assert_eq!(
                    files_in(&scratch.dir()),
                    Vec::<String>::new(),
                    "{failpoint}"
                );
            }
            // A second run finds nothing to do.
            let again = enforcer.reconcile_drop_ins(&active, &HashSet::new());
            assert!(again.is_empty(), "{failpoint}: {again:?}");
        }
    }
}

#[test]
fn reconcile_removes_stale_drop_ins_restores_missing_and_altered_ones_and_spares_foreign_files() {
    let scratch = ScratchSudoers::new();
    let enforcer = enforcer(scratch.sudoers());
    let kept = spec("kept", Some(&["/usr/bin/id"]));
    let missing = spec("missing", Some(&["/usr/bin/whoami"]));
    let altered = spec("altered", Some(&["/usr/bin/true"]));
    let ssh = spec("ssh1", None);
    let stale = spec("stale", Some(&["/usr/bin/id"]));
    for g in [&kept, &altered, &stale] {
        enforcer.install_grant(g).unwrap();
    }
    let altered_path = scratch.dir().join("jit_altered");
    fs::write(&altered_path, "#0 ALL=(ALL) NOPASSWD: ALL\n").unwrap();
    let foreign = scratch.dir().join("jit_test_someone_else");
    fs::write(&foreign, "# not ours\n").unwrap();
    fs::set_permissions(
        &foreign,
        std::os::unix::fs::PermissionsExt::from_mode(0o440),
    )
    .unwrap();

    let actions = enforcer.reconcile_drop_ins(
        &[kept.clone(), missing.clone(), altered.clone(), ssh],
        &HashSet::new(),
    );
    let lines: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines
        .iter()
        .any(|l| l.contains("grant stale, which is not active")));
    assert!(lines.iter().any(|l| l.contains("active grant missing")));
    assert!(lines.iter().any(|l| l.contains("active grant altered")));
    assert_eq!(
        enforcer.sudoers.installed().unwrap(),
        vec![
            "altered".to_string(),
            "kept".to_string(),
            "missing".to_string()
        ]
    );
    assert!(!fs::read_to_string(&altered_path)
        .unwrap()
        .contains("NOPASSWD: ALL"));
    assert_eq!(fs::read_to_string(&foreign).unwrap(), "# not ours\n");
    assert!(enforcer
        .reconcile_drop_ins(&[kept, missing, altered], &HashSet::new())
        .is_empty());
}

#[test]
fn the_cgroups_of_grants_that_are_neither_active_nor_in_flight_are_leftovers_to_end() {
    let base = unique_id("jittest");
    let enforcer = Enforcer {
        sudoers: ScratchSudoers::new().sudoers(),
        sessions: Sessions::detect_with_base(&base),
        kill_grace: Duration::from_secs(1),
    };
    let mut ended_child = ChildGuard(Command::new("sleep").arg("1000").spawn().unwrap());
    enforcer
        .sessions
        .adopt("gone1", ended_child.0.id())
        .unwrap();
    let mut active_child = ChildGuard(Command::new("sleep").arg("1000").spawn().unwrap());
    enforcer
        .sessions
        .adopt("live1", active_child.0.id())
        .unwrap();
    let mut new_child = ChildGuard(Command::new("sleep").arg("1000").spawn().unwrap());
    enforcer.sessions.adopt("new1", new_child.0.id()).unwrap();

    let in_flight = HashSet::from(["new1".to_string()]);
    let leftovers = enforcer
        .leftover_cgroups(&[spec("live1", None)], &in_flight)
        .unwrap();
    assert_eq!(leftovers, vec!["gone1".to_string()]);
    for id in &leftovers {
        let report = enforcer.sessions.end_grant(id, &[], enforcer.kill_grace);
        assert!(report.complete(), "{report:?}");
    }
    assert!(ended_child.0.wait().is_ok());
    assert_eq!(
        enforcer.sessions.grant_cgroups().unwrap(),
        vec!["live1".to_string(), "new1".to_string()]
    );
    assert!(
        active_child.0.try_wait().unwrap().is_none(),
        "the active grant's process lives"
    );
    assert!(
        new_child.0.try_wait().unwrap().is_none(),
        "the new grant's process lives"
    );

    for id in ["live1", "new1"] {
        let report = enforcer.sessions.end_grant(id, &[], Duration::from_secs(1));
        assert!(report.complete(), "{report:?}");
    }
    let cg = enforcer.sessions.cgroups().unwrap();
    fs::remove_dir(cg.base()).unwrap();
}

/// Kills and reaps a child on drop.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
