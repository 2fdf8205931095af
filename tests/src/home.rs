//! A fresh, empty Tessera home directory per test.

/// Name of the environment variable that points Tessera at its home directory.
pub const HOME_ENV: &str = "TESSERA_HOME";

/// A fresh, empty directory to use as `TESSERA_HOME`; it is deleted when the
/// returned guard is dropped.
///
/// # Panics
/// When no temporary directory can be created (the test cannot run then).
pub fn temp_home() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tessera-home-")
        .tempdir()
        .expect("cannot create a temporary TESSERA_HOME")
}
