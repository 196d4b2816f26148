//! The boot data at `SHARED_PHYS + BOOTDATA_OFF`: the executable's path, then
//! the argv and envp strings, each NUL-terminated (counts in `BootParams`).

/// Encode the boot data (`path`, argv, envp, each NUL-terminated). Returns the
/// number of bytes written, or `None` if it does not fit in `out` or a string
/// contains a NUL.
pub fn encode_bootdata<'a>(
    out: &mut [u8],
    path: &[u8],
    argv: impl IntoIterator<Item = &'a [u8]>,
    envp: impl IntoIterator<Item = &'a [u8]>,
) -> Option<usize> {
    let mut pos = 0usize;
    let mut put = |s: &[u8]| -> Option<()> {
        if s.contains(&0) {
            return None;
        }
        let end = pos.checked_add(s.len())?.checked_add(1)?;
        let dst = out.get_mut(pos..end)?;
        dst[..s.len()].copy_from_slice(s);
        dst[s.len()] = 0;
        pos = end;
        Some(())
    };
    put(path)?;
    for a in argv {
        put(a)?;
    }
    for e in envp {
        put(e)?;
    }
    Some(pos)
}

/// Split boot data back into NUL-terminated strings (without the NULs).
/// Returns `None` unless exactly `count` strings are present.
pub fn split_bootdata(data: &[u8], count: usize) -> Option<impl Iterator<Item = &[u8]>> {
    fn is_nul(b: &u8) -> bool {
        *b == 0
    }
    if data.iter().filter(|&&b| b == 0).count() != count || (count > 0 && data.last() != Some(&0)) {
        return None;
    }
    let body = if count == 0 {
        data
    } else {
        &data[..data.len() - 1]
    };
    Some(body.split(is_nul as fn(&u8) -> bool).take(count))
}
