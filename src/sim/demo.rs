//! The built-in demo org (`SeedSource::Demo`): the `Everyone` group, nine users in every
//! interesting status, four `OKTA_GROUP`s and one `APP_GROUP`.
//!
//! Ids derive from a hash of each login or group name and timestamps are fixed, so every
//! start yields byte-identical objects and README examples can show real ids.

use chrono::{TimeZone, Utc};

use super::seed;
use super::state::Org;

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
    Ok(org)
}
