//! The hashes stamp keys caches and images by, and the one walk of a directory
//! tree they read.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A short hex hash of some bytes (cache keys).
pub(crate) fn short_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The files under `root`, as paths relative to it, in no particular order (callers
/// sort them as their hashes always have). `skip(name, is_dir)` leaves an entry out
/// (a directory left out is not entered); `follow_links`: a link to a directory is
/// entered. The one walk behind the tree hashes (run inputs, the packer template,
/// terraform init's fingerprint), each with its own filter.
pub(crate) fn files_under(root: &Path, follow_links: bool, skip: &dyn Fn(&str, bool) -> bool) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(root, root, follow_links, skip, &mut out)?;
    Ok(out)
}

fn walk(root: &Path, dir: &Path, follow_links: bool, skip: &dyn Fn(&str, bool) -> bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        let is_dir = if follow_links { path.is_dir() } else { entry.file_type()?.is_dir() };
        if skip(&name, is_dir) {
            continue;
        }
        if is_dir {
            walk(root, &path, follow_links, skip, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}
