//! Driving GetUser load and summarizing it: callers looping with no pause for a fixed time,
//! each call's latency kept, throughput and quantiles reported.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{channels, get_user};

/// Callers per gRPC connection (HTTP/2 multiplexes them).
const CALLERS_PER_CHANNEL: usize = 32;

/// One run's outcome.
pub struct Run {
    pub completed: usize,
    pub throughput: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub errors: u64,
}

fn summarize(mut latencies: Vec<Duration>, errors: u64, elapsed: Duration) -> Run {
    latencies.sort();
    let at = |quantile: f64| {
        latencies
            .get(
                ((latencies.len() as f64 * quantile) as usize)
                    .min(latencies.len().saturating_sub(1)),
            )
            .copied()
            .unwrap_or_default()
    };
    Run {
        completed: latencies.len(),
        throughput: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        errors,
    }
}

/// Runs `concurrency` callers of `call` (given the caller's number; `true` when it succeeded)
/// for `length`.
pub async fn drive<F, Fut>(concurrency: usize, length: Duration, call: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..concurrency)
        .map(|caller| {
            let call = call.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    if call(caller).await {
                        latencies.push(sent.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (task_latencies, task_errors) = task.await.unwrap();
        latencies.extend(task_latencies);
        errors += task_errors;
    }
    summarize(latencies, errors, started.elapsed())
}

/// GetUser through the gateway; caller `n` reads `users[n % users.len()]`.
pub async fn through_gateway(
    address: SocketAddr,
    users: &[String],
    concurrency: usize,
    length: Duration,
) -> Run {
    let channels = Arc::new(channels(address, concurrency.div_ceil(CALLERS_PER_CHANNEL)).await);
    let users: Arc<[String]> = users.into();
    drive(concurrency, length, move |caller| {
        let channel = channels[caller % channels.len()].clone();
        let users = users.clone();
        async move { get_user(channel, &users[caller % users.len()]).await }
    })
    .await
}

/// Milliseconds with two decimals.
pub fn millis(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}
