//! [`Settings`]: a worker's vars and secrets, parsed once per request into types, so that no
//! decision compares strings again further down.
//!
//! | name | kind | meaning |
//! | --- | --- | --- |
//! | `PERSISTENCE` | var | `durable_object` (default), `d1`, `kv` or `memory` ([`Backend`]) |
//! | `DO_ROUTING` | var | `bot` (default) or `chat` ([`Routing`]) |
//! | `KV_PREFIX` | var | key prefix in KV, default `eg1:` |
//! | `BOT_TOKEN` | secret | the bot's token |
//! | `TELEGRAM_API_BASE` | var | default `https://api.telegram.org` |
//! | `WEBHOOK_SECRET` | secret | Telegram's `secret_token`; required unless `ALLOW_INSECURE_WEBHOOK=1` |
//! | `ADMIN_TOKEN` | secret | enables the admin routes; unset, they answer 404 |
//! | `BOT_USERNAME` | var | saves one `getMe` per isolate for `/cmd@username` |
//! | `PROCESSED_UPDATE_TTL_SECONDS` | var | how long an update id is remembered as processed, default 86400 |
//! | `BOT_API_TIMEOUT_SECONDS` | var | how long a Bot API call may take, default 10 |
//! | `MAX_UPDATE_ATTEMPTS` | var | deliveries of an update that may fail transiently before it is dead-lettered, default 5 |
//! | `DEV_RECORD_BOT_API` | var | `1`: record Bot API calls instead of sending them (feature `dev-bot-api`, local development only) |

use worker::Env;

use crate::attempts::DEFAULT_MAX_ATTEMPTS;
use crate::persistence::DEFAULT_PREFIX;

/// Where the bot's data lives (`PERSISTENCE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// Durable Objects (the default): the Application runs inside an object, one update at a
    /// time, each update id once.
    DurableObject(Routing),
    /// Workers KV under a key prefix: eventually consistent, no transactions (README).
    Kv {
        /// The key prefix (`KV_PREFIX`, default `eg1:`).
        prefix: String,
    },
    /// Cloudflare D1 (binding `EDGEGRAM_D1`): SQL tables other services can query; each
    /// update's write is one transaction, compared against the revisions it read (README).
    D1,
    /// The isolate's memory: lost with the isolate. Tests only.
    Memory,
}

/// Which Durable Object handles an update (`DO_ROUTING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// One object holds everything (the default).
    Bot,
    /// One object per chat; bot_data and user_data in one home object.
    Chat,
}

/// When a Durable Object sends the Bot API calls an update queued (`SEND_QUEUED_CALLS`). Either
/// way they go out after the commit, outside the object's gate, each chat's in commit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendQueued {
    /// `before_answer` (the default): the webhook is answered once they are sent (or stored
    /// for a retry), so its 200 means "stored and sent"; an update's latency includes its
    /// calls, and those of its chat's earlier updates still on their way.
    BeforeAnswer,
    /// `after_answer`: the webhook is answered at the commit and the calls go out after it
    /// (the object's alarm sends them if the isolate ends first). Telegram can send the next
    /// update sooner; the answer no longer says that the calls went out.
    AfterAnswer,
}

/// Where Bot API calls go. Its `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub enum BotTarget {
    /// `{base}/bot{token}/{method}`.
    Telegram {
        /// `TELEGRAM_API_BASE`.
        base: String,
        /// `BOT_TOKEN`; `None` when unset (updates then fail with a logged configuration error).
        token: Option<String>,
    },
    /// Recorded in the `devlog` object and answered as Telegram would (`DEV_RECORD_BOT_API=1`,
    /// feature `dev-bot-api`). Never in a deploy: the bot would answer nobody.
    DevRecorder,
}

impl std::fmt::Debug for BotTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BotTarget::Telegram { base, token } => f
                .debug_struct("Telegram")
                .field("base", base)
                .field("token", &token.as_ref().map(|_| "<set>"))
                .finish(),
            BotTarget::DevRecorder => f.write_str("DevRecorder"),
        }
    }
}

/// How the webhook checks Telegram's secret header. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum WebhookAuth {
    /// The header must equal this (`WEBHOOK_SECRET`), compared in constant time.
    Secret(String),
    /// No secret configured and `ALLOW_INSECURE_WEBHOOK=1`: every request is accepted (local
    /// development only).
    Insecure,
    /// No secret configured: webhooks are refused with 500 and a log line.
    Unconfigured,
}

impl std::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WebhookAuth::Secret(_) => "Secret(<set>)",
            WebhookAuth::Insecure => "Insecure",
            WebhookAuth::Unconfigured => "Unconfigured",
        })
    }
}

/// A worker's settings, parsed from its vars and secrets. Its `Debug` shows no secret
/// (`admin_token` is shown as set or not).
#[derive(Clone)]
pub struct Settings {
    /// `PERSISTENCE` and its details.
    pub backend: Backend,
    /// Where Bot API calls go.
    pub bot: BotTarget,
    /// The webhook's secret check.
    pub webhook: WebhookAuth,
    /// `ADMIN_TOKEN`: the admin routes exist only when it is set.
    pub admin_token: Option<String>,
    /// `BOT_USERNAME`, without `@`.
    pub bot_username: Option<String>,
    /// How long a processed update id is remembered (`PROCESSED_UPDATE_TTL_SECONDS`, default
    /// 24 hours, Telegram's limit for keeping an update).
    pub processed_window_ms: i64,
    /// How long a Bot API call may take before it fails as a network error
    /// (`BOT_API_TIMEOUT_SECONDS`, default 10).
    pub bot_api_timeout_ms: u64,
    /// Deliveries of one update that may fail transiently before it is acknowledged and
    /// dead-lettered (`MAX_UPDATE_ATTEMPTS`, default [`DEFAULT_MAX_ATTEMPTS`]).
    pub max_attempts: u32,
    /// When a Durable Object sends queued calls (`SEND_QUEUED_CALLS`).
    pub send_queued: SendQueued,
    /// `WEBHOOK_REPLY=1`: each update's first queued call is the webhook's answer, which
    /// Telegram makes ([`crate::ApplicationBuilder::webhook_reply`]).
    pub webhook_reply: bool,
}

/// A setting that cannot be used, named with what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError(pub String);

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("backend", &self.backend)
            .field("bot", &self.bot)
            .field("webhook", &self.webhook)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("bot_username", &self.bot_username)
            .field("processed_window_ms", &self.processed_window_ms)
            .field("bot_api_timeout_ms", &self.bot_api_timeout_ms)
            .field("max_attempts", &self.max_attempts)
            .field("send_queued", &self.send_queued)
            .field("webhook_reply", &self.webhook_reply)
            .finish()
    }
}

impl Settings {
    /// Parses the settings of `env`. An unknown `PERSISTENCE` or `DO_ROUTING` is an error that
    /// names the accepted values.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        Self::from_lookup(|name| setting(env, name))
    }

    /// Parses settings from any lookup of names (tests, other hosts).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let routing = match get("DO_ROUTING").as_deref() {
            None | Some("bot") => Routing::Bot,
            Some("chat") => Routing::Chat,
            Some(other) => {
                return Err(SettingError(format!(
                    "unknown DO_ROUTING {other:?}: use bot or chat"
                )))
            }
        };
        let backend = match get("PERSISTENCE").as_deref() {
            None | Some("durable_object") => Backend::DurableObject(routing),
            Some("kv") => Backend::Kv {
                prefix: get("KV_PREFIX").unwrap_or_else(|| DEFAULT_PREFIX.into()),
            },
            Some("d1") => Backend::D1,
            Some("memory") => Backend::Memory,
            Some(other) => {
                return Err(SettingError(format!(
                    "unknown PERSISTENCE {other:?}: use durable_object, d1, kv or memory"
                )))
            }
        };
        let bot = if get("DEV_RECORD_BOT_API").as_deref() == Some("1") {
            BotTarget::DevRecorder
        } else {
            BotTarget::Telegram {
                base: get("TELEGRAM_API_BASE")
                    .unwrap_or_else(|| "https://api.telegram.org".into())
                    .trim_end_matches('/')
                    .to_string(),
                token: get("BOT_TOKEN"),
            }
        };
        let webhook = match get("WEBHOOK_SECRET") {
            Some(secret) => WebhookAuth::Secret(secret),
            None if get("ALLOW_INSECURE_WEBHOOK").as_deref() == Some("1") => WebhookAuth::Insecure,
            None => WebhookAuth::Unconfigured,
        };
        // A duration in seconds (fractions allowed), as milliseconds.
        let millis = |name: &str, default_seconds: u64| -> Result<u64, SettingError> {
            let Some(text) = get(name) else {
                return Ok(default_seconds * 1000);
            };
            match text.parse::<f64>() {
                Ok(value) if value > 0.0 && value.is_finite() => {
                    Ok((value * 1000.0).round() as u64)
                }
                _ => Err(SettingError(format!(
                    "{name} {text:?} is not a positive number of seconds"
                ))),
            }
        };
        let max_attempts = match get("MAX_UPDATE_ATTEMPTS") {
            None => DEFAULT_MAX_ATTEMPTS,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(SettingError(format!(
                        "MAX_UPDATE_ATTEMPTS {text:?} is not a whole number of at least 1"
                    )))
                }
            },
        };
        let send_queued = match get("SEND_QUEUED_CALLS").as_deref() {
            None | Some("before_answer") => SendQueued::BeforeAnswer,
            Some("after_answer") => SendQueued::AfterAnswer,
            Some(other) => {
                return Err(SettingError(format!(
                    "unknown SEND_QUEUED_CALLS {other:?}: use before_answer or after_answer"
                )))
            }
        };
        let webhook_reply = match get("WEBHOOK_REPLY").as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(SettingError(format!(
                    "WEBHOOK_REPLY {other:?}: use 1 (on) or 0 (off, the default)"
                )))
            }
        };
        Ok(Self {
            webhook_reply,
            send_queued,
            max_attempts,
            processed_window_ms: millis("PROCESSED_UPDATE_TTL_SECONDS", 24 * 60 * 60)? as i64,
            bot_api_timeout_ms: millis("BOT_API_TIMEOUT_SECONDS", 10)?,
            backend,
            bot,
            webhook,
            admin_token: get("ADMIN_TOKEN"),
            bot_username: get("BOT_USERNAME").map(|u| u.trim_start_matches('@').to_string()),
        })
    }

    /// The Durable Object routing, when the backend is Durable Objects.
    pub fn routing(&self) -> Option<Routing> {
        match self.backend {
            Backend::DurableObject(routing) => Some(routing),
            _ => None,
        }
    }

    /// Whether Bot API calls are recorded instead of sent (`DEV_RECORD_BOT_API=1`).
    pub fn dev_recording(&self) -> bool {
        self.bot == BotTarget::DevRecorder
    }
}

impl Backend {
    /// The name `PERSISTENCE` gives it.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::DurableObject(_) => "durable_object",
            Backend::Kv { .. } => "kv",
            Backend::D1 => "d1",
            Backend::Memory => "memory",
        }
    }
}

impl Routing {
    /// The name `DO_ROUTING` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Routing::Bot => "bot",
            Routing::Chat => "chat",
        }
    }
}

/// A var or secret of `env`, `None` when unset or empty.
pub fn setting(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .ok()
        .or_else(|| env.secret(name).map(|s| s.to_string()).ok())
        .filter(|v| !v.is_empty())
}
