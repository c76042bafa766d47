//! Property tests: S3 event notifications of any shape never make the parser panic; the
//! error names the file.

use proptest::prelude::*;

fn jsonish() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("\"ObjectCreated:Put\"".to_owned()),
        Just("\"a%2Fb+c\"".to_owned()),
        Just("-1".to_owned()),
        Just("1e400".to_owned()),
        "\"[^\"\\\\]{0,12}\"",
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("Records"),
                        Just("s3"),
                        Just("object"),
                        Just("key"),
                        Just("size"),
                        Just("eTag"),
                        Just("sequencer"),
                        Just("eventName"),
                        Just("eventTime"),
                        Just("bucket"),
                        Just("name"),
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|v| format!(
                "{{{}}}",
                v.iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_text_parses_or_fails_naming_the_file(text in any::<String>()) {
        if let Err(e) = larder_index::events::parse("events.json", &text) {
            prop_assert!(e.to_string().contains("events.json"), "{}", e);
        }
    }

    #[test]
    fn event_shaped_json_parses_or_fails_naming_the_file(text in jsonish()) {
        if let Err(e) = larder_index::events::parse("events.json", &text) {
            prop_assert!(e.to_string().contains("events.json"), "{}", e);
        }
    }
}
