//! The config loader on arbitrary text. Environment lookups answer for short names; secret
//! files resolve next to a config path that does not exist (absolute `file =` paths are still
//! read, bounded). Oracle besides not panicking: every error names a line of the text (or 0)
//! and renders; a config that loads has routes whose names are unique and non-empty.

#![no_main]

use std::collections::HashSet;
use std::path::Path;

use hookseal::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name.len() < 32).then(|| format!("env-secret-{name}"));
    let path = Path::new("/nonexistent-hookseal-fuzz/hookseal.toml");
    match Config::parse(path, text, &env) {
        Ok(config) => {
            let mut names = HashSet::new();
            for r in &config.routes {
                assert!(!r.name.is_empty());
                assert!(names.insert(r.name.clone()), "duplicate route {}", r.name);
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty());
            let lines = text.lines().count() + 1;
            for e in &errors.0 {
                assert!(e.line <= lines, "line {} of {lines}: {e}", e.line);
            }
            let _ = errors.to_string();
        }
    }
});
