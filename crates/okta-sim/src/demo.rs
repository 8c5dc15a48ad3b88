//! The built-in demo org (`SeedSource::Demo`): the `Everyone` group, nine users in every
//! interesting status, four `OKTA_GROUP`s and one `APP_GROUP`, five devices (ACTIVE, SUSPENDED and
//! DEACTIVATED, linked to demo users), and a System Log holding a
//! dozen `user.session.start` events (successes and failures from a few addresses) spread
//! over the 24 hours before the simulator started.
//!
//! Ids derive from a hash of each login or group name and timestamps are fixed, so every
//! start yields byte-identical objects and README examples can show real ids. Login events are
//! stamped relative to the start time.

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};

use super::inject::{self, EventSpec};
use super::seed;
use super::state::Org;

const MAC_CHROME: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36";
const WIN_FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";
const IPHONE_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

/// The demo login attempts: (minutes before start, login, ip, failure reason, user agent).
const LOGINS: &[(i64, &str, &str, Option<&str>, &str)] = &[
    (
        1410,
        "ada.lovelace@example.com",
        "198.51.100.23",
        None,
        MAC_CHROME,
    ),
    (
        1320,
        "grace.hopper@example.com",
        "198.51.100.23",
        None,
        MAC_CHROME,
    ),
    (
        1200,
        "edsger.dijkstra@example.com",
        "192.0.2.44",
        None,
        WIN_FIREFOX,
    ),
    (
        1080,
        "alan.turing@example.com",
        "203.0.113.7",
        Some("INVALID_CREDENTIALS"),
        WIN_FIREFOX,
    ),
    (
        1077,
        "alan.turing@example.com",
        "203.0.113.7",
        Some("INVALID_CREDENTIALS"),
        WIN_FIREFOX,
    ),
    (
        1075,
        "alan.turing@example.com",
        "203.0.113.7",
        Some("LOCKED_OUT"),
        WIN_FIREFOX,
    ),
    (
        840,
        "katherine.johnson@example.com",
        "198.51.100.23",
        None,
        IPHONE_SAFARI,
    ),
    (
        600,
        "ada.lovelace@example.com",
        "203.0.113.7",
        None,
        IPHONE_SAFARI,
    ),
    (
        360,
        "mallory@example.com",
        "203.0.113.99",
        Some("INVALID_CREDENTIALS"),
        WIN_FIREFOX,
    ),
    (
        357,
        "mallory@example.com",
        "203.0.113.99",
        Some("INVALID_CREDENTIALS"),
        WIN_FIREFOX,
    ),
    (
        180,
        "grace.hopper@example.com",
        "198.51.100.23",
        None,
        MAC_CHROME,
    ),
    (
        60,
        "edsger.dijkstra@example.com",
        "192.0.2.44",
        None,
        WIN_FIREFOX,
    ),
];

/// Where each demo address is: (city, state, country).
fn place(ip: &str) -> (&'static str, &'static str, &'static str) {
    match ip {
        "198.51.100.23" => ("New York", "New York", "United States"),
        "203.0.113.7" => ("London", "England", "United Kingdom"),
        "192.0.2.44" => ("Seattle", "Washington", "United States"),
        _ => ("Lagos", "Lagos", "Nigeria"),
    }
}

/// The demo's `user.session.start` events, relative to `start`.
pub fn login_events(start: DateTime<Utc>) -> Vec<EventSpec> {
    LOGINS
        .iter()
        .map(|(minutes, login, ip, failure, ua)| {
            let (city, state, country) = place(ip);
            EventSpec {
                event_type: "user.session.start".to_owned(),
                login: Some((*login).to_owned()),
                ip: Some((*ip).to_owned()),
                outcome: Some(
                    if failure.is_some() {
                        "FAILURE"
                    } else {
                        "SUCCESS"
                    }
                    .to_owned(),
                ),
                reason: failure.map(str::to_owned),
                published: Some(
                    (start - Duration::minutes(*minutes))
                        .to_rfc3339_opts(SecondsFormat::Millis, true),
                ),
                user_agent: Some((*ua).to_owned()),
                city: Some(city.to_owned()),
                state: Some(state.to_owned()),
                country: Some(country.to_owned()),
                ..EventSpec::default()
            }
        })
        .collect()
}

/// The demo org as a seed document (also a worked example of the seed format).
pub const DEMO_SEED: &str = r#"
users:
  - login: ada.lovelace@example.com
    firstName: Ada
    lastName: Lovelace
    status: ACTIVE
    profile: {department: Engineering, title: Principal Engineer, employeeNumber: "1001"}
  - login: grace.hopper@example.com
    firstName: Grace
    lastName: Hopper
    status: ACTIVE
    profile: {department: Engineering, title: Engineering Manager, employeeNumber: "1002"}
  - login: alan.turing@example.com
    firstName: Alan
    lastName: Turing
    status: LOCKED_OUT
    profile: {department: Engineering, title: Research Engineer, employeeNumber: "1003"}
  - login: katherine.johnson@example.com
    firstName: Katherine
    lastName: Johnson
    status: PASSWORD_EXPIRED
    profile: {department: Support, title: Support Lead, employeeNumber: "1004"}
  - login: margaret.hamilton@example.com
    firstName: Margaret
    lastName: Hamilton
    status: SUSPENDED
    profile: {department: Sales, title: Account Executive, employeeNumber: "1005"}
  - login: linus.pauling@example.com
    firstName: Linus
    lastName: Pauling
    status: STAGED
    profile: {department: Sales, title: Sales Engineer, employeeNumber: "1006"}
  - login: barbara.liskov@example.com
    firstName: Barbara
    lastName: Liskov
    status: PROVISIONED
    password: false
    profile: {department: Support, title: Support Engineer, employeeNumber: "1007"}
  - login: dennis.ritchie@example.com
    firstName: Dennis
    lastName: Ritchie
    status: DEPROVISIONED
    profile: {department: Engineering, title: Staff Engineer, employeeNumber: "1008"}
  - login: edsger.dijkstra@example.com
    firstName: Edsger
    lastName: Dijkstra
    status: ACTIVE
    profile: {department: IT, title: IT Administrator, employeeNumber: "1009"}
groups:
  - name: Engineering
    description: Builds and runs the product
    members: [ada.lovelace@example.com, grace.hopper@example.com, alan.turing@example.com, dennis.ritchie@example.com]
  - name: Sales
    description: Sells the product
    members: [margaret.hamilton@example.com, linus.pauling@example.com]
  - name: Support
    description: Helps customers
    members: [katherine.johnson@example.com, barbara.liskov@example.com]
  - name: Admins
    description: Okta and IT administrators
    members: [edsger.dijkstra@example.com, grace.hopper@example.com]
  - name: GitHub Users
    description: Imported from the GitHub app
    type: APP_GROUP
    members: [ada.lovelace@example.com, grace.hopper@example.com, alan.turing@example.com]
devices:
  - displayName: ADA-MBP
    platform: MACOS
    manufacturer: APPLE
    model: Mac15,9
    osVersion: 15.6.1
    serialNumber: C02ADA0MBP01
    udid: F5DFB6C9-24FB-5B81-BFCB-7AB5F7B58BA5
    secureHardwarePresent: true
    profile: {diskEncryptionType: ALL_INTERNAL_VOLUMES}
    users: [ada.lovelace@example.com]
    managementStatus: MANAGED
    screenLockType: BIOMETRIC
  - displayName: Ada's iPhone
    platform: IOS
    manufacturer: APPLE
    model: iPhone15,4
    osVersion: 18.5.0
    serialNumber: HQPADA0IPH02
    udid: 00008120-001C5D4A3E32601E
    secureHardwarePresent: true
    users: [ada.lovelace@example.com]
    screenLockType: PASSCODE
  - displayName: DESKTOP-GHOPPER
    platform: WINDOWS
    manufacturer: Dell Inc.
    model: Latitude 7440
    osVersion: 10.0.22631
    serialNumber: 5CG3GRACE03
    sid: S-1-5-21-3992267483-1860856704-2413701314-1002
    secureHardwarePresent: true
    profile: {diskEncryptionType: SYSTEM_VOLUME}
    users: [grace.hopper@example.com, edsger.dijkstra@example.com]
    managementStatus: MANAGED
    screenLockType: PASSCODE
  - displayName: Pixel 8 (Alan)
    platform: ANDROID
    status: SUSPENDED
    manufacturer: Google
    model: Pixel 8
    osVersion: "14"
    serialNumber: 38ALAN0PIX04
    secureHardwarePresent: true
    users: [alan.turing@example.com]
    screenLockType: BIOMETRIC
  - displayName: OLD-MBP-DENNIS
    platform: MACOS
    status: DEACTIVATED
    manufacturer: APPLE
    model: MacBookPro16,1
    osVersion: 14.7.1
    serialNumber: C02DENNIS05
    secureHardwarePresent: false
"#;

/// Builds the demo org.
pub fn org() -> anyhow::Result<Org> {
    let base = Utc
        .with_ymd_and_hms(2025, 1, 6, 9, 0, 0)
        .single()
        .ok_or_else(|| anyhow::anyhow!("invalid demo timestamp"))?;
    let doc = seed::parse(DEMO_SEED).map_err(anyhow::Error::msg)?;
    let mut org = seed::empty_org(base);
    seed::apply(&mut org, &doc, Some(base)).map_err(anyhow::Error::msg)?;
    inject::inject(&mut org, &login_events(Utc::now())).map_err(anyhow::Error::msg)?;
    Ok(org)
}
