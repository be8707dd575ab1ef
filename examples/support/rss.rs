//! The process's resident set, for the memory examples (`replay_memory`, `spool_memory`),
//! included with `#[path]`: a file in a folder of `examples/` is not an example of its own.

/// Resident bytes of this process, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm resident field");
    pages * 4096
}
