//! Harnesses shared by the property tests and the fuzz targets.
