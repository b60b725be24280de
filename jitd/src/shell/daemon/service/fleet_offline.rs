//! `fleet_offline = "end"`: while this host cannot hear the fleet store it cannot hear
//! revocations either. A role that wants its fleet grants to end rather than outlast a
//! revocation nobody could deliver has them ended here once the store has been away for
//! `[fleet] offline_grace` (`core::policy::FleetOffline`). Other roles' grants, and local
//! ones, go on until their windows end.

use jit_proto::State;

use super::Service;
use crate::core::model::GrantId;
use crate::core::policy::FleetOffline;

impl Service {
    /// Called by the scheduler (every second at least): cheap unless the store is away and a
    /// role ends its grants then.
    pub(super) fn end_fleet_grants_while_offline(&self) {
        let (Some(link), Some(fleet)) = (self.fleet_link(), self.config.fleet.as_ref()) else {
            return;
        };
        let grace = fleet.offline_grace();
        let Some(away) = link.offline_for().filter(|away| *away >= grace) else {
            return;
        };
        let policy = self.policy();
        let ending: Vec<&str> = policy
            .roles
            .iter()
            .filter(|r| r.fleet_offline == FleetOffline::End)
            .map(|r| r.name.as_str())
            .collect();
        if ending.is_empty() {
            return;
        }
        let due: Vec<(GrantId, String)> = self
            .read_registry()
            .by_deadline()
            .map(|(_, r)| r)
            .filter(|r| r.fleet.is_some() && r.state() == State::Active)
            .filter_map(|r| {
                let role = r.role.as_deref()?;
                ending
                    .contains(&role)
                    .then(|| (r.id.clone(), role.to_string()))
            })
            .collect();
        for (id, role) in due {
            let why = format!(
                "the fleet store has not been heard from for {} (offline_grace {}), and role {role} ends its fleet grants then (fleet_offline = \"end\")",
                jit_proto::duration::format(std::time::Duration::from_secs(away.as_secs())),
                jit_proto::duration::format(grace)
            );
            self.fleet_end_here(link, &id, None, &why);
        }
    }
}
