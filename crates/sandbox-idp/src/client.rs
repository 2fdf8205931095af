//! Scripted user agents for tests: fill in the sandbox's pages over plain HTTP (no browser).

use url::Url;

use crate::html;

/// Signs in through the authorize URL as `login`/`password`, accepts the consent, and returns
/// the URL the sandbox finally redirects to (not requested: nothing listens there). Its query
/// (or fragment) carries `code` and `state`, or `error`. For `response_mode=form_post`, the
/// posted fields are returned as the query of the form's action URL.
///
/// `Err` carries the page's error message (wrong password, unknown user, invalid request...).
/// Each call uses a fresh cookie jar; use [`ScriptedUserAgent`] to keep an SSO session.
pub async fn scripted_sign_in(
    authorize_url: &Url,
    login: &str,
    password: &str,
) -> Result<Url, String> {
    ScriptedUserAgent::new()?
        .sign_in(authorize_url, login, password)
        .await
}

/// Approves a device code flow as `login`/`password`: opens `/devicelogin` on the sandbox at
/// `handle_or_base` (its base URL, an authority, or the `verification_uri`), enters `user_code`,
/// signs in and accepts.
pub async fn scripted_device_approval(
    handle_or_base: &Url,
    user_code: &str,
    login: &str,
    password: &str,
) -> Result<(), String> {
    ScriptedUserAgent::new()?
        .device_login(handle_or_base, user_code, login, password, true)
        .await
}

/// A scripted browser with a cookie jar (so the sandbox's SSO session persists between calls).
pub struct ScriptedUserAgent {
    http: reqwest::Client,
}

/// A fetched page or redirect.
enum Outcome {
    Redirect(Url),
    Page(Url, String),
}

impl ScriptedUserAgent {
    pub fn new() -> Result<ScriptedUserAgent, String> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(ScriptedUserAgent { http })
    }

    async fn fetch(&self, req: reqwest::RequestBuilder, url: &Url) -> Result<Outcome, String> {
        let resp = req
            .send()
            .await
            .map_err(|e| format!("request to {url} failed: {e}"))?;
        let status = resp.status();
        if status.is_redirection() {
            let loc = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("{status} from {url} without a Location header"))?;
            let target = url
                .join(loc)
                .map_err(|e| format!("bad Location '{loc}': {e}"))?;
            return Ok(Outcome::Redirect(target));
        }
        let body = resp
            .text()
            .await
            .map_err(|e| format!("cannot read the page at {url}: {e}"))?;
        Ok(Outcome::Page(url.clone(), body))
    }

    async fn get(&self, url: &Url) -> Result<Outcome, String> {
        self.fetch(self.http.get(url.clone()), url).await
    }

    async fn post(&self, url: &Url, fields: &[(String, String)]) -> Result<Outcome, String> {
        self.fetch(self.http.post(url.clone()).form(fields), url)
            .await
    }

    /// Signs in (password, then Accept) and returns the final redirect URL.
    pub async fn sign_in(
        &self,
        authorize_url: &Url,
        login: &str,
        password: &str,
    ) -> Result<Url, String> {
        self.sign_in_with(authorize_url, login, password, true)
            .await
    }

    /// Like [`sign_in`](Self::sign_in), choosing Accept (`accept = true`) or Cancel on the
    /// consent page. If the sandbox redirects at once (SSO), that redirect is returned.
    pub async fn sign_in_with(
        &self,
        authorize_url: &Url,
        login: &str,
        password: &str,
        accept: bool,
    ) -> Result<Url, String> {
        let mut outcome = self.get(authorize_url).await?;
        let mut sent_password = false;
        for _ in 0..4 {
            let (page_url, html) = match outcome {
                Outcome::Redirect(u) => return Ok(u),
                Outcome::Page(u, h) => (u, h),
            };
            if let Some(u) = form_post_result(&page_url, &html)? {
                return Ok(u);
            }
            let (action, mut fields) = parse_form(&page_url, &html)?;
            if html.contains("name=\"password\"") {
                if sent_password {
                    return Err(page_error(&html));
                }
                sent_password = true;
                fields.push(("login".into(), login.into()));
                fields.push(("password".into(), password.into()));
            } else if html.contains("id=\"accept\"") {
                let decision = if accept { "accept" } else { "cancel" };
                fields.push(("decision".into(), decision.into()));
            } else {
                return Err(page_error(&html));
            }
            outcome = self.post(&action, &fields).await?;
        }
        Err("the sign-in did not finish after four pages".into())
    }

    /// Requests the authorize URL and expects an immediate redirect (SSO or an error redirect).
    pub async fn authorize_without_interaction(&self, authorize_url: &Url) -> Result<Url, String> {
        match self.get(authorize_url).await? {
            Outcome::Redirect(u) => Ok(u),
            Outcome::Page(u, html) => match form_post_result(&u, &html)? {
                Some(r) => Ok(r),
                None if html.contains("name=\"password\"") => {
                    Err("the sandbox asked for a password (no usable session)".into())
                }
                None if html.contains("id=\"accept\"") => {
                    Err("the sandbox asked for consent".into())
                }
                None => Err(page_error(&html)),
            },
        }
    }

    /// Completes the device code verification page: enter the code, sign in, then Accept
    /// (`accept = true`) or Cancel.
    pub async fn device_login(
        &self,
        handle_or_base: &Url,
        user_code: &str,
        login: &str,
        password: &str,
        accept: bool,
    ) -> Result<(), String> {
        let start = handle_or_base
            .join("/devicelogin")
            .map_err(|e| format!("bad sandbox URL: {e}"))?;
        let Outcome::Page(u, html) = self.get(&start).await? else {
            return Err("the device login page redirected unexpectedly".into());
        };
        let (action, mut fields) = parse_form(&u, &html)?;
        fields.push(("user_code".into(), user_code.into()));
        let Outcome::Page(u, html) = self.post(&action, &fields).await? else {
            return Err("the code page redirected unexpectedly".into());
        };
        if !html.contains("name=\"password\"") {
            return Err(page_error(&html));
        }
        let (action, mut fields) = parse_form(&u, &html)?;
        fields.push(("login".into(), login.into()));
        fields.push(("password".into(), password.into()));
        let Outcome::Page(u, html) = self.post(&action, &fields).await? else {
            return Err("the sign-in page redirected unexpectedly".into());
        };
        if !html.contains("id=\"accept\"") {
            return Err(page_error(&html));
        }
        let (action, mut fields) = parse_form(&u, &html)?;
        let decision = if accept { "accept" } else { "cancel" };
        fields.push(("decision".into(), decision.into()));
        let Outcome::Page(_, html) = self.post(&action, &fields).await? else {
            return Err("the consent page redirected unexpectedly".into());
        };
        let expected = if accept {
            "You're signed in"
        } else {
            "Sign-in cancelled"
        };
        if html::text(&html).contains(expected) {
            Ok(())
        } else {
            Err(page_error(&html))
        }
    }
}

/// The text of the page's `id="error"` element, or a summary of its heading.
fn page_error(page: &str) -> String {
    if let Some(error) = html::texts(page, "#error").into_iter().next() {
        return error;
    }
    match html::texts(page, "h1").into_iter().next() {
        Some(heading) => format!("unexpected page: {heading}"),
        None => "unexpected page from the sandbox".into(),
    }
}

/// For a `form_post` response page, the action URL with the posted fields as its query.
fn form_post_result(page_url: &Url, html: &str) -> Result<Option<Url>, String> {
    if !html.contains("name=\"hiddenform\"") {
        return Ok(None);
    }
    let (mut action, fields) = parse_form(page_url, html)?;
    action.query_pairs_mut().extend_pairs(fields.iter());
    Ok(Some(action))
}

/// The first form's action (resolved) and its hidden fields.
fn parse_form(page_url: &Url, page: &str) -> Result<(Url, Vec<(String, String)>), String> {
    let form = html::forms(page)
        .into_iter()
        .next()
        .ok_or_else(|| page_error(page))?;
    let action = form.action.clone().unwrap_or_default();
    let action = page_url
        .join(&action)
        .map_err(|e| format!("bad form action '{action}': {e}"))?;
    Ok((action, form.hidden_fields()))
}
