//! A loopback HTTP receiver for the SMS webhook: it records every request and answers with the
//! statuses it is given, then 200.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as it came.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// The status it was answered with.
    pub answered: u16,
}

#[derive(Default)]
struct Shared {
    requests: Vec<Request>,
    /// Statuses for the next requests, in order; 200 once they are used up.
    answers: VecDeque<u16>,
}

pub struct Receiver {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl Receiver {
    /// Listens on a free loopback port until the test process ends; `answers` go to the first requests.
    pub fn start(answers: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the webhook");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared { requests: Vec::new(), answers: answers.iter().copied().collect() }));
        let serving = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&serving);
                std::thread::spawn(move || {
                    let _ = answer(stream, &shared);
                });
            }
        });
        Self { port, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Polls until at least `count` requests came; fails with those that did after `timeout`.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Request> {
        let started = Instant::now();
        loop {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            assert!(started.elapsed() < timeout, "{count} webhook requests expected, got {requests:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Reads one HTTP/1.1 request, records it and answers it; the connection then closes.
fn answer(stream: std::net::TcpStream, shared: &Mutex<Shared>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or("").to_owned(), words.next().unwrap_or("").to_owned());
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let status = {
        let mut shared = shared.lock().unwrap();
        let status = shared.answers.pop_front().unwrap_or(200);
        let body = String::from_utf8_lossy(&body).into_owned();
        shared.requests.push(Request { method, path, headers, body, answered: status });
        status
    };
    let reply = format!("{{\"status\": {status}}}");
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} Answer\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    )
}
