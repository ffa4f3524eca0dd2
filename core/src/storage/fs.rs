//! Every file-system operation of the store goes through here: data files (CommitLog segments,
//! ConsumeQueue and index files) as [`DataFile`], directories and small files as functions.
//! One place to get durability right (`fdatasync` on data, `fsync` on the directory of every
//! created, renamed or removed name), and one place where a test can see every write and sync.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::storage::error::{Result, StorageError};

/// An open data file, read and written at positions (`pread`/`pwrite`), or mapped by
/// [`crate::storage::mapped::MappedFile`].
#[derive(Debug)]
pub(crate) struct DataFile {
    file: File,
    path: PathBuf,
}

impl DataFile {
    /// Creates `path`, which must not exist. The caller makes the new name durable
    /// ([`fsync_dir`] of the parent), now or batched with others.
    pub(crate) fn create_new(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(StorageError::io("create", path))?;
        Ok(DataFile { file, path: path.to_owned() })
    }

    /// Opens an existing file for reading and writing.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(StorageError::io("open", path))?;
        Ok(DataFile { file, path: path.to_owned() })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying file, for mapping.
    pub(crate) fn as_file(&self) -> &File {
        &self.file
    }

    /// The file's length, bytes.
    pub(crate) fn len(&self) -> Result<u64> {
        Ok(self.file.metadata().map_err(StorageError::io("stat", &self.path))?.len())
    }

    /// Cuts or extends (with zeros) the file to `len` bytes.
    pub(crate) fn set_len(&self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(StorageError::io("resize", &self.path))
    }

    /// Reads into `buf` from `pos`; returns how many bytes there were (fewer at the end).
    pub(crate) fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let Some(rest) = buf.get_mut(done..) else { break };
            match self.file.read_at(rest, pos + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StorageError::io("read", &self.path)(e)),
            }
        }
        Ok(done)
    }

    /// Writes all of `data` at `pos`.
    pub(crate) fn write_at(&self, pos: u64, data: &[u8]) -> Result<()> {
        self.file.write_all_at(data, pos).map_err(StorageError::io("write", &self.path))
    }

    /// Makes the file's data durable (`fdatasync`: data and the size, not the times).
    pub(crate) fn sync_data(&self) -> Result<()> {
        self.file.sync_data().map_err(StorageError::io("fdatasync", &self.path))
    }
}

/// Creates `dir` and any missing parents. Returns the topmost directory it created, whose
/// parent must be fsynced for the new names to survive a crash (`None` if all existed).
pub(crate) fn create_dir_all(dir: &Path) -> Result<Option<PathBuf>> {
    let mut missing = dir;
    let mut top = None;
    while !missing.as_os_str().is_empty() && !missing.exists() {
        top = Some(missing.to_owned());
        match missing.parent() {
            Some(p) => missing = p,
            None => break,
        }
    }
    if top.is_some() {
        std::fs::create_dir_all(dir).map_err(StorageError::io("create directory", dir))?;
    }
    Ok(top)
}

/// Creates `dir` (and parents) and makes it durable at once.
pub(crate) fn create_dir_all_durable(dir: &Path) -> Result<()> {
    if let Some(top) = create_dir_all(dir)? {
        sync_parent(&top)?;
        // Directories created below `top` are named in directories that are new too.
        let mut d = dir;
        while d != top {
            sync_parent(d)?;
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
    }
    Ok(())
}

/// fsyncs a directory, so that creates, renames and deletes in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(StorageError::io("fsync directory", dir))
}

/// Syncs the whole file system holding `dir` (`syncfs`): one call instead of an `fsync` per
/// file when many files are dirty.
pub(crate) fn sync_filesystem(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(StorageError::io("open", dir))?;
    rustix::fs::syncfs(&d).map_err(|e| StorageError::io("syncfs", dir)(io::Error::from(e)))
}

/// fsyncs the directory holding `path`.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fsync_dir(dir),
        _ => Ok(()),
    }
}

/// Removes a file. The caller fsyncs the directory when the removal must be durable.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(StorageError::io("remove", path))
}

/// Removes a directory tree, if it exists, and makes that durable.
pub(crate) fn remove_dir_all(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => sync_parent(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove directory", dir)(e)),
    }
}

/// Reads a whole small file; `None` if it does not exist.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("read", path)(e)),
    }
}

/// Replaces `path` with `bytes` atomically and durably: write `path.tmp`, fsync it, rename it
/// over `path`, fsync the directory. A crash leaves the old or the new content.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    {
        let f = File::create(&tmp).map_err(StorageError::io("create", &tmp))?;
        let f = DataFile { file: f, path: tmp.clone() };
        f.write_at(0, bytes)?;
        f.file.sync_all().map_err(StorageError::io("fsync", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(StorageError::io("rename", path))?;
    sync_parent(path)
}

/// Creates (or truncates) an empty marker file and makes its name durable.
pub(crate) fn touch_durable(path: &Path) -> Result<()> {
    File::create(path).map_err(StorageError::io("create", path))?;
    sync_parent(path)
}

/// Removes a marker file and makes that durable.
pub(crate) fn remove_durable(path: &Path) -> Result<()> {
    remove_file(path)?;
    sync_parent(path)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}
