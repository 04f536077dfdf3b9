//! Where a log's bytes live: a file, or memory that a test can crash.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The storage under a [`super::DurableLog`].
pub trait LogDisk {
    fn read_all(&mut self) -> std::io::Result<Vec<u8>>;
    /// Writes at the end; durable only after [`Self::sync`].
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    fn sync(&mut self) -> std::io::Result<()>;
    fn truncate(&mut self, length: u64) -> std::io::Result<()>;
    /// Replaces everything with `bytes`, atomically and durably.
    fn replace(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

/// A disk chosen at run time: a file when serving, memory in tests.
impl<D: LogDisk + ?Sized> LogDisk for Box<D> {
    fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        (**self).read_all()
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        (**self).append(bytes)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        (**self).sync()
    }

    fn truncate(&mut self, length: u64) -> std::io::Result<()> {
        (**self).truncate(length)
    }

    fn replace(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        (**self).replace(bytes)
    }
}

/// A log file, synced with `fsync`, with one writer: it holds an
/// exclusive `flock` on `PATH.lock` for as long as it lives.
#[derive(Debug)]
pub struct FileDisk {
    path: PathBuf,
    file: File,
    /// Held, never read: closing it (on drop) releases the lock.
    _lock: File,
}

impl FileDisk {
    /// Opens (or creates) the log file at `path`, and its directory.
    /// Fails with `WouldBlock` if another `FileDisk`, in this process or
    /// another, has the same log open.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_owned();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Pitfall: two writers appending to one log each keep their own
        // idea of the end, interleave records, and leave a log that no
        // longer opens. The lock is a separate file because `replace`
        // renames a new log over the old one (a lock on it would be lost).
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)?;
        fs2::FileExt::try_lock_exclusive(&lock).map_err(|err| {
            std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "{} is locked: another process (or this one) has the log open ({err})",
                    lock_path.display()
                ),
            )
        })?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        Ok(Self {
            path,
            file,
            _lock: lock,
        })
    }

    /// Makes a rename or creation in the directory durable.
    fn sync_directory(&self) -> std::io::Result<()> {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
            _ => Ok(()),
        }
    }
}

impl LogDisk for FileDisk {
    fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        File::open(&self.path)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, length: u64) -> std::io::Result<()> {
        self.file.set_len(length)?;
        self.file.sync_all()
    }

    fn replace(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // Pitfall: rewriting in place would leave half a log after a
        // crash. Write a new file, sync it, rename it over the old one,
        // and sync the directory so the rename itself survives.
        let temporary = self.path.with_extension("rewrite");
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &self.path)?;
        self.sync_directory()?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)?;
        Ok(())
    }
}

/// A disk in memory that survives a simulated crash with exactly what was
/// synced. Clones share it, so a test keeps one outside a restarted host.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    state: Arc<Mutex<MemState>>,
}

#[derive(Debug, Default)]
struct MemState {
    /// What the running process sees.
    bytes: Vec<u8>,
    /// How much of it a crash keeps.
    durable: usize,
}

impl MemDisk {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A crash: everything written since the last sync is lost.
    pub fn crash(&self) {
        let mut state = self.state();
        let durable = state.durable;
        state.bytes.truncate(durable);
    }

    /// A crash in the middle of the last write: its first `kept` bytes
    /// reached the disk, the rest did not.
    pub fn tear_last_write(&self, kept: usize) {
        let mut state = self.state();
        let torn = (state.durable + kept).min(state.bytes.len());
        state.bytes.truncate(torn);
        state.durable = torn;
    }

    /// Writes `bytes` without syncing them, as an append interrupted
    /// before its `fsync` would.
    #[cfg(test)]
    pub(crate) fn append_unsynced_for_test(&self, bytes: &[u8]) {
        self.state().bytes.extend_from_slice(bytes);
    }

    /// Flips one bit of the bytes at `offset` (bit rot).
    pub fn corrupt(&self, offset: usize) {
        if let Some(byte) = self.state().bytes.get_mut(offset) {
            *byte ^= 0x01;
        }
    }

    /// Bytes on the disk as the running process sees them.
    pub fn len(&self) -> usize {
        self.state().bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LogDisk for MemDisk {
    fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        Ok(self.state().bytes.clone())
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.state().bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        let mut state = self.state();
        state.durable = state.bytes.len();
        Ok(())
    }

    fn truncate(&mut self, length: u64) -> std::io::Result<()> {
        let mut state = self.state();
        state
            .bytes
            .truncate(usize::try_from(length).unwrap_or(usize::MAX));
        state.durable = state.bytes.len();
        Ok(())
    }

    fn replace(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut state = self.state();
        state.bytes = bytes.to_vec();
        state.durable = bytes.len();
        Ok(())
    }
}
