//! What the generated views ([`super::views`]) are made of: reading one field of a JSON value
//! as a Rust type ([`FromJson`]), and lists ([`List`]).
//!
//! A view is a `Copy` wrapper of a `&Value`. Nothing is parsed until an accessor is called,
//! and each accessor is a one-line call of [`field`] or [`field_or_default`], generic over the
//! few answer types: so a bot pays in its `.wasm` only for the accessors it calls.

use std::marker::PhantomData;

use serde_json::Value;

/// A Rust value read from one JSON value, or `None` when the JSON has another shape.
pub trait FromJson<'a>: Sized {
    /// `value` as `Self`, if it has `Self`'s shape.
    fn from_json(value: &'a Value) -> Option<Self>;
}

impl<'a> FromJson<'a> for i64 {
    fn from_json(value: &'a Value) -> Option<Self> {
        value.as_i64()
    }
}

impl<'a> FromJson<'a> for f64 {
    fn from_json(value: &'a Value) -> Option<Self> {
        value.as_f64()
    }
}

impl<'a> FromJson<'a> for bool {
    fn from_json(value: &'a Value) -> Option<Self> {
        value.as_bool()
    }
}

impl<'a> FromJson<'a> for &'a str {
    fn from_json(value: &'a Value) -> Option<Self> {
        value.as_str()
    }
}

impl<'a> FromJson<'a> for &'a Value {
    fn from_json(value: &'a Value) -> Option<Self> {
        Some(value)
    }
}

/// The field `key` of `value`, if present with the expected shape.
#[inline]
pub fn field<'a, T: FromJson<'a>>(value: &'a Value, key: &str) -> Option<T> {
    value.get(key).and_then(T::from_json)
}

/// A required field: a value without it (or with another shape) reads as `T`'s default
/// (0, `""`, `false`, an empty list, a view of `null`), so a handler never panics on a
/// malformed update.
#[inline]
pub fn field_or_default<'a, T: FromJson<'a> + Default>(value: &'a Value, key: &str) -> T {
    field(value, key).unwrap_or_default()
}

/// A JSON array read as a list of `T`: Telegram's `Array of T`. Elements of another shape are
/// skipped by [`List::iter`] and answer `None` from [`List::get`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct List<'a, T> {
    items: &'a [Value],
    of: PhantomData<T>,
}

impl<T> Default for List<'_, T> {
    fn default() -> Self {
        Self {
            items: &[],
            of: PhantomData,
        }
    }
}

impl<'a, T: FromJson<'a>> FromJson<'a> for List<'a, T> {
    fn from_json(value: &'a Value) -> Option<Self> {
        Some(Self {
            items: value.as_array()?,
            of: PhantomData,
        })
    }
}

impl<'a, T: FromJson<'a> + 'a> List<'a, T> {
    /// How many elements the array has.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the array is empty (or was missing).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The element at `index`.
    pub fn get(&self, index: usize) -> Option<T> {
        self.items.get(index).and_then(T::from_json)
    }

    /// The last element (e.g. the largest size of a photo).
    pub fn last(&self) -> Option<T> {
        self.items.last().and_then(T::from_json)
    }

    /// The elements in order.
    pub fn iter(&self) -> impl Iterator<Item = T> + 'a {
        self.items.iter().filter_map(T::from_json)
    }

    /// The JSON elements.
    pub fn raw(&self) -> &'a [Value] {
        self.items
    }
}
