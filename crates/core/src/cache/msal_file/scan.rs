//! Where each entry of an MSAL cache's JSON text is: the byte range of every entry of
//! the known sections, for the sidecar index. It reads text that already parsed cleanly,
//! and gives up (`None`) on anything the index would not describe exactly.

use std::collections::{HashMap, HashSet};

/// Section name → entry key → byte range of the entry's JSON object.
pub(super) type Ranges = HashMap<String, HashMap<String, (usize, usize)>>;

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn ws(&mut self) {
        while self
            .b
            .get(self.i)
            .is_some_and(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
        {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string token (with its quotes).
    fn string(&mut self) -> Option<(usize, usize)> {
        self.ws();
        let start = self.i;
        if self.b.get(self.i)? != &b'"' {
            return None;
        }
        self.i += 1;
        loop {
            match self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some((start, self.i));
                }
                b'\\' => self.i += 2,
                _ => self.i += 1,
            }
        }
    }

    /// Any value: its range.
    fn value(&mut self) -> Option<(usize, usize)> {
        let start = match self.peek()? {
            b'"' => return self.string(),
            b'{' | b'[' => self.i,
            _ => {
                let start = self.i;
                while self.b.get(self.i).is_some_and(|c| {
                    !matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
                }) {
                    self.i += 1;
                }
                return (self.i > start).then_some((start, self.i));
            }
        };
        let mut depth = 0usize;
        loop {
            match self.b.get(self.i)? {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.i += 1;
                        return Some((start, self.i));
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
    }

    fn text(&self, (start, end): (usize, usize)) -> Option<String> {
        let raw = &self.b[start + 1..end - 1];
        if raw.contains(&b'\\') {
            serde_json::from_slice(&self.b[start..end]).ok()
        } else {
            std::str::from_utf8(raw).ok().map(str::to_string)
        }
    }
}

/// The byte range of every entry of the known sections of an MSAL cache's JSON text
/// (already parsed cleanly). `None` when it has duplicate keys or anything else
/// the index would not describe exactly (then there is no index).
pub(super) fn entry_ranges(text: &str) -> Option<Ranges> {
    const SECTIONS: [&str; 5] = [
        "AccessToken",
        "RefreshToken",
        "IdToken",
        "Account",
        "AppMetadata",
    ];
    let mut sc = Scan {
        b: text.as_bytes(),
        i: 0,
    };
    let mut out: Ranges = HashMap::new();
    let mut names = HashSet::new();
    sc.eat(b'{')?;
    if sc.eat(b'}').is_some() {
        return Some(out);
    }
    loop {
        let name = sc.string().and_then(|r| sc.text(r))?;
        sc.eat(b':')?;
        if !names.insert(name.clone()) {
            return None;
        }
        if SECTIONS.contains(&name.as_str()) && sc.peek()? == b'{' {
            let mut entries = HashMap::new();
            sc.eat(b'{')?;
            if sc.eat(b'}').is_none() {
                loop {
                    let key = sc.string().and_then(|r| sc.text(r))?;
                    sc.eat(b':')?;
                    let range = sc.value()?;
                    if entries.insert(key, range).is_some() {
                        return None;
                    }
                    match sc.peek()? {
                        b',' => sc.i += 1,
                        b'}' => {
                            sc.i += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
            }
            out.insert(name, entries);
        } else {
            sc.value()?;
        }
        match sc.peek()? {
            b',' => sc.i += 1,
            b'}' => {
                sc.i += 1;
                break;
            }
            _ => return None,
        }
    }
    sc.ws();
    (sc.i == sc.b.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::MSAL;
    use super::*;
    use crate::cache::msal_json::MsalCacheDocument;

    #[test]
    fn entry_ranges_find_every_entry_exactly() {
        let text = r#"{
    "Future": {"AccessToken": {"x": 1}},
    "AccessToken": {
        "k\u00e9y-\"q\"": {"secret": "a}b{c\"", "n": [1, {"d": "]"}]},
        "plain": {}
    },
    "Account": {}
}"#;
        let r = entry_ranges(text).unwrap();
        let at = &r["AccessToken"];
        assert_eq!(at.len(), 2);
        let (s, e) = at["kéy-\"q\""];
        assert_eq!(
            &text[s..e],
            r#"{"secret": "a}b{c\"", "n": [1, {"d": "]"}]}"#
        );
        let (s, e) = at["plain"];
        assert_eq!(&text[s..e], "{}");
        assert!(r["Account"].is_empty());
        assert!(!r.contains_key("Future"));
        // Duplicate keys or sections: not indexable.
        assert!(entry_ranges(r#"{"AccessToken": {"a": {}, "a": {}}}"#).is_none());
        assert!(entry_ranges(r#"{"Account": {}, "Account": {}}"#).is_none());
        assert!(entry_ranges("{}").unwrap().is_empty());
        let fixture = entry_ranges(MSAL).unwrap();
        let doc: MsalCacheDocument = MSAL.parse().unwrap();
        assert_eq!(
            fixture["AccessToken"].len(),
            doc.access_tokens.len() + doc.access_tokens.raw_len()
        );
    }
}
