//! Key prints: what a pod directory keeps (`keys.json`, mode 0600) to recognise the key it ran
//! with without holding it: its length, a salted SHA-256 and a salted rolling hash, so a
//! document can be searched for the key in one pass wherever it is checked.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::HomeError;

/// The file in a pod directory holding its key prints.
pub const KEYS_FILE: &str = "keys.json";

/// What `keys.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyFile {
    pub format: u32,
    pub keys: Vec<KeyPrint>,
}

/// Recognises one byte string (a key, or its JSON-escaped form) without holding it.
///
/// `roll` is the polynomial hash `Σ b[i]·base^(len-1-i)` (wrapping, mod 2^64) of the bytes with
/// `base` derived from the salt, so every window of a document can be hashed in O(1) from the
/// previous one; only a window whose rolling hash matches is checked against `sha256`
/// (SHA-256 of salt ‖ bytes).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPrint {
    /// The variable the key came from.
    pub env_var: String,
    /// `raw`, or `json` for the form the key takes inside a JSON string.
    pub form: String,
    pub len: usize,
    /// 16 random bytes, hex.
    pub salt: String,
    /// SHA-256 of salt ‖ bytes, hex.
    pub sha256: String,
    pub roll: u64,
}

impl std::fmt::Debug for KeyPrint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPrint")
            .field("env_var", &self.env_var)
            .field("form", &self.form)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => u8::from_str_radix(std::str::from_utf8(&[*hi, *lo]).ok()?, 16).ok(),
            _ => None,
        })
        .collect()
}

/// The rolling hash base for `salt`: odd, so every power of it is invertible mod 2^64.
fn base_of(salt: &[u8]) -> u64 {
    let digest = Sha256::digest([b"pods-roll:".as_slice(), salt].concat());
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(word) | 1
}

fn roll_of(bytes: &[u8], base: u64) -> u64 {
    bytes.iter().fold(0u64, |h, &b| {
        h.wrapping_mul(base).wrapping_add(u64::from(b))
    })
}

fn salted(salt: &[u8], bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(bytes);
    hex(&hasher.finalize())
}

impl KeyPrint {
    /// The print of `bytes` with `salt`.
    pub fn new(env_var: &str, form: &str, bytes: &[u8], salt: &[u8]) -> KeyPrint {
        KeyPrint {
            env_var: env_var.to_owned(),
            form: form.to_owned(),
            len: bytes.len(),
            salt: hex(salt),
            sha256: salted(salt, bytes),
            roll: roll_of(bytes, base_of(salt)),
        }
    }

    /// Whether `bytes` are what this print recognises.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let Some(salt) = unhex(&self.salt) else {
            return false;
        };
        bytes.len() == self.len && salted(&salt, bytes) == self.sha256
    }

    /// Whether `haystack` contains what this print recognises, in one pass.
    pub fn found_in(&self, haystack: &[u8]) -> bool {
        let len = self.len;
        let Some(salt) = unhex(&self.salt) else {
            return false;
        };
        if len == 0 || haystack.len() < len {
            return false;
        }
        let base = base_of(&salt);
        // base^(len-1): the weight of the byte leaving the window.
        let top = (1..len).fold(1u64, |p, _| p.wrapping_mul(base));
        let mut h = roll_of(&haystack[..len], base);
        let mut start = 0;
        loop {
            if h == self.roll && salted(&salt, &haystack[start..start + len]) == self.sha256 {
                return true;
            }
            let Some(&next) = haystack.get(start + len) else {
                return false;
            };
            h = h
                .wrapping_sub(u64::from(haystack[start]).wrapping_mul(top))
                .wrapping_mul(base)
                .wrapping_add(u64::from(next));
            start += 1;
        }
    }
}

/// Every form `value` can take in a written document: as it is, and inside a JSON string.
/// The prints in `path`; `None` when the file does not exist (pods from before prints were
/// kept, or that never had a key).
pub fn read_key_file(path: &Path) -> Result<Option<KeyFile>, HomeError> {
    let bytes = match crate::files::read_regular(path, 1 << 20) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(HomeError::io("read", path)(error)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| HomeError::Parse {
            what: "keys.json",
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_print_finds_its_key_anywhere_and_nothing_else() {
        let key = b"sk-proj-0123456789abcdefXYZ";
        let print = KeyPrint::new("K", "raw", key, b"0123456789abcdef");
        assert!(print.matches(key));
        let mut doc = b"prefix ".repeat(1000);
        assert!(!print.found_in(&doc));
        doc.extend_from_slice(key);
        assert!(print.found_in(&doc));
        assert!(print.found_in(key));
        let near = b"sk-proj-0123456789abcdefXYz";
        assert!(!print.found_in(near));
        assert!(!print.found_in(&key[1..]));
        // Neither the key nor a piece of it is in the print.
        let json = serde_json::to_string(&print).unwrap_or_default();
        assert!(!json.contains("0123456789abcdefXYZ"), "{json}");
        assert!(!format!("{print:?}").contains("sk-proj"));
    }
}
