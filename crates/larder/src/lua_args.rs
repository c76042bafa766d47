//! `larder sync`'s Lua callbacks (s3sync's options): scripts loaded before anything is
//! listed, so a script that cannot serve is a usage error (exit 2).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args as ClapArgs;
use larder_lua::{Limits, LuaEvents, LuaFilter, LuaPreprocess, LuaTransform, Sandbox};

use crate::commands::UsageError;

/// Lua 5.4 scripts a sync calls.
#[derive(Debug, Clone, Default, ClapArgs)]
#[command(next_help_heading = "Lua callbacks")]
pub struct LuaArgs {
    /// A script defining `filter(object) -> boolean`, called per source object the other
    /// filters keep (object: key, size, last_modified, etag, storage_class).
    #[arg(long, env = "LARDER_FILTER_CALLBACK_LUA_SCRIPT", value_name = "FILE")]
    pub filter_callback_lua_script: Option<PathBuf>,
    /// A script defining `preprocess(object, upload)`, called per write: it may change
    /// upload.content_type, cache_control, metadata, tags, storage_class and the other
    /// headers.
    #[arg(
        long,
        env = "LARDER_PREPROCESS_CALLBACK_LUA_SCRIPT",
        value_name = "FILE"
    )]
    pub preprocess_callback_lua_script: Option<PathBuf>,
    /// A script defining `on_event(event)`, called per action and failure (event: event,
    /// key, size, reason, dry_run, error).
    #[arg(long, env = "LARDER_EVENT_CALLBACK_LUA_SCRIPT", value_name = "FILE")]
    pub event_callback_lua_script: Option<PathBuf>,
    /// A script defining `transform(key) -> string` giving each source key its destination
    /// key (nil keeps it); as --transform.
    #[arg(
        long,
        env = "LARDER_TRANSFORM_LUA_SCRIPT",
        value_name = "FILE",
        conflicts_with = "transform"
    )]
    pub transform_lua_script: Option<PathBuf>,
    /// Give the scripts Lua's `os` and `io` libraries (off by default: sandboxed).
    #[arg(long, env = "LARDER_ALLOW_LUA_OS_LIBRARY")]
    pub allow_lua_os_library: bool,
    /// Give the scripts every Lua library, `debug` and C modules included.
    #[arg(long, env = "LARDER_ALLOW_LUA_UNSAFE_VM")]
    pub allow_lua_unsafe_vm: bool,
    /// Memory each script may allocate.
    #[arg(long, visible_alias = "lua-vm-memory-limit", env = "LARDER_LUA_MEMORY_LIMIT", value_name = "SIZE", default_value = "64Mi", value_parser = crate::cli::parse_size)]
    pub lua_memory_limit: u64,
    /// How long one call of a script may run.
    #[arg(long, env = "LARDER_LUA_CALLBACK_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = crate::cli::parse_timeout)]
    pub lua_callback_timeout: std::time::Duration,
}

/// The loaded scripts.
#[derive(Debug, Default)]
pub struct Callbacks {
    pub filter: Option<Arc<LuaFilter>>,
    pub preprocess: Option<Arc<LuaPreprocess>>,
    pub events: Option<Arc<LuaEvents>>,
    pub transform: Option<Arc<LuaTransform>>,
}

impl LuaArgs {
    /// Loads the scripts given.
    pub fn load(&self) -> anyhow::Result<Callbacks> {
        let sandbox = if self.allow_lua_unsafe_vm {
            Sandbox::Unsafe
        } else if self.allow_lua_os_library {
            Sandbox::WithOs
        } else {
            Sandbox::Safe
        };
        let limits = Limits {
            memory: usize::try_from(self.lua_memory_limit).unwrap_or(usize::MAX),
            call_timeout: self.lua_callback_timeout,
        };
        Ok(Callbacks {
            filter: load(
                &self.filter_callback_lua_script,
                sandbox,
                limits,
                LuaFilter::load,
            )?,
            preprocess: load(
                &self.preprocess_callback_lua_script,
                sandbox,
                limits,
                LuaPreprocess::load,
            )?,
            events: load(
                &self.event_callback_lua_script,
                sandbox,
                limits,
                LuaEvents::load,
            )?,
            transform: load(
                &self.transform_lua_script,
                sandbox,
                limits,
                LuaTransform::load,
            )?,
        })
    }
}

/// Loads the script at `path`, when one is given; one that cannot serve is a usage error.
fn load<T>(
    path: &Option<PathBuf>,
    sandbox: Sandbox,
    limits: Limits,
    f: fn(&Path, Sandbox, Limits) -> Result<T, larder_lua::LuaError>,
) -> Result<Option<Arc<T>>, UsageError> {
    path.as_deref()
        .map(|p| f(p, sandbox, limits).map(Arc::new))
        .transpose()
        .map_err(|e| UsageError(e.to_string()))
}
