//! Authorities: filled in next.
