//! `cargo xtask <task>`: the project's automation, with no dependencies beyond std.
//!
//! - `ci`    — everything CI checks: fmt, clippy (all targets, warnings denied), tests, docs
//!   (warnings denied; all features, and each crate's default features), licence copies,
//!   `cargo package` of every published crate (verified), the lean feature set of each protocol
//!   crate, the `own_device` examples run to completion, and the fuzz targets: built, and every
//!   committed seed replayed.
//! - `demo`  — start every simulator and drive every protocol (`labwire demo`).
//! - `bench` — criterion benchmarks (`cargo bench`), arguments passed through.
//! - `fuzz`  — run the cargo-fuzz targets for a while each (installs cargo-fuzz if missing) and
//!   report each target's executions and findings.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod fuzz;

/// Protocol crates that must build with `default-features = false` and without tokio's
/// runtime or networking (codec + messages only).
const PROTOCOL_CRATES: &[&str] = &["arkeo-proto", "pekat-proto", "pycom-proto", "comet-socket"];

/// Every library crate: its docs must build with its default features alone.
const LIBRARY_CRATES: &[&str] = &[
    "labwire-net",
    "labwire-simkit",
    "arkeo-proto",
    "pekat-proto",
    "pycom-proto",
    "comet-socket",
    "labwire-tap",
];

/// Workspace members with `publish = false`: not packaged.
const UNPUBLISHED_CRATES: &[&str] = &["labwire-tests", "xtask"];

/// Protocol crates with an `own_device` example: a user's own device `Service`, served by the
/// crate's `server` feature and called by its client; CI runs each to completion.
const OWN_DEVICE_EXAMPLES: &[&str] = &["arkeo-proto", "pekat-proto"];

/// Protocol crates with a `custom_transport` example: the client over a stream the user
/// supplies (issue 12); CI runs each to completion.
const CUSTOM_TRANSPORT_EXAMPLES: &[&str] =
    &["arkeo-proto", "pekat-proto", "comet-socket", "pycom-proto"];

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
        "fuzz" => fuzz::fuzz(rest),
        "fuzz-seeds" => fuzz::fuzz_regressions(),
        "scale" => scale(rest),
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
  ci [--no-fuzz-build]      fmt, clippy, tests, docs, licences, cargo package, lean features,
                            own_device examples, fuzz seeds replayed
  demo [PROTOCOL...]        start the simulators and drive every protocol
  bench [ARGS...]           criterion benchmarks (args go to `cargo bench`), then ratios
                            against each group's `baseline` benchmark
  fuzz [--all | TARGET...] [SECONDS] [--max-len BYTES] [--summary FILE]
                            run cargo-fuzz targets (default: all, 30 s each), then a table
                            of each target's executions, coverage and findings
  fuzz-seeds                build the fuzz targets and replay every committed seed
  scale [NODES] [SECONDS]   one coordinator managing a fleet of la4-sim nodes (default 1000
                            nodes, 60 s; ci runs 100 nodes for 5 s)";

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
    docs_default_features()?;
    licence_copies()?;
    package()?;
    scale(&["100".into(), "5".into()])?;
    for krate in OWN_DEVICE_EXAMPLES {
        run(
            &format!("example: {krate} own_device"),
            cargo().args(["run", "--quiet", "-p", krate, "--example", "own_device"]),
        )?;
    }
    for krate in CUSTOM_TRANSPORT_EXAMPLES {
        run(
            &format!("example: {krate} custom_transport"),
            cargo().args([
                "run",
                "--quiet",
                "-p",
                krate,
                "--example",
                "custom_transport",
            ]),
        )?;
    }
    if fuzz_build {
        fuzz::fuzz_regressions()?;
    }
    eprintln!("\nci: all checks passed");
    Ok(())
}

/// The docs as a new user or a dependent builds them: default features. The libraries go in one
/// run of their own, so each has only its defaults (none enables another's features; in a
/// workspace-wide build, the CLI's `client` features would hide a broken link to a client item).
fn docs_default_features() -> Result {
    let mut libs = cargo();
    libs.args(["doc", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    let mut rest = cargo();
    rest.args(["doc", "--no-deps", "--workspace"])
        .env("RUSTDOCFLAGS", "-D warnings");
    for krate in LIBRARY_CRATES {
        libs.args(["-p", krate]);
        rest.args(["--exclude", krate]);
    }
    run("doc (default features): libraries", &mut libs)?;
    run("doc (default features): simulators and CLI", &mut rest)
}

/// Every published crate (a directory under crates/ or simulators/ whose manifest does not say
/// `publish = false`) carries LICENSE-MIT and LICENSE-APACHE identical to the root's: cargo
/// packages only files inside the crate's directory.
fn licence_copies() -> Result {
    eprintln!("\n==> licence copies");
    let root = root();
    let mut checked = 0;
    for group in ["crates", "simulators"] {
        let entries = std::fs::read_dir(root.join(group)).map_err(|e| format!("{group}: {e}"))?;
        for entry in entries {
            let dir = entry.map_err(|e| format!("{group}: {e}"))?.path();
            let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
                continue;
            };
            if manifest.lines().any(|l| l.trim() == "publish = false") {
                continue;
            }
            for licence in ["LICENSE-MIT", "LICENSE-APACHE"] {
                let original =
                    std::fs::read(root.join(licence)).map_err(|e| format!("{licence}: {e}"))?;
                let copy = std::fs::read(dir.join(licence)).unwrap_or_default();
                if copy != original {
                    return Err(format!(
                        "{}/{licence} is missing or differs from the root's: cp {licence} {}/",
                        dir.display(),
                        dir.display()
                    ));
                }
            }
            checked += 1;
        }
    }
    eprintln!("<== licence copies: {checked} crates carry both licence texts");
    Ok(())
}

/// `cargo package` of every published crate, verified: each packaged crate builds on its own
/// with its default features, against the other workspace crates as packaged (cargo >= 1.90
/// packages members in dependency order through a local registry overlay), so a missing file,
/// a path dependency without a version or a crate that only builds with workspace-unified
/// features fails here rather than at `cargo publish`. `--allow-dirty` so a local run before
/// committing works; the verify builds share the workspace's target directory.
fn package() -> Result {
    forget_packaged_sources()?;
    // A target directory of its own, in which the workspace crates are only ever built from
    // the overlay: cargo takes a registry crate of a given name and version as immutable, so
    // an earlier run's build of one (with other contents, same version) would be reused — its
    // fingerprints go, the third-party builds stay.
    let verify_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("package-verify");
    forget_workspace_builds(&verify_dir.join("debug").join(".fingerprint"))?;
    let mut cmd = cargo();
    cmd.env("CARGO_TARGET_DIR", &verify_dir);
    cmd.args(["package", "--workspace", "--allow-dirty"]);
    for krate in UNPUBLISHED_CRATES {
        cmd.args(["--exclude", krate]);
    }
    run("package (verified)", &mut cmd)
}

/// Removes cargo's extracted copies of workspace crates from earlier `cargo package` runs.
///
/// The verify builds read the packaged crates through a local registry overlay, and cargo
/// extracts each into `$CARGO_HOME/registry/src/-<hash of the overlay's path>/<name>-<version>`
/// once: a later run from the same checkout path with the same version (every run, before a
/// release) would reuse the stale extraction and verify against old sources. The overlay's
/// directories are the ones whose name starts with `-` (crates.io's is `index.crates.io-…`).
fn forget_packaged_sources() -> Result {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let Some(src) = home.map(|home| home.join("registry").join("src")) else {
        return Ok(());
    };
    let Ok(registries) = std::fs::read_dir(&src) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for extracted in crates.flatten() {
            if is_workspace_crate(&extracted.file_name().to_string_lossy()) {
                std::fs::remove_dir_all(extracted.path())
                    .map_err(|e| format!("cannot remove {}: {e}", extracted.path().display()))?;
            }
        }
    }
    Ok(())
}

/// Removes the fingerprints of the workspace crates in `fingerprints` (a missing directory is
/// fine), so that cargo builds them again from what is packaged now.
fn forget_workspace_builds(fingerprints: &Path) -> Result {
    let Ok(entries) = std::fs::read_dir(fingerprints) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if is_workspace_crate(&entry.file_name().to_string_lossy()) {
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Whether a `<name>-<version or hash>` directory belongs to a crate of this workspace.
fn is_workspace_crate(dir_name: &str) -> bool {
    dir_name.starts_with("labwire")
        || ["arkeo-", "pekat-", "pycom-", "comet-", "la4-"]
            .iter()
            .any(|prefix| dir_name.starts_with(prefix))
}

/// Each protocol crate without default features: it must build, and its dependency tree must
/// not contain tokio's reactor (mio) — messages and codec only.
fn lean_features() -> Result {
    // One build for all of them: none enables another's features, and the shared
    // dependencies are compiled once.
    let mut check = cargo();
    check.args(["check", "--no-default-features", "--lib"]);
    for krate in PROTOCOL_CRATES {
        check.args(["-p", krate]);
    }
    run("protocol crates without default features", &mut check)?;
    for krate in PROTOCOL_CRATES {
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
        eprintln!("    {krate}: no tokio runtime or networking without default features");
    }
    Ok(())
}

/// One coordinator managing a fleet of simulated LA4 nodes (release builds): every command gets
/// its own output and no node is seen offline; prints the coordinator's CPU and memory per node.
fn scale(args: &[String]) -> Result {
    let nodes = args.first().map_or("1000", String::as_str);
    let seconds = args.get(1).map_or("60", String::as_str);
    run(
        "scale: build la4-sim",
        cargo().args(["build", "--release", "-p", "la4-sim", "--bin", "la4-sim"]),
    )?;
    run(
        "scale: build the coordinator",
        cargo().args([
            "build",
            "--release",
            "-p",
            "labwire-tests",
            "--example",
            "pycom_scale",
        ]),
    )?;
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("release");
    run(
        &format!("scale: {nodes} nodes for {seconds} s"),
        Command::new(target.join("examples/pycom_scale"))
            .arg(target.join("la4-sim"))
            .args([nodes, seconds])
            .current_dir(root()),
    )
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
    run(
        "bench",
        cargo()
            .args(["bench", "--workspace", "--bench", "*", "--all-features"])
            .args(args),
    )?;
    report_ratios(&criterion_dir())
}

/// Where criterion keeps its results: `$CARGO_TARGET_DIR/criterion` or `target/criterion`.
fn criterion_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("criterion")
}

/// Prints every benchmark as a ratio against the baseline of its group, measured in the same
/// run: absolute times on a shared 2-core machine mean little, ratios do. A group's baseline is
/// the benchmark whose id contains `baseline` (the real floor: a bare tokio client/server doing
/// the same exchange, a typed `serde_json` decode of the same bytes). The ratio is throughput
/// against the baseline: baseline time / this time, so 1.00 is as fast as the floor and 0.50 half
/// as fast.
fn report_ratios(dir: &Path) -> Result {
    let Ok(groups) = std::fs::read_dir(dir) else {
        return Err(format!("no criterion results in {}", dir.display()));
    };
    let mut groups: Vec<PathBuf> = groups.flatten().map(|e| e.path()).collect();
    groups.sort();
    println!(
        "\nbenchmark ratios (throughput against the group's baseline: baseline mean time / mean time; 1.00 = as fast as the floor):"
    );
    for group in groups
        .iter()
        .filter(|p| p.is_dir() && !p.ends_with("report"))
    {
        let mut benches = Vec::new();
        collect_estimates(group, group, &mut benches);
        benches.sort_by(|a, b| a.0.cmp(&b.0));
        let Some(baseline) = benches
            .iter()
            .find(|(id, _)| id.contains("baseline"))
            .map(|(_, mean)| *mean)
        else {
            continue;
        };
        let name = group.file_name().map(|n| n.to_string_lossy().into_owned());
        println!("  {}", name.unwrap_or_default());
        for (id, mean) in &benches {
            println!("    {id:<48} {:>8.3}", baseline / mean);
        }
    }
    Ok(())
}

/// Finds `<bench id>/new/estimates.json` below `group` and reads each mean point estimate.
fn collect_estimates(group: &Path, dir: &Path, out: &mut Vec<(String, f64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() || path.ends_with("report") || path.ends_with("base") {
            continue;
        }
        if path.ends_with("new") {
            let estimates =
                std::fs::read_to_string(path.join("estimates.json")).unwrap_or_default();
            if let (Some(mean), Ok(id)) = (mean_estimate(&estimates), dir.strip_prefix(group)) {
                out.push((id.to_string_lossy().into_owned(), mean));
            }
        } else {
            collect_estimates(group, &path, out);
        }
    }
}

/// The `mean.point_estimate` of a criterion `estimates.json` (kept dependency-free: the file's
/// shape is fixed and only this one number is needed).
fn mean_estimate(json: &str) -> Option<f64> {
    let mean = &json[json.find("\"mean\"")?..];
    let value = &mean[mean.find("\"point_estimate\"")? + "\"point_estimate\"".len()..];
    let value = value.trim_start().strip_prefix(':')?.trim_start();
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')))
        .unwrap_or(value.len());
    value[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_mean_point_estimate_of_criterion_output() {
        let json = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":3.0},"point_estimate":2.5e3,"standard_error":0.1},"median":{"point_estimate":9.0}}"#;
        assert_eq!(mean_estimate(json), Some(2500.0));
        assert_eq!(mean_estimate("{}"), None);
    }
}
