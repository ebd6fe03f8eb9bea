#![no_main]
//! Any bytes as a webhook body: parsing answers Ok or a rejection, and what parses can be
//! walked (effective chat, user, message, command) without panicking.
use edgegram::webhook::{parse_body, Incoming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Incoming::Update(update)) = parse_body(data) {
        let _ = update.effective_chat();
        let _ = update.effective_user();
        let _ = update.kind();
        if let Some(message) = update.effective_message() {
            let _ = message.command();
        }
    }
});
