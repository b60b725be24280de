//! Passes pam_jit made without a grant (a member of the exempt group, or `fail=open` with jitd
//! down) become records on the review backlog, with a `break_glass` or `fail_open` event:
//! reported by pam_jit at once when it can reach jitd, else read back from its log line
//! (`pam_log_import`). Both reports carry pam_jit's random key, so a pass heard of both ways
//! is recorded once.

use std::collections::HashSet;

use chrono::Duration;
use jit_proto::{GrantKind, PassKind, PassReport, Response, Target};

use super::{shown, Failure, Service};
use crate::core::authz::{self, Actor};
use crate::core::events::EventKind;
use crate::core::lifecycle::Submission;
use crate::core::model::{Pass, Request};
use crate::core::registry::Registry;
use crate::shell::audit::event_log::event_for;
use crate::shell::daemon::identity;

/// A pass as jitd heard of it.
pub struct HeardPass {
    pub report: PassReport,
    /// `pam_jit` or `journal`.
    pub heard_from: &'static str,
}

/// The keys of the passes on record (to recognise a pass heard of twice).
pub(super) fn known_keys(reg: &Registry) -> HashSet<String> {
    reg.iter()
        .filter_map(|r| r.break_glass.as_ref()?.pass.as_ref())
        .map(|p| p.key.clone())
        .collect()
}

impl Service {
    /// pam_jit's report of a pass. Only root (sudo, sshd) is heard: a user cannot put passes
    /// of others on the record.
    pub(super) fn passed(&self, actor: &Actor, report: PassReport) -> Result<Response, Failure> {
        authz::may_query_grants(actor)?;
        let r = self.record_pass(HeardPass {
            report,
            heard_from: "pam_jit",
        })?;
        Ok(match r {
            Some(r) => shown(&r),
            None => Response::SessionRegistered {
                grant_id: None,
                tlog_conf: None,
            },
        })
    }

    /// Records a pass unless it is on record already; returns the new record. A pass has
    /// happened whatever jitd thinks of it, so it is stored even if the audit log fails (the
    /// failure is reported to the other sinks).
    pub fn record_pass(&self, heard: HeardPass) -> Result<Option<Request>, Failure> {
        let HeardPass { report, heard_from } = heard;
        let turn = self.registry.turn();
        {
            let keys = self.pass_keys.lock().unwrap_or_else(|e| e.into_inner());
            if keys.contains(&report.key) {
                return Ok(None);
            }
        }
        let PassReport {
            pam,
            how,
            key,
            command,
        } = report;
        let holder = Self::grant_holder(&pam).to_string();
        let uid = identity::uid_of(&holder).unwrap_or(u32::MAX);
        let target = match pam.kind {
            GrantKind::Ssh => Target::Ssh,
            GrantKind::Sudo => Target::Sudo {
                command: command.clone().unwrap_or_default(),
            },
        };
        let what = match (&pam.kind, &command) {
            (GrantKind::Ssh, _) => "an SSH login".to_string(),
            (GrantKind::Sudo, Some(argv)) => {
                format!("sudo {}", crate::core::model::display_command(argv))
            }
            (GrantKind::Sudo, None) => "sudo (command not known: read back from the log)".into(),
        };
        let (kind, why) = match how {
            PassKind::Exempt => (
                EventKind::BreakGlass,
                "member of the exempt (break-glass) group",
            ),
            PassKind::FailOpen => (EventKind::FailOpen, "fail=open while jitd was unreachable"),
        };
        let now = self.clock.now();
        let id = turn.view(|reg| self.new_id(reg))?;
        let mut r = Request::passed(
            id,
            Submission {
                uid,
                user: holder.clone(),
                target,
                duration: Duration::zero(),
                reason: format!("passed pam_jit without a grant: {why}"),
                ticket: None,
                role: None,
                approvals_required: 1,
                approver_groups: self.policy().all_approver_groups(),
                record: crate::core::recording::Record::Off,
            },
            Pass {
                key: key.clone(),
                how,
                service: pam.service.clone(),
                rhost: pam.rhost.clone(),
                tty: pam.tty.clone(),
                heard_from: heard_from.into(),
            },
            now,
        );
        let mut ev = event_for(
            kind,
            &r,
            format!(
                "{}: {holder} passed pam_jit ({}) for {what} without a grant; review it with `jitd review {}`",
                if kind == EventKind::BreakGlass { "BREAK-GLASS" } else { "FAIL-OPEN" },
                pam.service,
                r.id
            ),
        );
        ev.extra.push(("SERVICE", pam.service.clone()));
        if let Some(rhost) = &pam.rhost {
            ev.extra.push(("RHOST", rhost.clone()));
        }
        ev.extra.push(("PASS_KEY", key.clone()));
        ev.extra.push(("HEARD_FROM", heard_from.into()));
        let audited = self.log_ahead(&mut ev, &mut r);
        let logged = Some(r.audit_seq).filter(|&seq| seq != 0);
        turn.write(|| self.persist(&r, logged))?;
        turn.put(r.clone());
        self.pass_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        drop(turn);
        self.metrics.count_outcome(jit_proto::State::Passed);
        if let Err(e) = audited {
            self.events.publish(&ev);
            let mut err = event_for(
                EventKind::InternalError,
                &r,
                format!("cannot write the audit log: {e}"),
            );
            err.message
                .push_str(" (a pass without a grant was recorded in the state only)");
            self.events.publish(&err);
        } else {
            self.events.publish(&ev);
        }
        Ok(Some(r))
    }
}
