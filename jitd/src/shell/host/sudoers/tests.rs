//! Stories for the drop-in writer, run against the real sudo and visudo of this host.
//! Rules that must really be enforced go into /etc/sudoers.d under unique `jit_<id>` names and
//! are removed by guards; stories about broken configurations use a scratch directory with its
//! own top-level file, so other tests on the machine never see a broken sudoers.

use super::*;
use crate::core::recording::{Record, RecordingsDir};
use crate::shell::testing::{run_as, unique_id, ScratchSudoers, TestUser};
use chrono::Duration as ChronoDuration;
use std::os::unix::fs::PermissionsExt;

/// A grant installed in the real /etc/sudoers.d, removed on drop.
struct RealGrant {
    dir: SudoersDir,
    id: String,
    /// Keeps reconciling tests from removing this drop-in while it is in use.
    _shared: std::fs::File,
}

impl RealGrant {
    fn install(user: &str, argv: &[&str], expires_in: ChronoDuration) -> RealGrant {
        Self::install_recorded(user, argv, expires_in, Record::Off, None)
    }

    /// As `install`, recorded as `record` into `recordings`.
    fn install_recorded(
        user: &str,
        argv: &[&str],
        expires_in: ChronoDuration,
        record: Record,
        recordings: Option<&RecordingsDir>,
    ) -> RealGrant {
        let mut dir = SudoersDir::new(PathBuf::from("/etc/sudoers.d"));
        if let Some(r) = recordings {
            dir = dir.with_recordings(r.clone());
        }
        let id = unique_id("t");
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let grant = RealGrant {
            dir,
            id,
            _shared: jit_tests::share_real_sudoers(),
        };
        grant
            .dir
            .install(
                &grant.id,
                uid_of(user),
                user,
                &argv,
                Utc::now() + expires_in,
                record,
            )
            .expect("install grant");
        grant
    }
}

impl Drop for RealGrant {
    fn drop(&mut self) {
        let _ = self.dir.remove(&self.id);
    }
}

fn uid_of(user: &str) -> u32 {
    nix::unistd::User::from_name(user)
        .unwrap()
        .expect("the test user exists")
        .uid
        .as_raw()
}

fn argv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn this_host_runs_original_sudo_with_notafter_and_sudo_rs_is_recognised() {
    let flavour = SudoFlavour::detect(Path::new("/usr/bin/sudo"));
    assert!(flavour.supports_notafter(), "{flavour:?}");
    assert_eq!(
        SudoFlavour::parse("Sudo version 1.9.13p3\nConfigure options: x"),
        SudoFlavour::Original {
            version: (1, 9, 13)
        }
    );
    assert!(!SudoFlavour::parse("Sudo version 1.8.19p2").supports_notafter());
    assert!(SudoFlavour::parse("Sudo version 1.8.20").supports_notafter());
    assert_eq!(SudoFlavour::parse("sudo-rs 0.2.3"), SudoFlavour::SudoRs);
    assert!(!SudoFlavour::SudoRs.supports_notafter());
    assert!(!SudoFlavour::parse("").supports_notafter());
}

/// The same exactness whether the rule names the command directly or, recorded, through its
/// `Cmnd_Alias` (whose definition the sudoers lexer reads with the same escapes).
#[test]
fn a_grant_for_a_command_line_full_of_special_characters_allows_exactly_that_line() {
    let scratch = crate::shell::testing::TempDir::new("rec");
    let recordings = RecordingsDir::parse(&scratch.path().join("sessions")).unwrap();
    for record in [Record::Off, Record::Output] {
        exactly_that_line(record, &recordings);
    }
    let user_sessions = std::fs::read_dir(recordings.as_str()).unwrap().count();
    assert_eq!(user_sessions, 1, "only the recorded grant left a recording");
}

fn exactly_that_line(record: Record, recordings: &RecordingsDir) {
    let user = TestUser::create(&unique_id("jte"));
    let granted = ["/bin/echo", "a,b", "c:d", "e=f", r"g\h", "*"];
    let grant = RealGrant::install_recorded(
        &user.name,
        &granted,
        ChronoDuration::minutes(5),
        record,
        Some(recordings),
    );
    let text = grant.dir.installed_content(&grant.id).unwrap().unwrap();
    assert!(
        text.contains(&format!("#{} ALL=(root) NOTAFTER=", user.uid)),
        "{text}"
    );

    let mut sudo = vec!["sudo", "-n"];
    sudo.extend_from_slice(&granted);
    let (ok, out, err) = run_as(&user.name, &sudo);
    assert!(ok, "the granted line must run: {err}");
    assert_eq!(out, "a,b c:d e=f g\\h *\n");

    // Not listed: `"a,b c:d"` as one argument. sudo matches the space-joined argument string,
    // so an argv that joins to the same text also matches; see docs/enforcement.md, "Limits".
    for other in [
        &["/bin/echo", "a"][..],
        &["/bin/echo", "a,b", "c:d", "e=f", r"g\h", "x"],
        &["/bin/echo", "a,b", "c:d", "e=f", r"g\h", "*", "more"],
        &["/bin/echo"],
        &["/usr/bin/id"],
    ] {
        let mut sudo = vec!["sudo", "-n"];
        sudo.extend_from_slice(other);
        let (ok, out, _) = run_as(&user.name, &sudo);
        assert!(!ok, "{other:?} must be refused, printed {out:?}");
    }
    let recorded = crate::shell::host::recordings::sessions(recordings, &grant.id).unwrap();
    assert_eq!(recorded.len(), usize::from(!record.is_off()), "{record:?}");
}

#[test]
fn a_command_granted_without_arguments_runs_only_without_arguments() {
    let user = TestUser::create(&unique_id("jte"));
    let _grant = RealGrant::install(
        &user.name,
        &["/usr/bin/id", "-u"],
        ChronoDuration::minutes(5),
    );
    let grant2 = RealGrant::install(&user.name, &["/usr/bin/whoami"], ChronoDuration::minutes(5));
    let (ok, out, err) = run_as(&user.name, &["sudo", "-n", "/usr/bin/id", "-u"]);
    assert!(ok, "{err}");
    assert_eq!(out, "0\n");
    let (ok, out, err) = run_as(&user.name, &["sudo", "-n", "/usr/bin/whoami"]);
    assert!(ok, "{err}");
    assert_eq!(out, "root\n");
    let (ok, _, _) = run_as(&user.name, &["sudo", "-n", "/usr/bin/whoami", "--help"]);
    assert!(!ok, "a grant without arguments must not allow arguments");
    let (ok, _, _) = run_as(&user.name, &["sudo", "-n", "/usr/bin/id"]);
    assert!(!ok, "id without -u was not granted");

    // Removal takes effect at once and is idempotent.
    assert!(grant2.dir.remove(&grant2.id).unwrap());
    assert!(!grant2.dir.remove(&grant2.id).unwrap());
    let (ok, _, _) = run_as(&user.name, &["sudo", "-n", "/usr/bin/whoami"]);
    assert!(!ok, "a removed grant must not work");
}

#[test]
fn a_user_named_with_dots_gets_a_working_grant() {
    let user = TestUser::create(&format!("{}.first.last", unique_id("e")));
    let grant = RealGrant::install(
        &user.name,
        &["/usr/bin/id", "-u"],
        ChronoDuration::minutes(5),
    );
    assert!(grant.dir.installed().unwrap().contains(&grant.id));
    let (ok, out, err) = run_as(&user.name, &["sudo", "-n", "/usr/bin/id", "-u"]);
    assert!(ok, "{err}");
    assert_eq!(out, "0\n");
}

#[test]
fn the_rule_stops_working_at_notafter_even_if_jitd_never_removes_it() {
    let user = TestUser::create(&unique_id("jte"));
    let grant = RealGrant::install(
        &user.name,
        &["/usr/bin/id", "-u"],
        ChronoDuration::seconds(3),
    );
    let (ok, _, err) = run_as(&user.name, &["sudo", "-n", "/usr/bin/id", "-u"]);
    assert!(ok, "before NOTAFTER the rule works: {err}");
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(grant.dir.installed().unwrap().contains(&grant.id));
    let (ok, out, _) = run_as(&user.name, &["sudo", "-n", "/usr/bin/id", "-u"]);
    assert!(!ok, "after NOTAFTER sudo must refuse, printed {out:?}");
}

#[test]
fn clearing_timestamps_removes_the_users_sudo_records() {
    let user = TestUser::create(&unique_id("jte"));
    let _grant = RealGrant::install(&user.name, &["/usr/bin/true"], ChronoDuration::minutes(5));
    let (ok, _, err) = run_as(&user.name, &["sudo", "-n", "/usr/bin/true"]);
    assert!(ok, "{err}");
    // An attempt that needs authentication makes sudo keep a record for the user.
    let (ok, _, _) = run_as(&user.name, &["sudo", "-n", "/usr/bin/id"]);
    assert!(!ok, "id was not granted");
    let record = Path::new("/run/sudo/ts").join(&user.name);
    assert!(
        record.exists(),
        "sudo keeps the user's records in {}",
        record.display()
    );
    let dir = SudoersDir::new(PathBuf::from("/etc/sudoers.d"));
    dir.clear_timestamps(&user.name, user.uid).unwrap();
    assert!(!record.exists());
    dir.clear_timestamps(&user.name, user.uid)
        .expect("idempotent");
    for bad in ["", "..", "a/b", "../../etc/passwd"] {
        assert!(matches!(
            dir.clear_timestamps(bad, 0),
            Err(SudoersError::BadUserName(_))
        ));
    }
}

#[test]
fn relative_or_unnormalised_commands_and_unknown_users_are_refused_and_nothing_is_written() {
    let scratch = ScratchSudoers::new();
    let dir = scratch.sudoers();
    let later = Utc::now() + ChronoDuration::minutes(5);
    for cmd in [
        argv(&["../x"]),
        argv(&["id"]),
        argv(&["/usr/bin/../bin/id"]),
        argv(&[]),
    ] {
        let err = dir
            .install("abc", 0, "root", &cmd, later, Record::Off)
            .unwrap_err();
        assert!(matches!(err, SudoersError::Rule(_)), "{cmd:?}: {err}");
    }
    let err = dir
        .install(
            "abc",
            3_999_999_999,
            "no-such-user-jit",
            &argv(&["/usr/bin/id"]),
            later,
            Record::Off,
        )
        .unwrap_err();
    assert!(
        matches!(err, SudoersError::HolderChanged { now: None, .. }),
        "{err}"
    );
    let err = dir
        .install(
            "abc",
            0,
            "not-root",
            &argv(&["/usr/bin/id"]),
            later,
            Record::Off,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the name of uid 0 changed since the request"),
        "{err}"
    );
    let err = dir
        .install(
            "../abc",
            0,
            "root",
            &argv(&["/usr/bin/id"]),
            later,
            Record::Off,
        )
        .unwrap_err();
    assert!(
        matches!(err, SudoersError::Rule(RuleError::BadId(_))),
        "{err}"
    );
    assert_eq!(fs::read_dir(scratch.dir()).unwrap().count(), 0);
}

#[test]
fn a_program_others_can_change_is_never_written_into_a_rule() {
    let scratch = ScratchSudoers::new();
    let dir = scratch.sudoers();
    // Root's own executable, but in a temp dir under the world-writable /tmp.
    let prog = scratch.tmp.path().join("prog");
    fs::write(&prog, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
    let later = Utc::now() + ChronoDuration::minutes(5);
    let err = dir
        .install(
            "u1",
            0,
            "root",
            &argv(&[&prog.display().to_string()]),
            later,
            Record::Off,
        )
        .unwrap_err();
    assert!(matches!(err, SudoersError::UntrustedProgram(_)), "{err}");
    assert!(
        err.to_string()
            .ends_with("jit grants only programs that only root can change"),
        "{err}"
    );
    assert_eq!(fs::read_dir(scratch.dir()).unwrap().count(), 0);
}

#[test]
fn an_installed_drop_in_is_root_owned_0440_and_matches_its_rendering() {
    let scratch = ScratchSudoers::new();
    let dir = scratch.sudoers();
    let cmd = argv(&["/usr/bin/id", "-u"]);
    let later = Utc::now() + ChronoDuration::minutes(5);
    dir.install("g1", 0, "root", &cmd, later, Record::Off)
        .unwrap();
    let meta = fs::metadata(scratch.dir().join("jit_g1")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 0, 0o440)
    );
    assert_eq!(
        dir.installed_content("g1").unwrap().unwrap(),
        dir.render("g1", 0, "root", &cmd, later, Record::Off)
            .unwrap()
    );
    assert_eq!(dir.installed().unwrap(), vec!["g1".to_string()]);
    // Nothing but the final file is left behind.
    assert_eq!(fs::read_dir(scratch.dir()).unwrap().count(), 1);
}

#[test]
fn a_broken_file_in_the_directory_blocks_installs_is_named_and_is_left_untouched() {
    let scratch = ScratchSudoers::new();
    let dir = scratch.sudoers();
    let broken = scratch.dir().join("local_admins");
    fs::write(&broken, "this is not sudoers syntax\n").unwrap();
    fs::set_permissions(&broken, fs::Permissions::from_mode(0o440)).unwrap();

    let err = dir.preflight().unwrap_err();
    assert!(matches!(err, SudoersError::ConfigInvalid { .. }), "{err}");
    assert!(err.to_string().contains("local_admins"), "{err}");

    let later = Utc::now() + ChronoDuration::minutes(5);
    let err = dir
        .install("g2", 0, "root", &argv(&["/usr/bin/id"]), later, Record::Off)
        .unwrap_err();
    assert!(err.to_string().contains("local_admins"), "{err}");
    assert_eq!(dir.installed().unwrap(), Vec::<String>::new());
    assert_eq!(
        fs::read_to_string(&broken).unwrap(),
        "this is not sudoers syntax\n"
    );
    assert_eq!(fs::read_dir(scratch.dir()).unwrap().count(), 1);
}

#[test]
fn a_world_writable_or_foreign_owned_file_blocks_installs_and_is_left_untouched() {
    let scratch = ScratchSudoers::new();
    let dir = scratch.sudoers();
    let loose = scratch.dir().join("loose");
    fs::write(&loose, "root ALL=(ALL) ALL\n").unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o666)).unwrap();

    let err = dir.preflight().unwrap_err();
    assert!(matches!(err, SudoersError::UnsafeFile { .. }), "{err}");
    assert!(err.to_string().contains("loose"), "{err}");
    assert!(err.to_string().contains("world-writable"), "{err}");
    let later = Utc::now() + ChronoDuration::minutes(5);
    assert!(dir
        .install("g3", 0, "root", &argv(&["/usr/bin/id"]), later, Record::Off)
        .is_err());
    assert_eq!(
        fs::metadata(&loose).unwrap().mode() & 0o7777,
        0o666,
        "jitd must not repair files it does not own"
    );

    fs::set_permissions(&loose, fs::Permissions::from_mode(0o440)).unwrap();
    std::os::unix::fs::chown(&loose, Some(65534), None).unwrap();
    let err = dir.preflight().unwrap_err();
    assert!(err.to_string().contains("owned by uid 65534"), "{err}");

    // Files sudo never reads (names with a dot) are not our business.
    fs::remove_file(&loose).unwrap();
    let ignored = scratch.dir().join("notes.txt");
    fs::write(&ignored, "anything").unwrap();
    fs::set_permissions(&ignored, fs::Permissions::from_mode(0o666)).unwrap();
    dir.preflight().expect("a dotted file is not read by sudo");
    dir.install("g3", 0, "root", &argv(&["/usr/bin/id"]), later, Record::Off)
        .expect("installs work again once the directory is safe");
}

#[test]
fn stray_temp_files_are_recognised_and_removed_but_foreign_files_are_not() {
    let scratch = ScratchSudoers::new();
    let dir = scratch.sudoers();
    for name in [".jit_abc.tmp", ".jit_Bad.tmp", "jit_test_other", "README"] {
        fs::write(scratch.dir().join(name), "").unwrap();
    }
    assert_eq!(dir.remove_temp_files().unwrap(), vec!["abc".to_string()]);
    assert!(!scratch.dir().join(".jit_abc.tmp").exists());
    for kept in [".jit_Bad.tmp", "jit_test_other", "README"] {
        assert!(scratch.dir().join(kept).exists(), "{kept} must be kept");
    }
    assert_eq!(dir.installed().unwrap(), Vec::<String>::new());
}
