//! edgegram's error type: owned values only (no `JsValue`), each naming what failed where.

use std::fmt;
use std::rc::Rc;

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
    /// A Bot API call failed. Never contains the bot token.
    BotApi {
        /// The method called.
        method: String,
        /// Telegram's `error_code`, if it answered.
        code: Option<i64>,
        /// Telegram's description, or the transport error.
        description: String,
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
            } => write!(f, "Bot API {method} failed ({code}): {description}"),
            Error::BotApi {
                method,
                code: None,
                description,
            } => write!(f, "Bot API {method} failed: {description}"),
            Error::Missing(what) => write!(f, "this update has no {what}"),
            Error::NestedAccess(what) => write!(
                f,
                "{what} is already borrowed by an enclosing ctx.{what}(..) closure: return what \
                 you need from that closure and make this call after it"
            ),
            Error::Config(message) => write!(f, "configuration error: {message}"),
            Error::Invalid(message) => write!(f, "invalid input: {message}"),
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
            } => matches!(other, Error::BotApi { method: m, code: c, description: d }
                if (method, code, description) == (m, c, d)),
            Error::Missing(what) => matches!(other, Error::Missing(w) if what == w),
            Error::NestedAccess(what) => matches!(other, Error::NestedAccess(w) if what == w),
            Error::Config(message) => matches!(other, Error::Config(m) if message == m),
            Error::Invalid(message) => matches!(other, Error::Invalid(m) if message == m),
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
