//! `jitd review ID --comment TEXT`: an approver looks at a break-glass grant after the fact;
//! `jitd list --unreviewed` shows the ones nobody has looked at yet.

use jit_proto::{ErrorCode, Response};

use super::{shown, Failure, Service};
use crate::core::authz::{self, Actor};
use crate::core::events::EventKind;
use crate::core::lifecycle::By;
use crate::shell::audit::event_log::event_for;
use crate::shell::daemon::submission::MAX_REASON_BYTES;

impl Service {
    pub(super) fn review(
        &self,
        actor: &Actor,
        id: &str,
        comment: String,
    ) -> Result<Response, Failure> {
        let id = Self::parse_id(id)?;
        let comment = comment.trim().to_string();
        if comment.is_empty() || comment.len() > MAX_REASON_BYTES {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                format!("a review needs a comment of 1 to {MAX_REASON_BYTES} bytes: pass --comment \"what you found\""),
            ));
        }
        let by = By::user(&actor.name, actor.uid);
        let r = self.transition(&id, |r, now| {
            // Nobody reviews their own break-glass use.
            authz::may_decide(actor, r, false)?;
            r.review(&by, comment.clone(), now)?;
            let mut ev = event_for(
                EventKind::Reviewed,
                r,
                format!("{} reviewed the break-glass grant: {comment}", actor.name),
            );
            ev.approver = Some(actor.name.clone());
            Ok(Some(ev))
        })?;
        Ok(shown(&r))
    }
}
