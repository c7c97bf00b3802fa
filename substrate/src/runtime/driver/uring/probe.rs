//! Feature detection: every opcode and feature the driver uses is probed, never assumed from the
//! kernel version string.

use io_uring::{IoUring, Parameters, Probe, opcode};

use super::recv::BufRing;
use crate::runtime::driver::DriverError;

/// Checks that the kernel has every io_uring feature this driver uses.
///
/// It creates a small ring, asks the kernel which opcodes it supports (`IORING_REGISTER_PROBE`),
/// checks the ring features the driver relies on, and registers then unregisters a provided
/// buffer ring.
///
/// # Errors
/// [`DriverError::Unsupported`] naming the first missing feature, or [`DriverError::Io`] if no
/// ring can be made at all (io_uring disabled, or no memory).
pub fn probe() -> Result<(), DriverError> {
    let ring: IoUring = IoUring::new(8).map_err(|e| DriverError::io("io_uring_setup", e))?;
    check(&ring)?;
    let mut buffers = BufRing::new(1, PROBE_BGID);
    buffers
        .register(&ring.submitter())
        .map_err(|_| DriverError::Unsupported {
            feature: "provided buffer rings (IORING_REGISTER_PBUF_RING)",
        })?;
    buffers
        .unregister(&ring.submitter())
        .map_err(|_| DriverError::Unsupported {
            feature: "provided buffer rings (IORING_UNREGISTER_PBUF_RING)",
        })?;
    Ok(())
}

/// Optional features, found by [`check`].
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) struct Features {
    /// `SendMsgZc` (6.1), the zero-copy fallback when fixed buffers cannot be registered.
    pub(super) send_msg_zc: bool,
    /// `IORING_SEND_ZC_REPORT_USAGE` (6.2). No opcode or feature bit announces it, so it is
    /// inferred from `ReadMulti` (6.7), the first later opcode.
    pub(super) report_usage: bool,
}

/// Checks the required opcodes and features of `ring`'s kernel.
pub(super) fn check(ring: &IoUring) -> Result<Features, DriverError> {
    let params: &Parameters = ring.params();
    if !params.is_feature_nodrop() {
        return Err(DriverError::Unsupported {
            feature: "IORING_FEAT_NODROP (completions kept on overflow)",
        });
    }
    if !params.is_feature_ext_arg() {
        return Err(DriverError::Unsupported {
            feature: "IORING_FEAT_EXT_ARG (waiting with a timeout)",
        });
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|_| DriverError::Unsupported {
            feature: "IORING_REGISTER_PROBE",
        })?;
    for (code, feature) in REQUIRED {
        if !probe.is_supported(code) {
            return Err(DriverError::Unsupported { feature });
        }
    }
    Ok(Features {
        send_msg_zc: probe.is_supported(opcode::SendMsgZc::CODE),
        report_usage: probe.is_supported(opcode::ReadMulti::CODE),
    })
}

/// Opcodes the driver cannot work without, in the order they are checked.
const REQUIRED: [(u8, &str); 5] = [
    (opcode::SendMsg::CODE, "IORING_OP_SENDMSG"),
    (opcode::RecvMsgMulti::CODE, "IORING_OP_RECVMSG"),
    // The probe reports opcodes, not flags: multishot `RecvMsg` and `SendZc` to an address both
    // arrived in 6.0, so `SendZc` being present vouches for multishot receive too.
    (
        opcode::SendZc::CODE,
        "IORING_OP_SEND_ZC (and with it multishot RECVMSG, kernel 6.0)",
    ),
    (opcode::PollAdd::CODE, "IORING_OP_POLL_ADD (multishot)"),
    (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL"),
];

/// A group id used only by the probe's own throwaway ring.
const PROBE_BGID: u16 = 0x7ead;
