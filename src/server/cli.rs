//! The command line: every setting is a flag with an environment variable
//! behind it, and `--help` on each subcommand documents them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tally",
    version,
    about = "Self-hosted usage-based billing and AI-API cost dashboard",
    long_about = "Tally records every paid API call your product makes for its users, prices it from a \
                  versioned catalog, enforces subscription limits before the call, raises alerts, keeps \
                  billing history, and serves a billing dashboard and an HTTP API.\n\n\
                  Without a subcommand, `tally` runs `serve`."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Database URL: `sqlite://path/to/file.db` (created if missing) or
    /// `postgres://user@host:port/db`. The scheme picks the store.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/tally.db", global = true)]
    pub database_url: String,

    /// Log filter in `RUST_LOG` syntax, e.g. `info` or `tally=debug,sqlx=warn`.
    #[arg(long, env = "RUST_LOG", default_value = "info,sqlx=warn,tower_http=info", global = true)]
    pub log_level: String,

    /// Log output format.
    #[arg(long, env = "TALLY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// PostgreSQL only: keep Tally's tables in this schema (created if
    /// missing), e.g. to share one database with other applications.
    #[arg(long, env = "TALLY_DB_SCHEMA", global = true)]
    pub db_schema: Option<String>,

    /// Maximum connections in the database pool.
    #[arg(long, env = "TALLY_DB_MAX_CONNECTIONS", default_value_t = 10, global = true)]
    pub db_max_connections: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the dashboard and the HTTP API (the default).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Load data into an empty database.
    Seed(SeedArgs),
    /// Manage administrators.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Record a steady stream of realistic usage events for a user through the
    /// real recording path, so a running dashboard visibly moves.
    Simulate(SimulateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TALLY_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Demo mode: on an empty database, seed plans, prices, 12 months of usage
    /// and the demo logins before serving.
    #[arg(long, env = "TALLY_DEMO", default_value_t = false)]
    pub demo: bool,

    /// Directory of the built site (JS, WASM, CSS, assets) made by cargo-leptos.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Seconds before a request is abandoned with 408.
    #[arg(long, env = "TALLY_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Seconds a preflight reservation holds usage before it lapses.
    #[arg(long, env = "TALLY_HOLD_TTL_SECS", default_value_t = 300)]
    pub hold_ttl_secs: u64,

    /// Dashboard refresh interval in seconds (tests shorten it).
    #[arg(long, env = "TALLY_REFRESH_SECS", default_value_t = 30)]
    pub refresh_secs: u32,
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            listen: "127.0.0.1:3000".parse().expect("valid"),
            demo: false,
            site_root: "target/site".into(),
            request_timeout_secs: 30,
            hold_ttl_secs: 300,
            refresh_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Seed the demo: plans, pricing catalog, 12 months of usage for
    /// demo@example.com, and the demo and admin logins. Only on an empty
    /// database.
    #[arg(long, required = true)]
    pub demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an administrator (the way to bootstrap the first login).
    Create {
        /// The administrator's email, used to sign in.
        #[arg(long)]
        email: String,
        /// Password (at least 8 characters). Prompted from stdin when omitted.
        #[arg(long, env = "TALLY_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Display name.
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key; the secret is printed alone on the last line.
    Create {
        /// Comma-separated scopes: `ingest` (record usage), `read` (read any
        /// user's billing, or only its own user's with --user), `admin`.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Email of the user the key acts for (a read-only key then sees only
        /// that user).
        #[arg(long)]
        user: Option<String>,
        /// A label to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Id of the user the events are for.
    #[arg(long, default_value = "demo")]
    pub user: String,
    /// Milliseconds between batches.
    #[arg(long, default_value_t = 2000)]
    pub interval_ms: u64,
    /// Stop after this many batches (runs until Ctrl-C when omitted).
    #[arg(long)]
    pub batches: Option<u64>,
}
