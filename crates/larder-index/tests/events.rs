//! S3 event ingestion: every container S3 events really arrive in, out-of-order delivery,
//! sequencers of different lengths, duplicates, `.larder/` keys, another bucket, test events.

use larder_index::events::parse;
use larder_index::{Index, IndexSource, Policy, Strategy, Vault};

fn record(name: &str, bucket: &str, key: &str, size: u64, seq: &str) -> String {
    format!(
        r#"{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
            "eventTime":"2024-03-01T12:00:00.000Z","eventName":"{name}",
            "s3":{{"s3SchemaVersion":"1.0","configurationId":"c",
                   "bucket":{{"name":"{bucket}","arn":"arn:aws:s3:::{bucket}"}},
                   "object":{{"key":"{key}","size":{size},"eTag":"0123456789abcdef0123456789abcdef","sequencer":"{seq}"}}}}}}"#
    )
}

fn message(records: &[String]) -> String {
    format!(r#"{{"Records":[{}]}}"#, records.join(","))
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn index() -> Index {
    let mut ix = Index::in_memory();
    ix.add_vault(&Vault {
        name: "v".into(),
        local_dir: "/tmp/v".into(),
        remote: "s3://bkt/site/".into(),
        strategy: Strategy::Mirror,
        policy: Policy::default(),
    })
    .unwrap();
    // Indexed once before, so events move the index's time.
    ix.replace_objects("v", IndexSource::Reconcile, Vec::new(), None)
        .unwrap();
    ix
}

fn keys(ix: &Index) -> Vec<(String, u64)> {
    ix.objects("v")
        .map(|r| r.unwrap())
        .map(|r| (r.key, r.size))
        .collect()
}

#[test]
fn every_container_is_read() {
    let put = |k: &str, seq: &str| record("ObjectCreated:Put", "bkt", k, 1, seq);
    let plain = message(&[put("site/plain", "01")]);
    let array = format!(
        "[{}, {}]",
        message(&[put("site/array-msg", "01")]),
        put("site/array-rec", "01")
    );
    let lines = format!(
        "{}\n{}\n",
        message(&[put("site/line1", "01")]),
        message(&[put("site/line2", "01")])
    );
    let sqs_cli = format!(
        r#"{{"Messages":[{{"MessageId":"m1","ReceiptHandle":"r","MD5OfBody":"x","Body":{}}}]}}
{{"Messages":[{{"MessageId":"m2","ReceiptHandle":"r","MD5OfBody":"x","Body":{}}}]}}"#,
        json_string(&message(&[put("site/sqs1", "01")])),
        json_string(&message(&[put("site/sqs2", "01")]))
    );
    let sns_envelope = format!(
        r#"{{"Type":"Notification","MessageId":"n","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":{}}}"#,
        json_string(&message(&[put("site/via-sns", "01")]))
    );
    let lambda_sqs = format!(
        r#"{{"Records":[{{"messageId":"m","eventSource":"aws:sqs","body":{}}},{{"messageId":"m2","eventSource":"aws:sqs","body":{}}}]}}"#,
        json_string(&message(&[put("site/lambda-sqs", "01")])),
        json_string(&sns_envelope)
    );
    let lambda_sns = format!(
        r#"{{"Records":[{{"EventSource":"aws:sns","Sns":{{"Type":"Notification","Message":{}}}}}]}}"#,
        json_string(&message(&[put("site/lambda-sns", "01")]))
    );
    let eventbridge = r#"{"version":"0","id":"e","detail-type":"Object Created","source":"aws.s3",
        "account":"1","time":"2024-03-01T12:00:00Z","region":"us-east-1","resources":["arn:aws:s3:::bkt"],
        "detail":{"version":"0","bucket":{"name":"bkt"},"object":{"key":"site/eb:raw key","size":5,
        "etag":"0123456789abcdef0123456789abcdef","sequencer":"01"},"reason":"PutObject"}}"#;
    let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-03-01T12:00:00.000Z","Bucket":"bkt"}"#;
    let text = [
        plain,
        array,
        lines,
        sqs_cli,
        sns_envelope,
        lambda_sqs,
        lambda_sns,
        eventbridge.into(),
        test_event.into(),
    ]
    .join("\n");
    let events = parse("events.json", &text).unwrap();
    let mut ix = index();
    let stats = ix.apply_events("v", &events).unwrap();
    // via-sns arrives twice (an SNS envelope, and inside a Lambda SQS body): once applied.
    assert_eq!((stats.created, stats.stale, stats.ignored), (11, 1, 0));
    let got: Vec<String> = keys(&ix).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        got,
        [
            "array-msg",
            "array-rec",
            "eb:raw key",
            "lambda-sns",
            "lambda-sqs",
            "line1",
            "line2",
            "plain",
            "sqs1",
            "sqs2",
            "via-sns",
        ]
    );
    let st = ix.state("v").unwrap().unwrap();
    assert_eq!((st.source, st.objects), (IndexSource::Events, 11));
}

#[test]
fn order_sequencers_tombstones_and_what_is_ignored() {
    let mut ix = index();
    let ev = |name: &str, bucket: &str, key: &str, size: u64, seq: &str| {
        parse("e", &message(&[record(name, bucket, key, size, seq)])).unwrap()
    };
    // A newer delete arrives before an older create: the key stays deleted.
    ix.apply_events(
        "v",
        &ev(
            "ObjectRemoved:Delete",
            "bkt",
            "site/a",
            0,
            "0055AED6DCD90281E6",
        ),
    )
    .unwrap();
    let s = ix
        .apply_events(
            "v",
            &ev(
                "ObjectCreated:Put",
                "bkt",
                "site/a",
                7,
                "0055AED6DCD90281E5",
            ),
        )
        .unwrap();
    assert_eq!(s.stale, 1);
    assert!(keys(&ix).is_empty(), "not resurrected");
    // The reverse: a newer create after an older delete wins; then the older delete is stale.
    ix.apply_events(
        "v",
        &ev(
            "ObjectCreated:Put",
            "bkt",
            "site/b",
            8,
            "0055AED6DCD90281F0",
        ),
    )
    .unwrap();
    let s = ix
        .apply_events(
            "v",
            &ev(
                "ObjectRemoved:Delete",
                "bkt",
                "site/b",
                0,
                "0055AED6DCD90281A0",
            ),
        )
        .unwrap();
    assert_eq!(s.stale, 1);
    assert_eq!(keys(&ix), [("b".to_owned(), 8)]);
    // Sequencers of different lengths: the shorter is padded, so `…0282` (→ `…028200`) is
    // newer than `…0281E5`.
    ix.apply_events(
        "v",
        &ev("ObjectCreated:Put", "bkt", "site/b", 9, "0055AED6DCD90282"),
    )
    .unwrap();
    assert_eq!(keys(&ix), [("b".to_owned(), 9)]);
    // Duplicates: the same event twice is applied once.
    let dup = ev(
        "ObjectCreated:Copy",
        "bkt",
        "site/c",
        3,
        "0055AED6DCD9028300",
    );
    let s = ix.apply_events("v", &[dup.clone(), dup].concat()).unwrap();
    assert_eq!((s.created, s.stale), (1, 1));
    // Lifecycle expiration removes; restores and tagging change nothing.
    ix.apply_events(
        "v",
        &ev(
            "LifecycleExpiration:Delete",
            "bkt",
            "site/c",
            0,
            "0055AED6DCD9028400",
        ),
    )
    .unwrap();
    let s = ix
        .apply_events(
            "v",
            &ev(
                "ObjectRestore:Completed",
                "bkt",
                "site/b",
                1,
                "0055AED6DCD9029900",
            ),
        )
        .unwrap();
    assert_eq!(s.ignored, 1);
    // Another bucket, outside the prefix, the vault's own .larder/: ignored.
    for (bucket, key) in [
        ("other", "site/x"),
        ("bkt", "elsewhere/x"),
        ("bkt", "site/.larder/manifest.json.zst"),
    ] {
        let s = ix
            .apply_events("v", &ev("ObjectCreated:Put", bucket, key, 1, "FF"))
            .unwrap();
        assert_eq!(s.ignored, 1, "{bucket}/{key}");
    }
    // URL-encoded keys are decoded once: `+` is a space, `%2B` a plus.
    ix.apply_events(
        "v",
        &ev("ObjectCreated:Put", "bkt", "site/a+b%2Bc", 4, "01"),
    )
    .unwrap();
    assert_eq!(keys(&ix), [("a b+c".to_owned(), 4), ("b".to_owned(), 9)]);
}

#[test]
fn broken_input_is_refused_naming_the_file() {
    for bad in [
        "{not json",
        r#"{"hello":"world"}"#,
        r#"{"Records":[{"x":1}]}"#,
        r#"{"Messages":[{"Body":5}]}"#,
    ] {
        let err = parse("s3-events.json", bad).unwrap_err().to_string();
        assert!(err.contains("s3-events.json"), "{err}");
    }
}
