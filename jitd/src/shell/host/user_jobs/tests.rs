//! Spools in scratch directories standing in for /var/spool/cron and /var/lib/systemd, and
//! stand-ins for `atq` and `systemctl`.

use super::*;
use crate::core::left_behind::{Added, CrontabChange};
use crate::shell::testing::TempDir;
use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

struct Scratch {
    dir: TempDir,
    spools: Spools,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = TempDir::new("spools");
        let spools = Spools {
            crontabs: dir.path().join("crontabs"),
            atjobs: dir.path().join("atjobs"),
            linger: dir.path().join("linger"),
            atq: None,
        };
        for d in [&spools.crontabs, &spools.atjobs, &spools.linger] {
            fs::create_dir(d).unwrap();
        }
        Scratch { dir, spools }
    }

    /// An at job file named `name`, owned by `uid`, as atd's spool holds it.
    fn at_job(&self, name: &str, uid: u32) {
        let path = self.spools.atjobs.join(name);
        fs::write(&path, "#!/bin/sh\necho hi\n").unwrap();
        std::os::unix::fs::chown(&path, Some(uid), None).unwrap();
    }

    /// An executable shell script `name` in the scratch directory.
    fn program(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

const UID: u32 = 4_000_123;
const OTHER: u32 = 4_000_124;

#[test]
fn a_crontab_at_jobs_and_lingering_added_after_the_start_are_found() {
    let s = Scratch::new();
    s.at_job("a0000101b0c2d3", UID);
    fs::write(s.spools.atjobs.join(".SEQ"), "2\n").unwrap();
    let start = s.spools.read("alice", UID).for_record();
    assert_eq!(
        start,
        UserJobs {
            crontab: None,
            at_jobs: Some(vec!["a0000101b0c2d3".into()]),
            linger: false,
        }
    );

    fs::write(s.spools.crontabs.join("alice"), "* * * * * /bin/true\n").unwrap();
    s.at_job("a0000201b0c2d4", UID);
    s.at_job("a0000301b0c2d5", OTHER);
    fs::write(s.spools.linger.join("alice"), "").unwrap();
    // Someone else's crontab and lingering are not alice's.
    fs::write(s.spools.crontabs.join("bob"), "* * * * * /bin/true\n").unwrap();
    fs::write(s.spools.linger.join("bob"), "").unwrap();

    assert_eq!(
        s.spools.read("alice", UID).added_since(&start),
        Added {
            crontab: Some(CrontabChange::Created),
            at_jobs: vec!["a0000201b0c2d4".into()],
            at_jobs_unsure: false,
            linger: true,
        }
    );
}

#[test]
fn a_crontab_rewritten_after_the_start_is_reported_as_changed() {
    let s = Scratch::new();
    let crontab = s.spools.crontabs.join("alice");
    fs::write(&crontab, "# empty\n").unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    fs::File::options()
        .write(true)
        .open(&crontab)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let start = s.spools.read("alice", UID).for_record();
    assert!(s.spools.read("alice", UID).added_since(&start).is_empty());

    fs::write(&crontab, "@reboot /home/alice/backdoor\n").unwrap();
    assert_eq!(
        s.spools.read("alice", UID).added_since(&start).crontab,
        Some(CrontabChange::Changed)
    );
}

#[test]
fn without_the_at_spool_atq_is_asked_and_without_either_nothing_is_queued() {
    let mut s = Scratch::new();
    fs::remove_dir(&s.spools.atjobs).unwrap();
    assert_eq!(s.spools.read("alice", UID).at_jobs, Some(vec![]));

    s.spools.atq = Some(s.program(
        "atq",
        "printf '7\\tThu Nov 29 10:00:00 2026 a alice\\n8\\tThu Nov 29 11:00:00 2026 b bob\\n\
         12\\tFri Nov 30 09:00:00 2026 a alice\\n'",
    ));
    assert_eq!(
        s.spools.read("alice", UID).at_jobs,
        Some(vec!["job 12".to_string(), "job 7".to_string()])
    );
    s.spools.atq = Some(s.program("atq-broken", "exit 1"));
    assert_eq!(s.spools.read("alice", UID).at_jobs, None);
}

#[test]
fn names_that_are_not_plain_file_names_name_no_spool_file() {
    let s = Scratch::new();
    for bad in ["", ".", "..", "../crontabs", "a/b"] {
        assert_eq!(s.spools.crontab_of(bad), None, "{bad:?}");
        assert_eq!(s.spools.linger_of(bad), None, "{bad:?}");
    }
}

#[test]
fn without_systemd_the_user_manager_is_left_alone_and_the_note_says_why() {
    let s = Scratch::new();
    let ran = s.dir.path().join("systemctl-ran");
    let manager = UserManager {
        systemd_marker: s.dir.path().join("no-systemd-here"),
        systemctl: s.program("systemctl", &format!("touch {}", ran.display())),
    };
    let outcome = manager.stop(UID);
    assert_eq!(
        outcome,
        ManagerStop::NoSystemd {
            marker: manager.systemd_marker.clone()
        }
    );
    assert!(!ran.exists(), "systemctl was run without systemd");
    assert!(
        outcome
            .to_string()
            .contains("systemd is not the init system"),
        "{outcome}"
    );
}

#[test]
fn with_systemd_the_user_manager_is_stopped_through_systemctl() {
    let s = Scratch::new();
    let args = s.dir.path().join("systemctl-args");
    let manager = UserManager {
        systemd_marker: s.dir.path().to_path_buf(),
        systemctl: s.program("systemctl", &format!("echo \"$@\" > {}", args.display())),
    };
    assert_eq!(
        manager.stop(UID),
        ManagerStop::Stopped {
            unit: format!("user@{UID}.service")
        }
    );
    assert_eq!(
        fs::read_to_string(&args).unwrap(),
        format!("stop user@{UID}.service\n")
    );

    let failing = UserManager {
        systemctl: s.program("systemctl-fails", "echo 'Access denied' >&2; exit 1"),
        ..manager
    };
    match failing.stop(UID) {
        ManagerStop::Failed { unit, why } => {
            assert_eq!(unit, format!("user@{UID}.service"));
            assert!(why.contains("Access denied"), "{why}");
        }
        other => panic!("{other:?}"),
    }
}
