//! The scale benchmark: N `DcsTaskQuery` objects over K = 10 distinct queries, half waiting on
//! one job, against a real kube-apiserver, the simulator and the controller as separate
//! processes (see `tests/support/scale/mod.rs` for what is measured and how, `render.rs` beside
//! it for the table and the plot, and `docs/BENCHMARKS.md` for the figures).
//!
//! ```text
//! cargo bench --bench scale -- --objects 1000,10000 --naive 1000 [--svg docs/benchmarks/scale.svg]
//! ```
//!
//! Every run ends with the apiserver-limit phase (`tests/support/scale/limit.rs`): with the
//! controller stopped, the same apiserver takes status writes of the run's largest waiter status,
//! 16 in flight, and its rate R gives each latency's and the cold start's limit; the table shows
//! R, the payload, each figure as `measured / limit = ratio`, and the order of the waiters'
//! verdicts and the other objects' refreshes.
//!
//! `cargo test --all-targets` builds and runs this binary too, without `--bench`: it then only
//! prints how to run it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use support::scale::{self, Bound, ScaleConfig, ScaleReport, Sharing, WaitSource, render};

const USAGE: &str = "\
usage: cargo bench --bench scale -- [OPTIONS]

  --objects LIST         N values of the shared mode, comma-separated (default 1000,10000)
  --naive LIST           N values to run in naive mode (--upstream-sharing=per-object) too
                         (default: none); naive runs get --rate-limit/--account-rate-limit 100000
  --queries K            distinct upstream queries (default 10)
  --svg PATH             write the plot (wait latency and upstream calls vs N) there
  --markdown PATH        write the table there too
  --idle SECS            idle CPU window (default 60; 0 skips it)
  --controller-arg ARG   extra controller flag for the shared mode (repeatable), e.g.
                         --controller-arg=--rate-limit=20
  --concurrency C        the controller's --concurrency for every mode (default: its own, 16)
  --wait-source LIST     where waiters read their job: job (ShowJobInfo, the default for jobId),
                         task-list, or both, comma-separated (default job)
  --jobs J               distinct jobs the waiters await (default 1)

Each run ends by measuring the apiserver's own limit (status writes per second, no operator,
max(N, 500) writes) and reports the cold start and the wait latencies as ratios to it.

Needs KUBEBUILDER_ASSETS (kube-apiserver and etcd; see scripts/control-plane.sh).";

struct Options {
    objects: Vec<usize>,
    naive: Vec<usize>,
    queries: usize,
    svg: Option<PathBuf>,
    markdown: Option<PathBuf>,
    idle: Duration,
    shared_flags: Vec<String>,
    concurrency: Option<String>,
    wait_sources: Vec<WaitSource>,
    jobs: usize,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        objects: vec![1000, 10000],
        naive: Vec::new(),
        queries: 10,
        svg: None,
        markdown: None,
        idle: Duration::from_secs(60),
        shared_flags: Vec::new(),
        concurrency: None,
        wait_sources: vec![WaitSource::Job],
        jobs: 1,
    };
    let list = |value: &str| -> Result<Vec<usize>, String> {
        value
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| {
                part.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 2)
                    .ok_or_else(|| format!("not an object count (at least 2): {part:?}"))
            })
            .collect()
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        // `cargo bench` adds `--bench`; libtest-style flags are not ours either.
        if arg == "--bench" {
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--objects" => options.objects = list(&value()?)?,
            "--naive" => options.naive = list(&value()?)?,
            "--queries" => {
                options.queries = value()?
                    .parse()
                    .ok()
                    .filter(|k| (1..=900).contains(k))
                    .ok_or("--queries takes 1 to 900")?
            }
            "--svg" => options.svg = Some(PathBuf::from(value()?)),
            "--markdown" => options.markdown = Some(PathBuf::from(value()?)),
            "--idle" => {
                options.idle = Duration::from_secs(
                    value()?
                        .parse()
                        .map_err(|_| "--idle takes whole seconds".to_string())?,
                )
            }
            "--controller-arg" => options.shared_flags.push(value()?),
            "--concurrency" => options.concurrency = Some(value()?),
            "--wait-source" => {
                options.wait_sources = value()?
                    .split(',')
                    .map(|part| match part.trim() {
                        "job" => Ok(WaitSource::Job),
                        "task-list" => Ok(WaitSource::TaskList),
                        other => Err(format!("--wait-source: job or task-list, not {other:?}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--jobs" => {
                options.jobs = value()?
                    .parse()
                    .ok()
                    .filter(|j| (1..=100).contains(j))
                    .ok_or("--jobs takes 1 to 100")?
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|arg| arg == "--bench") {
        println!(
            "scale benchmark skipped (not run by `cargo test`); run it with \
             `cargo bench --bench scale -- --objects 1000,10000 --naive 1000 [--svg docs/benchmarks/scale.svg]`"
        );
        return ExitCode::SUCCESS;
    }
    let options = match parse(&args) {
        Ok(options) => options,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("{problem}\n");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };

    let mut sizes: Vec<usize> = options
        .objects
        .iter()
        .chain(&options.naive)
        .copied()
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut reports: Vec<ScaleReport> = Vec::new();
    let modes = [Sharing::Shared, Sharing::PerObject]
        .into_iter()
        .flat_map(|sharing| {
            options
                .wait_sources
                .iter()
                .map(move |source| (sharing, *source))
        });
    let modes: Vec<(Sharing, WaitSource)> = modes.collect();
    for n in sizes {
        for &(sharing, wait_source) in &modes {
            let wanted = match sharing {
                Sharing::Shared => &options.objects,
                Sharing::PerObject => &options.naive,
            };
            if !wanted.contains(&n) {
                continue;
            }
            let mut config = ScaleConfig::benchmark(n, sharing);
            config.wait_source = wait_source;
            config.jobs = options.jobs;
            config.distinct_queries = options.queries;
            config.idle_window = (!options.idle.is_zero()).then_some(options.idle);
            if sharing == Sharing::Shared {
                config.controller_flags.extend(options.shared_flags.clone());
            }
            if let Some(concurrency) = &options.concurrency {
                config
                    .controller_flags
                    .extend(["--concurrency".to_string(), concurrency.clone()]);
            }
            let report = scale::run(&config);
            println!("{}", render::markdown_table(std::slice::from_ref(&report)));
            println!("{}\n", limit_summary(&report));
            reports.push(report);
        }
    }

    let table = render::markdown_table(&reports);
    println!("## Scale benchmark\n\n{table}");
    if let Some(path) = &options.markdown
        && let Err(error) = write(path, &table)
    {
        eprintln!("{error}");
        return ExitCode::FAILURE;
    }
    if let Some(path) = &options.svg {
        if let Err(error) = write(path, &render::svg_plot(&reports)) {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
        println!("plot written to {}", path.display());
    }
    ExitCode::SUCCESS
}

/// One line: R and each figure's ratio to its limit, and the refreshes written among verdicts.
fn limit_summary(report: &ScaleReport) -> String {
    let rate = report.limit_writes_per_second.map_or_else(
        || "not measured".to_string(),
        |r| format!("{r:.1} writes/s"),
    );
    let ratios: Vec<String> = Bound::ALL
        .into_iter()
        .map(|bound| {
            let ratio = report
                .limit_ratio(bound)
                .map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
            format!("{} {ratio}", bound.label())
        })
        .collect();
    format!(
        "{}: apiserver limit R = {rate} ({} bytes); measured / limit: {}; non-waiters' writes \
         while their query's verdicts were pending: {}",
        report.title(),
        report.limit_payload_bytes,
        ratios.join(", "),
        report.listing_writes_during_verdicts
    )
}

fn write(path: &std::path::Path, content: &str) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
    }
    std::fs::write(path, content)
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}
