//! The users and tokens the live server starts with (PROTOCOL.md, "Users and tokens"):
//! from `--token USER=TOKEN`, repeatable, and from a tokens file, `--tokens-file PATH`.
//!
//! A tokens file holds one `USER=TOKEN` per line, as `--token` takes it; blank lines and
//! lines starting with `#` are skipped. A file keeps the tokens out of the process list
//! (anyone on the machine can read a command line) and out of the shell's history.
//!
//! Bad input is named: the file, the line, and what is wrong with it, but never the
//! line's text, which may hold a token (errors go to logs). A file with no tokens at all
//! is refused rather than taken for "no tokens": the server would then serve the demo
//! user, with a token anyone can guess. A byte-order mark, which some editors put at the
//! start of a file, is not taken for part of the first user's name.

use std::collections::BTreeMap;
use std::path::Path;

/// One `USER=TOKEN`: both non-empty, and neither containing whitespace (which a header or
/// a shell would silently cut or keep). The error does not repeat `s`.
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((user, token)) if !user.is_empty() && !token.is_empty() => {
            if s.contains(char::is_whitespace) {
                Err("USER and TOKEN may not contain spaces".into())
            } else {
                Ok((user.to_string(), token.to_string()))
            }
        }
        _ => Err("not USER=TOKEN (both non-empty)".into()),
    }
}

/// The users and tokens in a tokens file's text, in order; `Err` names the first bad
/// line (from 1).
fn parse_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        pairs.push(parse_pair(line).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    if pairs.is_empty() {
        return Err(
            "no USER=TOKEN line (with no token the server would serve the demo token)".into(),
        );
    }
    Ok(pairs)
}

/// Reads and parses a tokens file; `Err` names the file, and the line.
fn read_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("tokens file {}: cannot read it: {e}", path.display()))?;
    parse_file(&text).map_err(|e| format!("tokens file {}: {e}", path.display()))
}

/// The server's tokens: those given with `--token` (`pairs`) and those of the tokens
/// file, if one is given; `Err` names the file and line, or the two users given one
/// token.
pub fn gather(
    mut pairs: Vec<(String, String)>,
    file: Option<&Path>,
) -> Result<BTreeMap<String, String>, String> {
    if let Some(path) = file {
        pairs.extend(read_file(path)?);
    }
    by_token(&pairs)
}

/// Each token with its user, as the server takes them; `Err` (naming the users, not the
/// token) when one token is given to two users: a device's token must say who it is.
fn by_token(pairs: &[(String, String)]) -> Result<BTreeMap<String, String>, String> {
    let mut tokens = BTreeMap::new();
    for (user, token) in pairs {
        if let Some(other) = tokens.insert(token.clone(), user.clone())
            && other != *user
        {
            return Err(format!("`{other}` and `{user}` are given the same token"));
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(user: &str, token: &str) -> (String, String) {
        (user.to_string(), token.to_string())
    }

    #[test]
    fn a_file_has_a_pair_a_line_with_comments_and_blank_lines_skipped() {
        let text = "\u{feff}ana=t-ana\n# QA users\n\n  bo=t-bo  \n# end\n";
        assert_eq!(
            parse_file(text).unwrap(),
            [pair("ana", "t-ana"), pair("bo", "t-bo")]
        );
    }

    #[test]
    fn a_bad_line_is_named_by_its_number_and_what_is_wrong() {
        let cases = [
            ("ana=t\nbo\n", "line 2: not USER=TOKEN"),
            ("ana=t\n=t2\n", "line 2: not USER=TOKEN"),
            ("# x\nana=secret\nbo=\n", "line 3: not USER=TOKEN"),
            (
                "ana = secret\n",
                "line 1: USER and TOKEN may not contain spaces",
            ),
        ];
        for (text, expected) in cases {
            let e = parse_file(text).unwrap_err();
            assert!(e.starts_with(expected), "{text:?}: {e}");
            assert!(!e.contains("secret") && !e.contains("t2"), "a token in {e}");
        }
    }

    #[test]
    fn a_file_without_tokens_is_refused() {
        for text in ["", "\n\n", "# nothing yet\n"] {
            let e = parse_file(text).unwrap_err();
            assert!(e.contains("no USER=TOKEN line"), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_token_given_to_two_users_is_refused_a_user_may_have_two_tokens() {
        let tokens = by_token(&[pair("ana", "t1"), pair("ana", "t2"), pair("ana", "t1")]);
        assert_eq!(tokens.unwrap().len(), 2);
        let e = by_token(&[pair("ana", "t"), pair("bo", "t")]).unwrap_err();
        assert_eq!(e, "`ana` and `bo` are given the same token");
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let path = std::env::temp_dir().join("sync-lab-no-such-tokens-file");
        let e = read_file(&path).unwrap_err();
        assert!(
            e.starts_with(&format!("tokens file {}: cannot read it", path.display())),
            "{e}"
        );
    }
}
