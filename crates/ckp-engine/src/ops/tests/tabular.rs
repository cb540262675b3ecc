//! parse_csv and parse_excel_data.

use serde_json::json;

use super::{err, ok};
use crate::ops::tabular::read_csv;

#[test]
fn csv_with_header_gives_objects() {
    let csv = "name,qty,note\r\nApple,3,\"red, crisp\"\r\nPear,5,\"said \"\"hi\"\"\"\r\n";
    assert_eq!(
        ok("parse_csv", json!({"source": csv})),
        json!([
            {"name": "Apple", "qty": "3", "note": "red, crisp"},
            {"name": "Pear", "qty": "5", "note": "said \"hi\""}
        ])
    );
}

#[test]
fn csv_without_header_gives_rows() {
    let csv = "a;b\n\n1;\"multi\nline\"\n2;x";
    assert_eq!(
        ok("parse_csv", json!({"source": csv, "delimiter": ";", "header": false})),
        json!([["a", "b"], ["1", "multi\nline"], ["2", "x"]])
    );
    assert_eq!(ok("parse_csv", json!({"source": "a\tb", "delimiter": "tab", "header": "false"})), json!([["a", "b"]]));
}

#[test]
fn csv_header_edge_cases() {
    let csv = "id,,id\n1,2,3,4\n5";
    assert_eq!(
        ok("parse_csv", json!({"source": csv})),
        json!([
            {"id": "1", "column_2": "2", "id_2": "3", "_extra": ["4"]},
            {"id": "5", "column_2": null, "id_2": null}
        ])
    );
    assert_eq!(ok("parse_csv", json!({"source": ""})), json!([]));
    assert_eq!(ok("parse_csv", json!({"source": "only,header\n"})), json!([]));
    assert_eq!(ok("parse_csv", json!({"source": [{"already": "parsed"}]})), json!([{"already": "parsed"}]));
}

#[test]
fn csv_reader_details() {
    let rows = |t: &str| read_csv(t, ',').expect("parses");
    assert_eq!(rows("a,b\rc,d"), vec![vec!["a", "b"], vec!["c", "d"]], "CR line ends");
    assert_eq!(rows("\u{feff}a"), vec![vec!["a"]], "BOM skipped");
    assert_eq!(rows("a,\n"), vec![vec!["a", ""]], "trailing empty field kept");
    assert_eq!(rows("\"\"\n"), vec![vec![""]], "an empty quoted field is a row");
    assert_eq!(rows("ab\"c,d"), vec![vec!["ab\"c", "d"]], "a quote inside an unquoted field is text");
    assert_eq!(rows("\"a\"b,c"), vec![vec!["ab", "c"]], "text after a closing quote is kept");
}

#[test]
fn csv_errors() {
    let e = err("parse_csv", json!({"source": "a,b\n1,\"open\n2,3"}));
    assert!(e.contains("unterminated quoted field starting on line 2"), "{e}");
    assert!(err("parse_csv", json!({"source": "a", "delimiter": "::"})).contains("single character"));
    assert!(err("parse_csv", json!({"source": "a", "delimiter": "\""})).contains("single character"));
    assert!(err("parse_csv", json!({"source": "a", "header": "maybe"})).contains("true or false"));
    assert!(err("parse_csv", json!({"source": 5})).contains("must be CSV text"));
}

#[cfg(not(feature = "excel"))]
#[test]
fn excel_without_the_feature_says_how_to_enable_it() {
    let e = err("parse_excel_data", json!({"source": "/tmp/book.xlsx"}));
    assert!(e.contains("built without Excel support") && e.contains("--features ckp-engine/excel"), "{e}");
}

#[cfg(feature = "excel")]
#[test]
fn excel_reports_a_missing_file_and_sheet() {
    let e = err("parse_excel_data", json!({"source": "/nonexistent/book.xlsx"}));
    assert!(e.contains("cannot open workbook `/nonexistent/book.xlsx`"), "{e}");
    assert!(err("parse_excel_data", json!({})).contains("missing `source`"));
}

#[cfg(feature = "excel")]
#[test]
fn excel_reads_a_sheet_with_typed_cells() {
    let book = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ops/tests/fixtures/book.xlsx");
    assert_eq!(
        ok("parse_excel_data", json!({"source": book})),
        json!([
            {"id": 1, "item": "Apple", "price": 2.5, "paid": true, "due": "2024-05-01"},
            {"id": 2, "item": "Pear", "price": null, "paid": false, "due": "#N/A"}
        ])
    );
    assert_eq!(
        ok("parse_excel_data", json!({"source": book, "sheet_name": "Notes", "header": false})),
        json!([["hello", 3]])
    );
    assert_eq!(
        ok("parse_excel_data", json!({"source": book, "sheet_name": 1, "header": false})),
        json!([["hello", 3]])
    );
    let e = err("parse_excel_data", json!({"source": book, "sheet_name": "Missing"}));
    assert!(e.contains("its sheets are: Orders, Notes"), "{e}");
}
