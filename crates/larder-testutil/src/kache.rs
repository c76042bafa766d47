//! kache v3 fixtures, built from kache's documented format (not by larder's own code, so a
//! test compares larder with the format, not with itself): packs (a zstd frame around a tar
//! of `meta.json` and the files), manifests, and hostile variants of both.

use serde_json::json;

/// A tar member as written, hostile ones included.
#[derive(Debug, Clone)]
pub struct Member {
    /// The raw name (up to 100 bytes), written as is: `../x` and `/etc/x` are possible.
    pub name: Vec<u8>,
    /// The entry type.
    pub kind: tar::EntryType,
    /// The bytes.
    pub data: Vec<u8>,
    /// A link target, for link members.
    pub link: Option<String>,
}

impl Member {
    /// A regular file.
    pub fn file(name: &str, data: &[u8]) -> Self {
        Member {
            name: name.as_bytes().to_vec(),
            kind: tar::EntryType::Regular,
            data: data.to_vec(),
            link: None,
        }
    }

    /// A symbolic link.
    pub fn symlink(name: &str, target: &str) -> Self {
        Member {
            name: name.as_bytes().to_vec(),
            kind: tar::EntryType::Symlink,
            data: Vec::new(),
            link: Some(target.to_owned()),
        }
    }
}

/// A tar of `members` (written header by header, so no name is refused), zstd-compressed.
pub fn tar_zst(members: &[Member]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_old();
        let name = &mut h.as_old_mut().name;
        name[..m.name.len()].copy_from_slice(&m.name);
        h.set_entry_type(m.kind);
        h.set_size(m.data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        if let Some(l) = &m.link {
            let link = &mut h.as_old_mut().linkname;
            link[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        b.append(&h, &m.data[..]).expect("tar in memory");
    }
    zstd::encode_all(&b.into_inner().expect("tar in memory")[..], 3).expect("zstd in memory")
}

/// A cache key of kache's shape (64 lowercase hex), from a seed.
pub fn cache_key(seed: &str) -> String {
    blake3::hash(seed.as_bytes()).to_hex().to_string()
}

/// kache's `EntryMeta` for `files` (name, bytes), with their sizes and BLAKE3 hashes.
pub fn entry_meta(cache_key: &str, crate_name: &str, files: &[(&str, &[u8])]) -> serde_json::Value {
    json!({
        "cache_key": cache_key,
        "key_schema": 31,
        "crate_name": crate_name,
        "crate_types": ["lib"],
        "files": files.iter().map(|(name, data)| json!({
            "name": name,
            "size": data.len(),
            "hash": blake3::hash(data).to_hex().to_string(),
            "executable": false,
        })).collect::<Vec<_>>(),
        "stdout": "",
        "stderr": "",
        "features": ["default"],
        "target": "x86_64-unknown-linux-gnu",
        "profile": "release",
        "compile_time_ms": 1234,
        "emit_kinds": ["dep-info", "link", "metadata"],
    })
}

/// The members of a pack as kache writes it: `meta.json`, then the files.
pub fn pack_members(meta: &serde_json::Value, files: &[(&str, &[u8])]) -> Vec<Member> {
    let mut m = vec![Member::file(
        "meta.json",
        &serde_json::to_vec(meta).expect("JSON"),
    )];
    m.extend(files.iter().map(|(n, d)| Member::file(n, d)));
    m
}

/// A well-formed kache pack.
pub fn pack(cache_key: &str, crate_name: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    tar_zst(&pack_members(
        &entry_meta(cache_key, crate_name, files),
        files,
    ))
}

/// kache's compact v3 manifest.
pub fn manifest(
    pack_key: &str,
    cache_key: &str,
    crate_name: &str,
    pack_bytes: usize,
    files: &[(&str, &[u8])],
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": 3,
        "cache_key": cache_key,
        "crate_name": crate_name,
        "pack_key": pack_key,
        "pack_bytes": pack_bytes,
        "original_bytes": files.iter().map(|(_, d)| d.len()).sum::<usize>(),
        "file_count": files.len(),
    }))
    .expect("JSON")
}

/// A pack's files: names and bytes.
pub type Files = Vec<(String, Vec<u8>)>;

/// Reads a pack the way kache's `extract_entry_pack` does (its checks, independently of
/// larder's reader): no absolute or `..` names, no links, `meta.json` parsing into kache's
/// `EntryMeta` (its required fields present, with their types), every declared file present
/// with its BLAKE3. Returns `meta.json` and the files.
///
/// # Errors
///
/// What kache would refuse, as text.
pub fn kache_accepts(pack: &[u8]) -> Result<(serde_json::Value, Files), String> {
    use std::io::Read;
    let tar_bytes = zstd::decode_all(pack).map_err(|e| format!("zstd: {e}"))?;
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut members = Vec::new();
    for e in archive.entries().map_err(|e| e.to_string())? {
        let mut e = e.map_err(|e| e.to_string())?;
        let path = e.path().map_err(|e| e.to_string())?.into_owned();
        if path.is_absolute()
            || path
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(format!("unsafe member {}", path.display()));
        }
        let t = e.header().entry_type();
        if t.is_symlink() || t.is_hard_link() {
            return Err(format!("link member {}", path.display()));
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).map_err(|e| e.to_string())?;
        members.push((path.to_string_lossy().into_owned(), data));
    }
    let meta_bytes = &members
        .iter()
        .find(|(n, _)| n == "meta.json")
        .ok_or("no meta.json")?
        .1;
    let meta: serde_json::Value = serde_json::from_slice(meta_bytes).map_err(|e| e.to_string())?;
    for (field, ok) in [
        ("cache_key", meta["cache_key"].is_string()),
        ("crate_name", meta["crate_name"].is_string()),
        ("crate_types", meta["crate_types"].is_array()),
        ("files", meta["files"].is_array()),
        ("stdout", meta["stdout"].is_string()),
        ("stderr", meta["stderr"].is_string()),
    ] {
        if !ok {
            return Err(format!("meta.json lacks kache's required `{field}`"));
        }
    }
    let mut files = Vec::new();
    for f in meta["files"].as_array().expect("checked") {
        let name = f["name"].as_str().ok_or("a file without a name")?;
        let hash = f["hash"].as_str().ok_or("a file without a hash")?;
        if !f["size"].is_u64() {
            return Err(format!("`{name}` has no size"));
        }
        let data = &members
            .iter()
            .find(|(n, _)| n == name)
            .ok_or(format!("missing declared file {name}"))?
            .1;
        if blake3::hash(data).to_hex().as_str() != hash {
            return Err(format!("content hash mismatch for {name}"));
        }
        files.push((name.to_owned(), data.clone()));
    }
    Ok((meta, files))
}
