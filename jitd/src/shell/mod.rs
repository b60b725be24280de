//! The effects shell: everything that touches the socket, disk, sudoers, processes and logs.
