//! edgegram's error type: owned values only (no `JsValue`), each naming what failed where.

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

/// `Result` with edgegram's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. Storage errors name the backend, the operation and the key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The storage backend failed (network, quota, a JS exception, an injected fault).
    Storage {
        /// Backend name, e.g. `"kv"`.
        backend: &'static str,
        /// Operation, e.g. `"read"`, `"write"`.
        operation: &'static str,
        /// The key concerned, or a description of the batch.
        key: String,
        /// What the backend said.
        message: String,
    },
    /// A compare-and-set was lost: another update changed the entry since this one read it.
    /// Nothing of the update was written; Telegram delivers it again.
    Conflict {
        /// Backend name.
        backend: &'static str,
        /// The key (or batch) concerned.
        key: String,
    },
    /// A stored value could not be decoded. The value is left as it is.
    Decode {
        /// Backend name.
        backend: &'static str,
        /// The key whose value is bad.
        key: String,
        /// Why it could not be decoded.
        message: String,
    },
    /// A value could not be encoded for storage (a serializer error in user data).
    Encode {
        /// The key it was meant for.
        key: String,
        /// The serializer's message.
        message: String,
    },
    /// A key or value is over the backend's limit; nothing of the update was written.
    TooLarge {
        /// Backend name.
        backend: &'static str,
        /// The key concerned (possibly shortened).
        key: String,
        /// What is too large: `"key"` or `"value"`.
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A Bot API call failed. Never contains the bot token. Match on `kind` to decide what
    /// to do: wait and retry, send to the chat's new id, or give up on this chat.
    BotApi {
        /// The method called.
        method: String,
        /// Telegram's `error_code` (the HTTP status when the answer is not Telegram's), if it
        /// answered.
        code: Option<i64>,
        /// Telegram's description, or the transport error.
        description: String,
        /// What kind of failure it is, from the code and Telegram's `parameters`.
        kind: BotApiErrorKind,
    },
    /// The update lacks what the call needs (e.g. chat_data of an update without a chat).
    Missing(&'static str),
    /// Data was reached from inside a closure that already holds it, e.g.
    /// `ctx.chat_data(|_| ctx.chat_data(..))`: a second borrow would panic, and a panic on
    /// wasm aborts the worker. Names the data (`"bot_data"`, `"chat_data"`, `"user_data"`).
    NestedAccess(&'static str),
    /// The application or a handler is configured wrongly; the message says how to fix it.
    Config(String),
    /// An input document (import, webhook body) is invalid; the message names the bad path.
    Invalid(String),
    /// An import document holds more entries than one import may (each is kept, encoded, until
    /// the import's one write): import it in parts
    /// ([`ImportMode::Merge`](crate::persistence::dict::ImportMode::Merge)).
    TooManyEntries {
        /// The most entries one import may hold.
        limit: usize,
    },
    /// A handler failed and the application is set to have the update delivered again
    /// ([`OnHandlerError::Retry`](crate::OnHandlerError::Retry)). The handler's error is the
    /// [`source`](std::error::Error::source), to inspect or downcast; its message is also in
    /// this error's own, so that logging `{error}` alone says what happened.
    Handler {
        /// The update whose handler failed.
        update_id: i64,
        /// What the handler returned (shared with the error handlers, which got it first).
        error: Rc<HandlerError>,
    },
    /// The random source failed, so what needed an unpredictable id (a keyboard of arbitrary
    /// callback data) was not made: an id from a failed source could be guessed. Names why.
    Random(String),
    /// The update was already processed: a backend that records processed update ids found
    /// this one before any handler ran (a redelivery). Not a failure: answer 200.
    AlreadyProcessed(i64),
}

/// What kind of failure a Bot API call met, read from Telegram's answer as python-telegram-bot
/// reads it (`parameters.migrate_to_chat_id` first, then `parameters.retry_after`, then the
/// code), so that a handler or an outbox can tell a failure worth retrying
/// ([`is_transient`](BotApiErrorKind::is_transient)) from one that will fail again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BotApiErrorKind {
    /// Telegram's flood limit (429, or any answer with `parameters.retry_after`): retry after
    /// this many seconds; 0 when the answer did not say (a proxy's 429). Transient.
    RetryAfter(u32),
    /// The group became a supergroup with this id (`parameters.migrate_to_chat_id`): calls
    /// for the old id fail for good; send to the new one. Permanent.
    ChatMigrated(i64),
    /// 400 Bad Request: the call cannot succeed as made (chat not found, empty text, message
    /// not modified, ...). Permanent.
    BadRequest,
    /// 401 Unauthorized: the bot token is not valid. Permanent.
    Unauthorized,
    /// 403 Forbidden: the bot may not do this (blocked by the user, kicked from the group).
    /// Permanent for this chat.
    Forbidden,
    /// 404 Not Found: no such method, or a malformed token. Permanent.
    NotFound,
    /// Any other 4xx (409 Conflict, 413 Request Entity Too Large, ...). Permanent.
    OtherClient,
    /// 5xx: Telegram, or a proxy on the way, failed. Transient.
    Server,
    /// No answer at all: the connection failed or timed out. Transient (the call may still
    /// have taken effect).
    Network,
    /// The call could not be sent: its request could not be built (a `TELEGRAM_API_BASE`
    /// that is not a URL). Permanent.
    Unsendable,
    /// An answer that is not a Bot API answer (a 2xx whose body is not one), or a result that
    /// does not fit the method's type. Permanent: the call may have taken effect, and the same
    /// answer would come again.
    BadAnswer,
}

impl BotApiErrorKind {
    /// Whether the same call may succeed later: a network failure, a 5xx, the flood limit
    /// (after [`retry_after`](Self::retry_after)). Everything else fails again as it did.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BotApiErrorKind::RetryAfter(_) | BotApiErrorKind::Server | BotApiErrorKind::Network
        )
    }

    /// How long Telegram asks to wait before the next call, for the flood limit.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BotApiErrorKind::RetryAfter(seconds) => Some(Duration::from_secs((*seconds).into())),
            _ => None,
        }
    }

    /// The kind of a failed answer with `code` (Telegram's `error_code` or the HTTP status)
    /// and Telegram's `parameters` (`Value::Null` when there are none).
    pub fn from_answer(code: i64, parameters: &serde_json::Value) -> Self {
        if let Some(chat_id) = parameters["migrate_to_chat_id"].as_i64() {
            return BotApiErrorKind::ChatMigrated(chat_id);
        }
        if let Some(seconds) = parameters["retry_after"].as_u64() {
            return BotApiErrorKind::RetryAfter(u32::try_from(seconds).unwrap_or(u32::MAX));
        }
        match code {
            400 => BotApiErrorKind::BadRequest,
            401 => BotApiErrorKind::Unauthorized,
            403 => BotApiErrorKind::Forbidden,
            404 => BotApiErrorKind::NotFound,
            429 => BotApiErrorKind::RetryAfter(0),
            402 | 405..=428 | 430..=499 => BotApiErrorKind::OtherClient,
            500..=599 => BotApiErrorKind::Server,
            _ => BotApiErrorKind::BadAnswer,
        }
    }
}

impl Error {
    /// The kind of a failed Bot API call; `None` for every other error.
    pub fn bot_api_kind(&self) -> Option<BotApiErrorKind> {
        match self {
            Error::BotApi { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Storage {
                backend,
                operation,
                key,
                message,
            } => write!(
                f,
                "{backend} storage: {operation} of {key} failed: {message}"
            ),
            Error::Conflict { backend, key } => write!(
                f,
                "{backend} storage: {key} changed concurrently; the update was not applied"
            ),
            Error::Decode {
                backend,
                key,
                message,
            } => write!(
                f,
                "{backend} storage: value of {key} cannot be decoded: {message}"
            ),
            Error::Encode { key, message } => {
                write!(f, "value for {key} cannot be encoded: {message}")
            }
            Error::TooLarge {
                backend,
                key,
                what,
                size,
                limit,
            } => write!(
                f,
                "{backend} storage: {what} for {key} is {size} bytes, over the limit of {limit}"
            ),
            Error::BotApi {
                method,
                code: Some(code),
                description,
                ..
            } => write!(f, "Bot API {method} failed ({code}): {description}"),
            Error::BotApi {
                method,
                code: None,
                description,
                ..
            } => write!(f, "Bot API {method} failed: {description}"),
            Error::Missing(what) => write!(f, "this update has no {what}"),
            Error::NestedAccess(what) => write!(
                f,
                "{what} is already borrowed by an enclosing ctx.{what}(..) closure: return what \
                 you need from that closure and make this call after it"
            ),
            Error::Config(message) => write!(f, "configuration error: {message}"),
            Error::Invalid(message) => write!(f, "invalid input: {message}"),
            Error::TooManyEntries { limit } => write!(
                f,
                "the import holds more than {limit} entries, the limit of one import: import \
                 it in parts (a replace with the first, a merge with each other)"
            ),
            Error::Handler { update_id, error } => {
                write!(f, "handler failed on update {update_id}: {error}")
            }
            Error::Random(message) => write!(
                f,
                "the random source failed ({message}): no unpredictable id could be made"
            ),
            Error::AlreadyProcessed(id) => write!(f, "update {id} was already processed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Handler { error, .. } => Some(error.as_ref().as_ref()),
            _ => None,
        }
    }
}

/// Equality by value, as a derive would give; a handler's error (any `dyn Error`) compares by
/// its message, which is what [`Error::Handler`] held before it kept the error itself.
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        // Matching on `self` without a catch-all makes a new variant a compile error here.
        match self {
            Error::Storage {
                backend,
                operation,
                key,
                message,
            } => matches!(other, Error::Storage { backend: b, operation: o, key: k, message: m }
                if (backend, operation, key, message) == (b, o, k, m)),
            Error::Conflict { backend, key } => {
                matches!(other, Error::Conflict { backend: b, key: k } if (backend, key) == (b, k))
            }
            Error::Decode {
                backend,
                key,
                message,
            } => matches!(other, Error::Decode { backend: b, key: k, message: m }
                if (backend, key, message) == (b, k, m)),
            Error::Encode { key, message } => {
                matches!(other, Error::Encode { key: k, message: m } if (key, message) == (k, m))
            }
            Error::TooLarge {
                backend,
                key,
                what,
                size,
                limit,
            } => matches!(other, Error::TooLarge { backend: b, key: k, what: w, size: s, limit: l }
                if (backend, key, what, size, limit) == (b, k, w, s, l)),
            Error::BotApi {
                method,
                code,
                description,
                kind,
            } => matches!(other, Error::BotApi { method: m, code: c, description: d, kind: k }
                if (method, code, description, kind) == (m, c, d, k)),
            Error::Missing(what) => matches!(other, Error::Missing(w) if what == w),
            Error::NestedAccess(what) => matches!(other, Error::NestedAccess(w) if what == w),
            Error::Config(message) => matches!(other, Error::Config(m) if message == m),
            Error::Invalid(message) => matches!(other, Error::Invalid(m) if message == m),
            Error::TooManyEntries { limit } => {
                matches!(other, Error::TooManyEntries { limit: l } if limit == l)
            }
            Error::Handler { update_id, error } => {
                matches!(other, Error::Handler { update_id: u, error: e }
                    if update_id == u && error.to_string() == e.to_string())
            }
            Error::Random(message) => matches!(other, Error::Random(m) if message == m),
            Error::AlreadyProcessed(id) => matches!(other, Error::AlreadyProcessed(i) if id == i),
        }
    }
}

impl Eq for Error {}

/// The error a handler callback returns: any error type, boxed.
pub type HandlerError = Box<dyn std::error::Error>;

/// What a handler callback returns.
pub type HandlerResult = std::result::Result<(), HandlerError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_compare_and_set_is_a_conflict_that_names_the_key() {
        let conflict = Error::Conflict {
            backend: "durable_object",
            key: "chat_data:5".into(),
        };
        assert_eq!(
            conflict.to_string(),
            "durable_object storage: chat_data:5 changed concurrently; the update was not applied"
        );
    }

    #[test]
    fn handler_errors_compare_by_update_and_message() {
        let failed = |update_id, message: &str| Error::Handler {
            update_id,
            error: Rc::new(message.into()),
        };
        assert_eq!(failed(1, "boom"), failed(1, "boom"));
        assert_ne!(failed(1, "boom"), failed(2, "boom"));
        assert_ne!(failed(1, "boom"), failed(1, "bang"));
        assert_ne!(failed(1, "boom"), Error::Config("boom".into()));
    }
}
