//! Durations and sizes in the config's notation: parsing and formatting.

use std::time::Duration;

/// A duration in the config's own notation, in the largest unit that holds it whole (`0s`,
/// `250ms`, `90s`, `5m`, `1h`): what [`parse_duration`] reads back. Used in logs and `check`.
/// Sub-millisecond parts (never from config) are shown as fractional seconds.
pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() % 1_000_000 != 0 {
        return format!("{}s", d.as_secs_f64());
    }
    let ms = d.as_millis();
    match ms {
        0 => "0s".to_owned(),
        _ if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        _ if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        _ if ms % 1000 == 0 => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// Parses `"250ms"`, `"10s"`, `"5m"`, `"1h"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.len() > 12 {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// Parses `"64KiB"`, `"1MiB"`, `"1GiB"`, `"512B"` or a plain number of bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.len() > 15 {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn durations_print_in_config_notation_and_read_back() {
        for text in ["0s", "250ms", "1500ms", "90s", "5m", "1h", "25h"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(fmt_duration(d), text);
        }
        assert_eq!(fmt_duration(Duration::from_secs(60)), "1m");
        assert_eq!(fmt_duration(Duration::from_micros(1500)), "0.0015s");
    }
}
