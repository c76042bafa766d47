//! Property tests (many random cases, replayable from proptest's seed files): the key⇄path
//! codec and URL parsing never panic, and what they accept is safe and round-trips.

use std::path::Component;

use larder_store::key::{decode_url_key, key_to_relative_path};
use larder_store::S3Url;
use proptest::prelude::*;

/// Keys built from the pieces that make codecs fail: separators, dots, NUL, backslashes,
/// percent signs, non-ASCII.
fn nasty_key() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("/".to_owned()),
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("\\".to_owned()),
            Just("\0".to_owned()),
            Just("%2F".to_owned()),
            Just("é".to_owned()),
            Just(".larder-tmp.x".to_owned()),
            "[a-z0-9 _-]{1,8}",
            any::<String>(),
        ],
        0..8,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn keys_that_map_to_paths_stay_below_the_root_and_round_trip(key in nasty_key()) {
        if let Ok(path) = key_to_relative_path(&key) {
            prop_assert!(path.is_relative());
            prop_assert!(path.components().all(|c| matches!(c, Component::Normal(_))));
            let back: Vec<&str> = path.components().map(|c| c.as_os_str().to_str().unwrap()).collect();
            prop_assert_eq!(back.join("/"), key);
        }
    }

    #[test]
    fn url_encoded_keys_decode_or_are_refused(raw in any::<String>()) {
        let _ = decode_url_key(&raw);
    }

    #[test]
    fn s3_urls_parse_into_a_bucket_and_a_directory_prefix(tail in any::<String>()) {
        for url in [format!("s3://{tail}"), tail.clone()] {
            if let Ok(u) = S3Url::parse(&url) {
                prop_assert!(!u.bucket.is_empty());
                prop_assert!(!u.bucket.contains('/'));
                prop_assert!(u.prefix.is_empty() || u.prefix.ends_with('/'));
            }
        }
    }
}
