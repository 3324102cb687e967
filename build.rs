//! Link-time settings of the `latchkey` binary.
//!
//! On Linux with glibc, the position-independent executable's relative relocations are packed
//! (`DT_RELR`, `-z pack-relative-relocs`; glibc 2.36 and binutils 2.38 or newer): the same
//! address-space randomisation with a relocation table of a few kilobytes instead of about
//! 200 KB (docs/benchmarks.md, "Release binary size").

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
