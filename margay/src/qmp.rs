//! A minimal QMP (QEMU Machine Protocol) client: the greeting and capabilities
//! handshake, `query-cpus-fast` for the vCPU thread ids, and `cont`. QEMU is
//! trusted less than margay: every reply is size-limited, time-limited and
//! checked, and a bad one is an error, never a panic.

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use thiserror::Error;

/// The longest reply line accepted.
pub const MAX_LINE: u64 = 1 << 20;

#[derive(Debug, Error)]
pub enum QmpError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("QEMU closed the connection (it probably exited; see its messages)")]
    Closed,
    #[error("I/O error: {0}")]
    Io(io::Error),
    #[error("a reply line is longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("malformed reply ({why}): {line}")]
    Malformed { why: String, line: String },
    #[error("'{cmd}' failed: {desc}")]
    Command { cmd: String, desc: String },
}

fn malformed(why: impl Into<String>, line: &str) -> QmpError {
    let mut line = line.trim_end().to_string();
    if line.len() > 200 {
        let mut cut = 200;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    QmpError::Malformed {
        why: why.into(),
        line,
    }
}

/// One message from QEMU.
#[derive(Debug, PartialEq)]
pub enum Message {
    Greeting,
    Event(String),
    Return(Value),
    Error(String),
}

/// Parse one line QEMU sent.
pub fn parse_message(line: &str) -> Result<Message, QmpError> {
    let v: Value = serde_json::from_str(line).map_err(|e| malformed(e.to_string(), line))?;
    let Some(obj) = v.as_object() else {
        return Err(malformed("not a JSON object", line));
    };
    if obj.contains_key("QMP") {
        return Ok(Message::Greeting);
    }
    if let Some(e) = obj.get("event") {
        return Ok(Message::Event(e.as_str().unwrap_or("?").to_string()));
    }
    if let Some(r) = obj.get("return") {
        return Ok(Message::Return(r.clone()));
    }
    if let Some(e) = obj.get("error") {
        let desc = e
            .get("desc")
            .and_then(Value::as_str)
            .unwrap_or("no description");
        let class = e.get("class").and_then(Value::as_str).unwrap_or("error");
        return Ok(Message::Error(format!("{class}: {desc}")));
    }
    Err(malformed(
        "neither a greeting, an event, a return nor an error",
        line,
    ))
}

/// The thread ids of vCPUs 0..n from a `query-cpus-fast` return value.
pub fn parse_cpus_fast(v: &Value, n: usize) -> Result<Vec<u32>, QmpError> {
    let bad = |why: String| malformed(why, &v.to_string());
    let list = v
        .as_array()
        .ok_or_else(|| bad("query-cpus-fast did not return a list".into()))?;
    if list.len() != n {
        return Err(bad(format!("{} vCPUs instead of {n}", list.len())));
    }
    let mut tids: Vec<Option<u32>> = vec![None; n];
    for cpu in list {
        let field = |name: &str| {
            cpu.get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| bad(format!("a vCPU without a valid '{name}'")))
        };
        let index = field("cpu-index")?;
        let tid = field("thread-id")?;
        let tid = u32::try_from(tid)
            .ok()
            .filter(|&t| t > 0 && i32::try_from(t).is_ok())
            .ok_or_else(|| bad(format!("thread id {tid} is out of range")))?;
        let slot = usize::try_from(index)
            .ok()
            .and_then(|i| tids.get_mut(i))
            .ok_or_else(|| bad(format!("cpu-index {index} is out of range")))?;
        if slot.replace(tid).is_some() {
            return Err(bad(format!("cpu-index {index} appears twice")));
        }
    }
    // n entries, none twice, all in range: every slot is filled.
    Ok(tids.into_iter().flatten().collect())
}

/// A QMP connection in command mode.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    timeout: Duration,
}

impl Qmp {
    /// Read the greeting and leave capabilities negotiation mode. Each exchange
    /// must complete within `timeout`.
    pub fn handshake(stream: UnixStream, timeout: Duration) -> Result<Qmp, QmpError> {
        let mut q = Qmp {
            reader: BufReader::new(stream),
            timeout,
        };
        let deadline = Instant::now() + timeout;
        match q.read_message(deadline)? {
            Message::Greeting => {}
            other => {
                return Err(malformed(
                    "expected the QMP greeting",
                    &format!("{other:?}"),
                ))
            }
        }
        q.execute("qmp_capabilities")?;
        Ok(q)
    }

    fn read_message(&mut self, deadline: Instant) -> Result<Message, QmpError> {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(QmpError::Timeout(self.timeout))?;
        self.reader
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(QmpError::Io)?;
        let mut buf = Vec::new();
        let r = (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf);
        match r {
            Ok(0) => Err(QmpError::Closed),
            Ok(_) if !buf.ends_with(b"\n") && buf.len() as u64 >= MAX_LINE => {
                Err(QmpError::TooLong)
            }
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                parse_message(&line)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(QmpError::Timeout(self.timeout))
            }
            Err(e) => Err(QmpError::Io(e)),
        }
    }

    /// Run `cmd` (no arguments) and return its result; events are skipped.
    pub fn execute(&mut self, cmd: &str) -> Result<Value, QmpError> {
        self.send(cmd, serde_json::json!({ "execute": cmd }))
    }

    /// Run `cmd` with `arguments` and return its result; events are skipped.
    pub fn execute_args(&mut self, cmd: &str, arguments: Value) -> Result<Value, QmpError> {
        self.send(
            cmd,
            serde_json::json!({ "execute": cmd, "arguments": arguments }),
        )
    }

    fn send(&mut self, cmd: &str, msg: Value) -> Result<Value, QmpError> {
        let deadline = Instant::now() + self.timeout;
        let req = msg.to_string() + "\n";
        let s = self.reader.get_mut();
        s.set_write_timeout(Some(self.timeout))
            .map_err(QmpError::Io)?;
        s.write_all(req.as_bytes()).map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => QmpError::Closed,
            _ => QmpError::Io(e),
        })?;
        loop {
            match self.read_message(deadline)? {
                Message::Event(_) => continue,
                Message::Return(v) => return Ok(v),
                Message::Error(desc) => {
                    return Err(QmpError::Command {
                        cmd: cmd.into(),
                        desc,
                    })
                }
                Message::Greeting => return Err(malformed("a second greeting", "{\"QMP\": ...}")),
            }
        }
    }

    /// The host thread id of each of the `n` vCPUs, by cpu-index.
    pub fn vcpu_threads(&mut self, n: usize) -> Result<Vec<u32>, QmpError> {
        let v = self.execute("query-cpus-fast")?;
        parse_cpus_fast(&v, n)
    }

    /// Start (or resume) the guest.
    pub fn cont(&mut self) -> Result<(), QmpError> {
        self.execute("cont").map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages() {
        let greeting = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}"#;
        assert_eq!(parse_message(greeting).unwrap(), Message::Greeting);
        assert_eq!(
            parse_message("{\"return\": {}}\r\n").unwrap(),
            Message::Return(json!({}))
        );
        assert_eq!(
            parse_message(r#"{"event": "RESUME", "timestamp": {"seconds": 1}}"#).unwrap(),
            Message::Event("RESUME".into())
        );
        assert_eq!(
            parse_message(r#"{"error": {"class": "CommandNotFound", "desc": "nope"}}"#).unwrap(),
            Message::Error("CommandNotFound: nope".into())
        );
        for bad in [
            "",
            "{",
            "[]",
            "42",
            "null",
            "{\"foo\": 1}",
            "{\"return\": 1} x",
        ] {
            assert!(
                matches!(parse_message(bad), Err(QmpError::Malformed { .. })),
                "{bad:?} accepted"
            );
        }
        let long = format!("{{\"x\": \"{}\"", "é".repeat(500));
        let e = parse_message(&long).unwrap_err().to_string();
        assert!(e.len() < 400 && e.ends_with("..."), "{e}");
    }

    #[test]
    fn cpus_fast() {
        let real = json!([
            {"thread-id": 19077, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0},
             "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"},
            {"thread-id": 19078, "props": {"core-id": 1, "thread-id": 0, "socket-id": 0},
             "qom-path": "/machine/unattached/device[2]", "cpu-index": 1, "target": "x86_64"}
        ]);
        assert_eq!(parse_cpus_fast(&real, 2).unwrap(), [19077, 19078]);
        let swapped = json!([
            {"cpu-index": 1, "thread-id": 8},
            {"cpu-index": 0, "thread-id": 7}
        ]);
        assert_eq!(parse_cpus_fast(&swapped, 2).unwrap(), [7, 8]);
        for bad in [
            json!({}),
            json!([]),
            json!([{"cpu-index": 0, "thread-id": 7}]),
            json!([{"cpu-index": 0, "thread-id": 7}, {"cpu-index": 0, "thread-id": 8}]),
            json!([{"cpu-index": 0, "thread-id": 7}, {"cpu-index": 2, "thread-id": 8}]),
            json!([{"cpu-index": 0, "thread-id": 7}, {"cpu-index": 1}]),
            json!([{"cpu-index": 0, "thread-id": 7}, {"cpu-index": 1, "thread-id": "8"}]),
            json!([{"cpu-index": 0, "thread-id": 7}, {"cpu-index": 1, "thread-id": -8}]),
            json!([{"cpu-index": 0, "thread-id": 7}, {"cpu-index": 1, "thread-id": 0}]),
            json!([{"cpu-index": 0, "thread-id": 7}, {"cpu-index": 1, "thread-id": 4294967296u64}]),
            json!([{"cpu-index": 0, "thread-id": 7}, {"cpu-index": -1, "thread-id": 8}]),
            json!([{"cpu-index": 0, "thread-id": 7}, 5]),
        ] {
            assert!(parse_cpus_fast(&bad, 2).is_err(), "{bad} accepted");
        }
    }

    /// A fake QEMU on the other end of a socketpair.
    fn fake(script: &'static [&'static str]) -> (UnixStream, std::thread::JoinHandle<Vec<String>>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let h = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut r = BufReader::new(theirs.try_clone().unwrap());
            let mut w = theirs;
            for line in script {
                if let Some(reply) = line.strip_prefix("> ") {
                    let _ = w.write_all(reply.as_bytes());
                    let _ = w.write_all(b"\r\n");
                } else {
                    let mut l = String::new();
                    if r.read_line(&mut l).unwrap_or(0) == 0 {
                        break;
                    }
                    got.push(l.trim_end().to_string());
                }
            }
            got
        });
        (ours, h)
    }

    #[test]
    fn conversation() {
        let (s, h) = fake(&[
            "> {\"QMP\": {\"version\": {}, \"capabilities\": []}}",
            "<",
            "> {\"return\": {}}",
            "<",
            "> {\"event\": \"SOMETHING\"}",
            "> {\"return\": [{\"cpu-index\": 0, \"thread-id\": 42}]}",
            "<",
            "> {\"return\": {}}",
        ]);
        let mut q = Qmp::handshake(s, Duration::from_secs(5)).unwrap();
        assert_eq!(q.vcpu_threads(1).unwrap(), [42]);
        q.cont().unwrap();
        drop(q);
        assert_eq!(
            h.join().unwrap(),
            [
                r#"{"execute":"qmp_capabilities"}"#,
                r#"{"execute":"query-cpus-fast"}"#,
                r#"{"execute":"cont"}"#
            ]
        );
    }

    #[test]
    fn failures_are_errors() {
        // Silence: a timeout.
        let (s, h) = fake(&["<"]);
        let e = Qmp::handshake(s, Duration::from_millis(100)).err().unwrap();
        assert!(matches!(e, QmpError::Timeout(_)), "{e}");
        drop(h);
        // Hang-up before the greeting.
        let (s, h) = fake(&[]);
        h.join().unwrap();
        assert!(matches!(
            Qmp::handshake(s, Duration::from_secs(5)),
            Err(QmpError::Closed)
        ));
        // Garbage instead of a greeting.
        let (s, _h) = fake(&["> \u{1}garbage"]);
        assert!(matches!(
            Qmp::handshake(s, Duration::from_secs(5)),
            Err(QmpError::Malformed { .. })
        ));
        // A command error.
        let (s, _h) = fake(&[
            "> {\"QMP\": {}}",
            "<",
            "> {\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}",
        ]);
        let e = Qmp::handshake(s, Duration::from_secs(5)).err().unwrap();
        assert_eq!(e.to_string(), "'qmp_capabilities' failed: GenericError: no");
        // An endless line.
        let (ours, theirs) = UnixStream::pair().unwrap();
        let w = std::thread::spawn(move || {
            let mut theirs = theirs;
            let chunk = vec![b'x'; 64 << 10];
            for _ in 0..(MAX_LINE / (64 << 10) + 2) {
                if theirs.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        assert!(matches!(
            Qmp::handshake(ours, Duration::from_secs(5)),
            Err(QmpError::TooLong)
        ));
        w.join().unwrap();
    }
}
