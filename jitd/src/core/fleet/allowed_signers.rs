//! OpenSSH allowed_signers: which keys may sign as which principal (ssh-keygen(1), ALLOWED SIGNERS).
