//! `hookseal queue …` (the binary's side: arguments, output, exit codes).

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use hookseal::queue::cli::{self, Action};

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Depth, dead letters and oldest entry age per queued route.
    Stats(Admin),
    /// The dead letters (id, route, attempts, last status and error; never a body).
    Dead {
        /// Only this route's.
        #[arg(long)]
        route: Option<String>,
        #[command(flatten)]
        admin: Admin,
    },
    /// Put a dead letter back in the queue: ID, or every dead letter of --route with --all-dead.
    Retry {
        /// The dead letter's id.
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<String>,
        /// Every dead letter of --route (at most once every 10 s per route).
        #[arg(long, requires = "route")]
        all_dead: bool,
        /// The route (required with --all-dead).
        #[arg(long)]
        route: Option<String>,
        #[command(flatten)]
        admin: Admin,
    },
    /// Delete the dead letters of --route.
    Purge {
        /// Delete dead letters (the only kind purged; required to say so).
        #[arg(long, required = true)]
        dead: bool,
        /// The route.
        #[arg(long, required = true)]
        route: String,
        #[command(flatten)]
        admin: Admin,
    },
}

#[derive(Debug, Args)]
pub struct Admin {
    /// The admin port's URL (default: `admin.address` of --config, loopback for 0.0.0.0).
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
}

pub fn run(cmd: QueueCommand, config: &Path) -> ExitCode {
    let (action, admin) = match cmd {
        QueueCommand::Stats(a) => (Action::Stats, a),
        QueueCommand::Dead { route, admin } => (Action::Dead { route }, admin),
        QueueCommand::Retry {
            id: Some(id),
            route,
            admin,
            ..
        } => (Action::RetryId { id, route }, admin),
        QueueCommand::Retry {
            route: Some(route),
            admin,
            ..
        } => (Action::RetryAllDead { route }, admin),
        QueueCommand::Retry { .. } => {
            eprintln!("hookseal queue retry: give ID, or --all-dead --route R");
            return ExitCode::from(2);
        }
        QueueCommand::Purge { route, admin, .. } => (Action::PurgeDead { route }, admin),
    };
    let base = match admin.admin {
        Some(u) => u,
        None => match hookseal::config::Config::load(config) {
            Ok(c) => cli::admin_url(c.admin.address),
            Err(e) => {
                eprintln!("{e}\nhookseal queue: cannot read the admin address from the config; give --admin URL");
                return ExitCode::from(2);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookseal queue: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::call(&base, &action)) {
        Ok((status, body)) => {
            let out = printable(body);
            if (200..300).contains(&status) {
                if let Err(e) = crate::write_out(&out) {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            } else {
                eprint!("HTTP {status}\n{out}");
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("hookseal queue: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The admin's answer for a terminal: pretty JSON, with the control characters and bidi
/// overrides JSON leaves raw escaped (ids come from senders' unsigned headers, `last_error`
/// from the app: a C1 control such as U+009B would drive the operator's terminal).
fn printable(body: String) -> String {
    let pretty = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(body);
    format!("{}\n", crate::rejections::json_escaped(&pretty))
}

/// `check`'s line about the spool, when a route is queued.
pub fn check_line(config: &hookseal::config::Config) -> Option<String> {
    if !config.routes.iter().any(|r| r.delivery.queued()) {
        return None;
    }
    let q = &config.queue;
    let at = match q.store {
        hookseal::config::QueueStore::Disk => q.path.display().to_string(),
        // Never the URL: it may hold a password.
        hookseal::config::QueueStore::Redis => "(url set)".to_owned(),
    };
    Some(format!(
        "queue {} {}  max_bytes={} max_entries={} claim_after={}",
        q.store.as_str(),
        at,
        q.max_bytes,
        q.max_entries,
        hookseal::config::fmt_duration(q.claim_after),
    ))
}

/// `check` warnings: a disk spool this user could not create or write here.
pub fn warnings(config: &hookseal::config::Config) -> Vec<String> {
    let q = &config.queue;
    if q.store != hookseal::config::QueueStore::Disk
        || !config.routes.iter().any(|r| r.delivery.queued())
    {
        return Vec::new();
    }
    // The nearest directory that exists: the spool is created under it at start.
    let mut dir = q.path.as_path();
    while !dir.exists() {
        match dir.parent() {
            Some(p) => dir = p,
            None => break,
        }
    }
    let writable = std::fs::metadata(dir)
        .map(|m| m.is_dir() && !m.permissions().readonly())
        .unwrap_or(false);
    if writable {
        Vec::new()
    } else {
        vec![format!(
            "queue.path {}: {} is not a writable directory here; queued routes need the spool \
             directory to exist or be creatable (on Kubernetes: the chart's spool volume)",
            q.path.display(),
            dir.display()
        )]
    }
}

#[cfg(test)]
mod printable_tests {
    #[test]
    fn sender_and_app_text_cannot_drive_the_terminal() {
        let body = "{\"dead\":[{\"id\":\"d\u{9b}2J\",\"last_error\":\"HTTP 410 abc\u{202e}gpj\"}]}";
        let out = super::printable(body.to_owned());
        for c in ['\u{9b}', '\u{202e}'] {
            assert!(!out.contains(c), "{c:?} written raw: {out:?}");
        }
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["dead"][0]["id"], "d\u{9b}2J", "the same JSON");
        // Not JSON (an error page): escaped as well.
        assert!(!super::printable("bad \u{9b}".to_owned()).contains('\u{9b}'));
    }
}
