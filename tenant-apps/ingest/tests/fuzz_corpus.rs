//! The committed corpora of the ingest fuzz targets (`fuzz/corpus/`),
//! replayed through the same checks the targets run.

#[path = "../../../fuzz/replay.rs"]
mod replay;

use ingest::protocol::fuzz_check;

#[test]
fn every_input_of_the_ingest_frames_corpus_passes_its_check() {
    let dir = replay::corpus_dir(env!("CARGO_MANIFEST_DIR"), "ingest_frames");
    replay::replay(&dir, fuzz_check::frames);
}

#[test]
fn every_input_of_the_ingest_parse_frame_corpus_passes_its_check() {
    let dir = replay::corpus_dir(env!("CARGO_MANIFEST_DIR"), "ingest_parse_frame");
    replay::replay(&dir, fuzz_check::parse_one);
}
