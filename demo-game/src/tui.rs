//! The terminal UI people play in: `baton-demo host` founds a session (and starts bots for
//! the empty seats), `baton-demo join <invite>` takes a seat. The screen shows the board,
//! the players with their fitness, and who hosts; the arrow keys pick a cell and Enter
//! claims it for the next turn. Quitting (`q`) leaves with a planned handoff
//! ([`Session::leave`]): a host first hands the game to the fittest caught-up voter, so the
//! others play on without a pause for an election.

use crate::player::{open_session, own_fitness, session_config, unix_micros};
use crate::view;
use crate::{lan, Bot, Claim, DemoError, Order, Territory, GRID_SIDE};
use baton::raft::{NodeId, Role};
use baton::session::{LeaveOutcome, Session, SessionEvent};
use baton::transport::Invite;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Direction, Layout};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::TryRecvError;

/// Lines kept in the UI's event log.
const LOG_LINES_MAX: usize = 8;
/// How long the UI waits for a key before it redraws anyway.
const FRAME_INTERVAL: Duration = Duration::from_millis(100);
/// How often the host and membership shown are refreshed from the node.
const STATUS_INTERVAL: Duration = Duration::from_millis(250);
/// Longest a planned handoff on quit may take before the window closes anyway.
const LEAVE_LIMIT: Duration = Duration::from_secs(10);
/// Turns with no order from a person after which the bots that filled seats leave.
const BOT_IDLE_EXIT_TURNS: u64 = 120;
/// How long seat-filling bots think, so people can follow the board.
const BOT_THINK_MS: u64 = 400;

/// Settings every interactive player shares.
#[derive(Debug, Clone, clap::Args)]
pub struct PlayArgs {
    /// Where to keep this player's identity and log (default: a new temporary folder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// QUIC bind address; the default listens on every interface so LAN players can join.
    #[arg(long, default_value = "0.0.0.0:0")]
    pub bind: SocketAddr,
    /// Address announced to the other players, if not the bind address.
    #[arg(long)]
    pub advertise: Option<SocketAddr>,
    /// Longest a turn waits for a player's order, in milliseconds (give everyone the same).
    #[arg(long, default_value_t = 3000)]
    pub turn_ms: u64,
    /// Start with a bot playing this seat (press `a` to take over or hand back).
    #[arg(long)]
    pub autoplay: bool,
}

/// `baton-demo host`.
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    /// Bot players to start for the empty seats (separate processes that outlive this
    /// window, so the game goes on when you quit; they leave once no person plays).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=7))]
    pub bots: u8,
    /// Open the session to the LAN: advertise it, invite code included, over mDNS.
    #[arg(long)]
    pub lan: bool,
    /// Settings every interactive player shares.
    #[command(flatten)]
    pub play: PlayArgs,
}

/// `baton-demo join`.
#[derive(Debug, Clone, clap::Args)]
pub struct JoinArgs {
    /// The invite code `baton-demo host` printed.
    #[arg(required_unless_present = "lan", conflicts_with = "lan")]
    pub invite: Option<Invite>,
    /// Join an open session heard on the LAN over mDNS instead.
    #[arg(long)]
    pub lan: bool,
    /// With --lan and several sessions heard: which one (1 = first listed).
    #[arg(long, requires = "lan")]
    pub pick: Option<usize>,
    /// Settings every interactive player shares.
    #[command(flatten)]
    pub play: PlayArgs,
}

fn runtime() -> Result<tokio::runtime::Runtime, DemoError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DemoError::io("starting the async runtime"))
}

fn data_dir(play: &PlayArgs, role: &str) -> PathBuf {
    play.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "baton-demo-{role}-{}-{}",
            std::process::id(),
            unix_micros()
        ))
    })
}

/// Founds a session, prints its invite, starts bots and runs the UI until the player quits.
pub fn host(exe: &Path, args: HostArgs) -> Result<(), DemoError> {
    let runtime = runtime()?;
    let dir = data_dir(&args.play, "host");
    let config = session_config(&dir, args.play.bind, args.play.advertise, args.play.turn_ms);
    let session = runtime.block_on(open_session(&dir, None, config))?;
    let invite = session.invite();
    println!("invite: {invite}");
    println!("others join with: baton-demo join {invite}");
    let _advertisement = if args.lan {
        let port = invite.addrs.first().map(|addr| addr.port()).unwrap_or(0);
        Some(lan::advertise(&invite, session.id(), port)?)
    } else {
        None
    };
    start_bots(exe, &args, &invite, &dir)?;
    play(&runtime, session, invite, args.play.autoplay)
}

/// Joins a session (by invite code, or the one heard on the LAN) and runs the UI.
pub fn join(args: JoinArgs) -> Result<(), DemoError> {
    let invite = match (&args.invite, args.lan) {
        (Some(invite), _) => invite.clone(),
        (None, true) => pick_lan_session(args.pick)?,
        (None, false) => return Err(DemoError::Usage("give an invite code or --lan".into())),
    };
    let runtime = runtime()?;
    let dir = data_dir(&args.play, "join");
    let config = session_config(&dir, args.play.bind, args.play.advertise, args.play.turn_ms);
    let session = runtime.block_on(open_session(&dir, Some(&invite), config))?;
    play(&runtime, session, invite, args.play.autoplay)
}

/// Lists the open sessions heard on the LAN, with their invite codes.
pub fn list_lan() -> Result<(), DemoError> {
    println!(
        "listening for open sessions on the LAN for {} s ...",
        lan::BROWSE_WINDOW.as_secs()
    );
    let sessions = lan::browse(lan::BROWSE_WINDOW)?;
    if sessions.is_empty() {
        println!("none heard (is `baton-demo host --lan` running on this LAN?)");
    }
    for (number, session) in sessions.iter().enumerate() {
        println!(
            "{}. founded by {}: baton-demo join {}",
            number + 1,
            session.host,
            session.invite
        );
    }
    Ok(())
}

fn pick_lan_session(pick: Option<usize>) -> Result<Invite, DemoError> {
    let sessions = lan::browse(lan::BROWSE_WINDOW)?;
    match (sessions.len(), pick) {
        (0, _) => Err(DemoError::Lan("no open session heard on the LAN".into())),
        (1, None) => Ok(sessions[0].invite.clone()),
        (_, Some(number)) => sessions
            .get(number.wrapping_sub(1))
            .map(|session| session.invite.clone())
            .ok_or_else(|| DemoError::Usage(format!("--pick {number}: no such session"))),
        (count, None) => {
            for (number, session) in sessions.iter().enumerate() {
                println!("{}. founded by {}", number + 1, session.host);
            }
            Err(DemoError::Usage(format!(
                "{count} open sessions heard: choose one with --pick N"
            )))
        }
    }
}

/// Starts the seat-filling bots as processes of their own, on purpose not tied to this
/// window: when the host quits they play on with whoever is left, and they leave by
/// themselves once no person has played for a while.
fn start_bots(exe: &Path, args: &HostArgs, invite: &Invite, dir: &Path) -> Result<(), DemoError> {
    let bind = SocketAddr::new(args.play.bind.ip(), 0);
    for bot in 0..args.bots {
        let bot_dir = dir.join(format!("bot-{bot}"));
        std::fs::create_dir_all(&bot_dir)
            .map_err(DemoError::io(format!("creating {}", bot_dir.display())))?;
        let log = std::fs::File::create(bot_dir.join("bot.log"))
            .map_err(DemoError::io("creating a bot log"))?;
        Command::new(exe)
            .arg("player")
            .arg("--join")
            .arg(invite.to_string())
            .arg("--data-dir")
            .arg(&bot_dir)
            .arg("--bind")
            .arg(bind.to_string())
            .arg("--seed")
            .arg((u64::from(bot) + 1).to_string())
            .arg("--think-ms")
            .arg(BOT_THINK_MS.to_string())
            .arg("--turn-ms")
            .arg(args.play.turn_ms.to_string())
            .arg("--idle-exit-turns")
            .arg(BOT_IDLE_EXIT_TURNS.to_string())
            .arg("--detached")
            // A process group of its own: closing this terminal (SIGHUP) or Ctrl-C in it
            // must not take the bots down with the window.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(DemoError::io("starting a bot"))?;
    }
    Ok(())
}

/// What the node said last about hosting and membership.
#[derive(Debug, Clone, Default)]
struct NodeView {
    host: Option<NodeId>,
    role: Option<Role>,
    voters: usize,
    learners: usize,
}

struct Ui {
    session: Arc<Session<Territory>>,
    me: NodeId,
    invite: String,
    cursor: (u8, u8),
    pending: Option<(u64, Claim)>,
    autoplay: Option<Bot>,
    ordered_after_turn: u64,
    log: VecDeque<String>,
    node: Arc<Mutex<NodeView>>,
    quitting: bool,
}

fn play(
    runtime: &tokio::runtime::Runtime,
    session: Session<Territory>,
    invite: Invite,
    autoplay: bool,
) -> Result<(), DemoError> {
    let session = Arc::new(session);
    let node = Arc::new(Mutex::new(NodeView::default()));
    let poller = runtime.spawn(poll_status(session.clone(), node.clone()));
    let me = session.id();
    let mut ui = Ui {
        session: session.clone(),
        me,
        invite: invite.to_string(),
        cursor: (GRID_SIDE / 2, GRID_SIDE / 2),
        pending: None,
        autoplay: autoplay.then(|| Bot::new(me)),
        ordered_after_turn: 0,
        log: VecDeque::new(),
        node,
        quitting: false,
    };
    ui.note(format!("you are {me:016x}"));
    let mut terminal = ratatui::try_init().map_err(DemoError::io("opening the terminal UI"))?;
    let outcome = ui.run(runtime, &mut terminal);
    poller.abort();
    if outcome.is_ok() {
        // Draw once more so the handoff is on screen while it happens.
        ui.note("leaving: handing over to another player ...".into());
        let _ = terminal.draw(|frame| ui.draw(frame));
    }
    let left = runtime.block_on(async {
        tokio::time::timeout(LEAVE_LIMIT, session.leave())
            .await
            .map_err(|_| "the handoff took too long; stopped without it".to_string())
            .and_then(|left| left.map_err(|err| err.to_string()))
            .map(|outcome| match outcome {
                LeaveOutcome::HandedOver { to } => {
                    format!("handed the host over to {to:016x}; the others play on")
                }
                LeaveOutcome::Removed => "the others play on".to_string(),
                LeaveOutcome::RemovedWithoutSuccessor => {
                    "nobody was caught up to take over; the others elect a host".to_string()
                }
                LeaveOutcome::SessionEnded => {
                    "you were the last voter: the session ended".to_string()
                }
                LeaveOutcome::TimedOut => {
                    "the handoff did not finish in time; stopped without it".to_string()
                }
            })
    });
    ratatui::restore();
    outcome?;
    match left {
        Ok(how) => println!("left the session: {how}"),
        Err(reason) => println!("left the session: {reason}"),
    }
    Ok(())
}

/// Keeps the host and membership the UI shows fresh (the status call is async; the UI
/// thread only reads what this last saw).
async fn poll_status(session: Arc<Session<Territory>>, view: Arc<Mutex<NodeView>>) {
    let mut interval = tokio::time::interval(STATUS_INTERVAL);
    loop {
        interval.tick().await;
        if let Ok(status) = session.status().await {
            let fresh = NodeView {
                host: status.node.leader,
                role: Some(status.node.role),
                voters: status.node.membership.voters.len(),
                learners: status.node.membership.learners.len(),
            };
            if let Ok(mut shown) = view.lock() {
                *shown = fresh;
            }
        }
    }
}

impl Ui {
    fn run(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        terminal: &mut ratatui::DefaultTerminal,
    ) -> Result<(), DemoError> {
        let mut events = self.session.events();
        while !self.quitting {
            loop {
                match events.try_recv() {
                    Ok(event) => self.on_session_event(runtime, event)?,
                    Err(TryRecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "UI fell behind the session's events");
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => {
                        self.note("the session stopped".into());
                        return Ok(());
                    }
                }
            }
            terminal
                .draw(|frame| self.draw(frame))
                .map_err(DemoError::io("drawing the UI"))?;
            let wait_until = Instant::now() + FRAME_INTERVAL;
            let left = wait_until.saturating_duration_since(Instant::now());
            if event::poll(left).map_err(DemoError::io("reading the keyboard"))? {
                let event = event::read().map_err(DemoError::io("reading the keyboard"))?;
                self.on_terminal_event(runtime, event)?;
            }
        }
        Ok(())
    }

    fn note(&mut self, text: String) {
        if self.log.len() == LOG_LINES_MAX {
            self.log.pop_front();
        }
        self.log.push_back(text);
    }

    fn turn(&self) -> u64 {
        self.session.with_game(|_, last_tick| last_tick)
    }

    fn on_session_event(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        event: SessionEvent,
    ) -> Result<(), DemoError> {
        match event {
            SessionEvent::TickCommitted { tick }
                if self.autoplay.is_some()
                    && self.pending.is_none()
                    && tick > self.ordered_after_turn =>
            {
                let claim = {
                    let bot = self.autoplay.as_mut();
                    self.session
                        .with_game(|state, _| bot.map(|bot| bot.choose(state)))
                };
                if let Some(claim) = claim {
                    self.order(runtime, claim, false)?;
                }
            }
            SessionEvent::InputCommitted { sequence, tick } => {
                if let Some((pending, claim)) = self.pending {
                    if pending == sequence {
                        self.pending = None;
                        let won = self.session.with_game(|state, _| {
                            state.owners.get(&(claim.x, claim.y)) == Some(&self.me)
                        });
                        let outcome = if won { "yours" } else { "already taken" };
                        self.note(format!(
                            "turn {tick}: claim ({},{}) {outcome}",
                            claim.x, claim.y
                        ));
                    }
                }
            }
            SessionEvent::HostChanged { host: Some(host) } => {
                let letter = self.session.with_game(|state, _| state.seat_letter(host));
                // No letter before the host's first order is applied.
                let letter = if letter == '?' {
                    String::new()
                } else {
                    format!("{letter} ")
                };
                let turn = self.turn();
                self.note(format!("turn {turn}: host is now {letter}{host:016x}"));
            }
            SessionEvent::HostChanged { host: None } => {
                self.note("host gone: electing a new one ...".into());
            }
            SessionEvent::BecameHost { next_tick } => {
                self.note(format!("you host now, from turn {next_tick}"));
            }
            SessionEvent::LostHost => self.note("you no longer host".into()),
            SessionEvent::Promoted => self.note("you became a voter".into()),
            SessionEvent::Demoted => self.note("you became a learner".into()),
            SessionEvent::PlayerLeft(id) => self.note(format!("{id:016x} left")),
            SessionEvent::Error(reason) => self.note(format!("error: {reason}")),
            _ => {}
        }
        Ok(())
    }

    fn order(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        claim: Claim,
        human: bool,
    ) -> Result<(), DemoError> {
        let session = self.session.clone();
        let sequence = runtime.block_on(async move {
            let order = Order {
                claim,
                fitness: own_fitness(&session).await,
                human,
            };
            session.submit_input(order.to_bytes()).await
        })?;
        self.pending = Some((sequence, claim));
        self.ordered_after_turn = self.turn();
        Ok(())
    }

    fn on_terminal_event(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        event: Event,
    ) -> Result<(), DemoError> {
        let Event::Key(key) = event else {
            return Ok(());
        };
        if key.kind != KeyEventKind::Press {
            return Ok(());
        }
        let (x, y) = self.cursor;
        let last = GRID_SIDE - 1;
        match key.code {
            KeyCode::Left | KeyCode::Char('h') => self.cursor = (x.saturating_sub(1), y),
            KeyCode::Right | KeyCode::Char('l') => self.cursor = (x.saturating_add(1).min(last), y),
            KeyCode::Up | KeyCode::Char('k') => self.cursor = (x, y.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => self.cursor = (x, y.saturating_add(1).min(last)),
            KeyCode::Enter | KeyCode::Char(' ') => {
                if let Some((_, waiting)) = self.pending {
                    self.note(format!(
                        "your claim ({},{}) still waits for its turn",
                        waiting.x, waiting.y
                    ));
                } else {
                    let claim = Claim { x, y };
                    self.order(runtime, claim, true)?;
                    self.note(format!("ordered: claim ({x},{y}) next turn"));
                }
            }
            KeyCode::Char('a') => {
                self.autoplay = match self.autoplay.take() {
                    Some(_) => {
                        self.note("you play this seat".into());
                        None
                    }
                    None => {
                        self.note("a bot plays this seat (a to take it back)".into());
                        Some(Bot::new(self.me ^ unix_micros() as u64))
                    }
                };
            }
            KeyCode::Char('q') | KeyCode::Esc => self.quitting = true,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.quitting = true
            }
            _ => {}
        }
        Ok(())
    }

    fn draw(&self, frame: &mut Frame) {
        let node = self
            .node
            .lock()
            .map(|node| node.clone())
            .unwrap_or_default();
        let state = self.session.with_game(|state, _| state.clone());
        let rows = view::player_rows(&state, node.host, Some(self.me));
        let host = match node.host {
            Some(host) => format!("{} {host:016x}", state.seat_letter(host)),
            None => "- (electing)".into(),
        };
        let host_fitness = node
            .host
            .and_then(|host| state.players.get(&host))
            .map(|record| format!("{:.3}", f64::from(record.fitness) / 1000.0))
            .unwrap_or_else(|| "-".into());
        let role = match node.role {
            Some(Role::Leader) => "you host",
            Some(Role::Learner) => "learner",
            Some(_) => "voter",
            None => "starting",
        };
        let header = vec![
            Line::from(format!(
                " Territory on Baton   turn {}   host {host}  fitness {host_fitness}",
                state.turn
            )),
            Line::from(format!(
                " you {} {:016x} ({role}; {} voters, {} learners)",
                state.seat_letter(self.me),
                self.me,
                node.voters,
                node.learners
            )),
            Line::from(format!(" invite: {}", self.invite)),
        ];
        let [top, body, keys] = Layout::default()
            .direction(Direction::Vertical)
            .constraints([
                // The invite code is long: let it wrap over two more lines on narrow screens.
                Constraint::Length(5),
                Constraint::Length(view::BOARD_HEIGHT),
                Constraint::Length(1),
            ])
            .areas(frame.area());
        frame.render_widget(Paragraph::new(header).wrap(Wrap { trim: false }), top);
        let [board, side] = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Length(view::BOARD_WIDTH), Constraint::Min(20)])
            .areas(body);
        frame.render_widget(view::board(&state, Some(self.cursor), "board"), board);
        let rows_height = u16::try_from(rows.len()).unwrap_or(8) + 3;
        let [table, log] = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Length(rows_height), Constraint::Min(3)])
            .areas(side);
        frame.render_widget(view::players(&rows), table);
        let log_lines: Vec<Line> = self
            .log
            .iter()
            .map(|line| Line::from(line.clone()))
            .collect();
        frame.render_widget(
            Paragraph::new(log_lines).block(Block::default().borders(Borders::ALL).title("log")),
            log,
        );
        let autoplay = if self.autoplay.is_some() { "on" } else { "off" };
        frame.render_widget(
            Paragraph::new(format!(
                " arrows/hjkl move  Enter claim  a autoplay ({autoplay})  q quit (hands the host over)"
            )),
            keys,
        );
    }
}
