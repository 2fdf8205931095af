mod engine;
mod support_smoke;
