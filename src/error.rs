//! edgegram's error type: owned values only (no `JsValue`), each naming what failed where.

use std::fmt;

/// `Result` with edgegram's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. Storage errors name the backend, the operation and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The application or a handler is configured wrongly; the message says how to fix it.
    Config(String),
    /// An input document (import, webhook body) is invalid; the message names the bad path.
    Invalid(String),
    /// A handler failed and the application is set to have the update delivered again
    /// ([`OnHandlerError::Retry`](crate::OnHandlerError::Retry)).
    Handler(String),
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
            Error::Config(message) => write!(f, "configuration error: {message}"),
            Error::Invalid(message) => write!(f, "invalid input: {message}"),
            Error::Handler(message) => write!(f, "handler failed: {message}"),
            Error::AlreadyProcessed(id) => write!(f, "update {id} was already processed"),
        }
    }
}

impl std::error::Error for Error {}

/// The error a handler callback returns: any error type, boxed.
pub type HandlerError = Box<dyn std::error::Error>;

/// What a handler callback returns.
pub type HandlerResult = std::result::Result<(), HandlerError>;
