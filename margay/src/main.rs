//! `margay`: the host tool (placeholder while the host side is written).
fn main() {}
