//! The snapshot file, written atomically.
//!
//! Layout (little endian):
//!
//! ```text
//! offset 0   8 bytes  magic "BATONSN1"
//! offset 8   u64      payload length
//! offset 16  u32      CRC32C of the payload
//! offset 20  u32      CRC32C of bytes 0..20
//! offset 24           payload: the Snapshot, bincode 2 (standard configuration)
//! ```
//!
//! Each snapshot has its own file, `snapshot-<last index>-<last term>.bin` (20 digits each).
//! Writing goes to [`SNAPSHOT_TEMP_FILE`], which is fsynced, renamed to the final name, and
//! then the directory is fsynced: a crash never leaves a half-written snapshot under a final
//! name. The log's snapshot marker says which snapshot is current; the store deletes the
//! others (older ones once the marker is durable, newer orphans of a crash on open).

use super::{foreign_format_version, StorageError};
use baton_core::{Index, Snapshot, Term};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name the snapshot is written under before it is renamed into place.
pub const SNAPSHOT_TEMP_FILE: &str = "snapshot.tmp";

pub(crate) const MAGIC: &[u8; 8] = b"BATONSN1";
const HEADER_BYTES: usize = 24;
/// Largest snapshot the decoder accepts; a larger length field is damage.
pub const SNAPSHOT_BYTES_MAX: usize = 1 << 34;

fn codec_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<SNAPSHOT_BYTES_MAX>()
}

/// Fsyncs a directory so that a creation, rename or removal inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| StorageError::io("fsync directory", dir, error))
}

/// Encodes a snapshot file's bytes.
pub fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + snapshot.data.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[0u8; HEADER_BYTES - 8]);
    // Encoding plain data into a Vec cannot fail; a failure would surface as a corrupt
    // snapshot on the next open, never as silent acceptance.
    let encoded = bincode::serde::encode_into_std_write(snapshot, &mut out, codec_config());
    debug_assert!(encoded.is_ok(), "encoding a snapshot failed");
    let payload_len = (out.len() - HEADER_BYTES) as u64;
    let payload_crc = crc32c::crc32c(&out[HEADER_BYTES..]);
    out[8..16].copy_from_slice(&payload_len.to_le_bytes());
    out[16..20].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&out[0..20]);
    out[20..24].copy_from_slice(&header_crc.to_le_bytes());
    out
}

/// Frames arbitrary `payload` bytes as a snapshot file with valid checksums. For tests and
/// fuzzing: it lets them reach the body decoder past the checksums.
pub fn frame_raw_snapshot(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&out[0..20]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Decodes a snapshot file's bytes; the error is (byte offset, reason).
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, (u64, String)> {
    let Some(header) = bytes.get(..HEADER_BYTES) else {
        return Err((
            0,
            format!("file has {} bytes, shorter than the header", bytes.len()),
        ));
    };
    if &header[0..8] != MAGIC {
        return Err((0, "bad magic".to_string()));
    }
    let le_u32 = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if crc32c::crc32c(&header[0..20]) != le_u32(20) {
        return Err((0, "header checksum mismatch".to_string()));
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&header[8..16]);
    let payload_len = u64::from_le_bytes(len_bytes);
    let available = (bytes.len() - HEADER_BYTES) as u64;
    if payload_len != available {
        return Err((
            HEADER_BYTES as u64,
            format!("header says {payload_len} payload bytes, the file holds {available}"),
        ));
    }
    let payload = &bytes[HEADER_BYTES..];
    if crc32c::crc32c(payload) != le_u32(16) {
        return Err((HEADER_BYTES as u64, "payload checksum mismatch".to_string()));
    }
    match bincode::serde::decode_from_slice::<Snapshot, _>(payload, codec_config()) {
        Ok((snapshot, used)) if used == payload.len() => Ok(snapshot),
        Ok((_, used)) => Err((
            (HEADER_BYTES + used) as u64,
            "trailing bytes after the snapshot".to_string(),
        )),
        Err(error) => Err((HEADER_BYTES as u64, format!("malformed snapshot: {error}"))),
    }
}

/// File name of the snapshot that ends at (`last_index`, `last_term`).
pub fn snapshot_file_name(last_index: Index, last_term: Term) -> String {
    format!("snapshot-{last_index:020}-{last_term:020}.bin")
}

fn parse_snapshot_file_name(name: &str) -> Option<(Index, Term)> {
    let middle = name.strip_prefix("snapshot-")?.strip_suffix(".bin")?;
    let (index, term) = middle.split_once('-')?;
    let all_digits =
        |text: &str| text.len() == 20 && text.bytes().all(|byte| byte.is_ascii_digit());
    if !all_digits(index) || !all_digits(term) {
        return None;
    }
    Some((index.parse().ok()?, term.parse().ok()?))
}

/// Writes `snapshot` durably under its own name (temporary file, fsync, rename, directory
/// fsync) and returns the path. The previous snapshot stays until the log's marker for this
/// one is durable, so a crash in between recovers the old pair (log, snapshot) intact.
pub fn write_snapshot(dir: &Path, snapshot: &Snapshot) -> Result<PathBuf, StorageError> {
    let temp = dir.join(SNAPSHOT_TEMP_FILE);
    let target = dir.join(snapshot_file_name(
        snapshot.meta.last_index,
        snapshot.meta.last_term,
    ));
    let bytes = encode_snapshot(snapshot);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(|error| StorageError::io("create", &temp, error))?;
    file.write_all(&bytes)
        .map_err(|error| StorageError::io("write", &temp, error))?;
    file.sync_all()
        .map_err(|error| StorageError::io("fsync", &temp, error))?;
    drop(file);
    fs::rename(&temp, &target).map_err(|error| StorageError::io("rename", &temp, error))?;
    sync_dir(dir)?;
    Ok(target)
}

/// Lists the snapshot files in `dir` as (last index, last term, path), oldest first, and
/// removes a leftover temporary file (never renamed into place, so never promised).
pub fn list_snapshot_files(dir: &Path) -> Result<Vec<(Index, Term, PathBuf)>, StorageError> {
    let temp = dir.join(SNAPSHOT_TEMP_FILE);
    if temp.exists() {
        tracing::warn!(path = %temp.display(), "removing an unfinished snapshot file");
        fs::remove_file(&temp).map_err(|error| StorageError::io("remove", &temp, error))?;
    }
    let reader = fs::read_dir(dir).map_err(|error| StorageError::io("list", dir, error))?;
    let mut found = Vec::new();
    for item in reader {
        let item = item.map_err(|error| StorageError::io("list", dir, error))?;
        if let Some((index, term)) = item.file_name().to_str().and_then(parse_snapshot_file_name) {
            found.push((index, term, item.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Reads and checks the snapshot file at `path`, which must hold (`last_index`, `last_term`).
pub fn read_snapshot_file(
    path: &Path,
    last_index: Index,
    last_term: Term,
) -> Result<Snapshot, StorageError> {
    let bytes = fs::read(path).map_err(|error| StorageError::io("read", path, error))?;
    if let Some(found) = foreign_format_version(&bytes, MAGIC) {
        return Err(StorageError::UnsupportedFormat {
            path: path.to_path_buf(),
            found,
            supported: String::from_utf8_lossy(MAGIC).into_owned(),
        });
    }
    let corrupt = |offset: u64, reason: String| StorageError::CorruptSnapshot {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let snapshot = decode_snapshot(&bytes).map_err(|(offset, reason)| corrupt(offset, reason))?;
    if (snapshot.meta.last_index, snapshot.meta.last_term) != (last_index, last_term) {
        return Err(corrupt(
            HEADER_BYTES as u64,
            format!(
                "holds the snapshot at index {} term {}, its name says index {last_index} term {last_term}",
                snapshot.meta.last_index, snapshot.meta.last_term
            ),
        ));
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::SnapshotMeta;
    use rand::{Rng, SeedableRng};

    #[test]
    fn a_snapshot_round_trips_and_any_damage_is_reported() {
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                last_index: 9,
                last_term: 2,
                ..SnapshotMeta::default()
            },
            data: vec![7; 300],
        };
        let bytes = encode_snapshot(&snapshot);
        assert_eq!(decode_snapshot(&bytes), Ok(snapshot));
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(decode_snapshot(&damaged).is_err(), "flip at {at}");
        }
        for cut in 0..bytes.len() {
            assert!(decode_snapshot(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// CI's stand-in for the `snapshot_file` fuzz target.
    #[test]
    fn decoder_survives_random_bodies() {
        let cases = 5_000;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed_0002);
        for _ in 0..cases {
            let len = rng.random_range(0..120);
            let body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let _ = decode_snapshot(&frame_raw_snapshot(&body));
            let _ = decode_snapshot(&body);
        }
    }
}
