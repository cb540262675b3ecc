//! Tables: `parse_csv` (a hand-written RFC 4180 reader) and `parse_excel_data` (feature `excel`, through calamine).
//!
//! Both produce the same shape: with a header row, a list of objects keyed by the header; without, a list of rows.
//! The CSV reader never fails on content except an unterminated quoted field, and keeps every cell as text (CSV has
//! no types; use `convert_type`, or sort and aggregate, which read numeric text as numbers). `parse_excel_data` is
//! the only operation that reads a file; it must not be given paths from untrusted input.

use serde_json::{Map, Value};

use super::{OpError, Params, describe};

/// `parse_csv {source | value, delimiter = ",", header = true}`: parses CSV text. Fields may be quoted (`"a, b"`),
/// with `""` for a quote inside; quoted fields may span lines; lines end with LF, CRLF or CR; blank lines and a
/// leading byte-order mark are skipped; a quote inside an unquoted field is kept as text. `delimiter` is one
/// character (`tab` or `\t` for tabs).
///
/// With `header`, the first row names the columns and each further row becomes an object (a blank header cell is
/// named `column_<n>`, a repeated name gets `_2`, `_3`, … so no cell is lost; a short row gives null for the missing
/// cells; cells past the header go to `_extra`, a list). Without it, the result is a list of lists of strings. A
/// source that is already a list is returned as is. An unterminated quoted field is an error naming its line.
pub(super) fn parse_csv(p: &Params<'_>) -> Result<Value, OpError> {
    let text = match p.input()? {
        Value::String(s) => s,
        v @ Value::Array(_) => return Ok(v.clone()),
        other => return Err(p.err(format!("source must be CSV text, not {}", describe(other)))),
    };
    let delimiter = match p.text(&["delimiter", "separator", "sep"])? {
        None => ',',
        Some(d) => match d.as_str() {
            "tab" | "\\t" => '\t',
            _ => {
                let mut chars = d.chars();
                match (chars.next(), chars.next()) {
                    (None, _) => ',',
                    (Some(c), None) if !matches!(c, '"' | '\n' | '\r') => c,
                    _ => return Err(p.err(format!("delimiter `{d}` must be a single character other than a quote"))),
                }
            }
        },
    };
    let header = p.flag(&["header", "has_header", "headers"], true)?;
    let rows = read_csv(text, delimiter).map_err(|e| p.err(e))?;
    let rows = rows.into_iter().map(|r| r.into_iter().map(Value::String).collect()).collect();
    Ok(table(rows, header))
}

/// Splits CSV text into rows of fields.
pub(super) fn read_csv(text: &str, delimiter: char) -> Result<Vec<Vec<String>>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut quoted = false;
    let mut line = 1;
    let mut quote_line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                _ => {
                    if c == '\n' || (c == '\r' && chars.peek() != Some(&'\n')) {
                        line += 1;
                    }
                    field.push(c);
                }
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !quoted => {
                in_quotes = true;
                quoted = true;
                quote_line = line;
            }
            c if c == delimiter => {
                row.push(std::mem::take(&mut field));
                quoted = false;
            }
            '\r' | '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                line += 1;
                let blank = row.is_empty() && field.is_empty() && !quoted;
                if !blank {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                quoted = false;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(format!("unterminated quoted field starting on line {quote_line}: close it with `\"`"));
    }
    if !row.is_empty() || !field.is_empty() || quoted {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// Rows as the result of `parse_csv` / `parse_excel_data` (see [`parse_csv`] for the header rules).
fn table(rows: Vec<Vec<Value>>, header: bool) -> Value {
    if !header {
        return Value::Array(rows.into_iter().map(Value::Array).collect());
    }
    let mut rows = rows.into_iter();
    let Some(head) = rows.next() else { return Value::Array(Vec::new()) };
    let mut names: Vec<String> = Vec::with_capacity(head.len());
    for (i, cell) in head.iter().enumerate() {
        let base = match cell {
            Value::Null => String::new(),
            Value::String(s) => s.trim().to_owned(),
            other => other.to_string(),
        };
        let base = if base.is_empty() { format!("column_{}", i + 1) } else { base };
        let mut name = base.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        names.push(name);
    }
    let objects = rows
        .map(|row| {
            let mut obj = Map::new();
            let mut cells = row.into_iter();
            for name in &names {
                obj.insert(name.clone(), cells.next().unwrap_or(Value::Null));
            }
            let extra: Vec<Value> = cells.collect();
            if !extra.is_empty() {
                obj.insert("_extra".to_owned(), Value::Array(extra));
            }
            Value::Object(obj)
        })
        .collect();
    Value::Array(objects)
}

/// `parse_excel_data {source | path | file (a file path), sheet_name?, header = true}` (feature `excel`): reads one
/// sheet of an .xlsx, .xlsm, .xlsb, .xls or .ods workbook into the same shape as [`parse_csv`]. `sheet_name` is a
/// name or a 0-based index; the first sheet by default. Cells keep their type: numbers (whole ones as integers),
/// booleans, text, dates as ISO text (`2024-05-01` or `2024-05-01T08:30:00`), errors as their text (`#DIV/0!`),
/// empty cells as null. The path is read by the engine's process, relative to its working directory.
#[cfg(feature = "excel")]
pub(super) fn parse_excel_data(p: &Params<'_>) -> Result<Value, OpError> {
    let path = p
        .text(&["source", "path", "file", "file_path"])?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| p.err("missing `source`: the path of the workbook file"))?;
    let header = p.flag(&["header", "has_header", "headers"], true)?;
    // calamine parses untrusted files; a parser bug must become a step error, not take the engine down.
    std::panic::catch_unwind(|| read_workbook(p, &path, header))
        .unwrap_or_else(|_| Err(p.err(format!("cannot read workbook `{path}`: the file is malformed"))))
}

#[cfg(feature = "excel")]
fn read_workbook(p: &Params<'_>, path: &str, header: bool) -> Result<Value, OpError> {
    use calamine::Reader as _;

    let mut workbook =
        calamine::open_workbook_auto(path).map_err(|e| p.err(format!("cannot open workbook `{path}`: {e}")))?;
    let names = workbook.sheet_names();
    let sheet = match p.get(&["sheet_name", "sheet"]) {
        None | Some(Value::Null) => names.first().cloned(),
        Some(Value::Number(n)) => n.as_u64().and_then(|i| usize::try_from(i).ok()).and_then(|i| names.get(i).cloned()),
        Some(Value::String(s)) if s.is_empty() => names.first().cloned(),
        Some(Value::String(s)) => names.iter().find(|n| *n == s).cloned(),
        Some(other) => return Err(p.err(format!("`sheet_name` must be a name or an index, not {}", describe(other)))),
    };
    let Some(sheet) = sheet else {
        return Err(p.err(format!("sheet not found in `{path}`; its sheets are: {}", names.join(", "))));
    };
    let range = workbook.worksheet_range(&sheet).map_err(|e| p.err(format!("cannot read sheet `{sheet}`: {e}")))?;
    let rows = range.rows().map(|r| r.iter().map(excel_cell).collect()).collect();
    Ok(table(rows, header))
}

#[cfg(feature = "excel")]
fn excel_cell(cell: &calamine::Data) -> Value {
    use calamine::Data;
    match cell {
        Data::Int(i) => Value::from(*i),
        Data::Float(f) => super::number(*f).unwrap_or(Value::Null),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Value::String(s.clone()),
        Data::Bool(b) => Value::Bool(*b),
        Data::DateTime(dt) => match dt.as_datetime() {
            Some(d) if d.time() == chrono::NaiveTime::MIN => Value::String(d.format("%Y-%m-%d").to_string()),
            Some(d) => Value::String(d.format("%Y-%m-%dT%H:%M:%S").to_string()),
            None => super::number(dt.as_f64()).unwrap_or(Value::Null),
        },
        Data::Error(e) => Value::String(e.to_string()),
        Data::Empty => Value::Null,
    }
}

/// Without the `excel` feature, `parse_excel_data` is an error that says how to get it.
#[cfg(not(feature = "excel"))]
pub(super) fn parse_excel_data(p: &Params<'_>) -> Result<Value, OpError> {
    Err(p.err(
        "this ckp binary was built without Excel support; rebuild it with the `excel` feature of ckp-engine \
         (cargo build --release -p ckp --features ckp-engine/excel), or convert the workbook to CSV and use parse_csv",
    ))
}
