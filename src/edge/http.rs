//! Reading a webhook request: the checks of [`crate::webhook`] applied to a worker request,
//! the body read in chunks so that an oversized one is refused without reading past the limit.

use futures::StreamExt;
use worker::{Headers, Method, Request, RequestInit};

use crate::webhook::{
    check_content_type, parse_body, secret_matches, Incoming, Rejection, MAX_BODY_BYTES,
    SECRET_HEADER,
};

/// Checks method, secret (unless `None`: insecure local mode), content type and size, reads
/// the body and parses it. Answers the body too, to be forwarded as it came.
pub async fn read_update(
    req: &mut Request,
    secret: Option<&str>,
) -> Result<(Incoming, Vec<u8>), Rejection> {
    if req.method() != Method::Post {
        return Err(Rejection::MethodNotAllowed);
    }
    let headers = req.headers();
    if let Some(secret) = secret {
        let given = headers.get(SECRET_HEADER).ok().flatten();
        if !secret_matches(secret, given.as_deref()) {
            return Err(Rejection::Unauthorized);
        }
    }
    check_content_type(headers.get("Content-Type").ok().flatten().as_deref())?;
    let body = read_body(req, MAX_BODY_BYTES).await?;
    let incoming = parse_body(&body)?;
    Ok((incoming, body))
}

/// Reads at most `limit` bytes of body; 413 as soon as the declared or read size is over.
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, Rejection> {
    let declared = req
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|l| l > limit) {
        return Err(Rejection::TooLarge { limit });
    }
    let mut stream = match req.stream() {
        Ok(stream) => stream,
        // No body at all.
        Err(_) => return Ok(Vec::new()),
    };
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Rejection::BadRequest(format!("body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(Rejection::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request with a JSON body (or none): Bot API calls, and calls between the worker and its
/// Durable Objects.
pub fn json_request(url: &str, method: Method, body: Option<String>) -> worker::Result<Request> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(body) = body {
        init.with_body(Some(body.into()));
    }
    Request::new_with_init(url, &init)
}

/// The value of a query parameter of `req`'s URL.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    let url = req.url().ok()?;
    let value = url.query_pairs().find(|(k, _)| k == name)?.1;
    Some(value.into_owned())
}
