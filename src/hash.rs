//! The hashes stamp keys caches and images by, in one place.

use sha2::{Digest, Sha256};

/// A short hex hash of some bytes (cache keys).
pub fn short_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}
