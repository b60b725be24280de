//! OpenSSH SSHSIG signatures (PROTOCOL.sshsig): parsing the armour and verifying with ring.
