//! Readiness for systemd (`Type=notify`): one datagram `READY=1` to $NOTIFY_SOCKET, if set.

use std::os::unix::net::UnixDatagram;

pub fn ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let sent = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| sock.send_to_addr(b"READY=1", &addr))
    } else {
        sock.send_to(b"READY=1", &path)
    };
    if let Err(e) = sent {
        eprintln!("jitd: cannot notify systemd of readiness: {e}");
    }
}
