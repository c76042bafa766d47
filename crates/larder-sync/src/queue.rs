//! The queue of pending deletions.
//!
//! Deletions may run only after every transfer succeeded, so they wait until the end of the
//! run. Kept in memory they would grow with the number of extra keys; past
//! [`SPILL_AFTER`] entries they go to an anonymous temp file instead (length-prefixed
//! records: a key may hold any byte but NUL, newlines included), so memory stays flat.

use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use larder_store::Key;

/// Entries kept in memory before the queue spills to disk.
pub const SPILL_AFTER: usize = 10_000;

/// One pending deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The key.
    pub key: Key,
    /// Its size, for the report.
    pub size: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct DeleteQueue {
    memory: Vec<Pending>,
    spill: Option<BufWriter<std::fs::File>>,
    len: u64,
}

impl DeleteQueue {
    /// Adds a deletion.
    ///
    /// # Errors
    ///
    /// When the spill file cannot be created or written.
    pub fn push(&mut self, p: Pending) -> std::io::Result<()> {
        self.len += 1;
        if self.spill.is_none() && self.memory.len() < SPILL_AFTER {
            self.memory.push(p);
            return Ok(());
        }
        let w = match &mut self.spill {
            Some(w) => w,
            None => self.spill.insert(BufWriter::new(tempfile::tempfile()?)),
        };
        let k = p.key.as_str().as_bytes();
        w.write_all(&(k.len() as u32).to_le_bytes())?;
        w.write_all(k)?;
        w.write_all(&p.size.to_le_bytes())?;
        Ok(())
    }

    /// How many deletions are queued.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The deletions in batches of at most `batch`, in the order they were queued.
    ///
    /// # Errors
    ///
    /// When the spill file cannot be read back.
    pub fn into_batches(self, batch: usize) -> std::io::Result<Batches> {
        let reader = match self.spill {
            Some(w) => {
                let mut f = w.into_inner().map_err(|e| e.into_error())?;
                f.seek(SeekFrom::Start(0))?;
                Some(BufReader::new(f))
            }
            None => None,
        };
        Ok(Batches {
            memory: self.memory.into_iter(),
            reader,
            batch: batch.max(1),
        })
    }
}

/// Batches of pending deletions; see [`DeleteQueue::into_batches`].
#[derive(Debug)]
pub struct Batches {
    memory: std::vec::IntoIter<Pending>,
    reader: Option<BufReader<std::fs::File>>,
    batch: usize,
}

impl Batches {
    fn read_one(&mut self) -> std::io::Result<Option<Pending>> {
        let Some(r) = &mut self.reader else {
            return Ok(None);
        };
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut key)?;
        let mut size = [0u8; 8];
        r.read_exact(&mut size)?;
        let key = String::from_utf8(key)
            .ok()
            .and_then(|k| Key::new(k).ok())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt delete queue")
            })?;
        Ok(Some(Pending {
            key,
            size: u64::from_le_bytes(size),
        }))
    }
}

impl Iterator for Batches {
    type Item = std::io::Result<Vec<Pending>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut out = Vec::with_capacity(self.batch);
        while out.len() < self.batch {
            if let Some(p) = self.memory.next() {
                out.push(p);
                continue;
            }
            match self.read_one() {
                Ok(Some(p)) => out.push(p),
                Ok(None) => break,
                Err(e) => return Some(Err(e)),
            }
        }
        (!out.is_empty()).then_some(Ok(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_and_reads_back_in_order() {
        let mut q = DeleteQueue::default();
        let n = SPILL_AFTER + 2_345;
        for i in 0..n {
            let key = Key::new(format!("k{i}\nwith newline")).unwrap();
            q.push(Pending {
                key,
                size: i as u64,
            })
            .unwrap();
        }
        assert_eq!(q.len(), n as u64);
        assert!(q.spill.is_some());
        let all: Vec<Pending> = q
            .into_batches(1000)
            .unwrap()
            .flat_map(|b| b.unwrap())
            .collect();
        assert_eq!(all.len(), n);
        for (i, p) in all.iter().enumerate() {
            assert_eq!(p.key.as_str(), format!("k{i}\nwith newline"));
            assert_eq!(p.size, i as u64);
        }
    }
}
