//! `mock-exchange`: parses arguments, runs the library, maps errors to exit codes
//! (0 ok, 1 failed, 2 usage or configuration error).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mock_exchange::config::{Config, VARIABLES};
use mock_exchange::{Error, healthcheck, init_logging, self_check, serve};

/// The lab's API service. Configuration comes only from the environment.
#[derive(Parser)]
#[command(name = "mock-exchange", version, after_help = env_help())]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the HTTP server (the default).
    Serve,
    /// Load the configuration, connect to the database, check the schema version and
    /// print a report; exit 0 when all is well, 1 otherwise.
    SelfCheck,
    /// Exit 0 when the URL answers 200 within 2 s, else 1 (for container healthchecks).
    Healthcheck {
        /// The URL to probe [default: /health on BIND_ADDR's port, else
        /// http://127.0.0.1:8000/health].
        #[arg(long)]
        url: Option<String>,
    },
}

fn env_help() -> String {
    let mut s = String::from("Environment:\n");
    for (name, default, what) in VARIABLES {
        let default = default.map_or_else(|| "required".to_string(), |d| format!("default {d}"));
        s.push_str(&format!("  {name:<24} {what} ({default})\n"));
    }
    s
}

fn main() -> ExitCode {
    // Baked here, not in the library: a new build id recompiles only this file.
    mock_exchange::build_info::set(mock_exchange::build_info::BuildInfo {
        git_sha: mock_exchange::build_info::or_unknown(option_env!("STACKPILOT_GIT_SHA")),
        build_id: mock_exchange::build_info::or_unknown(option_env!("STACKPILOT_BUILD_ID")),
        build_time: mock_exchange::build_info::or_unknown(option_env!("STACKPILOT_BUILD_TIME")),
    });
    let cli = Cli::parse();
    let result = match cli.cmd.unwrap_or(Cmd::Serve) {
        Cmd::Healthcheck { url } => {
            let url = url.unwrap_or_else(|| {
                mock_exchange::health_url(std::env::var("BIND_ADDR").ok().as_deref())
            });
            healthcheck(&url)
        }
        Cmd::Serve => with_config(|cfg, rt| {
            init_logging(cfg.log_level);
            rt.block_on(serve(cfg))
        }),
        Cmd::SelfCheck => with_config(|cfg, rt| rt.block_on(self_check(&cfg))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-exchange: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn with_config(
    f: impl FnOnce(Config, &tokio::runtime::Runtime) -> Result<(), Error>,
) -> Result<(), Error> {
    let cfg = Config::from_env()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))?;
    let result = f(cfg, &rt);
    // A blocking task (e.g. a DNS lookup of the database host) must not delay the exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
