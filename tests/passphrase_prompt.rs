//! `vault forget --prune` on a terminal asks for the store passphrase once: the keys it
//! unlocks serve the prune too. Run on a real pseudo-terminal (Python's `pty`), answering
//! every prompt, and counting them.

mod common;

use common::Vault;
use std::process::Command;

/// Runs argv[3:] on a new pseudo-terminal, answers each passphrase prompt with argv[1],
/// prints how many prompts there were and exits with the program's status.
const PTY_DRIVER: &str = r#"
import os, pty, sys
passphrase, prompt, argv = sys.argv[1], sys.argv[2].encode(), sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
seen, prompts = b"", 0
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    seen += data
    while prompt in seen:
        prompts += 1
        seen = seen.split(prompt, 1)[1]
        os.write(fd, passphrase.encode() + b"\n")
    sys.stdout.write(data.decode(errors="replace"))
_, status = os.waitpid(pid, 0)
print("\nPROMPTS=%d" % prompts)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn forget_then_prune_asks_for_the_passphrase_once() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    for i in 0..3u8 {
        std::fs::write(src.join("f"), vec![i; 200_000]).unwrap();
        v.ok(["snapshot", src.to_str().unwrap()]);
    }
    let vault = v.command(["forget", "--keep-last", "1", "--prune"]);
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(PTY_DRIVER)
        .arg(&v.passphrase)
        .arg("Passphrase for the store")
        .arg(vault.get_program())
        .args(vault.get_args());
    for (k, val) in vault.get_envs() {
        match val {
            Some(val) => cmd.env(k, val),
            None => cmd.env_remove(k),
        };
    }
    // No passphrase given: vault must ask on the terminal.
    cmd.env_remove("VAULT_PASSPHRASE");
    let out = common::run_command(cmd).ok();
    assert!(
        out.stdout.contains("removed 2 of 3 snapshots"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("1 snapshots keep"),
        "prune ran: {}",
        out.describe()
    );
    assert!(out.stdout.contains("PROMPTS=1"), "{}", out.describe());
    assert_eq!(v.snapshot_ids().len(), 1);
    v.ok(["check"]);
}
