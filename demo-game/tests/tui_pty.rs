//! The terminal UI driven the way a person drives it, through a pseudo-terminal: a bot
//! founds a session and another bot joins; `baton-demo join <invite>` runs in a pty whose
//! output feeds a terminal emulator (vt100). The test reads the screen, moves the cursor
//! and claims a cell with the keyboard, SIGKILLs the host, and waits for the screen to
//! name the new host. No tmux needed.

use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROWS: u16 = 40;
const COLS: u16 = 120;
/// Longest any one wait of the test may take (debug build, loaded 2-core machine).
const STEP_LIMIT: Duration = Duration::from_secs(60);
const EXE: &str = env!("CARGO_BIN_EXE_baton-demo");

/// A bot player process; killed when dropped.
struct Bot {
    child: Child,
    id: String,
    invite: String,
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_bot(dir: &Path, name: &str, join: Option<&str>) -> Bot {
    let mut command = Command::new(EXE);
    command
        .arg("player")
        .arg("--data-dir")
        .arg(dir.join(name))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--turn-ms",
            "400",
            "--think-ms",
            "50",
        ]);
    match join {
        Some(invite) => command.args(["--join", invite]),
        None => command.arg("--host"),
    };
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start a bot");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining so the bot never blocks on a full pipe; only the first line matters.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = rx.recv_timeout(STEP_LIMIT).expect("the bot starts");
    let words: Vec<&str> = ready.split_whitespace().collect();
    let ["ready", id, _addr, invite] = words.as_slice() else {
        panic!("unexpected first line {ready:?}");
    };
    Bot {
        id: id.to_string(),
        invite: invite.to_string(),
        child,
    }
}

/// The UI in a pty, its screen as an emulator sees it.
struct Screen {
    /// Closing the master hangs the UI up, so it lives as long as the screen.
    _master: Box<dyn portable_pty::MasterPty + Send>,
    parser: Arc<Mutex<vt100::Parser>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

impl Screen {
    fn rows(&self) -> Vec<String> {
        let parser = self.parser.lock().expect("parser lock");
        parser.screen().rows(0, COLS).collect()
    }

    fn text(&self) -> String {
        self.rows().join("\n")
    }

    /// Waits until `check` holds for the screen; panics with the screen if it never does.
    fn wait_for(&self, what: &str, check: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + STEP_LIMIT;
        while Instant::now() < deadline {
            if check(&self.rows()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the screen never showed {what}:\n{}", self.text());
    }

    fn keys(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("type into the pty");
        self.writer.flush().expect("flush the pty");
        // One key at a time, as a person types: the UI reads one event per frame.
        std::thread::sleep(Duration::from_millis(150));
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_ui(dir: &Path, invite: &str) -> Screen {
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: ROWS,
            cols: COLS,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("open a pty");
    let mut command = CommandBuilder::new(EXE);
    command.args(["join", invite, "--bind", "127.0.0.1:0", "--turn-ms", "400"]);
    command.arg("--data-dir");
    command.arg(dir.join("ui"));
    command.env("TERM", "xterm-256color");
    let child = pty.slave.spawn_command(command).expect("start the UI");
    let mut reader = pty.master.try_clone_reader().expect("pty reader");
    let writer = pty.master.take_writer().expect("pty writer");
    let parser = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
    let feed = parser.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        // Ends when the UI exits and the pty closes.
        while let Ok(read) = reader.read(&mut buffer) {
            if read == 0 {
                break;
            }
            if let Ok(mut parser) = feed.lock() {
                parser.process(&buffer[..read]);
            }
        }
    });
    Screen {
        _master: pty.master,
        parser,
        writer,
        child,
    }
}

/// The id after `host X ` on the header row, if the screen names a host.
fn shown_host(rows: &[String]) -> Option<String> {
    let header = rows.first()?;
    let after = header.split("host ").nth(1)?;
    let id = after.split_whitespace().nth(1)?;
    (id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_string())
}

#[test]
fn a_person_orders_in_the_ui_and_sees_the_new_host_after_a_kill() {
    let dir = tempfile::tempdir().expect("test folder");
    let dir = dir.path();
    let host = start_bot(dir, "host", None);
    let _other = start_bot(dir, "other", Some(&host.invite));
    let mut screen = start_ui(dir, &host.invite);

    screen.wait_for("the board and the host", |rows| {
        let text = rows.join("\n");
        text.contains("board") && shown_host(rows).as_deref() == Some(host.id.as_str())
    });

    // The cursor starts at (8,8): two right and one down is (10,9).
    screen.keys(b"\x1b[C");
    screen.keys(b"\x1b[C");
    screen.keys(b"\x1b[B");
    screen.keys(b"\r");
    screen.wait_for("the order being sent", |rows| {
        rows.join("\n").contains("ordered: claim (10,9)")
    });
    screen.wait_for("the order applied in a turn", |rows| {
        let text = rows.join("\n");
        text.contains("claim (10,9) yours") || text.contains("claim (10,9) already taken")
    });

    let mut host = host;
    host.child.kill().expect("SIGKILL the host");
    let _ = host.child.wait();
    let killed = host.id.clone();
    screen.wait_for("a new host", |rows| {
        shown_host(rows).is_some_and(|id| id != killed)
    });

    screen.keys(b"q");
    let deadline = Instant::now() + STEP_LIMIT;
    while screen.child.try_wait().ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "the UI did not quit");
        std::thread::sleep(Duration::from_millis(100));
    }
}
