//! rt_sigreturn: back from a signal handler to the context its frame saved
//! (crate::signal builds and reads the frame).

use crate::arch::trap::SyscallFrame;
use linux_abi::SysResult;

pub fn rt_sigreturn(frame: &SyscallFrame) -> SysResult {
    crate::signal::sigreturn(frame.rsp)
}
