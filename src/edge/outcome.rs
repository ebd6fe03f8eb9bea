//! [`WebhookOutcome`]: what became of one webhook request, and the HTTP answer for it.
//!
//! Telegram resends every update that is not answered 2xx, so the status is the decision:
//! 200 for everything that is done with (handled, a duplicate, deliberately ignored), 4xx for
//! requests that are not updates, 5xx only when the update could not be handled durably.

use worker::Response;

use crate::application::Outcome;
use crate::attempts::Recurrence;
use crate::error::Error;
use crate::webhook::Rejection;

/// The header that summarises an outcome for tools and tests, e.g.
/// `handled=1; reads=1; puts=3; deletes=0` or `duplicate=1`.
pub const OUTCOME_HEADER: &str = "X-Edgegram-Outcome";

/// What became of one webhook request.
#[derive(Debug)]
pub enum WebhookOutcome {
    /// The Application ran and its changes are stored: 200.
    Processed(Box<Outcome>),
    /// The update id was already processed (a redelivery): 200, no handler ran.
    Duplicate(i64),
    /// A known update type whose content could not be typed: 200, logged, never retried
    /// (a 4xx would make Telegram resend it for ever).
    Ignored {
        /// The update's id.
        update_id: i64,
        /// Why it could not be typed.
        reason: String,
    },
    /// Not an update, or not from Telegram: 4xx.
    Rejected(Rejection),
    /// The update could not be handled durably: 500, so Telegram delivers it again.
    Failed {
        /// What kind of failure (all the caller is told).
        failure: Failure,
        /// Whether it can pass on a later delivery ([`crate::attempts`]).
        recurrence: Recurrence,
        /// The error as the log names it (backend, operation, key), for the dead-letter list.
        error: Option<String>,
    },
    /// The update failed in a way that will not pass, or too many times: 200 so that Telegram
    /// stops, and kept in the dead-letter list (`GET /admin/dead-letters`).
    DeadLettered(i64),
    /// The update's changes are stored, but a call it queued failed transiently and this
    /// host has no alarm to retry it (KV, D1, memory): 500, so that Telegram delivers the
    /// update again; the redelivery is a duplicate that sends the stored calls left
    /// ([`crate::outbox`]), nothing else.
    Unsent {
        /// The update's id.
        update_id: i64,
        /// Queued calls not sent yet.
        left: usize,
    },
}

/// Why an update could not be handled; only the kind is told to the caller, never stored data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A storage read or write failed.
    Storage,
    /// A stored value cannot be decoded (it is left untouched).
    Decode,
    /// A value is over the backend's limit.
    TooLarge,
    /// Another update changed the same entry first (compare-and-set lost).
    Conflict,
    /// A Bot API call failed under `OnHandlerError::Retry`, or while resolving the username.
    BotApi,
    /// The worker is not configured (a missing binding or token, an unknown setting): see its
    /// log.
    NotConfigured,
    /// `WEBHOOK_SECRET` is unset (and `ALLOW_INSECURE_WEBHOOK` is not `1`).
    SecretNotConfigured,
    /// Anything else.
    Internal,
}

impl Failure {
    /// The failure an error stands for.
    pub fn of(error: &Error) -> Self {
        match error {
            Error::Storage { .. } => Failure::Storage,
            Error::Decode { .. } => Failure::Decode,
            Error::TooLarge { .. } => Failure::TooLarge,
            Error::Conflict { .. } => Failure::Conflict,
            Error::BotApi { .. } => Failure::BotApi,
            Error::Config(_) => Failure::NotConfigured,
            _ => Failure::Internal,
        }
    }

    /// The answer's text.
    pub fn message(self) -> &'static str {
        match self {
            Failure::Storage => "update not handled: storage failed",
            Failure::Decode => "update not handled: a stored value cannot be decoded",
            Failure::TooLarge => "update not handled: a value is over the storage limit",
            Failure::Conflict => "update not handled: changed concurrently, deliver it again",
            Failure::BotApi => "update not handled: Bot API call failed",
            Failure::NotConfigured => "worker not configured (see its log)",
            Failure::SecretNotConfigured => "webhook secret not configured",
            Failure::Internal => "update not handled: internal error",
        }
    }
}

impl WebhookOutcome {
    /// A failure of the worker's setup (configuration, a binding): it passes once a person
    /// fixes it, so Telegram delivers the update again (up to the attempts' bound).
    pub fn failed(failure: Failure) -> Self {
        WebhookOutcome::Failed {
            failure,
            recurrence: Recurrence::Transient,
            error: None,
        }
    }

    /// The outcome of an Application's `process_update` result.
    pub fn of(result: crate::Result<Outcome>) -> Self {
        match result {
            Ok(outcome) => WebhookOutcome::Processed(Box::new(outcome)),
            Err(Error::AlreadyProcessed(id)) => WebhookOutcome::Duplicate(id),
            Err(error) => WebhookOutcome::Failed {
                failure: Failure::of(&error),
                recurrence: Recurrence::of(&error),
                error: Some(error.to_string()),
            },
        }
    }

    /// The HTTP status Telegram gets.
    pub fn status(&self) -> u16 {
        match self {
            WebhookOutcome::Processed(_)
            | WebhookOutcome::Duplicate(_)
            | WebhookOutcome::Ignored { .. }
            | WebhookOutcome::DeadLettered(_) => 200,
            WebhookOutcome::Rejected(rejection) => rejection.status(),
            WebhookOutcome::Failed { .. } | WebhookOutcome::Unsent { .. } => 500,
        }
    }

    /// The HTTP answer: status, a short text, [`OUTCOME_HEADER`] where there is a summary, and
    /// `Allow: POST` for a 405.
    pub fn into_response(self) -> worker::Result<Response> {
        let status = self.status();
        let (body, summary) = match &self {
            WebhookOutcome::Processed(outcome) => ("ok".to_string(), Some(summary(outcome))),
            WebhookOutcome::Duplicate(_) => ("duplicate".into(), Some("duplicate=1".into())),
            WebhookOutcome::Ignored { .. } => ("ignored".into(), None),
            WebhookOutcome::Rejected(rejection) => (rejection.message(), None),
            WebhookOutcome::Failed { failure, .. } => (failure.message().to_string(), None),
            WebhookOutcome::DeadLettered(_) => ("dead letter".into(), Some("dead-letter=1".into())),
            WebhookOutcome::Unsent { left, .. } => (
                "stored, a queued call is to be sent again".into(),
                Some(format!("unsent={left}")),
            ),
        };
        // WEBHOOK_REPLY: the update's first queued call, for Telegram to make.
        let reply = match &self {
            WebhookOutcome::Processed(outcome) => outcome.webhook_reply.as_ref(),
            _ => None,
        };
        let mut response = match reply {
            Some(call) => {
                let mut answer = match &call.params {
                    serde_json::Value::Object(params) => params.clone(),
                    _ => serde_json::Map::new(),
                };
                answer.insert("method".into(), call.method.clone().into());
                Response::from_json(&answer)?.with_status(status)
            }
            None => Response::ok(body)?.with_status(status),
        };
        if let Some(summary) = summary {
            response.headers_mut().set(OUTCOME_HEADER, &summary)?;
        }
        if matches!(self, WebhookOutcome::Rejected(Rejection::MethodNotAllowed)) {
            response.headers_mut().set("Allow", "POST")?;
        }
        Ok(response)
    }
}

/// `handled=1; reads=1; puts=3; deletes=0`, then for an update that queued calls
/// `; queued=<calls in the outbox>; sent=<calls Telegram accepted before the answer>`, and
/// `; webhook_reply=1` when the answer carries one.
fn summary(outcome: &Outcome) -> String {
    let mut summary = format!(
        "handled={}; reads={}; puts={}; deletes={}",
        u8::from(outcome.handled),
        outcome.reads,
        outcome.written().len(),
        outcome.deleted().len()
    );
    if let Some(outbox) = &outcome.outbox {
        let sent = outcome.delivery.as_ref().map_or(0, |d| d.sent());
        summary.push_str(&format!("; queued={}; sent={sent}", outbox.calls.len()));
    }
    if outcome.webhook_reply.is_some() {
        summary.push_str("; webhook_reply=1");
    }
    summary
}
