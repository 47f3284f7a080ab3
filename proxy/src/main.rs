//! The `egress-proxy` command: `run`, `validate`, `check`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: per-connection objects (tokio's 128-byte-aligned task cells and
/// I/O registrations, the audit line) come from size classes without the
/// alignment slop glibc's `memalign` leaves, and allocation is cheaper.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Egress proxy enforcing per-devbox network policies.
#[derive(Debug, Parser)]
#[command(name = "egress-proxy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the proxy until SIGTERM or SIGINT (the embedded default config without --config).
    Run {
        /// The config file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validates a config and its policy files: exit 0, or every error and exit 2.
    Validate {
        /// The config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Decides one connection: prints allow/deny, reason, policy, rule; exit 0 allow, 1 deny, 2 error.
    Check {
        /// The config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The client's source address.
        #[arg(long)]
        source: IpAddr,
        /// The destination address for a named HOST (CIDR rules apply to it).
        #[arg(long)]
        dest: Option<IpAddr>,
        /// HOST[:PORT], port 443 by default; HOST may be an IP literal.
        target: String,
    },
    /// Reads audit logs.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Names each devbox was (or in report mode would have been) denied, most frequent first.
    Suggest {
        /// The audit log (JSON lines).
        #[arg(long)]
        log: PathBuf,
        /// Only this devbox.
        #[arg(long)]
        devbox: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout();
    let code = match cli.command {
        Command::Run { config } => egress_proxy::run::main(config.as_deref()),
        Command::Validate { config } => egress_proxy::cli::validate(&config, &mut out),
        Command::Check {
            config,
            source,
            dest,
            target,
        } => egress_proxy::cli::check(&config, source, dest, &target, &mut out),
        Command::Audit {
            command: AuditCommand::Suggest { log, devbox },
        } => egress_proxy::suggest::suggest(&log, devbox.as_deref(), &mut out),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}
