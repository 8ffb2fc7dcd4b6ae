//! `cargo xtask fuzz` and `cargo xtask fuzz-seeds`: the cargo-fuzz targets in `fuzz/`.
//!
//! `fuzz` builds the chosen targets once with `cargo fuzz build` (coverage instrumentation and
//! AddressSanitizer, as `cargo fuzz run` would), then runs each built binary directly for the
//! given time: its libFuzzer output goes through to stderr and is read for the final figures
//! (executions, coverage, corpus, a finding's artifact), which a summary table reports at the
//! end. Running the built binaries, not `cargo fuzz run`, keeps a long run on the targets as
//! they were built, whatever is edited in `fuzz/` meanwhile.

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, cargo, root, run};

/// How long each target runs when no time is given.
const DEFAULT_SECONDS: u64 = 30;

/// libFuzzer's own default `-max_len`, used for every target not in [`MAX_LEN`].
const DEFAULT_MAX_LEN: usize = 4096;

/// Targets whose inputs may be longer than [`DEFAULT_MAX_LEN`], and why. Decoder targets set
/// small limits instead, so their limit paths are reached with small inputs (fuzz/README.md
/// lists each target's limit).
const MAX_LEN: &[(&str, usize)] = &[
    // Conversations: a sequence of requests, each a whole frame with its own time step; 16 KiB
    // holds a routine's full life (start, settings, measurements, data, close) several times.
    ("arkeo_device", 16 * 1024),
    ("pekat_manager", 16 * 1024),
    ("comet_dispatch", 16 * 1024),
    // A script of operations on the coordinator's node table.
    ("pycom_coordinator", 16 * 1024),
];

/// A hang is a finding: no single input may take this long (libFuzzer's default is 20 min).
const TIMEOUT_SECONDS: u64 = 10;

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
        let inputs = files_in(&seeds)?;
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

/// The files of `dir`, sorted.
fn files_in(dir: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// What `cargo xtask fuzz` was asked to do.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    /// The targets, in order; empty means all.
    targets: Vec<String>,
    seconds: u64,
    /// `-max_len` for every target, instead of [`MAX_LEN`] and [`DEFAULT_MAX_LEN`].
    max_len: Option<usize>,
    /// Where to write the summary table (Markdown) too.
    summary: Option<PathBuf>,
}

const FUZZ_USAGE: &str = "usage: cargo xtask fuzz [--all | TARGET...] [SECONDS] \
                          [--max-len BYTES] [--summary FILE]";

fn parse_plan(args: &[String]) -> std::result::Result<Plan, String> {
    let mut plan = Plan {
        targets: Vec::new(),
        seconds: DEFAULT_SECONDS,
        max_len: None,
        summary: None,
    };
    let mut all = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--all" => all = true,
            "--max-len" => {
                let value = args.next().ok_or("--max-len needs a number of bytes")?;
                plan.max_len = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--max-len {value:?}: not a number of bytes"))?,
                );
            }
            "--summary" => {
                plan.summary = Some(args.next().ok_or("--summary needs a file")?.into());
            }
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option {flag:?}\n{FUZZ_USAGE}"));
            }
            other => match other.parse::<u64>() {
                Ok(seconds) => plan.seconds = seconds,
                Err(_) => plan.targets.push(other.to_owned()),
            },
        }
    }
    if all && !plan.targets.is_empty() {
        return Err(format!("--all and target names together\n{FUZZ_USAGE}"));
    }
    Ok(plan)
}

/// The `[[bin]]` names of `fuzz/Cargo.toml`: every fuzz target, in the manifest's order.
fn target_names(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin
            && let Some(value) = line.strip_prefix("name")
            && let Some(value) = value.trim_start().strip_prefix('=')
        {
            names.push(value.trim().trim_matches('"').to_owned());
        }
    }
    names
}

/// `cargo xtask fuzz [--all | TARGET...] [SECONDS]`: builds the targets, runs each for a while,
/// and reports every target's executions and duration in a summary table. A finding in one
/// target does not stop the others; the task fails at the end if there was one.
pub(crate) fn fuzz(args: &[String]) -> Result {
    let plan = parse_plan(args)?;
    let manifest_path = root().join("fuzz/Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let known = target_names(&manifest);
    let targets = if plan.targets.is_empty() {
        known.clone()
    } else {
        plan.targets.clone()
    };
    if let Some(unknown) = targets.iter().find(|t| !known.contains(t)) {
        return Err(format!(
            "no fuzz target {unknown:?}; the targets are {}",
            known.join(", ")
        ));
    }
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
    // cargo-fuzz needs nightly flags (sanitizers); the stable toolchain accepts them when told
    // it is bootstrapping, which is the only toolchain this project can rely on.
    let mut build = cargo();
    build.env("RUSTC_BOOTSTRAP", "1").args(["fuzz", "build"]);
    if targets.len() == 1 {
        build.args(&targets);
    }
    run("fuzz targets build (instrumented)", &mut build)?;
    let bin_dir = root()
        .join("fuzz/target")
        .join(host_triple()?)
        .join("release");

    let mut runs = Vec::new();
    for target in &targets {
        let max_len = plan.max_len.unwrap_or_else(|| max_len_of(target));
        runs.push(fuzz_one(&bin_dir, target, plan.seconds, max_len)?);
    }
    let table = summary_table(&runs);
    println!("\n{table}");
    if let Some(path) = &plan.summary {
        std::fs::write(path, &table).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let findings: Vec<&str> = runs
        .iter()
        .filter(|r| r.finding.is_some())
        .map(|r| r.target.as_str())
        .collect();
    if findings.is_empty() {
        Ok(())
    } else {
        Err(format!("findings in {}", findings.join(", ")))
    }
}

fn max_len_of(target: &str) -> usize {
    MAX_LEN
        .iter()
        .find(|(name, _)| *name == target)
        .map_or(DEFAULT_MAX_LEN, |(_, len)| *len)
}

/// The host's target triple: where `cargo fuzz build` puts the binaries.
fn host_triple() -> std::result::Result<String, String> {
    let out = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV: no host line".to_owned())
}

/// One target's run, as libFuzzer reported it.
#[derive(Debug, Default, PartialEq)]
struct FuzzRun {
    target: String,
    seconds: f64,
    max_len: usize,
    /// From the last status line: `#N`, `cov:`, `corp:` (entries/size).
    stats: Stats,
    /// The crash, leak or timeout input libFuzzer wrote, or the exit status when it wrote none.
    finding: Option<String>,
}

/// Figures read from libFuzzer's output.
#[derive(Debug, Default, Clone, PartialEq)]
struct Stats {
    executions: Option<u64>,
    coverage: Option<u64>,
    corpus: Option<String>,
    artifact: Option<String>,
}

impl Stats {
    /// Takes what one line of libFuzzer's output says.
    fn read_line(&mut self, line: &str) {
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            self.executions = n.trim().parse().ok().or(self.executions);
        } else if let Some(rest) = line.strip_prefix('#') {
            // `#123456\tDONE   cov: 812 ft: 2051 corp: 301/22Kb lim: 4096 exec/s: ...`
            let mut words = rest.split_whitespace();
            if let Some(n) = words.next().and_then(|n| n.parse().ok()) {
                // The final statistic is exact; a status line only counts so far.
                if self.executions.is_none_or(|seen| seen < n) {
                    self.executions = Some(n);
                }
            }
            let words: Vec<&str> = rest.split_whitespace().collect();
            for pair in words.windows(2) {
                match pair[0] {
                    "cov:" => self.coverage = pair[1].parse().ok(),
                    "corp:" => self.corpus = Some(pair[1].to_owned()),
                    _ => {}
                }
            }
        } else if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.artifact = Some(path.trim().to_owned());
        }
    }
}

/// Runs one built target for `seconds`, its output streamed to stderr and read for the figures.
fn fuzz_one(
    bin_dir: &Path,
    target: &str,
    seconds: u64,
    max_len: usize,
) -> std::result::Result<FuzzRun, String> {
    let binary = bin_dir.join(target);
    let corpus = root().join("fuzz/corpus").join(target);
    let seeds = root().join("fuzz/seeds").join(target);
    let artifacts = root().join("fuzz/artifacts").join(target);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut cmd = Command::new(&binary);
    // New inputs go to the first directory (the growing corpus); the seeds are read only.
    cmd.arg(&corpus);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-max_len={max_len}"))
        .arg(format!("-timeout={TIMEOUT_SECONDS}"))
        .arg("-print_final_stats=1")
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    let step = format!("fuzz {target} for {seconds} s (max_len {max_len})");
    eprintln!("\n==> {step}");
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: cannot start: {e}", binary.display()))?;
    let mut stats = Stats::default();
    if let Some(stderr) = child.stderr.take() {
        let mut echo = std::io::stderr().lock();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(echo, "{line}");
            stats.read_line(&line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let elapsed = started.elapsed();
    eprintln!("<== {step}: {status} in {:.1?}", elapsed);
    let finding = if status.success() {
        None
    } else {
        Some(stats.artifact.clone().unwrap_or_else(|| status.to_string()))
    };
    Ok(FuzzRun {
        target: target.to_owned(),
        seconds: round_tenths(elapsed),
        max_len,
        stats,
        finding,
    })
}

fn round_tenths(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// The summary: one Markdown table row per target.
fn summary_table(runs: &[FuzzRun]) -> String {
    let mut table = String::from(
        "| target | seconds | executions | exec/s | max_len | coverage | corpus | findings |\n\
         |---|---:|---:|---:|---:|---:|---|---|\n",
    );
    for run in runs {
        let executions = run.stats.executions;
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a rate for people to read"
        )]
        let rate = executions.filter(|_| run.seconds > 0.0).map_or_else(
            || "?".to_owned(),
            |n| format!("{}", (n as f64 / run.seconds) as u64),
        );
        table.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
            run.target,
            run.seconds,
            executions.map_or_else(|| "?".to_owned(), |n| n.to_string()),
            rate,
            run.max_len,
            run.stats
                .coverage
                .map_or_else(|| "?".to_owned(), |c| c.to_string()),
            run.stats.corpus.as_deref().unwrap_or("?"),
            run.finding.as_deref().unwrap_or("none"),
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn plans_read_targets_seconds_and_options_in_any_order() {
        assert_eq!(
            parse_plan(&args(&[])),
            Ok(Plan {
                targets: vec![],
                seconds: DEFAULT_SECONDS,
                max_len: None,
                summary: None
            })
        );
        assert_eq!(
            parse_plan(&args(&["--all", "600"])).map(|p| (p.targets, p.seconds)),
            Ok((vec![], 600))
        );
        assert_eq!(
            parse_plan(&args(&[
                "60",
                "a",
                "b",
                "--max-len",
                "9000",
                "--summary",
                "s.md"
            ])),
            Ok(Plan {
                targets: args(&["a", "b"]),
                seconds: 60,
                max_len: Some(9000),
                summary: Some("s.md".into()),
            })
        );
        assert!(parse_plan(&args(&["--all", "a"])).is_err());
        assert!(parse_plan(&args(&["--max-len"])).is_err());
        assert!(parse_plan(&args(&["--max-len", "x"])).is_err());
        assert!(parse_plan(&args(&["--jobs"])).is_err());
    }

    #[test]
    fn targets_are_the_bin_names_of_the_manifest() {
        let manifest = r#"
[package]
name = "labwire-fuzz"

[[bin]]
name = "one"
path = "fuzz_targets/one.rs"

[dependencies]
name = "not-a-target"

[[bin]]
path = "fuzz_targets/two.rs"
name="two"
"#;
        assert_eq!(target_names(manifest), args(&["one", "two"]));
    }

    #[test]
    fn stats_come_from_the_final_lines_of_libfuzzer() {
        let output = "\
INFO: Seed: 1234
#2\tINITED cov: 10 ft: 11 corp: 3/120b exec/s: 0 rss: 30Mb
#65536\tpulse  cov: 40 ft: 90 corp: 20/1Kb lim: 4096 exec/s: 32768 rss: 40Mb
#812345\tDONE   cov: 52 ft: 120 corp: 31/2Kb lim: 4096 exec/s: 1353 rss: 45Mb
Done 812345 runs in 600 second(s)
stat::number_of_executed_units: 812346
stat::average_exec_per_sec:     1353
";
        let mut stats = Stats::default();
        output.lines().for_each(|l| stats.read_line(l));
        assert_eq!(
            stats,
            Stats {
                executions: Some(812_346),
                coverage: Some(52),
                corpus: Some("31/2Kb".into()),
                artifact: None,
            }
        );
    }

    #[test]
    fn a_finding_names_the_input_libfuzzer_wrote() {
        let mut stats = Stats::default();
        stats.read_line("#1000\tNEW    cov: 5 ft: 5 corp: 2/9b lim: 4 exec/s: 0 rss: 30Mb");
        stats.read_line(
            "artifact_prefix='fuzz/artifacts/x/'; Test unit written to fuzz/artifacts/x/crash-ab12",
        );
        assert_eq!(
            stats.artifact.as_deref(),
            Some("fuzz/artifacts/x/crash-ab12")
        );
        assert_eq!(stats.executions, Some(1000));
        let run = FuzzRun {
            target: "x".into(),
            seconds: 2.0,
            max_len: 4096,
            stats,
            finding: Some("fuzz/artifacts/x/crash-ab12".into()),
        };
        let table = summary_table(&[run]);
        assert!(
            table.ends_with(
                "| x | 2 | 1000 | 500 | 4096 | 5 | 2/9b | fuzz/artifacts/x/crash-ab12 |\n"
            ),
            "{table}"
        );
    }
}
