//! Aligned text columns for a terminal. Widths are measured in chars (what
//! a monospaced terminal shows of UTF-8 text, wide scripts aside), cells are
//! cut with `…` to fit the width given, and colour is added only after the
//! padding, so that an escape sequence never counts toward a column's width
//! and a table without colour is laid out exactly as one with it.
//!
//! Cell text comes from the API, hence from the backends' responses: control
//! characters are shown escaped, so that a header value cannot move the
//! cursor, clear the screen or break a row in two.

/// The space between two columns.
const GAP: usize = 2;
/// A shrinking column is cut no narrower than this: enough of an endpoint
/// or a value to tell rows apart; past it, the line is cut at the width.
const MIN_SHRUNK: usize = 16;

/// How a cell's text is coloured when colour is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    Plain,
    Bold,
    Dim,
    Red,
    Green,
    Yellow,
}

impl Paint {
    fn code(self) -> Option<&'static str> {
        match self {
            Paint::Plain => None,
            Paint::Bold => Some("1"),
            Paint::Dim => Some("2"),
            Paint::Red => Some("31"),
            Paint::Green => Some("32"),
            Paint::Yellow => Some("33"),
        }
    }

    /// `text` in this colour, or as it is when colour is off.
    pub fn apply(self, text: &str, color: bool) -> String {
        match (color, self.code()) {
            (true, Some(code)) if !text.is_empty() => format!("\x1b[{code}m{text}\x1b[0m"),
            _ => text.to_string(),
        }
    }
}

/// Text made safe to print: each control character (tab, carriage return,
/// escape, …) as its Rust escape, such as `\t` or `\u{1b}`.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

/// How many columns `text` takes: its chars.
pub fn width_of(text: &str) -> usize {
    text.chars().count()
}

/// `text` cut to at most `width` chars, its last one `…` where it was cut.
pub fn cut(text: &str, width: usize) -> String {
    if width_of(text) <= width {
        return text.to_string();
    }
    match width {
        0 => String::new(),
        _ => text.chars().take(width - 1).chain(['…']).collect(),
    }
}

/// `text` in pieces of at most `width` chars; one empty piece for no text.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() || width == 0 {
        return vec![String::new()];
    }
    chars.chunks(width).map(|c| c.iter().collect()).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A column: its title, its alignment, and whether it gives up width when
/// the table is wider than the terminal (free text such as an endpoint or
/// a list of paths does; numbers never do), and how soon: 0 never, else
/// columns of a higher rank are cut first; and whether it is left out
/// when even so the table does not fit (0 never, else a higher rank first).
#[derive(Clone, Debug)]
pub struct Column {
    title: String,
    align: Align,
    shrinks: u8,
    optional: u8,
}

impl Column {
    pub fn left(title: &str) -> Column {
        Column {
            title: title.to_string(),
            align: Align::Left,
            shrinks: 0,
            optional: 0,
        }
    }

    pub fn right(title: &str) -> Column {
        Column {
            align: Align::Right,
            ..Column::left(title)
        }
    }

    /// This column is cut when the table does not fit (columns that both
    /// shrink are cut to the same width, the wider first).
    pub fn shrinking(self) -> Column {
        Column { shrinks: 1, ..self }
    }

    /// This column is cut before the other shrinking ones: the least
    /// needed text, such as the list of what differs after the endpoint.
    pub fn shrinking_first(self) -> Column {
        Column { shrinks: 2, ..self }
    }

    /// This column is left out, before those of a lower `rank`, when the
    /// table does not fit once the shrinking columns are cut: what a
    /// narrow terminal can do without, so that what it needs keeps room.
    pub fn optional(self, rank: u8) -> Column {
        Column {
            optional: rank,
            ..self
        }
    }
}

/// One cell: printable text and its colour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    text: String,
    paint: Paint,
}

impl Cell {
    pub fn new(text: impl AsRef<str>, paint: Paint) -> Cell {
        Cell {
            text: printable(text.as_ref()),
            paint,
        }
    }

    pub fn plain(text: impl AsRef<str>) -> Cell {
        Cell::new(text, Paint::Plain)
    }
}

/// Rows under titled columns, rendered to a width.
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// Columns whose titles are all empty print no title row.
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra ones dropped.
    pub fn push(&mut self, mut row: Vec<Cell>) {
        row.resize(self.columns.len(), Cell::plain(""));
        self.rows.push(row);
    }

    fn titled(&self) -> bool {
        self.columns.iter().any(|c| !c.title.is_empty())
    }

    /// Each column's width, or none for one left out: its widest cell or
    /// title; then, while the table is wider than `width`, the shrinking
    /// columns cut (by rank, then the widest first) down to [`MIN_SHRUNK`],
    /// and if that is not enough, an optional column left out and the
    /// widths fitted again.
    pub fn widths(&self, width: usize) -> Vec<Option<usize>> {
        let titled = self.titled();
        let natural: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let title = if titled { width_of(&c.title) } else { 0 };
                self.rows
                    .iter()
                    .map(|r| width_of(&r[i].text))
                    .chain([title])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut shown: Vec<bool> = vec![true; natural.len()];
        loop {
            let widths = self.shrunk(&natural, &shown, width);
            let total = widths.iter().flatten().sum::<usize>()
                + GAP * widths.iter().flatten().count().saturating_sub(1);
            let next_out = (0..shown.len())
                .filter(|i| shown[*i] && self.columns[*i].optional > 0)
                .max_by_key(|i| (self.columns[*i].optional, *i));
            match next_out {
                Some(i) if total > width => shown[i] = false,
                _ => return widths,
            }
        }
    }

    /// The shown columns' widths with the shrinking ones cut to fit.
    fn shrunk(&self, natural: &[usize], shown: &[bool], width: usize) -> Vec<Option<usize>> {
        let mut widths: Vec<Option<usize>> = natural
            .iter()
            .zip(shown)
            .map(|(w, shown)| shown.then_some(*w))
            .collect();
        let gaps = GAP * widths.iter().flatten().count().saturating_sub(1);
        // One char at a time from the widest of the first rank: the excess
        // is at most the text's length, and this keeps columns of a rank
        // level.
        while widths.iter().flatten().sum::<usize>() + gaps > width {
            let widest = (0..widths.len())
                .filter(|i| {
                    self.columns[*i].shrinks > 0 && widths[*i].is_some_and(|w| w > MIN_SHRUNK)
                })
                .max_by_key(|i| (self.columns[*i].shrinks, widths[*i], usize::MAX - i));
            match widest {
                Some(i) => widths[i] = widths[i].map(|w| w - 1),
                None => break,
            }
        }
        widths
    }

    /// The table as lines of at most `width` chars (colour escapes aside),
    /// titles in bold, colour applied to each cell's text after it is
    /// aligned.
    pub fn render(&self, width: usize, color: bool) -> String {
        let widths = self.widths(width);
        let titles: Vec<Cell> = self
            .columns
            .iter()
            .map(|c| Cell::new(&c.title, Paint::Bold))
            .collect();
        let mut out = String::new();
        let header = self.titled().then_some(&titles);
        for row in header.into_iter().chain(&self.rows) {
            out.push_str(&self.line(row, &widths, width, color));
            out.push('\n');
        }
        out
    }

    /// One row: each cell cut to its column, padded, then painted; what
    /// would pass `width` (the columns could not shrink enough) is cut off.
    fn line(&self, row: &[Cell], widths: &[Option<usize>], width: usize, color: bool) -> String {
        let mut line = String::new();
        let (mut used, mut first) = (0, true);
        let last = widths.iter().rposition(Option::is_some).unwrap_or(0);
        let cells = row.iter().zip(&self.columns).zip(widths).enumerate();
        for (i, ((cell, column), own)) in cells {
            let Some(own) = own else { continue };
            let gap = if first { 0 } else { GAP };
            first = false;
            if used + gap >= width {
                break;
            }
            let room = (*own).min(width - used - gap);
            let text = cut(&cell.text, room);
            let pad = " ".repeat(room - width_of(&text));
            let painted = cell.paint.apply(&text, color);
            line.push_str(&" ".repeat(gap));
            match column.align {
                Align::Right => line.push_str(&(pad + &painted)),
                Align::Left if i == last => line.push_str(&painted),
                Align::Left => line.push_str(&(painted + &pad)),
            }
            used += gap + room;
        }
        match color {
            // Trailing padding of empty cells; never inside an escape.
            true => line.trim_end_matches(' ').to_string(),
            false => line.trim_end().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut table = Table::new(vec![
            Column::left("ENDPOINT").shrinking(),
            Column::right("COUNT"),
            Column::left("PATHS").shrinking(),
        ]);
        table.push(vec![
            Cell::plain("GET /a"),
            Cell::new("7", Paint::Red),
            Cell::plain("/x"),
        ]);
        table.push(vec![
            Cell::plain("GET /users/{id}/orders/{order}"),
            Cell::plain("1234"),
            Cell::plain("/items/*/price, /items/*/currency, /total"),
        ]);
        table
    }

    /// Where each column starts on a line, found from the titles.
    fn starts(line: &str, titles: &[&str]) -> Vec<usize> {
        titles.iter().map(|t| line.find(t).unwrap()).collect()
    }

    #[test]
    fn columns_start_at_the_same_place_on_every_row() {
        let out = sample().render(200, false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        let at = starts(lines[0], &["ENDPOINT", "COUNT", "PATHS"]);
        assert_eq!(at, [0, 32, 39], "{out}");
        // Numbers align on the right edge of their column.
        assert_eq!(&lines[1][at[1]..at[2] - GAP], "    7");
        assert_eq!(&lines[2][at[1]..at[2] - GAP], " 1234");
        assert!(lines[1][at[2]..].starts_with("/x"));
        assert!(lines.iter().all(|l| l == &l.trim_end()), "{out}");
    }

    #[test]
    fn colour_is_added_after_the_padding() {
        let plain = sample().render(200, false);
        let coloured = sample().render(200, true);
        assert!(!plain.contains('\x1b'));
        assert!(coloured.contains("\x1b[31m7\x1b[0m"), "{coloured:?}");
        assert!(coloured.contains("\x1b[1mENDPOINT\x1b[0m"), "{coloured:?}");
        // Without its escapes, the coloured table is the plain one.
        let stripped = regex::Regex::new("\x1b\\[[0-9;]*m")
            .unwrap()
            .replace_all(&coloured, "");
        assert_eq!(stripped, plain);
    }

    #[test]
    fn a_narrow_terminal_cuts_the_free_text_columns_not_the_numbers() {
        let out = sample().render(50, false);
        for line in out.lines() {
            assert!(width_of(line) <= 50, "{line:?} in\n{out}");
        }
        assert!(out.contains("1234"), "{out}");
        assert!(out.contains('…'), "{out}");
        let lines: Vec<&str> = out.lines().collect();
        let at = starts(lines[0], &["COUNT", "PATHS"]);
        assert_eq!(lines[2].chars().nth(at[0] + 1), Some('1'), "{out}");
        // Too narrow even for that: lines are cut at the width.
        for line in sample().render(12, false).lines() {
            assert!(width_of(line) <= 12, "{line:?}");
        }
    }

    #[test]
    fn widths_are_counted_in_chars_and_control_characters_are_escaped() {
        let mut table = Table::new(vec![Column::left("A"), Column::left("B")]);
        table.push(vec![Cell::plain("é→ü"), Cell::plain("x")]);
        table.push(vec![Cell::plain("abc"), Cell::plain("y")]);
        table.push(vec![Cell::plain("\x1b[2J\t"), Cell::plain("z")]);
        let out = table.render(80, false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "é→ü          x");
        assert_eq!(lines[2], "abc          y");
        assert_eq!(lines[3], "\\u{1b}[2J\\t  z");
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn optional_columns_make_room_for_the_rest() {
        let mut table = Table::new(vec![
            Column::left("ENDPOINT").shrinking(),
            Column::left("FIRST SEEN").optional(1),
            Column::left("LAST SEEN"),
            Column::left("GROUP").optional(2),
            Column::left("DIFFERS").shrinking(),
        ]);
        let when = "2026-11-30 11:02:03";
        table.push(vec![
            Cell::plain("GET /users/{id}"),
            Cell::plain(when),
            Cell::plain(when),
            Cell::plain("0123abcd"),
            Cell::plain("/name, /items/*/price"),
        ]);
        let wide = table.render(200, false);
        assert!(
            wide.starts_with("ENDPOINT         FIRST SEEN           LAST SEEN"),
            "{wide}"
        );
        // GROUP goes first, then FIRST SEEN; DIFFERS keeps its room.
        let narrow = table.render(66, false);
        assert!(
            !narrow.contains("0123abcd") && narrow.contains(when),
            "{narrow}"
        );
        let narrower = table.render(60, false);
        assert_eq!(
            narrower,
            "ENDPOINT         LAST SEEN            DIFFERS\n\
             GET /users/{id}  2026-11-30 11:02:03  /name, /items/*/price\n"
        );
    }

    #[test]
    fn untitled_tables_print_no_title_row() {
        let mut table = Table::new(vec![Column::left(""), Column::left("")]);
        table.push(vec![Cell::plain("accept"), Cell::plain("*/*")]);
        table.push(vec![Cell::plain("x-id")]);
        assert_eq!(table.render(80, false), "accept  */*\nx-id\n");
    }

    #[test]
    fn cutting_and_wrapping_count_chars() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
        assert_eq!(cut("abc", 0), "");
        assert_eq!(wrap("ééééé", 2), ["éé", "éé", "é"]);
        assert_eq!(wrap("", 2), [""]);
    }
}
