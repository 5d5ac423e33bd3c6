//! Embeds every `profiles/*.toml` of the repository as a builtin profile, so adding a profile
//! file there needs no code change.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let profiles_dir = manifest_dir.join("..").join("..").join("profiles");
    println!("cargo:rerun-if-changed={}", profiles_dir.display());

    let mut files: Vec<(String, PathBuf)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(&profiles_dir) {
        for entry in dir.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            println!("cargo:rerun-if-changed={}", path.display());
            files.push((stem.to_owned(), path.clone()));
        }
    }
    files.sort();

    let mut out = String::from("/// (name, toml text) of every builtin profile, sorted by name.\n");
    out.push_str("pub(crate) static BUILTINS: &[(&str, &str)] = &[\n");
    for (name, path) in &files {
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    out.push_str("];\n");
    let _ = writeln!(
        out,
        "/// Directory the builtin profiles were embedded from (relative cassette paths in a builtin\n/// resolve against it).\npub(crate) const BUILTIN_DIR: &str = {:?};",
        profiles_dir.display().to_string()
    );

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(err) = std::fs::write(out_dir.join("builtin_profiles.rs"), out) {
        panic!("write builtin_profiles.rs: {err}");
    }
}
