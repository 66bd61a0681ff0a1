//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1, between a client and an S3 server.
//!
//! It reads each request's head and body from the client (Content-Length framing, as the S3
//! client sends), records it, and then either forwards it to the server or injects a fault:
//! - [`FaultKind::Reset`]: closes the client connection with a TCP reset;
//! - [`FaultKind::Stall`]: holds the request without answering for `stall`, then closes;
//! - [`FaultKind::SlowDown`]: answers `503 Slow Down` with an S3 XML error body.
//!
//! Which requests fail: an optional rule (a function of the request) decides first, else a
//! seeded random draw with `fault_rate` picks one of `kinds`. At most `max_faults` faults are
//! injected in total (then everything is forwarded), and dropping the proxy stops it: the
//! listener closes and every open connection is shut down, so no thread outlives it for
//! long.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Reset,
    Stall,
    SlowDown,
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/bucket/prefix/packs/ab/abab…?partNumber=2&uploadId=…`.
    pub target: String,
    pub body_len: u64,
    pub fault: Option<FaultKind>,
}

pub type Rule = Box<dyn Fn(&Request) -> Option<FaultKind> + Send + Sync>;

pub struct Settings {
    /// Share of requests (0.0 to 1.0) that get a random fault.
    pub fault_rate: f64,
    /// The kinds random faults are drawn from.
    pub kinds: Vec<FaultKind>,
    /// How long a stalled request is held before its connection is closed.
    pub stall: Duration,
    /// Faults injected at most, in total.
    pub max_faults: u64,
    /// Decides before the random draw; `None` from it means "draw".
    pub rule: Option<Rule>,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            fault_rate: 0.0,
            kinds: vec![FaultKind::Reset, FaultKind::Stall, FaultKind::SlowDown],
            stall: Duration::from_millis(500),
            max_faults: u64::MAX,
            rule: None,
            seed: 1,
        }
    }
}

struct Shared {
    upstream: SocketAddr,
    settings: Mutex<Settings>,
    rng: Mutex<u64>,
    stop: AtomicBool,
    faults: AtomicU64,
    log: Mutex<Vec<Request>>,
    open: Mutex<std::collections::HashMap<u64, Vec<TcpStream>>>,
    next_conn: AtomicU64,
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr, settings: Settings) -> FaultProxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy only forwards to 127.0.0.1"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let seed = settings.seed.max(1);
        let shared = Arc::new(Shared {
            upstream,
            settings: Mutex::new(settings),
            rng: Mutex::new(seed),
            stop: AtomicBool::new(false),
            faults: AtomicU64::new(0),
            log: Mutex::default(),
            open: Mutex::default(),
            next_conn: AtomicU64::new(0),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let s = s.clone();
                    std::thread::spawn(move || handle(s, conn));
                }
            })
            .unwrap();
        FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the settings for the requests still to come.
    pub fn update(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.shared.settings.lock().unwrap());
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.shared.log.lock().unwrap().clear();
    }

    pub fn faults(&self) -> u64 {
        self.shared.faults.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the acceptor
        for (_, conns) in self.shared.open.lock().unwrap().drain() {
            for s in conns {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    /// Remembers a socket of connection `id`, so that dropping the proxy can shut it down.
    fn track(&self, id: u64, s: &TcpStream) {
        if let Ok(c) = s.try_clone() {
            self.open.lock().unwrap().entry(id).or_default().push(c);
        }
    }

    fn untrack(&self, id: u64) {
        self.open.lock().unwrap().remove(&id);
    }

    fn next_random(&self) -> f64 {
        let mut x = self.rng.lock().unwrap();
        // xorshift64*
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn decide(&self, req: &Request) -> Option<FaultKind> {
        let settings = self.settings.lock().unwrap();
        if self.faults.load(Ordering::SeqCst) >= settings.max_faults {
            return None;
        }
        let fault = match settings.rule.as_ref().and_then(|rule| rule(req)) {
            Some(f) => Some(f),
            None if settings.fault_rate > 0.0 && !settings.kinds.is_empty() => {
                if self.next_random() < settings.fault_rate {
                    let i = (self.next_random() * settings.kinds.len() as f64) as usize;
                    Some(settings.kinds[i.min(settings.kinds.len() - 1)])
                } else {
                    None
                }
            }
            None => None,
        };
        if fault.is_some() {
            self.faults.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }
}

/// Reads from `conn` into `buf` until it holds a full request head; returns its length.
fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(pos + 4);
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let mut chunk = [0u8; 8192];
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn reset(conn: &TcpStream) {
    // SO_LINGER with a zero timeout turns close() into a TCP reset.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

struct Upstream {
    conn: TcpStream,
    pump: JoinHandle<()>,
}

fn handle(shared: Arc<Shared>, mut client: TcpStream) {
    let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    shared.track(id, &client);
    let resetting = Arc::new(AtomicBool::new(false));
    let mut upstream: Option<Upstream> = None;
    let mut buf = Vec::new();
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Some(head_len) = read_head(&mut client, &mut buf) else {
            break;
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).to_string();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("").to_string();
        let mut body_len = 0u64;
        let mut chunked = false;
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    body_len = v.trim().parse().unwrap_or(0);
                } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                    chunked = true;
                }
            }
        }
        let mut req = Request {
            method,
            target,
            body_len,
            fault: None,
        };
        req.fault = shared.decide(&req);
        shared.log.lock().unwrap().push(req.clone());
        let rest: Vec<u8> = buf.drain(..).skip(head_len).collect();

        match req.fault {
            Some(FaultKind::Reset) => {
                // Every descriptor of the client socket must be closed for the reset to go
                // out: stop the answer pump (it holds one) and forget the tracked copy.
                resetting.store(true, Ordering::SeqCst);
                if let Some(up) = upstream.take() {
                    let _ = up.conn.shutdown(Shutdown::Both);
                    let _ = up.pump.join();
                }
                shared.untrack(id);
                reset(&client);
                return;
            }
            Some(FaultKind::Stall) => {
                let stall = shared.settings.lock().unwrap().stall;
                let until = Instant::now() + stall;
                while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                break;
            }
            Some(FaultKind::SlowDown) => {
                // Take the body first, so the client reads the answer, not a reset.
                let mut left = body_len.saturating_sub(rest.len() as u64);
                let mut sink = [0u8; 65536];
                while left > 0 {
                    match client.read(&mut sink[..left.min(65536) as usize]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => left -= n as u64,
                    }
                }
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                            <Message>Please reduce your request rate.</Message><Resource></Resource>\
                            <RequestId>fault-proxy</RequestId></Error>";
                let answer = format!(
                    "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.write_all(answer.as_bytes());
                let _ = client.flush();
                break;
            }
            None => {}
        }

        // Forward: open the upstream connection on first use, with a pump for answers.
        if upstream.is_none() {
            let Ok(conn) = TcpStream::connect(shared.upstream) else {
                break;
            };
            shared.track(id, &conn);
            let (mut from, mut to) = (conn.try_clone().unwrap(), client.try_clone().unwrap());
            let resetting = resetting.clone();
            let pump = std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                if !resetting.load(Ordering::SeqCst) {
                    let _ = to.shutdown(Shutdown::Write);
                }
            });
            upstream = Some(Upstream { conn, pump });
        }
        let up = &mut upstream.as_mut().unwrap().conn;
        if up.write_all(head.as_bytes()).is_err() {
            break;
        }
        if chunked {
            // Not parsed: pass the rest of the connection through as it comes.
            let _ = up.write_all(&rest);
            let _ = std::io::copy(&mut client, up);
            break;
        }
        let in_rest = (body_len as usize).min(rest.len());
        if up.write_all(&rest[..in_rest]).is_err() {
            break;
        }
        buf.extend_from_slice(&rest[in_rest..]);
        let mut left = body_len - in_rest as u64;
        let mut chunk = [0u8; 65536];
        while left > 0 {
            match client.read(&mut chunk[..left.min(65536) as usize]) {
                Ok(0) | Err(_) => {
                    left = u64::MAX;
                    break;
                }
                Ok(n) => {
                    if up.write_all(&chunk[..n]).is_err() {
                        left = u64::MAX;
                        break;
                    }
                    left -= n as u64;
                }
            }
        }
        if left != 0 {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    if let Some(up) = upstream {
        let _ = up.conn.shutdown(Shutdown::Both);
    }
    shared.untrack(id);
}
