//! The load side of `tally bench`, in processes apart from the server.
//!
//! `tally bench` serves from its own process and starts `tally bench-load`
//! for each figure: that process opens the connections, sends the requests
//! and times them, and hands back what it measured. The mock provider the
//! proxy figures call (`tally bench-load --mock`) is a process of its own
//! too. So the bench process does nothing but serve while a figure runs,
//! and its CPU time over the run is the server's cost per request.
//!
//! Paced runs are open-loop per connection: each request has an intended
//! send time on its client's schedule, and its latency counts from then,
//! so an answer that arrives late delays the requests queued behind it and
//! their wait is counted (no coordinated omission).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// Where a lane's requests go: lane `n` sends to target `n`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Target {
    pub addr: SocketAddr,
    pub key: String,
}

/// The requests of a run, numbered from 0 across its clients.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Work {
    /// `GET` of a path.
    Get { path: String },
    /// Preflight checks (or reservations) round-robin over the users.
    Preflight { users: Vec<String>, reserve: bool },
    /// One event a request, round-robin over the users; ids `{tag}-{i}`.
    IngestOne { users: Vec<String>, tag: String },
    /// 1,000 events a request, client `c` writing for user `c mod len`.
    IngestBatch { users: Vec<String>, tag: String },
    /// An OpenAI chat completion, whole or streamed: every
    /// [`DIRECT_EVERY`]th client sends it to the provider directly (lane
    /// 0), the others through the proxy (lane 1), each on its own
    /// schedule, so both lanes see the same seconds of the machine and
    /// neither's answers delay the other's requests. The direct lane is
    /// the smaller: it only has to give the baseline, and on two cores a
    /// second full-rate load would measure the machine, not the proxy.
    Chat { stream: bool },
}

/// One client in this many sends [`Work::Chat`] directly.
pub const DIRECT_EVERY: usize = 4;

impl Work {
    fn lanes(&self) -> usize {
        if matches!(self, Work::Chat { .. }) { 2 } else { 1 }
    }

    /// Request `i`, sent by client `c`: its lane, method, path and body.
    fn request(&self, c: usize, i: u64) -> (usize, Method, String, Option<String>) {
        let pick = |users: &[String], n: u64| users[(n % users.len() as u64) as usize].clone();
        match self {
            Work::Get { path } => (0, Method::GET, path.clone(), None),
            Work::Preflight { users, reserve } => {
                let body = preflight_body(&pick(users, i), *reserve);
                (0, Method::POST, "/api/subscription/preflight-check".into(), Some(body))
            }
            Work::IngestOne { users, tag } => {
                let body = json!({"events": [event_json(&pick(users, i), &format!("{tag}-{i}"))]});
                (0, Method::POST, "/api/usage/events".into(), Some(body.to_string()))
            }
            Work::IngestBatch { users, tag } => {
                let user = pick(users, c as u64);
                let evs: Vec<_> = (0..1000).map(|k| event_json(&user, &format!("{tag}-{c}-{i}-{k}"))).collect();
                (0, Method::POST, "/api/usage/events".into(), Some(json!({"events": evs}).to_string()))
            }
            Work::Chat { stream } => {
                let lane = usize::from(!c.is_multiple_of(DIRECT_EVERY));
                let prefix = if lane == 0 { "" } else { "/proxy/openai" };
                let body = json!({"model": "gpt-4o-mini", "max_tokens": 400, "stream": stream,
                    "messages": [{"role": "user", "content": "Summarise the quarterly report in three bullet points."}]});
                (lane, Method::POST, format!("{prefix}/v1/chat/completions"), Some(body.to_string()))
            }
        }
    }
}

pub fn event_json(user: &str, id: &str) -> serde_json::Value {
    json!({"id": id, "user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
           "tokens_input": 1200, "tokens_output": 300, "operation_type": "text_generation",
           "status_code": 200, "response_time_ms": 420})
}

fn preflight_body(user: &str, reserve: bool) -> String {
    json!({"user_id": user, "reserve": reserve, "operations": [
        {"provider": "gemini", "model": "gemini-2.5-flash", "tokens_requested": 1500, "operation_type": "text_generation"}
    ]})
    .to_string()
}

/// One figure's load: what to send, where, how many at once, how fast.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadSpec {
    pub targets: Vec<Target>,
    pub clients: usize,
    pub millis: u64,
    /// `None`: each client sends its next request as soon as the last is
    /// answered. `Some(n)`: `n` requests a second between all clients (all
    /// lanes together), each client on its own schedule.
    pub per_sec: Option<u64>,
    /// Latency to the answer's first body bytes instead of the whole answer.
    pub first_byte: bool,
    pub work: Work,
}

impl LoadSpec {
    pub fn new(target: Target, clients: usize, duration: Duration, work: Work) -> LoadSpec {
        LoadSpec {
            targets: vec![target],
            clients: clients.max(1),
            millis: duration.as_millis() as u64,
            per_sec: None,
            first_byte: false,
            work,
        }
    }
}

/// What one lane of a run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Run {
    pub requests: u64,
    pub failures: u64,
    pub elapsed_ns: u64,
    /// Sorted.
    pub latencies_ns: Vec<u64>,
}

impl Run {
    pub fn per_sec(&self) -> f64 {
        self.requests as f64 / (self.elapsed_ns as f64 / 1e9).max(1e-9)
    }

    pub fn pct(&self, p: f64) -> Duration {
        if self.latencies_ns.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies_ns.len() as f64 - 1.0) * p).round() as usize;
        Duration::from_nanos(self.latencies_ns[i.min(self.latencies_ns.len() - 1)])
    }

    fn absorb(&mut self, other: Run) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.latencies_ns.extend(other.latencies_ns);
    }
}

/// A figure measured from a load process: each lane's run and the CPU the
/// serving process spent meanwhile.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub lanes: Vec<Run>,
    pub server_cpu: Option<Duration>,
}

impl Measured {
    pub fn run(&self) -> &Run {
        &self.lanes[0]
    }

    /// The serving process's CPU time per request of the run (the first
    /// lane's), when this system reports it.
    pub fn cpu_per_request(&self) -> Option<Duration> {
        let n = self.lanes.iter().map(|r| r.requests).sum::<u64>().max(1);
        self.server_cpu.map(|cpu| cpu / u32::try_from(n).unwrap_or(u32::MAX))
    }
}

/// This process's CPU time (user and system, every thread) so far, from
/// `/proc/self/stat`; `None` where there is no such file.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: fields are counted after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, which is 100 on every architecture.
    Some(Duration::from_millis(ticks * 10))
}

/// Runs `spec` from a new load process and waits for its figures.
pub async fn measure(spec: &LoadSpec) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe().context("cannot find this program to start the load process")?;
    let before = process_cpu();
    let mut child = tokio::process::Command::new(exe)
        .arg("bench-load")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the load process")?;
    let mut stdin = child.stdin.take().context("the load process has no stdin")?;
    stdin.write_all(&serde_json::to_vec(spec)?).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    let server_cpu = before.zip(process_cpu()).map(|(a, b)| b.saturating_sub(a));
    if !out.status.success() {
        bail!("the load process failed ({})", out.status);
    }
    let lanes: Vec<Run> =
        serde_json::from_slice(&out.stdout).context("the load process's answer is not its figures")?;
    Ok(Measured { lanes, server_cpu })
}

/// `tally bench-load`: reads a [`LoadSpec`] from stdin, runs it and writes
/// each lane's [`Run`] to stdout as JSON.
pub async fn serve_load() -> anyhow::Result<()> {
    use std::io::{Read, Write};
    // Before the load and after it: blocking here delays nothing measured.
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    let spec: LoadSpec = serde_json::from_slice(&input).context("the load spec on stdin is not valid")?;
    let lanes = run(Arc::new(spec)).await;
    let mut out = std::io::stdout().lock();
    out.write_all(&serde_json::to_vec(&lanes)?)?;
    out.flush()?;
    Ok(())
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Option<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    Some(send)
}

async fn run(spec: Arc<LoadSpec>) -> Vec<Run> {
    let seq = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_millis(spec.millis);
    let every = spec.per_sec.map(|n| Duration::from_secs_f64(spec.clients as f64 / n.max(1) as f64));
    let tasks: Vec<_> = (0..spec.clients)
        .map(|c| {
            let (spec, seq) = (spec.clone(), seq.clone());
            // Paced clients start spread over one interval.
            let offset = every.map_or(Duration::ZERO, |e| e.mul_f64(c as f64 / spec.clients as f64));
            tokio::spawn(async move { client(&spec, c, &seq, started + offset, every, deadline).await })
        })
        .collect();
    let mut lanes = vec![Run::default(); spec.work.lanes()];
    for t in tasks {
        if let Ok(runs) = t.await {
            for (all, r) in lanes.iter_mut().zip(runs) {
                all.absorb(r);
            }
        }
    }
    for lane in &mut lanes {
        lane.elapsed_ns = started.elapsed().as_nanos() as u64;
        lane.latencies_ns.sort_unstable();
    }
    lanes
}

/// One client's requests, one after another on a keep-alive connection
/// per target.
async fn client(
    spec: &LoadSpec,
    c: usize,
    seq: &AtomicU64,
    first: Instant,
    every: Option<Duration>,
    deadline: Instant,
) -> Vec<Run> {
    let mut runs = vec![Run::default(); spec.work.lanes()];
    let mut conns: Vec<Option<Sender>> = spec.targets.iter().map(|_| None).collect();
    for k in 0u64.. {
        let intended = match every {
            Some(e) => first + e.mul_f64(k as f64),
            None => Instant::now(),
        };
        if intended >= deadline {
            break;
        }
        tokio::time::sleep_until(intended.into()).await;
        let (lane, method, path, body) = spec.work.request(c, seq.fetch_add(1, Ordering::Relaxed));
        let target = &spec.targets[lane.min(spec.targets.len() - 1)];
        let conn = &mut conns[lane.min(spec.targets.len() - 1)];
        if conn.is_none() {
            *conn = connect(target.addr).await;
        }
        let Some(send) = conn.as_mut() else {
            runs[lane].failures += 1;
            runs[lane].requests += 1;
            break;
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", target.addr.to_string())
            .header("authorization", format!("Bearer {}", target.key))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("valid request");
        let (ok, first_byte) = match send.send_request(req).await {
            Ok(resp) => {
                let status = resp.status();
                let mut body = resp.into_body();
                let head = body.frame().await;
                let took = intended.elapsed();
                // Read to the end, a frame at a time: holding a whole export
                // would put the client's memory in the figures.
                let mut ok = head.is_none_or(|f| f.is_ok());
                while ok && let Some(frame) = body.frame().await {
                    ok = frame.is_ok();
                }
                (status.is_success() && ok, took)
            }
            Err(_) => (false, intended.elapsed()),
        };
        let took = if spec.first_byte { first_byte } else { intended.elapsed() };
        let run = &mut runs[lane];
        run.latencies_ns.push(took.as_nanos() as u64);
        run.requests += 1;
        run.failures += u64::from(!ok);
        if !ok && send.ready().await.is_err() {
            *conn = None;
        }
    }
    runs
}

/// A mock provider for the proxy figures, speaking OpenAI chat
/// completions: a whole answer at once, or a stream whose first event
/// leaves at once and four more 1 ms apart.
fn mock_router() -> axum::Router {
    use axum::response::IntoResponse;
    async fn answer(body: Bytes) -> axum::response::Response {
        let streamed = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["stream"].as_bool());
        if streamed != Some(true) {
            return axum::Json(json!({"id": "chatcmpl-bench", "object": "chat.completion", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}}))
            .into_response();
        }
        let chunks = futures::stream::unfold(0u32, |i| async move {
            if i > 5 {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let data = match i {
                5 => "data: [DONE]\n\n".to_string(),
                4 => format!(
                    "data: {}\n\n",
                    json!({"choices": [], "usage": {"prompt_tokens": 1200, "completion_tokens": 4}})
                ),
                _ => format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": "word "}}]})),
            };
            Some((Ok::<_, std::io::Error>(Bytes::from(data)), i + 1))
        });
        axum::response::Response::builder()
            .header("content-type", "text/event-stream")
            .body(axum::body::Body::from_stream(chunks))
            .expect("valid response")
    }
    axum::Router::new().route("/v1/chat/completions", axum::routing::post(answer))
}

/// `tally bench-load --mock`: serves the mock provider on a free loopback
/// port, prints its address as the first line of stdout, and stops when
/// stdin closes (the bench's end).
pub async fn serve_mock() -> anyhow::Result<()> {
    use axum::serve::Listener;
    use std::io::{Read, Write};
    let listener = super::super::startup::listen(([127, 0, 0, 1], 0).into()).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", listener.local_addr()?)?;
    out.flush()?;
    let server = tokio::spawn(async move { axum::serve(listener, mock_router()).await });
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await??;
    server.abort();
    Ok(())
}

/// Starts the mock provider's process; it lives as long as the handle.
pub async fn start_mock() -> anyhow::Result<(tokio::process::Child, SocketAddr)> {
    let exe = std::env::current_exe().context("cannot find this program to start the mock provider")?;
    let mut child = tokio::process::Command::new(exe)
        .args(["bench-load", "--mock"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the mock provider")?;
    let stdout = child.stdout.take().context("the mock provider has no stdout")?;
    let mut line = String::new();
    tokio::io::BufReader::new(stdout).read_line(&mut line).await?;
    let addr = line.trim().parse().with_context(|| format!("the mock provider said {line:?}, not its address"))?;
    Ok((child, addr))
}
