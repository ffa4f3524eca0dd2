//! `MappedFile`: a fixed-size file mapped into memory with `memmap2::MmapRaw`, shared between
//! one writer and many readers. The CommitLog, ConsumeQueue and index files are all built on it.
//!
//! Safety model: exactly one thread writes (the owner of the file's write side), and it writes
//! only bytes that no reader may look at yet; readers read only bytes below a position the
//! writer has published with `Release` ordering and they load with `Acquire`. Published bytes
//! are never written again (except by recovery, before anyone reads). Readers keep the mapping
//! alive through an `Arc`, so retention can delete the file while a read is in flight.

use std::path::{Path, PathBuf};

use memmap2::MmapRaw;

use crate::storage::error::{Result, StorageError};
use crate::storage::fs::{self, DataFile};

/// A fixed-size mapped file.
#[derive(Debug)]
pub(crate) struct MappedFile {
    map: MmapRaw,
    /// The descriptor; `None` once released (a sealed file, read only through the mapping).
    file: Option<DataFile>,
    path: PathBuf,
    len: usize,
}

impl MappedFile {
    /// Creates `path` (which must not exist) with `len` zero bytes, maps it and fsyncs the parent
    /// directory so the new name survives a crash.
    pub(crate) fn create(path: &Path, len: usize) -> Result<Self> {
        let file = DataFile::create_new(path)?;
        file.set_len(len as u64)?;
        fs::sync_parent(path)?;
        Self::map(file, len)
    }

    /// Opens an existing file and maps it, resizing it to `len` first: a file cut short by a
    /// crash (or a truncation) reads as zeros past its end, which is "nothing written".
    pub(crate) fn open(path: &Path, len: usize) -> Result<Self> {
        let file = DataFile::open(path)?;
        if file.len()? != len as u64 {
            file.set_len(len as u64)?;
        }
        Self::map(file, len)
    }

    fn map(file: DataFile, len: usize) -> Result<Self> {
        let map =
            MmapRaw::map_raw(file.as_file()).map_err(StorageError::io("mmap", file.path()))?;
        let path = file.path().to_owned();
        Ok(MappedFile { map, file: Some(file), path, len })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn descriptor(&self) -> Result<&DataFile> {
        self.file.as_ref().ok_or_else(|| {
            StorageError::InvalidConfig(format!(
                "{} is sealed: its descriptor was released",
                self.path.display()
            ))
        })
    }

    /// Opens the descriptor again (a sealed file that is the last one again after a
    /// truncation, to be written).
    pub(crate) fn reopen_descriptor(&mut self) -> Result<()> {
        if self.file.is_none() {
            self.file = Some(DataFile::open(&self.path)?);
        }
        Ok(())
    }

    /// Syncs the file and closes its descriptor: a sealed file (never written again) stays
    /// readable through the mapping without holding one of the process's open files.
    pub(crate) fn release_descriptor(&mut self) -> Result<()> {
        if let Some(f) = &self.file {
            f.sync_data()?;
        }
        self.file = None;
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The bytes `[pos, pos + len)`, clamped to the file.
    ///
    /// The caller must only ask for bytes that are published (see the module docs) or that it
    /// wrote itself.
    pub(crate) fn slice(&self, pos: usize, len: usize) -> &[u8] {
        let pos = pos.min(self.len);
        let len = len.min(self.len - pos);
        // SAFETY: the range is inside the mapping, which lives as long as `self`; by the module's
        // protocol no one writes these bytes while they are readable.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(pos), len) }
    }

    /// Copies `data` to `pos`.
    ///
    /// # Safety
    /// Only the single writer of this file may call it, and only for bytes no reader can see yet
    /// (above the published position), or during recovery before readers exist.
    pub(crate) unsafe fn write(&self, pos: usize, data: &[u8]) {
        assert!(pos.checked_add(data.len()).is_some_and(|end| end <= self.len), "write past end");
        // SAFETY: in bounds (checked above); exclusive by the caller's contract.
        let copy = || unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.map.as_mut_ptr().add(pos),
                data.len(),
            );
        };
        // Tests see mapped writes as they see `pwrite`s (and drop them after a crash).
        #[cfg(test)]
        if let Some(f) = fs::fault::find(self.path()) {
            let old = self.slice(pos, data.len()).to_vec();
            f.mapped_write(self.path(), pos as u64, old, self.len as u64, copy);
            return;
        }
        copy();
    }

    /// Writes `data` at `pos` through the file (`pwrite`), not the mapping: the kernel copies
    /// into the page cache without first zero-filling the pages a mapped write would fault in.
    /// The same rules as [`MappedFile::write`] apply to who may write where.
    pub(crate) fn write_at(&self, pos: usize, data: &[u8]) -> Result<()> {
        if pos.checked_add(data.len()).is_none_or(|end| end > self.len) {
            return Err(StorageError::InvalidConfig(format!(
                "write of {} bytes at {pos} past the end of {}",
                data.len(),
                self.path().display()
            )));
        }
        self.descriptor()?.write_at(pos as u64, data)
    }

    /// Makes everything written to the file durable (`fdatasync`, which also covers writes
    /// through the mapping).
    pub(crate) fn sync(&self) -> Result<()> {
        match &self.file {
            Some(f) => f.sync_data(),
            // Released after its last sync: nothing written since.
            None => Ok(()),
        }
    }

    /// A descriptor to [`DataFile::sync_data`] the file through without holding whatever
    /// guards its writes; `None` once sealed (nothing written since its last sync).
    pub(crate) fn sync_handle(&self) -> Result<Option<DataFile>> {
        self.file.as_ref().map(DataFile::try_clone).transpose()
    }

    /// Drops everything from `pos` to the end of the file: the file is cut to `pos` and grown
    /// back, so the tail reads as zeros without writing them. Recovery only.
    pub(crate) fn zero_from(&self, pos: usize) -> Result<()> {
        self.sync()?;
        self.descriptor()?.set_len(pos as u64)?;
        self.descriptor()?.set_len(self.len as u64)?;
        self.sync()
    }

    /// Advises the kernel that the file will be written soon, so page faults come cheaper.
    pub(crate) fn advise_sequential(&self) {
        let _ = self.map.advise(memmap2::Advice::Sequential);
    }
}

/// Name of a file whose first byte (or entry) is `base`: 20 zero-padded digits.
pub(crate) fn offset_file_name(base: u64) -> String {
    format!("{base:020}")
}

/// Lists the files of `dir` named by 20-digit offsets, sorted, ignoring anything else (temp
/// files, stray names).
pub(crate) fn list_offset_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StorageError::io("list", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(StorageError::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 20
            && name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(base) = name.parse::<u64>()
        {
            out.push((base, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(b, _)| *b);
    Ok(out)
}
