//! Drawing Territory: the board and the player table, as ratatui widgets shared by the
//! scripted run's live view and the terminal UI, plus a plain-text board for logs.

use crate::{seat_letter, Territory, GRID_SIDE};
use baton::raft::NodeId;
use ratatui::layout::Constraint;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};

/// Width of the board widget in cells: two columns per cell (a space, the letter), a
/// space before the right border, and the borders.
pub const BOARD_WIDTH: u16 = GRID_SIDE as u16 * 2 + 3;
/// Height of the board widget in rows, borders included.
pub const BOARD_HEIGHT: u16 = GRID_SIDE as u16 + 2;

const SEAT_COLORS: [Color; 8] = [
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::LightRed,
    Color::LightGreen,
];

/// The colour of seat `seat`.
pub fn seat_color(seat: usize) -> Color {
    SEAT_COLORS[seat % SEAT_COLORS.len()]
}

/// How one player is doing, for the player table.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerRow {
    /// Seat letter (`?` before the player's first order is applied).
    pub letter: char,
    /// Seat number, for the colour.
    pub seat: usize,
    /// Node id.
    pub id: NodeId,
    /// Fitness in thousandths, as last reported in an order.
    pub fitness: u16,
    /// Cells owned.
    pub cells: usize,
    /// It hosts the session.
    pub host: bool,
    /// It is the viewer.
    pub you: bool,
    /// A person plays it.
    pub human: bool,
    /// Its state, e.g. `playing`, `killed (SIGKILL)`.
    pub note: String,
}

/// Rows for every player the state knows, with `host` marked.
pub fn player_rows(state: &Territory, host: Option<NodeId>, me: Option<NodeId>) -> Vec<PlayerRow> {
    let scores = state.scores();
    let mut rows: Vec<PlayerRow> = state
        .players
        .iter()
        .map(|(id, record)| PlayerRow {
            letter: seat_letter(record.seat),
            seat: record.seat,
            id: *id,
            fitness: record.fitness,
            cells: scores.get(id).copied().unwrap_or(0),
            host: host == Some(*id),
            you: me == Some(*id),
            human: record.human,
            note: String::new(),
        })
        .collect();
    rows.sort_by_key(|row| row.seat);
    rows
}

/// The board, one letter per owned cell; `cursor` (the viewer's selection) is shown
/// reversed.
pub fn board(state: &Territory, cursor: Option<(u8, u8)>, title: &str) -> Paragraph<'static> {
    let mut lines = Vec::with_capacity(usize::from(GRID_SIDE));
    for y in 0..GRID_SIDE {
        let mut spans = Vec::with_capacity(usize::from(GRID_SIDE) * 2);
        for x in 0..GRID_SIDE {
            let (text, mut style) = match state.owners.get(&(x, y)) {
                Some(owner) => {
                    let seat = state.players.get(owner).map(|p| p.seat).unwrap_or(0);
                    (
                        seat_letter(seat).to_string(),
                        Style::default()
                            .fg(seat_color(seat))
                            .add_modifier(Modifier::BOLD),
                    )
                }
                None => (".".to_string(), Style::default().fg(Color::DarkGray)),
            };
            if cursor == Some((x, y)) {
                style = style.add_modifier(Modifier::REVERSED);
            }
            spans.push(Span::raw(" "));
            spans.push(Span::styled(text, style));
        }
        lines.push(Line::from(spans));
    }
    Paragraph::new(lines).block(
        Block::default()
            .borders(Borders::ALL)
            .title(title.to_string()),
    )
}

/// The player table: seat, id, fitness, cells, role.
pub fn players(rows: &[PlayerRow]) -> Table<'static> {
    let header = Row::new(["", "player", "fitness", "cells", ""])
        .style(Style::default().add_modifier(Modifier::UNDERLINED));
    let body: Vec<Row> = rows
        .iter()
        .map(|row| {
            let mut role = Vec::new();
            if row.host {
                role.push("HOST");
            }
            if row.you {
                role.push("you");
            }
            if row.human {
                role.push("person");
            }
            let mut note = role.join(" ");
            if !row.note.is_empty() {
                if !note.is_empty() {
                    note.push(' ');
                }
                note.push_str(&row.note);
            }
            let style = Style::default().fg(seat_color(row.seat));
            let style = if row.host {
                style.add_modifier(Modifier::BOLD)
            } else {
                style
            };
            Row::new([
                row.letter.to_string(),
                format!("{:016x}", row.id),
                format!("{:.3}", f64::from(row.fitness) / 1000.0),
                row.cells.to_string(),
                note,
            ])
            .style(style)
        })
        .collect();
    Table::new(
        body,
        [
            Constraint::Length(1),
            Constraint::Length(16),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Min(10),
        ],
    )
    .header(header)
    .block(Block::default().borders(Borders::ALL).title("players"))
}

/// The board as plain text, one row a line (for logs and non-terminal output).
pub fn board_text(state: &Territory) -> Vec<String> {
    (0..GRID_SIDE)
        .map(|y| {
            (0..GRID_SIDE)
                .map(|x| match state.owners.get(&(x, y)) {
                    Some(owner) => state.seat_letter(*owner),
                    None => '.',
                })
                .collect()
        })
        .collect()
}
