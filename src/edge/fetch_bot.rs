//! [`FetchBot`]: Bot API calls as POSTs to `{base}/bot{token}/{method}`: JSON, or
//! `multipart/form-data` when the call uploads a file ([`crate::api::input_file`]).

use std::time::Duration;

use futures::future::{select, Either, LocalBoxFuture};
use serde_json::Value;
use worker::{AbortController, Delay, Fetch, Method, Request, RequestInit};

use super::http::json_request;
use crate::api::input_file::Multipart;

use crate::bot::{parse_response, BotApi};
use crate::error::{BotApiErrorKind, Error, Result};

/// The Bot API over `fetch`. The token is kept out of every error: URLs contain it, and
/// runtime errors may quote URLs (percent-encoded too), so messages are redacted
/// ([`crate::bot::redact`]) before they leave.
pub struct FetchBot {
    base: String,
    token: String,
    timeout: Duration,
}

/// How long a call may take by default before it fails as a network error.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl FetchBot {
    /// Calls go to `{base}/bot{token}/{method}`; `base` is e.g. `https://api.telegram.org`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_string(),
            token: token.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Calls that get no whole answer within `timeout` are abandoned (the request aborted) and
    /// fail as network errors: a stalled Bot API must not hold a Durable Object's gate, and so
    /// every other chat of the object, for as long as the connection hangs.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn redact(&self, text: String) -> String {
        crate::bot::redact(&text, &self.token)
    }

    async fn send(&self, method: &str, mut params: Value) -> Result<Value> {
        let fail = |kind: BotApiErrorKind, description: String| Error::BotApi {
            method: method.to_string(),
            code: None,
            description: self.redact(description),
            kind,
        };
        let url = format!("{}/bot{}/{}", self.base, self.token, method);
        let request = match Multipart::take(method, &mut params) {
            None => json_request(&url, Method::Post, Some(params.to_string())),
            Some(form) => form_request(&url, &form?),
        }
        .map_err(|e| fail(BotApiErrorKind::Unsendable, e.to_string()))?;
        let controller = AbortController::default();
        let signal = controller.signal();
        // No answer, or an answer cut off: the network failed.
        let call = Box::pin(async {
            let mut response = Fetch::Request(request)
                .send_with_signal(&signal)
                .await
                .map_err(|e| fail(BotApiErrorKind::Network, e.to_string()))?;
            let body = response
                .bytes()
                .await
                .map_err(|e| fail(BotApiErrorKind::Network, e.to_string()))?;
            Ok((response.status_code(), body))
        });
        let timer = Box::pin(Delay::from(self.timeout));
        let (status, body) = match select(call, timer).await {
            Either::Left((answer, _)) => answer?,
            Either::Right(((), _)) => {
                controller.abort();
                let waited = self.timeout.as_millis();
                let message = format!("no answer within {waited} ms (timed out)");
                return Err(fail(BotApiErrorKind::Network, message));
            }
        };
        parse_response(method, status, &body).map_err(|e| match e {
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

/// A POST of `form` as `multipart/form-data` (the runtime writes the boundary and the
/// content type).
fn form_request(url: &str, form: &Multipart) -> worker::Result<Request> {
    let data = worker::web_sys::FormData::new()?;
    for (name, text) in &form.fields {
        data.append_with_str(name, text)?;
    }
    for (name, upload) in &form.files {
        let bytes = js_sys::Array::of1(&js_sys::Uint8Array::from(upload.bytes.as_slice()));
        let blob = worker::web_sys::Blob::new_with_u8_array_sequence(&bytes)?;
        data.append_with_blob_and_filename(name, &blob, &upload.filename)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(data.into()));
    Request::new_with_init(url, &init)
}

impl BotApi for FetchBot {
    fn call<'a>(&'a self, method: &'a str, params: Value) -> LocalBoxFuture<'a, Result<Value>> {
        Box::pin(self.send(method, params))
    }
}
