//! One output layer for every tool: a human table, or JSON with `--json`.

use serde::Serialize;

/// How a tool prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned table for people.
    Human,
    /// One JSON document on stdout.
    Json,
}

impl Format {
    /// `Json` when the `--json` flag was given.
    pub fn from_json_flag(json: bool) -> Format {
        if json { Format::Json } else { Format::Human }
    }
}

/// A simple table: headers and rows of cells.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows; each as long as `headers`.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers and no rows.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Renders with columns padded to their widest cell; multi-line cells are flattened.
    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| c.replace('\n', " ")).collect())
            .collect();
        for r in &rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |cells: &[String], out: &mut String| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate().take(cols) {
                if i + 1 == cols {
                    s.push_str(c);
                } else {
                    s.push_str(&format!("{:<w$}  ", c, w = widths[i]));
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&self.headers, &mut out);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule, &mut out);
        for r in &rows {
            line(r, &mut out);
        }
        out
    }
}

/// A result that can be shown both ways.
pub trait Render: Serialize {
    /// The human view.
    fn human(&self) -> String;
}

/// Writes to stdout like `print!`, but through [`write_stdout`]: a closed stdout does not
/// panic. Every tool prints its results with this or [`outln!`](crate::outln).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// Writes a line to stdout like `println!`, but a closed stdout does not panic.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to stdout. When the reader has gone away (`| head -1`, `| true`) the output is
/// dropped silently and the tool goes on to its own exit code, as a Unix filter does;
/// `print!` would panic there ("failed printing to stdout: Broken pipe", exit 101).
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => eprintln!("error: cannot write to stdout: {e}"),
    }
}

/// Runs `cmd` with a stdout whose reader has already gone away, as in `tool | head -0`:
/// for the tests that every tool exits quietly on a closed pipe.
pub fn run_with_closed_stdout(
    cmd: &mut std::process::Command,
) -> std::io::Result<std::process::Output> {
    let (reader, writer) = std::io::pipe()?;
    drop(reader);
    cmd.stdout(writer).output()
}

/// How a run broke on its closed stdout (a panic, exit 101), or `None` when it ended
/// quietly with its own exit code.
pub fn broke_on_closed_stdout(out: &std::process::Output) -> Option<String> {
    let err = String::from_utf8_lossy(&out.stderr);
    let broke =
        err.contains("panicked") || err.contains("Broken pipe") || out.status.code() == Some(101);
    broke.then(|| format!("exit {:?}: {err}", out.status.code()))
}

/// Prints `value` in the chosen format on stdout.
pub fn print<T: Render>(value: &T, format: Format) {
    match format {
        Format::Human => crate::out!("{}", value.human()),
        Format::Json => match serde_json::to_string_pretty(value) {
            Ok(s) => crate::outln!("{s}"),
            // Serialising our own plain structs cannot fail; say so loudly if it ever does.
            Err(e) => eprintln!("error: cannot serialise the report as JSON: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns_to_widest_cell() {
        let mut t = Table::new(&["check", "verdict"]);
        t.row(["cwd", "pass"]);
        t.row(["mount-type", "refused"]);
        assert_eq!(
            t.render(),
            "check       verdict\n----------  -------\ncwd         pass\nmount-type  refused\n"
        );
    }
}
