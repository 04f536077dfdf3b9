//! The `dslab` command line. Parsing only; the work is in the library.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use dslab::registry;
use dslab::serve::{SERVICES, ServeConfig, serve};
use dslab::tour::{run_demo, summarize, tour};
use observability::demo::Narrator;
use observability::telemetry::{self, TelemetryConfig};

#[derive(Parser, Debug)]
#[command(
    name = "dslab",
    version,
    about = "Distributed-systems mechanisms you can run, break and watch recover."
)]
struct Cli {
    /// Export spans over OTLP/gRPC to this collector, e.g. http://127.0.0.1:4317.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the episode map: episode, module, test filter, demo.
    List {
        /// As the Markdown table the README embeds.
        #[arg(long)]
        markdown: bool,
    },
    /// Run one live demo.
    Demo {
        /// The demo's name, as `dslab list` shows it.
        name: String,
    },
    /// Run every demo in course order, then a summary; fails if any claim fails.
    Tour,
    /// Run one service on real TCP until Ctrl-C.
    Serve {
        /// The service to run.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(SERVICES))]
        service: String,
        /// Address to listen on; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: std::net::SocketAddr,
        /// A peer to call (host:port or http://host:port); repeatable.
        #[arg(long = "peer")]
        peers: Vec<String>,
        /// This instance's name (a relay's hop name).
        #[arg(long)]
        name: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("dslab: {err:#}");
            ExitCode::from(3)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::List { markdown } = cli.command {
        if markdown {
            print!("{}", registry::markdown());
        } else {
            for topic in registry::topics() {
                let demo = topic.demo.map_or("—", |d| d.name);
                println!(
                    "{:<8} {:<24} {:<20} cargo test {:<28} {}",
                    topic.episodes, topic.module, demo, topic.tests, topic.summary
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let serving = matches!(cli.command, Command::Serve { .. });
    let telemetry = telemetry::init(TelemetryConfig {
        service_name: "dslab".into(),
        otlp_endpoint: cli.otlp_endpoint,
        default_log_filter: if serving { "info" } else { "warn" }.into(),
        capture_spans: !serving,
    })?;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let code = runtime.block_on(async {
        let spans = telemetry.capture().cloned().unwrap_or_default();
        let mut out = Narrator::stdout();
        match cli.command {
            Command::List { .. } => Ok(ExitCode::SUCCESS),
            Command::Demo { name } => {
                let Some(demo) = registry::demo(&name) else {
                    let known: Vec<&str> = registry::topics()
                        .iter()
                        .filter_map(|t| t.demo)
                        .map(|d| d.name)
                        .collect();
                    anyhow::bail!("no demo called {name:?}; demos: {}", known.join(", "));
                };
                let episodes = registry::topics()
                    .into_iter()
                    .find(|t| t.demo.is_some_and(|d| d.name == name))
                    .map_or("", |t| t.episodes);
                let outcome = run_demo(demo, episodes, &mut out, &spans).await;
                Ok(exit_code(summarize(&mut out, &[outcome])))
            }
            Command::Tour => Ok(exit_code(tour(&mut out, &spans).await)),
            Command::Serve {
                service,
                listen,
                peers,
                name,
            } => {
                serve(ServeConfig {
                    service,
                    listen,
                    peers,
                    name,
                })
                .await?;
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    // Flush exported spans even when the command failed.
    let flushed = telemetry.shutdown();
    let code = code?;
    flushed?;
    Ok(code)
}

fn exit_code(all_held: bool) -> ExitCode {
    if all_held {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
