//! `login --browser`: the system browser and `tessera_core::loopback`'s listener, with the
//! terminal's messages.

use std::time::Duration;

use tessera_core::app::UserAgent;
use tessera_core::authcode::AuthCodeFlow;
use tessera_core::error::{Error, Result};
use tessera_core::loopback::{Browser, LoopbackListener, OpenError, Opener};
use tokio_util::sync::CancellationToken;
use url::Url;

/// How long the user has to finish signing in.
pub const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

pub struct LoopbackAgent {
    listener: LoopbackListener,
    opener: Opener,
}

impl LoopbackAgent {
    pub async fn bind(profile_redirect: &Url, opener: Opener) -> Result<LoopbackAgent> {
        Ok(LoopbackAgent {
            listener: LoopbackListener::bind(profile_redirect).await?,
            opener,
        })
    }

    pub fn redirect_uri(&self) -> &Url {
        self.listener.redirect_uri()
    }
}

#[async_trait::async_trait]
impl UserAgent for LoopbackAgent {
    async fn authorize(&self, flow: &AuthCodeFlow) -> Result<Url> {
        let url = flow.authorize_url();
        eprintln!("Opening your browser... If it does not open, visit:\n  {url}");
        let mut browser = Browser::open(&self.opener, url).await.map_err(|e| match e {
            OpenError::NoBrowser => Error::Config(
                "no web browser was found; use --device-code, or set TESSERA_BROWSER=none and open the address above yourself"
                    .into(),
            ),
            other => Error::Config(other.to_string()),
        })?;
        // Ctrl-C is handled by the caller.
        let outcome = self
            .listener
            .wait(
                flow.state(),
                &mut browser,
                &CancellationToken::new(),
                SIGN_IN_TIMEOUT,
            )
            .await;
        browser.close().await;
        outcome.map_err(|why| {
            let why = why.to_string();
            let mut chars = why.chars();
            let first = chars.next().map(|c| c.to_uppercase().to_string());
            eprintln!("{}{}.", first.unwrap_or_default(), chars.as_str());
            Error::Cancelled
        })
    }
}
