//! Shared harness for the simulator's black-box tests: a simulator on port 0 and a raw HTTP
//! client speaking to it as an Okta client would.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses part of it; a failed unwrap is a failed test

use std::net::SocketAddr;

use okta_sim::{RateLimitSettings, SeedSource, Simulator, SimulatorSettings};
use reqwest::header::HeaderMap;
use serde_json::Value;

/// The SSWS token the test simulator accepts.
pub const TOKEN: &str = "test-token";

/// A running simulator and a client for it.
pub struct Sim {
    pub sim: Simulator,
    pub base: String,
    pub c: reqwest::Client,
}

/// An answer, with its body both as text and as JSON (`Null` when not JSON).
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    /// Every `link` header line.
    pub fn links(&self) -> Vec<String> {
        self.headers
            .get_all("link")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The URL of the `rel` link, if any.
    pub fn link(&self, rel: &str) -> Option<String> {
        self.links()
            .iter()
            .find(|l| l.ends_with(&format!("rel=\"{rel}\"")))
            .map(|l| {
                l.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned()
            })
    }

    /// The URL of the `next` link, if any.
    pub fn next(&self) -> Option<String> {
        self.link("next")
    }

    /// A header's value, or "".
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// Asserts an Okta error answer with every field Okta sends.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.body["errorCode"], code, "{}", self.text);
        assert_eq!(self.body["errorLink"], code);
        let id = self.body["errorId"].as_str().unwrap();
        assert!(id.starts_with("oae") && id.len() == 25, "{id}");
        assert!(self.body["errorCauses"].is_array());
    }
}

/// Reads a whole answer.
pub async fn into_resp(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        body,
    }
}

/// Starts a simulator with the given org and budgets.
pub async fn start_with(seed: SeedSource, rate_limits: RateLimitSettings) -> Sim {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let settings = SimulatorSettings {
        api_token: TOKEN.to_owned(),
        seed,
        rate_limits,
        ..SimulatorSettings::default()
    };
    let sim = Simulator::start(addr, settings).await.unwrap();
    let base = sim.base_url();
    Sim {
        sim,
        base,
        c: reqwest::Client::new(),
    }
}

/// Starts a simulator with the given org and no rate limits.
pub async fn start(seed: SeedSource) -> Sim {
    start_with(seed, RateLimitSettings::unlimited()).await
}

impl Sim {
    /// An authenticated Okta request; `path` may also be an absolute URL (a `next` link).
    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        };
        let mut rb = self
            .c
            .request(m, url)
            .header("Authorization", format!("SSWS {TOKEN}"))
            .header("User-Agent", "simulator-test/1.0");
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        into_resp(rb.send().await.unwrap()).await
    }

    /// An authenticated GET.
    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None).await
    }

    /// An admin request (`/__sim/...`, no auth) with a raw body.
    pub async fn admin(&self, method: &str, path: &str, body: Option<String>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.c.request(m, format!("{}{}", self.base, path));
        if let Some(b) = body {
            rb = rb.body(b);
        }
        into_resp(rb.send().await.unwrap()).await
    }
}
