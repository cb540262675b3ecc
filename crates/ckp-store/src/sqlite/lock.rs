//! One process per SQLite database. Two processes on one file would both run workers, reclaim each other's leases
//! and act as leader, so a run could execute twice. Opening a database takes an exclusive lock on `<db>.lock`
//! (an OS file lock: it dies with the process, even under `kill -9`) and writes the holder's PID there for the
//! message a second process gets. Stores opened on one file within one process share the lock.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::StoreError;

/// A held lock; released when the last store of the process on that database is dropped.
#[derive(Debug)]
pub(crate) struct DbLock {
    _file: File,
}

/// The locks this process holds, by lock file.
static HELD: Mutex<Option<HashMap<PathBuf, Weak<DbLock>>>> = Mutex::new(None);

/// Takes (or shares, within this process) the lock of the database at `db`.
pub(crate) fn lock(db: &Path) -> Result<Arc<DbLock>, StoreError> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = std::path::absolute(PathBuf::from(name))?;
    let mut held = HELD.lock().map_err(|_| StoreError::Closed)?;
    let held = held.get_or_insert_with(HashMap::new);
    if let Some(lock) = held.get(&path).and_then(Weak::upgrade) {
        return Ok(lock);
    }
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(StoreError::InUse { path: db.to_path_buf(), pid: text.trim().parse().ok() });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    let lock = Arc::new(DbLock { _file: file });
    held.retain(|_, w| w.strong_count() > 0);
    held.insert(path, Arc::downgrade(&lock));
    Ok(lock)
}
