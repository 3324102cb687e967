//! Build steps of the `latchkey` crate: the OpenAPI document embedded without its indentation,
//! and link-time settings of the binary.
//!
//! `src/api/openapi.json` is hand-written and indented for people; what is embedded and served
//! is the same JSON with the whitespace between tokens removed (362 KB -> 177 KB of the
//! binary; members keep their order, strings are copied byte for byte).
//!
//! On Linux with glibc, the position-independent executable's relative relocations are packed
//! (`DT_RELR`, `-z pack-relative-relocs`; glibc 2.36 and binutils 2.38 or newer): the same
//! address-space randomisation with a relocation table of a few kilobytes instead of about
//! 200 KB (docs/benchmarks.md, "Release binary size").

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/api/openapi.json");
    let doc = std::fs::read_to_string("src/api/openapi.json").expect("src/api/openapi.json");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("openapi.json"), minify_json(&doc)).expect("write openapi.json");

    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// `json` without the whitespace outside its strings.
fn minify_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}
