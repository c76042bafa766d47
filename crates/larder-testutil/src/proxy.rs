//! A small HTTP/1.1 proxy on 127.0.0.1 in front of the S3 test server, to make it misbehave
//! in ways a real server or network can: answer a PUT without an ETag, or answer it without
//! storing anything. One request per connection (it answers `Connection: close`), plain
//! threads, bodies framed by `Content-Length` (what larder sends).
//!
//! It is the seed of the fault-injecting proxy of issue #12: more [`Fault`]s go here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the proxy does to requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything; drop the `ETag` header of PutObject and
    /// CompleteMultipartUpload answers.
    StripPutEtag,
    /// Answer every PutObject `200 OK` without an ETag and without forwarding it: the
    /// object is never stored. Everything else is forwarded.
    SwallowPuts,
    /// Flip one byte in the middle of the body of the first `n` ranged GET answers (206),
    /// keeping their length: a bad NIC or proxy, before the client hashes anything.
    FlipRangedGetBodies(u64),
}

/// A running proxy; it lives as long as the test process.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    faulted: Arc<AtomicU64>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`).
    ///
    /// # Panics
    ///
    /// When it cannot listen on 127.0.0.1, or `upstream` is not a loopback `http://` URL.
    pub fn start(upstream: &str, fault: Fault) -> Proxy {
        let up = upstream
            .strip_prefix("http://")
            .expect("an http:// upstream")
            .trim_end_matches('/')
            .to_owned();
        assert!(
            up.starts_with("127.") || up.starts_with("localhost:"),
            "the proxy only talks to loopback, not {up}"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let faulted = Arc::new(AtomicU64::new(0));
        let f = faulted.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (up, f) = (up.clone(), f.clone());
                std::thread::spawn(move || {
                    if let Err(e) = handle(client, &up, fault, &f) {
                        eprintln!("proxy: {e}");
                    }
                });
            }
        });
        Proxy { endpoint, faulted }
    }

    /// How many answers it changed.
    pub fn faulted(&self) -> u64 {
        self.faulted.load(Ordering::Relaxed)
    }
}

/// Reads a message head (up to the blank line) and returns its lines.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(if lines.is_empty() { None } else { Some(lines) });
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(line);
    }
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines[1..].iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The head with `drop` headers removed and `Connection: close`.
fn rewrite(lines: &[String], drop: &[&str]) -> Vec<u8> {
    let mut out = String::new();
    out.push_str(&lines[0]);
    out.push_str("\r\n");
    for l in &lines[1..] {
        let name = l.split_once(':').map_or("", |(k, _)| k.trim());
        if name.eq_ignore_ascii_case("connection")
            || drop.iter().any(|d| name.eq_ignore_ascii_case(d))
        {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn handle(client: TcpStream, up: &str, fault: Fault, faulted: &AtomicU64) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    let Some(req) = read_head(&mut reader)? else {
        return Ok(());
    };
    assert!(
        header(&req, "transfer-encoding").is_none(),
        "the proxy frames bodies by Content-Length only: {req:?}"
    );
    let len: u64 = header(&req, "content-length").map_or(0, |v| v.parse().unwrap_or(0));
    let mut body = Vec::with_capacity(len as usize);
    (&mut reader).take(len).read_to_end(&mut body)?;
    let mut parts = req[0].split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let put_object = method == "PUT" && !target.contains("partNumber=");
    let complete = method == "POST" && target.contains("uploadId=");
    if fault == Fault::SwallowPuts && put_object {
        faulted.fetch_add(1, Ordering::Relaxed);
        client.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    let mut upstream = TcpStream::connect(up)?;
    upstream.write_all(&rewrite(&req, &["expect"]))?;
    upstream.write_all(&body)?;
    let mut up_reader = BufReader::new(upstream);
    let Some(resp) = read_head(&mut up_reader)? else {
        return Ok(());
    };
    if let Fault::FlipRangedGetBodies(n) = fault {
        if method == "GET" && resp[0].contains(" 206 ") && faulted.load(Ordering::Relaxed) < n {
            let len: usize = header(&resp, "content-length").map_or(0, |v| v.parse().unwrap_or(0));
            let mut body = vec![0u8; len];
            up_reader.read_exact(&mut body)?;
            if len > 0 && faulted.fetch_add(1, Ordering::Relaxed) < n {
                body[len / 2] ^= 0x40;
            }
            client.write_all(&rewrite(&resp, &[]))?;
            client.write_all(&body)?;
            return Ok(());
        }
    }
    let strip = fault == Fault::StripPutEtag && (put_object || complete);
    if strip {
        faulted.fetch_add(1, Ordering::Relaxed);
    }
    let drop: &[&str] = match (strip, complete) {
        // The body shrinks: no Content-Length, the close ends it.
        (true, true) => &["etag", "content-length"],
        (true, false) => &["etag"],
        _ => &[],
    };
    client.write_all(&rewrite(&resp, drop))?;
    // A CompleteMultipartUpload answer carries the ETag in its XML body too.
    if strip && complete {
        let mut rest = String::new();
        up_reader.read_to_string(&mut rest)?;
        let cleaned = match (rest.find("<ETag>"), rest.find("</ETag>")) {
            (Some(a), Some(b)) if a < b => format!("{}{}", &rest[..a], &rest[b + 7..]),
            _ => rest,
        };
        client.write_all(cleaned.as_bytes())?;
    } else {
        std::io::copy(&mut up_reader, &mut client)?;
    }
    Ok(())
}
