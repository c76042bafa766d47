//! Builder-style setters for option structs.
//!
//! The option structs of larder's crates are `#[non_exhaustive]`, so a new option is not a
//! breaking change; other crates build them from `Default` with these `with_*` methods:
//!
//! ```
//! use larder_store::PutOptions;
//!
//! let opts = PutOptions::default().with_content_type(Some("text/plain".into()));
//! assert_eq!(opts.content_type.as_deref(), Some("text/plain"));
//! ```

/// Writes a `with_FIELD(value) -> Self` method for each listed field of an option struct.
///
/// `larder_store::with_setters!(Type { with_a => a: A, with_b => b: B });`
#[macro_export]
#[doc(hidden)]
macro_rules! with_setters {
    ($ty:ident { $( $setter:ident => $field:ident : $t:ty ),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets [`", stringify!($field), "`](", stringify!($ty), "::",
                    stringify!($field), ").")]
                #[must_use]
                pub fn $setter(mut self, value: $t) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}
