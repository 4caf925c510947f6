//! The checked-in header is what cbindgen generates from the sources: a change to the
//! ABI that forgets the header fails here (refresh on purpose with `BATON_BLESS=1`).

use std::path::Path;

#[test]
fn checked_in_header_matches_the_sources() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("ffi/cbindgen.toml parses");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = crate_dir.join("include/baton.h");
    if std::env::var_os("BATON_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/baton.h");
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "ffi/include/baton.h differs from what cbindgen generates; if the ABI change is \
         intended (and BATON_ABI_VERSION bumped when it breaks callers), refresh it with \
         `BATON_BLESS=1 cargo test -p baton-ffi --test header`"
    );
}
