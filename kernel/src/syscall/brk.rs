//! brk: the heap grows in generous mapped steps; memory is mapped up front,
//! so running out leaves the break where it was (Linux's way of failing).
//! Shrinking gives back what lies more than one step above the new break.

use super::mmap::{in_window, page_up};
use crate::process;
use crate::uaccess;
use linux_abi::mman::{PROT_READ, PROT_WRITE};
use linux_abi::SysResult;
use lwk_core::region::RegionKind;

const MB2: u64 = 2 << 20;

pub fn brk(addr: u64) -> SysResult {
    process::with(|p| {
        if addr < p.brk_start {
            return Ok(p.brk);
        }
        let Some(want_end) = page_up(addr) else {
            return Ok(p.brk);
        };
        if want_end > p.heap_end {
            // Grow the mapped heap in generous steps so the region table stays small.
            let need = want_end - p.heap_end;
            let heap_size = p.heap_end - p.brk_start;
            let step = need.max(heap_size.min(64 << 20)).max(MB2);
            let step = page_up(step).unwrap_or(need);
            let grown = [step, need].into_iter().find(|&len| {
                in_window(p.heap_end, len)
                    && p.aspace.is_free(p.heap_end, len)
                    && p.aspace
                        .map_anon(p.heap_end, len, PROT_READ | PROT_WRITE, RegionKind::Heap)
                        .is_ok()
            });
            match grown {
                Some(len) => p.heap_end += len,
                None => return Ok(p.brk),
            }
        } else if addr < p.brk {
            // Shrinking: memory above the new break reads as zero when it is grown again.
            let start = page_up(addr).unwrap_or(p.brk);
            let end = page_up(p.brk).unwrap_or(start);
            if end > start {
                let _ = uaccess::zero_user(&p.aspace, start, end - start);
            }
            // Memory more than a step above the new break goes back (a
            // program that frees its heap gives the partition its memory).
            let keep = start.saturating_add(MB2);
            if p.heap_end > keep && p.aspace.unmap(keep, p.heap_end - keep).is_ok() {
                p.heap_end = keep;
            }
        }
        p.brk = addr;
        Ok(p.brk)
    })
}
