//! Every file-system operation of the store goes through here: data files (CommitLog segments,
//! ConsumeQueue and index files) as [`DataFile`], directories and small files as functions.
//! One place to get durability right (`fdatasync` on data, `fsync` on the directory of every
//! created, renamed or removed name), and one place where a test can see every write and sync:
//! in test builds each operation first asks [`fault`] whether a test registered the data
//! directory, to record it or fail it; other builds have no such check.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::storage::error::{Result, StorageError};

#[cfg(test)]
pub(crate) mod fault;

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
        let open = || OpenOptions::new().read(true).write(true).create_new(true).open(path);
        #[cfg(test)]
        if let Some(f) = fault::find(path) {
            let mut file = None;
            f.create(path, false, || {
                file = Some(open()?);
                Ok(true)
            })
            .map_err(StorageError::io("create", path))?;
            let file =
                file.ok_or_else(|| StorageError::io("create", path)(io::ErrorKind::Other.into()))?;
            return Ok(DataFile { file, path: path.to_owned() });
        }
        let file = open().map_err(StorageError::io("create", path))?;
        Ok(DataFile { file, path: path.to_owned() })
    }

    /// Opens an existing file for reading and writing.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        #[cfg(test)]
        if let Some(f) = fault::find(path) {
            f.check().map_err(StorageError::io("open", path))?;
        }
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
        #[cfg(test)]
        if let Some(f) = fault::find(&self.path) {
            return f
                .set_len(&self.file, &self.path, len)
                .map_err(StorageError::io("resize", &self.path));
        }
        self.file.set_len(len).map_err(StorageError::io("resize", &self.path))
    }

    /// Reads into `buf` from `pos`; returns how many bytes there were (fewer at the end).
    #[allow(dead_code, reason = "for the ConsumeQueue rewrite, which reads with it")]
    pub(crate) fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<usize> {
        #[cfg(test)]
        if let Some(f) = fault::find(&self.path) {
            f.check().map_err(StorageError::io("read", &self.path))?;
        }
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
        #[cfg(test)]
        if let Some(f) = fault::find(&self.path) {
            return f
                .write_at(&self.file, &self.path, pos, data)
                .map_err(StorageError::io("write", &self.path));
        }
        self.file.write_all_at(data, pos).map_err(StorageError::io("write", &self.path))
    }

    /// A second descriptor of the same open file (`dup`): syncs through it cover writes made
    /// through the first, so a sync can run without the lock that guards the writes.
    pub(crate) fn try_clone(&self) -> Result<Self> {
        let file = self.file.try_clone().map_err(StorageError::io("dup", &self.path))?;
        Ok(DataFile { file, path: self.path.clone() })
    }

    /// Makes the file's data durable (`fdatasync`: data and the size, not the times).
    pub(crate) fn sync_data(&self) -> Result<()> {
        #[cfg(test)]
        if let Some(f) = fault::find(&self.path) {
            return f
                .sync(&self.path, || self.file.sync_data())
                .map_err(StorageError::io("fdatasync", &self.path));
        }
        self.file.sync_data().map_err(StorageError::io("fdatasync", &self.path))
    }

    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&self) -> Result<()> {
        #[cfg(test)]
        if let Some(f) = fault::find(&self.path) {
            return f
                .sync(&self.path, || self.file.sync_all())
                .map_err(StorageError::io("fsync", &self.path));
        }
        self.file.sync_all().map_err(StorageError::io("fsync", &self.path))
    }
}

/// Creates `dir` and any missing parents. Returns the directories that gained a name (each
/// new directory's parent, deepest first): fsyncing them makes the new directories survive a
/// crash. Empty if `dir` existed.
pub(crate) fn create_dir_all(dir: &Path) -> Result<Vec<PathBuf>> {
    // The new levels, deepest first.
    let new: Vec<&Path> =
        dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
    if new.is_empty() {
        return Ok(Vec::new());
    }
    #[cfg(test)]
    if let Some(f) = fault::find(dir) {
        // Each new level is a new name in its parent, top first.
        for d in new.iter().rev() {
            f.create(d, true, || std::fs::create_dir(d).map(|()| true))
                .map_err(StorageError::io("create directory", d))?;
        }
        return Ok(new.iter().filter_map(|d| parent_dir(d)).collect());
    }
    std::fs::create_dir_all(dir).map_err(StorageError::io("create directory", dir))?;
    Ok(new.iter().filter_map(|d| parent_dir(d)).collect())
}

/// The directory holding `path`: `.` for a relative name of one component (`Path::parent`
/// gives the empty path, which cannot be opened to fsync).
fn parent_dir(path: &Path) -> Option<PathBuf> {
    let parent = path.parent()?;
    Some(if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent.to_owned() })
}

/// Creates `dir` (and parents) and makes it durable at once.
pub(crate) fn create_dir_all_durable(dir: &Path) -> Result<()> {
    for parent in create_dir_all(dir)? {
        fsync_dir(&parent)?;
    }
    Ok(())
}

/// fsyncs a directory, so that creates, renames and deletes in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    #[cfg(test)]
    if let Some(f) = fault::find(dir) {
        return f
            .sync_dir(dir, || File::open(dir).and_then(|d| d.sync_all()))
            .map_err(StorageError::io("fsync directory", dir));
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(StorageError::io("fsync directory", dir))
}

/// Syncs the whole file system holding `dir` (`syncfs`): one call instead of an `fsync` per
/// file when many files are dirty.
pub(crate) fn sync_filesystem(dir: &Path) -> Result<()> {
    let syncfs = || File::open(dir).and_then(|d| rustix::fs::syncfs(&d).map_err(io::Error::from));
    #[cfg(test)]
    if let Some(f) = fault::find(dir) {
        return f.sync_all(syncfs).map_err(StorageError::io("syncfs", dir));
    }
    syncfs().map_err(StorageError::io("syncfs", dir))
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
    #[cfg(test)]
    if let Some(f) = fault::find(path) {
        return f
            .remove(path, || std::fs::remove_file(path))
            .map_err(StorageError::io("remove", path));
    }
    std::fs::remove_file(path).map_err(StorageError::io("remove", path))
}

/// Removes a directory tree, if it exists, and makes that durable.
#[allow(dead_code, reason = "for the ConsumeQueue rewrite, which removes queue directories")]
pub(crate) fn remove_dir_all(dir: &Path) -> Result<()> {
    let remove = || std::fs::remove_dir_all(dir);
    #[cfg(test)]
    let remove = || match fault::find(dir) {
        Some(f) => f.remove(dir, remove),
        None => remove(),
    };
    match remove() {
        Ok(()) => sync_parent(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove directory", dir)(e)),
    }
}

/// Reads a whole small file; `None` if it does not exist.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    #[cfg(test)]
    if let Some(f) = fault::find(path) {
        f.check().map_err(StorageError::io("read", path))?;
    }
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
        let f = DataFile { file: create_or_truncate(&tmp)?, path: tmp.clone() };
        f.write_at(0, bytes)?;
        f.sync_all()?;
    }
    rename(&tmp, path)?;
    sync_parent(path)
}

/// Creates (or truncates) an empty marker file and makes its name durable.
pub(crate) fn touch_durable(path: &Path) -> Result<()> {
    create_or_truncate(path)?;
    sync_parent(path)
}

/// `File::create`: creates `path`, or empties it if it exists.
fn create_or_truncate(path: &Path) -> Result<File> {
    #[cfg(test)]
    if let Some(f) = fault::find(path) {
        let existed = path.exists();
        if existed {
            // Emptying is a write like any other: undone if not synced.
            let file = DataFile::open(path)?;
            file.set_len(0)?;
            return Ok(file.file);
        }
        let mut file = None;
        f.create(path, false, || {
            file = Some(File::create(path)?);
            Ok(true)
        })
        .map_err(StorageError::io("create", path))?;
        return file.ok_or_else(|| StorageError::io("create", path)(io::ErrorKind::Other.into()));
    }
    File::create(path).map_err(StorageError::io("create", path))
}

/// Renames `from` over `to`. The caller fsyncs the directory to make it durable.
fn rename(from: &Path, to: &Path) -> Result<()> {
    #[cfg(test)]
    if let Some(f) = fault::find(to) {
        return f.rename(from, to).map_err(StorageError::io("rename", to));
    }
    std::fs::rename(from, to).map_err(StorageError::io("rename", to))
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

/// Bytes the files under `dir` take on disk (allocated blocks, as `du` counts them; sparse
/// CommitLog segments count what is written). Unreadable entries count 0.
pub(crate) fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}
