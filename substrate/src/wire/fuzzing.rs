//! Harnesses shared by the cargo-fuzz targets (`substrate/fuzz`), the property tests and the
//! corpus-replay test: each takes arbitrary bytes and checks the decoder's contract.
