//! The command line: every setting is a flag with an environment variable
//! behind it, and `--help` on each subcommand documents them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use super::store::Durability;
use super::web::IpNet;

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

    /// How long, in milliseconds, this process may answer from its
    /// in-memory copies (API keys; each user's usage and holds for preflight
    /// checks without `reserve`) before reading them again: the most it can
    /// lag behind writes made by another process, such as a second node on
    /// the same PostgreSQL revoking a key. Writes by this process count at
    /// once, and reservations and ingest always read the database. 0 turns
    /// the copies off.
    #[arg(long, env = "TALLY_CACHE_TTL_MS", default_value_t = 1000, global = true)]
    pub cache_ttl_ms: u64,

    /// When a write is acknowledged. `power`: once it is on disk; an
    /// acknowledged event survives a power cut (SQLite waits for an fsync,
    /// shared by the writes committed together). `process`: once it is in
    /// the write-ahead log; it survives a crash or kill -9 of Tally, and a
    /// power cut or OS crash may lose about the last second of writes
    /// (SQLite syncs the log every second; PostgreSQL runs with
    /// synchronous_commit=off). Reservations' holds are never synced.
    #[arg(long, env = "TALLY_DURABILITY", value_enum, default_value_t = Durability::Power, global = true)]
    pub durability: Durability,
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
    /// Manage the pricing catalog.
    #[command(subcommand)]
    Prices(PricesCommand),
    /// Prepaid credits: grant them, or show a customer's wallet.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Record a steady stream of realistic usage events for a user through the
    /// real recording path, so a running dashboard visibly moves.
    Simulate(SimulateArgs),
    /// Measure the hot paths (gate, ingest, dashboard reads) over real HTTP
    /// on a fresh store, and print each figure beside a baseline measured
    /// in the same run. Run the release build for real figures.
    Bench(BenchArgs),
    /// The load side of `tally bench` (started by it, not by people).
    #[command(hide = true)]
    BenchLoad(BenchLoadArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BenchLoadArgs {
    /// Serve the mock provider instead of sending a load.
    #[arg(long)]
    pub mock: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. When neither this nor `TALLY_LISTEN` is set,
    /// `LEPTOS_SITE_ADDR` (which `cargo leptos serve` sets) is used, else
    /// 127.0.0.1:3000.
    #[arg(long, env = "TALLY_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// The listen address cargo-leptos hands every app; used only when
    /// `--listen`/`TALLY_LISTEN` is absent.
    #[arg(long = "site-addr", env = "LEPTOS_SITE_ADDR", hide_short_help = true)]
    pub site_addr: Option<SocketAddr>,

    /// Demo mode: on an empty database, seed plans, prices, 12 months of usage
    /// and the demo logins before serving.
    #[arg(long, env = "TALLY_DEMO", default_value_t = false, value_parser = BoolishValueParser::new())]
    pub demo: bool,

    /// Directory of the built site (JS, WASM, CSS, assets) made by cargo-leptos.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// The public origin people reach Tally at, e.g. `https://billing.example.com`.
    /// When set, it (not the request's `Host` header) decides the session
    /// cookie's `Secure` flag and which `Origin` state-changing requests must
    /// come from. Set it in production.
    #[arg(long, env = "TALLY_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Comma-separated addresses or CIDR ranges of reverse proxies whose
    /// `X-Forwarded-For` is believed (e.g. `127.0.0.1,10.0.0.0/8`). Others'
    /// forwarding headers are ignored and the peer address is the client.
    #[arg(long, env = "TALLY_TRUSTED_PROXIES", value_delimiter = ',', value_parser = IpNet::parse)]
    pub trusted_proxies: Vec<IpNet>,

    /// Minutes without a request after which a signed-in session ends.
    #[arg(long, env = "TALLY_SESSION_IDLE_MINUTES", default_value_t = 720, value_parser = clap::value_parser!(u32).range(1..=525_600))]
    pub session_idle_minutes: u32,

    /// Days after sign-in at which a session ends however active it is.
    #[arg(long, env = "TALLY_SESSION_MAX_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=365))]
    pub session_max_days: u32,

    /// Seconds before a request is abandoned with 408.
    #[arg(long, env = "TALLY_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// What the gate answers for a model without a price: `deny` refuses it
    /// (422 `unpriced_model`); `allow` admits it against call and token
    /// limits with $0 held.
    #[arg(long, env = "TALLY_UNPRICED_POLICY", value_enum, default_value_t = crate::server::service::UnpricedPolicy::Deny)]
    pub unpriced_policy: crate::server::service::UnpricedPolicy,

    /// Seconds a preflight reservation holds usage before it lapses.
    #[arg(long, env = "TALLY_HOLD_TTL_SECS", default_value_t = 300)]
    pub hold_ttl_secs: u64,

    /// Dashboard refresh interval in seconds (tests shorten it).
    #[arg(long, env = "TALLY_REFRESH_SECS", default_value_t = 30)]
    pub refresh_secs: u32,

    /// Alert a user when an hour costs more than this many times their
    /// hourly average over the seven days before (at most once a day); 0
    /// turns spike alerts off.
    #[arg(long, env = "TALLY_SPIKE_MULTIPLE", default_value_t = 5)]
    pub spike_multiple: u32,

    /// Alert a spend spike only when that hour cost at least this many USD
    /// (0: any amount).
    #[arg(long, env = "TALLY_SPIKE_MIN_USD", default_value = "0", value_parser = parse_usd)]
    pub spike_min_usd: crate::domain::money::Nanos,

    /// Send the `grant.expiring` webhook this many hours before a grant of
    /// prepaid credits with money left lapses (once per grant); 0 turns it
    /// off.
    #[arg(long, env = "TALLY_GRANT_EXPIRY_WARNING_HOURS", default_value_t = 72)]
    pub grant_expiry_warning_hours: u32,

    /// Serve `GET /metrics` (Prometheus) to anyone; otherwise it needs an
    /// administrator or an API key with the `metrics` or `admin` scope.
    #[arg(long, env = "TALLY_METRICS_PUBLIC", default_value_t = false, value_parser = BoolishValueParser::new())]
    pub metrics_public: bool,

    /// Tracking proxy: how long to wait for a provider's answer to begin,
    /// and then for each next part of a streamed answer, before the call is
    /// recorded as failed (504). Upstreams are set per provider with
    /// `TALLY_UPSTREAM_<PROVIDER>_URL` (default the provider's public API)
    /// and `TALLY_UPSTREAM_<PROVIDER>_KEY`, for OPENAI, MISTRAL, HUGGINGFACE,
    /// ANTHROPIC, GEMINI, TAVILY, SERPER, METAPHOR and FIRECRAWL.
    #[arg(long, env = "TALLY_PROXY_TIMEOUT_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub proxy_timeout_secs: u64,

    /// Tracking proxy: output tokens held for a call whose request sets no
    /// maximum (`max_tokens`, `max_output_tokens`, ...). The call is billed
    /// for what it really used either way.
    #[arg(long, env = "TALLY_PROXY_DEFAULT_MAX_OUTPUT", default_value_t = 4096)]
    pub proxy_default_max_output: u64,

    /// Tracking proxy: the most calls this process proxies at once (streams
    /// included); more are answered 503 with `Retry-After`, in the
    /// provider's error shape, without reaching the provider.
    #[arg(long, env = "TALLY_PROXY_MAX_CALLS", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub proxy_max_calls: u64,

    /// Webhooks: allow endpoints on loopback, private and link-local
    /// addresses (a receiver inside your own network). Off by default, so
    /// an endpoint can never reach a cloud metadata service or an internal
    /// host, checked at registration and again, after DNS, at every send.
    #[arg(long, env = "TALLY_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, value_parser = BoolishValueParser::new())]
    pub webhook_allow_private: bool,

    /// The key (64 hex characters) that seals webhook signing secrets in
    /// the database, so a dump of it does not give them away. Unset: read
    /// from `--secret-key-file`, which is made on first start. Give every
    /// node of one PostgreSQL deployment the same key.
    #[arg(long, env = "TALLY_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// Where the sealing key is kept when `TALLY_SECRET_KEY` is unset
    /// (default: `tally.key` beside a SQLite database, else
    /// `data/tally.key`). Back it up with the database.
    #[arg(long, env = "TALLY_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
}

/// Where `serve` listens when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

impl ServeArgs {
    /// `--listen`/`TALLY_LISTEN`, else `LEPTOS_SITE_ADDR`, else the default.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.or(self.site_addr).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address"))
    }
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            listen: None,
            site_addr: None,
            demo: false,
            site_root: "target/site".into(),
            public_url: None,
            trusted_proxies: Vec::new(),
            session_idle_minutes: 720,
            session_max_days: 7,
            unpriced_policy: crate::server::service::UnpricedPolicy::Deny,
            request_timeout_secs: 30,
            hold_ttl_secs: 300,
            refresh_secs: 30,
            spike_multiple: 5,
            spike_min_usd: crate::domain::money::Nanos::ZERO,
            grant_expiry_warning_hours: 72,
            metrics_public: false,
            proxy_timeout_secs: 600,
            proxy_default_max_output: 4096,
            proxy_max_calls: 512,
            webhook_allow_private: false,
            secret_key: None,
            secret_key_file: None,
        }
    }
}

fn parse_public_url(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let ok = (s.starts_with("https://") || s.starts_with("http://"))
        && !s.split_once("://").map_or("", |(_, rest)| rest).is_empty()
        && !s.split_once("://").map_or("", |(_, rest)| rest).contains(['/', '?', '#', ' ']);
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not an origin such as https://billing.example.com (scheme and host, no path)"))
    }
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["demo", "events"])))]
pub struct SeedArgs {
    /// Seed the demo: plans, pricing catalog, 12 months of usage for
    /// demo@example.com, and the demo and admin logins. Only on an empty
    /// database.
    #[arg(long)]
    pub demo: bool,
    /// Instead, write this many usage events for load users, through the
    /// real recording engine (pricing, rollups, alerts), to measure at
    /// scale. Seeds the demo catalog first on an empty database; running it
    /// again with the same numbers adds nothing.
    #[arg(long, value_name = "N")]
    pub events: Option<u64>,
    /// How many load users share the events (`load-00001`, ...).
    #[arg(long, value_name = "U", default_value_t = 100, requires = "events")]
    pub users: usize,
    /// Over how many days before now the events are spread.
    #[arg(long, value_name = "D", default_value_t = 45, requires = "events")]
    pub days: i64,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an administrator (the way to bootstrap the first login).
    Create {
        /// The administrator's email, used to sign in.
        #[arg(long)]
        email: crate::domain::identity::Email,
        /// Password (at least 8 characters). Prompted from stdin when omitted.
        #[arg(long, env = "TALLY_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Display name.
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PriceMapFormat {
    /// LiteLLM's `model_prices_and_context_window.json` (shipped in the
    /// `litellm` PyPI package as `model_prices_and_context_window_backup.json`).
    Litellm,
}

#[derive(Debug, Subcommand)]
pub enum PricesCommand {
    /// Import a price map: every model whose prices differ from the version
    /// in force becomes a new version from --effective-from (history and
    /// recorded events keep their prices). Prints what was created, left
    /// unchanged and skipped, and the price fields Tally does not model.
    Import {
        /// The price map file (JSON).
        file: PathBuf,
        #[arg(long, value_enum, default_value = "litellm")]
        format: PriceMapFormat,
        /// RFC 3339 instant the new versions apply from; now when omitted.
        #[arg(long, value_name = "T")]
        effective_from: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Report what would change and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GrantKindArg {
    /// Bought by the customer.
    Paid,
    /// Given (a trial, a goodwill credit).
    Promotional,
}

#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Grant credits to a customer's wallet (audited as the CLI). Prints
    /// the grant and the balance after it.
    Grant {
        /// The customer: an email or a user id.
        #[arg(long)]
        user: String,
        /// USD, e.g. 50 or 12.50.
        #[arg(long)]
        amount: String,
        #[arg(long, value_enum)]
        kind: GrantKindArg,
        /// RFC 3339 instant the credits lapse at; they never do when omitted.
        #[arg(long, value_name = "T")]
        expires: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Higher spends first.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i64,
        /// Makes the command safe to repeat: the same key grants once.
        /// A fresh key each run when omitted.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Why, for the statement.
        #[arg(long)]
        note: Option<String>,
    },
    /// Show a customer's balance, holds and grants.
    Show {
        /// The customer: an email or a user id.
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key; the secret is printed alone on the last line.
    Create {
        /// Comma-separated scopes: `ingest` (record usage, and hold usage at
        /// the gate), `read` (read any user's billing, or only its own user's
        /// with --user; check the gate without holding), `gate` (hold usage
        /// at the gate), `alerts` (mark alerts read), `metrics` (monitoring
        /// endpoints), `admin` (everything).
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<crate::domain::identity::Scope>,
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
    pub user: crate::domain::identity::UserId,
    /// Milliseconds between batches.
    #[arg(long, default_value_t = 2000)]
    pub interval_ms: u64,
    /// Stop after this many batches (runs until Ctrl-C when omitted).
    #[arg(long)]
    pub batches: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_precedence() {
        let a: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:3999".parse().unwrap();
        let mut args = ServeArgs::default();
        assert_eq!(args.listen_addr().to_string(), DEFAULT_LISTEN);
        args.site_addr = Some(b);
        assert_eq!(args.listen_addr(), b, "LEPTOS_SITE_ADDR when nothing else is set");
        args.listen = Some(a);
        assert_eq!(args.listen_addr(), a, "--listen/TALLY_LISTEN first");
    }

    #[test]
    fn nets_and_origins() {
        let n = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.2.3.4".parse().unwrap()));
        assert!(n.contains("::ffff:10.2.3.4".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        let one = IpNet::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("::1").unwrap().contains("::1".parse().unwrap()));
        for bad in ["x", "10.0.0.0/33", "::1/129", "10.0.0.0/"] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_public_url("https://b.example.com/").unwrap(), "https://b.example.com");
        for bad in ["b.example.com", "https://", "https://b.example.com/x", "ftp://b"] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }
}

/// Which store `tally bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchStore {
    Sqlite,
    Postgres,
}

impl BenchStore {
    pub fn name(self) -> &'static str {
        match self {
            BenchStore::Sqlite => "SQLite",
            BenchStore::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Measure only this part: `gate` (preflight checks and reservations,
    /// ingest, and the two beside each other), `proxy` (the tracking
    /// proxy's added latency against a mock provider) or `reads` (the
    /// dashboard, usage-log pages and CSV export over the seeded events, and
    /// the dashboard beside whole-log downloads;
    /// `tally bench reads --events 10000000` measures them at scale).
    /// Default: everything.
    #[arg(value_enum)]
    pub only: Option<BenchSection>,
    /// The store to measure: a fresh SQLite file in the temp directory, or
    /// a fresh schema in the PostgreSQL database of --database-url (dropped
    /// afterwards). Never touches the database you serve from.
    #[arg(long, value_enum, default_value_t = BenchStore::Sqlite)]
    pub store: BenchStore,
    /// The PostgreSQL database for `--store postgres`.
    #[arg(long = "pg-url", env = "TEST_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub database_url: String,
    /// A short run (2 s a figure, 5,000 seeded events) to check that it works.
    #[arg(long)]
    pub quick: bool,
    /// Seconds each figure is measured for.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Events seeded for the load users before the read figures (default
    /// 200,000; 5,000 with --quick or `gate`/`proxy`).
    #[arg(long, value_name = "N")]
    pub events: Option<u64>,
    /// Load users the seeded events are spread over; the read figures read
    /// the first of them, who holds events/users of them.
    #[arg(long, value_name = "U", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub users: u32,
    /// When the bench's store acknowledges a write (see `tally --help`).
    #[arg(long, value_enum, default_value_t = Durability::Power)]
    pub durability: Durability,
    /// Concurrent HTTP clients for the request figures.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
}

/// A part of `tally bench` run on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchSection {
    Gate,
    Proxy,
    Reads,
}

fn parse_usd(s: &str) -> Result<crate::domain::money::Nanos, String> {
    crate::domain::money::Nanos::parse_usd(s.trim())
        .ok()
        .filter(|n| n.0 >= 0)
        .ok_or_else(|| format!("`{s}` is not an amount of US dollars such as 1 or 0.50"))
}
