mod cli;
mod engine;
mod support_smoke;
mod oidc;
mod msal_interop;
mod storage;
mod hostile;
