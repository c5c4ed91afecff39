//! `meseta version` and `meseta completion`: facts about the CLI itself
//! (and the server's `/version`).

use clap::{Args, CommandFactory};
use clap_complete::Shell;
use reqwest::Method;

use crate::conn::Conn;

/// Arguments of `meseta completion`.
#[derive(Debug, Args)]
pub(crate) struct CompletionArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub(crate) shell: Shell,
}

/// Prints the completion script of `args.shell` on stdout.
pub(crate) fn completion(args: &CompletionArgs) {
    let mut cmd = crate::cli::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "meseta", &mut std::io::stdout());
}

/// Prints the client's version, then the server's.
pub(crate) async fn version(conn: &Conn) -> anyhow::Result<()> {
    println!("Client Version: v{}", env!("CARGO_PKG_VERSION"));
    let server = conn.json(Method::GET, "/version", &[], None).await?;
    let git = server.get("gitVersion").and_then(|v| v.as_str()).unwrap_or("unknown");
    println!("Server Version: {git}");
    println!("Server URL: {}", conn.base());
    Ok(())
}
