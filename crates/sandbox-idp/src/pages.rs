//! HTML pages: sign-in, consent, device code entry, messages and errors. Inline CSS, no JS
//! (except the auto-submit of `response_mode=form_post`, which needs it as in Entra).
//!
//! Stable hooks for scripted and WebDriver users: inputs named `login`, `password`,
//! `user_code`; buttons with ids `next`, `accept`, `cancel`; an element with id `error`
//! holding an error message; the sign-in page title contains "Sign in".

use crate::data::{User, DEMO_PASSWORD};
use crate::errors::{AadError, Diag};
use crate::util::esc;

const CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
background:#eef1f5;font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1b1b}\
main{background:#fff;width:min(440px,94vw);padding:36px 40px 28px;border-radius:6px;\
box-shadow:0 2px 10px rgba(0,0,0,.12);margin:24px 0}\
.brand{font-weight:600;color:#505050;letter-spacing:.02em;margin-bottom:14px;font-size:14px}\
.brand b{color:#0b5cab}\
h1{font-size:24px;font-weight:600;margin:0 0 6px}\
h2{font-size:15px;font-weight:600;margin:22px 0 6px;color:#404040}\
p{margin:6px 0 12px}\
.muted{color:#5e5e5e;font-size:13px}\
label{display:block;font-size:13px;color:#404040;margin:12px 0 4px}\
input[type=text],input[type=password]{width:100%;padding:8px 2px;border:0;border-bottom:1px solid #767676;\
font-size:15px;outline:none;background:transparent}\
input[type=text]:focus,input[type=password]:focus{border-bottom:2px solid #0b5cab}\
.buttons{display:flex;justify-content:flex-end;gap:10px;margin-top:22px}\
button{min-width:108px;padding:7px 14px;font-size:15px;border:1px solid #0b5cab;background:#0b5cab;\
color:#fff;border-radius:2px;cursor:pointer}\
button.secondary{background:#e6e6e6;border-color:#e6e6e6;color:#1b1b1b}\
button:focus{outline:2px solid #1b1b1b;outline-offset:2px}\
.error{color:#a4262c;background:#fde7e9;border-left:3px solid #a4262c;padding:8px 10px;font-size:14px}\
.hint{background:#f3f6fa;border-radius:4px;padding:8px 10px;font-size:13px;color:#404040}\
code{font-family:ui-monospace,Consolas,monospace;font-size:13px;background:#f0f0f0;padding:1px 4px;border-radius:3px}\
ul.accounts{list-style:none;padding:0;margin:0}\
ul.accounts li{border-top:1px solid #e6e6e6;padding:7px 2px;display:flex;justify-content:space-between;gap:8px}\
ul.accounts li:last-child{border-bottom:1px solid #e6e6e6}\
ul.accounts a{color:#0b5cab;text-decoration:none}\
ul.accounts a:hover{text-decoration:underline}\
ul.scopes{padding-left:20px}ul.scopes li{margin:6px 0}\
dl{font-size:12px;color:#5e5e5e;display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin-top:18px}\
dd{margin:0;word-break:break-all}\
footer{margin-top:22px;font-size:12px;color:#767676}";

/// Wraps content in the common page layout.
pub fn layout(title: &str, content: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n\
         <div class=\"brand\"><b>Tessera</b> Sandbox identity provider</div>\n{content}\n\
         <footer>A local test identity provider. Not Microsoft.</footer>\n</main>\n</body>\n</html>\n",
        title = esc(title),
    )
}

fn hidden_fields(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                esc(k),
                esc(v)
            )
        })
        .collect()
}

fn error_box(error: Option<&str>) -> String {
    match error {
        Some(e) => format!(
            "<p class=\"error\" id=\"error\" role=\"alert\">{}</p>\n",
            esc(e)
        ),
        None => String::new(),
    }
}

/// One account in the demo list: the user and, optionally, a link that pre-fills it.
pub struct AccountEntry {
    pub user: &'static User,
    pub link: Option<String>,
}

pub struct SignIn<'a> {
    pub action: &'a str,
    pub hidden: Vec<(String, String)>,
    pub app_name: &'a str,
    pub login: &'a str,
    pub error: Option<&'a str>,
    pub accounts: Vec<AccountEntry>,
    pub note: Option<&'a str>,
}

/// The credentials page: `login`, `password`, button `next`.
pub fn sign_in(p: &SignIn<'_>) -> String {
    let accounts: String = p
        .accounts
        .iter()
        .map(|a| {
            let name = match &a.link {
                Some(href) => format!("<a href=\"{}\">{}</a>", esc(href), esc(a.user.name)),
                None => esc(a.user.name),
            };
            format!(
                "<li><span>{name}</span><span class=\"muted\">{}</span></li>\n",
                esc(a.user.login)
            )
        })
        .collect();
    let note = p
        .note
        .map(|n| format!("<p class=\"muted\">{}</p>\n", esc(n)))
        .unwrap_or_default();
    let content = format!(
        "<h1>Sign in</h1>\n<p>to continue to <b>{app}</b></p>\n{note}{error}\
         <form method=\"post\" action=\"{action}\" autocomplete=\"off\">\n{hidden}\
         <label for=\"login\">Email or username</label>\n\
         <input type=\"text\" id=\"login\" name=\"login\" value=\"{login}\" autocomplete=\"username\" \
         autocapitalize=\"off\" spellcheck=\"false\" required{focus_login}>\n\
         <label for=\"password\">Password</label>\n\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" \
         required{focus_password}>\n\
         <p class=\"hint\">Demo accounts use the password <code>{pw}</code>.</p>\n\
         <div class=\"buttons\"><button type=\"submit\" id=\"next\">Sign in</button></div>\n</form>\n\
         <h2>Demo accounts</h2>\n<ul class=\"accounts\">\n{accounts}</ul>\n",
        app = esc(p.app_name),
        error = error_box(p.error),
        action = esc(p.action),
        hidden = hidden_fields(&p.hidden),
        login = esc(p.login),
        pw = DEMO_PASSWORD,
        // Focus the first empty field.
        focus_login = if p.login.is_empty() { " autofocus" } else { "" },
        focus_password = if p.login.is_empty() { "" } else { " autofocus" },
    );
    layout("Sign in to your account", &content)
}

pub struct Consent<'a> {
    pub action: &'a str,
    pub hidden: Vec<(String, String)>,
    pub app_name: &'a str,
    pub user: &'static User,
    /// (description, scope string) pairs.
    pub scopes: Vec<(String, String)>,
}

/// The consent page: buttons `accept` and `cancel` (`decision=accept|cancel`).
pub fn consent(p: &Consent<'_>) -> String {
    let scopes: String = p
        .scopes
        .iter()
        .map(|(d, s)| format!("<li>{} <code>{}</code></li>\n", esc(d), esc(s)))
        .collect();
    let content = format!(
        "<p class=\"muted\">{login}</p>\n<h1>Permissions requested</h1>\n\
         <p><b>{app}</b> would like to:</p>\n<ul class=\"scopes\">\n{scopes}</ul>\n\
         <p class=\"muted\">Accepting allows this app to use your data as described above. \
         You are signed in as {name}.</p>\n\
         <form method=\"post\" action=\"{action}\">\n{hidden}\
         <div class=\"buttons\">\
         <button type=\"submit\" id=\"cancel\" name=\"decision\" value=\"cancel\" class=\"secondary\">Cancel</button>\
         <button type=\"submit\" id=\"accept\" name=\"decision\" value=\"accept\">Accept</button>\
         </div>\n</form>\n",
        login = esc(p.user.login),
        name = esc(p.user.name),
        app = esc(p.app_name),
        action = esc(p.action),
        hidden = hidden_fields(&p.hidden),
    );
    layout("Permissions requested - Sign in to your account", &content)
}

/// The device code entry page: input `user_code`, button `next`.
pub fn device_code_entry(action: &str, prefill: &str, error: Option<&str>) -> String {
    let content = format!(
        "<h1>Enter code</h1>\n<p>Enter the code displayed on your app or device.</p>\n{error}\
         <form method=\"post\" action=\"{action}\" autocomplete=\"off\">\n\
         <input type=\"hidden\" name=\"step\" value=\"code\">\n\
         <label for=\"user_code\">Code</label>\n\
         <input type=\"text\" id=\"user_code\" name=\"user_code\" value=\"{prefill}\" \
         autocapitalize=\"characters\" spellcheck=\"false\" required autofocus>\n\
         <div class=\"buttons\"><button type=\"submit\" id=\"next\">Next</button></div>\n</form>\n",
        error = error_box(error),
        action = esc(action),
        prefill = esc(prefill),
    );
    layout("Enter code - Sign in to your account", &content)
}

/// A plain message page (`id="message"` on its heading).
pub fn message(title: &str, heading: &str, text: &str) -> String {
    let content = format!(
        "<h1 id=\"message\">{}</h1>\n<p>{}</p>\n",
        esc(heading),
        esc(text)
    );
    layout(title, &content)
}

/// Entra's "trouble signing you in" page for requests that cannot be redirected.
pub fn error(e: &AadError, d: &Diag) -> String {
    let content = format!(
        "<h1>Sorry, but we're having trouble signing you in.</h1>\n\
         <p class=\"error\" id=\"error\" role=\"alert\">AADSTS{code}: {msg}</p>\n\
         <dl><dt>Error</dt><dd>{err}</dd><dt>Request Id</dt><dd>{trace}</dd>\
         <dt>Correlation Id</dt><dd>{corr}</dd><dt>Timestamp</dt><dd>{ts}</dd></dl>\n",
        code = e.code,
        msg = esc(&e.message),
        err = esc(e.error),
        trace = esc(&d.trace_id),
        corr = esc(&d.correlation_id),
        ts = esc(&d.timestamp),
    );
    layout("Sign in to your account - Error", &content)
}

/// `response_mode=form_post`: a form that posts the response to the redirect URI.
pub fn form_post(action: &str, fields: &[(String, String)]) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Working...</title></head>\
         <body><form method=\"POST\" name=\"hiddenform\" action=\"{}\">\n{}\
         <noscript><p>Script is disabled. Click Submit to continue.</p>\
         <input type=\"submit\" value=\"Submit\"></noscript></form>\
         <script>document.forms[0].submit();</script></body></html>\n",
        esc(action),
        hidden_fields(fields)
    )
}
