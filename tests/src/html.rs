//! Just enough HTML reading for the scripted user agents: forms, their inputs,
//! the page title and text. Not a general HTML parser.

/// One `<form>` of a page with its `<input>` fields (in document order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Form {
    pub(crate) id: Option<String>,
    pub(crate) action: Option<String>,
    pub(crate) method: String,
    pub(crate) inputs: Vec<Input>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Input {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) value: Option<String>,
}

impl Form {
    pub(crate) fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|i| i.name == name)
    }

    /// The form's fields as they would be submitted, with `fill` giving values
    /// for the named fields (replacing any pre-filled value).
    pub(crate) fn fields(&self, fill: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .inputs
            .iter()
            .map(|i| {
                let value = fill
                    .iter()
                    .find(|(n, _)| *n == i.name)
                    .map(|(_, v)| (*v).to_owned())
                    .or_else(|| i.value.clone())
                    .unwrap_or_default();
                (i.name.clone(), value)
            })
            .collect();
        for (name, value) in fill {
            if !self.has_input(name) {
                out.push(((*name).to_owned(), (*value).to_owned()));
            }
        }
        out
    }
}

/// All forms of a page.
pub(crate) fn forms(page: &str) -> Vec<Form> {
    let lower = page.to_ascii_lowercase();
    let mut forms = Vec::new();
    let mut pos = 0;
    while let Some(start) = find_tag(&lower, "form", pos) {
        let Some(tag_end) = lower[start..].find('>').map(|e| start + e) else {
            break;
        };
        let attrs = attributes(&page[start + "<form".len()..tag_end]);
        let body_end = lower[tag_end..]
            .find("</form")
            .map_or(page.len(), |e| tag_end + e);
        let body = &page[tag_end + 1..body_end];
        forms.push(Form {
            id: attr(&attrs, "id"),
            action: attr(&attrs, "action"),
            method: attr(&attrs, "method")
                .unwrap_or_else(|| "get".to_owned())
                .to_ascii_lowercase(),
            inputs: inputs(body),
        });
        pos = body_end;
    }
    forms
}

fn inputs(body: &str) -> Vec<Input> {
    let lower = body.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(start) = find_tag(&lower, "input", pos) {
        let Some(end) = lower[start..].find('>').map(|e| start + e) else {
            break;
        };
        let attrs = attributes(&body[start + "<input".len()..end]);
        if let Some(name) = attr(&attrs, "name") {
            out.push(Input {
                name,
                kind: attr(&attrs, "type")
                    .unwrap_or_else(|| "text".to_owned())
                    .to_ascii_lowercase(),
                value: attr(&attrs, "value"),
            });
        }
        pos = end;
    }
    out
}

/// Position of the next `<name` tag opening (followed by whitespace, `>` or `/`).
fn find_tag(lower: &str, name: &str, from: usize) -> Option<usize> {
    let needle = format!("<{name}");
    let mut pos = from;
    while let Some(i) = lower[pos..].find(&needle) {
        let at = pos + i;
        let next = lower[at + needle.len()..].chars().next();
        if matches!(next, Some(c) if c.is_whitespace() || c == '>' || c == '/') {
            return Some(at);
        }
        pos = at + needle.len();
    }
    None
}

fn attr(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// Attributes of a tag's inside (`name="v" name='v' name=v name`).
fn attributes(s: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == '/') {
            i += 1;
        }
        let name_start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' && chars[i] != '/' {
            i += 1;
        }
        if name_start == i {
            i += 1;
            continue;
        }
        let name: String = chars[name_start..i]
            .iter()
            .collect::<String>()
            .to_ascii_lowercase();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                let quote = chars[i];
                i += 1;
                let v_start = i;
                while i < chars.len() && chars[i] != quote {
                    i += 1;
                }
                value = chars[v_start..i].iter().collect();
                i += 1;
            } else {
                let v_start = i;
                while i < chars.len() && !chars[i].is_whitespace() {
                    i += 1;
                }
                value = chars[v_start..i].iter().collect();
            }
        }
        out.push((name, decode_entities(&value)));
    }
    out
}

/// Decodes the character references HTML escapers emit.
pub(crate) fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The page's `<title>`, trimmed.
pub(crate) fn title(page: &str) -> Option<String> {
    let lower = page.to_ascii_lowercase();
    let start = find_tag(&lower, "title", 0)?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    Some(decode_entities(page[open_end..close].trim()))
}

/// Visible text of a page fragment: tags, scripts and styles removed,
/// whitespace collapsed.
pub(crate) fn text(fragment: &str) -> String {
    let lower = fragment.to_ascii_lowercase();
    let mut out = String::new();
    let mut i = 0;
    while i < fragment.len() {
        if fragment[i..].starts_with('<') {
            let skip_block = ["style", "script"]
                .into_iter()
                .find(|t| find_tag(&lower[i..], t, 0) == Some(0));
            let end = match skip_block {
                Some(t) => lower[i..]
                    .find(&format!("</{t}"))
                    .and_then(|c| lower[i + c..].find('>').map(|e| i + c + e + 1)),
                None => lower[i..].find('>').map(|e| i + e + 1),
            };
            if skip_block.is_some() || !is_inline_tag(&lower[i..]) {
                out.push(' ');
            }
            i = end.unwrap_or(fragment.len());
        } else {
            let next = fragment[i..].find('<').map_or(fragment.len(), |n| i + n);
            out.push_str(&fragment[i..next]);
            i = next;
        }
    }
    decode_entities(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the tag starting `s` (`<b>`, `</strong>`, ...) is an inline one
/// that does not separate words.
fn is_inline_tag(s: &str) -> bool {
    let name: String = s
        .trim_start_matches('<')
        .trim_start_matches('/')
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    matches!(
        name.as_str(),
        "a" | "b" | "strong" | "em" | "i" | "span" | "code" | "small" | "u"
    )
}

/// Inner HTML of every element `<tag ...>` whose opening tag contains `marker`
/// (e.g. `class="red"`).
pub(crate) fn elements_with(page: &str, tag: &str, marker: &str) -> Vec<String> {
    let lower = page.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(start) = find_tag(&lower, tag, pos) {
        let Some(open_end) = lower[start..].find('>').map(|e| start + e) else {
            break;
        };
        let close = lower[open_end..]
            .find(&format!("</{tag}"))
            .map_or(page.len(), |c| open_end + c);
        if page[start..open_end].contains(marker) {
            out.push(page[open_end + 1..close].to_owned());
        }
        pos = open_end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_device_input_form_of_oidc_provider() {
        let page = r#"<h1>Sign-in</h1><p class="red">The code you entered is incorrect. Try again</p>
          <form id="op.deviceInputForm" novalidate method="post" action="http://127.0.0.1:1/device">
          <input type="hidden" name="xsrf" value="a&amp;b"/>
          <input
            type="text" name="user_code" placeholder="Enter code" autofocus autocomplete="off"></input>
          </form>"#;
        let forms = forms(page);
        assert_eq!(forms.len(), 1);
        let form = &forms[0];
        assert_eq!(form.id.as_deref(), Some("op.deviceInputForm"));
        assert_eq!(form.action.as_deref(), Some("http://127.0.0.1:1/device"));
        assert_eq!(form.method, "post");
        assert_eq!(
            form.fields(&[("user_code", "ABCD-EFGH")]),
            vec![
                ("xsrf".to_owned(), "a&b".to_owned()),
                ("user_code".to_owned(), "ABCD-EFGH".to_owned())
            ]
        );
        let red = elements_with(page, "p", "class=\"red\"");
        assert_eq!(
            red.iter().map(|r| text(r)).collect::<Vec<_>>(),
            vec!["The code you entered is incorrect. Try again"]
        );
    }

    #[test]
    fn decodes_entities_and_keeps_stray_ampersands() {
        assert_eq!(
            decode_entities("a&#x2F;b&#47;c &lt;&gt; &amp;&quot; x & y &bogus;"),
            "a/b/c <> &\" x & y &bogus;"
        );
    }

    #[test]
    fn title_and_text_skip_styles() {
        let page = "<html><head><title> Sign-in &amp; more </title><style>h1{x:y}</style></head>\
                    <body><h1>Hello</h1>\n<p>world</p><pre><strong>error</strong>: x</pre></body></html>";
        assert_eq!(title(page).as_deref(), Some("Sign-in & more"));
        assert_eq!(text(page), "Sign-in & more Hello world error: x");
    }
}
