//! `dcs-task-operator sim`: the task-center simulator as a stand-alone process.

use std::io::Write;

use super::{SimArgs, TaskCountArg};
use crate::sim::{self, Scenario, SimConfig, SimError, TaskCountEncoding};

/// Serves until Ctrl-C. The first stdout line is `dcs simulator listening on URL`, so scripts
/// and tests can start it on port 0 and read the address.
pub async fn run(args: SimArgs) -> Result<(), SimError> {
    let scenario = match &args.scenario {
        Some(path) => Scenario::load(path)?,
        None => Scenario::default_demo(),
    };
    let mut config = SimConfig::new(args.listen, scenario);
    config.task_count_encoding = args.task_count_as.map(|choice| match choice {
        TaskCountArg::String => TaskCountEncoding::String,
        TaskCountArg::Number => TaskCountEncoding::Number,
    });
    let running = sim::serve(config).await?;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "dcs simulator listening on {}", running.base_url());
    let _ = writeln!(
        stdout,
        "demo credentials: access key {} (secret key in the scenario file), project {}",
        sim::DEMO_ACCESS_KEY,
        sim::DEMO_PROJECT_ID
    );
    let _ = stdout.flush();
    drop(stdout);
    running.wait().await;
    Ok(())
}
