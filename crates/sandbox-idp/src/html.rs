//! Reading an HTML page as a scripted user agent does: its forms and its visible text,
//! with `scraper` (html5ever's parser). The one form reader of the sandbox's scripted
//! user agents and of the integration suite's.

use scraper::{ElementRef, Html, Node, Selector};

/// One `<form>` of a page with its named `<input>` fields (in document order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub id: Option<String>,
    pub action: Option<String>,
    /// Lower-cased; `get` when absent.
    pub method: String,
    pub inputs: Vec<Input>,
}

/// A named `<input>`; `kind` is its lower-cased `type` (`text` when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub name: String,
    pub kind: String,
    pub value: Option<String>,
}

impl Form {
    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|i| i.name == name)
    }

    /// The form's fields as they would be submitted, with `fill` giving values for the
    /// named fields (replacing any pre-filled value; names the form lacks are added).
    pub fn fields(&self, fill: &[(&str, &str)]) -> Vec<(String, String)> {
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

    /// The hidden fields, with their values.
    pub fn hidden_fields(&self) -> Vec<(String, String)> {
        self.inputs
            .iter()
            .filter(|i| i.kind == "hidden")
            .map(|i| (i.name.clone(), i.value.clone().unwrap_or_default()))
            .collect()
    }
}

fn selector(css: &str) -> Selector {
    Selector::parse(css).unwrap_or_else(|e| panic!("bad selector {css:?}: {e}"))
}

/// All forms of a page.
pub fn forms(page: &str) -> Vec<Form> {
    let doc = Html::parse_document(page);
    let inputs = selector("input[name]");
    doc.select(&selector("form"))
        .map(|form| {
            let attr = |name: &str| form.value().attr(name).map(str::to_owned);
            Form {
                id: attr("id"),
                action: attr("action"),
                method: attr("method")
                    .unwrap_or_else(|| "get".into())
                    .to_ascii_lowercase(),
                inputs: form
                    .select(&inputs)
                    .map(|i| Input {
                        name: i.value().attr("name").unwrap_or_default().to_owned(),
                        kind: i
                            .value()
                            .attr("type")
                            .unwrap_or("text")
                            .to_ascii_lowercase(),
                        value: i.value().attr("value").map(str::to_owned),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The page's `<title>`, trimmed.
pub fn title(page: &str) -> Option<String> {
    let doc = Html::parse_document(page);
    let title = doc.select(&selector("title")).next()?;
    Some(title.text().collect::<String>().trim().to_owned())
}

/// The visible text of the whole page (see [`texts`]).
pub fn text(page: &str) -> String {
    visible_text(Html::parse_document(page).root_element())
}

/// The visible text of each element matching the CSS selector `css` (`p.red`, `#error`):
/// scripts and styles left out, block elements separating words, whitespace collapsed.
pub fn texts(page: &str, css: &str) -> Vec<String> {
    Html::parse_document(page)
        .select(&selector(css))
        .map(visible_text)
        .collect()
}

fn visible_text(root: ElementRef<'_>) -> String {
    let mut out = String::new();
    push_text(root, &mut out);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn push_text(el: ElementRef<'_>, out: &mut String) {
    const INLINE: [&str; 9] = ["a", "b", "strong", "em", "i", "span", "code", "small", "u"];
    let name = el.value().name();
    if matches!(name, "script" | "style") {
        return;
    }
    let block = !INLINE.contains(&name);
    if block {
        out.push(' ');
    }
    for child in el.children() {
        match child.value() {
            Node::Text(t) => out.push_str(t),
            Node::Element(_) => push_text(ElementRef::wrap(child).expect("an element"), out),
            _ => {}
        }
    }
    if block {
        out.push(' ');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_form_with_entities_and_odd_markup() {
        let page = r#"<h1>Sign-in</h1><p class="red">The code you entered is <b>incorrect</b>. Try again</p>
          <FORM id="op.deviceInputForm" novalidate method="POST" action="http://127.0.0.1:1/device">
          <input type="hidden" name="xsrf" value="a&amp;b"/>
          <input
            type="text" name="user_code" placeholder="Enter code" autofocus autocomplete="off"></input>
          <input type=submit value=Go>
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
        assert_eq!(form.hidden_fields(), vec![("xsrf".into(), "a&b".into())]);
        assert_eq!(
            texts(page, "p.red"),
            vec!["The code you entered is incorrect. Try again"]
        );
    }

    #[test]
    fn title_and_text_skip_styles_and_scripts() {
        let page = "<html><head><title> Sign-in &amp; more </title><style>h1{x:y}</style></head>\
                    <body><h1>Hello</h1><p>world</p><script>var x;</script>\
                    <pre><strong>error</strong>: x &#x2F; y</pre></body></html>";
        assert_eq!(title(page).as_deref(), Some("Sign-in & more"));
        assert_eq!(text(page), "Sign-in & more Hello world error: x / y");
    }
}
