//! Logging: `tracing` with an `EnvFilter`, as text or JSON lines.

use tracing_subscriber::EnvFilter;

use super::cli::LogFormat;

/// Installs the global subscriber. A bad filter falls back to `info` with a
/// warning rather than refusing to start.
pub fn init(filter: &str, format: LogFormat) {
    let (env_filter, bad) = match EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if result.is_ok()
        && let Some(e) = bad
    {
        tracing::warn!(filter, error = %e, "invalid log filter; using `info`");
    }
}
