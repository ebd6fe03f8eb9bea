//! [`FetchBot`]: Bot API calls as JSON POSTs to `{base}/bot{token}/{method}`.

use futures::future::LocalBoxFuture;
use serde_json::Value;
use worker::{Fetch, Method};

use super::http::json_request;

use crate::bot::{parse_response, BotApi};
use crate::error::{BotApiErrorKind, Error, Result};

/// The Bot API over `fetch`. The token is kept out of every error: URLs contain it, and
/// runtime errors may quote URLs (percent-encoded too), so messages are redacted
/// ([`crate::bot::redact`]) before they leave.
pub struct FetchBot {
    base: String,
    token: String,
}

impl FetchBot {
    /// Calls go to `{base}/bot{token}/{method}`; `base` is e.g. `https://api.telegram.org`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_string(),
            token: token.into(),
        }
    }

    fn redact(&self, text: String) -> String {
        crate::bot::redact(&text, &self.token)
    }

    async fn send(&self, method: &str, params: Value) -> Result<Value> {
        let fail = |kind: BotApiErrorKind, description: String| Error::BotApi {
            method: method.to_string(),
            code: None,
            description: self.redact(description),
            kind,
        };
        let url = format!("{}/bot{}/{}", self.base, self.token, method);
        let request = json_request(&url, Method::Post, Some(params.to_string()))
            .map_err(|e| fail(BotApiErrorKind::Unsendable, e.to_string()))?;
        // No answer, or an answer cut off: the network failed.
        let mut response = Fetch::Request(request)
            .send()
            .await
            .map_err(|e| fail(BotApiErrorKind::Network, e.to_string()))?;
        let body = response
            .bytes()
            .await
            .map_err(|e| fail(BotApiErrorKind::Network, e.to_string()))?;
        parse_response(method, response.status_code(), &body).map_err(|e| match e {
            Error::BotApi {
                method,
                code,
                description,
                kind,
            } => Error::BotApi {
                method,
                code,
                description: self.redact(description),
                kind,
            },
            other => other,
        })
    }
}

impl BotApi for FetchBot {
    fn call<'a>(&'a self, method: &'a str, params: Value) -> LocalBoxFuture<'a, Result<Value>> {
        Box::pin(self.send(method, params))
    }
}
