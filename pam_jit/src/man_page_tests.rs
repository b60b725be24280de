//! pam_jit(8) (packaging/man/pam_jit.8) documents exactly the arguments the module takes: the
//! `.TP` entries between its `.\" arguments:` and `.\" end` markers, against `args::ARGUMENTS`.

use std::collections::BTreeSet;

use crate::args::ARGUMENTS;

/// Each `.TP` entry's name (up to `=` or a space) inside the arguments region.
fn documented(page: &str) -> BTreeSet<String> {
    let region = page
        .split("\n.\\\" arguments:\n")
        .nth(1)
        .and_then(|r| r.split("\n.\\\" end\n").next())
        .expect("pam_jit.8 has an `.\\\" arguments:` … `.\\\" end` region");
    let lines: Vec<&str> = region.lines().collect();
    lines
        .windows(2)
        .filter(|pair| pair[0] == ".TP")
        .map(|pair| {
            let (_, entry) = pair[1].split_once(' ').unwrap_or(("", pair[1]));
            entry
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn the_man_page_documents_every_argument_and_no_other() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/man/pam_jit.8");
    let page = std::fs::read_to_string(path).unwrap();
    let listed: BTreeSet<String> = ARGUMENTS.iter().map(|(n, _)| n.to_string()).collect();
    let documented = documented(&page);
    assert_eq!(
        documented, listed,
        "packaging/man/pam_jit.8 (left) and pam_jit/src/args.rs ARGUMENTS (right) differ: \
         each argument is a .TP entry in the page's OPTIONS"
    );
}

#[test]
fn the_region_parser_reads_names() {
    let page = "x\n.\\\" arguments:\n.TP\n.BI socket= path\ntext\n.TP\n.BR fail=closed | open\n.TP\n.B debug\n.\\\" end\n.TP\n.B outside\n";
    let found: Vec<String> = documented(page).into_iter().collect();
    assert_eq!(found, ["debug", "fail", "socket"]);
}
