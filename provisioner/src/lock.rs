//! Advisory file locks under the data directory: one per provider, so two
//! processes working on the same provider take turns (and the second sees
//! what the first did), and one for the shared infrastructure (the network
//! and the managed Cassandra), so they are created once. The kernel drops a
//! lock when its process dies, so a crash never leaves one behind.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

/// Blocks until the lock `name` under `dir/locks/` is ours.
pub async fn acquire(dir: &Path, name: &str) -> Result<FileLock> {
    let dir = dir.join("locks");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io("cannot create the lock directory", &dir, e))?;
    let path: PathBuf = dir.join(format!("{name}.lock"));
    tokio::task::spawn_blocking(move || {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("cannot open the lock file", &path, e))?;
        file.lock()
            .map_err(|e| Error::io("cannot lock", &path, e))?;
        Ok(FileLock { _file: file })
    })
    .await
    .expect("lock task does not panic")
}
