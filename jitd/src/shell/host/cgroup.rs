//! One cgroup v2 leaf per grant, `<cgroup2 mount>/<base>/<grant id>`. A process moved into it
//! takes every later descendant with it, however it detaches (setsid, nohup, double fork,
//! tmux): re-parenting changes the parent, never the cgroup. `cgroup.kill` (Linux ≥ 5.14) ends
//! the whole leaf in one step. No controllers are enabled, so the leaves may hold processes
//! even where the root has controllers enabled.

use super::sudoers_rule::GrantFileId;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct GrantCgroups {
    /// `<mount>/<base>`.
    base: PathBuf,
    /// The same directory as `/proc/<pid>/cgroup` names it (`/<base>`).
    base_in_hierarchy: String,
}

/// The first cgroup2 mount point in /proc/self/mountinfo.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(unescape_mountinfo(left.split(' ').nth(4)?)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl GrantCgroups {
    /// `base` is one path component under the cgroup2 mount (jitd uses `jit`).
    pub fn new(mount: &Path, base: &str) -> GrantCgroups {
        GrantCgroups {
            base: mount.join(base),
            base_in_hierarchy: format!("/{base}"),
        }
    }

    #[cfg(test)]
    pub fn base(&self) -> &Path {
        &self.base
    }

    fn dir(&self, id: &GrantFileId) -> PathBuf {
        self.base.join(id.as_str())
    }

    /// Moves `pid` (and so all its future descendants) into the grant's leaf.
    pub fn adopt(&self, id: &GrantFileId, pid: u32) -> io::Result<()> {
        let procs = self.dir(id).join("cgroup.procs");
        // The move first: a grant's later sessions find its leaf there, and one write is all
        // they cost (a `create_dir_all` first was a stat and a failed mkdir per session).
        match fs::write(&procs, pid.to_string()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(self.dir(id))?;
                fs::write(procs, pid.to_string())
            }
            done => done,
        }
    }

    pub fn exists(&self, id: &GrantFileId) -> bool {
        self.dir(id).is_dir()
    }

    /// Pids in the leaf; empty when it does not exist.
    pub fn procs(&self, id: &GrantFileId) -> io::Result<Vec<u32>> {
        match fs::read_to_string(self.dir(id).join("cgroup.procs")) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Whether any live process is in the leaf (`cgroup.events` `populated`).
    pub fn populated(&self, id: &GrantFileId) -> io::Result<bool> {
        match fs::read_to_string(self.dir(id).join("cgroup.events")) {
            Ok(text) => Ok(text.lines().any(|l| l.trim() == "populated 1")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether `pid` is currently a member of the grant's leaf.
    pub fn contains(&self, id: &GrantFileId, pid: u32) -> bool {
        let want = format!("0::{}/{}", self.base_in_hierarchy, id.as_str());
        fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map(|t| t.lines().any(|l| l == want))
            .unwrap_or(false)
    }

    /// Whether `pid` belongs to the leaf of a grant other than `id`: the fallbacks must not end
    /// another grant's processes that share an audit session or a parent with this one.
    pub fn belongs_to_other_grant(&self, id: &GrantFileId, pid: u32) -> bool {
        let ours = format!("0::{}/{}", self.base_in_hierarchy, id.as_str());
        let any_grant = format!("0::{}/", self.base_in_hierarchy);
        fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map(|t| t.lines().any(|l| l.starts_with(&any_grant) && l != ours))
            .unwrap_or(false)
    }

    /// SIGKILLs everything in the leaf at once. `Ok(false)` when the kernel has no `cgroup.kill`
    /// (Linux < 5.14): the caller then kills pid by pid.
    pub fn kill_all(&self, id: &GrantFileId) -> io::Result<bool> {
        let file = self.dir(id).join("cgroup.kill");
        if !file.exists() {
            return Ok(false);
        }
        fs::write(file, "1").map(|()| true)
    }

    /// Removes the (empty) leaf; a missing leaf is fine.
    pub fn remove(&self, id: &GrantFileId) -> io::Result<()> {
        match fs::remove_dir(self.dir(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Grant ids that have a leaf.
    pub fn ids(&self) -> io::Result<Vec<String>> {
        let entries = match fs::read_dir(&self.base) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            if let Some(id) = entry.file_name().to_str() {
                if GrantFileId::parse(id).is_ok() {
                    ids.push(id.to_owned());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone_and_this_hosts_cgroup2_mount_is_found() {
        assert_eq!(unescape_mountinfo(r"/a\040b\\c"), r"/a b\\c");
        let mount = cgroup2_mount().expect("cgroup2 is mounted on this host");
        assert!(mount.join("cgroup.procs").exists(), "{}", mount.display());
    }
}
