//! A scripted [`Host`] + [`Daemon`] for unit tests, in kanidm's style: items are a fixed table
//! (reading them has no effect), every effect (a message, a group lookup, a log line, a call to
//! jitd) must be the next one expected, and on drop every expected effect must have happened.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jit_proto::{ClientError, Request, Response};

use crate::daemon::Daemon;
use crate::host::{Host, Item, ItemError, Severity};
use crate::waiting::Waiting;

#[allow(clippy::large_enum_variant)] // test-only, a handful per test
pub enum Expect {
    /// A line shown to the user, containing this text.
    Tell(&'static str),
    /// The cheap membership test (primary group, or the group's member list).
    Listed {
        user: &'static str,
        group: &'static str,
        answer: Result<bool, String>,
    },
    /// The full membership test (every NSS source).
    InGroup {
        user: &'static str,
        group: &'static str,
        answer: Result<bool, String>,
    },
    /// A log line at this severity containing this text.
    Log(Severity, &'static str),
    /// Exactly this request, answered with `answer`.
    Ask(Request, Result<Response, ClientError>),
    /// Exactly this report, sent with this outcome.
    Report(Request, Result<(), ClientError>),
    /// A prompt containing this text, answered with this (`None`: the application cannot
    /// prompt, as sshd after a public-key login).
    Prompt(&'static str, Option<&'static str>),
    /// A variable put into the PAM environment, with whether that works.
    PutEnv(&'static str, String, bool),
}

pub struct Script {
    items: HashMap<Item, Result<Option<String>, ItemError>>,
    env: HashMap<String, String>,
    expected: RefCell<VecDeque<Expect>>,
    pub asked_with: RefCell<Vec<(PathBuf, Duration)>>,
    /// The scripted clock of [`Waiting`]: moved only by pauses.
    clock: Cell<Duration>,
    /// Whether the client's connection is found, and when its client hangs up.
    client: Option<Option<Duration>>,
}

impl Script {
    pub fn new(items: &[(Item, &str)], expected: Vec<Expect>) -> Script {
        Script {
            items: items
                .iter()
                .map(|(k, v)| (*k, Ok(Some(v.to_string()))))
                .collect(),
            env: HashMap::new(),
            expected: RefCell::new(expected.into()),
            asked_with: RefCell::new(Vec::new()),
            clock: Cell::new(Duration::ZERO),
            client: Some(None),
        }
    }

    pub fn with_env(mut self, name: &str, value: &str) -> Script {
        self.env.insert(name.into(), value.into());
        self
    }

    /// The client hangs up at `at` on the scripted clock (`None`: its connection is not found).
    pub fn with_client_gone_at(mut self, at: Option<Duration>) -> Script {
        self.client = at.map(Some);
        self
    }

    pub fn now(&self) -> Duration {
        self.clock.get()
    }

    pub fn with_item_error(mut self, item: Item, why: &str) -> Script {
        self.items.insert(item, Err(ItemError(why.into())));
        self
    }

    fn next(&self, what: &str) -> Expect {
        self.expected
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected call: {what}"))
    }
}

impl Host for Script {
    fn item(&self, item: Item) -> Result<Option<String>, ItemError> {
        self.items.get(&item).cloned().unwrap_or(Ok(None))
    }

    fn tell_user(&self, line: &str) -> bool {
        match self.next(&format!("tell_user({line:?})")) {
            Expect::Tell(text) => assert!(line.contains(text), "told {line:?}, expected {text:?}"),
            _ => panic!("unexpected tell_user({line:?})"),
        }
        true
    }

    fn prompt(&self, question: &str) -> Option<String> {
        match self.next(&format!("prompt({question:?})")) {
            Expect::Prompt(text, answer) => {
                assert!(
                    question.contains(text),
                    "asked {question:?}, expected {text:?}"
                );
                answer.map(String::from)
            }
            _ => panic!("unexpected prompt({question:?})"),
        }
    }

    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn put_env(&self, name: &str, value: &str) -> bool {
        match self.next(&format!("put_env({name})")) {
            Expect::PutEnv(n, v, works) => {
                assert_eq!((name, value), (n, v.as_str()));
                works
            }
            _ => panic!("unexpected put_env({name})"),
        }
    }

    fn user_listed_in_group(&self, user: &str, group: &str) -> Result<bool, String> {
        match self.next(&format!("user_listed_in_group({user}, {group})")) {
            Expect::Listed {
                user: u,
                group: g,
                answer,
            } => {
                assert_eq!((user, group), (u, g));
                answer
            }
            _ => panic!("unexpected user_listed_in_group({user}, {group})"),
        }
    }

    fn user_in_group(&self, user: &str, group: &str) -> Result<bool, String> {
        match self.next(&format!("user_in_group({user}, {group})")) {
            Expect::InGroup {
                user: u,
                group: g,
                answer,
            } => {
                assert_eq!((user, group), (u, g));
                answer
            }
            _ => panic!("unexpected user_in_group({user}, {group})"),
        }
    }

    fn log(&self, severity: Severity, line: &str) {
        match self.next(&format!("log({severity:?}, {line:?})")) {
            Expect::Log(s, text) => {
                assert_eq!(s, severity, "log line {line:?}");
                assert!(line.contains(text), "logged {line:?}, expected {text:?}");
            }
            _ => panic!("unexpected log({severity:?}, {line:?})"),
        }
    }

    /// Every pass in a script is named `k1`.
    fn pass_key(&self) -> String {
        "k1".into()
    }

    /// Every script runs in `sudo /usr/bin/id`.
    fn own_command_line(&self) -> Option<Vec<String>> {
        Some(vec!["sudo".into(), "/usr/bin/id".into()])
    }
}

impl Daemon for Script {
    fn ask(
        &self,
        socket: &Path,
        timeout: Duration,
        request: Request,
    ) -> Result<Response, ClientError> {
        self.asked_with
            .borrow_mut()
            .push((socket.to_path_buf(), timeout));
        match self.next(&format!("ask({request:?})")) {
            Expect::Ask(expected, answer) => {
                assert_eq!(request, expected);
                answer
            }
            _ => panic!("unexpected ask({request:?})"),
        }
    }

    fn report(&self, _socket: &Path, request: Request) -> Result<(), ClientError> {
        match self.next(&format!("report({request:?})")) {
            Expect::Report(expected, outcome) => {
                assert_eq!(request, expected);
                outcome
            }
            _ => panic!("unexpected report({request:?})"),
        }
    }
}

impl Waiting for Script {
    fn watch_client(&self, _rhost: Option<&str>) -> bool {
        self.client.is_some()
    }

    fn elapsed(&self) -> Duration {
        self.clock.get()
    }

    fn pause(&self, pause: Duration) {
        self.clock.set(self.clock.get() + pause);
    }

    fn client_gone(&self) -> bool {
        matches!(self.client, Some(Some(at)) if self.clock.get() >= at)
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let left = self.expected.borrow();
        if let Some(first) = left.front() {
            let what = match first {
                Expect::Tell(t) => format!("tell_user containing {t:?}"),
                Expect::Listed { user, group, .. } => {
                    format!("user_listed_in_group({user}, {group})")
                }
                Expect::InGroup { user, group, .. } => format!("user_in_group({user}, {group})"),
                Expect::Log(s, t) => format!("log({s:?}) containing {t:?}"),
                Expect::Ask(r, _) => format!("ask({r:?})"),
                Expect::Report(r, _) => format!("report({r:?})"),
                Expect::Prompt(t, _) => format!("prompt containing {t:?}"),
                Expect::PutEnv(n, _, _) => format!("put_env({n})"),
            };
            panic!(
                "{} expected call(s) never happened, first: {what}",
                left.len()
            );
        }
    }
}
