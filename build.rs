//! Release links of the `hookseal` binary on Linux get `startup.ld`: the functions that run at
//! start-up and while idle are placed together at the start of `.text`, so that the pages the
//! kernel maps for them (each touched page brings its 64 KiB neighbourhood, read from the page
//! cache) are few. Idle RSS 8.4-8.8 -> 5.9-6.3 MiB (BENCHMARKS.md §18); the code is unchanged.
//!
//! The script only orders input sections (`INSERT AFTER .init` keeps the linker's own layout for
//! everything else); tried with LLD (rustc's default linker on x86_64 Linux) and GNU ld. Left out
//! when RUSTFLAGS name mold (which reads no SECTIONS) or gold (not tried); set
//! `HOOKSEAL_STARTUP_LAYOUT=0` to link without it otherwise.

fn main() {
    println!("cargo:rerun-if-changed=startup.ld");
    println!("cargo:rerun-if-env-changed=HOOKSEAL_STARTUP_LAYOUT");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    // "release" for every profile that inherits from release (`profiling` too).
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let other_linker = flags.contains("mold") || flags.contains("gold");
    let wanted = std::env::var("HOOKSEAL_STARTUP_LAYOUT").as_deref() != Ok("0") && !other_linker;
    if linux && release && wanted {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bin=hookseal=-Wl,-T,{dir}/startup.ld");
    }
}
