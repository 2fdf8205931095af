//! Who got what: one [`Activity`] per token request an agent answered (handed out from
//! memory or the cache, refreshed, after a sign-in, denied, failed), and the program that
//! asked ([`Peer`], read from `/proc` by the peer's PID).
//!
//! Invariant: an activity holds no token, code or secret, and no command line (another
//! program's arguments may hold its secrets): the program's name and PID only. The store
//! keeps activities for [`KEEP_SECS`], at most [`KEEP_ROWS`] of them.

use serde::{Deserialize, Serialize};

/// How long the store keeps an activity: 7 days.
pub const KEEP_SECS: i64 = 7 * 24 * 3600;
/// The most activities the store keeps (the oldest go first).
pub const KEEP_ROWS: usize = 10_000;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A cached token (or the agent's memory of it).
    Cache,
    /// A token refreshed at the provider.
    Refreshed,
    /// A token after the user signed in at the agent's prompt.
    SignedIn,
    /// The user denied it, or did not answer in time.
    Denied,
    /// A sign-in was needed and nobody could be asked (a headless agent).
    InteractionRequired,
    /// Anything else (usage, provider, store).
    Failed,
}

impl Outcome {
    /// Whether a token was handed out.
    pub fn handed_out(self) -> bool {
        matches!(
            self,
            Outcome::Cache | Outcome::Refreshed | Outcome::SignedIn
        )
    }
}

/// One answered token request. No token: see the module's invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Unix seconds.
    pub at: i64,
    /// The account's user name (as asked when it was not found).
    pub account: String,
    pub profile: Option<String>,
    pub scopes: Vec<String>,
    /// The requesting program's name (the program that ran `tessera-cli`, when it did).
    pub program: String,
    pub pid: u32,
    pub outcome: Outcome,
}

/// A process as `/proc` shows it: its PID and name (`comm`, as the kernel keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub name: String,
}

/// Who connected: the peer process, and the program that ran it when the peer is
/// `tessera-cli` (the program that wants the token: kubectl, git, a script). Read with
/// one file per process (`/proc/PID/stat`), on every request; the command lines are read
/// only to show them ([`Peer::describe`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub process: Process,
    pub parent: Option<Process>,
}

/// `/proc/PID/stat`: the name (between the first `(` and the last `)`) and the parent's PID.
fn stat(pid: u32) -> Option<(String, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    let ppid = text
        .get(close + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((name, ppid))
}

/// A process's arguments after the program, as `/proc/PID/cmdline` shows them.
fn args(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

impl Process {
    /// The name and, while the process runs, its arguments, shortened for one line.
    pub fn command_line(&self) -> String {
        let mut line = self.name.clone();
        for a in args(self.pid) {
            line.push(' ');
            line.push_str(&a);
        }
        if line.chars().count() > 200 {
            line = line.chars().take(199).collect::<String>() + "…";
        }
        super::lookup::sanitize(&line)
    }
}

impl Peer {
    /// The peer with PID `pid` (and its parent when it is `tessera-cli`). A process that
    /// is gone is "a program".
    pub fn read(pid: u32) -> Peer {
        let (name, ppid) = stat(pid).unwrap_or_else(|| ("a program".into(), 0));
        let parent = (name == "tessera-cli" && ppid > 1)
            .then(|| stat(ppid).map(|(name, _)| Process { pid: ppid, name }))
            .flatten();
        Peer {
            process: Process { pid, name },
            parent,
        }
    }

    /// The program that wants the token.
    pub fn requester(&self) -> &Process {
        self.parent.as_ref().unwrap_or(&self.process)
    }

    /// "kubectl get pods (through tessera-cli token --output exec-credential)".
    pub fn describe(&self) -> String {
        match &self.parent {
            Some(p) => format!(
                "{} (through {})",
                p.command_line(),
                self.process.command_line()
            ),
            None => self.process.command_line(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_from_proc() {
        let me = Peer::read(std::process::id());
        assert_eq!(me.process.pid, std::process::id());
        assert!(!me.process.name.is_empty());
        assert!(me.parent.is_none(), "the test binary is not tessera-cli");
        assert_eq!(me.requester().pid, std::process::id());
        // A process that is gone is still named.
        assert_eq!(Peer::read(u32::MAX - 1).describe(), "a program");
    }

    #[test]
    fn an_activity_has_no_place_for_a_token() {
        let a = Activity {
            at: 1,
            account: "alice@contoso.example".into(),
            profile: Some("Sandbox".into()),
            scopes: vec!["User.Read".into()],
            program: "kubectl".into(),
            pid: 42,
            outcome: Outcome::Refreshed,
        };
        let json = serde_json::to_value(&a).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["account", "at", "outcome", "pid", "profile", "program", "scopes"]
        );
    }
}
