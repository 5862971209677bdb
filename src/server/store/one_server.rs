//! One server per SQLite file.
//!
//! A server on SQLite keeps what the gate decides from in its own memory
//! (the usage view, the memo of open write groups), loaded from the file
//! and changed only by its own writes. A second server on the same file
//! would decide from a memory that misses the first one's work, so `tally
//! serve` takes an exclusive lock beside the database before it opens it,
//! and a second one is refused with who holds it. The lock is the
//! kernel's (`flock`): it ends with the process however the process ends,
//! so a crash never leaves a stale one. The CLI's other commands (`apikey
//! create`, `admin create`, `seed`, `prices import`) take no lock and keep
//! working beside a running server.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Held for as long as this process serves the file.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the serving lock of the SQLite database at `database_url`, or
/// says which process serves it already. `None` for PostgreSQL, where any
/// number of servers share the database.
pub fn lock_for_serving(database_url: &str) -> anyhow::Result<Option<ServeLock>> {
    let Some(db) = super::sqlite_file(database_url) else { return Ok(None) };
    let path = lock_path(&db)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the serving lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                pid => format!("process {pid}"),
            };
            bail!(
                "{holder} is already serving {}: one `tally serve` per SQLite file (a second would decide limits from \
                 a memory that misses the first one's writes). Stop it first, or run several servers on PostgreSQL.",
                db.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    // Who holds it, for the next one's message.
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(Some(ServeLock { _file: file, path }))
}

/// `<db>.serve-lock` in the database's directory, the same for every
/// spelling of the path (relative, through a symlinked directory).
fn lock_path(db: &Path) -> anyhow::Result<PathBuf> {
    let dir = match db.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from("."),
    };
    // The store makes a missing directory when it opens the file; the lock
    // comes first, so it makes it here.
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("cannot resolve directory {}", dir.display()))?;
    let name = db.file_name().with_context(|| format!("{} names no file", db.display()))?;
    let mut lock = name.to_os_string();
    lock.push(".serve-lock");
    Ok(dir.join(lock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_server_on_one_file_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("tally-lock-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let url = format!("sqlite://{}/tally.db?mode=rwc", dir.display());
        let first = lock_for_serving(&url).unwrap().expect("SQLite takes a lock");
        // The same file by another spelling of its path.
        let other = format!("sqlite:{}/sub/../tally.db", dir.display());
        let err = lock_for_serving(&other).unwrap_err().to_string();
        assert!(err.contains(&format!("process {} is already serving", std::process::id())), "{err}");
        assert!(err.contains("PostgreSQL"), "{err}");
        // Another database in the same directory is its own.
        let elsewhere = lock_for_serving(&format!("sqlite://{}/other.db", dir.display())).unwrap();
        assert!(elsewhere.is_some());
        drop(first);
        assert!(lock_for_serving(&other).unwrap().is_some(), "the lock ends with its holder");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn postgres_and_memory_take_no_lock() {
        assert!(lock_for_serving("postgres://postgres@127.0.0.1/test").unwrap().is_none());
        assert!(lock_for_serving("sqlite::memory:").unwrap().is_none());
        assert_eq!(super::super::sqlite_file("sqlite://data/tally.db?mode=rwc"), Some(PathBuf::from("data/tally.db")));
        assert_eq!(super::super::sqlite_file("sqlite:tally.db"), Some(PathBuf::from("tally.db")));
    }
}
