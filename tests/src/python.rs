//! The standard-library Python interop tests (`tests/python/*.py`), run the same way: a
//! simulator program built by Cargo, the script given its path, its stdout lines compared.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Whether `python3` runs here; the Python tests are skipped (with a line on stderr) when not.
pub fn python3_available() -> bool {
    Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The simulator program `package` (its binary has the package's name), built by Cargo now (a
/// no-op when it is up to date): a test of another package gets no `CARGO_BIN_EXE_` for it.
///
/// # Panics
/// When Cargo cannot build it.
pub fn simulator_binary(package: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cannot build {package}");
    // target/debug/deps/<test>-<hash> → target/debug/<package>
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    dir.join(format!("{package}{}", std::env::consts::EXE_SUFFIX))
}

/// Runs `tests/python/<script>` with the simulator program `package`'s path as its first
/// argument (then `args`), within `deadline`, and returns its stdout lines; `None` (after a line
/// on stderr) when there is no `python3`.
///
/// # Panics
/// When the script fails, or does not finish within `deadline`.
pub async fn run_script(
    script: &str,
    package: &str,
    args: &[PathBuf],
    deadline: Duration,
) -> Option<Vec<String>> {
    if !python3_available() {
        eprintln!("python3 not found: skipping {script}");
        return None;
    }
    let binary = simulator_binary(package);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let output = tokio::time::timeout(
        deadline,
        tokio::process::Command::new("python3")
            .arg(&script)
            .arg(&binary)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python did not finish in time")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "python failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(stdout.lines().map(str::to_owned).collect())
}

/// A path inside the workspace (`relative` to its root), for a script's extra arguments.
pub fn workspace_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}
