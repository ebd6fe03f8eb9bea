//! Bounded attempts: whether Telegram should deliver a failed update again, or whether the
//! update is done with — acknowledged, and kept in the dead-letter list for a person to read.
//!
//! Telegram redelivers an update that is not answered 2xx for up to 24 hours. That is right
//! for a failure that can pass (a storage hiccup, a Bot API call that timed out) and wrong for
//! one that cannot (a value over the storage limit, an entry that does
//! not decode, a handler that fails the same way every time): those would hold the update's
//! chat for a day and fill the log. So a deterministic failure is dead-lettered at once, and a
//! transient one after [`DEFAULT_MAX_ATTEMPTS`] deliveries (counted with the update's id). A
//! lost compare-and-set is neither: contention, never counted, never dead-lettered.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Deliveries of one update that may fail transiently before it is dead-lettered.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Whether a failure can pass on a later delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recurrence {
    /// It lost a compare-and-set to another update: not a failure of its own, and every
    /// round of contention lets one update through. Delivered again without being counted,
    /// so contention never dead-letters an update.
    Contention,
    /// It may pass: storage, the network, the configuration.
    Transient,
    /// It will fail the same way every time: the update's data or the bot's code.
    Deterministic,
}

impl Recurrence {
    /// How `error`, which failed an update, behaves on a later delivery.
    pub fn of(error: &Error) -> Self {
        match error {
            Error::Conflict { .. } => Recurrence::Contention,
            Error::Storage { .. } | Error::Random(_) => Recurrence::Transient,
            Error::BotApi { kind, .. } if kind.is_transient() => Recurrence::Transient,
            // A configuration is fixed by a person, who may take a while: deliveries go on
            // up to the bound.
            Error::Config(_) => Recurrence::Transient,
            Error::Handler { error, .. } => match (**error).downcast_ref::<Error>() {
                Some(inner) => Recurrence::of(inner),
                None => Recurrence::Deterministic,
            },
            _ => Recurrence::Deterministic,
        }
    }
}

/// What becomes of an update whose delivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer 5xx: Telegram delivers it again.
    DeliverAgain,
    /// Answer 200 and keep it in the dead-letter list.
    DeadLetter,
}

/// The verdict for the `attempt`-th delivery (1-based) that failed with `recurrence`, with at
/// most `max_attempts` deliveries (at least 1).
pub fn verdict(recurrence: Recurrence, attempt: u32, max_attempts: u32) -> Verdict {
    match recurrence {
        Recurrence::Contention => Verdict::DeliverAgain,
        Recurrence::Deterministic => Verdict::DeadLetter,
        Recurrence::Transient if attempt >= max_attempts.max(1) => Verdict::DeadLetter,
        Recurrence::Transient => Verdict::DeliverAgain,
    }
}

/// One entry of the dead-letter list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The update's id.
    pub update_id: i64,
    /// When it was dead-lettered, ms since the epoch.
    pub at_ms: i64,
    /// Deliveries that failed.
    pub attempts: u32,
    /// Whether its last failure could have passed.
    pub recurrence: Recurrence,
    /// The last failure, as the log names it (backend, operation, key; never a secret).
    pub error: String,
    /// The update as Telegram sent it.
    pub update: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BotApiErrorKind;

    fn bot_api(kind: BotApiErrorKind) -> Error {
        Error::BotApi {
            method: "sendMessage".into(),
            code: None,
            description: "x".into(),
            kind,
        }
    }

    #[test]
    fn storage_conflicts_and_the_network_pass_the_data_and_the_code_do_not() {
        let transient = [
            Error::Storage {
                backend: "kv",
                operation: "read",
                key: "eg1:bot".into(),
                message: "timeout".into(),
            },
            bot_api(BotApiErrorKind::Network),
            bot_api(BotApiErrorKind::RetryAfter(3)),
            bot_api(BotApiErrorKind::Server),
            Error::Config("BOT_TOKEN is not set".into()),
        ];
        for error in &transient {
            assert_eq!(Recurrence::of(error), Recurrence::Transient, "{error}");
        }
        let deterministic = [
            Error::TooLarge {
                backend: "durable_object",
                key: "eg1:chat:1".into(),
                what: "key + value",
                size: 3_000_000,
                limit: 2_000_000,
            },
            Error::Invalid("bad".into()),
            Error::NestedAccess("chat_data"),
            bot_api(BotApiErrorKind::Forbidden),
            bot_api(BotApiErrorKind::BadRequest),
        ];
        for error in &deterministic {
            assert_eq!(Recurrence::of(error), Recurrence::Deterministic, "{error}");
        }
        let conflict = Error::Conflict {
            backend: "durable_object",
            key: "eg1:bot".into(),
        };
        assert_eq!(Recurrence::of(&conflict), Recurrence::Contention);
    }

    #[test]
    fn contention_is_never_dead_lettered() {
        for attempt in [1, 5, 1000] {
            assert_eq!(
                verdict(Recurrence::Contention, attempt, 5),
                Verdict::DeliverAgain
            );
        }
    }

    #[test]
    fn a_transient_failure_is_delivered_again_up_to_the_bound_then_dead_lettered() {
        let verdicts: Vec<Verdict> = (1..=4)
            .map(|attempt| verdict(Recurrence::Transient, attempt, 3))
            .collect();
        assert_eq!(
            verdicts,
            [
                Verdict::DeliverAgain,
                Verdict::DeliverAgain,
                Verdict::DeadLetter,
                Verdict::DeadLetter
            ]
        );
        assert_eq!(
            verdict(Recurrence::Deterministic, 1, 3),
            Verdict::DeadLetter
        );
        assert_eq!(verdict(Recurrence::Transient, 1, 0), Verdict::DeadLetter);
    }
}
