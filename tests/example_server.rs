//! End to end: the example server (`examples/server.rs`) driven by the
//! example client (`examples/client.rs`), both as real processes on
//! 127.0.0.1 with ephemeral ports.
//!
//! The binaries are built once per test run with `cargo build --example
//! server --example client` (examples have no `CARGO_BIN_EXE_*`). Every
//! wait is bounded; servers are killed by a drop guard.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const DOMAIN: &str = "localhost";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        manifest_dir().join(target)
    };
    target.join("debug").join("examples")
}

/// Builds both examples once (cheap when `cargo test` already built them).
fn binaries() -> &'static (PathBuf, PathBuf) {
    static BINS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINS.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--example", "server", "--example", "client"])
            .current_dir(manifest_dir());
        // Cargo gives this test process the package's CARGO_PKG_*,
        // CARGO_MANIFEST_DIR, …; build scripts (ring's) rerun when those
        // change, so passing them on would rebuild ring here and again in
        // the next plain `cargo build`.
        for (key, _) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            let per_package = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_CFG_",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ];
            if per_package.iter().any(|p| key.starts_with(p)) {
                build.env_remove(key);
            }
        }
        let status = build.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build --example server --example client failed"
        );
        let dir = examples_dir();
        let exe = std::env::consts::EXE_SUFFIX;
        let server = dir.join(format!("server{exe}"));
        let client = dir.join(format!("client{exe}"));
        assert!(server.exists(), "{} missing", server.display());
        assert!(client.exists(), "{} missing", client.display());
        (server, client)
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xmpp-sansio-example-server-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running example server; killed on drop.
struct Server {
    child: Option<Child>,
    port: u16,
    tls_port: u16,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Server {
    fn start(work: &Path, run: &str, extra: &[&str]) -> Server {
        let (server, _) = binaries();
        let port = free_port();
        let tls_port = free_port();
        let stdout = work.join(format!("server-{run}.out"));
        let stderr = work.join(format!("server-{run}.log"));
        let child = Command::new(server)
            .arg("--data")
            .arg(work.join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--direct-tls-listen", &format!("127.0.0.1:{tls_port}")])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn the example server");
        let mut server = Server {
            child: Some(child),
            port,
            tls_port,
            stdout,
            stderr,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("server exited early ({status}):\n{}", self.log());
            }
            // The banner's last line is printed once everything listens.
            let up = self.banner().contains("Ctrl-C stops the server")
                && [self.port, self.tls_port]
                    .iter()
                    .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if up {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "server did not listen within {START_TIMEOUT:?}:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    fn banner(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    #[cfg(unix)]
    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        match wait_bounded(&mut child, Duration::from_secs(15)) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not stop after SIGTERM:\n{}", self.log());
            }
        }
    }

    /// Our client, to the STARTTLS port.
    fn client(&self, user: &str, password: &str) -> Command {
        self.client_on(self.port, user, password)
    }

    fn client_on(&self, port: u16, user: &str, password: &str) -> Command {
        let (_, client) = binaries();
        let mut cmd = Command::new(client);
        cmd.args(["--jid", &format!("{user}@{DOMAIN}")])
            .args(["--password", password])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--insecure", "--timeout", "45"])
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn ok(&self, what: &str) -> &Self {
        assert!(
            self.status.success(),
            "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs a client to completion (bounded; killed after `CLIENT_TIMEOUT`).
fn run(mut cmd: Command) -> Outcome {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_bounded(&mut child, CLIENT_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        child.wait().expect("wait for killed client")
    });
    Outcome {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    })
}

/// A `listen` client in the background; `spawn` returns once its presence
/// came back from the server (so it is available).
struct Background {
    child: Child,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Background {
    fn spawn(mut cmd: Command) -> Background {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client");
        let stdout = drain(child.stdout.take());
        let (online_tx, online_rx) = std::sync::mpsc::channel();
        let stderr_pipe = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                // `listen` announces presence once online; the server
                // reflects it (RFC 6121 §4.2.2) and the client prints it.
                // From then on the session is available to the router.
                if line.starts_with("<- <presence") {
                    let _ = online_tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut bg = Background {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
        };
        if online_rx.recv_timeout(START_TIMEOUT).is_err() {
            let outcome = bg.finish(Duration::ZERO);
            panic!(
                "background client did not become available:\nstdout:\n{}\nstderr:\n{}",
                outcome.stdout, outcome.stderr
            );
        }
        bg
    }

    fn finish(&mut self, limit: Duration) -> Outcome {
        let status = wait_bounded(&mut self.child, limit).unwrap_or_else(|| {
            let _ = self.child.kill();
            self.child.wait().expect("wait for killed client")
        });
        Outcome {
            status,
            stdout: self
                .stdout
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
            stderr: self
                .stderr
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn hundred_messages_arrive_complete_and_in_order() {
    let work = TempDir::new("messages");
    let server = Server::start(&work.0, "1", &[]);

    let mut listen = server.client("bob", "builder");
    listen.args(["listen", "--count", "100"]);
    let mut bob = Background::spawn(listen);

    let mut send = server.client("alice", "wonderland");
    send.args(["send-many", "bob@localhost", "100", "--prefix", "msg"]);
    run(send).ok("alice send-many");

    let got = bob.finish(CLIENT_TIMEOUT);
    got.ok("bob listen --count 100");
    let bodies: Vec<String> = got
        .stdout
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(_, b)| b.to_owned()))
        .collect();
    let expected: Vec<String> = (1..=100).map(|i| format!("msg {i}")).collect();
    assert_eq!(bodies, expected, "bob's output:\n{}", got.stdout);
    assert!(
        got.stdout
            .lines()
            .all(|l| l.starts_with("alice@localhost/")),
        "messages must come from alice's full JID:\n{}",
        got.stdout
    );
}

/// XEP-0198: alice's connection dies without a closing tag after 5
/// messages; she resumes the session on a new connection and sends 5 more.
/// bob gets all 10 exactly once, in order; the server logs the resumption.
#[test]
fn a_dropped_connection_is_resumed_without_loss_or_duplicates() {
    let work = TempDir::new("resume");
    let server = Server::start(&work.0, "1", &[]);

    let mut listen = server.client("bob", "builder");
    listen.args(["listen", "--count", "10"]);
    let mut bob = Background::spawn(listen);

    let mut alice = server.client("alice", "wonderland");
    alice.args(["resume-check", "bob@localhost", "--count", "5"]);
    let out = run(alice);
    out.ok("alice resume-check");
    assert!(
        out.stdout.contains("resumed; all 10 messages acknowledged"),
        "{}",
        out.stdout
    );

    let got = bob.finish(CLIENT_TIMEOUT);
    got.ok("bob listen --count 10");
    let bodies: Vec<String> = got
        .stdout
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(_, b)| b.to_owned()))
        .collect();
    let expected: Vec<String> = (1..=10).map(|i| format!("resume {i}")).collect();
    assert_eq!(bodies, expected, "bob's output:\n{}", got.stdout);
    assert!(server.log().contains("session resumed"), "{}", server.log());
}

#[test]
fn disco_ping_and_direct_tls() {
    let work = TempDir::new("disco");
    let server = Server::start(&work.0, "1", &[]);

    let mut disco = server.client("alice", "wonderland");
    disco.arg("disco");
    let out = run(disco);
    out.ok("disco");
    assert!(
        out.stdout.contains("identity category=server type=im"),
        "{}",
        out.stdout
    );
    let features = [
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "urn:xmpp:ping",
        "jabber:iq:roster",
        "urn:ietf:params:xml:ns:xmpp-session",
        "urn:xmpp:blocking",
        "urn:xmpp:carbons:2",
        "msgoffline",
    ];
    for feature in features {
        assert!(
            out.stdout.contains(&format!("feature {feature}\n")),
            "missing {feature}:\n{}",
            out.stdout
        );
    }
    assert_eq!(
        out.stdout.matches("feature ").count(),
        features.len(),
        "{}",
        out.stdout
    );

    let mut ping = server.client("bob", "builder");
    ping.arg("ping");
    let out = run(ping);
    out.ok("ping");
    assert!(out.stdout.contains("pong from localhost"), "{}", out.stdout);

    // Direct TLS (XEP-0368) on the second listener.
    let mut direct = server.client_on(server.tls_port, "bob", "builder");
    direct.args(["--direct-tls", "ping"]);
    let out = run(direct);
    out.ok("ping over direct TLS");
    assert!(out.stdout.contains("pong from localhost"), "{}", out.stdout);
}

#[cfg(unix)]
#[test]
fn accounts_survive_a_restart_and_wrong_passwords_fail() {
    let work = TempDir::new("restart");
    let mut first = Server::start(&work.0, "1", &["--add-user", "carol:c4rol-Pass"]);
    let banner = first.banner();
    assert!(
        banner.contains("demo account: alice@localhost  password: wonderland"),
        "{banner}"
    );
    let fingerprint = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("SHA-256 "))
        .expect("fingerprint in the banner")
        .to_owned();
    let mut ping = first.client("carol", "c4rol-Pass");
    ping.arg("ping");
    run(ping).ok("carol ping (first run)");
    let status = first.terminate();
    assert!(
        status.success(),
        "server exit after SIGTERM: {status}\n{}",
        first.log()
    );
    let log = first.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        !log.contains("c4rol-Pass"),
        "the password must never be logged:\n{log}"
    );
    drop(first);

    // Same data directory, no --add-user: carol must still exist, and the
    // generated certificate is reused.
    let second = Server::start(&work.0, "2", &[]);
    let banner = second.banner();
    assert!(
        banner.contains(&fingerprint),
        "certificate changed:\n{banner}"
    );
    for (user, password) in [("carol", "c4rol-Pass"), ("alice", "wonderland")] {
        let mut ping = second.client(user, password);
        ping.arg("ping");
        run(ping).ok(&format!("{user} ping after restart"));
    }

    for (user, password) in [("carol", "wrong"), ("nobody", "wonderland")] {
        let mut ping = second.client(user, password);
        ping.arg("ping");
        let out = run(ping);
        assert!(
            !out.status.success(),
            "{user} logged in with a wrong password"
        );
        assert!(
            out.stderr.contains("not-authorized"),
            "expected not-authorized for {user}:\n{}",
            out.stderr
        );
    }
    let log = second.log();
    assert!(log.contains("authentication failed"), "{log}");
    let files: Vec<_> = std::fs::read_dir(work.0.join("data"))
        .expect("data dir")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(
        files.iter().any(|f| f == "accounts.redb"),
        "data dir holds {files:?}"
    );
    let db = std::fs::read(work.0.join("data").join("accounts.redb")).expect("read db");
    for password in ["c4rol-Pass", "wonderland", "builder"] {
        assert!(
            !db.windows(password.len()).any(|w| w == password.as_bytes()),
            "password {password:?} stored in the clear"
        );
    }
}

#[test]
fn a_second_login_with_the_same_resource_replaces_the_first() {
    let work = TempDir::new("conflict");
    let server = Server::start(&work.0, "1", &[]);
    let mut listen = server.client("alice", "wonderland");
    listen.args(["--resource", "desk", "listen"]);
    let mut first = Background::spawn(listen);

    let mut ping = server.client("alice", "wonderland");
    ping.args(["--resource", "desk", "ping"]);
    run(ping).ok("second login with the same resource");

    let out = first.finish(Duration::from_secs(15));
    assert!(
        !out.status.success(),
        "the replaced session must end with an error"
    );
    assert!(out.stderr.contains("conflict"), "{}", out.stderr);
}

#[test]
fn a_new_resource_learns_the_presence_of_the_others() {
    let work = TempDir::new("presence");
    let server = Server::start(&work.0, "1", &[]);
    let mut listen = server.client("alice", "wonderland");
    listen.args(["--resource", "one", "listen"]);
    let mut one = Background::spawn(listen);

    // `two` becomes available after `one`: the server sends it `one`'s
    // last presence (kept by the hub, rebuilt from the JID and id), before
    // bob's message, which ends it.
    let mut listen = server.client("alice", "wonderland");
    listen.args(["--resource", "two", "listen", "--count", "1"]);
    let mut two = Background::spawn(listen);
    let mut send = server.client("bob", "builder");
    send.args(["send", "alice@localhost/two", "hello"]);
    run(send).ok("bob send");

    let got = two.finish(CLIENT_TIMEOUT);
    got.ok("alice/two listen --count 1");
    let presences: Vec<&str> = got
        .stderr
        .lines()
        .filter(|l| l.starts_with("<- <presence"))
        .collect();
    assert!(
        presences
            .iter()
            .any(|l| l.contains("from='alice@localhost/one'") && l.contains(" id=")),
        "alice/two must receive alice/one's presence (with its id):\n{}",
        got.stderr
    );
    drop(one.finish(Duration::ZERO));
}

/// The IM wiring with our own client: a roster set and a message to an
/// offline user, a restart (SIGTERM, same data directory), then the roster
/// is still there and the message is delivered with its `<delay/>`.
#[cfg(unix)]
#[test]
fn roster_and_offline_messages_survive_a_restart() {
    let work = TempDir::new("im-restart");
    let mut first = Server::start(&work.0, "1", &[]);
    let mut roster = first.client("alice", "wonderland");
    roster.args(["roster", "--add", "bob@localhost"]);
    let out = run(roster);
    out.ok("alice roster --add bob");
    assert_eq!(
        out.stdout.trim(),
        "item bob@localhost subscription=none",
        "{}",
        out.stdout
    );
    let mut send = first.client("alice", "wonderland");
    send.args([
        "--resource",
        "desk",
        "send",
        "bob@localhost",
        "while you were away",
    ]);
    let out = run(send);
    out.ok("alice send to offline bob");
    assert!(
        !out.stderr.contains("error"),
        "the message must be stored, not bounced:\n{}",
        out.stderr
    );
    let status = first.terminate();
    assert!(status.success(), "server exit: {status}\n{}", first.log());
    drop(first);

    let second = Server::start(&work.0, "2", &[]);
    let mut listen = second.client("bob", "builder");
    listen.args(["listen", "--count", "1"]);
    let out = run(listen);
    out.ok("bob listen after the restart");
    assert_eq!(
        out.stdout.trim(),
        "alice@localhost/desk: while you were away",
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("-- delayed: from localhost stamp "),
        "the offline message carries the server's delay:\n{}",
        out.stderr
    );
    // Delivered once: a second login gets nothing stored.
    let mut listen = second.client("bob", "builder");
    listen.args(["listen", "--count", "1"]);
    let mut again = Background::spawn(listen);
    let out = again.finish(Duration::from_secs(3));
    assert!(
        out.stdout.trim().is_empty(),
        "nothing left to deliver:\n{}",
        out.stdout
    );

    let mut roster = second.client("alice", "wonderland");
    roster.arg("roster");
    let out = run(roster);
    out.ok("alice roster after the restart");
    assert_eq!(
        out.stdout.trim(),
        "item bob@localhost subscription=none",
        "{}",
        out.stdout
    );
    assert!(
        work.0.join("data").join("im.redb").exists(),
        "the IM database lives in the data directory"
    );
}
