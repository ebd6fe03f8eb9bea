//! The demo worker: its Application factory and the worker edgegram writes around it (the
//! `fetch` entry and the `EdgegramObject` Durable Object class the root wrangler.toml binds).

use std::time::Duration;

use edgegram::edge::Parts;
use edgegram::{Application, Result};

use crate::bot::{application_with, DemoOptions};

/// The demo's Application for one update, with `CONVERSATION_TIMEOUT_SECONDS` if set.
fn application(parts: Parts) -> Result<Application> {
    let options = DemoOptions {
        conversation_timeout: parts
            .var("CONVERSATION_TIMEOUT_SECONDS")
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs),
    };
    application_with(parts.builder(), &options)
}

edgegram::edge_worker!(application, EdgegramObject);
