//! CommitLog recovery: find the end of valid data and cut off a torn or corrupt tail.
//!
//! Segments before `validate_from`'s segment are trusted (the checkpoint says they were durable
//! and dispatched); from there on every record is `check()`ed in order. The first record that
//! fails ends the log: the rest of its segment is zeroed and later segments are deleted, and what
//! was dropped is logged. A gap in the segment sequence ends the log the same way. Nothing in a
//! file can make this panic.

use std::path::Path;
use std::sync::Arc;

use super::Segment;
use super::record::{self, Check};
use crate::storage::error::Result;
use crate::storage::fs::{fsync_dir, remove_file};
use crate::storage::mapped::{MappedFile, list_offset_files};

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// End of valid data: the next append goes here.
    pub(crate) end: u64,
    /// Where the log was cut, and how many bytes were dropped (0 when clean).
    pub(crate) truncated_at: Option<u64>,
    /// Bytes dropped by the cut (non-zero bytes of the cut segment plus later segments).
    pub(crate) dropped_bytes: u64,
}

pub(super) fn recover(
    dir: &Path,
    segment_size: usize,
    validate_from: u64,
) -> Result<(Vec<Arc<Segment>>, Recovered)> {
    let files = list_offset_files(dir)?;
    let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(files.len());
    let mut extra = Vec::new();
    for (base, path) in files {
        let contiguous = segments.last().is_none_or(|prev| prev.base + segment_size as u64 == base);
        if base % segment_size as u64 != 0 || !contiguous || !extra.is_empty() {
            extra.push(path);
            continue;
        }
        let file = MappedFile::open(&path, segment_size)?;
        segments.push(Arc::new(Segment { base, file }));
    }

    let mut out = Recovered { end: segments.first().map_or(0, |s| s.base), ..Recovered::default() };
    if segments.is_empty() {
        remove_files(dir, &extra, &mut out)?;
        return Ok((segments, out));
    }
    // Validate from the segment holding `validate_from`, and always the last segment.
    let start_idx = segments
        .iter()
        .position(|s| validate_from < s.end())
        .unwrap_or(segments.len() - 1)
        .min(segments.len() - 1);

    let mut cut: Option<(usize, usize, String)> = None; // (segment index, position, reason)
    'segments: for (idx, seg) in segments.iter().enumerate().skip(start_idx) {
        let mut pos = 0usize;
        let size = seg.file.len();
        loop {
            let rest = seg.file.slice(pos, size - pos);
            match record::check(rest) {
                Ok(Check::Message(len)) => {
                    let claimed = record::u64_at(rest, 28).unwrap_or(u64::MAX);
                    if claimed != seg.base + pos as u64 {
                        cut = Some((idx, pos, format!("record claims offset {claimed}")));
                        break 'segments;
                    }
                    pos += len;
                }
                Ok(Check::Blank(_)) => {
                    out.end = seg.end();
                    continue 'segments;
                }
                Ok(Check::End) => {
                    out.end = seg.base + pos as u64;
                    if idx + 1 < segments.len() {
                        cut = Some((idx, pos, "segment ends without a blank record".into()));
                    }
                    break 'segments;
                }
                Err(reason) => {
                    cut = Some((idx, pos, reason));
                    break 'segments;
                }
            }
        }
    }

    if let Some((idx, pos, reason)) = cut
        && let Some(seg) = segments.get(idx).map(Arc::clone)
    {
        let at = seg.base + pos as u64;
        let tail = seg.file.slice(pos, seg.file.len() - pos);
        let nonzero = tail.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1) as u64;
        out.dropped_bytes += nonzero;
        seg.file.zero_from(pos)?;
        for later in segments.drain(idx + 1..) {
            out.dropped_bytes += later.file.len() as u64;
            extra.push(later.file.path().to_owned());
        }
        out.end = at;
        out.truncated_at = Some(at);
        tracing::warn!(
            offset = at,
            segment = %seg.file.path().display(),
            reason,
            "commitlog tail is torn or corrupt: truncated"
        );
    }
    remove_files(dir, &extra, &mut out)?;
    if out.truncated_at.is_some() {
        tracing::warn!(end = out.end, dropped_bytes = out.dropped_bytes, "commitlog recovered");
    }
    Ok((segments, out))
}

fn remove_files(dir: &Path, files: &[std::path::PathBuf], out: &mut Recovered) -> Result<()> {
    for path in files {
        if out.truncated_at.is_none() {
            // A file outside the sequence (gap, bad name) with no corruption before it: the log
            // ends before it.
            out.truncated_at = Some(out.end);
        }
        tracing::warn!(path = %path.display(), "removing commitlog segment past the valid end");
        remove_file(path)?;
    }
    if !files.is_empty() {
        fsync_dir(dir)?;
    }
    Ok(())
}
