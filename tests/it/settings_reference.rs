//! The settings reference in `docs/configuration.md` against the loader itself: every setting
//! the loader knows is documented, and nothing documented is unknown to it. The loader's
//! settings are found by asking it: an unknown key at each level is refused with the list of
//! the keys that level takes, and a level that takes keys below it refuses an unknown one too.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use identity_gateway::config::Settings;

const PROBE: &str = "zz_not_a_setting";

/// The keys the loader accepts directly under `section` (`""` for the top), or `None` when
/// `section` is a single value rather than a level of settings.
fn keys_under(section: &str) -> Option<Vec<String>> {
    let path = section
        .split('.')
        .filter(|part| !part.is_empty())
        .chain([PROBE])
        .map(str::to_uppercase)
        .collect::<Vec<_>>()
        .join("__");
    let variable = format!("IDGW_{path}");
    let env = HashMap::from([(variable, "1".to_owned())]);
    let error = match Settings::load(None, &env) {
        Ok(_) => panic!("`{section}` took an unknown key"),
        Err(error) => format!("{error:#}"),
    };
    if !error.contains(&format!("unknown field `{PROBE}`")) {
        return None;
    }
    let expected = error
        .split("expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("no expected keys in: {error}"));
    // The loader names the level it refused at after the list: ` for key `auth``.
    let expected = expected.split(" for key").next().unwrap_or(expected);
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// Every setting the loader knows, as dotted names.
fn loader_settings(section: &str, found: &mut BTreeSet<String>) {
    let Some(keys) = keys_under(section) else {
        found.insert(section.to_owned());
        return;
    };
    for key in keys {
        let name = if section.is_empty() {
            key
        } else {
            format!("{section}.{key}")
        };
        loader_settings(&name, found);
    }
}

/// The settings the reference documents, and the sections it documents as a whole (`x.*`).
fn documented_settings() -> (BTreeSet<String>, BTreeSet<String>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let text = std::fs::read_to_string(path).unwrap();
    let table = text
        .split("| setting | environment variable |")
        .nth(1)
        .expect("docs/configuration.md has the settings table");
    let (mut settings, mut sections) = (BTreeSet::new(), BTreeSet::new());
    for row in table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
    {
        let cell = row.split('|').nth(1).unwrap_or("");
        let names: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        let Some(first) = names.first() else {
            panic!("a settings row names no setting: {row}");
        };
        let parent = first.rsplit_once('.').map_or("", |(parent, _)| parent);
        for name in &names {
            // `.key` continues the row's first setting's section.
            let name = match name.strip_prefix('.') {
                Some(key) => format!("{parent}.{key}"),
                None => (*name).to_owned(),
            };
            match name.strip_suffix(".*") {
                Some(section) => sections.insert(section.to_owned()),
                None => settings.insert(name),
            };
        }
    }
    (settings, sections)
}

#[test]
fn the_settings_reference_documents_exactly_the_settings_the_loader_knows() {
    let mut known = BTreeSet::new();
    loader_settings("", &mut known);
    assert!(
        known.contains("okta.org_url") && known.contains("auth.jwt.issuer"),
        "the probe found the loader's settings: {known:?}"
    );
    let (documented, sections) = documented_settings();
    let covered = |name: &String| {
        documented.contains(name)
            || sections
                .iter()
                .any(|section| name.starts_with(&format!("{section}.")))
    };
    let undocumented: Vec<&String> = known.iter().filter(|name| !covered(name)).collect();
    assert!(
        undocumented.is_empty(),
        "settings missing from docs/configuration.md: {undocumented:?}"
    );
    let unknown: Vec<&String> = documented.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md documents settings the loader does not know: {unknown:?}"
    );
    for section in &sections {
        assert!(
            known
                .iter()
                .any(|name| name.starts_with(&format!("{section}."))),
            "docs/configuration.md documents `{section}.*`, which the loader does not know"
        );
    }
}
