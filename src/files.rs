//! Writing files so a reader (or a crash) never sees half of one. A leaf: the
//! journal, the reports, the stages and the tools all write through it.

use std::path::Path;

use crate::error::Error;

/// Writes `path` through a temporary file in the same directory and a rename, so
/// a reader never sees half a file.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |e| Error::work_dir(format!("writing {}", path.display()), e);
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(err)?;
    // On disk before the rename, so a crash leaves the old file or the new one, never an empty one.
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
