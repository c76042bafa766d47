//! Lua 5.4 callbacks for `larder sync`, as s3sync has them: a filter, a preprocessor and an
//! event handler, each a script defining one global function.
//!
//! | script | function | called |
//! |---|---|---|
//! | `--filter-callback-lua-script` | `filter(object) -> boolean` | per source object the filters keep; `false` leaves it out |
//! | `--preprocess-callback-lua-script` | `preprocess(object, upload)` | per write; changes `upload` in place (or returns a table to use instead) |
//! | `--event-callback-lua-script` | `on_event(event)` | per planned or finished action and per failure |
//!
//! `object` has `key`, `size`, `last_modified` (RFC 3339), `etag` and `storage_class` (and,
//! in `preprocess`, `content_type` and `metadata` as the source's read told). `upload` has
//! `content_type`, `cache_control`, `content_encoding`, `content_disposition`,
//! `content_language`, `expires`, `website_redirect`, `storage_class`, `metadata` (a table
//! of strings) and `tags` (a table of strings; `nil`: the source's). `event` has the fields
//! of `larder sync --json`'s event lines: `event` (`transfer`, `skip`, `delete`, `error`),
//! `key`, `size`, `reason`, `dry_run`, `adopted`, `etag_verified`, `checksum_verified`,
//! `server_side`, `done`, `listed`, or, for an error, `error`.
//!
//! **Sandbox.** By default a script gets Lua's base, `string`, `table`, `math`, `utf8` and
//! `coroutine` libraries, no `os`, `io` or `package`, at most [`Limits::memory`] bytes of
//! memory, and [`Limits::call_timeout`] per call. `--allow-lua-os-library` adds `os` and
//! `io`; `--allow-lua-unsafe-vm` every library, `debug` and C modules included.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use larder_store::{Entry, ObjectMeta, PutOptions, Tags};
use larder_sync::callbacks::{CallbackError, FilterCallback, KeyTransform, PreprocessCallback};
use larder_sync::Event;
use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};

/// A script that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("Lua script `{path}`: {why}")]
pub struct LuaError {
    /// The script.
    pub path: PathBuf,
    /// What is wrong.
    pub why: String,
}

/// Which Lua libraries a script gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sandbox {
    /// No `os`, `io` or `package` (the default).
    #[default]
    Safe,
    /// `os` and `io` too (`--allow-lua-os-library`).
    WithOs,
    /// Every library, `debug` and C modules included (`--allow-lua-unsafe-vm`).
    Unsafe,
}

/// Resource limits of a script.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Memory the script's state may allocate.
    pub memory: usize,
    /// How long one call may run.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 64 << 20,
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// One loaded script: its Lua state and the global function it defines.
pub struct Script {
    path: PathBuf,
    function: &'static str,
    limits: Limits,
    sandbox: Sandbox,
    /// Calls are serialised: one Lua state is not re-entrant.
    lua: Mutex<Lua>,
    deadline: Arc<Mutex<Option<Instant>>>,
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field("path", &self.path)
            .field("function", &self.function)
            .field("sandbox", &self.sandbox)
            .finish_non_exhaustive()
    }
}

impl Script {
    /// Loads the script at `path`, runs its top level, and checks that it defines the
    /// global `function`.
    ///
    /// # Errors
    ///
    /// When it cannot be read, does not compile, fails at its top level or defines no such
    /// function.
    pub fn load(
        path: &Path,
        function: &'static str,
        sandbox: Sandbox,
        limits: Limits,
    ) -> Result<Self, LuaError> {
        let err = |why: String| LuaError {
            path: path.to_path_buf(),
            why,
        };
        let source = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let lua = new_state(sandbox).map_err(|e| err(e.to_string()))?;
        lua.set_memory_limit(limits.memory)
            .map_err(|e| err(e.to_string()))?;
        let deadline: Arc<Mutex<Option<Instant>>> = Arc::default();
        let d = deadline.clone();
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(10_000),
            move |_, _| {
                let late = d
                    .lock()
                    .expect("deadline lock")
                    .is_some_and(|t| Instant::now() > t);
                if late {
                    Err(mlua::Error::RuntimeError(
                        "the call ran past its time limit".into(),
                    ))
                } else {
                    Ok(VmState::Continue)
                }
            },
        )
        .map_err(|e| err(e.to_string()))?;
        let script = Script {
            path: path.to_path_buf(),
            function,
            limits,
            sandbox,
            lua: Mutex::new(lua),
            deadline,
        };
        {
            let lua = script.lua.lock().expect("lua lock");
            script.arm();
            let loaded = lua
                .load(&source)
                .set_name(format!("@{}", path.display()))
                .exec();
            script.disarm();
            loaded.map_err(|e| err(script.explain(&e)))?;
            match lua.globals().get::<Value>(function) {
                Ok(Value::Function(_)) => {}
                _ => return Err(err(format!("it defines no global function `{function}`"))),
            }
        }
        Ok(script)
    }

    fn arm(&self) {
        *self.deadline.lock().expect("deadline lock") =
            Some(Instant::now() + self.limits.call_timeout);
    }

    fn disarm(&self) {
        *self.deadline.lock().expect("deadline lock") = None;
    }

    /// One line for a Lua error, with a hint where the sandbox is the cause.
    fn explain(&self, e: &mlua::Error) -> String {
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or_default().to_owned();
        let hint = if self.sandbox == Sandbox::Safe
            && [
                "global 'os'",
                "global 'io'",
                "global 'package'",
                "global 'require'",
            ]
            .iter()
            .any(|g| msg.contains(g))
        {
            " (the sandbox has no os, io or package library: --allow-lua-os-library or --allow-lua-unsafe-vm lifts it)"
        } else if msg.contains("memory") {
            " (the script's memory limit)"
        } else {
            ""
        };
        format!("{first}{hint}")
    }

    /// Calls the script's function with arguments built by `args`; returns what `ret` makes
    /// of its result.
    fn call<R>(
        &self,
        args: impl FnOnce(&Lua) -> mlua::Result<mlua::MultiValue>,
        ret: impl FnOnce(&Lua, Value) -> mlua::Result<R>,
    ) -> Result<R, CallbackError> {
        let lua = self.lua.lock().expect("lua lock");
        self.arm();
        let result = (|| {
            let f: Function = lua.globals().get(self.function)?;
            let v: Value = f.call(args(&lua)?)?;
            ret(&lua, v)
        })();
        self.disarm();
        result.map_err(|e| {
            CallbackError(format!(
                "Lua `{}` in `{}`: {}",
                self.function,
                self.path.display(),
                self.explain(&e)
            ))
        })
    }
}

#[allow(unsafe_code)]
fn new_state(sandbox: Sandbox) -> mlua::Result<Lua> {
    let safe = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE;
    match sandbox {
        Sandbox::Safe => Lua::new_with(safe, LuaOptions::default()),
        Sandbox::WithOs => Lua::new_with(safe | StdLib::OS | StdLib::IO, LuaOptions::default()),
        // SAFETY: the user asked for an unrestricted VM (`--allow-lua-unsafe-vm`): its
        // debug library and C modules can break memory safety, which is what that flag
        // accepts; nothing else in larder relies on the state's integrity.
        Sandbox::Unsafe => Ok(unsafe { Lua::unsafe_new_with(StdLib::ALL, LuaOptions::default()) }),
    }
}

fn time(t: Option<std::time::SystemTime>) -> Option<String> {
    t.map(|t| humantime::format_rfc3339_millis(t).to_string())
}

fn entry_table(lua: &Lua, e: &Entry) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("key", e.key.as_str())?;
    t.set("size", e.size)?;
    t.set("last_modified", time(e.last_modified))?;
    t.set("etag", e.etag.clone())?;
    t.set("storage_class", e.storage_class.clone())?;
    Ok(t)
}

fn string_map(lua: &Lua, m: impl IntoIterator<Item = (String, String)>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (k, v) in m {
        t.set(k, v)?;
    }
    Ok(t)
}

fn read_map(t: Option<Table>) -> mlua::Result<Option<std::collections::BTreeMap<String, String>>> {
    t.map(|t| t.pairs::<String, String>().collect()).transpose()
}

/// A filter script: `filter(object) -> boolean`.
#[derive(Debug)]
pub struct LuaFilter(pub Script);

impl LuaFilter {
    /// Loads a filter script.
    ///
    /// # Errors
    ///
    /// As [`Script::load`].
    pub fn load(path: &Path, sandbox: Sandbox, limits: Limits) -> Result<Self, LuaError> {
        Script::load(path, "filter", sandbox, limits).map(LuaFilter)
    }
}

impl FilterCallback for LuaFilter {
    fn keep(&self, entry: &Entry) -> Result<bool, CallbackError> {
        self.0.call(
            |lua| {
                entry_table(lua, entry).map(|t| mlua::MultiValue::from_vec(vec![Value::Table(t)]))
            },
            |_, v| match v {
                Value::Boolean(b) => Ok(b),
                other => Err(mlua::Error::RuntimeError(format!(
                    "filter must return a boolean, not {}",
                    other.type_name()
                ))),
            },
        )
    }
}

/// A preprocess script: `preprocess(object, upload)`.
#[derive(Debug)]
pub struct LuaPreprocess(pub Script);

impl LuaPreprocess {
    /// Loads a preprocess script.
    ///
    /// # Errors
    ///
    /// As [`Script::load`].
    pub fn load(path: &Path, sandbox: Sandbox, limits: Limits) -> Result<Self, LuaError> {
        Script::load(path, "preprocess", sandbox, limits).map(LuaPreprocess)
    }
}

impl PreprocessCallback for LuaPreprocess {
    fn preprocess(&self, meta: &ObjectMeta, put: &mut PutOptions) -> Result<(), CallbackError> {
        let mut upload_table = None;
        let got = self.0.call(
            |lua| {
                let o = lua.create_table()?;
                o.set("key", meta.key.as_str())?;
                o.set("size", meta.size)?;
                o.set("last_modified", time(meta.last_modified))?;
                o.set("etag", meta.etag.clone())?;
                o.set("storage_class", meta.storage_class.clone())?;
                o.set("content_type", meta.content_type.clone())?;
                o.set("metadata", string_map(lua, meta.metadata.clone())?)?;
                let u = lua.create_table()?;
                u.set("content_type", put.content_type.clone())?;
                u.set("cache_control", put.cache_control.clone())?;
                u.set("content_encoding", put.headers.content_encoding.clone())?;
                u.set(
                    "content_disposition",
                    put.headers.content_disposition.clone(),
                )?;
                u.set("content_language", put.headers.content_language.clone())?;
                u.set("expires", put.headers.expires.clone())?;
                u.set("website_redirect", put.headers.website_redirect.clone())?;
                u.set("storage_class", put.storage_class.clone())?;
                u.set("metadata", string_map(lua, put.metadata.clone())?)?;
                if let Some(tags) = &put.tags {
                    u.set("tags", string_map(lua, tags.clone())?)?;
                }
                upload_table = Some(u.clone());
                Ok(mlua::MultiValue::from_vec(vec![
                    Value::Table(o),
                    Value::Table(u),
                ]))
            },
            |_, v| Ok(v),
        )?;
        let result = (|| -> mlua::Result<()> {
            let u = match got {
                Value::Table(t) => t,
                Value::Nil => upload_table.expect("built before the call"),
                other => {
                    return Err(mlua::Error::RuntimeError(format!(
                        "preprocess must return the upload table or nothing, not {}",
                        other.type_name()
                    )))
                }
            };
            put.content_type = u.get("content_type")?;
            put.cache_control = u.get("cache_control")?;
            put.headers.content_encoding = u.get("content_encoding")?;
            put.headers.content_disposition = u.get("content_disposition")?;
            put.headers.content_language = u.get("content_language")?;
            put.headers.expires = u.get("expires")?;
            put.headers.website_redirect = u.get("website_redirect")?;
            put.storage_class = u.get("storage_class")?;
            put.metadata = read_map(u.get("metadata")?)?.unwrap_or_default();
            let tags: Option<Tags> = read_map(u.get("tags")?)?;
            if tags.is_some() {
                put.tags = tags;
            }
            Ok(())
        })();
        result.map_err(|e| {
            CallbackError(format!(
                "Lua `preprocess` in `{}`: the upload table: {}",
                self.0.path.display(),
                self.0.explain(&e)
            ))
        })
    }
}

/// A key transform: `transform(key) -> string` (nil keeps the key).
#[derive(Debug)]
pub struct LuaTransform(pub Script);

impl LuaTransform {
    /// Loads a transform script.
    ///
    /// # Errors
    ///
    /// As [`Script::load`].
    pub fn load(path: &Path, sandbox: Sandbox, limits: Limits) -> Result<Self, LuaError> {
        Script::load(path, "transform", sandbox, limits).map(LuaTransform)
    }
}

impl KeyTransform for LuaTransform {
    fn transform(&self, key: &str) -> Result<String, CallbackError> {
        self.0.call(
            |lua| {
                Ok(mlua::MultiValue::from_vec(vec![Value::String(
                    lua.create_string(key)?,
                )]))
            },
            |_, v| match v {
                Value::Nil => Ok(key.to_owned()),
                Value::String(s) => Ok(s.to_str()?.to_owned()),
                other => Err(mlua::Error::RuntimeError(format!(
                    "transform must return a string or nil, not {}",
                    other.type_name()
                ))),
            },
        )
    }

    fn describe(&self) -> String {
        format!("transform() in {}", self.0.path.display())
    }
}

/// An event script: `on_event(event)`. Errors are logged, never fail a key.
#[derive(Debug)]
pub struct LuaEvents(pub Script);

impl LuaEvents {
    /// Loads an event script.
    ///
    /// # Errors
    ///
    /// As [`Script::load`].
    pub fn load(path: &Path, sandbox: Sandbox, limits: Limits) -> Result<Self, LuaError> {
        Script::load(path, "on_event", sandbox, limits).map(LuaEvents)
    }

    /// Calls `on_event` for `ev`; an error is returned for the caller to log.
    ///
    /// # Errors
    ///
    /// When the script fails.
    pub fn on_event(&self, ev: &Event) -> Result<(), CallbackError> {
        self.0.call(
            |lua| {
                // The event's own serde form: the fields of `larder sync --json`'s lines.
                let t = mlua::LuaSerdeExt::to_value(lua, ev)?;
                Ok(mlua::MultiValue::from_vec(vec![t]))
            },
            |_, _| Ok(()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_store::Key;

    fn script(dir: &Path, name: &str, src: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, src).unwrap();
        p
    }

    fn entry(key: &str, size: u64) -> Entry {
        Entry {
            key: Key::new(key).unwrap(),
            size,
            last_modified: None,
            etag: Some("abc".into()),
            storage_class: None,
        }
    }

    #[test]
    fn a_transform_renames_keeps_with_nil_and_refuses_other_values() {
        let d = tempfile::tempdir().unwrap();
        let p = script(
            d.path(),
            "t.lua",
            r#"function transform(k)
                 if k:match('^raw/') then return 'clean/' .. k:sub(5) end
                 if k == 'odd' then return 42 end
                 return nil
               end"#,
        );
        let t = LuaTransform::load(&p, Sandbox::Safe, Limits::default()).unwrap();
        assert_eq!(t.transform("raw/a.txt").unwrap(), "clean/a.txt");
        assert_eq!(t.transform("other").unwrap(), "other");
        let e = t.transform("odd").unwrap_err().to_string();
        assert!(e.contains("t.lua") && e.contains("string or nil"), "{e}");
    }

    #[test]
    fn an_event_script_sees_the_fields_of_the_json_event_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = script(
            d.path(),
            "e.lua",
            r#"function on_event(e)
                 local ok = (e.event == "transfer" and e.key == "a" and e.size == 3
                     and e.reason == "missing at destination" and e.dry_run == false
                     and e.etag_verified == true and e.adopted == false and e.done == 1)
                   or (e.event == "error" and e.key == "b" and e.error == "boom")
                 if not ok then error("unexpected event " .. tostring(e.event)) end
               end"#,
        );
        let s = LuaEvents::load(&p, Sandbox::Safe, Limits::default()).unwrap();
        let done = Event::Done {
            action: larder_sync::Action::Transfer,
            key: "a".into(),
            size: 3,
            reason: larder_sync::Reason::Missing,
            dry_run: false,
            verified: larder_sync::Verified {
                etag: true,
                checksum: false,
                server_side: false,
            },
            done: 1,
            listed: 1,
        };
        s.on_event(&done).unwrap();
        let failed = Event::Failed {
            key: "b".into(),
            error: "boom".into(),
        };
        s.on_event(&failed).unwrap();
        let other = Event::Failed {
            key: "c".into(),
            error: "boom".into(),
        };
        assert!(
            s.on_event(&other).is_err(),
            "the script can tell events apart"
        );
    }

    #[test]
    fn a_filter_decides_by_key_and_size() {
        let d = tempfile::tempdir().unwrap();
        let p = script(
            d.path(),
            "f.lua",
            "function filter(o) return o.key:match('%.txt$') ~= nil and o.size < 10 end",
        );
        let f = LuaFilter::load(&p, Sandbox::Safe, Limits::default()).unwrap();
        assert!(f.keep(&entry("a.txt", 3)).unwrap());
        assert!(!f.keep(&entry("a.bin", 3)).unwrap());
        assert!(!f.keep(&entry("a.txt", 30)).unwrap());
    }

    #[test]
    fn the_sandbox_refuses_os_and_says_how_to_lift_it() {
        let d = tempfile::tempdir().unwrap();
        let p = script(
            d.path(),
            "f.lua",
            "function filter(o) os.execute('touch pwned') return true end",
        );
        let f = LuaFilter::load(&p, Sandbox::Safe, Limits::default()).unwrap();
        let e = f.keep(&entry("a", 1)).unwrap_err().to_string();
        assert!(
            e.contains("global 'os'") && e.contains("--allow-lua-os-library"),
            "{e}"
        );
        assert!(e.contains("f.lua"), "{e}");
        // `--allow-lua-os-library` lifts it (a harmless call; the one above is never run).
        let p = script(
            d.path(),
            "os.lua",
            "function filter(o) return os.time() > 0 end",
        );
        let safe = LuaFilter::load(&p, Sandbox::Safe, Limits::default()).unwrap();
        assert!(safe.keep(&entry("a", 1)).is_err());
        let with_os = LuaFilter::load(&p, Sandbox::WithOs, Limits::default()).unwrap();
        assert!(with_os.keep(&entry("a", 1)).unwrap());
    }

    #[test]
    fn a_runaway_call_and_a_memory_hog_are_stopped() {
        let d = tempfile::tempdir().unwrap();
        let p = script(
            d.path(),
            "loop.lua",
            "function filter(o) while true do end end",
        );
        let limits = Limits {
            call_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let f = LuaFilter::load(&p, Sandbox::Safe, limits).unwrap();
        let e = f.keep(&entry("a", 1)).unwrap_err().to_string();
        assert!(e.contains("time limit"), "{e}");
        let p = script(
            d.path(),
            "mem.lua",
            "function filter(o) local t = {} for i = 1, 1e8 do t[i] = string.rep('x', 64) .. i end return true end",
        );
        let limits = Limits {
            memory: 8 << 20,
            call_timeout: Duration::from_secs(30),
        };
        let f = LuaFilter::load(&p, Sandbox::Safe, limits).unwrap();
        let e = f.keep(&entry("a", 1)).unwrap_err().to_string();
        assert!(e.contains("memory"), "{e}");
    }

    #[test]
    fn scripts_that_cannot_serve_are_refused_at_load() {
        let d = tempfile::tempdir().unwrap();
        let p = script(d.path(), "none.lua", "x = 1");
        let e = LuaFilter::load(&p, Sandbox::Safe, Limits::default()).unwrap_err();
        assert!(e.to_string().contains("no global function `filter`"), "{e}");
        let p = script(d.path(), "bad.lua", "function filter(o) return end end");
        let e = LuaFilter::load(&p, Sandbox::Safe, Limits::default()).unwrap_err();
        assert!(e.to_string().contains("bad.lua"), "{e}");
        let e = LuaFilter::load(
            &d.path().join("missing.lua"),
            Sandbox::Safe,
            Limits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn preprocess_changes_metadata_tags_and_content_type() {
        let d = tempfile::tempdir().unwrap();
        let p = script(
            d.path(),
            "p.lua",
            r#"function preprocess(o, u)
                 u.content_type = "text/x-" .. o.key:match("%.(%w+)$")
                 u.metadata["origin"] = "lua"
                 u.tags = { team = "web", size = tostring(o.size) }
               end"#,
        );
        let pp = LuaPreprocess::load(&p, Sandbox::Safe, Limits::default()).unwrap();
        let meta = ObjectMeta {
            key: Key::new("a/b.md").unwrap(),
            size: 12,
            last_modified: None,
            etag: None,
            content_type: None,
            cache_control: None,
            metadata: Default::default(),
            mtime: None,
            checksum: None,
            storage_class: None,
            headers: Default::default(),
            tag_count: None,
            encryption: None,
        };
        let mut put = PutOptions::default();
        put.metadata.insert("kept".into(), "yes".into());
        pp.preprocess(&meta, &mut put).unwrap();
        assert_eq!(put.content_type.as_deref(), Some("text/x-md"));
        assert_eq!(put.metadata.get("origin").map(String::as_str), Some("lua"));
        assert_eq!(put.metadata.get("kept").map(String::as_str), Some("yes"));
        let tags = put.tags.unwrap();
        assert_eq!(tags.get("team").map(String::as_str), Some("web"));
        assert_eq!(tags.get("size").map(String::as_str), Some("12"));
    }
}
