mod cli;
mod engine;
mod hostile;
mod load;
mod msal_interop;
mod oidc;
mod storage;
mod support_smoke;
