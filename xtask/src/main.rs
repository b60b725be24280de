//! `cargo run -p xtask -- docs DIR`: writes the man pages (`DIR/man8/jitd.8`,
//! `DIR/man1/jit-elevate.1`) and the bash, zsh and fish completions of both CLIs, generated from
//! the very clap definitions the binaries are built from (jitd's `cli/args.rs` and jit-elevate's `cli.rs`, compiled in here).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

// jitd's clap definitions name their neighbours by crate path (`crate::cli::audit_args`,
// `crate::config::config_file`): the same paths are laid out here.
#[path = "../../jitd/src/cli"]
mod cli {
    #[allow(dead_code)] // only the clap definitions are used here, not the helpers around them
    pub mod args;
    pub mod audit_args;
}
mod config {
    pub mod config_file;
}

#[allow(dead_code)]
#[path = "../../jit-elevate/src/cli.rs"]
mod elevate_cli;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cmd, dir] = args.as_slice() else {
        eprintln!("usage: cargo run -p xtask -- docs OUT_DIR");
        return ExitCode::from(2);
    };
    if cmd != "docs" {
        eprintln!("xtask: unknown task {cmd:?}; the only task is `docs OUT_DIR`");
        return ExitCode::from(2);
    }
    match write_docs(Path::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_docs(out: &Path) -> std::io::Result<()> {
    write_one(out, cli::args::Cli::command(), "8")?;
    write_one(out, elevate_cli::Cli::command(), "1")
}

/// The man page (with its subcommands' pages) in `out/man<section>/` and one completion file
/// per shell in `out/<shell>/`.
fn write_one(out: &Path, cmd: clap::Command, section: &str) -> std::io::Result<()> {
    let name = cmd.get_name().to_string();
    let man_dir = out.join(format!("man{section}"));
    std::fs::create_dir_all(&man_dir)?;
    write_man(&man_dir, cmd.clone(), section)?;

    for (shell, dir, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let dir: PathBuf = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), &name, &mut text);
        std::fs::write(dir.join(file), text)?;
    }
    Ok(())
}

/// `name.section`, then one page per subcommand (`jitd-approve.8`, …), which the parent page
/// lists under SUBCOMMANDS.
fn write_man(dir: &Path, mut cmd: clap::Command, section: &str) -> std::io::Result<()> {
    cmd.build();
    let name = cmd.get_name().to_string();
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        // clap takes `&'static str` names (without its "string" feature); this process writes
        // a handful of pages and exits.
        let full: &'static str = format!("{name}-{}", sub.get_name()).leak();
        let sub = sub.clone().name(full);
        write_man(dir, sub, section)?;
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .section(section)
        .render(&mut page)?;
    std::fs::write(dir.join(format!("{name}.{section}")), page)
}
