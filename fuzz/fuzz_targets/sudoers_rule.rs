//! The sudoers rule renderer, from arbitrary grant ids, uids, expiry times and command lines.
//!
//! Property: the renderer either refuses, or writes a drop-in that sudo reads back
//! (`jitd::fuzzing::sudoers_readback`, an oracle built from sudo's lexer and matcher) as a
//! rule for exactly that uid, expiry (to the second, in UTC, within the years sudoers can
//! write) and program, allowing exactly the argument string the command line joins to — and
//! only command lines whose arguments cannot join to it any other way (no empty argument, no
//! blank inside one). The real visudo and sudo
//! check the oracle on a sample (jitd/src/fuzzing/real_sudo_tests.rs): running them on every
//! input would be far too slow here.
//!
//! Input: `SudoersCase`'s byte form (jitd/src/fuzzing/sudoers_case.rs).
#![no_main]

use chrono::DateTime;
use jitd::fuzzing::sudoers_case::SudoersCase;
use jitd::fuzzing::sudoers_readback::read_back;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(case) = SudoersCase::from_bytes(data) else {
        return;
    };
    let Ok(text) = jitd::fuzzing::render_rule(&case.id, case.uid, &case.argv, case.not_after)
    else {
        return;
    };
    let back = read_back(&text).unwrap_or_else(|e| panic!("{case:?} rendered as\n{text}: {e}"));
    assert_eq!(back.uid, case.uid, "{text}");
    assert_eq!(back.path, case.argv[0], "{text}");
    let args = &case.argv[1..];
    assert_eq!(
        back.args,
        (!args.is_empty()).then(|| args.join(" ")),
        "{text}"
    );
    for arg in args {
        assert!(
            !arg.is_empty() && !arg.contains([' ', '\t']),
            "{arg:?} cannot be told apart from other argument lists: {text}"
        );
    }
    // To the second, in UTC; an end outside the years sudoers can write (0000-9999) is
    // clamped into 1970..=9999, never past the grant.
    let last = DateTime::from_timestamp(253_402_300_799, 0).unwrap();
    let want = case.not_after.map(|t| {
        t.clamp(DateTime::UNIX_EPOCH, last)
            .format("%Y%m%d%H%M%SZ")
            .to_string()
    });
    assert_eq!(back.not_after, want, "{text}");
});
