//! Test-only fault injection for every file operation of [`super`]: a model of what a power
//! loss keeps, so tests can prove durability instead of assuming it.
//!
//! A test registers a data directory ([`Fault::register`]); from then on every operation on a
//! path under it goes through its [`Fault`], one at a time (the operations are linearised, so a
//! crash point is exact). For each file it remembers what no completed `fdatasync`/`fsync`
//! covers yet, as an undo log:
//! - every `write_at`, `set_len` (grow or shrink) and write through a mapping
//!   ([`crate::storage::mapped::MappedFile::write`]) records the bytes it overwrote and the old
//!   length; a completed sync of the file forgets them (they are durable);
//! - every new name (file or directory) and every rename is pending until its parent directory
//!   is fsynced; a rename remembers what its target held;
//! - removals are treated as durable at once: the store never relies on a removed file coming
//!   back, and undoing a removal would need the whole file kept aside.
//!
//! [`Fault::crash_after`] picks the crash point: after the N-th mutating operation (write,
//! resize, sync, create, rename, removal), or [`Fault::crash_after_dir_sync`] right after a
//! rename into a directory became durable (say, a checkpoint); from then on every operation under the root fails with an I/O
//! error and writes through a mapping are dropped, so nothing the store does afterwards reaches
//! the disk. [`Fault::apply`], after the store is dropped, turns the directory into what a
//! machine could find after power returns:
//! - [`Mode::DropAll`]: every pending write is undone (nothing unsynced was written back);
//! - [`Mode::Torn`]: each dirty 4 KiB page of each file is independently kept or undone, and a
//!   file's unsynced length change is kept or undone, as if the kernel had written back some
//!   dirty pages in any order;
//! - [`Mode::KeepOnly`]: the writes to some files were written back, none of the others;
//!
//! and in both modes every pending new name is removed and every pending rename undone (the
//! pessimistic outcome of a missing directory fsync).
//!
//! What it does not model: reordering *within* a page (sectors of a page torn apart), data
//! written back past a completed sync being lost again (disk caches that lie), a file's
//! removal being undone, pending names surviving (only the pessimistic side), reads of a
//! mapping after the crash (the mapping still shows the page cache), and operations that do
//! not go through `fs` (`std::fs::read_dir` listings, the lock file, direct `std::fs` calls).
//!
//! [`Fault::fail_next_sync`] makes one later sync of a matching file fail with `EIO` and drop
//! that file's unsynced writes, as Linux does after a failed writeback: a retried `fsync` then
//! succeeds although the data is gone.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Linux's `EIO`, what a failed writeback reports.
const EIO: i32 = 5;

/// Page size of the torn-write model.
const PAGE: u64 = 4096;

/// How many roots are registered: the fast "nothing to do" check of every operation.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static REGISTRY: Mutex<Vec<Arc<Fault>>> = Mutex::new(Vec::new());

/// The fault layer of the data directory holding `path`, if a test registered one.
pub(crate) fn find(path: &Path) -> Option<Arc<Fault>> {
    if ACTIVE.load(Ordering::Acquire) == 0 {
        return None;
    }
    let reg = REGISTRY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    reg.iter().find(|f| path.starts_with(&f.root)).map(Arc::clone)
}

/// What [`Fault::apply`] keeps of the writes no sync covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// None of them.
    DropAll,
    /// A random subset of dirty pages (and of length changes), seeded.
    Torn(u64),
    /// Only the unsynced writes of files whose path contains the fragment, all of them (the
    /// kernel happened to write back those files and nothing else).
    KeepOnly(&'static str),
}

/// One operation no sync has made durable yet, with what undoes it.
#[derive(Debug)]
enum Undo {
    /// Bytes at `pos` were overwritten (`old` is what was there, up to the old end), and the
    /// file was `old_len` long.
    Write { path: PathBuf, pos: u64, old: Vec<u8>, old_len: u64 },
    /// A file or directory was created.
    NewName { path: PathBuf, dir: bool },
    /// `from` was renamed over `to`, which held `old_to` (`None`: `to` did not exist).
    Rename { from: PathBuf, to: PathBuf, old_to: Option<Vec<u8>> },
}

impl Undo {
    fn is_name(&self) -> bool {
        !matches!(self, Undo::Write { .. })
    }
}

#[derive(Debug, Default)]
struct State {
    /// Mutating operations done so far.
    ops: u64,
    /// Crash once `ops` reaches this.
    crash_after: Option<u64>,
    /// Crash after this many more fsyncs of this directory.
    crash_after_dir_sync: Option<(PathBuf, u64)>,
    crashed: bool,
    /// Pending (not yet durable) operations, oldest first.
    undo: Vec<Undo>,
    /// A path fragment: the next sync of a file whose path contains it fails.
    fail_sync: Option<String>,
    /// Syncs failed on purpose.
    failed_syncs: u64,
    /// The files synced successfully, in order (a path per sync).
    synced: Vec<PathBuf>,
}

/// The fault layer of one data directory. See the module docs.
#[derive(Debug)]
pub(crate) struct Fault {
    root: PathBuf,
    state: Mutex<State>,
}

/// Unregisters its root when dropped.
#[derive(Debug)]
pub(crate) struct Registration(Arc<Fault>);

impl std::ops::Deref for Registration {
    type Target = Fault;
    fn deref(&self) -> &Fault {
        &self.0
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut reg = REGISTRY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        reg.retain(|f| !Arc::ptr_eq(f, &self.0));
        ACTIVE.store(reg.len(), Ordering::Release);
    }
}

fn crashed_error() -> io::Error {
    io::Error::other("injected crash: the machine is down")
}

impl Fault {
    /// Starts recording every operation under `root` (until the registration is dropped).
    pub(crate) fn register(root: &Path) -> Registration {
        let f = Arc::new(Fault { root: root.to_owned(), state: Mutex::new(State::default()) });
        let mut reg = REGISTRY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        assert!(
            reg.iter().all(|o| !o.root.starts_with(root) && !root.starts_with(&o.root)),
            "{} overlaps a registered root",
            root.display()
        );
        reg.push(Arc::clone(&f));
        ACTIVE.store(reg.len(), Ordering::Release);
        Registration(f)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Crashes after the `n`-th mutating operation from the start (at once if already past).
    pub(crate) fn crash_after(&self, n: u64) {
        let mut s = self.lock();
        s.crash_after = Some(n);
        if s.ops >= n {
            s.crashed = true;
        }
    }

    /// Crashes right after the `n`-th later fsync of directory `dir` completes: the moment a
    /// rename into it (the checkpoint, say) has just become durable.
    pub(crate) fn crash_after_dir_sync(&self, dir: &Path, n: u64) {
        self.lock().crash_after_dir_sync = Some((dir.to_owned(), n.max(1)));
    }

    /// Crashes now.
    pub(crate) fn crash(&self) {
        self.lock().crashed = true;
    }

    pub(crate) fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Makes the next sync of a file whose path contains `fragment` fail (one shot).
    pub(crate) fn fail_next_sync(&self, fragment: &str) {
        self.lock().fail_sync = Some(fragment.to_owned());
    }

    /// How many syncs failed on purpose.
    pub(crate) fn failed_syncs(&self) -> u64 {
        self.lock().failed_syncs
    }

    /// How many successful syncs were of a file whose path contains `fragment`.
    pub(crate) fn syncs_of(&self, fragment: &str) -> usize {
        self.lock().synced.iter().filter(|p| p.to_string_lossy().contains(fragment)).count()
    }

    /// Fails if crashed; counts the operation; runs it; crashes if this was the chosen one.
    fn mutate<T>(&self, op: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut s = self.lock();
        if s.crashed {
            return Err(crashed_error());
        }
        s.ops += 1;
        let r = op(&mut s);
        if s.crash_after.is_some_and(|n| s.ops >= n) {
            s.crashed = true;
        }
        r
    }

    /// A read-only operation: fails after the crash, is not counted.
    pub(crate) fn check(&self) -> io::Result<()> {
        if self.lock().crashed { Err(crashed_error()) } else { Ok(()) }
    }

    /// `pwrite` of `data` at `pos`.
    pub(crate) fn write_at(
        &self,
        file: &File,
        path: &Path,
        pos: u64,
        data: &[u8],
    ) -> io::Result<()> {
        self.mutate(|s| {
            let old_len = file.metadata()?.len();
            let old = read_range(file, pos, data.len() as u64, old_len)?;
            file.write_all_at(data, pos)?;
            s.undo.push(Undo::Write { path: path.to_owned(), pos, old, old_len });
            Ok(())
        })
    }

    /// `ftruncate` to `len`.
    pub(crate) fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.mutate(|s| {
            let old_len = file.metadata()?.len();
            let old = if len < old_len {
                read_range(file, len, old_len - len, old_len)?
            } else {
                Vec::new()
            };
            file.set_len(len)?;
            s.undo.push(Undo::Write { path: path.to_owned(), pos: len, old, old_len });
            Ok(())
        })
    }

    /// A write through a mapping of `path` (`len` bytes long): `old` is what `pos..` held,
    /// `copy` does the write. After the crash the write is dropped.
    pub(crate) fn mapped_write(
        &self,
        path: &Path,
        pos: u64,
        old: Vec<u8>,
        len: u64,
        copy: impl FnOnce(),
    ) {
        let _ = self.mutate(|s| {
            copy();
            s.undo.push(Undo::Write { path: path.to_owned(), pos, old, old_len: len });
            Ok(())
        });
    }

    /// `fdatasync`/`fsync` of a file: its pending writes become durable, unless a failure was
    /// asked for, which drops them instead (the kernel's view after a failed writeback).
    pub(crate) fn sync(
        &self,
        path: &Path,
        sync: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        self.mutate(|s| {
            if s.fail_sync.as_deref().is_some_and(|f| path.to_string_lossy().contains(f)) {
                s.fail_sync = None;
                s.failed_syncs += 1;
                let mine: Vec<Undo> = take_where(
                    &mut s.undo,
                    |u| matches!(u, Undo::Write { path: p, .. } if p == path),
                );
                for u in mine.iter().rev() {
                    undo_write(u, None)?;
                }
                return Err(io::Error::from_raw_os_error(EIO));
            }
            sync()?;
            s.undo.retain(|u| !matches!(u, Undo::Write { path: p, .. } if p == path));
            s.synced.push(path.to_owned());
            Ok(())
        })
    }

    /// `syncfs`: every pending write, name and rename under the root becomes durable.
    pub(crate) fn sync_all(&self, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        self.mutate(|s| {
            sync()?;
            s.undo.clear();
            Ok(())
        })
    }

    /// A file or directory was created by `create` (which returns whether it was new).
    pub(crate) fn create(
        &self,
        path: &Path,
        dir: bool,
        create: impl FnOnce() -> io::Result<bool>,
    ) -> io::Result<()> {
        self.mutate(|s| {
            if create()? {
                s.undo.push(Undo::NewName { path: path.to_owned(), dir });
            }
            Ok(())
        })
    }

    /// `fsync` of directory `dir`: the names created and renamed in it become durable.
    pub(crate) fn sync_dir(
        &self,
        dir: &Path,
        sync: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        self.mutate(|s| {
            sync()?;
            if let Some((d, n)) = &mut s.crash_after_dir_sync
                && d == dir
            {
                *n -= 1;
                if *n == 0 {
                    s.crashed = true;
                }
            }
            s.undo.retain(|u| match u {
                Undo::NewName { path, .. } | Undo::Rename { to: path, .. } => {
                    path.parent() != Some(dir)
                }
                Undo::Write { .. } => true,
            });
            Ok(())
        })
    }

    /// `rename(from, to)`: pending until `to`'s directory is fsynced. `from`'s pending writes
    /// follow the file; `to`'s old file is gone, and what it held (as of its last sync) is kept
    /// to undo the rename.
    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.mutate(|s| {
            let mut old_to = match std::fs::read(to) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            std::fs::rename(from, to)?;
            let replaced =
                take_where(&mut s.undo, |u| matches!(u, Undo::Write { path, .. } if path == to));
            if let Some(buf) = &mut old_to {
                for u in replaced.iter().rev() {
                    undo_write(u, Some(buf))?;
                }
            }
            for u in &mut s.undo {
                if let Undo::Write { path, .. } = u
                    && path == from
                {
                    to.clone_into(path);
                }
            }
            s.undo.push(Undo::Rename { from: from.to_owned(), to: to.to_owned(), old_to });
            Ok(())
        })
    }

    /// A removal (of a file, or a directory tree): durable at once, see the module docs.
    pub(crate) fn remove(
        &self,
        path: &Path,
        remove: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        self.mutate(|s| {
            remove()?;
            s.undo.retain(|u| match u {
                Undo::Write { path: p, .. } | Undo::NewName { path: p, .. } => !p.starts_with(path),
                Undo::Rename { to, .. } => !to.starts_with(path),
            });
            Ok(())
        })
    }

    /// After the store is dropped: leaves on disk what a machine could find after the crash
    /// (see [`Mode`]). Returns how many pending operations were undone (names and page-sized
    /// pieces of writes).
    pub(crate) fn apply(&self, mode: Mode) -> io::Result<usize> {
        let mut s = self.lock();
        s.crashed = true;
        let undo = std::mem::take(&mut s.undo);
        let mut rng = Rng(match mode {
            Mode::DropAll | Mode::KeepOnly(_) => 1,
            Mode::Torn(seed) => seed | 1,
        });
        let names = |path: &Path, fragment: &str| path.to_string_lossy().contains(fragment);
        let mut undone = 0;
        // Data first, at today's names; then the names, newest first.
        let mut pages: HashMap<(PathBuf, u64), bool> = HashMap::new();
        let mut lengths: HashMap<PathBuf, bool> = HashMap::new();
        for u in undo.iter().rev() {
            let Undo::Write { path, pos, old, old_len } = u else { continue };
            let (pages, len) = match mode {
                Mode::KeepOnly(f) if names(path, f) => continue,
                Mode::DropAll | Mode::KeepOnly(_) => (None, true),
                Mode::Torn(_) => {
                    let len = *lengths.entry(path.clone()).or_insert_with(|| rng.coin());
                    let first = pos / PAGE;
                    let last = (pos + (old.len() as u64).max(1) - 1) / PAGE;
                    let keep: Vec<u64> = (first..=last)
                        .filter(|p| *pages.entry((path.clone(), *p)).or_insert_with(|| rng.coin()))
                        .collect();
                    (Some(keep), len)
                }
            };
            let Some(file) = open_existing(path)? else { continue };
            undone += undo_write_file(&file, *pos, old, *old_len, pages.as_deref(), len)?;
        }
        for u in undo.iter().rev().filter(|u| u.is_name()) {
            undone += 1;
            match u {
                Undo::NewName { path, dir: true } => ignore_missing(std::fs::remove_dir_all(path))?,
                Undo::NewName { path, dir: false } => ignore_missing(std::fs::remove_file(path))?,
                Undo::Rename { from, to, old_to } => {
                    ignore_missing(std::fs::rename(to, from))?;
                    if let Some(b) = old_to {
                        std::fs::write(to, b)?;
                    }
                }
                Undo::Write { .. } => {}
            }
        }
        Ok(undone)
    }
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

fn open_existing(path: &Path) -> io::Result<Option<File>> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The bytes `[pos, pos + len)` of a file `file_len` long, as far as they exist.
fn read_range(file: &File, pos: u64, len: u64, file_len: u64) -> io::Result<Vec<u8>> {
    let end = (pos + len).min(file_len);
    let mut buf = vec![0; end.saturating_sub(pos) as usize];
    file.read_exact_at(&mut buf, pos)?;
    Ok(buf)
}

fn take_where(undo: &mut Vec<Undo>, pick: impl Fn(&Undo) -> bool) -> Vec<Undo> {
    let (taken, kept) = std::mem::take(undo).into_iter().partition(|u| pick(u));
    *undo = kept;
    taken
}

/// Undoes one write, in the file at its path (`buf: None`) or in a copy of the file's bytes.
fn undo_write(u: &Undo, buf: Option<&mut Vec<u8>>) -> io::Result<()> {
    let Undo::Write { path, pos, old, old_len } = u else { return Ok(()) };
    match buf {
        Some(b) => {
            let end = *pos as usize + old.len();
            if b.len() < end {
                b.resize(end, 0);
            }
            b[*pos as usize..end].copy_from_slice(old);
            b.resize(*old_len as usize, 0);
        }
        None => {
            if let Some(f) = open_existing(path)? {
                undo_write_file(&f, *pos, old, *old_len, None, true)?;
            }
        }
    }
    Ok(())
}

/// Puts `old` back at `pos` (only in the listed pages, if any) and the length back to
/// `old_len` (if `len`). Returns how many pages were put back.
fn undo_write_file(
    file: &File,
    pos: u64,
    old: &[u8],
    old_len: u64,
    pages: Option<&[u64]>,
    len: bool,
) -> io::Result<usize> {
    let cur = file.metadata()?.len();
    if len && old_len > cur {
        file.set_len(old_len)?;
    }
    let limit = if len { old_len } else { cur.min(old_len) };
    let mut undone = 0;
    let end = pos + old.len() as u64;
    let mut p = pos;
    while p < end {
        let page_end = ((p / PAGE) + 1) * PAGE;
        let to = page_end.min(end).min(limit.max(p));
        let chosen = pages.is_none_or(|keep| !keep.contains(&(p / PAGE)));
        if chosen && to > p {
            let from = (p - pos) as usize;
            file.write_all_at(&old[from..from + (to - p) as usize], p)?;
            undone += 1;
        }
        p = page_end.min(end);
    }
    if len && old_len < cur {
        file.set_len(old_len)?;
        undone += 1;
    }
    Ok(undone)
}

/// splitmix64: deterministic, dependency-free randomness for the torn-page choice.
#[derive(Debug)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub(crate) fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}
