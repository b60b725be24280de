//! The access policy: which role covers a request, who approves it and how many must, whether
//! a rule approves it at once, break-glass, and how long a grant may last. Pure: the caller
//! supplies the requester's groups and the time.
//!
//! With no roles configured the policy is the foundation's: anyone may ask for any command or
//! SSH login, and the global approver groups decide, one approval each.

use std::cmp::Reverse;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use jit_proto::Target;
use regex::Regex;
use serde::Serialize;

use super::command_pattern::{CommandPattern, Specificity};
use super::fleet::host_pattern::{any_matches, joined, HostPattern};
use super::model::{display_command, Request};
use super::recording::Record;
use super::time_window::Schedule;

/// What applies when no role is configured, and to grants made before roles existed.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub approver_groups: Vec<String>,
    pub default_duration: Duration,
    pub max_duration: Duration,
    pub require_reason: bool,
    /// Global `record`: what grants without a role are recorded with, and roles by default.
    pub record: Record,
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub commands: Vec<CommandPattern>,
    pub ssh: bool,
    pub requester_groups: Vec<String>,
    pub requester_users: Vec<String>,
    pub approver_groups: Vec<String>,
    pub approvals: u32,
    pub self_approval: bool,
    /// One deny ends the request; otherwise it is recorded and others may still approve.
    pub deny_ends: bool,
    pub default_duration: Duration,
    pub max_duration: Duration,
    pub require_reason: bool,
    pub reason_pattern: Option<Regex>,
    /// When set, a ticket is required and must match.
    pub ticket_pattern: Option<Regex>,
    /// Granted without approval to its requesters, only when asked for by name.
    pub break_glass: bool,
    pub auto_approve: Vec<AutoRule>,
    /// The hosts (by `host_name`) the role applies to; empty: every host.
    pub hosts: Vec<HostPattern>,
    pub record: Record,
    /// Fleet mode: what this host does with the role's fleet grants while it cannot hear the
    /// store.
    pub fleet_offline: FleetOffline,
}

/// `fleet_offline`: a host that cannot hear the fleet store cannot hear revocations either.
/// By default it keeps enforcing what it has until each window ends (the store being away
/// must not lock everyone out); a role may instead have its fleet grants end once the store
/// has been away for `[fleet] offline_grace` (Teleport's strict locking, per role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FleetOffline {
    #[default]
    Keep,
    End,
}

#[derive(Debug, Clone)]
pub struct AutoRule {
    pub name: String,
    pub schedule: Schedule,
    /// The requester must be in one of these (empty: any requester of the role).
    pub groups: Vec<String>,
    /// The command must match one of these (empty: anything the role covers).
    pub commands: Vec<CommandPattern>,
    /// Longest grant (in total, for an extension) the rule approves.
    pub max_duration: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub defaults: Defaults,
    pub roles: Vec<Role>,
    /// This host's name, for roles limited to some `hosts`; `None` (tests): no role is.
    pub host: Option<String>,
}

/// Who asks, as established by the caller from peer credentials and the group database.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
}

impl Requester<'_> {
    fn in_any(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub who: Requester<'a>,
    pub target: &'a Target,
    /// The role named with `--role`, if any.
    pub role: Option<&'a str>,
    pub duration: Option<Duration>,
}

/// How a request gets decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// People decide: `approvals_required` distinct approvers from `approver_groups`.
    Approvers,
    /// The named automatic-approval rule approves at once.
    Rule(String),
    /// A break-glass role: granted at once, loudly, and flagged for review.
    BreakGlass,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub role: Option<String>,
    pub duration: Duration,
    pub approver_groups: Vec<String>,
    pub approvals_required: u32,
    pub route: Route,
    pub record: Record,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No role lets this user ask for this; the message says what they may ask for instead.
    NotCovered(String),
    /// The request is outside what the role allows (duration, reason, ticket).
    Invalid(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::NotCovered(m) | Refusal::Invalid(m) => m,
        }
    }
}

/// Why a role does or does not cover a request, for `jitd explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleVerdict {
    pub name: String,
    pub matches: bool,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleVerdict {
    pub name: String,
    pub applies: bool,
    pub why: String,
}

/// The answer of `jitd explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub user: String,
    pub target: String,
    pub at: String,
    /// Would the request be accepted (pending, or granted at once)?
    pub allowed: bool,
    /// One sentence: what happens.
    pub outcome: String,
    pub role: Option<String>,
    pub roles: Vec<RoleVerdict>,
    pub approver_groups: Vec<String>,
    pub approvals_required: u32,
    pub self_approval: bool,
    pub deny_ends: bool,
    pub break_glass: bool,
    /// The rule that would approve at once, if any.
    pub automatic: Option<String>,
    pub auto_approve: Vec<RuleVerdict>,
    pub duration: String,
    pub max_duration: String,
}

fn human(d: Duration) -> String {
    jit_proto::duration::format(d)
}

pub fn describe_target(target: &Target) -> String {
    match target {
        Target::Ssh => "an SSH login".into(),
        Target::Sudo { command } => display_command(command),
    }
}

impl Role {
    fn eligible(&self, who: Requester) -> Result<(), String> {
        if self.requester_users.iter().any(|u| u == who.user) || who.in_any(&self.requester_groups)
        {
            return Ok(());
        }
        let mut allowed = Vec::new();
        if !self.requester_groups.is_empty() {
            allowed.push(format!("members of {}", self.requester_groups.join(", ")));
        }
        if !self.requester_users.is_empty() {
            allowed.push(self.requester_users.join(", "));
        }
        Err(format!(
            "only {} may request role {}",
            allowed.join(" and "),
            self.name
        ))
    }

    fn covers(&self, target: &Target) -> Option<Specificity> {
        match target {
            Target::Ssh => self.ssh.then_some(Specificity::SSH),
            Target::Sudo { command } => self
                .commands
                .iter()
                .filter_map(|p| p.matches(command))
                .max(),
        }
    }

    /// What the role grants, for messages.
    pub fn grants(&self) -> String {
        let mut parts: Vec<String> = self.commands.iter().map(|c| c.to_string()).collect();
        if self.ssh {
            parts.push("SSH login".into());
        }
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join(", ")
        }
    }

    fn rule_verdict(
        &self,
        rule: &AutoRule,
        who: Requester,
        target: &Target,
        total: Duration,
        now: DateTime<Utc>,
    ) -> Result<String, String> {
        if !rule.groups.is_empty() && !who.in_any(&rule.groups) {
            return Err(format!(
                "{} is not a member of {}",
                who.user,
                rule.groups.join(", ")
            ));
        }
        if !rule.commands.is_empty() {
            match target {
                Target::Ssh => return Err("the rule lists commands; it does not cover SSH".into()),
                Target::Sudo { command } => {
                    if !rule.commands.iter().any(|p| p.matches(command).is_some()) {
                        return Err("the command is not on the rule's command list".into());
                    }
                }
            }
        }
        if let Some(max) = rule.max_duration {
            if total > max {
                return Err(format!(
                    "{} asked; the rule approves at most {}",
                    human(total),
                    human(max)
                ));
            }
        }
        rule.schedule.check(now)?;
        Ok(match rule.schedule.hours {
            Some(h) => format!("inside {h} {}", rule.schedule.zone.name()),
            None => "all conditions hold".into(),
        })
    }

    fn rule_verdicts(
        &self,
        who: Requester,
        target: &Target,
        total: Duration,
        now: DateTime<Utc>,
    ) -> Vec<RuleVerdict> {
        self.auto_approve
            .iter()
            .map(|rule| {
                let v = self.rule_verdict(rule, who, target, total, now);
                RuleVerdict {
                    name: rule.name.clone(),
                    applies: v.is_ok(),
                    why: v.unwrap_or_else(|e| e),
                }
            })
            .collect()
    }

    /// How this role, routing a request `route`, asks less than `other` routing it `theirs`;
    /// `None` when it asks at least as much. Not a total order: roles that differ in ways
    /// neither covers (other approver groups) count as asking less, so the choice fails closed.
    fn demands_less_than(&self, other: &Role, route: &Route, theirs: &Route) -> Option<String> {
        let automatic = |r: &Route| !matches!(r, Route::Approvers);
        if automatic(route) && !automatic(theirs) {
            return Some(format!("{} approves it automatically", self.name));
        }
        if self.approvals < other.approvals {
            return Some(format!(
                "{} approval(s) instead of {}",
                self.approvals, other.approvals
            ));
        }
        if let Some(g) = self
            .approver_groups
            .iter()
            .find(|g| !other.approver_groups.contains(g))
        {
            return Some(format!("members of {g} may approve under {}", self.name));
        }
        if self.self_approval && !other.self_approval {
            return Some("the requester may approve their own".into());
        }
        if !self.deny_ends && other.deny_ends {
            return Some("one deny does not end it".into());
        }
        if other.ticket_pattern.is_some() && self.ticket_pattern.is_none() {
            return Some("no ticket needed".into());
        }
        if (other.require_reason || other.reason_pattern.is_some())
            && !(self.require_reason || self.reason_pattern.is_some())
        {
            return Some("no reason needed".into());
        }
        None
    }

    fn route(&self, who: Requester, target: &Target, total: Duration, now: DateTime<Utc>) -> Route {
        if self.break_glass {
            return Route::BreakGlass;
        }
        self.rule_verdicts(who, target, total, now)
            .into_iter()
            .find(|v| v.applies)
            .map(|v| Route::Rule(v.name))
            .unwrap_or(Route::Approvers)
    }
}

impl Policy {
    /// The foundation's behaviour: no roles.
    pub fn open(defaults: Defaults) -> Policy {
        Policy {
            defaults,
            roles: Vec::new(),
            host: None,
        }
    }

    /// May `who` ask for `role` on this host: one of its requesters, and a host it applies to.
    fn eligible(&self, role: &Role, who: Requester) -> Result<(), String> {
        if let Some(host) = &self.host {
            if !role.hosts.is_empty() && !any_matches(&role.hosts, host) {
                return Err(format!(
                    "role {} applies to hosts {} only, not {host}",
                    role.name,
                    joined(&role.hosts, ", ")
                ));
            }
        }
        role.eligible(who)
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// Every group that approves something: the global ones and every role's.
    pub fn all_approver_groups(&self) -> Vec<String> {
        let mut all = self.defaults.approver_groups.clone();
        for g in self.roles.iter().flat_map(|r| &r.approver_groups) {
            if !all.contains(g) {
                all.push(g.clone());
            }
        }
        all
    }

    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.name.clone()).collect()
    }

    /// May the requester approve their own request of this role?
    pub fn self_approval(&self, role: Option<&str>) -> bool {
        role.and_then(|r| self.role(r))
            .is_some_and(|r| r.self_approval)
    }

    /// The longest window a grant of `role` may have, and the role it is the maximum of: the
    /// role's own, or the global `max_duration` (`None`) for a grant without a role or of a
    /// role no longer configured.
    pub fn max_duration_for(&self, role: Option<&str>) -> (Duration, Option<&str>) {
        match role.and_then(|r| self.role(r)) {
            Some(r) => (r.max_duration, Some(&r.name)),
            None => (self.defaults.max_duration, None),
        }
    }

    pub fn deny_ends(&self, role: Option<&str>) -> bool {
        role.and_then(|r| self.role(r)).is_none_or(|r| r.deny_ends)
    }

    /// What the user may ask for instead, for refusals.
    fn offer(&self, who: Requester) -> String {
        let mine: Vec<String> = self
            .roles
            .iter()
            .filter(|r| self.eligible(r, who).is_ok())
            .map(|r| {
                if r.break_glass {
                    format!(
                        "{} (break-glass, with --role {}: {})",
                        r.name,
                        r.name,
                        r.grants()
                    )
                } else {
                    format!("{} ({})", r.name, r.grants())
                }
            })
            .collect();
        if mine.is_empty() {
            format!(
                "{} may not request anything on this host: ask an administrator to add you to a role",
                who.user
            )
        } else {
            format!("you may request: {}", mine.join("; "))
        }
    }

    /// The role that covers the request: the named one, or the most specific eligible one
    /// (the first listed on a tie). Break-glass roles are only ever used by name.
    fn select(&self, ask: &Ask) -> Result<&Role, Refusal> {
        let what = describe_target(ask.target);
        if let Some(name) = ask.role {
            let role = self.role(name).ok_or_else(|| {
                Refusal::NotCovered(format!(
                    "there is no role {name:?}; {}",
                    self.offer(ask.who)
                ))
            })?;
            self.eligible(role, ask.who)
                .map_err(|e| Refusal::NotCovered(format!("{e}; {}", self.offer(ask.who))))?;
            if role.covers(ask.target).is_none() {
                return Err(Refusal::NotCovered(format!(
                    "role {name} does not cover {what}: it grants {}",
                    role.grants()
                )));
            }
            return Ok(role);
        }
        self.roles
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.break_glass && self.eligible(r, ask.who).is_ok())
            .filter_map(|(i, r)| r.covers(ask.target).map(|s| (i, s, r)))
            .min_by_key(|(i, s, _)| (Reverse(*s), *i))
            .map(|(_, _, r)| r)
            .ok_or_else(|| {
                Refusal::NotCovered(format!(
                    "no role lets {} ask for {what}; {}",
                    ask.who.user,
                    self.offer(ask.who)
                ))
            })
    }

    fn duration(
        requested: Option<Duration>,
        default: Duration,
        max: Duration,
        role: &str,
    ) -> Result<Duration, Refusal> {
        match requested {
            None => Ok(default.min(max)),
            Some(d) if d.is_zero() => Err(Refusal::Invalid(
                "the duration must be longer than zero".into(),
            )),
            Some(d) if d > max => Err(Refusal::Invalid(format!(
                "{} is longer than the maximum of {}{role}: ask for less (--for {})",
                human(d),
                human(max),
                human(max)
            ))),
            Some(d) => Ok(d),
        }
    }

    /// Whether the role that covers `ask` wants the requester's own words as the reason
    /// (`require_reason`, or a `reason_pattern`): a login waiting for approval then asks the
    /// user for one, where sshd lets it. An error when nothing covers the request.
    pub fn wants_reason(&self, ask: &Ask) -> Result<bool, Refusal> {
        if self.roles.is_empty() {
            return Ok(self.defaults.require_reason);
        }
        let role = self.select(ask)?;
        Ok(role.require_reason || role.reason_pattern.is_some())
    }

    /// Decides how a new request is handled, or refuses it.
    pub fn decide(
        &self,
        ask: &Ask,
        reason: &str,
        ticket: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Plan, Refusal> {
        if self.roles.is_empty() {
            let d = &self.defaults;
            let duration = Self::duration(ask.duration, d.default_duration, d.max_duration, "")?;
            if d.require_reason && reason.is_empty() {
                return Err(reason_required());
            }
            return Ok(Plan {
                role: None,
                duration,
                approver_groups: d.approver_groups.clone(),
                approvals_required: 1,
                route: Route::Approvers,
                record: d.record,
            });
        }
        let role = self.select(ask)?;
        let duration = Self::duration(
            ask.duration,
            role.default_duration,
            role.max_duration,
            &format!(" for role {}", role.name),
        )?;
        if role.require_reason && reason.is_empty() {
            return Err(reason_required());
        }
        if let Some(p) = &role.reason_pattern {
            if !p.is_match(reason) {
                return Err(Refusal::Invalid(format!(
                    "role {} needs a reason matching {:?}: pass --reason accordingly",
                    role.name,
                    p.as_str()
                )));
            }
        }
        if let Some(p) = &role.ticket_pattern {
            if !ticket.is_some_and(|t| p.is_match(t)) {
                return Err(Refusal::Invalid(format!(
                    "role {} needs a ticket matching {:?}: pass --ticket",
                    role.name,
                    p.as_str()
                )));
            }
        }
        let route = role.route(ask.who, ask.target, duration, now);
        self.refuse_weaker_named_role(ask, role, &route, duration, now)?;
        Ok(Plan {
            role: Some(role.name.clone()),
            duration,
            approver_groups: role.approver_groups.clone(),
            approvals_required: role.approvals,
            route,
            record: role.record,
        })
    }

    /// `--role` picks among roles, never around the one that covers the request most
    /// specifically: a named role that demands less than that one (fewer approvals, other
    /// approvers, an automatic rule where it has none, no ticket where it wants one...) is
    /// refused. Otherwise `--role restart-any -- systemctl restart postgresql` would be granted
    /// at once although `restart-db` wants two approvals for exactly that. Break-glass roles
    /// are named on purpose and stay exempt.
    fn refuse_weaker_named_role(
        &self,
        ask: &Ask,
        named: &Role,
        route: &Route,
        duration: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        if ask.role.is_none() || named.break_glass {
            return Ok(());
        }
        let Ok(specific) = self.select(&Ask { role: None, ..*ask }) else {
            return Ok(());
        };
        if specific.name == named.name {
            return Ok(());
        }
        let specific_route = specific.route(ask.who, ask.target, duration, now);
        let Some(gap) = named.demands_less_than(specific, route, &specific_route) else {
            return Ok(());
        };
        Err(Refusal::NotCovered(format!(
            "role {} demands less than role {}, which covers {} more specifically ({gap}): ask without --role, or with --role {}",
            named.name,
            specific.name,
            describe_target(ask.target),
            specific.name
        )))
    }

    /// How a request to extend a grant by `extra` (to `current + extra` in all) is decided.
    /// Never beyond the role's maximum total.
    pub fn plan_extension(
        &self,
        role: Option<&str>,
        who: Requester,
        target: &Target,
        current: Duration,
        extra: Duration,
        now: DateTime<Utc>,
    ) -> Result<Plan, Refusal> {
        let found = match role {
            Some(name) => Some(self.role(name).ok_or_else(|| {
                Refusal::NotCovered(format!(
                    "role {name} no longer exists: ask for a new grant; {}",
                    self.offer(who)
                ))
            })?),
            None => None,
        };
        if let Some(r) = found {
            self.eligible(r, who).map_err(Refusal::NotCovered)?;
            // A reload may have taken the command out of the role: its rules must not keep
            // extending a grant the role no longer covers.
            if r.covers(target).is_none() {
                return Err(Refusal::NotCovered(format!(
                    "role {} no longer covers {}: the grant runs out as approved; ask for a new one if a role covers it",
                    r.name,
                    describe_target(target)
                )));
            }
        }
        let max = found.map_or(self.defaults.max_duration, |r| r.max_duration);
        let total = current + extra;
        if total > max {
            let left = max.saturating_sub(current);
            let whose = found.map_or(String::new(), |r| format!(" for role {}", r.name));
            return Err(Refusal::Invalid(if left.as_secs() == 0 {
                format!(
                    "the grant already lasts the maximum of {}{whose}: ask for a new grant when it ends",
                    human(max)
                )
            } else {
                format!(
                    "the grant would last {} in all, longer than the maximum of {}{whose}: extend by at most {}",
                    human(total),
                    human(max),
                    human(left)
                )
            }));
        }
        Ok(match found {
            None => Plan {
                role: None,
                duration: extra,
                approver_groups: self.defaults.approver_groups.clone(),
                approvals_required: 1,
                route: Route::Approvers,
                record: self.defaults.record,
            },
            Some(r) => Plan {
                role: Some(r.name.clone()),
                duration: extra,
                approver_groups: r.approver_groups.clone(),
                approvals_required: r.approvals,
                route: r.route(who, target, total, now),
                record: r.record,
            },
        })
    }

    /// Does this policy still let `who` (the requester as they are now) have what `r` asks for?
    /// Asked again when an approval is about to count: for a pending request, as if it were
    /// submitted now (role, groups, duration, reason, ticket); for an active grant's pending
    /// extension, as if the extension were asked for now.
    pub fn still_allows(
        &self,
        r: &Request,
        who: Requester,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        match (r.window(), r.extension()) {
            (Some(w), Some(ext)) if r.state() == jit_proto::State::Active => {
                let current = (w.expires_at - w.approved_at).to_std().unwrap_or_default();
                self.plan_extension(
                    r.role.as_deref(),
                    who,
                    &r.target,
                    current,
                    Duration::from_secs(ext.secs),
                    now,
                )
                .map(|_| ())
            }
            _ => {
                let ask = Ask {
                    who,
                    target: &r.target,
                    role: r.role.as_deref(),
                    duration: Some(Duration::from_secs(r.duration_secs)),
                };
                self.decide(&ask, &r.reason, r.ticket.as_deref(), now)
                    .map(|_| ())
            }
        }
    }

    /// Everything `jitd explain` says about a request, without refusing it.
    pub fn explain(&self, ask: &Ask, now: DateTime<Utc>) -> Explanation {
        let mut e = Explanation {
            user: ask.who.user.to_string(),
            target: describe_target(ask.target),
            at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            allowed: false,
            outcome: String::new(),
            role: None,
            roles: Vec::new(),
            approver_groups: Vec::new(),
            approvals_required: 0,
            self_approval: false,
            deny_ends: true,
            break_glass: false,
            automatic: None,
            auto_approve: Vec::new(),
            duration: String::new(),
            max_duration: String::new(),
        };
        if self.roles.is_empty() {
            let d = &self.defaults;
            e.max_duration = human(d.max_duration);
            match Self::duration(ask.duration, d.default_duration, d.max_duration, "") {
                Ok(dur) => {
                    e.allowed = true;
                    e.duration = human(dur);
                    e.approver_groups = d.approver_groups.clone();
                    e.approvals_required = 1;
                    e.outcome = format!(
                        "no roles are configured: the request waits for 1 approval from {}",
                        approvers_text(&d.approver_groups)
                    );
                }
                Err(r) => e.outcome = format!("refused: {}", r.message()),
            }
            return e;
        }
        let chosen = self.select(ask);
        let chosen_name = chosen.as_ref().ok().map(|r| r.name.clone());
        e.roles = self
            .roles
            .iter()
            .map(|r| {
                let why = if Some(&r.name) == chosen_name.as_ref() {
                    Ok(if ask.role.is_some() {
                        "chosen: asked for by name".to_string()
                    } else {
                        "chosen: the most specific role that covers the request".to_string()
                    })
                } else if let Err(why) = self.eligible(r, ask.who) {
                    Err(why)
                } else if r.covers(ask.target).is_none() {
                    Err(format!(
                        "does not cover {}: it grants {}",
                        e.target,
                        r.grants()
                    ))
                } else if ask.role.is_some() {
                    Err("covers the request, but another role was asked for by name".into())
                } else if r.break_glass {
                    Err(format!(
                        "break-glass: only used when asked for by name (--role {})",
                        r.name
                    ))
                } else {
                    Err(
                        "covers the request, but a more specific (or earlier listed) role wins"
                            .into(),
                    )
                };
                RoleVerdict {
                    name: r.name.clone(),
                    matches: why.is_ok(),
                    why: why.unwrap_or_else(|e| e),
                }
            })
            .collect();
        let role = match chosen {
            Ok(r) => r,
            Err(refusal) => {
                e.outcome = format!("refused: {}", refusal.message());
                return e;
            }
        };
        e.role = Some(role.name.clone());
        e.approver_groups = role.approver_groups.clone();
        e.approvals_required = role.approvals;
        e.self_approval = role.self_approval;
        e.deny_ends = role.deny_ends;
        e.break_glass = role.break_glass;
        e.max_duration = human(role.max_duration);
        let duration = match Self::duration(
            ask.duration,
            role.default_duration,
            role.max_duration,
            &format!(" for role {}", role.name),
        ) {
            Ok(d) => d,
            Err(r) => {
                e.outcome = format!("refused: {}", r.message());
                return e;
            }
        };
        e.duration = human(duration);
        e.allowed = true;
        e.auto_approve = role.rule_verdicts(ask.who, ask.target, duration, now);
        e.outcome = match role.route(ask.who, ask.target, duration, now) {
            Route::BreakGlass => format!(
                "break-glass: granted at once for {}, logged as critical and flagged for review",
                human(duration)
            ),
            Route::Rule(rule) => {
                let out = format!("approved at once by rule {rule} for {}", human(duration));
                e.automatic = Some(rule);
                out
            }
            Route::Approvers => format!(
                "waits for {} approval(s) from {}{}",
                role.approvals,
                approvers_text(&role.approver_groups),
                if role.self_approval {
                    " (the requester may approve their own)"
                } else {
                    ""
                }
            ),
        };
        e
    }

    /// Pairs of roles that cover the same thing for the same requesters (check-config warns).
    pub fn overlaps(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, a) in self.roles.iter().enumerate() {
            for b in &self.roles[i + 1..] {
                if a.break_glass || b.break_glass {
                    continue;
                }
                let shared_requester = a
                    .requester_groups
                    .iter()
                    .any(|g| b.requester_groups.contains(g))
                    || a.requester_users
                        .iter()
                        .any(|u| b.requester_users.contains(u));
                if !shared_requester {
                    continue;
                }
                let mut what: Vec<String> = a
                    .commands
                    .iter()
                    .filter(|p| b.commands.iter().any(|q| p.overlaps(q)))
                    .map(|p| p.to_string())
                    .collect();
                if a.ssh && b.ssh {
                    what.push("SSH login".into());
                }
                if !what.is_empty() {
                    out.push(format!(
                        "roles {} and {} both cover {} for the same requesters: the more specific wins, the first listed on a tie",
                        a.name,
                        b.name,
                        what.join(", ")
                    ));
                }
            }
        }
        out
    }
}

fn reason_required() -> Refusal {
    Refusal::Invalid("a reason is required: pass --reason \"why you need this\"".into())
}

pub fn approvers_text(groups: &[String]) -> String {
    if groups.is_empty() {
        "root".into()
    } else {
        format!("root or members of {}", groups.join(", "))
    }
}

#[cfg(test)]
mod tests;
