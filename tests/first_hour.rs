//! docs/first-hour.md, run: every `console` block's commands are typed as the prompt's user
//! (`root#`, `alice$`, `bob$`) on a terminal of their own, against a real jitd that installs
//! real sudoers drop-ins, with sudo going through the PAM stack `jit-pam-setup` wired, and what
//! the terminal shows must be what the page shows.
//!
//! What differs from a real host is mapped both ways: the page's user and group names to this
//! test's unique ones, `/etc/jit/jitd.toml` and `/etc/pam.d` to the daemon's config and a copy
//! of this host's PAM files, the PAM service `sudo` to the test's own. What differs from run to
//! run is a wildcard: request ids (10 characters of a-z and 0-9, with a digit and a letter; each
//! one the page names stands for the same real id throughout), RFC 3339 times, `(uid N)`,
//! `pid="N"`, `(Ns)`, `/dev/pts/N`, `SHA-256 <64 hex digits>`, `N records; last record N`.
//! Runs of blanks count as one, since table columns move with name lengths.
//!
//! Markers (HTML comments, invisible on the page) before a block: `keeps running` (its one
//! command goes on; the block is what its terminal shows once it shows all of it) and `the same
//! terminal, later` (the whole screen of that command once it has ended). `sh` blocks are not
//! run; the commands they may hold are listed in [`NOT_RUN`] with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jit_tests::pam::{module_path, PlacedFile};
use jit_tests::pty::Terminal;
use jit_tests::{bin, unique, workspace_root, Daemon, TempDir, TestGroup, TestUser};
use regex::Regex;

/// Commands of the page that this test does not run, and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "apt-get install ./jit_<VERSION>-1_amd64.deb",
        "vm-tests/run installs the package in a Debian VM",
    ),
    (
        "systemctl is-active jitd",
        "vm-tests/run checks jitd under systemd; this machine's PID 1 is not systemd",
    ),
];

/// What the test prints after each command, to know where its output ends.
const EXIT_MARK: &str = "<<<first-hour exit ";

#[derive(Debug)]
struct Step {
    user: String,
    command: String,
    expected: Vec<String>,
}

#[derive(Debug)]
struct Block {
    marker: Option<String>,
    steps: Vec<Step>,
}

/// The page's `console` blocks, and the commands of its `sh` blocks.
fn parse(page: &str) -> (Vec<Block>, Vec<String>) {
    let prompt = Regex::new(r"^(root)# (.*)$|^([a-z]+)\$ (.*)$").unwrap();
    let marker_re = Regex::new(r"^<!-- first-hour: (.*) -->$").unwrap();
    let (mut blocks, mut not_run) = (Vec::new(), Vec::new());
    let mut marker = None;
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        if let Some(m) = marker_re.captures(line) {
            marker = Some(m[1].to_string());
            continue;
        }
        match line {
            "```console" => {
                let mut steps: Vec<Step> = Vec::new();
                for line in lines.by_ref().take_while(|l| *l != "```") {
                    if let Some(c) = prompt.captures(line) {
                        let (user, command) = match c.get(1) {
                            Some(root) => (root.as_str(), &c[2]),
                            None => (c.get(3).unwrap().as_str(), &c[4]),
                        };
                        steps.push(Step {
                            user: user.to_string(),
                            command: command.to_string(),
                            expected: Vec::new(),
                        });
                    } else {
                        let step = steps.last_mut().unwrap_or_else(|| {
                            panic!("a console block starts with output, not a prompt: {line:?}")
                        });
                        step.expected.push(line.to_string());
                    }
                }
                blocks.push(Block {
                    marker: marker.take(),
                    steps,
                });
            }
            "```sh" => {
                for line in lines.by_ref().take_while(|l| *l != "```") {
                    let command = line.split(" #").next().unwrap().trim();
                    if !command.is_empty() {
                        not_run.push(command.to_string());
                    }
                }
                marker = None;
            }
            l if l.starts_with("```") => panic!("a code block neither console nor sh: {l}"),
            "" => {}
            _ => marker = None,
        }
    }
    (blocks, not_run)
}

/// What a terminal shows after `bytes`: `\r` goes back to the start of the line, `ESC [K`
/// erases the rest of it. Trailing blanks and empty last lines are dropped.
fn screen(bytes: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let mut col = 0;
    let mut chars = bytes.chars().peekable();
    while let Some(c) = chars.next() {
        let line = lines.last_mut().unwrap();
        match c {
            '\r' => col = 0,
            '\n' => {
                lines.push(Vec::new());
                col = 0;
            }
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                if chars.next() == Some('K') {
                    line.truncate(col);
                }
            }
            c => {
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    let mut out: Vec<String> = lines
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_string())
        .collect();
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

/// A line of the page as a pattern: the variable parts are wildcards, and each id it names is
/// a group, returned with the names, so the real ids can be bound to them.
fn pattern(line: &str) -> (Regex, Vec<String>) {
    let line = collapse(line);
    let variable = Regex::new(
        r"\b[a-z0-9]{10}\b|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z|\(uid \d+\)|pid=.\d+.|\(\d+s\)|/dev/pts/\d+|SHA-256 [0-9a-f]{64}|\d+ records; last record \d+",
    )
    .unwrap();
    let mut re = String::from("^");
    let mut ids = Vec::new();
    let mut at = 0;
    for m in variable.find_iter(&line) {
        let text = m.as_str();
        let is_word = text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let wildcard = if text.len() == 10 && is_word {
            // A word of ten letters is a word; an id has a digit and a letter.
            if !text.bytes().any(|b| b.is_ascii_digit())
                || !text.bytes().any(|b| b.is_ascii_lowercase())
            {
                continue;
            }
            ids.push(text.to_string());
            "([a-z0-9]{10})".to_string()
        } else if text.starts_with("(uid") {
            r"\(uid \d+\)".to_string()
        } else if text.starts_with("pid") {
            r#"pid="\d+""#.to_string()
        } else if text.starts_with('(') {
            r"\(\d+s\)".to_string()
        } else if text.starts_with("/dev/pts/") {
            r"/dev/pts/\d+".to_string()
        } else if text.starts_with("SHA-256") {
            "SHA-256 [0-9a-f]{64}".to_string()
        } else if text.ends_with(|c: char| c.is_ascii_digit()) && text.contains("records") {
            // How many records there are depends on what jitd logged besides the walkthrough.
            r"\d+ records; last record \d+".to_string()
        } else {
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z".to_string()
        };
        re.push_str(&regex::escape(&line[at..m.start()]));
        re.push_str(&wildcard);
        at = m.end();
    }
    re.push_str(&regex::escape(&line[at..]));
    re.push('$');
    (Regex::new(&re).unwrap(), ids)
}

fn collapse(line: &str) -> String {
    line.split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The page's names and this host's, both ways.
struct Names {
    /// (as on the page, as here): commands and output.
    pairs: Vec<(String, String)>,
    /// (as on the page, as here): output only.
    shown_as: Vec<(String, String)>,
    /// Request ids: as on the page → as jitd gave them.
    ids: HashMap<String, String>,
}

impl Names {
    /// A command of the page as it is typed here.
    fn command(&self, command: &str) -> String {
        let mut out = command.to_string();
        for (page, here) in &self.pairs {
            out = replace_word(&out, page, here);
        }
        for (page, here) in &self.ids {
            out = replace_word(&out, page, here);
        }
        out
    }

    /// A line of output as the page would show it (ids stay: they are wildcards).
    fn output(&self, line: &str) -> String {
        let mut out = line.to_string();
        // Longest first: a user's name is part of the PAM service's.
        let mut pairs: Vec<&(String, String)> = self.pairs.iter().chain(&self.shown_as).collect();
        pairs.sort_by_key(|(_, here)| std::cmp::Reverse(here.len()));
        for (page, here) in pairs {
            out = out.replace(here.as_str(), page);
        }
        out
    }

    /// Compares what a terminal showed with the page; binds the page's ids to real ones.
    fn check(&mut self, what: &str, expected: &[String], shown: &[String]) {
        let shown: Vec<String> = shown.iter().map(|l| self.output(l)).collect();
        let report = || {
            format!(
                "{what}: the terminal shows\n{}\n\nbut docs/first-hour.md shows\n{}",
                shown.join("\n"),
                expected.join("\n")
            )
        };
        assert_eq!(shown.len(), expected.len(), "{}", report());
        for (want, got) in expected.iter().zip(&shown) {
            let (re, ids) = pattern(want);
            let got = collapse(got);
            let Some(caps) = re.captures(&got) else {
                panic!("{}\n\nfirst difference: {got:?}", report());
            };
            for (i, page_id) in ids.iter().enumerate() {
                let real = caps[i + 1].to_string();
                let bound = self.ids.entry(page_id.clone()).or_insert(real.clone());
                assert_eq!(*bound, real, "{page_id} stands for two ids: {}", report());
            }
        }
    }

    /// Whether a screen already shows `expected` (for a command still running).
    fn shows(&self, expected: &[String], shown: &[String]) -> bool {
        expected.len() == shown.len()
            && expected
                .iter()
                .zip(shown)
                .all(|(want, got)| pattern(want).0.is_match(&collapse(&self.output(got))))
    }
}

/// `text` with the word `from` (not part of a longer name) replaced by `to`.
fn replace_word(text: &str, from: &str, to: &str) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + from.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(is_name) || after.is_some_and(is_name) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = &rest[i + from.len()..];
    }
    out.push_str(rest);
    out
}

/// One command on a terminal of its own, as a user: what the terminal showed so far.
struct Typed {
    child: Child,
    terminal: Terminal,
    seen: String,
}

impl Typed {
    fn start(env: &[(String, String)], user: &str, command: &str) -> Typed {
        let terminal = Terminal::open(200, 50);
        let script = format!("{command}\nprintf '\\n{EXIT_MARK}%d>>>\\n' $?");
        let mut cmd = match user {
            "root" => Command::new("env"),
            user => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "env"]);
                c
            }
        };
        cmd.args(env.iter().map(|(k, v)| format!("{k}={v}")))
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(terminal.stdio())
            .stderr(terminal.stdio());
        Typed {
            child: cmd.spawn().unwrap(),
            terminal,
            seen: String::new(),
        }
    }

    /// Reads until `done` says the screen is complete, or panics after `within`.
    fn read_until(&mut self, within: Duration, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + within;
        while !done(&self.seen) {
            assert!(
                Instant::now() < deadline,
                "gave up after {within:?}; the terminal shows:\n{}",
                screen(&self.seen).join("\n")
            );
            self.seen
                .push_str(&self.terminal.read(Duration::from_millis(200), EXIT_MARK));
        }
    }

    /// Waits for the command to end; the screen without the exit mark.
    fn finish(mut self) -> Vec<String> {
        self.read_until(Duration::from_secs(60), |s| {
            s.contains(EXIT_MARK) && s.trim_end().ends_with(">>>")
        });
        let _ = self.child.wait();
        let mut lines = screen(&self.seen);
        assert!(lines.pop().is_some_and(|l| l.starts_with(EXIT_MARK)));
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }
}

/// The step as the page writes it, for messages.
fn prompt(step: &Step) -> String {
    match step.user.as_str() {
        "root" => format!("root# {}", step.command),
        user => format!("{user}$ {}", step.command),
    }
}

/// A group the page creates (`groupadd`), deleted when the test ends.
struct CreatedGroup(String);

impl Drop for CreatedGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.0).status();
    }
}

#[test]
fn the_first_hour_walkthrough_shows_what_a_user_sees() {
    let page = std::fs::read_to_string(workspace_root().join("docs/first-hour.md")).unwrap();
    let (blocks, not_run) = parse(&page);

    // Nothing on the page escapes the test unless listed with its reason.
    let version = env!("CARGO_PKG_VERSION");
    let allowed: Vec<String> = NOT_RUN
        .iter()
        .map(|(c, _)| c.replace("<VERSION>", version))
        .collect();
    assert_eq!(not_run, allowed, "commands of docs/first-hour.md not run");
    let commands: Vec<&str> = blocks
        .iter()
        .flat_map(|b| &b.steps)
        .map(|s| s.command.as_str())
        .collect();
    for essential in ["jit-pam-setup enable sudo", "jit-elevate ", "jitd approve "] {
        assert!(
            commands.iter().any(|c| c.starts_with(essential)),
            "the walkthrough lost `{essential}…`: {commands:#?}"
        );
    }

    // The host as the package leaves it: the break-glass group, the packaged configuration,
    // the users of the page; a copy of this host's PAM files for jit-pam-setup.
    let breakglass = TestGroup::create("bg");
    let approvers = CreatedGroup(unique("jgappr"));
    // Short names: `jitd list` clips a name longer than its column (12).
    let (alice, bob, admin) = (
        TestUser::create_named(&unique("fh")),
        TestUser::create_named(&unique("fh")),
        TestUser::create_named(&unique("fh")),
    );
    let packaged = std::fs::read_to_string(workspace_root().join("packaging/jitd.toml")).unwrap();
    let jitd = Daemon::start_enforcing(&packaged);
    let pam_dir = TempDir::new("first-hour-pam");
    for (file, from) in [
        ("sudo", "/etc/pam.d/sudo"),
        // Debian 12 has sudo-i (the page shows it); a host without one gets a copy of sudo.
        ("sudo-i", "/etc/pam.d/sudo-i"),
        ("jit-account", "packaging/pam/jit-account"),
        ("jit-session", "packaging/pam/jit-session"),
    ] {
        let from = workspace_root().join(from);
        let from = if from.exists() {
            from
        } else {
            PathBuf::from("/etc/pam.d/sudo")
        };
        std::fs::copy(from, pam_dir.path().join(file)).unwrap();
    }
    let tools = TempDir::new("first-hour-bin");
    std::os::unix::fs::symlink(
        workspace_root().join("packaging/jit-pam-setup"),
        tools.path().join("jit-pam-setup"),
    )
    .unwrap();
    let service = format!("jit-test-{}", alice.name);
    let sudoers = PlacedFile::write(
        format!("/etc/sudoers.d/jit_test_{}", alice.name),
        &format!("Defaults:{} pam_service={service}\n", alice.name),
        0o440,
    );

    let mut names = Names {
        pairs: vec![
            (
                "/etc/jit/jitd.toml".into(),
                jitd.config_path().display().to_string(),
            ),
            ("/etc/pam.d".into(), pam_dir.path().display().to_string()),
            (
                "/var/lib/jitd".into(),
                jitd.state_dir().display().to_string(),
            ),
            (
                "/var/log/jit/sessions".into(),
                jitd.recordings_dir().display().to_string(),
            ),
            ("jit-breakglass".into(), breakglass.name.clone()),
            ("jit-approvers".into(), approvers.0.clone()),
            ("alice".into(), alice.name.clone()),
            ("bob".into(), bob.name.clone()),
            ("admin".into(), admin.name.clone()),
        ],
        shown_as: Vec::new(),
        ids: HashMap::new(),
    };
    let debug = bin("jitd").parent().unwrap().to_path_buf();
    let env: Vec<(String, String)> = [
        (
            "PATH",
            format!(
                "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                tools.path().display(),
                debug.display()
            ),
        ),
        ("JITD_SOCKET", jitd.socket().display().to_string()),
        ("JITD_CONFIG", jitd.config_path().display().to_string()),
        ("JIT_PAM_DIR", pam_dir.path().display().to_string()),
        ("JIT_BREAKGLASS_GROUP", breakglass.name.clone()),
        ("LANG", "C.UTF-8".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    let mut running: Option<(String, Typed)> = None;
    let mut pam_service: Option<PlacedFile> = None;
    for block in &blocks {
        match block.marker.as_deref() {
            None => {
                for step in &block.steps {
                    let typed = Typed::start(
                        &env,
                        &names.command(&step.user),
                        &names.command(&step.command),
                    );
                    let shown = typed.finish();
                    names.check(&prompt(step), &step.expected, &shown);
                    if step.command == "jit-pam-setup enable sudo" {
                        // From here on alice's sudo goes through the stack jit-pam-setup wired.
                        pam_service = Some(wired_service(&pam_dir, &service, &jitd, &breakglass));
                        names.shown_as.push(("sudo".into(), service.clone()));
                    }
                }
            }
            Some("keeps running") => {
                let [step] = block.steps.as_slice() else {
                    panic!("a `keeps running` block holds one command: {block:?}")
                };
                let mut typed = Typed::start(
                    &env,
                    &names.command(&step.user),
                    &names.command(&step.command),
                );
                typed.read_until(Duration::from_secs(30), |seen| {
                    names.shows(&step.expected, &screen(seen))
                });
                names.check(&prompt(step), &step.expected, &screen(&typed.seen));
                running = Some((step.command.clone(), typed));
            }
            Some("the same terminal, later") => {
                let [step] = block.steps.as_slice() else {
                    panic!("a `the same terminal, later` block holds one command: {block:?}")
                };
                let (command, typed) = running.take().expect("a command that keeps running");
                assert_eq!(
                    step.command, command,
                    "not the command that was left running"
                );
                let shown = typed.finish();
                names.check(&format!("{} (later)", prompt(step)), &step.expected, &shown);
            }
            Some(other) => panic!("unknown marker in docs/first-hour.md: {other}"),
        }
    }
    assert!(running.is_none(), "a command was left running");
    assert!(pam_service.is_some(), "sudo was never wired");
    drop(sudoers);
}

/// The PAM service alice's sudo uses from now on: the copy of /etc/pam.d/sudo as
/// jit-pam-setup wired it, its includes of jit-account and jit-session replaced by the
/// packaged lines pointed at this test's module, daemon and break-glass group.
fn wired_service(
    pam_dir: &TempDir,
    service: &str,
    jitd: &Daemon,
    breakglass: &TestGroup,
) -> PlacedFile {
    let module = format!(
        "{} socket={} kind=sudo",
        module_path().display(),
        jitd.socket().display()
    );
    let included = |file: &str| {
        std::fs::read_to_string(pam_dir.path().join(file))
            .unwrap()
            .replace("pam_jit.so", &module)
            .replace("jit-breakglass", &breakglass.name)
    };
    let wired = std::fs::read_to_string(pam_dir.path().join("sudo")).unwrap();
    assert!(
        wired.contains("@include jit-account # jit-pam-setup"),
        "{wired}"
    );
    let stack = wired
        .replace(
            "@include jit-account # jit-pam-setup",
            included("jit-account").trim(),
        )
        .replace(
            "@include jit-session # jit-pam-setup",
            included("jit-session").trim(),
        );
    PlacedFile::write(format!("/etc/pam.d/{service}"), &stack, 0o644)
}

#[test]
fn the_page_reader_and_the_screen_work_as_the_walkthrough_needs() {
    let page = "intro\n\n```sh\napt-get x   # comment\n```\n\n<!-- first-hour: keeps running -->\n```console\nalice$ jit-elevate -- id\nwaiting (3s)\n```\n\n```console\nroot# jitd list\nno requests\nbob$ jitd approve k3v9q0x2ab\nok\n```\n";
    let (blocks, not_run) = parse(page);
    assert_eq!(not_run, ["apt-get x"]);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].marker.as_deref(), Some("keeps running"));
    assert_eq!(blocks[0].steps[0].user, "alice");
    assert_eq!(blocks[1].marker, None);
    assert_eq!(blocks[1].steps[1].user, "bob");
    assert_eq!(blocks[1].steps[1].expected, ["ok"]);

    assert_eq!(
        screen("a\r\nwaiting 1\r\x1b[Kwaiting 2\r\x1b[Kdone\r\n\r\n"),
        ["a", "done"]
    );

    let mut names = Names {
        pairs: vec![("alice".into(), "jtalice1x2".into())],
        shown_as: Vec::new(),
        ids: HashMap::new(),
    };
    names.check(
        "t",
        &["k3v9q0x2ab  alice   pending  2026-11-30T10:00:02Z (uid 1001) (12s)".into()],
        &["zzzzzz9999  jtalice1x2        pending  2027-01-01T00:00:00Z (uid 1234) (3s)".into()],
    );
    assert_eq!(names.ids["k3v9q0x2ab"], "zzzzzz9999");
    assert_eq!(
        names.command("jitd approve k3v9q0x2ab # alice"),
        "jitd approve zzzzzz9999 # jtalice1x2"
    );
    assert_eq!(replace_word("alice-x alice", "alice", "b"), "alice-x b");
    // A different line, or the same id standing for another, is a difference.
    let differs = std::panic::catch_unwind(move || {
        let mut names = names;
        names.check(
            "t",
            &["k3v9q0x2ab done".into()],
            &["aaaaaa1111 done".into()],
        );
    });
    assert!(differs.is_err());
    let (re, ids) = pattern(r#"pid="4242" tty="/dev/pts/1" id="k3v9q0x2ab" SHA-256 00ff"#);
    assert_eq!(ids, ["k3v9q0x2ab"]);
    assert!(re.is_match(r#"pid="9" tty="/dev/pts/12" id="zzzzzz9999" SHA-256 00ff"#));
    let (re, _) = pattern("uid=0(root) gid=0(root)");
    assert!(!re.is_match("uid=1001(alice) gid=1001(alice)"));
}
