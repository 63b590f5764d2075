//! The spool's files: numbered segments in one folder, appended by one thread that writes
//! every record waiting and then fsyncs once (group commit), and read back in order.
//!
//! ```text
//!  <dir>/00000000000000000001.spool   records (see `record`), oldest segment first
//!  <dir>/00000000000000000002.spool   the one being appended to
//! ```
//!
//! An append answers only after `fsync`: what it acknowledged survives a crash or a power
//! cut. At open, a torn tail (a record the crash cut short, never acknowledged) is cut
//! off; damaged records elsewhere stay and are skipped, and counted, by the reader.
//! Segments are dropped once read past; a drained spool leaves no file behind.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::record::{self, Found};

/// A segment is closed and a new one begun past this size, so read segments can be freed.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
const EXTENSION: &str = "spool";

/// Where a reader is: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What one append asks for and how it is answered.
pub struct Append {
    pub record: Vec<u8>,
    pub reply: tokio::sync::oneshot::Sender<io::Result<Position>>,
}

/// Messages the appending thread takes, in order.
pub enum Command {
    Append(Append),
    /// Deletes every segment if nothing was appended past `read` (the reader's position):
    /// answers whether the spool is now empty.
    ResetIfDrained {
        read: Position,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    /// Deletes the segments before `segment` (read past).
    DropBefore(u64),
}

/// The segments on disk, as the appending thread keeps them.
pub struct Segments {
    dir: PathBuf,
    /// Sequence numbers and sizes, oldest first; the last is appended to.
    files: VecDeque<(u64, u64)>,
    current: Option<File>,
}

impl Segments {
    /// Opens the folder (creating it), cutting a torn tail off the newest segment.
    pub fn open(dir: &Path) -> io::Result<(Segments, Recovered)> {
        fs::create_dir_all(dir)?;
        let mut files = VecDeque::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let sequence = path
                .extension()
                .filter(|e| *e == EXTENSION)
                .and_then(|_| path.file_stem()?.to_str()?.parse::<u64>().ok());
            if let Some(sequence) = sequence {
                files.push_back((sequence, fs::metadata(&path)?.len()));
            }
        }
        files.make_contiguous().sort_unstable();
        let mut segments = Segments {
            dir: dir.to_owned(),
            files,
            current: None,
        };
        let recovered = segments.recover_tail()?;
        Ok((segments, recovered))
    }

    pub fn path_of(dir: &Path, sequence: u64) -> PathBuf {
        dir.join(format!("{sequence:020}.{EXTENSION}"))
    }

    /// The first segment and the end of the last: what a reader may read.
    pub fn span(&self) -> (Position, Position) {
        let first = self.files.front().map_or(0, |f| f.0);
        let end = self
            .files
            .back()
            .map_or(Position::default(), |&(s, len)| Position {
                segment: s,
                offset: len,
            });
        (
            Position {
                segment: first,
                offset: 0,
            },
            end,
        )
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }

    /// A crash mid-append leaves the newest segment ending in a record cut short; it was
    /// never acknowledged, so it is cut off before anything is appended after it.
    fn recover_tail(&mut self) -> io::Result<Recovered> {
        let mut recovered = Recovered::default();
        let Some(&(sequence, len)) = self.files.back() else {
            return Ok(recovered);
        };
        let path = Self::path_of(&self.dir, sequence);
        let bytes = fs::read(&path)?;
        let mut at = 0;
        loop {
            match record::read(&bytes, at) {
                Found::Record { next, .. }
                | Found::Damaged { next, .. }
                | Found::Garbage { next } => at = next,
                Found::End => break,
                Found::Incomplete => {
                    OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(at as u64)?;
                    File::open(&self.dir)?.sync_all()?;
                    recovered.torn_bytes = len - at as u64;
                    if let Some(last) = self.files.back_mut() {
                        last.1 = at as u64;
                    }
                    break;
                }
            }
        }
        Ok(recovered)
    }

    /// Appends the records and fsyncs once; returns where each one ended.
    pub fn append_all(&mut self, records: &[Vec<u8>]) -> io::Result<Vec<Position>> {
        let mut ends = Vec::with_capacity(records.len());
        for record in records {
            self.rotate_if_full()?;
            let file = self.current_file()?;
            file.write_all(record)?;
            let last = self.files.back_mut().expect("current_file made a segment");
            last.1 += record.len() as u64;
            ends.push(Position {
                segment: last.0,
                offset: last.1,
            });
        }
        if let Some(file) = self.current.as_mut() {
            file.sync_data()?;
        }
        Ok(ends)
    }

    fn rotate_if_full(&mut self) -> io::Result<()> {
        if self.files.back().is_some_and(|f| f.1 >= SEGMENT_BYTES) {
            if let Some(file) = self.current.take() {
                file.sync_data()?;
            }
            let next = self.files.back().map_or(1, |f| f.0 + 1);
            self.files.push_back((next, 0));
        }
        Ok(())
    }

    fn current_file(&mut self) -> io::Result<&mut File> {
        if self.files.is_empty() {
            self.files.push_back((1, 0));
        }
        if self.current.is_none() {
            let sequence = self.files.back().map_or(1, |f| f.0);
            let path = Self::path_of(&self.dir, sequence);
            let created = !path.exists();
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            if created {
                // The new file's name must survive a crash as well as its bytes.
                File::open(&self.dir)?.sync_all()?;
            }
            self.current = Some(file);
        }
        Ok(self.current.as_mut().expect("just opened"))
    }

    /// Deletes the segments before `segment`.
    pub fn drop_before(&mut self, segment: u64) -> io::Result<()> {
        while self.files.front().is_some_and(|f| f.0 < segment) {
            if let Some((sequence, _)) = self.files.pop_front() {
                remove_if_present(&Self::path_of(&self.dir, sequence))?;
            }
        }
        Ok(())
    }

    /// Deletes every segment when the reader has reached the end; `true` when it did.
    pub fn reset_if_drained(&mut self, read: Position) -> io::Result<bool> {
        if read < self.span().1 {
            return Ok(false);
        }
        self.current = None;
        let next = self.files.back().map_or(1, |f| f.0 + 1);
        for (sequence, _) in self.files.drain(..) {
            remove_if_present(&Self::path_of(&self.dir, sequence))?;
        }
        // Numbering goes on, so a reader's position is never reused.
        self.files.push_back((next, 0));
        Ok(true)
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// What opening found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Bytes of a record cut short at the end, removed.
    pub torn_bytes: u64,
}

/// The appending thread: takes commands until every sender is gone. Appends waiting
/// together share one fsync.
pub fn run(mut segments: Segments, commands: mpsc::Receiver<Command>, on_change: impl Fn(u64)) {
    while let Ok(first) = commands.recv() {
        let mut appends = Vec::new();
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Append(append) => appends.push(append),
                other => {
                    flush(&mut segments, std::mem::take(&mut appends));
                    apply(&mut segments, other);
                }
            }
            next = commands.try_recv().ok();
        }
        flush(&mut segments, appends);
        on_change(segments.bytes());
    }
}

fn flush(segments: &mut Segments, appends: Vec<Append>) {
    if appends.is_empty() {
        return;
    }
    let records: Vec<Vec<u8>> = appends.iter().map(|a| a.record.clone()).collect();
    match segments.append_all(&records) {
        Ok(ends) => {
            for (append, end) in appends.into_iter().zip(ends) {
                let _ = append.reply.send(Ok(end));
            }
        }
        Err(error) => {
            tracing::error!(%error, "the spool could not append");
            for append in appends {
                let _ = append
                    .reply
                    .send(Err(io::Error::new(error.kind(), error.to_string())));
            }
        }
    }
}

fn apply(segments: &mut Segments, command: Command) {
    match command {
        Command::Append(_) => {}
        Command::ResetIfDrained { read, reply } => {
            let drained = segments.reset_if_drained(read).unwrap_or_else(|error| {
                tracing::warn!(%error, "the spool could not delete its segments");
                false
            });
            let _ = reply.send(drained);
        }
        Command::DropBefore(segment) => {
            if let Err(error) = segments.drop_before(segment) {
                tracing::warn!(%error, "the spool could not delete a segment");
            }
        }
    }
}

/// A reader's view of one record: what is there, and the bytes it was read from (offsets in
/// `Found` count from the position read at).
pub struct Read {
    pub found: Found,
    pub bytes: Vec<u8>,
}

/// How much of a segment one read looks at first; a record longer than this is read whole.
const WINDOW: u64 = 256 * 1024;

/// Reads the record at `offset` of a segment, as far as `end` (bytes past it may be an
/// append still in progress), without reading the rest of the file.
pub fn read_record(dir: &Path, segment: u64, offset: u64, end: Option<u64>) -> io::Result<Read> {
    let mut file = match File::open(Segments::path_of(dir, segment)) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(Read {
                found: Found::End,
                bytes: Vec::new(),
            })
        }
        Err(error) => return Err(error),
    };
    let len = file.metadata()?.len();
    let len = end.map_or(len, |end| end.min(len));
    let mut bytes = read_at(&mut file, offset, WINDOW.min(len.saturating_sub(offset)))?;
    loop {
        let found = record::read(&bytes, 0);
        let available = len.saturating_sub(offset);
        match found {
            // A record longer than the window: read it whole.
            Found::Incomplete if (bytes.len() as u64) < available => {
                let want = record::declared_size(&bytes).unwrap_or(bytes.len() * 2) as u64;
                bytes = read_at(
                    &mut file,
                    offset,
                    want.max(bytes.len() as u64 * 2).min(available),
                )?;
            }
            // Garbage to the end of the window: look further (a header may straddle it).
            Found::Garbage { next } if next == bytes.len() && (bytes.len() as u64) < available => {
                let more = (bytes.len() as u64 + WINDOW).min(available);
                bytes = read_at(&mut file, offset, more)?;
            }
            found => return Ok(Read { found, bytes }),
        }
    }
}

fn read_at(file: &mut File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    use std::io::{Read as _, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temp dir")
    }

    #[test]
    fn appends_survive_a_reopen_and_a_torn_tail_is_cut_off() {
        let dir = temp();
        let (mut segments, _) = Segments::open(dir.path()).expect("open");
        let one = record::encode(b"one", 1);
        let two = record::encode(b"two", 2);
        let ends = segments
            .append_all(&[one.clone(), two.clone()])
            .expect("append");
        assert_eq!(ends[1].offset, (one.len() + two.len()) as u64);
        drop(segments);
        // A crash in the middle of a third append.
        let path = Segments::path_of(dir.path(), 1);
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&record::encode(b"three", 3)[..9])
            .expect("torn write");
        drop(file);
        let (segments, recovered) = Segments::open(dir.path()).expect("reopen");
        assert_eq!(recovered.torn_bytes, 9);
        assert_eq!(segments.span().1, ends[1]);
        assert_eq!(fs::read(&path).expect("read").len(), one.len() + two.len());
    }

    #[test]
    fn a_drained_spool_leaves_no_file_and_numbering_goes_on() {
        let dir = temp();
        let (mut segments, _) = Segments::open(dir.path()).expect("open");
        let end = segments
            .append_all(&[record::encode(b"x", 1)])
            .expect("append")[0];
        assert!(!segments
            .reset_if_drained(Position::default())
            .expect("reset"));
        assert!(segments.reset_if_drained(end).expect("reset"));
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
        let next = segments
            .append_all(&[record::encode(b"y", 1)])
            .expect("append")[0];
        assert_eq!(next.segment, 2);
    }
}
