//! Name resolution inside a namespace without DNS: `ip netns exec` shows a
//! process `/etc/netns/NAME/hosts` (and `resolv.conf`) in place of the
//! host's, so a test gives the proxy its own hosts file and a resolver that
//! answers nothing (127.0.0.1 inside the namespace).

use std::path::PathBuf;

use super::netns::Netns;

/// A hosts file for one namespace, removed on drop.
pub(crate) struct HostsFile(PathBuf);

impl HostsFile {
    /// Writes `hosts` (hosts(5) lines) for `ns`.
    pub(crate) fn new(ns: &Netns, hosts: &str) -> Self {
        let dir = PathBuf::from("/etc/netns").join(ns.name());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hosts"), hosts).unwrap();
        let resolv = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n";
        std::fs::write(dir.join("resolv.conf"), resolv).unwrap();
        Self(dir)
    }
}

impl Drop for HostsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
