//! Feeds arbitrary bytes to the decoders the client runs on every DCS answer: the task page
//! (`decode_task_page`, the same function `DcsClient` calls) and the error body. Neither may
//! panic, and what they keep must stay within the documented bounds.

#![no_main]

use dcs_task_operator::dcs::model::{ErrorBody, MAX_LIST_ITEMS, decode_task_page};
use dcs_task_operator::dcs::{MAX_ERROR_CODE_BYTES, MAX_ERROR_MSG_BYTES, MAX_TASKS_PER_PAGE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = decode_task_page(data) {
        assert!(page.tasks.len() <= MAX_TASKS_PER_PAGE);
        for task in &page.tasks {
            if let Some(details) = &task.details {
                assert!(details.rename_commands.len() <= MAX_LIST_ITEMS);
            }
        }
    }
    if let Some(error) = ErrorBody::from_json(data) {
        assert!(error.error_code.is_some() || error.error_msg.is_some());
        let code = error.error_code.as_deref().unwrap_or_default();
        let msg = error.error_msg.as_deref().unwrap_or_default();
        assert!(code.len() <= MAX_ERROR_CODE_BYTES && msg.len() <= MAX_ERROR_MSG_BYTES);
    }
});
