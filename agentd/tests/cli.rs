//! The `meseta-agentd` command line: flag values are checked before the
//! agent starts, and errors name the flag.

use std::process::Command;

fn agentd(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meseta-agentd")).args(args).output().expect("run meseta-agentd");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn an_invalid_hostname_is_refused_naming_the_flag() {
    for bad in ["", "Upper", "under_score", "-dash"] {
        let flag = format!("--hostname={bad}");
        let (code, stderr) = agentd(&[&flag, "--work-dir", "/nonexistent/never-created"]);
        assert_eq!(code, Some(2), "--hostname {bad:?}: {stderr}");
        assert!(stderr.contains("--hostname"), "--hostname {bad:?}: {stderr}");
    }
    let (_, stderr) = agentd(&["--hostname", ""]);
    assert!(stderr.contains("must not be empty"), "{stderr}");
}

#[test]
fn the_hostname_flag_is_documented() {
    let out = Command::new(env!("CARGO_BIN_EXE_meseta-agentd")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--hostname <HOSTNAME>"), "{help}");
}
