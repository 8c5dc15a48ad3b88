//! The rules of the `coordination` settings section.

use std::path::Path;

use secrecy::ExposeSecret;
use url::Url;

use crate::config::{Checking, CoordinationSettings, Section, checked};

/// Longest time an outcome may be kept: a day, far beyond any client's retries.
const MAX_IDEMPOTENCY_TTL_S: u64 = 86_400;

impl Section for CoordinationSettings {
    type Valid = ();

    fn validate(&self, _: &Checking<'_>) -> Result<(), Vec<String>> {
        checked(problems(self), ())
    }
}

/// Every problem of the `coordination` section, one line each, naming the setting.
fn problems(settings: &CoordinationSettings) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(url) = &settings.redis_url {
        // Only the scheme is echoed: the URL may carry a password.
        match Url::parse(url.expose_secret()) {
            Ok(url) if matches!(url.scheme(), "redis" | "rediss") => {
                if url.password().is_some() && settings.redis_password_file.is_some() {
                    problems.push(
                        "`coordination.redis_url` carries a password and `coordination.redis_password_file` is set: keep one"
                            .to_owned(),
                    );
                }
            }
            Ok(url) => problems.push(format!(
                "`coordination.redis_url` must start with redis:// or rediss://, got {}://",
                url.scheme()
            )),
            Err(_) => problems.push("`coordination.redis_url` is not a URL".to_owned()),
        }
    } else if settings.redis_password_file.is_some() {
        problems.push(
            "`coordination.redis_password_file` is set without `coordination.redis_url`".to_owned(),
        );
    }
    if let Some(path) = &settings.redis_password_file {
        if let Err(problem) = read_password(path) {
            problems.push(problem.to_string());
        }
    }
    if !(1..=MAX_IDEMPOTENCY_TTL_S).contains(&settings.idempotency_ttl_s) {
        problems.push(format!(
            "`coordination.idempotency_ttl_s` must be between 1 and {MAX_IDEMPOTENCY_TTL_S}"
        ));
    }
    if settings.expected_replicas == 0 {
        problems.push("`coordination.expected_replicas` must be at least 1".to_owned());
    }
    problems
}

/// The password in `path`, without its trailing newline.
pub(super) fn read_password(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        anyhow::anyhow!(
            "`coordination.redis_password_file` (`{}`) cannot be read: {error}",
            path.display()
        )
    })?;
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!(
            "`coordination.redis_password_file` (`{}`) is empty",
            path.display()
        );
    }
    Ok(password.to_owned())
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn with_url(url: &str) -> CoordinationSettings {
        CoordinationSettings {
            redis_url: Some(SecretString::from(url.to_owned())),
            ..CoordinationSettings::default()
        }
    }

    #[test]
    fn a_usable_url_and_the_defaults_pass() {
        assert!(problems(&CoordinationSettings::default()).is_empty());
        assert!(problems(&with_url("redis://valkey:6379/0")).is_empty());
        assert!(problems(&with_url("rediss://:pw@redis.internal:6380")).is_empty());
    }

    #[test]
    fn each_problem_names_its_setting_and_never_the_password() {
        let wrong_scheme = problems(&with_url("http://user:s3cret-pass@valkey:6379"));
        assert_eq!(wrong_scheme.len(), 1, "{wrong_scheme:?}");
        assert!(wrong_scheme[0].contains("`coordination.redis_url`"));
        assert!(!wrong_scheme[0].contains("s3cret-pass"));

        let dir = tempfile::tempdir().unwrap();
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, "from-file\n").unwrap();
        let both = CoordinationSettings {
            redis_password_file: Some(password_file.clone()),
            ..with_url("redis://:s3cret-pass@valkey:6379")
        };
        let found = problems(&both).join("\n");
        assert!(found.contains("keep one"), "{found}");
        assert!(!found.contains("s3cret-pass"));

        let file_alone = CoordinationSettings {
            redis_password_file: Some(password_file),
            ..CoordinationSettings::default()
        };
        assert!(problems(&file_alone)[0].contains("without `coordination.redis_url`"));

        let no_ttl = CoordinationSettings {
            idempotency_ttl_s: 0,
            ..CoordinationSettings::default()
        };
        assert!(problems(&no_ttl)[0].contains("`coordination.idempotency_ttl_s`"));

        let no_replicas = CoordinationSettings {
            expected_replicas: 0,
            ..CoordinationSettings::default()
        };
        assert!(problems(&no_replicas)[0].contains("`coordination.expected_replicas`"));
    }
}
