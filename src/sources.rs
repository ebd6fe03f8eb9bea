//! The outside sources an update may read besides its data: the clock and randomness. Both
//! are replaceable ([`ApplicationBuilder::clock`](crate::ApplicationBuilder::clock),
//! [`ApplicationBuilder::random`](crate::ApplicationBuilder::random)) so that tests control
//! time and ids. Re-exported from [`crate::context`].

use std::rc::Rc;

/// The current time in milliseconds since the Unix epoch. Replaceable in tests
/// ([`ApplicationBuilder::clock`](crate::ApplicationBuilder::clock)).
pub type Clock = Rc<dyn Fn() -> i64>;

/// Fills a buffer with unpredictable bytes, or says why it cannot; makes the ids of arbitrary
/// callback data ([`ApplicationBuilder::random`](crate::ApplicationBuilder::random)). A source
/// that fails must answer `Err`: the buffer it leaves would make a guessable id, so what needed
/// the id fails instead ([`Error::Random`](crate::Error::Random)).
pub type RandomSource = Rc<dyn Fn(&mut [u8]) -> Result<(), String>>;

/// The real clock: `Date.now()` on wasm (where `SystemTime::now` panics), the system time
/// elsewhere.
pub fn system_clock() -> Clock {
    Rc::new(|| {
        #[cfg(target_arch = "wasm32")]
        {
            js_sys::Date::now() as i64
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        }
    })
}

/// The default random source. Natively: SipHash keyed by the operating system's randomness
/// (std's `RandomState`) over a counter, so ids cannot be guessed without that key; it cannot
/// fail. On wasm (where std has no randomness): the runtime's `crypto.getRandomValues`, or
/// `None` where there is no such function; a call that throws is an `Err` naming the
/// exception.
pub fn system_random() -> Option<RandomSource> {
    #[cfg(target_arch = "wasm32")]
    {
        use js_sys::{Function, Reflect, Uint8Array};
        use wasm_bindgen::JsCast;
        let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).ok()?;
        let get_random_values: Function = Reflect::get(&crypto, &"getRandomValues".into())
            .ok()?
            .dyn_into()
            .ok()?;
        Some(Rc::new(move |buf: &mut [u8]| -> Result<(), String> {
            // getRandomValues takes at most 65536 bytes a call.
            for chunk in buf.chunks_mut(65536) {
                let array = Uint8Array::new_with_length(chunk.len() as u32);
                get_random_values
                    .call1(&crypto, &array)
                    .map_err(|e| format!("crypto.getRandomValues threw {e:?}"))?;
                array.copy_to(chunk);
            }
            Ok(())
        }))
    }

    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::cell::Cell;
        use std::hash::{BuildHasher, Hasher};
        let keys = std::collections::hash_map::RandomState::new();
        let counter = Cell::new(0u64);
        Some(Rc::new(move |buf: &mut [u8]| -> Result<(), String> {
            for chunk in buf.chunks_mut(8) {
                let mut hasher = keys.build_hasher();
                hasher.write_u64(counter.get());
                counter.set(counter.get().wrapping_add(1));
                let bytes = hasher.finish().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
            Ok(())
        }))
    }
}
