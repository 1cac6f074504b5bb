//! Command-line tools that tests run: helm, kubectl, yamllint, lua5.1 and `dcs-sdk-python` (a
//! Python with Huawei Cloud's official SDK, pinned in `tests/python/requirements.txt`).
//!
//! They are found the way `scripts/tools.sh` installs them:
//!
//! 1. `DCS_TOOLS_BIN`, when set, names the folder; a tool missing there is an error (the setting
//!    is explicit, so falling back to something else would hide a broken setup);
//! 2. else the script's default bin folder,
//!    `${DCS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dcs-task-operator/tools}/bin`;
//! 3. else `PATH`.
//!
//! A tool found nowhere fails the test with the command that installs it: tests never skip
//! silently because a tool is missing.

// Every test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Folder holding every tool; overrides the cache folder and `PATH`.
pub const BIN_ENV: &str = "DCS_TOOLS_BIN";

/// Base cache folder of `scripts/tools.sh` (the tools live in its `bin/`); honoured here too.
pub const CACHE_ENV: &str = "DCS_TOOLS_CACHE";

/// The installer, relative to the repository root.
pub const INSTALLER: &str = "scripts/tools.sh";

pub fn helm() -> PathBuf {
    find("helm")
}

pub fn kubectl() -> PathBuf {
    find("kubectl")
}

pub fn yamllint() -> PathBuf {
    find("yamllint")
}

/// Lua 5.1, the dialect Argo CD runs health checks in.
pub fn lua51() -> PathBuf {
    find("lua5.1")
}

/// The python of the venv holding `huaweicloudsdkcore` and `huaweicloudsdkdcs`: a wrapper that
/// only `scripts/tools.sh` writes, under a name of its own, so no plain python on `PATH` (which
/// would lack the SDK) can stand in for it.
pub fn sdk_python() -> PathBuf {
    find(SDK_PYTHON)
}

/// The name under which `scripts/tools.sh` installs the SDK's python.
pub const SDK_PYTHON: &str = "dcs-sdk-python";

/// The bin folder `scripts/tools.sh` installs into when `DCS_TOOLS_BIN` is not set.
pub fn default_bin_dir() -> Option<PathBuf> {
    let base = match non_empty_env(CACHE_ENV) {
        Some(cache) => PathBuf::from(cache),
        None => {
            let cache_home = non_empty_env("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| non_empty_env("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
            cache_home.join("dcs-task-operator").join("tools")
        }
    };
    Some(base.join("bin"))
}

/// Path of the tool `name`, or a panic that says how to install it.
pub fn find(name: &str) -> PathBuf {
    if let Some(dir) = non_empty_env(BIN_ENV) {
        let candidate = Path::new(&dir).join(name);
        if is_executable(&candidate) {
            return candidate;
        }
        panic!(
            "{BIN_ENV}={dir} holds no executable `{name}`. Fix or unset {BIN_ENV}, then install the test tools with\n    \
             export {BIN_ENV}=$({INSTALLER})"
        );
    }
    if let Some(candidate) = default_bin_dir().map(|dir| dir.join(name))
        && is_executable(&candidate)
    {
        return candidate;
    }
    if let Some(candidate) = search_path(name) {
        return candidate;
    }
    let default = default_bin_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_else(|| "(no HOME: set DCS_TOOLS_CACHE)".to_string());
    panic!(
        "`{name}` is needed by this test and was found neither in {default} nor on PATH.\n\
         Install helm, kubectl, yamllint, lua5.1 and {SDK_PYTHON} with (from the repository root)\n    \
         export {BIN_ENV}=$({INSTALLER})\n\
         and run the tests again."
    );
}

/// Runs `program args...` from the repository root; returns the output whatever the exit status.
pub fn run<I, S>(program: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::null());
    command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", program.display()))
}

/// Like [`run`], but panics with the command and its output unless it exits 0; returns stdout.
pub fn run_ok<I, S>(program: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|arg| arg.as_ref().to_os_string())
        .collect();
    let output = run(program, &args);
    if !output.status.success() {
        panic!(
            "`{} {}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            program.display(),
            args.iter()
                .map(|arg| arg.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
    String::from_utf8(output.stdout).expect("tool output is UTF-8")
}

/// The repository root (`CARGO_MANIFEST_DIR`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn is_executable(path: &Path) -> bool {
    // `metadata` follows symlinks: a dangling link (a removed interpreter) does not count.
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}
