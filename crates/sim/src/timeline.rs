//! Status timelines: how a simulated task's status evolves with (virtual) time.
//!
//! A timeline is a list of steps measured from the task's `created_at`: each step but the last
//! lasts a fixed time, the last one lasts forever. Keeping status a pure function of elapsed time
//! (instead of mutating tasks on a timer) makes every answer reproducible and lets the virtual
//! clock jump without missing transitions.

use chrono::TimeDelta;

/// One status and how long the task stays in it; `None` only on the last step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Step {
    pub status: String,
    pub lasts: Option<TimeDelta>,
}

impl Step {
    /// When the step ends if it starts at `start`: `None` for the last step, and also when the
    /// end lies beyond `TimeDelta`'s range, which elapsed time never reaches either.
    fn end(&self, start: TimeDelta) -> Option<TimeDelta> {
        self.lasts.and_then(|lasts| start.checked_add(&lasts))
    }
}

/// Steps of a task's life. Invariant: at least one step, only the last has no duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Timeline {
    steps: Vec<Step>,
}

/// The status at some instant and when it began, as an offset from `created_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StatusAt<'a> {
    pub status: &'a str,
    /// Offset of the last status change from `created_at` (zero for the first step); this is
    /// what `updated_at` reports.
    pub since: TimeDelta,
}

impl Timeline {
    /// Checks the invariant; the error says which step is wrong and how to fix it.
    pub fn new(steps: Vec<Step>) -> Result<Self, String> {
        let Some(last) = steps.len().checked_sub(1) else {
            return Err("a timeline needs at least one step, e.g. [{status: SUCCESS}]".into());
        };
        for (index, step) in steps.iter().enumerate() {
            if step.status.is_empty() {
                return Err(format!("step {index} has an empty status"));
            }
            match (index == last, step.lasts) {
                (false, None) => {
                    return Err(format!(
                        "step {index} needs `for`: only the last step may omit it"
                    ));
                }
                (true, Some(_)) => {
                    return Err(format!(
                        "the last step ({index}) must not have `for`: it is the status the task keeps"
                    ));
                }
                (false, Some(lasts)) if lasts < TimeDelta::zero() => {
                    return Err(format!("step {index} has a negative duration"));
                }
                _ => {}
            }
        }
        Ok(Self { steps })
    }

    /// A task that has one status forever.
    pub fn constant(status: impl Into<String>) -> Self {
        Self {
            steps: vec![Step {
                status: status.into(),
                lasts: None,
            }],
        }
    }

    /// The status `elapsed` after creation. Negative `elapsed` (a task not yet created) gives the
    /// first step; callers hide such tasks anyway.
    pub fn at(&self, elapsed: TimeDelta) -> StatusAt<'_> {
        let mut start = TimeDelta::zero();
        for step in &self.steps {
            match step.end(start) {
                Some(end) if elapsed >= end => start = end,
                _ => {
                    return StatusAt {
                        status: &step.status,
                        since: start,
                    };
                }
            }
        }
        unreachable!("the last step of a timeline has no duration")
    }

    /// The same timeline in another vocabulary: each step's status becomes `rename(status)`, and
    /// neighbouring steps that end up with the same status merge into one (so the time of the
    /// last change stays the time the renamed status began). This is how a task's timeline
    /// becomes its job's (`EXECUTING` -> `RUNNING`, `FAILED` -> `FAIL`).
    pub fn renamed(&self, rename: impl Fn(&str) -> String) -> Self {
        let mut steps: Vec<Step> = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let status = rename(&step.status);
            match steps.last_mut() {
                Some(last) if last.status == status => {
                    // Only the last step lasts forever; a sum beyond `TimeDelta` never ends either.
                    last.lasts = step.lasts.map(|lasts| {
                        last.lasts
                            .and_then(|before| before.checked_add(&lasts))
                            .unwrap_or(TimeDelta::MAX)
                    });
                }
                _ => steps.push(Step {
                    status,
                    lasts: step.lasts,
                }),
            }
        }
        Self { steps }
    }

    /// Makes the task hold `status` from `elapsed` on, dropping whatever the timeline had
    /// planned after that instant. The past stays as it was, so `updated_at` moves to `elapsed`
    /// only when the status actually changes.
    pub fn set_from(&mut self, elapsed: TimeDelta, status: String) {
        if elapsed <= TimeDelta::zero() {
            *self = Self::constant(status);
            return;
        }
        let mut kept = Vec::with_capacity(self.steps.len() + 1);
        let mut start = TimeDelta::zero();
        for step in self.steps.drain(..) {
            match step.end(start) {
                Some(end) if elapsed >= end => {
                    start = end;
                    kept.push(step);
                }
                _ => {
                    if step.status == status {
                        kept.push(Step {
                            status,
                            lasts: None,
                        });
                    } else {
                        // `start` only grows from zero, so `elapsed - start` (with
                        // `elapsed > start`) is between zero and `elapsed`.
                        if let Some(lasts) = elapsed
                            .checked_sub(&start)
                            .filter(|lasts| *lasts > TimeDelta::zero())
                        {
                            kept.push(Step {
                                status: step.status,
                                lasts: Some(lasts),
                            });
                        }
                        kept.push(Step {
                            status,
                            lasts: None,
                        });
                    }
                    break;
                }
            }
        }
        self.steps = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(status: &str, secs: Option<i64>) -> Step {
        Step {
            status: status.into(),
            lasts: secs.map(TimeDelta::seconds),
        }
    }

    fn switchover() -> Timeline {
        Timeline::new(vec![step("EXECUTING", Some(8)), step("SUCCESS", None)]).unwrap()
    }

    #[test]
    fn status_follows_the_steps() {
        let timeline = switchover();
        let at = |secs: i64| timeline.at(TimeDelta::milliseconds(secs));
        assert_eq!(
            at(0),
            StatusAt {
                status: "EXECUTING",
                since: TimeDelta::zero()
            }
        );
        assert_eq!(at(7_999).status, "EXECUTING");
        assert_eq!(
            at(8_000),
            StatusAt {
                status: "SUCCESS",
                since: TimeDelta::seconds(8)
            }
        );
        assert_eq!(at(86_400_000).since, TimeDelta::seconds(8));
        assert_eq!(at(-5_000).status, "EXECUTING");
    }

    #[test]
    fn zero_length_steps_are_skipped() {
        let timeline = Timeline::new(vec![
            step("CREATED", Some(0)),
            step("EXECUTING", Some(2)),
            step("SUCCESS", None),
        ])
        .unwrap();
        assert_eq!(timeline.at(TimeDelta::zero()).status, "EXECUTING");
        assert_eq!(timeline.at(TimeDelta::seconds(2)).status, "SUCCESS");
    }

    #[test]
    fn invalid_timelines_say_what_is_wrong() {
        assert!(
            Timeline::new(vec![])
                .unwrap_err()
                .contains("at least one step")
        );
        let error = Timeline::new(vec![step("EXECUTING", None), step("SUCCESS", None)]);
        assert!(error.unwrap_err().contains("step 0 needs `for`"));
        let error = Timeline::new(vec![step("SUCCESS", Some(1))]);
        assert!(error.unwrap_err().contains("must not have `for`"));
        let error = Timeline::new(vec![step("", None)]);
        assert!(error.unwrap_err().contains("empty status"));
    }

    #[test]
    fn set_from_keeps_the_past_and_replaces_the_future() {
        let mut timeline = switchover();
        timeline.set_from(TimeDelta::seconds(3), "FAILED".into());
        assert_eq!(timeline.at(TimeDelta::seconds(2)).status, "EXECUTING");
        assert_eq!(
            timeline.at(TimeDelta::seconds(100)),
            StatusAt {
                status: "FAILED",
                since: TimeDelta::seconds(3)
            }
        );
    }

    #[test]
    fn set_from_the_current_status_only_cancels_later_steps() {
        let mut timeline = switchover();
        timeline.set_from(TimeDelta::seconds(3), "EXECUTING".into());
        assert_eq!(
            timeline.at(TimeDelta::seconds(100)),
            StatusAt {
                status: "EXECUTING",
                since: TimeDelta::zero()
            }
        );
    }

    #[test]
    fn set_from_after_the_end_appends_a_step() {
        let mut timeline = switchover();
        timeline.set_from(TimeDelta::seconds(20), "DELETED".into());
        assert_eq!(timeline.at(TimeDelta::seconds(10)).status, "SUCCESS");
        assert_eq!(
            timeline.at(TimeDelta::seconds(20)),
            StatusAt {
                status: "DELETED",
                since: TimeDelta::seconds(20)
            }
        );
    }

    #[test]
    fn steps_ending_beyond_the_range_of_time_never_end() {
        // `start + lasts` panicked with "`TimeDelta + TimeDelta` overflowed" here.
        let mut timeline = Timeline::new(vec![
            Step {
                status: "A".into(),
                lasts: Some(TimeDelta::MAX),
            },
            Step {
                status: "B".into(),
                lasts: Some(TimeDelta::MAX),
            },
            step("C", None),
        ])
        .unwrap();
        assert_eq!(
            timeline.at(TimeDelta::MAX),
            StatusAt {
                status: "B",
                since: TimeDelta::MAX
            }
        );
        assert_eq!(timeline.at(TimeDelta::MIN).status, "A");
        timeline.set_from(TimeDelta::MAX, "D".into());
        assert_eq!(timeline.at(TimeDelta::MAX).status, "D");
        assert_eq!(timeline.at(TimeDelta::zero()).status, "A");
    }

    #[test]
    fn renamed_merges_steps_that_end_up_alike() {
        let timeline = Timeline::new(vec![
            step("CREATED", Some(1)),
            step("WAITING", Some(2)),
            step("EXECUTING", Some(3)),
            step("FAILED", Some(4)),
            step("DELETED", None),
        ])
        .unwrap();
        let job = timeline.renamed(|status| {
            match status {
                "CREATED" | "WAITING" => "INIT",
                "EXECUTING" => "RUNNING",
                _ => "FAIL",
            }
            .to_string()
        });
        assert_eq!(
            job,
            Timeline::new(vec![
                step("INIT", Some(3)),
                step("RUNNING", Some(3)),
                step("FAIL", None)
            ])
            .unwrap()
        );
        assert_eq!(
            job.at(TimeDelta::seconds(100)),
            StatusAt {
                status: "FAIL",
                since: TimeDelta::seconds(6)
            }
        );
        let endless = Timeline::new(vec![
            Step {
                status: "A".into(),
                lasts: Some(TimeDelta::MAX),
            },
            Step {
                status: "B".into(),
                lasts: Some(TimeDelta::MAX),
            },
            step("C", None),
        ])
        .unwrap()
        .renamed(|status| if status == "C" { "C" } else { "X" }.to_string());
        // Beyond any elapsed time the calendar allows (about 525,000 years), still unfinished.
        assert_eq!(endless.at(TimeDelta::days(200_000_000)).status, "X");
        assert_eq!(switchover().renamed(str::to_string), switchover());
    }

    #[test]
    fn set_from_before_creation_replaces_everything() {
        let mut timeline = switchover();
        timeline.set_from(TimeDelta::seconds(-4), "SUCCESS".into());
        assert_eq!(timeline, Timeline::constant("SUCCESS"));
    }
}
