//! How `query` prints: a kubectl-like table, or the whole object as JSON/YAML (what
//! `kubectl get -o yaml` would show once the controller has written the status).

use crate::api::conditions::{self, READY};
use crate::api::{DcsTaskQuery, DcsTaskQueryStatus};
use crate::cli::OutputFormat;

/// The object with its status, in `format`.
pub fn render(query: &DcsTaskQuery, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(query).expect("serializable");
            text.push('\n');
            text
        }
        OutputFormat::Yaml => format!(
            "---\n{}",
            serde_yaml_ng::to_string(query).expect("serializable")
        ),
        OutputFormat::Table => table(query),
    }
}

/// One line per change in `--watch` table mode.
pub fn summary_line(status: &DcsTaskQueryStatus) -> String {
    let time = status
        .last_sync_time
        .as_ref()
        .map(|t| t.0.strftime("%H:%M:%S").to_string())
        .unwrap_or_else(|| "--:--:--".into());
    let ready = condition_status(status, READY);
    let mut line = format!("{time}  Ready={ready}");
    if let Some(wait) = &status.wait_for {
        line.push_str(&format!(
            "  Wait={}  {}",
            wait.phase.as_str(),
            wait.message.as_deref().unwrap_or("")
        ));
    } else if let Some(ready) = conditions::find(&status.conditions, READY) {
        line.push_str(&format!("  {}", ready.message));
    }
    if let Some(error) = &status.last_error {
        line.push_str(&format!("  lastError: {}", error.message));
    }
    line
}

fn condition_status(status: &DcsTaskQueryStatus, type_: &str) -> String {
    conditions::find(&status.conditions, type_)
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "-".into())
}

fn table(query: &DcsTaskQuery) -> String {
    let empty = DcsTaskQueryStatus::default();
    let status = query.status.as_ref().unwrap_or(&empty);
    let name = query.metadata.name.as_deref().unwrap_or("(unnamed)");
    let dash = || "-".to_string();
    let mut rows = vec![
        vec!["NAME", "READY", "WAIT", "MATCHED", "LATEST", "LAST SYNC"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
        vec![
            name.to_string(),
            condition_status(status, READY),
            status
                .wait_for
                .as_ref()
                .map_or_else(dash, |w| w.phase.as_str().to_string()),
            status.matched_count.map_or_else(dash, |n| n.to_string()),
            status
                .tasks
                .first()
                .and_then(|t| t.status.clone())
                .unwrap_or_else(dash),
            status
                .last_sync_time
                .as_ref()
                .map_or_else(dash, |t| t.0.to_string()),
        ],
    ];
    let mut out = columns(&mut rows);

    out.push_str("\nCONDITIONS\n");
    let mut condition_rows = vec![vec![
        "TYPE".to_string(),
        "STATUS".into(),
        "REASON".into(),
        "MESSAGE".into(),
    ]];
    condition_rows.extend(status.conditions.iter().map(|c| {
        vec![
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
        ]
    }));
    out.push_str(&columns(&mut condition_rows));

    if let Some(error) = &status.last_error {
        out.push_str(&format!(
            "\nLAST ERROR ({})\n{}\n",
            error.time.0, error.message
        ));
    }

    out.push_str(&format!(
        "\nTASKS (newest first, {} of {} matched, task_count {})\n",
        status.tasks.len(),
        status.matched_count.unwrap_or(0),
        status.task_count.map_or_else(dash, |n| n.to_string())
    ));
    let mut task_rows = vec![vec![
        "CREATED".to_string(),
        "NAME".into(),
        "STATUS".into(),
        "JOB ID".into(),
        "ID".into(),
    ]];
    task_rows.extend(status.tasks.iter().map(|t| {
        vec![
            t.created_at.clone().unwrap_or_else(dash),
            t.name.clone().unwrap_or_else(dash),
            t.status.clone().unwrap_or_else(dash),
            t.job_id.clone().unwrap_or_else(dash),
            t.id.clone().unwrap_or_else(dash),
        ]
    }));
    out.push_str(&columns(&mut task_rows));
    out
}

/// Left-aligned columns separated by three spaces, like kubectl.
fn columns(rows: &mut [Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; width];
    for row in rows.iter() {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows.iter() {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let mut rows = vec![
            vec!["A".to_string(), "BB".into()],
            vec!["CCC".to_string(), "D".into()],
        ];
        assert_eq!(columns(&mut rows), "A     BB\nCCC   D\n");
    }
}
