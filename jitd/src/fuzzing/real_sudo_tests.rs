//! The `sudoers_rule` fuzz target's property, checked against the real visudo and sudo of this
//! host on a sample, since running them on every one of millions of inputs is too slow. The
//! sample is the target's checked-in seeds plus cases generated from a fixed seed out of the
//! characters that matter to sudoers and fnmatch. Every rule jitd renders from them must pass
//! `visudo -cf` and read back (`sudoers_readback`) as exactly its argv; a handful, installed
//! for a real user through jitd's own installer, must let `sudo -l -U user CMD…` allow exactly
//! that command line and refuse its near misses.

use crate::core::recording::Record;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{Duration as ChronoDuration, TimeZone, Utc};

use super::sudoers_case::SudoersCase;
use super::sudoers_readback::read_back;
use crate::shell::host::sudoers::SudoersDir;

/// Characters sudoers or fnmatch give a meaning to, plus plain and non-ASCII ones.
const ALPHABET: &[&str] = &[
    "a", "Z", "0", "-", ".", "/", "+", "\\", "*", "?", "[", "]", "^", "$", "\"", "'", ",", ":",
    "=", "#", "!", "(", ")", "{", "}", "~", "%", "@", "&", ";", "|", "<", ">", "`", "é", "中",
    "\u{a0}", " ",
];
const PROGRAMS: &[&str] = &[
    "/bin/echo",
    "/usr/bin/printf",
    "/opt/a+b/c@d%e_f-g.h",
    "/x/.hidden",
    "/bin/echo/",
    "/usr/./bin/id",
    "/usr/bin/sudoedit",
];

/// xorshift64: a fixed, dependency-free sequence, so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn generated(count: usize) -> Vec<SudoersCase> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let times = [
        None,
        Some(Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap()),
        Some(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap()),
        Some(Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()),
    ];
    (0..count)
        .map(|_| {
            let mut argv = vec![PROGRAMS[rng.below(PROGRAMS.len())].to_string()];
            for _ in 0..rng.below(5) {
                let len = 1 + rng.below(6);
                argv.push(
                    (0..len)
                        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                        .collect(),
                );
            }
            SudoersCase {
                id: format!("g{}", rng.below(1000)),
                uid: [0, 1, 1000, 65534, u32::MAX - 1][rng.below(5)],
                not_after: times[rng.below(times.len())],
                argv,
            }
        })
        .collect()
}

fn seeds() -> Vec<SudoersCase> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/sudoers_rule");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
        .iter()
        .filter_map(|f| SudoersCase::from_bytes(&std::fs::read(f).unwrap()))
        .collect()
}

/// Renders every case; returns the accepted ones with their text.
fn rendered(cases: &[SudoersCase]) -> Vec<(SudoersCase, String)> {
    cases
        .iter()
        .filter_map(|c| {
            super::render_rule(&c.id, c.uid, &c.argv, c.not_after)
                .ok()
                .map(|text| (c.clone(), text))
        })
        .collect()
}

fn visudo_check(text: &str) -> Result<(), String> {
    let dir = jit_tests::TempDir::new("fz-visudo");
    let file = dir.path().join("rule");
    std::fs::write(&file, text).unwrap();
    let out = Command::new("/usr/sbin/visudo")
        .arg("-cf")
        .arg(&file)
        .output()
        .expect("run visudo");
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

#[test]
fn every_rendered_sample_rule_passes_visudo_and_reads_back_as_its_argv() {
    let mut cases = seeds();
    cases.extend(generated(300));
    let accepted = rendered(&cases);
    // The sample must exercise both sides: rules written and commands refused.
    assert!(
        accepted.len() >= 50 && accepted.len() < cases.len(),
        "{} of {} accepted",
        accepted.len(),
        cases.len()
    );
    // One visudo run over all of them (each rule is its own two lines), then one per rule
    // only if that fails, to name the rule.
    let all: String = accepted.iter().map(|(_, t)| t.as_str()).collect();
    if visudo_check(&all).is_err() {
        for (case, text) in &accepted {
            if let Err(e) = visudo_check(text) {
                panic!("visudo rejects the rule for {case:?}:\n{text}{e}");
            }
        }
    }
    for (case, text) in &accepted {
        let back = read_back(text).unwrap_or_else(|e| panic!("{case:?}:\n{text}{e}"));
        assert_eq!(back.path, case.argv[0], "{text}");
        let args = (case.argv.len() > 1).then(|| case.argv[1..].join(" "));
        assert_eq!(back.args, args, "{text}");
        assert_eq!(back.uid, case.uid, "{text}");
    }
}

/// Command lines a wrong rule would let through: one more argument, one fewer, a changed last
/// argument, and each argument as a glob or a lost escape would read it.
fn near_misses(argv: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut more = argv.to_vec();
    more.push("x".into());
    out.push(more);
    if argv.len() > 1 {
        out.push(argv[..argv.len() - 1].to_vec());
        let mut changed = argv.to_vec();
        changed.last_mut().unwrap().push('x');
        out.push(changed);
    } else {
        out.push(vec![argv[0].clone(), "\"\"".into()]);
    }
    for (i, arg) in argv.iter().enumerate().skip(1) {
        for alt in [arg.replace(['*', '?'], "q"), arg.replace('\\', "")] {
            if alt != *arg && !alt.is_empty() {
                let mut v = argv.to_vec();
                v[i] = alt;
                out.push(v);
            }
        }
    }
    out
}

/// A drop-in in the real /etc/sudoers.d, removed on drop (also when an assertion fails).
struct Installed<'a> {
    dir: &'a SudoersDir,
    id: String,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        let _ = self.dir.remove(&self.id);
    }
}

fn sudo_allows(user: &str, argv: &[String]) -> bool {
    let out = Command::new("sudo")
        .args(["-n", "-l", "-U", user, "--"])
        .args(argv)
        .output()
        .expect("run sudo -l");
    out.status.success()
}

#[test]
fn real_sudo_allows_exactly_the_rendered_command_line_of_a_sample() {
    let user = jit_tests::TestUser::create("fz");
    let _shared = jit_tests::share_real_sudoers();
    let dir = SudoersDir::new(PathBuf::from("/etc/sudoers.d"));
    // The samples whose arguments hold the most characters sudoers or fnmatch treat specially,
    // run as /bin/echo (a program the installer trusts); plus one without arguments.
    let special = |c: &SudoersCase| {
        c.argv[1..]
            .iter()
            .flat_map(|a| a.chars())
            .filter(|ch| r#"\*?[]^",:=#!"#.contains(*ch))
            .count()
    };
    let mut sample: Vec<SudoersCase> = rendered(&generated(300))
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    sample.sort_by_key(|c| std::cmp::Reverse(special(c)));
    sample.truncate(6);
    sample.push(SudoersCase {
        id: String::new(),
        uid: 0,
        not_after: None,
        argv: vec![String::new()],
    });
    for (n, case) in sample.iter().enumerate() {
        let mut argv = case.argv.clone();
        argv[0] = "/bin/echo".into();
        let grant = Installed {
            dir: &dir,
            id: format!("fz{}x{n}", std::process::id()),
        };
        dir.install(
            &grant.id,
            user.uid,
            &user.name,
            &argv,
            Utc::now() + ChronoDuration::minutes(5),
            Record::Off,
        )
        .unwrap_or_else(|e| panic!("install {argv:?}: {e}"));
        let allowed = sudo_allows(&user.name, &argv);
        let leaked: Vec<Vec<String>> = near_misses(&argv)
            .into_iter()
            .filter(|m| sudo_allows(&user.name, m))
            .collect();
        drop(grant);
        assert!(allowed, "sudo refuses the granted {argv:?}");
        assert!(
            leaked.is_empty(),
            "a grant of {argv:?} also allows {leaked:?}"
        );
    }
}
