//! The `lifecycle` binary: parses arguments, runs ctx-guard first, hands over to the
//! `lifecycle` library, prints, and maps errors to exit codes.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use lifecycle::cli::{Cli, Cmd};
use lifecycle::{BuildRequest, LifecycleError, Site, UpRequest};
use stackpilot_core::Config;
use stackpilot_core::output::{Format, print};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let instead = match &cli.command {
        Cmd::Build(_) => "make demo",
        Cmd::Up(_) => "make up",
        Cmd::Down { .. } => "make down",
        Cmd::LoadImage { .. } => "make deploy",
        Cmd::Status { .. } => "make verify",
    };
    ctx_guard::node_main("lifecycle", instead, |allowed| run(allowed, cli.command))
}

fn run(allowed: &ctx_guard::Allowed, command: Cmd) -> Result<(), LifecycleError> {
    let repo = Path::new(stackpilot_core::node::NODE_REPO);
    let cfg = Config::load(&repo.join(stackpilot_core::config::CONFIG_FILE))?;
    let site = Site::on_node(&cfg);
    match command {
        Cmd::Build(args) => {
            let req = BuildRequest::from_args(&args, &site.repo)?;
            let r = lifecycle::build(allowed, &cfg, &site, &req)?;
            if args.json {
                match serde_json::to_string_pretty(&r) {
                    Ok(text) => stackpilot_core::outln!("{text}"),
                    Err(e) => eprintln!("lifecycle: cannot print the receipt as JSON: {e}"),
                }
                return Ok(());
            }
            stackpilot_core::outln!(
                "built {} ({}), build id {}, receipt {}",
                r.tag,
                r.image_id,
                r.build_id,
                site.env_dir(&r.env)
                    .join(stackpilot_core::receipts::BUILD_RECEIPT)
                    .display()
            );
        }
        Cmd::Up(args) => {
            let req = UpRequest::from_args(&args, &site.repo)?;
            let report = lifecycle::up(allowed, &cfg, &site, &req)?;
            print(&report, Format::from_json_flag(args.json));
        }
        Cmd::Down { env, db_image } => {
            lifecycle::down(allowed, &cfg, &site, &env, db_image.as_deref())?;
            stackpilot_core::outln!("stopped the containers of env {env}; images and volumes kept");
        }
        Cmd::LoadImage {
            tag,
            file,
            expect_id,
            json,
        } => {
            let archive = match &file {
                Some(path) => lifecycle::Archive::File(path),
                None => lifecycle::Archive::Stdin,
            };
            let report = lifecycle::load_image(allowed, archive, &tag, expect_id.as_deref())?;
            print(&report, Format::from_json_flag(json));
        }
        Cmd::Status { env, json } => {
            let report = lifecycle::status(&cfg, &site, &env)?;
            print(&report, Format::from_json_flag(json));
        }
    }
    Ok(())
}
