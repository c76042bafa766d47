//! Property tests: listed keys, npm keys and packs of any bytes (random, and valid packs
//! with bytes flipped or cut) never make larder panic, never import a byte of a refused pack,
//! and whatever is accepted is of kache's shape.

use larder_cache::Cache;
use larder_cache_sync::layout::{is_valid_cache_key, is_valid_namespace, Layout};
use larder_cache_sync::local::{namespace_of_package, npm_package_of_key, pacote_package_of_key};
use larder_cache_sync::pack::{read_pack, Expect, Limits};
use larder_testutil::kache;
use proptest::prelude::*;

fn files_in(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn listed_keys_are_accepted_only_in_kaches_shape(key in any::<String>(), ns in "[a-z_.@/-]{0,10}") {
        for k in [key.clone(), format!("artifacts/v3/manifests/{ns}/{key}.json")] {
            if let Some((n, c)) = Layout::new("artifacts").parse_manifest_key(&k) {
                prop_assert!(is_valid_namespace(&n));
                prop_assert!(is_valid_cache_key(&c));
            }
        }
    }

    #[test]
    fn npm_keys_give_valid_namespaces_or_none(url in any::<String>()) {
        for key in [format!("make-fetch-happen:request-cache:{url}"), format!("pacote:tarball:{url}")] {
            if let Some(p) = npm_package_of_key(&key).or_else(|| pacote_package_of_key(&key)) {
                if let Some(ns) = namespace_of_package(&p) {
                    prop_assert!(is_valid_namespace(&ns));
                }
            }
        }
    }

    #[test]
    fn damaged_packs_are_refused_whole(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4), cut in any::<prop::sample::Index>(), cut_it in any::<bool>()) {
        let ck = kache::cache_key("fuzz");
        let files: Vec<(&str, &[u8])> = vec![("a.rlib", b"alpha bytes"), ("b.rmeta", b"beta")];
        let mut pack = kache::pack(&ck, "serde", &files);
        for (i, x) in &flips {
            let at = i.index(pack.len());
            pack[at] ^= x | 1;
        }
        if cut_it {
            pack.truncate(cut.index(pack.len()));
        }
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let expect = Expect { namespace: "serde", cache_key: &ck };
        let res = read_pack(&pack[..], expect, &cache, &Limits::default());
        match res {
            // Accepted: then every file is what meta.json declared (BLAKE3 checked).
            Ok(u) => prop_assert_eq!(u.files.len(), 2),
            Err(_) => prop_assert_eq!(files_in(d.path()), 0),
        }
    }

    #[test]
    fn random_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let ck = kache::cache_key("x");
        let expect = Expect { namespace: "n", cache_key: &ck };
        let refused = read_pack(&bytes[..], expect, &cache, &Limits::default()).is_err();
        prop_assert!(refused);
        prop_assert_eq!(files_in(d.path()), 0);
    }
}
