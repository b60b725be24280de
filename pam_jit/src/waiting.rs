//! What a login that waits for approval needs besides jitd: a clock, a pause, and an eye on the
//! client's connection, so that a client that goes away ends the wait (and its request) at
//! once instead of leaving a request for an approver to grant to nobody.
//!
//! sshd runs the account phase in its privileged monitor (public-key logins) or in the
//! process it forks for PAM (keyboard-interactive); both hold the client's TCP socket, whose
//! peer is PAM_RHOST. The module only polls it for a hangup: it never reads or writes it,
//! so sshd's stream is untouched.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

pub trait Waiting {
    /// Starts watching the connection of the client at `rhost`; false when there is none to
    /// watch (then only jitd, seeing sshd's process end, notices a client that left).
    fn watch_client(&self, rhost: Option<&str>) -> bool;
    /// Time passed since the hook started.
    fn elapsed(&self) -> Duration;
    /// Waits `pause`, returning early if the watched client hangs up.
    fn pause(&self, pause: Duration);
    /// Whether the watched client has hung up (or its connection failed).
    fn client_gone(&self) -> bool;
}

/// The real [`Waiting`], inside sshd.
pub struct ClientWatch {
    started: Instant,
    socket: Cell<Option<RawFd>>,
}

impl ClientWatch {
    pub fn new() -> ClientWatch {
        ClientWatch {
            started: Instant::now(),
            socket: Cell::new(None),
        }
    }

    /// Polls the watched socket for a hangup for at most `timeout_ms`; `None` when nothing is
    /// watched or the descriptor is no longer valid.
    fn poll_hangup(&self, timeout_ms: libc::c_int) -> Option<bool> {
        let fd = self.socket.get()?;
        let mut pfd = libc::pollfd {
            fd,
            // POLLIN is not asked for: data from the client (sshd's to read) must not wake us.
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one pollfd we own, count 1; poll only writes `revents`. The descriptor is
        // sshd's, open for the whole hook (sshd is blocked in this call), and is never read,
        // written or closed here.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc <= 0 {
            // Timeout, or EINTR (a signal for sshd): no news.
            return Some(false);
        }
        if pfd.revents & libc::POLLNVAL != 0 {
            self.socket.set(None);
            return None;
        }
        Some(pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0)
    }
}

impl Default for ClientWatch {
    fn default() -> Self {
        ClientWatch::new()
    }
}

impl Waiting for ClientWatch {
    fn watch_client(&self, rhost: Option<&str>) -> bool {
        self.socket.set(client_socket(rhost));
        self.socket.get().is_some()
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn pause(&self, pause: Duration) {
        let ms = libc::c_int::try_from(pause.as_millis()).unwrap_or(libc::c_int::MAX);
        if self.poll_hangup(ms).is_none() {
            std::thread::sleep(pause);
        }
    }

    fn client_gone(&self) -> bool {
        self.poll_hangup(0).unwrap_or(false)
    }
}

/// Descriptors looked through at most: sshd's monitor holds about a dozen.
const MAX_FDS: usize = 1024;

/// The connected TCP socket whose peer is `rhost`. When `rhost` is not an address (sshd's
/// `UseDNS yes` makes it a host name), the one connected TCP socket of the process, if there
/// is exactly one; otherwise none (another module's connection is never taken for it).
fn client_socket(rhost: Option<&str>) -> Option<RawFd> {
    let want = rhost.and_then(|h| h.parse::<IpAddr>().ok()).map(unmapped);
    let fds = std::fs::read_dir("/proc/self/fd").ok()?;
    let tcp: Vec<(RawFd, IpAddr)> = fds
        .take(MAX_FDS)
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
        .filter_map(|fd| Some((fd, tcp_peer(fd)?)))
        .collect();
    let mut candidates = tcp
        .iter()
        .filter(|(_, peer)| want.is_none_or(|w| *peer == w));
    match (candidates.next(), candidates.next()) {
        (Some((fd, _)), None) => Some(*fd),
        _ => None,
    }
}

/// The peer address of `fd` if it is a connected stream socket of the internet families.
fn tcp_peer(fd: RawFd) -> Option<IpAddr> {
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `kind`, an int we own; on a
    // descriptor that is not a socket it fails with ENOTSOCK and writes nothing.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || kind != libc::SOCK_STREAM {
        return None;
    }
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut alen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getpeername writes at most `alen` bytes into `addr`, which is large enough for
    // any address family.
    let rc = unsafe {
        libc::getpeername(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut alen,
        )
    };
    if rc != 0 {
        return None;
    }
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // and aligned enough for.
            let a =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(unmapped(IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr))))
        }
        _ => None,
    }
}

/// An IPv4 client of an IPv6 socket is `::ffff:a.b.c.d` there; sshd names it `a.b.c.d`.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    /// The accepted end of a TCP connection stands for sshd's client socket; the test's
    /// client end is the ssh client.
    #[test]
    fn the_client_socket_is_found_by_its_peer_and_its_hangup_is_seen() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let found = client_socket(Some("127.0.0.1"));
        // The test's client end has the listener's address as its peer: also 127.0.0.1. So
        // two sockets qualify, and none is chosen rather than the wrong one.
        assert_eq!(found, None);
        let watch = ClientWatch::new();
        watch.socket.set(Some(server.as_raw_fd()));
        assert!(!watch.client_gone());
        // Data from the client is sshd's business: it neither wakes a pause nor counts as gone.
        (&client).write_all(b"SSH-2.0-x\r\n").unwrap();
        let before = Instant::now();
        watch.pause(Duration::from_millis(100));
        assert!(before.elapsed() >= Duration::from_millis(90));
        assert!(!watch.client_gone());
        drop(client);
        let before = Instant::now();
        watch.pause(Duration::from_secs(10));
        assert!(
            before.elapsed() < Duration::from_secs(5),
            "a hangup ends the pause"
        );
        assert!(watch.client_gone());
    }

    /// A connection to 127.0.0.93 (still loopback) has that address as its peer, which no
    /// other socket of this test process has: it is found by it, and only it.
    #[test]
    fn the_socket_whose_peer_is_rhost_is_the_one_watched() {
        let listener = TcpListener::bind("127.0.0.93:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_theirs, _) = listener.accept().unwrap();
        assert_eq!(client_socket(Some("127.0.0.93")), Some(ours.as_raw_fd()));
        let watch = ClientWatch::new();
        assert!(watch.watch_client(Some("127.0.0.93")));
        assert!(!watch.client_gone());
    }

    #[test]
    fn no_address_and_many_sockets_watch_nothing() {
        assert_eq!(client_socket(Some("192.0.2.77")), None);
        let watch = ClientWatch::new();
        assert!(!watch.client_gone());
        let before = Instant::now();
        watch.pause(Duration::from_millis(20));
        assert!(before.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn an_ipv4_client_of_an_ipv6_socket_is_named_as_sshd_names_it() {
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert_eq!(unmapped(mapped), "10.0.0.2".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(unmapped(v6), v6);
    }
}
