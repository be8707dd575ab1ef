//! JSON pointer extraction (`events::Pointer::extract`, the event type and `{ json }` dedupe
//! key of a verified body) on arbitrary bytes. Input: the pointer on the first line, the body
//! after it. Oracle: no panic; a value found is the one `serde_json`'s own document and
//! pointer lookup find (a string as it is, an integer in decimal), in a document without a
//! duplicate key along the way, unless `serde_json` refuses the document only for what a
//! skipping pass does not check (surrogate escapes, number ranges, depth inside skipped
//! values); the same
//! input always gives the same answer, in one slice or in two frames.

#![no_main]

use hookseal::events::Pointer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (line, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(line) else {
        return;
    };
    let Ok(pointer) = Pointer::parse(text) else {
        return;
    };
    let found = pointer.extract(body);
    assert_eq!(found, pointer.extract(body), "deterministic");
    // The same body in frames (as a chunked request arrives) reads the same.
    let mid = body.len() / 2;
    let frames = [
        bytes::Bytes::copy_from_slice(&body[..mid]),
        bytes::Bytes::copy_from_slice(&body[mid..]),
    ];
    let framed = pointer.extract_body(hookseal::verify::Body::chunked(&frames));
    assert_eq!(found, framed);
    if let Some(found) = found {
        let doc: serde_json::Value = match serde_json::from_slice(body) {
            Ok(doc) => doc,
            // What a pass that skips values does not check (README "Events and filters"): the
            // pairing of `\u` surrogate escapes, the range of numbers and the nesting depth
            // inside skipped values.
            // UTF-8 and syntax are checked: any other error is a finding.
            Err(e) => {
                let m = e.to_string();
                let lenient = [
                    "escape",
                    "surrogate",
                    "unicode code point",
                    "recursion limit",
                    "number out of range",
                ];
                assert!(
                    lenient.iter().any(|l| m.contains(l)),
                    "a value was found in something not JSON: {m}"
                );
                return;
            }
        };
        let at = doc.pointer(text).expect("serde_json finds no value there");
        let expected = match at {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            other => panic!("found {found:?} where serde_json has {other}"),
        };
        assert_eq!(found, expected);
    }
});
