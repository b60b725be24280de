//! Links the unwinder (libgcc_eh) into pam_jit.so instead of depending on libgcc_s.so.1.
//!
//! Why: Rust's std asks the linker for `-lgcc_s` (its unwinder, which the module needs because
//! every hook catches panics). sshd and sudo are C programs that never load libgcc_s, so each
//! PAM transaction that dlopen()s pam_jit.so also loaded and unloaded libgcc_s: about 140 µs of
//! a ~190 µs module load, measured with dlopen/dlclose in a C process. A linker script named
//! `libgcc_s.so` placed first on the search path makes that `-lgcc_s` resolve to the static
//! archive, as `gcc -static-libgcc` does for C shared libraries. The module's panics never
//! cross its boundary (caught in every hook), so a second unwinder in the process is harmless.
//! Only done for the GNU toolchain on Linux, where libgcc_eh.a exists.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || target_env != "gnu" {
        return;
    }
    let Some(archive) = static_unwinder() else {
        println!(
            "cargo:warning=libgcc_eh.a not found (cc -print-file-name): pam_jit.so will need \
             libgcc_s.so.1, which costs ~140 us per PAM transaction in sshd and sudo"
        );
        return;
    };
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let dir = out.join("static-unwinder");
    let script = format!("INPUT({})\n", archive.display());
    if fs::create_dir_all(&dir).is_err() || fs::write(dir.join("libgcc_s.so"), script).is_err() {
        return;
    }
    println!("cargo:rustc-link-search=native={}", dir.display());
}

/// The C compiler's static unwinder archive, if it has one.
fn static_unwinder() -> Option<PathBuf> {
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // An unknown file is echoed back bare, without a directory.
    (path.is_absolute() && path.is_file()).then_some(path)
}
