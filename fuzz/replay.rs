//! Replays a committed fuzz corpus through its target's check on stable
//! Rust, so `cargo test` runs every input the fuzzer kept (the crashes it
//! found among them). Included with `#[path]` by `tests/fuzz_corpus.rs` of
//! ingest and of admin; not part of the fuzz crate's build.

use std::path::{Path, PathBuf};

/// The corpus directory of `target`, from a crate two levels below the
/// repository root (`tenant-apps/<crate>`).
pub fn corpus_dir(manifest_dir: &str, target: &str) -> PathBuf {
    Path::new(manifest_dir)
        .join("../../fuzz/corpus")
        .join(target)
}

/// Runs `check` on every file of `dir`. Fails if the directory is missing
/// or empty (so the replay cannot pass by finding nothing), and names every
/// file whose check panicked.
pub fn replay(dir: &Path, check: fn(&[u8])) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "the corpus {} holds no input",
        dir.display()
    );
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} inputs of {} failed their check (the panics are above): {}",
        failed.len(),
        files.len(),
        dir.display(),
        failed.join(", ")
    );
}
