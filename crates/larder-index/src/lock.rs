//! One sync of a vault at a time: an exclusive lock on `locks/<vault>.lock` beside the
//! index, held for the run (released when the process ends, however it ends), with the
//! holder's pid written in it for the message another run prints.

use std::io::{Read, Seek, Write};
use std::path::Path;

/// A held lock; dropping it releases the vault.
#[derive(Debug)]
pub struct VaultLock(#[allow(dead_code)] std::fs::File);

/// What [`lock`] found.
#[derive(Debug)]
pub enum Locked {
    /// The lock is ours.
    Held(VaultLock),
    /// Another process holds it (its pid, when it wrote one).
    Busy(Option<u32>),
}

/// Takes `vault`'s lock in `dir` (the directory of the index), without waiting.
///
/// # Errors
///
/// When the lock file cannot be created or opened.
pub fn lock(dir: &Path, vault: &str) -> std::io::Result<Locked> {
    let locks = dir.join("locks");
    std::fs::create_dir_all(&locks)?;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(locks.join(format!("{vault}.lock")))?;
    match f.try_lock() {
        Ok(()) => {
            f.set_len(0)?;
            f.rewind()?;
            write!(f, "{}", std::process::id())?;
            f.flush()?;
            Ok(Locked::Held(VaultLock(f)))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut s = String::new();
            let _ = f.read_to_string(&mut s);
            Ok(Locked::Busy(s.trim().parse().ok()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_told_who_has_it_and_gets_it_after() {
        let d = tempfile::tempdir().unwrap();
        let Locked::Held(first) = lock(d.path(), "v").unwrap() else {
            panic!("free at first")
        };
        match lock(d.path(), "v").unwrap() {
            Locked::Busy(pid) => assert_eq!(pid, Some(std::process::id())),
            Locked::Held(_) => panic!("held twice"),
        }
        assert!(
            matches!(lock(d.path(), "w").unwrap(), Locked::Held(_)),
            "per vault"
        );
        drop(first);
        assert!(matches!(lock(d.path(), "v").unwrap(), Locked::Held(_)));
    }
}
