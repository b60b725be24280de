//! The approver's signature of a fleet approval: through ssh-agent or with a key file (ssh-keygen -Y sign).
