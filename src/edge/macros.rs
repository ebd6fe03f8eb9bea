//! The macros that write a worker's exports: wasm-bindgen exports cannot be generic, so the
//! `fetch` entry and the Durable Object class are written into the user's crate, where the
//! Application factory is known. Both expand to a few lines that call [`super::serve`] and
//! [`super::ObjectHost`]; everything else stays in the library.
//!
//! The crate that uses them depends on `worker` (the expansions name `::worker`), as every
//! workers-rs crate does.

/// Writes a whole worker around an Application factory: the `fetch` entry ([`edge::serve`]),
/// the panic hook, and the Durable Object class named `$object`
/// ([`durable_object_class!`](crate::durable_object_class)), which wrangler.toml binds as
/// `EDGEGRAM_DO` with `class_name = "$object"`.
///
/// ```ignore
/// fn application(parts: edgegram::edge::Parts) -> edgegram::Result<edgegram::Application> {
///     parts.builder().handler(CommandHandler::new("start", start)).build()
/// }
/// edgegram::edge_worker!(application, BotObject);
/// ```
///
/// [`edge::serve`]: crate::edge::serve
#[macro_export]
macro_rules! edge_worker {
    ($build:path, $object:ident) => {
        #[::worker::event(start)]
        fn edgegram_start() {
            $crate::edge::install_panic_hook();
        }

        #[::worker::event(fetch)]
        async fn edgegram_fetch(
            req: ::worker::Request,
            env: ::worker::Env,
            _ctx: ::worker::Context,
        ) -> ::worker::Result<::worker::Response> {
            $crate::edge::serve(req, env, $build).await
        }

        $crate::durable_object_class!($object, $build);
    };
}

/// Writes a Durable Object class named `$object` whose objects run updates with the
/// Application factory `$build`, through [`ObjectHost`](crate::edge::ObjectHost). For workers
/// that write their own `fetch` entry (routes of their own, then [`serve`](crate::edge::serve)
/// for the rest).
#[macro_export]
macro_rules! durable_object_class {
    ($object:ident, $build:path) => {
        /// The worker's Durable Object class: edgegram's object host around this worker's
        /// Application (one update at a time, each update id once, alarms).
        #[::worker::durable_object]
        pub struct $object {
            host: $crate::edge::ObjectHost,
        }

        impl ::worker::DurableObject for $object {
            fn new(state: ::worker::State, env: ::worker::Env) -> Self {
                Self {
                    host: $crate::edge::ObjectHost::new(state, env),
                }
            }

            async fn fetch(&self, req: ::worker::Request) -> ::worker::Result<::worker::Response> {
                self.host.fetch(req, $build).await
            }

            async fn alarm(&self) -> ::worker::Result<::worker::Response> {
                self.host.alarm($build).await
            }
        }
    };
}
