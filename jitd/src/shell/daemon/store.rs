//! Crash-safe persistence of requests. The daemon talks to the narrow [`Store`] trait so a
//! shared store (etcd, for a fleet) can replace the local one; [`FileStore`] is the embedded
//! default: one JSON file per request, each write is temp file → fsync → rename → fsync dir,
//! so after a crash a request is either its old or its new version, never torn.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::core::model::{GrantId, Request};
use crate::shell::atomic_file::{check_trusted_dir, fsync_dir, read_trusted, write_atomic};

/// Where records jitd would not enforce at startup are kept, next to `requests`.
pub const QUARANTINE: &str = "quarantine";

pub trait Store: Send + Sync {
    /// Every stored request, plus a note for each file that could not be read (set aside).
    fn load_all(&self) -> io::Result<(Vec<Request>, Vec<String>)>;
    /// Durably stores `request`; when this returns Ok the change survives a crash.
    fn put(&self, request: &Request) -> io::Result<()>;
    /// Moves request `id`'s record out of what is loaded and enforced, keeping it as evidence;
    /// returns where it is now.
    fn quarantine(&self, id: &GrantId) -> io::Result<String>;
}

pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Opens (creating, root-only) `<state_dir>/requests`, refusing it unless it is jitd's
    /// alone (see [`check_trusted_dir`]).
    pub fn open(state_dir: &Path) -> io::Result<FileStore> {
        let dir = state_dir.join("requests");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        check_trusted_dir(&dir)?;
        Ok(FileStore { dir })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }
}

/// What loading one directory entry found wrong.
enum Problem {
    /// Unreadable or misnamed: set aside or ignored, and reported.
    Noted(String),
    /// Not jitd's alone (another owner, writable by others, a symbolic link): jitd must not
    /// start on it.
    Untrusted(io::Error),
}

/// Reads and parses one directory entry: `None` for a file that is not a request, else the
/// request or what was wrong with the file. The file is opened without following a link and
/// must be jitd's alone.
fn load_one(path: &Path, name: &str) -> Option<Result<Request, Problem>> {
    if name.starts_with('.') && name.ends_with(".tmp") {
        // A write that crashed before its rename: the old version is still in place.
        let _ = fs::remove_file(path);
        return None;
    }
    if !name.ends_with(".json") {
        return None;
    }
    let parsed = match read_trusted(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Some(Err(Problem::Untrusted(e)))
        }
        Err(e) => Err(e.to_string()),
        Ok(b) => serde_json::from_slice::<Request>(&b).map_err(|e| e.to_string()),
    };
    Some(match parsed {
        Ok(mut r) if format!("{}.json", r.id) == name => {
            r.shrink_to_fit();
            Ok(r)
        }
        Ok(r) => Err(Problem::Noted(format!(
            "{name}: holds request {} (ignored)",
            r.id
        ))),
        Err(e) => {
            let aside = path.with_extension("json.corrupt");
            let _ = fs::rename(path, &aside);
            Err(Problem::Noted(format!(
                "{name}: unreadable ({e}); moved to {}",
                aside.display()
            )))
        }
    })
}

impl Store for FileStore {
    fn load_all(&self) -> io::Result<(Vec<Request>, Vec<String>)> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            entries.push((
                entry.path(),
                entry.file_name().to_string_lossy().into_owned(),
            ));
        }
        // One file per request: with 100,000 of them, reading and parsing is most of the
        // startup time, so it is spread over the CPUs.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let chunk = entries.len().div_ceil(threads).max(1);
        let loaded: Vec<Vec<Option<Result<Request, Problem>>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = entries
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(|(p, n)| load_one(p, n)).collect()))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join())
                .collect::<Result<Vec<Vec<Option<Result<Request, Problem>>>>, _>>()
        })
        // Never start with part of the records: a missing grant would be taken for ended.
        .map_err(|_| io::Error::other("a thread loading the state files panicked"))?;
        let mut requests = Vec::with_capacity(entries.len());
        let mut problems = Vec::new();
        for item in loaded.into_iter().flatten().flatten() {
            match item {
                Ok(r) => requests.push(r),
                Err(Problem::Noted(p)) => problems.push(p),
                // Never start on records someone else could have written.
                Err(Problem::Untrusted(e)) => return Err(e),
            }
        }
        Ok((requests, problems))
    }

    fn put(&self, request: &Request) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(request)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        write_atomic(&self.path(request.id.as_str()), &bytes, 0o600)
    }

    /// To `<state_dir>/quarantine/<id>.<when>.json` (root-only), so a later record of the same
    /// id never replaces it.
    fn quarantine(&self, id: &GrantId) -> io::Result<String> {
        let aside = self
            .dir
            .parent()
            .ok_or_else(|| io::Error::other("the requests directory has no parent"))?
            .join(QUARANTINE);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&aside)?;
        check_trusted_dir(&aside)?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let to = aside.join(format!("{id}.{stamp}.json"));
        fs::rename(self.path(id.as_str()), &to)?;
        fsync_dir(&self.dir)?;
        fsync_dir(&aside)?;
        Ok(to.display().to_string())
    }
}
