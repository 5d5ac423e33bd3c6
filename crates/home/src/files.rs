//! Reading and writing files of a pod home safely: a reader never blocks on a FIFO or device
//! and never holds more than a bound of one line; a writer replaces a file atomically.

use std::fs::File;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::HomeError;

/// Longest line a reader keeps; a longer one is reported unreadable without being held in
/// memory (a log that is a symlink to an endless source, or one giant line, cannot grow a
/// reader without bound).
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// What kind of file a non-regular file is, for an error message.
pub fn file_kind(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a named pipe (FIFO)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Open `path` for reading only if it is a regular file, symlinks followed: a FIFO, socket or
/// device in a pod directory would block a reader forever or never end. The open itself is
/// non-blocking (a FIFO cannot hold it), and the type is checked on the opened file, so a
/// file swapped in between cannot slip through. A refusal is an `InvalidInput` error saying
/// what the file is.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}, not a regular file", file_kind(file_type)),
        ));
    }
    Ok(file)
}

/// Read the whole regular file `path` (see [`open_regular`]), refusing one larger than `max`
/// bytes.
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// How one line was read by [`read_line_bounded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRead {
    /// Bytes the line took in the file, line end included.
    pub bytes: u64,
    /// It ended with `\n` (not cut off by the end of the file).
    pub terminated: bool,
    /// It was longer than the bound; nothing of it was kept.
    pub oversized: bool,
}

/// Read one line into `buf`, keeping at most `max` bytes of it (a longer line is consumed and
/// reported `oversized`, with `buf` empty); `None` at the end of the file.
pub fn read_line_bounded(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<LineRead>> {
    let mut read = LineRead {
        bytes: 0,
        terminated: false,
        oversized: false,
    };
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((read.bytes > 0).then_some(read));
        }
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        if !read.oversized && buf.len().saturating_add(chunk.len()) <= max {
            buf.extend_from_slice(chunk);
        } else {
            read.oversized = true;
            buf.clear();
        }
        let used = chunk.len();
        read.bytes = read.bytes.saturating_add(used as u64);
        reader.consume(used);
        if done {
            read.terminated = true;
            return Ok(Some(read));
        }
    }
}

/// Why [`replace_with`] failed: the caller's writing, or the file system.
#[derive(Debug)]
pub enum ReplaceError<E> {
    /// `write` failed; nothing was put in place.
    Write(E),
    /// Creating, syncing or renaming the file failed.
    Io(std::io::Error),
}

/// A name in the same directory as `file_name`, unique per process and per call, so two
/// writers of one file (threads of a process, or two processes) never share one.
fn temp_name(file_name: &str) -> String {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    format!(".{file_name}.{}.{serial}.tmp", std::process::id())
}

/// A file being written that asks the kernel to start writing it back to disk every
/// [`WRITEBACK_STEP`] bytes it grows, without waiting for it: a sync at the end then waits for
/// the last step only, not for everything written (tens of megabytes for a long trace or a big
/// export, which the disk would otherwise take in one go at the end).
#[derive(Debug)]
pub struct WritebackFile {
    file: File,
    /// Bytes written so far.
    written: u64,
    /// Where the last writeback request ended.
    requested: u64,
    /// Cleared when the kernel refuses a request (nothing is lost: the sync writes it all).
    writeback: bool,
}

/// How many written bytes make a [`WritebackFile`] ask for their writeback.
pub const WRITEBACK_STEP: u64 = 1 << 20;

impl WritebackFile {
    pub fn new(file: File) -> WritebackFile {
        WritebackFile {
            file,
            written: 0,
            requested: 0,
            writeback: true,
        }
    }

    /// Make the data written durable (`fdatasync`).
    pub fn sync_data(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Make the data and metadata written durable (`fsync`).
    pub fn sync_all(&self) -> std::io::Result<()> {
        self.file.sync_all()
    }

    /// Ask the kernel to start writing back the bytes since the last request. `fadvise` with
    /// `DONTNEED` starts the writeback of dirty pages without waiting for it (it cannot drop
    /// them before they are written, and the sync at the end reports any writeback error).
    fn request_writeback(&mut self) {
        let Some(len) = std::num::NonZeroU64::new(self.written - self.requested) else {
            return;
        };
        let asked = rustix::fs::fadvise(
            &self.file,
            self.requested,
            Some(len),
            rustix::fs::Advice::DontNeed,
        );
        match asked {
            Ok(()) => self.requested = self.written,
            Err(_) => self.writeback = false,
        }
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.writeback && self.written - self.requested >= WRITEBACK_STEP {
            self.request_writeback();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Replace `path` atomically with what `write` writes: into a new temporary file in the same
/// directory (mode 0600: pod files and exports hold prompts and outputs), synced and renamed
/// into place, then the directory synced, only when `write` succeeded. On any error the
/// temporary file is removed and `path` is left as it was.
pub fn replace_with<T, E>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, E>,
) -> Result<T, ReplaceError<E>> {
    // A bare file name has the empty path as its parent: that is the current directory.
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(temp_name(&file_name));
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(ReplaceError::Io)?
    };
    let result = (|| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, WritebackFile::new(file));
        let value = write(&mut out).map_err(ReplaceError::Write)?;
        let file = out
            .into_inner()
            .map_err(|e| ReplaceError::Io(e.into_error()))?;
        file.sync_all().map_err(ReplaceError::Io)?;
        std::fs::rename(&tmp, path).map_err(ReplaceError::Io)?;
        Ok(value)
    })();
    if result.is_err() {
        // Best effort: the temporary file is ours and useless now; `path` is untouched.
        let _ = std::fs::remove_file(&tmp);
    }
    let value = result?;
    // The file is in place; syncing its directory makes the rename durable. File systems that
    // cannot sync a directory (EINVAL: some network and FUSE mounts) have nothing to make
    // durable this way, which is no failure of the write.
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        Err(error) if error.kind() != std::io::ErrorKind::InvalidInput => {
            Err(ReplaceError::Io(error))
        }
        _ => Ok(value),
    }
}

/// Replace `path` atomically with `bytes` (see [`replace_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
    replace_with(path, |out| out.write_all(bytes)).map_err(|error| {
        let source = match error {
            ReplaceError::Write(source) | ReplaceError::Io(source) => source,
        };
        HomeError::io("write", path)(source)
    })
}

/// Make a directory's entries (new or renamed files) durable.
pub fn sync_dir(dir: &Path) -> Result<(), HomeError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(HomeError::io("sync directory", dir))
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
