//! Files jitd keeps in its state directory, shared by the store, the audit log and the cursor
//! files: durable replacement (a temp file in the same directory, fsync, rename, fsync the
//! directory — after a crash the file is its old or its new version, never torn), and opening
//! only what jitd's own user owns and nobody else can write, never through a symbolic link.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Makes a rename or unlink in `dir` durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// jitd's effective uid, asked of the kernel once (it never changes while jitd runs): every
/// state file read is checked against it.
fn euid() -> u32 {
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *EUID.get_or_init(|| nix::unistd::geteuid().as_raw())
}

/// What makes `meta` (of a file or directory jitd reads or writes state in) untrustworthy, if
/// anything: another owner than jitd's own user, or write permission for group or others.
pub fn untrusted_owner_or_mode(meta: &Metadata) -> Option<String> {
    let me = euid();
    if meta.uid() != me {
        return Some(format!(
            "is owned by uid {}, not by jitd's uid {me}",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "is writable by {} (mode {:04o})",
            if meta.mode() & 0o002 != 0 {
                "others"
            } else {
                "its group"
            },
            meta.mode() & 0o7777
        ));
    }
    None
}

/// The refusal for a state file or directory that is not jitd's alone: which path, what is
/// wrong, what to do.
pub fn untrusted(path: &Path, problem: &str) -> io::Error {
    let owner = if nix::unistd::geteuid().is_root() {
        "root:root".to_string()
    } else {
        nix::unistd::geteuid().to_string()
    };
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{p} {problem}: whoever can change it can change what jitd grants. If it is \
             jitd's, fix it with `chown {owner} {p} && chmod go-w {p}`; otherwise remove it",
            p = path.display()
        ),
    )
}

/// The refusal for a symbolic link where jitd keeps a file of its own.
pub fn symlink_refused(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} is a symbolic link: jitd follows no links in its state directory (one could \
             make it read or overwrite any file); remove the link and start jitd again",
            path.display()
        ),
    )
}

/// Opens `path` with `options` plus O_NOFOLLOW, and checks that what was opened is a regular
/// file that is jitd's alone (checked on the open descriptor, so nothing can be swapped in
/// between). A symbolic link is refused, never followed.
pub fn open_trusted(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    open_checked(path, options).map(|(file, _)| file)
}

fn open_checked(path: &Path, options: &mut OpenOptions) -> io::Result<(File, Metadata)> {
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                symlink_refused(path)
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(untrusted(path, "is not a regular file"));
    }
    if let Some(problem) = untrusted_owner_or_mode(&meta) {
        return Err(untrusted(path, &problem));
    }
    Ok((file, meta))
}

/// The whole of a file jitd keeps (see [`open_trusted`]).
pub fn read_trusted(path: &Path) -> io::Result<Vec<u8>> {
    let (file, meta) = open_checked(path, OpenOptions::new().read(true))?;
    read_whole(file, &meta)
}

/// Reads `file` to its end in one `read` as a rule: the buffer is sized from the `fstat` that
/// checked it, one byte over, and a short read of a regular file is its end. (jitd's files are
/// replaced by a rename, never rewritten in place, so the size cannot move under the read;
/// `read_to_end` would add a `statx`, an `lseek` and a second read, per file: startup reads
/// 100,000 of them.)
fn read_whole(mut file: File, meta: &Metadata) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; usize::try_from(meta.len()).unwrap_or(0) + 1];
    let mut filled = 0;
    loop {
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled < bytes.len() {
                    break;
                }
                // Grew since the fstat (a file jitd does not replace atomically).
                bytes.resize(filled * 2, 0);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// A directory of jitd's files, opened once and checked like [`check_trusted_dir`] (on the
/// descriptor), whose files are then opened by name relative to it: reading 100,000 records
/// walks no path and looks up no directory again per file.
pub struct TrustedDir {
    dir: File,
    path: std::path::PathBuf,
}

impl TrustedDir {
    pub fn open(path: &Path) -> io::Result<TrustedDir> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => symlink_refused(path),
                // With O_DIRECTORY, Linux reports a symbolic link as "not a directory" too.
                Some(libc::ENOTDIR)
                    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) =>
                {
                    symlink_refused(path)
                }
                Some(libc::ENOTDIR) => untrusted(path, "is not a directory"),
                _ => e,
            })?;
        if let Some(problem) = untrusted_owner_or_mode(&dir.metadata()?) {
            return Err(untrusted(path, &problem));
        }
        Ok(TrustedDir {
            dir,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole of file `name` in this directory, checked as [`read_trusted`] checks it.
    /// Opened with O_NOATIME: reading a record is no reason to write its inode back (on
    /// ext4, with `relatime`, the first read after each write did).
    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let path = || self.path.join(name);
        let c_name = std::ffi::CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a file name"))?;
        // O_NONBLOCK: a FIFO in the directory is refused below rather than blocking the open
        // (it is ignored for the regular files jitd reads).
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
        let open = |flags: libc::c_int| {
            // SAFETY: a valid directory descriptor and NUL-terminated name; the descriptor
            // returned, if any, is owned by the File made from it below and nowhere else.
            unsafe { libc::openat(self.dir.as_raw_fd(), c_name.as_ptr(), flags) }
        };
        let mut fd = open(flags | libc::O_NOATIME);
        if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
            // O_NOATIME is only for the file's owner: someone else's file opens without it,
            // to be refused by the ownership check below with the usual message.
            fd = open(flags);
        }
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::ELOOP) {
                symlink_refused(&path())
            } else {
                e
            });
        }
        // SAFETY: `fd` was just opened above and is owned by nothing else.
        let file = unsafe { File::from_raw_fd(fd) };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(untrusted(&path(), "is not a regular file"));
        }
        if let Some(problem) = untrusted_owner_or_mode(&meta) {
            return Err(untrusted(&path(), &problem));
        }
        read_whole(file, &meta)
    }
}

/// Checks a directory jitd keeps state in: a real directory (not a link to one), jitd's alone.
pub fn check_trusted_dir(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Err(symlink_refused(path));
    }
    if !meta.is_dir() {
        return Err(untrusted(path, "is not a directory"));
    }
    match untrusted_owner_or_mode(&meta) {
        Some(problem) => Err(untrusted(path, &problem)),
        None => Ok(()),
    }
}

/// Writes `bytes` to `path` atomically and durably, through a temporary file in the same
/// directory whose name starts with a dot (so nothing that lists the directory mistakes it
/// for a finished file). A stale temp file is removed first and the new one created with
/// O_EXCL and O_NOFOLLOW, so nothing planted at its name is followed or written through; the
/// rename replaces whatever is at `path` (a link included) without following it.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no directory"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let result = (|| {
        // Exactly `mode`, whatever jitd's umask (077) took away at creation: a file meant to
        // be read by others (metrics for node_exporter) must be.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    struct Scratch(std::path::PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!(
                "jitd-atomic-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_symlink_planted_as_a_state_file_is_refused_not_followed() {
        let s = Scratch::new("link");
        let target = s.0.join("target");
        fs::write(&target, b"secret").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let link = s.0.join("audit.head");
        symlink(&target, &link).unwrap();
        let err = read_trusted(&link).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = open_trusted(&link, OpenOptions::new().write(true)).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"secret");
    }

    #[test]
    fn a_temp_file_planted_as_a_symlink_is_replaced_not_written_through() {
        let s = Scratch::new("tmp");
        let victim = s.0.join("victim");
        fs::write(&victim, b"untouched").unwrap();
        symlink(&victim, s.0.join(".cursor.tmp")).unwrap();
        write_atomic(&s.0.join("cursor"), b"new", 0o600).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(read_trusted(&s.0.join("cursor")).unwrap(), b"new");
    }

    #[test]
    fn files_others_may_write_or_do_not_own_are_refused_with_the_fix() {
        let s = Scratch::new("mode");
        let f = s.0.join("audit.log");
        fs::write(&f, b"x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o620)).unwrap();
        let err = read_trusted(&f).unwrap_err().to_string();
        assert!(err.contains("writable by its group"), "{err}");
        assert!(err.contains("chmod go-w"), "{err}");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
        let err = read_trusted(&f).unwrap_err().to_string();
        assert!(err.contains("owned by uid 65534"), "{err}");
        assert!(err.contains("chown root:root"), "{err}");

        fs::set_permissions(&s.0, fs::Permissions::from_mode(0o775)).unwrap();
        let err = check_trusted_dir(&s.0).unwrap_err().to_string();
        assert!(err.contains("writable by its group"), "{err}");
    }

    #[test]
    fn records_read_through_their_directory_are_checked_like_any_state_file() {
        let s = Scratch::new("dir");
        fs::set_permissions(&s.0, fs::Permissions::from_mode(0o700)).unwrap();
        let good = s.0.join("alice00001.json");
        fs::write(&good, b"{\"id\":\"alice00001\"}").unwrap();
        fs::set_permissions(&good, fs::Permissions::from_mode(0o600)).unwrap();
        let dir = TrustedDir::open(&s.0).unwrap();
        assert_eq!(
            dir.read("alice00001.json").unwrap(),
            b"{\"id\":\"alice00001\"}"
        );
        // An empty file is read as empty, not as an error.
        fs::write(s.0.join("empty.json"), b"").unwrap();
        assert_eq!(dir.read("empty.json").unwrap(), b"");

        // Planted by someone else, writable by others, a link, a directory: refused by name.
        let theirs = s.0.join("bob00000001.json");
        fs::write(&theirs, b"{}").unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        let err = dir.read("bob00000001.json").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
        let open = s.0.join("carol000001.json");
        fs::write(&open, b"{}").unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o666)).unwrap();
        let err = dir.read("carol000001.json").unwrap_err().to_string();
        assert!(err.contains("writable by others"), "{err}");
        symlink(&good, s.0.join("dave0000001.json")).unwrap();
        let err = dir.read("dave0000001.json").unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        fs::create_dir(s.0.join("eve00000001.json")).unwrap();
        let err = dir.read("eve00000001.json").unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        // A FIFO would block a plain open until someone wrote to it: refused at once.
        nix::unistd::mkfifo(&s.0.join("fred0000001.json"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = dir.read("fred0000001.json").unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");

        // The directory itself must be jitd's alone, and not a link to one.
        let link = s.0.join("linked");
        symlink(&s.0, &link).unwrap();
        let err = TrustedDir::open(&link).err().unwrap().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        fs::set_permissions(&s.0, fs::Permissions::from_mode(0o777)).unwrap();
        let err = TrustedDir::open(&s.0).err().unwrap().to_string();
        assert!(err.contains("writable by others"), "{err}");
    }
}
