//! Parsers of argument values shared by `margay run` (`cli`) and `margay
//! bench` (`bench`): memory sizes and core counts.

const TWO_MIB: u64 = 2 << 20;

fn human(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 30) {
        format!("{}G", bytes >> 30)
    } else {
        format!("{}M", bytes >> 20)
    }
}

/// Parse a memory size: plain bytes, or a number with K, M or G (powers of 1024;
/// an optional trailing "B" or "iB" is accepted). Must be a multiple of 2 MiB in
/// `wire::MIN_MEM..=wire::MAX_MEM`.
pub fn parse_mem_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                _ => return Err(format!("unknown unit in '{s}' (use K, M or G, e.g. 512M)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a size (e.g. 512M, 1G, 1048576)"));
    }
    let n: u64 = digits.parse().map_err(|_| format!("'{s}' is too large"))?;
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if !(wire::MIN_MEM..=wire::MAX_MEM).contains(&bytes) {
        return Err(format!(
            "{s} is outside the supported range {} to {}",
            human(wire::MIN_MEM),
            human(wire::MAX_MEM)
        ));
    }
    if bytes % TWO_MIB != 0 {
        return Err(format!("{s} is not a multiple of 2 MiB (e.g. 512M)"));
    }
    Ok(bytes)
}

pub fn parse_cpus(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of cores"))?;
    if n == 0 || n as usize > wire::MAX_CPUS {
        return Err(format!(
            "{n} is outside the supported range 1 to {}",
            wire::MAX_CPUS
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_mem_size("64M"), Ok(64 << 20));
        assert_eq!(parse_mem_size("1G"), Ok(1 << 30));
        assert_eq!(parse_mem_size("3G"), Ok(3 << 30));
        assert_eq!(parse_mem_size("65536K"), Ok(64 << 20));
        assert_eq!(parse_mem_size("512m"), Ok(512 << 20));
        assert_eq!(parse_mem_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_mem_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_mem_size("134217728"), Ok(128 << 20));
        for bad in [
            "",
            "M",
            "12X",
            "-64M",
            "64.5M",
            "0x4000000",
            "1 G",
            "4G",
            "32M",
            "63M",
            "65M",
            "1024K",
            "99999999999999999999",
            "18014398509481984K",
        ] {
            assert!(parse_mem_size(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_mem_size("65M").unwrap_err().contains("2 MiB"));
        assert!(parse_mem_size("4G").unwrap_err().contains("64M to 3G"));
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1"), Ok(1));
        assert_eq!(parse_cpus("32"), Ok(32));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("33").is_err());
        assert!(parse_cpus("-1").is_err());
        assert!(parse_cpus("two").is_err());
    }
}
