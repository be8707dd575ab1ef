//! The `hookseal` binary: CLI, logging, signals; everything else is in the library.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;

use hookseal::app::App;
use hookseal::config::{fmt_duration, Config};
use hookseal::verify::SchemeName;

#[derive(Debug, Parser)]
#[command(
    name = "hookseal",
    version,
    about = "Verifies webhook signatures in front of an app"
)]
struct Cli {
    /// Config file.
    #[arg(
        long,
        global = true,
        env = "HOOKSEAL_CONFIG",
        default_value = "/etc/hookseal/hookseal.toml"
    )]
    config: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, env = "HOOKSEAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level: error, warn, info, debug, trace, or a tracing filter such as
    /// `info,hookseal=debug`. The flag wins over HOOKSEAL_LOG.
    #[arg(
        long,
        global = true,
        env = "HOOKSEAL_LOG",
        default_value = "info",
        value_name = "LEVEL"
    )]
    log_level: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default).
    Run,
    /// Load and validate the config, resolve every secret, print the routes (never a secret).
    Check(CheckArgs),
    /// Print the headers a sender of SCHEME would send for a body; with --url, POST it.
    Sign(SignArgs),
    /// Queued delivery: the spool's numbers, dead letters, retry, purge (over the admin port).
    #[command(subcommand)]
    Queue(queue_cli::QueueCommand),
    /// Show the latest rejected requests (the admin port's /debug/rejections), newest first.
    Rejections(rejections::RejectionsArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Validate the file only: no secret (`env`, `file`) and no TLS file is read, so CI can
    /// check a config without its secrets. Secret formats and certificates are not checked.
    #[arg(long)]
    syntax_only: bool,
}

#[derive(Debug, Args)]
struct SignArgs {
    /// Scheme name, as in the config.
    #[arg(long, value_parser = PossibleValuesParser::new(SchemeName::all_names().iter().copied()))]
    scheme: Option<String>,
    /// The signing secret (for Ed25519 schemes: the private key).
    #[arg(long, env = "HOOKSEAL_SIGN_SECRET", hide_env_values = true)]
    secret: String,
    /// Message id (schemes that carry one; standard-webhooks without it: `msg_` and a hash
    /// of the timestamp and body).
    #[arg(long)]
    id: Option<String>,
    /// Unix seconds (default: now).
    #[arg(long)]
    timestamp: Option<i64>,
    /// Body file, or `-` for stdin (default: empty body).
    #[arg(long)]
    body_file: Option<String>,
    /// POST the signed request here and print the status and response body.
    #[arg(long)]
    url: Option<String>,
    /// Take scheme options (`[route.hmac]`, `public_url`, tolerance) from this route of --config.
    #[arg(long)]
    route: Option<String>,
    /// twilio, square, hubspot, plivo, mandrill: the URL the provider signs (a route's `public_url`). Without --url, the
    /// signed request's path and query are this URL's.
    #[arg(long)]
    public_url: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One process-wide rustls provider, chosen here (README: "TLS"), used by the listener and
    // by rediss:// connections.
    let _ = hookseal::tls::provider().install_default();
    init_logging(cli.log_format, &cli.log_level);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config),
        Command::Check(args) if args.syntax_only => check_syntax(&cli.config),
        Command::Check(_) => check(&cli.config),
        Command::Sign(args) => sign::run(&args, &cli.config),
        Command::Queue(cmd) => queue_cli::run(cmd, &cli.config),
        Command::Rejections(args) => rejections::run(&args, &cli.config),
    }
}

mod queue_cli;

/// Logs to stderr, text or JSON (one object a line), filtered by `level` (`--log-level`, else
/// `HOOKSEAL_LOG`: tracing filter syntax, default `info`). Each request's lines carry its
/// `request` span, which holds the request id: text prefixes `request{request_id=…}:`, JSON
/// has `"span":{"request_id":…}`.
fn init_logging(format: LogFormat, level: &str) {
    use std::io::IsTerminal;
    let (filter, bad_filter) = match tracing_subscriber::EnvFilter::try_new(level) {
        Ok(f) => (f, None),
        Err(e) => (
            tracing_subscriber::EnvFilter::new("info"),
            Some(format!("{level:?}: {e}")),
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    if let Some(e) = bad_filter {
        tracing::warn!(
            error = %e,
            "--log-level (or HOOKSEAL_LOG) is not a valid filter; logging at info"
        );
    }
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        for e in &errors.0 {
            eprintln!("{e}");
        }
        eprintln!("{} error(s) in {}", errors.0.len(), path.display());
        ExitCode::from(1)
    })
}

fn check_syntax(path: &Path) -> ExitCode {
    match Config::check_syntax(path) {
        Ok(()) => {
            println!(
                "{}: ok (syntax only: secrets and TLS files were not read)",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s) in {}", errors.0.len(), path.display());
            ExitCode::from(1)
        }
    }
}

fn check(path: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "{}: ok", path.display());
    let _ = writeln!(
        out,
        "listen {}{}  admin {}  upstream {}  replay {}",
        config.listen.address,
        if config.listen.tls.is_some() {
            " (tls)"
        } else {
            ""
        },
        config.admin.address,
        config.upstream.url,
        config.replay.store.as_str(),
    );
    if let Some(t) = &config.tracing {
        let _ = writeln!(
            out,
            "tracing otlp_endpoint {}  service_name {}  sample_ratio {}",
            t.otlp_endpoint, t.service_name, t.sample_ratio
        );
    }
    if let (Some(files), Some(tls)) = (&config.listen.tls, &config.listen.server_tls) {
        let _ = writeln!(
            out,
            "tls cert {} valid until {}  client_ca {}  provider {}",
            files.cert.display(),
            hookseal::tls::fmt_time(tls.not_after),
            files
                .client_ca
                .as_ref()
                .map_or_else(|| "none".to_owned(), |p| p.display().to_string()),
            hookseal::tls::PROVIDER_NAME,
        );
    }
    for r in &config.routes {
        let path = match &r.path {
            hookseal::route::PathMatch::Exact(p) => format!("path={p}"),
            hookseal::route::PathMatch::Prefix(p) => format!("path_prefix={p}"),
        };
        let methods: Vec<&str> = r.methods.iter().map(|m| m.as_str()).collect();
        let _ = writeln!(
            out,
            "route {:<16} {} methods={} scheme={} keys=[{}] tolerance={} dedupe={} mode={} delivery={}{}",
            r.name,
            path,
            methods.join(","),
            r.scheme
                .as_ref()
                .map_or(hookseal::verify::NO_SCHEME, |s| s.name().as_str()),
            r.secret_ids.join(","),
            fmt_duration(r.tolerance),
            r.dedupe,
            r.mode.as_str(),
            r.delivery.mode.as_str(),
            r.events.describe(),
        );
    }
    if let Some(line) = queue_cli::check_line(&config) {
        let _ = writeln!(out, "{line}");
    }
    for w in route_warnings(&config) {
        eprintln!("warning: {w}");
    }
    match write_out(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Writes `text` to stdout. A reader that went away (`hookseal check | head`) is not an
/// error: the output is quietly cut short, where `println!` would panic.
fn write_out(text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}

/// Configs that load but leave a gap `check` should name (README "Routing").
fn route_warnings(config: &hookseal::config::Config) -> Vec<String> {
    use hookseal::route::PathMatch;
    let mut out = Vec::new();
    for open in &config.routes {
        let PathMatch::Prefix(prefix) = &open.path else {
            continue;
        };
        if open.scheme.is_some() {
            continue;
        }
        let beside: Vec<&str> = config
            .routes
            .iter()
            .filter(|r| r.scheme.is_some())
            .filter(|r| matches!(&r.path, PathMatch::Exact(p) if open.path.matches(p)))
            .map(|r| r.name.as_str())
            .collect();
        if beside.is_empty() {
            continue;
        }
        out.push(format!(
            "route {} (scheme none, path_prefix={prefix}) forwards unverified every path under \
             {prefix} that no other route owns, beside verifying routes with exact paths ({}). \
             hookseal refuses the spellings of their paths that common servers and frameworks \
             read as theirs (400 ambiguous_path), but an app that routes another spelling to a \
             verifying handler (its own rewrites or aliases) would get it unsigned. Safer: narrow \
             this route to the app's own paths (e.g. path_prefix = \"/app/\"), or give the \
             verifying routes a path_prefix of their own (e.g. path_prefix = \"/webhooks/github/\" \
             verifies every path under it).",
            open.name,
            beside.join(", "),
        ));
    }
    out.extend(queue_cli::warnings(config));
    for r in &config.routes {
        let okta = r
            .scheme
            .as_ref()
            .is_some_and(|s| s.name().as_str() == "okta");
        if okta && r.secret_ids.is_empty() {
            out.push(format!(
                "route {}: scheme okta without secrets checks nothing: every request to it is \
                 forwarded with x-hookseal-verified: true. Give the hook's Authorization header \
                 value as secrets (Okta sends it with every request).",
                r.name
            ));
        }
    }
    for r in &config.routes {
        let pinned = r
            .options
            .public_url
            .as_deref()
            .is_some_and(hookseal::verify::pins_path);
        if pinned && matches!(r.path, PathMatch::Prefix(_)) {
            out.push(format!(
                "route {}: public_url has a path on a path_prefix route: only requests to exactly \
                 that path verify. Give public_url as scheme://host[:port] alone to verify every \
                 path under the prefix (the request's path is signed).",
                r.name
            ));
        }
    }
    out
}

fn run(path: &Path) -> ExitCode {
    limit_malloc_arenas();
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Thread per core (BENCHMARKS.md §5, §6): this thread's runtime accepts and serves, and
    // each further CPU gets a single-threaded runtime of its own.
    let threads = hookseal::workers::default_threads();
    let workers = match hookseal::workers::Workers::start(threads) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot start the worker threads: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        // SIGHUP reloads; its handler is installed before anything else, as the default action
        // would end the process.
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        let listen = config.listen.address;
        let admin = config.admin.address;
        let listener = match TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(address = %listen, error = %e, "cannot bind the listen address");
                return ExitCode::from(1);
            }
        };
        let admin_listener = match TcpListener::bind(admin).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(address = %admin, error = %e, "cannot bind the admin address");
                return ExitCode::from(1);
            }
        };
        let routes = config.routes.len();
        // The bound addresses (a configured port 0 shows the one the kernel chose).
        let listen = listener.local_addr().unwrap_or(listen);
        let admin = admin_listener.local_addr().unwrap_or(admin);
        let app = match App::new(config) {
            Ok(a) => a.with_workers(workers),
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return ExitCode::from(1);
            }
        };
        // The bound addresses (a configured port 0 is resolved here).
        let listen = listener.local_addr().unwrap_or(listen);
        let admin = admin_listener.local_addr().unwrap_or(admin);
        match hangup {
            Ok(mut hangup) => {
                let app = app.clone();
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the config");
                        app.request_reload();
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP; file changes still reload"),
        }
        tokio::spawn(trim_heap());
        tracing::info!(listen = %listen, admin = %admin, routes, threads, version = env!("CARGO_PKG_VERSION"), "hookseal serving");
        let drained = app.run(listener, admin_listener, shutdown_signal()).await;
        if drained.cut_off > 0 {
            tracing::warn!(
                connections = drained.cut_off,
                requests = drained.requests_cut_off,
                "exited with connections cut off"
            );
        }
        tracing::info!("hookseal stopped");
        ExitCode::SUCCESS
    })
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[path = "cli/rejections.rs"]
mod rejections;

mod sign {
    //! `hookseal sign`: the headers a sender would send, and optionally the request itself.
    use super::*;

    use bytes::Bytes;
    use hookseal::verify::SchemeOptions;
    use http_body_util::{BodyExt, Full};

    pub(super) fn run(args: &SignArgs, config: &Path) -> ExitCode {
        match sign(args, config) {
            Ok(code) => code,
            Err(message) => {
                eprintln!("hookseal sign: {message}");
                ExitCode::from(1)
            }
        }
    }

    fn sign(args: &SignArgs, config: &Path) -> Result<ExitCode, String> {
        let schemes = || SchemeName::all_names().join(", ");
        let scheme = args
            .scheme
            .as_deref()
            .ok_or_else(|| format!("--scheme is required; one of: {}", schemes()))?;
        // `None`: "none", no verification, which has nothing to sign with (said below, after
        // the other arguments were checked).
        let name = match scheme {
            hookseal::verify::NO_SCHEME => None,
            s => Some(
                SchemeName::parse(s)
                    .ok_or_else(|| format!("unknown scheme {scheme:?}; one of: {}", schemes()))?,
            ),
        };
        let mut options = match &args.route {
            None => SchemeOptions::default(),
            Some(route) => {
                let config =
                    Config::load(config).map_err(|e| format!("{}: {e}", config.display()))?;
                let r = config
                    .routes
                    .into_iter()
                    .find(|r| &r.name == route)
                    .ok_or_else(|| format!("no route named {route:?} in the config"))?;
                r.options
            }
        };
        let mut body = Vec::new();
        if let Some(f) = &args.body_file {
            let r = if f == "-" {
                std::io::stdin().read_to_end(&mut body).map(|_| ())
            } else {
                std::fs::read(f).map(|b| body = b)
            };
            r.map_err(|e| format!("cannot read the body from {f}: {e}"))?;
        }
        let uri: Option<http::Uri> = match &args.url {
            None => None,
            Some(u) => Some(u.parse().map_err(|e| format!("--url {u:?}: {e}"))?),
        };
        if let Some(public) = &args.public_url {
            options.public_url = Some(public.clone());
        }
        // The request target: --url's, else the public URL's (what the provider would call):
        // --public-url's, else the route's `public_url`.
        let public: Option<http::Uri> = options.public_url.as_ref().and_then(|u| u.parse().ok());
        let path_and_query = uri
            .as_ref()
            .or(public.as_ref())
            .and_then(|u| u.path_and_query())
            .map_or("/", |p| p.as_str())
            .to_owned();
        let timestamp = args.timestamp.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
        let name = name.ok_or("scheme none does not sign requests")?;
        let headers = hookseal::verify::sign(
            name,
            &options,
            args.secret.as_bytes(),
            args.id.as_deref(),
            timestamp,
            "POST",
            &path_and_query,
            &body,
        )
        .map_err(|e| e.message.to_string())?;
        let lines: String = headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
        super::write_out(&lines)?;
        let Some(uri) = uri else {
            return Ok(ExitCode::SUCCESS);
        };
        if uri.scheme_str() != Some("http") {
            return Err(
                "--url must be http:// (for https, send the printed headers with curl)".into(),
            );
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(post(uri, headers, body))
    }

    async fn post(
        uri: http::Uri,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<ExitCode, String> {
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::TokioExecutor;
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = http::Request::post(uri.clone()).header("content-type", "application/json");
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(std::time::Duration::from_secs(30), client.request(req))
            .await
            .map_err(|_| format!("{uri}: no answer within 30s"))?
            .map_err(|e| format!("{uri}: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        super::write_out(&format!(
            "\n{} {}\n{}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            String::from_utf8_lossy(&body)
        ))?;
        Ok(if status.is_success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        })
    }
}

/// One malloc arena for the whole process (glibc only; `MALLOC_ARENA_MAX` in the environment
/// still wins). glibc gives each allocating thread an arena of its own, and every arena keeps
/// its freed 1 MiB body buffers cached: with 64 concurrent 1 MiB bodies the peak RSS was
/// 112–124 MiB with the default arenas and 83 MiB with one, at no measurable CPU cost
/// (benches/load.sh; BENCHMARKS.md "Memory"). Small allocations stay in per-thread caches.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt is glibc's documented tuning entry point; it takes two integers and
        // is called here once, before the runtime starts any thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

/// How often freed heap memory is handed back to the kernel.
const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Hands freed heap pages back to the kernel every [`TRIM_INTERVAL`]: glibc returns memory only
/// from the top of the heap by itself, so after a burst of large bodies a few small long-lived
/// allocations (connections made during the burst) kept 50–60 MiB resident
/// (BENCHMARKS.md, "What was learned"). `malloc_trim(0)` releases every free page wherever it
/// is; on an idle heap it costs microseconds.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
async fn trim_heap() {
    let mut tick = tokio::time::interval(TRIM_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // SAFETY: malloc_trim is glibc's documented entry point, safe to call from any thread
        // at any time; it takes the allocator's own locks.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
async fn trim_heap() {}
