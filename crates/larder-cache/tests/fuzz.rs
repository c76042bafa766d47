//! Property tests: index buckets of any bytes never make the parser panic, and what larder
//! writes reads back.

use larder_cache::index::{format_line, parse_bucket};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_bucket_text_parses_without_panicking(text in any::<String>()) {
        let _ = parse_bucket(&text);
    }

    #[test]
    fn torn_and_spliced_lines_are_dropped_not_misread(key in any::<String>(), cut in 0usize..200) {
        let json = serde_json::json!({"key": key, "integrity": "sha512-AAAA", "time": 1, "size": 1}).to_string();
        let line = format_line(&json);
        // Whole: one entry, the key intact.
        let whole = parse_bucket(&line);
        prop_assert_eq!(whole.len(), 1);
        prop_assert_eq!(&whole[0].key, &key);
        // Torn anywhere: nothing, or the same entry (never another key).
        let mut end = cut.min(line.len());
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        for l in parse_bucket(&line[..end]) {
            prop_assert_eq!(&l.key, &key);
        }
    }
}
