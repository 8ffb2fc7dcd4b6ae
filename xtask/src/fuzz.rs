//! `cargo xtask fuzz` and `cargo xtask fuzz-seeds`: the cargo-fuzz targets in `fuzz/`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use crate::{Result, cargo, root, run};

/// Builds the fuzz targets (their own workspace: a plain build needs neither cargo-fuzz nor a
/// nightly toolchain) and replays every committed seed through its target, so an input that once
/// crashed a decoder stays a regression test.
pub(crate) fn fuzz_regressions() -> Result {
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("fuzz/target"));
    run(
        "fuzz targets build",
        cargo()
            .args(["build", "--manifest-path", "fuzz/Cargo.toml", "--bins"])
            .arg("--target-dir")
            .arg(&target_dir),
    )?;
    let seeds_root = root().join("fuzz/seeds");
    let mut targets: Vec<PathBuf> = std::fs::read_dir(&seeds_root)
        .map_err(|e| format!("{}: {e}", seeds_root.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    targets.sort();
    for seeds in targets {
        let Some(name) = seeds.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let binary = target_dir.join("debug").join(&name);
        if !binary.exists() {
            return Err(format!("seeds for {name} but no fuzz target of that name"));
        }
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&seeds)
            .map_err(|e| format!("{}: {e}", seeds.display()))?
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        inputs.sort();
        // libFuzzer runs each file given as an argument once and exits non-zero on a crash;
        // its per-input chatter is shown only when something failed.
        eprintln!("\n==> fuzz seeds: {name} ({} inputs)", inputs.len());
        let out = Command::new(&binary)
            .args(&inputs)
            .output()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            return Err(format!("fuzz target {name} failed on a committed seed"));
        }
    }
    Ok(())
}

/// `cargo xtask fuzz [TARGET] [SECONDS]`: runs one target, or all, for a while each.
pub(crate) fn fuzz(args: &[String]) -> Result {
    let target = args.first().filter(|a| a.parse::<u64>().is_err()).cloned();
    let seconds = args
        .iter()
        .find_map(|a| a.parse::<u64>().ok())
        .unwrap_or(30);
    let have_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have_fuzz {
        run(
            "install cargo-fuzz",
            cargo().args(["install", "cargo-fuzz", "--locked"]),
        )?;
    }
    let targets = match target {
        Some(t) => vec![t],
        None => {
            let out = cargo()
                .args(["fuzz", "list"])
                .env("RUSTC_BOOTSTRAP", "1")
                .output()
                .map_err(|e| format!("cargo fuzz list: {e}"))?;
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        }
    };
    for t in targets {
        let seeds = root().join("fuzz/seeds").join(&t);
        let corpus = root().join("fuzz/corpus").join(&t);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let mut cmd = cargo();
        // cargo-fuzz needs nightly flags (sanitizers); the stable toolchain accepts them when
        // told it is bootstrapping, which is the only toolchain this project can rely on.
        cmd.env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", &t])
            .arg(&corpus);
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        cmd.args(["--", &format!("-max_total_time={seconds}")]);
        run(&format!("fuzz {t} for {seconds}s"), &mut cmd)?;
    }
    Ok(())
}
