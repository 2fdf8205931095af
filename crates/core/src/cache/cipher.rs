//! The one seam every stored secret goes through (filled in by the store work).
