//! A parser for the subset of HOCON that Seata's legacy `registry.conf` and `file.conf` use.
//!
//! Supported: nested blocks `name { ... }` (also `name = { ... }` and a root `{ ... }`), members
//! `key = value` or `key: value`, dotted keys (`vgroupMapping.my_group = "default"`), quoted values
//! with JSON escapes, unquoted values (to the end of the line, a comment, `,`, `}` or `]`), arrays
//! of scalars, `null`, and `#` / `//` comments. Repeated keys override, repeated blocks merge.
//! Not supported (an error naming the line): `include`, `+=`, nested arrays, value concatenation
//! after a quoted string. `${...}` is kept as text, so Spring-style placeholders pass through.

use super::source::RawValue;

/// Deepest block nesting accepted; the real files use three levels.
const MAX_DEPTH: usize = 64;

/// Parses `text` into `(dotted key, value)` pairs in file order.
pub(crate) fn parse(text: &str) -> Result<Vec<(String, RawValue)>, String> {
    let mut parser = Parser { chars: text.chars().collect(), pos: 0, line: 1, out: Vec::new() };
    parser.document()?;
    Ok(parser.out)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    out: Vec<(String, RawValue)>,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn err<T>(&self, message: impl std::fmt::Display) -> Result<T, String> {
        Err(format!("line {}: {message}", self.line))
    }

    fn at_comment(&self) -> bool {
        self.peek() == Some('#') || (self.peek() == Some('/') && self.peek_at(1) == Some('/'))
    }

    fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    /// Skips spaces and tabs (not newlines).
    fn skip_inline_ws(&mut self) {
        while matches!(self.peek(), Some(c) if c != '\n' && c.is_whitespace()) {
            self.bump();
        }
    }

    /// Skips whitespace, newlines, comments and (as separators) commas.
    fn skip_separators(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() || c == ',' => {
                    self.bump();
                }
                Some(_) if self.at_comment() => self.skip_comment(),
                _ => break,
            }
        }
    }

    fn document(&mut self) -> Result<(), String> {
        self.skip_separators();
        if self.peek() == Some('{') {
            self.bump();
            self.members(&[], true, 1)?;
            self.skip_separators();
            if self.peek().is_some() {
                return self.err("unexpected text after the root object");
            }
            Ok(())
        } else {
            self.members(&[], false, 0)
        }
    }

    fn members(&mut self, prefix: &[String], closing: bool, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return self.err(format!("blocks nested deeper than {MAX_DEPTH}"));
        }
        loop {
            self.skip_separators();
            match self.peek() {
                None if closing => return self.err("missing `}` at end of file"),
                None => return Ok(()),
                Some('}') if closing => {
                    self.bump();
                    return Ok(());
                }
                Some('}') => return self.err("unexpected `}`"),
                Some(_) => {}
            }
            let key = self.key()?;
            if prefix.is_empty() && key == ["include"] {
                return self.err("`include` is not supported");
            }
            let mut path = prefix.to_vec();
            path.extend(key);
            self.skip_inline_ws();
            match self.peek() {
                Some('{') => {
                    self.bump();
                    self.members(&path, true, depth + 1)?;
                }
                Some('=' | ':') => {
                    self.bump();
                    self.skip_inline_ws();
                    if self.peek() == Some('{') {
                        self.bump();
                        self.members(&path, true, depth + 1)?;
                    } else {
                        let value = self.value()?;
                        self.out.push((path.join("."), value));
                    }
                }
                Some('+') if self.peek_at(1) == Some('=') => return self.err("`+=` is not supported"),
                _ => return self.err(format!("expected `=`, `:` or `{{` after `{}`", path.join("."))),
            }
        }
    }

    fn key(&mut self) -> Result<Vec<String>, String> {
        let mut segments = Vec::new();
        loop {
            let segment = if self.peek() == Some('"') {
                self.quoted()?
            } else {
                let mut s = String::new();
                while let Some(c) = self.peek() {
                    if c.is_whitespace() || ".=:{}[],#\"+".contains(c) || self.at_comment() {
                        break;
                    }
                    s.push(c);
                    self.bump();
                }
                s
            };
            if segment.is_empty() {
                return match self.peek() {
                    Some(c) => self.err(format!("expected a key, found `{c}`")),
                    None => self.err("expected a key, found end of file"),
                };
            }
            segments.push(segment);
            if self.peek() == Some('.') {
                self.bump();
            } else {
                return Ok(segments);
            }
        }
    }

    fn value(&mut self) -> Result<RawValue, String> {
        match self.peek() {
            Some('"') => {
                let s = self.quoted()?;
                self.skip_inline_ws();
                if self.at_comment() {
                    self.skip_comment();
                }
                match self.peek() {
                    None | Some('\n' | ',' | '}' | '\r') => Ok(RawValue::Scalar(s)),
                    Some(c) => self.err(format!("unexpected `{c}` after a quoted value")),
                }
            }
            Some('[') => {
                self.bump();
                self.array()
            }
            _ => {
                let s = self.unquoted(false)?;
                if s.is_empty() || s == "null" {
                    Ok(RawValue::Null)
                } else {
                    Ok(RawValue::Scalar(s))
                }
            }
        }
    }

    /// An unquoted value: up to the end of the line, a comment, `,`, `}` (or `]` in an array).
    /// `${...}` is taken whole so that a placeholder's `}` does not close the block.
    fn unquoted(&mut self, in_array: bool) -> Result<String, String> {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' || c == ',' || c == '}' || (in_array && c == ']') || self.at_comment() {
                break;
            }
            if c == '$' && self.peek_at(1) == Some('{') {
                let mut open = 0usize;
                while let Some(d) = self.peek() {
                    if d == '\n' {
                        return self.err("unterminated `${`");
                    }
                    s.push(d);
                    self.bump();
                    match d {
                        '{' => open += 1,
                        '}' => {
                            open = open.saturating_sub(1);
                            if open == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                if open != 0 {
                    return self.err("unterminated `${`");
                }
                continue;
            }
            s.push(c);
            self.bump();
        }
        Ok(s.trim().to_owned())
    }

    fn array(&mut self) -> Result<RawValue, String> {
        let mut items = Vec::new();
        loop {
            self.skip_separators();
            match self.peek() {
                None => return self.err("missing `]` at end of file"),
                Some(']') => {
                    self.bump();
                    return Ok(RawValue::List(items));
                }
                Some('[' | '{') => return self.err("arrays may only hold plain values"),
                Some('"') => items.push(self.quoted()?),
                Some(_) => {
                    let item = self.unquoted(true)?;
                    if item.is_empty() {
                        return self.err("empty array item");
                    }
                    items.push(item);
                }
            }
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        self.bump(); // the opening quote
        let mut s = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => return self.err("unterminated string"),
                Some('"') => return Ok(s),
                Some('\\') => match self.bump() {
                    Some('"') => s.push('"'),
                    Some('\\') => s.push('\\'),
                    Some('/') => s.push('/'),
                    Some('b') => s.push('\u{8}'),
                    Some('f') => s.push('\u{c}'),
                    Some('n') => s.push('\n'),
                    Some('r') => s.push('\r'),
                    Some('t') => s.push('\t'),
                    Some('u') => {
                        let mut code = 0u32;
                        for _ in 0..4 {
                            let digit = self.bump().and_then(|c| c.to_digit(16));
                            match digit {
                                Some(d) => code = code * 16 + d,
                                None => return self.err("bad `\\u` escape"),
                            }
                        }
                        match char::from_u32(code) {
                            Some(c) => s.push(c),
                            None => return self.err("bad `\\u` escape"),
                        }
                    }
                    _ => return self.err("unknown escape in string"),
                },
                Some(c) => s.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(s: &str) -> RawValue {
        RawValue::Scalar(s.to_owned())
    }

    #[test]
    fn nested_blocks_and_values() {
        let text = r#"
## comment
store {
  mode = "db"   # trailing comment
  db {
    url = "jdbc:mysql://127.0.0.1:3306/seata?x=1"
    minConn = 5
    password = ""
  }
  // another comment
  redis.single { host = "127.0.0.1", port = "6379" }
}
service.vgroupMapping.my_group: default
empty =
"#;
        let got = parse(text).unwrap();
        assert_eq!(
            got,
            vec![
                ("store.mode".to_owned(), scalar("db")),
                ("store.db.url".to_owned(), scalar("jdbc:mysql://127.0.0.1:3306/seata?x=1")),
                ("store.db.minConn".to_owned(), scalar("5")),
                ("store.db.password".to_owned(), scalar("")),
                ("store.redis.single.host".to_owned(), scalar("127.0.0.1")),
                ("store.redis.single.port".to_owned(), scalar("6379")),
                ("service.vgroupMapping.my_group".to_owned(), scalar("default")),
                ("empty".to_owned(), RawValue::Null),
            ]
        );
    }

    #[test]
    fn root_braces_arrays_escapes_and_placeholders() {
        let got = parse("{ a = [x, \"y z\"]\n b = \"q\\\"\\u0041\"\n c = ${HOME:/x}/y }").unwrap();
        assert_eq!(
            got,
            vec![
                ("a".to_owned(), RawValue::List(vec!["x".to_owned(), "y z".to_owned()])),
                ("b".to_owned(), scalar("q\"A")),
                ("c".to_owned(), scalar("${HOME:/x}/y")),
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line) in [
            ("a {\n b = 1\n", "line 3"),
            ("a = \"x", "line 1"),
            ("\n\nb c", "line 3"),
            ("}", "line 1"),
            ("include \"x.conf\"", "line 1"),
            ("a = \"x\" y", "line 1"),
            ("a = [[1]]", "line 1"),
            ("a += 1", "line 1"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(line), "{text:?}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "a{".repeat(10_000);
        assert!(parse(&text).is_err());
    }

    proptest::proptest! {
        #[test]
        fn junk_never_panics(text in "[a-z{}\\[\\]=:,\"#/ \\n$\\\\.]{0,80}") {
            let _ = parse(&text);
        }
    }
}
