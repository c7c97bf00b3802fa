//! The io_uring driver (being written).

use super::DriverError;

/// Checks that the kernel has every io_uring feature this driver uses.
///
/// # Errors
/// [`DriverError::Unsupported`] naming the first missing feature.
pub fn probe() -> Result<(), DriverError> {
    Err(DriverError::Unsupported {
        feature: "the uring driver (not built yet)",
    })
}
