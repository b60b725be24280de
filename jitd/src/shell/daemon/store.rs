//! Crash-safe persistence of requests. The daemon talks to the narrow [`Store`] trait so a
//! shared store (etcd, for a fleet) can replace the local one; [`FileStore`] is the embedded
//! default: one JSON file per request, each write is temp file → fsync → rename → fsync dir,
//! so after a crash a request is either its old or its new version, never torn.
//!
//! Live requests (pending, active, and ended break-glass grants awaiting review) are
//! `requests/<id>.json`. History, a request that ended, is `requests/ended/<day>/<id>.json`,
//! filed under the UTC day it ended: startup reads only the days within `retention`, and
//! forgetting a day past it is removing its directory, so years of history cost neither
//! startup time nor memory.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};

use crate::core::model::{GrantId, Request};
use crate::shell::atomic_file::{check_trusted_dir, fsync_dir, write_atomic, TrustedDir};

/// Where records jitd would not enforce at startup are kept, next to `requests`.
pub const QUARANTINE: &str = "quarantine";
/// History's directory, inside `requests`.
pub const ENDED: &str = "ended";
const DAY: &str = "%Y-%m-%d";

pub trait Store: Send + Sync {
    /// Every stored live request and the history that ended on or after `history_since`'s
    /// day, plus a note for each file that could not be read (set aside).
    fn load_all(&self, history_since: DateTime<Utc>) -> io::Result<(Vec<Request>, Vec<String>)>;
    /// Durably stores `request`; when this returns Ok the change survives a crash.
    fn put(&self, request: &Request) -> io::Result<()>;
    /// Moves request `id`'s record out of what is loaded and enforced, keeping it as evidence;
    /// returns where it is now.
    fn quarantine(&self, id: &GrantId) -> io::Result<String>;
    /// Removes stored history of the days wholly before `cutoff`; returns how many records
    /// went. Slow for a large history: call it where nobody waits on it.
    fn forget_history_before(&self, cutoff: DateTime<Utc>) -> io::Result<usize>;
    /// Whether a record of `id` was found unreadable and set aside (`load_all` reported it):
    /// its request was stored, whatever the record says now.
    fn set_aside_unreadable(&self, id: &GrantId) -> bool;
}

pub struct FileStore {
    dir: PathBuf,
    ended: PathBuf,
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
        let ended = dir.join(ENDED);
        Ok(FileStore { dir, ended })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn day_dir(&self, day: NaiveDate) -> PathBuf {
        self.ended.join(day.format(DAY).to_string())
    }

    /// History's days on disk, with their directories; other names are not jitd's and are
    /// left alone.
    fn days(&self) -> io::Result<Vec<(NaiveDate, PathBuf)>> {
        let entries = match fs::read_dir(&self.ended) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other?,
        };
        let mut days = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if let Some(day) = name
                .to_str()
                .and_then(|n| NaiveDate::parse_from_str(n, DAY).ok())
            {
                days.push((day, entry.path()));
            }
        }
        days.sort();
        Ok(days)
    }

    /// Creates (root-only) the directory of `day`'s history unless it is there.
    fn ensure_day_dir(&self, day: NaiveDate) -> io::Result<PathBuf> {
        let dir = self.day_dir(day);
        match fs::symlink_metadata(&dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)?;
                fsync_dir(&self.ended)?;
                fsync_dir(&self.dir)?;
            }
            Err(e) => return Err(e),
        }
        check_trusted_dir(&self.ended)?;
        check_trusted_dir(&dir)?;
        Ok(dir)
    }
}

/// Reads and parses every entry of the directories, spread over the CPUs: with 100,000 files,
/// reading and parsing is most of the startup time. Each directory is opened once and its
/// files by name relative to it ([`TrustedDir`]).
fn load_dirs(dirs: &[PathBuf]) -> io::Result<Vec<Option<Result<Request, Problem>>>> {
    let mut opened = Vec::with_capacity(dirs.len());
    let mut entries: Vec<(usize, String)> = Vec::new();
    for path in dirs {
        let dir = TrustedDir::open(path)?;
        for entry in fs::read_dir(path)? {
            entries.push((
                opened.len(),
                entry?.file_name().to_string_lossy().into_owned(),
            ));
        }
        opened.push(dir);
    }
    let opened = &opened;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let chunk = entries.len().div_ceil(threads).max(1);
    let loaded: Vec<Vec<Option<Result<Request, Problem>>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(|(d, n)| load_one(&opened[*d], n)).collect())
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join())
            .collect::<Result<Vec<Vec<Option<Result<Request, Problem>>>>, _>>()
    })
    // Never start with part of the records: a missing grant would be taken for ended.
    .map_err(|_| io::Error::other("a thread loading the state files panicked"))?;
    Ok(loaded.into_iter().flatten().collect())
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
fn load_one(dir: &TrustedDir, name: &str) -> Option<Result<Request, Problem>> {
    if name.starts_with('.') && name.ends_with(".tmp") {
        // A write that crashed before its rename: the old version is still in place.
        let _ = fs::remove_file(dir.path().join(name));
        return None;
    }
    if !name.ends_with(".json") {
        return None;
    }
    let parsed = match dir.read(name) {
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
            let path = dir.path().join(name);
            let aside = path.with_extension("json.corrupt");
            let _ = fs::rename(&path, &aside);
            Err(Problem::Noted(format!(
                "{name}: unreadable ({e}); moved to {}",
                aside.display()
            )))
        }
    })
}

impl Store for FileStore {
    fn set_aside_unreadable(&self, id: &GrantId) -> bool {
        let name = format!("{id}.json.corrupt");
        let days = self.days().unwrap_or_default();
        std::iter::once(self.dir.clone())
            .chain(days.into_iter().map(|(_, dir)| dir))
            .any(|dir| fs::symlink_metadata(dir.join(&name)).is_ok())
    }

    fn load_all(&self, history_since: DateTime<Utc>) -> io::Result<(Vec<Request>, Vec<String>)> {
        let first_day = history_since.date_naive();
        let mut dirs = vec![self.dir.clone()];
        if fs::symlink_metadata(&self.ended).is_ok() {
            check_trusted_dir(&self.ended)?;
        }
        for (day, dir) in self.days()? {
            if day >= first_day {
                check_trusted_dir(&dir)?;
                dirs.push(dir);
            }
        }
        let mut requests: Vec<Request> = Vec::new();
        let mut problems = Vec::new();
        for item in load_dirs(&dirs)?.into_iter().flatten() {
            match item {
                Ok(r) => requests.push(r),
                Err(Problem::Noted(p)) => problems.push(p),
                // Never start on records someone else could have written.
                Err(Problem::Untrusted(e)) => return Err(e),
            }
        }
        // Within one directory names are unique and each record is its file's name, so an
        // id can only come twice from two directories (this walk was a twentieth of the
        // startup of 100,000 grants with no history to read).
        if dirs.len() == 1 {
            return Ok((requests, problems));
        }
        // A crash while a request moved into history leaves both files: the ended one is the
        // later (an ended request never lives again), and the live one goes.
        let ended: std::collections::HashSet<GrantId> = requests
            .iter()
            .filter(|r| r.history_since().is_some())
            .map(|r| r.id.clone())
            .collect();
        let mut seen = std::collections::HashSet::new();
        requests.retain(|r| {
            if r.history_since().is_none() && ended.contains(&r.id) {
                let _ = fs::remove_file(self.path(r.id.as_str()));
                return false;
            }
            seen.insert(r.id.clone())
        });
        Ok((requests, problems))
    }

    fn put(&self, request: &Request) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(request)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let Some(ended) = request.history_since() else {
            return write_atomic(&self.path(request.id.as_str()), &bytes, 0o600);
        };
        // Into history: the new file first, then the live one goes (see `load_all`).
        let dir = self.ensure_day_dir(ended.date_naive())?;
        write_atomic(&dir.join(format!("{}.json", request.id)), &bytes, 0o600)?;
        match fs::remove_file(self.path(request.id.as_str())) {
            Ok(()) => fsync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
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

    fn forget_history_before(&self, cutoff: DateTime<Utc>) -> io::Result<usize> {
        let mut forgotten = 0;
        for (day, dir) in self.days()? {
            // A day goes once all of it is past the cutoff.
            if day >= cutoff.date_naive() {
                break;
            }
            check_trusted_dir(&dir)?;
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                fs::remove_file(entry.path())?;
                forgotten += 1;
            }
            fs::remove_dir(&dir)?;
        }
        if forgotten > 0 {
            fsync_dir(&self.ended)?;
        }
        Ok(forgotten)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use jit_proto::Target;
    use jit_tests::TempDir;

    use super::*;
    use crate::core::lifecycle::{By, Submission};

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
    }

    fn open(id: &str, at: DateTime<Utc>) -> Request {
        Request::open(
            GrantId::try_from(id.to_string()).unwrap(),
            Submission {
                uid: 1001,
                user: "alice".into(),
                target: Target::Ssh,
                duration: Duration::minutes(15),
                reason: "deploy".into(),
                ticket: None,
                role: None,
                approvals_required: 1,
                approver_groups: vec![],
                record: crate::core::recording::Record::Off,
            },
            at,
            Duration::hours(1),
        )
    }

    /// A request opened and cancelled at `at`.
    fn ended(id: &str, at: DateTime<Utc>) -> Request {
        let mut r = open(id, at);
        r.cancel(&By::user("alice", 1001), at).unwrap();
        r
    }

    fn stored(dir: &TempDir) -> FileStore {
        FileStore::open(dir.path()).unwrap()
    }

    fn ids(requests: &[Request]) -> Vec<String> {
        let mut ids: Vec<String> = requests.iter().map(|r| r.id.to_string()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_request_that_ends_moves_from_the_live_records_to_its_days_history() {
        let dir = TempDir::new("store");
        let store = stored(&dir);
        let live = open("alice00001", t(2, 10));
        store.put(&live).unwrap();
        let file = dir.path().join("requests/alice00001.json");
        assert!(file.exists());
        store.put(&ended("alice00001", t(2, 11))).unwrap();
        assert!(!file.exists(), "the live record stayed");
        assert!(dir
            .path()
            .join("requests/ended/2026-03-02/alice00001.json")
            .exists());
        let (loaded, problems) = store.load_all(t(1, 0)).unwrap();
        assert_eq!(ids(&loaded), ["alice00001"]);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(loaded[0].history_since().is_some());
    }

    #[test]
    fn a_crash_halfway_into_history_loads_the_ended_version_once() {
        let dir = TempDir::new("store");
        let store = stored(&dir);
        // The state a crash between writing the history file and removing the live one leaves.
        store.put(&ended("alice00001", t(2, 11))).unwrap();
        let live = open("alice00001", t(2, 10));
        write_atomic(
            &dir.path().join("requests/alice00001.json"),
            &serde_json::to_vec(&live).unwrap(),
            0o600,
        )
        .unwrap();
        let (loaded, _) = store.load_all(t(1, 0)).unwrap();
        assert_eq!(ids(&loaded), ["alice00001"]);
        assert!(loaded[0].history_since().is_some(), "the live version won");
        assert!(!dir.path().join("requests/alice00001.json").exists());
    }

    #[test]
    fn history_is_read_and_forgotten_by_whole_days() {
        let dir = TempDir::new("store");
        let store = stored(&dir);
        store.put(&ended("alice00001", t(1, 23))).unwrap();
        store.put(&ended("alice00002", t(2, 1))).unwrap();
        store.put(&ended("alice00003", t(3, 1))).unwrap();
        store.put(&open("alice00004", t(1, 1))).unwrap();
        // Days before the first day asked for are not even read; the first day is, whole.
        let (loaded, _) = store.load_all(t(2, 12)).unwrap();
        assert_eq!(ids(&loaded), ["alice00002", "alice00003", "alice00004"]);
        // Forgetting stops at the cutoff's day: 2 March is not wholly past at noon.
        assert_eq!(store.forget_history_before(t(2, 12)).unwrap(), 1);
        assert!(!dir.path().join("requests/ended/2026-03-01").exists());
        assert!(dir.path().join("requests/ended/2026-03-02").exists());
        let (loaded, _) = store.load_all(t(1, 0)).unwrap();
        assert_eq!(ids(&loaded), ["alice00002", "alice00003", "alice00004"]);
        assert_eq!(
            store.forget_history_before(t(3, 0)).unwrap(),
            1,
            "a day ends at midnight"
        );
    }

    #[test]
    fn a_break_glass_grant_awaiting_review_is_not_history_until_reviewed() {
        let dir = TempDir::new("store");
        let store = stored(&dir);
        let mut r = open("alice00001", t(1, 1));
        r.grant_at_once(&By::break_glass(), "break-glass".into(), true, t(1, 1))
            .unwrap();
        r.revoke(&By::user("root", 0), "over".into(), t(1, 2))
            .unwrap();
        store.put(&r).unwrap();
        assert!(dir.path().join("requests/alice00001.json").exists());
        assert_eq!(store.forget_history_before(t(20, 0)).unwrap(), 0);
        let (loaded, _) = store.load_all(t(20, 0)).unwrap();
        assert_eq!(
            ids(&loaded),
            ["alice00001"],
            "an unreviewed break-glass was forgotten"
        );
        r.review(&By::user("root", 0), "fine".into(), t(20, 1))
            .unwrap();
        store.put(&r).unwrap();
        assert!(dir
            .path()
            .join("requests/ended/2026-03-01/alice00001.json")
            .exists());
    }

    #[test]
    fn history_nobody_but_root_could_write_is_required_of_every_day_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("store");
        let store = stored(&dir);
        store.put(&ended("alice00001", t(2, 1))).unwrap();
        let day = dir.path().join("requests/ended/2026-03-02");
        fs::set_permissions(&day, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            store.load_all(t(1, 0)).is_err(),
            "a world-writable day was read"
        );
        // A day outside retention is not read at all, but it is not removed blindly either.
        assert!(store.load_all(t(3, 0)).is_ok());
        assert!(store.forget_history_before(t(3, 0)).is_err());
    }
}
