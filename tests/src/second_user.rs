//! Another user knocking at an agent's socket: a Python probe run as `nobody` through
//! `setpriv` (needs root; skipped where it cannot switch users), used by the headless
//! agent's suite and by the app's end-to-end suite alike.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What another user got from the agent at `socket`: `refused: permission` (the folder
/// and socket modes kept it out), the agent's reply, or `closed`. `None` when this machine
/// cannot run a second user.
pub fn knock(socket: &Path) -> Option<String> {
    let probe = format!(
        "import socket,struct,sys\n\
         s=socket.socket(socket.AF_UNIX)\n\
         try:\n    s.connect({:?})\n\
         except PermissionError:\n    print('refused: permission'); sys.exit(0)\n\
         b=b'{{\"v\":1,\"op\":\"status\"}}'\n\
         try:\n    s.sendall(struct.pack('>I',len(b))+b)\n\
         except BrokenPipeError:\n    pass\n\
         d=s.recv(4)\n\
         print(s.recv(65536).decode() if d else 'closed')\n",
        socket.display().to_string()
    );
    let out = std::process::Command::new("setpriv")
        .current_dir("/")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "/usr/bin/python3",
            "-c",
            &probe,
        ])
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("setpriv") {
        eprintln!("skipped: {stderr}");
        return None;
    }
    Some(format!("{}{stderr}", String::from_utf8_lossy(&out.stdout)))
}

/// Run `f` with the socket and every folder above it opened to everyone (as a careless
/// admin might), then put the modes back: only the agent's own uid check is left.
pub fn with_socket_opened<T>(socket: &Path, f: impl FnOnce() -> T) -> T {
    let mut changed = Vec::new();
    for dir in socket.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o011))
                .expect("open a folder");
            changed.push((dir.to_path_buf(), mode));
        }
    }
    let socket_mode = std::fs::metadata(socket)
        .expect("the socket")
        .permissions()
        .mode();
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).expect("open it");
    let result = f();
    let _ = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(socket_mode));
    for (dir, mode) in changed {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode));
    }
    result
}

/// The agent at `socket` keeps another user out twice: by the modes of its folder and
/// socket, and, with those opened, by the peer's uid. `false` when skipped.
pub fn is_refused_twice(socket: &Path) -> bool {
    let Some(said) = knock(socket) else {
        return false;
    };
    assert!(
        said.contains("refused: permission"),
        "the folder and socket keep others out: {said}"
    );
    let said = with_socket_opened(socket, || knock(socket)).expect("setpriv ran before");
    assert!(
        said.contains("serves only its own user") && !said.contains("\"status\""),
        "the agent refuses another uid: {said}"
    );
    true
}
