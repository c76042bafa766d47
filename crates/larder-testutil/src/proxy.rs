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
    /// Flip one byte in the middle of the body of the first `n` PUT requests that carry one
    /// (PutObject, UploadPart), keeping their length, before forwarding them: bytes damaged
    /// on the way to the server, which must refuse them.
    FlipPutBodies(u64),
    /// With probability `percent`/100 per request (seeded, so a run can be replayed), one
    /// of the [`Injected`] faults, picked at random.
    Random {
        /// The seed.
        seed: u64,
        /// Faulted requests per hundred.
        percent: u32,
    },
    /// A server overloaded above `max` requests in flight: a request that arrives while
    /// `max` are being forwarded is answered `503 SlowDown` (with `Retry-After: <secs>` when
    /// given), counted as [`Injected::SlowDown`].
    ThrottleAbove {
        /// Requests the server takes at once.
        max: u64,
        /// The `Retry-After` it sends, in seconds.
        retry_after: Option<u32>,
        /// How long the server takes per request, in milliseconds (so requests overlap).
        latency_ms: u64,
    },
}

/// The faults [`Fault::Random`] injects, counted by [`Proxy::injected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// `503 SlowDown` with S3's XML body; the request is not forwarded.
    SlowDown,
    /// `500 InternalError` with S3's XML body; not forwarded.
    InternalError,
    /// `429 Too Many Requests`; not forwarded.
    TooMany,
    /// The connection is closed before the request is forwarded.
    ResetBefore,
    /// The request is forwarded (a PUT is stored) and the answer dropped: the connection is
    /// closed.
    DropAnswer,
    /// The answer's head and half its body, then the connection is closed.
    ResetMidBody,
    /// One body byte flipped, the length kept (answers with a body only).
    FlipByte,
    /// The answer is held back 300 ms.
    Delay,
}

impl Injected {
    const ALL: [Injected; 8] = [
        Injected::SlowDown,
        Injected::InternalError,
        Injected::TooMany,
        Injected::ResetBefore,
        Injected::DropAnswer,
        Injected::ResetMidBody,
        Injected::FlipByte,
        Injected::Delay,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Injected::SlowDown => "503 SlowDown",
            Injected::InternalError => "500 InternalError",
            Injected::TooMany => "429",
            Injected::ResetBefore => "reset before response",
            Injected::DropAnswer => "answer dropped after forwarding",
            Injected::ResetMidBody => "reset mid-body",
            Injected::FlipByte => "byte flipped",
            Injected::Delay => "delayed",
        }
    }
}

/// State shared by the proxy's connections.
#[derive(Debug)]
struct Shared {
    fault: Fault,
    faulted: AtomicU64,
    requests: AtomicU64,
    rng: std::sync::Mutex<rand::rngs::StdRng>,
    injected: [AtomicU64; 8],
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    part_puts: AtomicU64,
}

/// Counts a request out of `in_flight` when dropped.
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running proxy; it lives as long as the test process.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    shared: Arc<Shared>,
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
        use rand::SeedableRng;
        let seed = match fault {
            Fault::Random { seed, .. } => seed,
            _ => 0,
        };
        let shared = Arc::new(Shared {
            fault,
            faulted: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            rng: std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            injected: Default::default(),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            part_puts: AtomicU64::new(0),
        });
        let sh = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (up, sh) = (up.clone(), sh.clone());
                std::thread::spawn(move || {
                    // A reset or a dropped answer is the point of some faults: not an error.
                    let _ = handle(client, &up, &sh);
                });
            }
        });
        Proxy { endpoint, shared }
    }

    /// How many requests it received.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// How many UploadPart requests it received.
    pub fn part_puts(&self) -> u64 {
        self.shared.part_puts.load(Ordering::Relaxed)
    }

    /// The most requests it had in flight at once.
    pub fn peak_in_flight(&self) -> u64 {
        self.shared.peak_in_flight.load(Ordering::Relaxed)
    }

    /// How many answers it changed.
    pub fn faulted(&self) -> u64 {
        self.shared.faulted.load(Ordering::Relaxed)
    }

    /// What [`Fault::Random`] injected, by kind (kinds never injected left out).
    pub fn injected(&self) -> Vec<(Injected, u64)> {
        Injected::ALL
            .iter()
            .zip(&self.shared.injected)
            .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

fn s3_error(code: u16, reason: &str, s3_code: &str) -> Vec<u8> {
    s3_error_with(code, reason, s3_code, "")
}

fn s3_error_with(code: u16, reason: &str, s3_code: &str, extra_headers: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{s3_code}</Code><Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>"
    );
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
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

fn handle(client: TcpStream, up: &str, sh: &Shared) -> std::io::Result<()> {
    let (fault, faulted) = (sh.fault, &sh.faulted);
    sh.requests.fetch_add(1, Ordering::Relaxed);
    let injected = match fault {
        Fault::Random { percent, .. } => {
            use rand::Rng;
            let mut rng = sh.rng.lock().expect("proxy rng");
            (rng.gen_range(0..100u32) < percent)
                .then(|| Injected::ALL[rng.gen_range(0..Injected::ALL.len())])
        }
        _ => None,
    };
    if let Some(i) = injected {
        let n = Injected::ALL.iter().position(|k| *k == i).expect("a kind");
        sh.injected[n].fetch_add(1, Ordering::Relaxed);
        faulted.fetch_add(1, Ordering::Relaxed);
    }
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
    let now = sh.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let _in_flight = InFlight(&sh.in_flight);
    sh.peak_in_flight.fetch_max(now, Ordering::Relaxed);
    if let Fault::ThrottleAbove {
        max,
        retry_after,
        latency_ms,
    } = fault
    {
        if now > max {
            sh.injected[0].fetch_add(1, Ordering::Relaxed);
            faulted.fetch_add(1, Ordering::Relaxed);
            let extra = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
            return client.write_all(&s3_error_with(503, "Slow Down", "SlowDown", &extra));
        }
        std::thread::sleep(std::time::Duration::from_millis(latency_ms));
    }
    let mut parts = req[0].split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "PUT" && target.contains("partNumber=") {
        sh.part_puts.fetch_add(1, Ordering::Relaxed);
    }
    match injected {
        Some(Injected::SlowDown) => {
            return client.write_all(&s3_error(503, "Slow Down", "SlowDown"))
        }
        Some(Injected::InternalError) => {
            return client.write_all(&s3_error(500, "Internal Server Error", "InternalError"))
        }
        Some(Injected::TooMany) => {
            return client.write_all(&s3_error(429, "Too Many Requests", "SlowDown"))
        }
        Some(Injected::ResetBefore) => return Ok(()), // dropped: the connection closes
        _ => {}
    }
    let put_object = method == "PUT" && !target.contains("partNumber=");
    let complete = method == "POST" && target.contains("uploadId=");
    if fault == Fault::SwallowPuts && put_object {
        faulted.fetch_add(1, Ordering::Relaxed);
        client.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    if let Fault::FlipPutBodies(n) = fault {
        let flip = method == "PUT"
            && !body.is_empty()
            && faulted
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    (c < n).then_some(c + 1)
                })
                .is_ok();
        if flip {
            let mid = body.len() / 2;
            body[mid] ^= 0x20;
        }
    }
    let mut upstream = TcpStream::connect(up)?;
    upstream.write_all(&rewrite(&req, &["expect"]))?;
    upstream.write_all(&body)?;
    let mut up_reader = BufReader::new(upstream);
    let Some(resp) = read_head(&mut up_reader)? else {
        return Ok(());
    };
    match injected {
        // The server did the work (a PUT is stored); the client never hears of it.
        Some(Injected::DropAnswer) => return Ok(()),
        Some(Injected::Delay) => std::thread::sleep(std::time::Duration::from_millis(300)),
        Some(Injected::ResetMidBody | Injected::FlipByte) => {
            let len: usize = header(&resp, "content-length").map_or(0, |v| v.parse().unwrap_or(0));
            let mut rest = Vec::new();
            up_reader.read_to_end(&mut rest)?;
            let has_body = method != "HEAD" && len > 0 && rest.len() >= len;
            client.write_all(&rewrite(&resp, &[]))?;
            if has_body && injected == Some(Injected::FlipByte) {
                rest[len / 2] ^= 0x08;
                client.write_all(&rest[..len])?;
            } else if has_body {
                client.write_all(&rest[..len / 2])?; // then the connection closes
            } else {
                client.write_all(&rest)?;
            }
            return Ok(());
        }
        _ => {}
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_fault_rate_is_the_one_asked_for() {
        use rand::{Rng, SeedableRng};
        for (seed, percent) in [(7u64, 5u32), (11, 15)] {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let hits = (0..10_000)
                .filter(|_| {
                    let hit = rng.gen_range(0..100u32) < percent;
                    if hit {
                        let _ = rng.gen_range(0..8usize);
                    }
                    hit
                })
                .count();
            let want = 100 * percent as usize;
            assert!(
                hits.abs_diff(want) < want / 5,
                "{percent}%: {hits} of 10,000"
            );
        }
    }
}
