//! The `tally` binary: see `tally --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tally::server::run().await
}
