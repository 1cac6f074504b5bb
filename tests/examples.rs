//! Every example works offline: each `DcsTaskQuery` in `examples/` names, in a comment, the
//! command that tries it against the built-in simulator, and that command reaches a verdict.
//!
//! A "try it" line is a comment of the form
//!
//! ```text
//! #   cargo run [--release] -- query --sim[=SCENARIO] -f examples/FILE.yaml --watch # exits 1
//! ```
//!
//! (the trailing `# exits N` is optional; without it the command must exit 0). Examples with a
//! `waitFor` must finish on their own with a final `Wait=...` verdict; examples without one have
//! nothing to wait for, so `--watch` keeps refreshing: the test waits for the first `Ready=True`
//! line and then stops the command.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::sim_process::{binary_command, describe, package_root, run_cli};

/// The prefix of a "try it" command inside an example's comment; `--release` and then `--`
/// may follow before the binary's arguments.
const TRY_IT: &str = "cargo run ";

/// How long a watch without `waitFor` may take to print its first answer.
const FIRST_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// One documented offline run of an example.
#[derive(Debug)]
struct TryIt {
    example: PathBuf,
    args: Vec<String>,
    expected_exit: i32,
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(package_root().join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

/// The YAML documents of a file, as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            serde::Deserialize::deserialize(document)
                .unwrap_or_else(|error| panic!("{}: not YAML: {error}", path.display()))
        })
        .filter(|value: &Value| !value.is_null())
        .collect()
}

fn is_query(document: &Value) -> bool {
    document["kind"] == "DcsTaskQuery"
}

/// The "try it" commands in the comments of `path`.
fn try_it_commands(path: &Path) -> Vec<TryIt> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix('#'))
        .filter_map(|comment| comment.trim_start().strip_prefix(TRY_IT))
        .map(|command| {
            let command = command.trim_start();
            let command = command.strip_prefix("--release ").unwrap_or(command);
            let command = command
                .strip_prefix("-- ")
                .unwrap_or_else(|| panic!("{}: `{TRY_IT}[--release] -- ...`", path.display()));
            let (command, note) = command.split_once('#').unwrap_or((command, ""));
            let expected_exit = note
                .trim()
                .strip_prefix("exits ")
                .map_or(0, |code| code.trim().parse().unwrap());
            TryIt {
                example: path.to_path_buf(),
                args: command.split_whitespace().map(str::to_string).collect(),
                expected_exit,
            }
        })
        .collect()
}

fn queries_with_commands() -> Vec<(Value, Vec<TryIt>)> {
    let mut found = Vec::new();
    for path in example_files() {
        let queries: Vec<Value> = documents(&path).into_iter().filter(is_query).collect();
        if queries.is_empty() {
            continue;
        }
        assert_eq!(
            queries.len(),
            1,
            "{}: one DcsTaskQuery per example",
            path.display()
        );
        found.push((queries[0].clone(), try_it_commands(&path)));
    }
    found
}

#[test]
fn every_query_example_documents_an_offline_watch_of_itself() {
    let examples = queries_with_commands();
    assert!(examples.len() >= 3, "too few examples: {examples:?}");
    for (query, commands) in &examples {
        let name = query["metadata"]["name"].as_str().unwrap();
        assert!(
            !commands.is_empty(),
            "example {name} has no `# {TRY_IT}-- query --sim ... --watch` line"
        );
        for command in commands {
            let file = format!(
                "examples/{}",
                command.example.file_name().unwrap().to_str().unwrap()
            );
            let args = &command.args;
            assert_eq!(args[0], "query", "{command:?}");
            assert!(
                args.iter()
                    .any(|arg| arg == "--sim" || arg.starts_with("--sim=")),
                "{command:?} does not run offline"
            );
            assert!(args.iter().any(|arg| arg == "--watch"), "{command:?}");
            assert!(
                args.windows(2)
                    .any(|pair| pair[0] == "-f" && pair[1] == file),
                "{command:?} does not read its own file {file}"
            );
            if let Some(scenario) = args.iter().find_map(|arg| arg.strip_prefix("--sim=")) {
                assert!(
                    package_root().join(scenario).is_file(),
                    "{command:?}: no scenario {scenario}"
                );
            }
        }
    }
}

#[test]
fn every_waiting_example_reaches_its_documented_verdict_offline() {
    let mut ran = 0;
    for (query, commands) in queries_with_commands() {
        if query["spec"]["waitFor"].is_null() {
            continue;
        }
        for command in commands {
            let args: Vec<&str> = command.args.iter().map(String::as_str).collect();
            let output = run_cli(&args, &[]);
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert_eq!(
                output.status.code(),
                Some(command.expected_exit),
                "{command:?}\n{}",
                describe(&output)
            );
            let expected = if command.expected_exit == 0 {
                "Wait=Succeeded"
            } else {
                "Wait=Failed"
            };
            let last_change = stdout
                .lines()
                .rfind(|line| line.contains("Wait="))
                .unwrap_or_else(|| panic!("{command:?}: no wait verdict\n{}", describe(&output)));
            assert!(
                last_change.contains(expected),
                "{command:?}: the last change is {last_change:?}, not {expected}\n{}",
                describe(&output)
            );
            // The final status table follows the verdict.
            assert!(stdout.contains("CONDITIONS"), "{}", describe(&output));
            ran += 1;
        }
    }
    assert!(ran >= 2, "only {ran} waiting examples ran");
}

#[test]
fn every_example_without_a_wait_prints_a_ready_answer_offline() {
    let mut ran = 0;
    for (query, commands) in queries_with_commands() {
        if !query["spec"]["waitFor"].is_null() {
            continue;
        }
        for command in commands {
            assert_eq!(command.expected_exit, 0, "{command:?}");
            let first = first_line_containing(&command.args, "Ready=");
            assert!(
                first.contains("Ready=True"),
                "{command:?}: the first answer is {first:?}"
            );
            ran += 1;
        }
    }
    assert!(ran >= 1, "no example without waitFor ran");
}

/// Runs the binary with `args` until a stdout line contains `needle`, then kills it and returns
/// that line; fails the test after [`FIRST_ANSWER_TIMEOUT`] or when the command exits first.
fn first_line_containing(args: &[String], needle: &str) -> String {
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = binary_command(&arg_refs, &[]);
    command.stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + FIRST_ANSWER_TIMEOUT;
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) if line.contains(needle) => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    drop(received);
    let _ = reader.join();
    found.unwrap_or_else(|| {
        panic!(
            "`dcs-task-operator {}` printed no line with {needle:?} within \
             {FIRST_ANSWER_TIMEOUT:?}; stdout:\n{}",
            args.join(" "),
            seen.join("\n")
        )
    })
}
