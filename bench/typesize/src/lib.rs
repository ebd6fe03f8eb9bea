//! One exported function that parses an update and reads what a handler reads (chat, user,
//! button data), so that the types it uses stay in the module.

#[cfg(feature = "own")]
#[path = "../../../src/types.rs"]
#[allow(dead_code)] // only parsing is exercised
mod types;

// The generated views (src/api/view.rs, views.rs), as a bot gets them from `edgegram::api`.
#[cfg(any(feature = "own", feature = "views", feature = "views-all"))]
#[path = "../../../src/api/view.rs"]
#[allow(dead_code)]
mod view;
#[cfg(any(feature = "own", feature = "views", feature = "views-all"))]
#[path = "../../../src/api/views.rs"]
#[allow(dead_code)]
mod views;
/// What src/types.rs names of the generated API (`Update::view`; not called here).
#[cfg(feature = "own")]
mod api {
    pub use super::views::Update;
}
#[cfg(feature = "views-all")]
mod touch_all;

fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    // SAFETY: the host passes a buffer it owns for the duration of the call.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// The floor: JSON parsing alone, fields read by hand.
#[cfg(not(any(feature = "own", feature = "frank", feature = "views", feature = "views-all")))]
#[no_mangle]
pub extern "C" fn parse(ptr: *const u8, len: usize) -> i64 {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(input(ptr, len)) else { return -1 };
    v["message"]["chat"]["id"].as_i64().unwrap_or(0)
        + v["callback_query"]["from"]["id"].as_i64().unwrap_or(0)
}

/// edgegram's types.
#[cfg(feature = "own")]
#[no_mangle]
pub extern "C" fn parse(ptr: *const u8, len: usize) -> i64 {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(input(ptr, len)) else { return -1 };
    match types::Update::from_value(value) {
        Ok(u) => {
            u.effective_chat().map(|c| c.id).unwrap_or(0)
                + u.effective_user().map(|u| u.id).unwrap_or(0)
                + u.callback_query.and_then(|q| q.data).map(|d| d.len() as i64).unwrap_or(0)
        }
        Err(_) => -2,
    }
}

/// frankenstein's types.
#[cfg(feature = "frank")]
#[no_mangle]
pub extern "C" fn parse(ptr: *const u8, len: usize) -> i64 {
    use frankenstein::updates::{Update, UpdateContent};
    match serde_json::from_slice::<Update>(input(ptr, len)) {
        Ok(u) => match u.content {
            UpdateContent::Message(m) => m.chat.id + m.from.map(|f| f.id as i64).unwrap_or(0),
            UpdateContent::CallbackQuery(q) => {
                q.from.id as i64 + q.data.map(|d| d.len() as i64).unwrap_or(0)
            }
            _ => 0,
        },
        Err(_) => -2,
    }
}

/// The generated views, reading what the others read: the chat, the user, the button data.
#[cfg(feature = "views")]
#[no_mangle]
pub extern "C" fn parse(ptr: *const u8, len: usize) -> i64 {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(input(ptr, len)) else { return -1 };
    let update = views::Update(&value);
    let message = update.message();
    message.map(|m| m.chat().id()).unwrap_or(0)
        + message.and_then(|m| m.from()).map(|u| u.id()).unwrap_or(0)
        + update.callback_query().map(|q| q.from().id()).unwrap_or(0)
        + update.callback_query().and_then(|q| q.data()).map(|d| d.len() as i64).unwrap_or(0)
}

/// The generated views, every accessor of every type called.
#[cfg(feature = "views-all")]
#[no_mangle]
pub extern "C" fn parse(ptr: *const u8, len: usize) -> i64 {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(input(ptr, len)) else { return -1 };
    touch_all::touch_all(&value);
    0
}
