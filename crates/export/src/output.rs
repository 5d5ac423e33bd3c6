//! Putting a checked document in place: it is written to a temporary file first and reaches
//! its destination only when the whole document was written and passed the secret check, so
//! nothing partial (and nothing holding a secret) is ever left where the reader looks.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use pod_home::files::ReplaceError;

use crate::error::ExportError;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(".{prefix}.{}.{n}.{nanos}.tmp", std::process::id())
}

/// A new file in `dir` that has no name: removed as soon as it is created, so it goes away
/// with its last handle whatever happens to the process.
pub(crate) fn anonymous_file(dir: &Path) -> std::io::Result<File> {
    let path = dir.join(temp_name("pods-export"));
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?
    };
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Write a document to `path` with `write`: into a temporary file in the same directory,
/// synced and renamed into place only when `write` succeeded (`pod_home::files::replace_with`).
/// On any error the temporary file is removed and `path` is left as it was.
pub fn write_file_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    pod_home::files::replace_with(path, write).map_err(|error| match error {
        ReplaceError::Write(error) => error,
        ReplaceError::Io(source) => ExportError::WriteFile {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Write a document to `out` (stdout) with `write`: into an unnamed temporary file in the
/// system's temporary directory, copied to `out` only when `write` succeeded. A failure to
/// copy is [`ExportError::WriteFile`] for `<stdout>`.
pub fn write_stdout_checked<T>(
    out: &mut dyn Write,
    write: impl FnOnce(&mut dyn Write) -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    let temp_dir = std::env::temp_dir();
    let file = anonymous_file(&temp_dir).map_err(|source| ExportError::WriteFile {
        path: temp_dir.clone(),
        source,
    })?;
    let mut spool = BufWriter::with_capacity(1 << 20, file);
    let value = write(&mut spool)?;
    let stdout_failed = |source: std::io::Error| ExportError::WriteFile {
        path: PathBuf::from("<stdout>"),
        source,
    };
    let mut file = spool.into_inner().map_err(|e| ExportError::WriteFile {
        path: temp_dir.clone(),
        source: e.into_error(),
    })?;
    file.rewind().map_err(stdout_failed)?;
    std::io::copy(&mut file, out)
        .and_then(|_| out.flush())
        .map_err(stdout_failed)?;
    Ok(value)
}
