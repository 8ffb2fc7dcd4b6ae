//! `cargo xtask <task>`: the project's automation, with no dependencies beyond std.
//!
//! - `ci`    — everything CI checks: fmt, clippy (all targets, warnings denied), tests, docs
//!   (warnings denied), the lean feature set of each protocol crate, and the fuzz targets build.
//! - `demo`  — start every simulator and drive every protocol (`labwire demo`).
//! - `bench` — criterion benchmarks (`cargo bench`), arguments passed through.
//! - `fuzz`  — run the cargo-fuzz targets for a while each (installs cargo-fuzz if missing).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Protocol crates that must build with `default-features = false` and without tokio's
/// runtime or networking (codec + messages only).
const PROTOCOL_CRATES: &[&str] = &["arkeo-proto", "pekat-proto", "pycom-proto", "comet-socket"];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => {
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let result = match task {
        "ci" => ci(rest),
        "demo" => demo(rest),
        "bench" => bench(rest),
        "fuzz" => fuzz(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown task {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask {task}: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <task>
  ci [--no-fuzz-build]      fmt, clippy, tests, docs, lean features, fuzz build
  demo [PROTOCOL...]        start the simulators and drive every protocol
  bench [ARGS...]           criterion benchmarks (args go to `cargo bench`)
  fuzz [TARGET] [SECONDS]   run cargo-fuzz targets (default: all, 30 s each)";

type Result = std::result::Result<(), String>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(step: &str, cmd: &mut Command) -> Result {
    eprintln!("\n==> {step}");
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: cannot start: {e}"))?;
    eprintln!("<== {step}: {status} in {:.1?}", started.elapsed());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

fn ci(args: &[String]) -> Result {
    let fuzz_build = !args.iter().any(|a| a == "--no-fuzz-build");
    run("fmt", cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    lean_features()?;
    run(
        "test",
        cargo().args(["test", "--workspace", "--all-features", "--no-fail-fast"]),
    )?;
    run(
        "doc",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    if fuzz_build && root().join("fuzz/Cargo.toml").exists() {
        // The fuzz targets are their own workspace; a plain build proves they still compile
        // against the current APIs without needing cargo-fuzz or a nightly toolchain.
        run(
            "fuzz targets build",
            cargo().args(["build", "--manifest-path", "fuzz/Cargo.toml", "--bins"]),
        )?;
    }
    eprintln!("\nci: all checks passed");
    Ok(())
}

/// Each protocol crate without default features: it must build, and its dependency tree must
/// not contain tokio's reactor (mio) — messages and codec only.
fn lean_features() -> Result {
    for krate in PROTOCOL_CRATES {
        if !root()
            .join("crates")
            .join(krate)
            .join("Cargo.toml")
            .exists()
        {
            continue;
        }
        run(
            &format!("{krate} without default features"),
            cargo().args(["check", "-p", krate, "--no-default-features", "--lib"]),
        )?;
        let out = cargo()
            .args([
                "tree",
                "-p",
                krate,
                "--no-default-features",
                "-e",
                "normal",
                "--prefix",
                "none",
            ])
            .output()
            .map_err(|e| format!("cargo tree: {e}"))?;
        let tree = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("cargo tree -p {krate} failed"));
        }
        if let Some(line) = tree.lines().find(|l| l.starts_with("mio ")) {
            return Err(format!(
                "{krate} without default features pulls tokio's networking ({line})"
            ));
        }
    }
    Ok(())
}

fn demo(args: &[String]) -> Result {
    run(
        "demo",
        cargo()
            .args(["run", "--quiet", "-p", "labwire", "--", "demo"])
            .args(args),
    )
}

fn bench(args: &[String]) -> Result {
    run("bench", cargo().args(["bench", "--workspace"]).args(args))
}

fn fuzz(args: &[String]) -> Result {
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
