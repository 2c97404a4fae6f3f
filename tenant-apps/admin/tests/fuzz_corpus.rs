//! The committed corpus of the `admin_forms` fuzz target
//! (`fuzz/corpus/admin_forms/`), replayed through the same check the
//! target runs.

#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn every_input_of_the_admin_forms_corpus_passes_its_check() {
    let dir = replay::corpus_dir(env!("CARGO_MANIFEST_DIR"), "admin_forms");
    replay::replay(&dir, admin::pages::fuzz_check::forms);
}
