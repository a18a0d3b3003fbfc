//! S3 credentials from the usual credential file, for what object_store reads only from the
//! environment.
//!
//! object_store takes `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`
//! (and instance or web-identity credentials), but not the shared credential file that the AWS
//! command line writes. Reading it is a few lines of INI, written here rather than bringing in
//! the AWS SDK's `aws-config` (its own HTTP and TLS stack) for one file: `AWS_SHARED_CREDENTIALS_FILE`
//! or `~/.aws/credentials`, section `AWS_PROFILE` (default `default`).

use std::path::PathBuf;

/// Keys read from a profile of the credential file.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct FileCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for FileCredentials {
    /// Never the secrets: only the key id's first four characters.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: String = self.access_key_id.chars().take(4).collect();
        write!(f, "FileCredentials({shown}...)")
    }
}

/// The credential file's path: `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
pub fn credentials_path() -> Option<PathBuf> {
    match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => dirs::home_dir().map(|h| h.join(".aws").join("credentials")),
    }
}

/// The profile `profile` of an INI credential file's text (`[name]` sections, `key = value`
/// lines, `#` and `;` comments); `None` when the profile or either key is missing.
pub fn parse_profile(text: &str, profile: &str) -> Option<FileCredentials> {
    let mut inside = false;
    let mut c = FileCredentials::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            let name = name.strip_prefix("profile ").unwrap_or(name).trim();
            inside = name == profile;
            continue;
        }
        if !inside {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => c.access_key_id = v,
            "aws_secret_access_key" => c.secret_access_key = v,
            "aws_session_token" => c.session_token = Some(v),
            _ => {}
        }
    }
    (!c.access_key_id.is_empty() && !c.secret_access_key.is_empty()).then_some(c)
}

/// The credentials of `AWS_PROFILE` (else `default`) in the credential file, when the
/// environment gives no key of its own; `None` otherwise or when there is no such file.
pub fn from_file_unless_env() -> Option<FileCredentials> {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let text = std::fs::read_to_string(credentials_path()?).ok()?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    parse_profile(&text, &profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_read_and_its_secret_never_shown() {
        let text = "# made by aws configure\n[default]\naws_access_key_id = AKIAONE\n\
                    aws_secret_access_key=s3cr3t\n\n[profile ci]\naws_access_key_id = AKIATWO\n\
                    aws_secret_access_key = other\naws_session_token = tok\n";
        let d = parse_profile(text, "default").unwrap();
        assert_eq!(
            (d.access_key_id.as_str(), d.secret_access_key.as_str()),
            ("AKIAONE", "s3cr3t")
        );
        assert_eq!(d.session_token, None);
        let ci = parse_profile(text, "ci").unwrap();
        assert_eq!(ci.session_token.as_deref(), Some("tok"));
        assert!(parse_profile(text, "missing").is_none());
        assert!(parse_profile("[x]\naws_access_key_id = a\n", "x").is_none());
        let shown = format!("{ci:?}");
        assert!(
            !shown.contains("other") && !shown.contains("tok"),
            "{shown}"
        );
    }
}
