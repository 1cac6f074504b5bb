//! Feeds arbitrary bytes to the decoders the client runs on every DCS answer: the task page
//! (`decode_task_page`, the same function `DcsClient` calls), the `ShowJobInfo` answer
//! (`JobInfo::decode`, what `DcsClient::show_job` calls) and the error body. None may panic, and
//! what they keep must stay within the documented bounds.

#![no_main]

use dcs_task_operator::dcs::model::{ErrorBody, MAX_LIST_ITEMS, decode_task_page};
use dcs_task_operator::dcs::{
    JobInfo, MAX_DECODED_PARAMS_BYTES, MAX_DECODED_TEXT_BYTES, MAX_DECODED_TIME_BYTES,
    MAX_ERROR_CODE_BYTES, MAX_ERROR_MSG_BYTES, MAX_TASKS_PER_PAGE,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = decode_task_page(data) {
        assert!(page.tasks.len() <= MAX_TASKS_PER_PAGE);
        let within =
            |text: &Option<String>, cap: usize| text.as_ref().is_none_or(|t| t.len() <= cap);
        for task in &page.tasks {
            assert!(within(&task.params, MAX_DECODED_PARAMS_BYTES));
            for text in [
                &task.id,
                &task.name,
                &task.user_name,
                &task.user_id,
                &task.status,
            ] {
                assert!(within(text, MAX_DECODED_TEXT_BYTES));
            }
            for time in [&task.created_at, &task.updated_at].into_iter().flatten() {
                assert!(time.raw.len() <= MAX_DECODED_TIME_BYTES);
            }
            if let Some(details) = &task.details {
                assert!(details.rename_commands.len() <= MAX_LIST_ITEMS);
                for command in &details.rename_commands {
                    assert!(command.len() <= MAX_DECODED_TEXT_BYTES);
                }
            }
        }
    }
    if let Ok(job) = JobInfo::decode(data) {
        let within =
            |text: &Option<String>, cap: usize| text.as_ref().is_none_or(|t| t.len() <= cap);
        for text in [&job.job_id, &job.job_type, &job.fail_reason] {
            assert!(within(text, MAX_DECODED_TEXT_BYTES));
        }
        assert!(job.status.as_str().len() <= MAX_DECODED_TEXT_BYTES);
        for time in [&job.begin_time, &job.end_time].into_iter().flatten() {
            assert!(time.raw.len() <= MAX_DECODED_TIME_BYTES);
        }
    }
    if let Some(error) = ErrorBody::from_json(data) {
        assert!(error.error_code.is_some() || error.error_msg.is_some());
        let code = error.error_code.as_deref().unwrap_or_default();
        let msg = error.error_msg.as_deref().unwrap_or_default();
        assert!(code.len() <= MAX_ERROR_CODE_BYTES && msg.len() <= MAX_ERROR_MSG_BYTES);
    }
});
