#![no_main]
//! Any JSON as an import document: validation never panics, and a valid document exports to
//! one that validates to the same entries.
use edgegram::persistence::dict;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(entries) = dict::to_entries(&doc) {
        let exported = dict::from_entries(entries.clone());
        let mut again = dict::to_entries(&exported).expect("an export validates");
        // An export always shows bot_data, as PTB's does ({} when there is none).
        if !entries.iter().any(|(k, _)| k == &edgegram::Key::BotData) {
            again.retain(|(k, v)| !(k == &edgegram::Key::BotData && v == &serde_json::json!({})));
        }
        let mut entries = entries;

        entries.sort_by(|a, b| a.0.cmp(&b.0));
        again.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(again, entries);
    }
});
