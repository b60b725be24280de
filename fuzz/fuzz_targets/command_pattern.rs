//! The command-pattern matcher of roles' `commands`, against a reference written from its
//! documentation (core/command_pattern.rs and docs/policy.md), not from its code:
//!
//! * `ALL` matches everything; otherwise the words of the pattern match the command line word
//!   for word, and a pattern without arguments allows none;
//! * a lone `*` as the last of several words matches any number of remaining arguments;
//! * in a word, `*` is any run of characters, `?` one character, `[...]` one character of a
//!   class (`!` or `^` negates, `a-z` ranges, a leading `]` is literal), and none of them ever
//!   matches `/`; a class without its `]` matches nothing;
//! * an argument with an empty, `.` or `..` path component (a leading `/` aside) never matches
//!   a word with a wildcard (nor the `*` rest);
//! * an argument starting with `-` matches a word with a wildcard only if the word starts with
//!   `-` (never the `*` rest): options are written literally;
//! * a match is exact when no wildcard took part.
//!
//! Properties: the matcher agrees with the reference on every input (whether it matches, and
//! whether exactly); a pattern reads back from its own display.
//!
//! Input: the pattern's text, then NUL-separated arguments (invalid UTF-8 replaced).
#![no_main]

use jitd::fuzzing::{Matched, Pattern};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut fields = data
        .split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let text = fields.next().unwrap_or_default();
    let argv: Vec<String> = fields.collect();
    let Ok(pattern) = Pattern::parse(&text) else {
        return;
    };
    let again = Pattern::parse(&pattern.to_string()).expect("a pattern reads its own display");
    assert_eq!(again.to_string(), pattern.to_string());

    let got = pattern.matches(&argv);
    let want = if pattern.is_all() {
        Some(Matched::Wildcard)
    } else {
        reference(pattern.words(), &argv)
    };
    assert_eq!(got, want, "pattern {text:?} against {argv:?}");
});

fn reference(words: &[String], argv: &[String]) -> Option<Matched> {
    let any_rest = words.len() > 1 && words.last().is_some_and(|w| w == "*");
    let fixed = &words[..words.len() - usize::from(any_rest)];
    if argv.len() < fixed.len() || (!any_rest && argv.len() != fixed.len()) {
        return None;
    }
    // What no wildcard may match, whatever the glob says.
    let refused = |word: &str, a: &String| {
        let relative = a.strip_prefix('/').unwrap_or(a);
        let odd_component = relative
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
        odd_component || (a.starts_with('-') && !word.starts_with('-'))
    };
    let mut wild = any_rest;
    for (word, arg) in fixed.iter().zip(argv) {
        let tokens = tokens(word);
        if tokens.iter().all(|t| matches!(t, Token::Char(_))) {
            if word != arg {
                return None;
            }
        } else {
            wild = true;
            if refused(word, arg) || !glob(&tokens, &arg.chars().collect::<Vec<_>>()) {
                return None;
            }
        }
    }
    if any_rest && argv[fixed.len()..].iter().any(|a| refused("*", a)) {
        return None;
    }
    Some(if wild {
        Matched::Wildcard
    } else {
        Matched::Exact
    })
}

#[derive(Debug)]
enum Token {
    Char(char),
    Any,
    Star,
    Class {
        negate: bool,
        items: Vec<(char, char)>,
    },
    /// A `[` without its `]`: matches nothing.
    Broken,
}

fn tokens(word: &str) -> Vec<Token> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => out.push(Token::Star),
            '?' => out.push(Token::Any),
            '[' => {
                let mut j = i + 1;
                let negate = matches!(chars.get(j), Some('!' | '^'));
                if negate {
                    j += 1;
                }
                let mut items = Vec::new();
                let mut first = true;
                while j < chars.len() && (first || chars[j] != ']') {
                    first = false;
                    match (chars.get(j + 1), chars.get(j + 2)) {
                        (Some('-'), Some(&hi)) if hi != ']' => {
                            items.push((chars[j], hi));
                            j += 3;
                        }
                        _ => {
                            items.push((chars[j], chars[j]));
                            j += 1;
                        }
                    }
                }
                if j >= chars.len() {
                    out.push(Token::Broken);
                    return out;
                }
                out.push(Token::Class { negate, items });
                i = j;
            }
            c => out.push(Token::Char(c)),
        }
        i += 1;
    }
    out
}

/// Whether `tokens` match all of `text`: dynamic programming over (token, character).
fn glob(tokens: &[Token], text: &[char]) -> bool {
    if tokens.iter().any(|t| matches!(t, Token::Broken)) {
        return false;
    }
    // ok[j]: the tokens so far match text[..j].
    let mut ok = vec![false; text.len() + 1];
    ok[0] = true;
    for token in tokens {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] = match token {
                // Any run without a slash: extend a match that ended at j-1 or before.
                Token::Star => ok[j] || (j > 0 && text[j - 1] != '/' && next[j - 1]),
                _ if j == 0 => false,
                Token::Char(c) => ok[j - 1] && text[j - 1] == *c,
                Token::Any => ok[j - 1] && text[j - 1] != '/',
                Token::Class { negate, items } => {
                    let c = text[j - 1];
                    let inside = items.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                    ok[j - 1] && inside != *negate && c != '/'
                }
                Token::Broken => unreachable!(),
            };
        }
        ok = next;
    }
    ok[text.len()]
}
