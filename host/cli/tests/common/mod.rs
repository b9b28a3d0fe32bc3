//! Shared by the tests that run the real binary as a server: start
//! `pitwall` with a store in a temporary directory, learn its address from
//! its log, speak plain HTTP/1.1 to it, and kill it whatever happens.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use serde_json::Value;

/// The binary under test.
pub fn pitwall_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pitwall"))
}

/// Runs `pitwall ARGS` to the end.
pub fn pitwall(args: &[&str]) -> Output {
    pitwall_cmd().args(args).output().expect("runs pitwall")
}

/// A `pitwall` serving on loopback, killed when dropped (a test that panics
/// must not leave a `--stay` server behind).
pub struct Served {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Set once the race is over (`--stay`'s "still serving") or the process ended.
    pub over: Arc<AtomicBool>,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    /// The temporary directory holding the store.
    pub dir: tempfile::TempDir,
}

impl Served {
    /// The store this server uses.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("pitwall.db")
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Kills the server; its whole log.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.log()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `pitwall ARGS --db <temp>/pitwall.db` (and `--listen 127.0.0.1:0`
/// unless ARGS listen elsewhere) and waits for its address.
pub fn serve(args: &[&str]) -> Served {
    serve_in(tempfile::tempdir().expect("a temp dir"), args)
}

/// [`serve`] with the store in `dir` (e.g. one holding keys already).
pub fn serve_in(dir: tempfile::TempDir, args: &[&str]) -> Served {
    let db = dir.path().join("pitwall.db");
    let mut cmd = pitwall_cmd();
    cmd.args(args).arg("--db").arg(&db);
    if !args.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs pitwall");
    let err = BufReader::new(child.stderr.take().unwrap());
    let (addr_tx, addr_rx) = mpsc::channel();
    let over = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (over, log) = (over.clone(), log.clone());
        std::thread::spawn(move || {
            for line in err.lines() {
                let Ok(line) = line else { break };
                // "feeds on http://127.0.0.1:PORT: /feed (SSE), ..."
                if let Some((a, _)) = line
                    .strip_prefix("feeds on http://")
                    .and_then(|rest| rest.split_once(": "))
                {
                    let _ = addr_tx.send(a.to_string());
                }
                if line.contains("still serving") {
                    over.store(true, Ordering::SeqCst);
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
            over.store(true, Ordering::SeqCst);
        })
    };
    let served = |addr| Served {
        child,
        addr,
        over,
        log,
        reader: Some(reader),
        dir,
    };
    match addr_rx.recv() {
        Ok(addr) => served(addr),
        Err(_) => {
            let s = served(String::new());
            panic!("pitwall printed no address:\n{}", s.stop());
        }
    }
}

/// A whole HTTP/1.1 exchange: status, head, body.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// A response header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One request with `Connection: close`; `headers` as `Name: value` lines.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += &format!("Content-Length: {}\r\n\r\n", body.len());
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut text = Vec::new();
    s.read_to_end(&mut text).unwrap();
    let text = String::from_utf8_lossy(&text).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {text}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// `GET path`: the status and the JSON body (`Null` if it is not JSON).
pub fn get(addr: &str, path: &str) -> (u16, Value) {
    let r = http(addr, "GET", path, &[], b"");
    (r.status, r.json())
}

/// Makes an API key in the store at `db`; the secret.
pub fn create_key(db: &Path, user: &str, role: &str) -> String {
    let db = db.to_str().unwrap();
    let out = pitwall(&["keys", "create", "--db", db, "--user", user, "--role", role]);
    assert!(
        out.status.success(),
        "keys create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
