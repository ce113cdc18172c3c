//! The names this machine is reached by on the local network, for its own server certificate.

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// This machine's host name as the kernel has it (e.g. "doorpi"), or "localhost" when it has none.
pub fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length; gethostname NUL-terminates within it
    // (the last byte stays 0 even if the name were truncated).
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len() - 1) };
    let name = match result {
        0 => CStr::from_bytes_until_nul(&buffer).ok().and_then(|name| name.to_str().ok()).unwrap_or(""),
        _ => "",
    };
    if name.is_empty() { "localhost".to_owned() } else { name.to_owned() }
}

/// What a browser on the local network may type to reach this machine: its host name, the
/// host name under `.local` (mDNS, which Raspberry Pi OS answers through Avahi), `localhost`
/// and every address of its interfaces (IPv6 link-local ones aside: browsers cannot use them).
pub fn machine_names() -> Vec<String> {
    let host = host_name();
    let short = host.split('.').next().unwrap_or(&host).to_owned();
    let mut names = vec![short.clone()];
    if host != short {
        names.push(host.clone());
    }
    if short != "localhost" {
        names.push(format!("{short}.local"));
        names.push("localhost".to_owned());
    }
    for address in interface_addresses() {
        let text = address.to_string();
        if !names.contains(&text) {
            names.push(text);
        }
    }
    names
}

/// The addresses of this machine's interfaces that are up, loopback ones included.
fn interface_addresses() -> Vec<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    }
    let mut addresses = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs made, alive until freeifaddrs.
        let node = unsafe { &*entry };
        entry = node.ifa_next;
        if node.ifa_addr.is_null() || node.ifa_flags & libc::IFF_UP as u32 == 0 {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family says which struct it is.
        let address = unsafe {
            match i32::from((*node.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let v4 = &*node.ifa_addr.cast::<libc::sockaddr_in>();
                    Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
                }
                libc::AF_INET6 => {
                    let v6 = &*node.ifa_addr.cast::<libc::sockaddr_in6>();
                    Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
                }
                _ => None,
            }
        };
        if let Some(address) = address.filter(|address| !is_link_local_v6(address))
            && !addresses.contains(&address)
        {
            addresses.push(address);
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    addresses
}

fn is_link_local_v6(address: &IpAddr) -> bool {
    matches!(address, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_cover_the_host_localhost_and_loopback() {
        let names = machine_names();
        let host = host_name();
        assert!(names.contains(&host.split('.').next().unwrap().to_owned()), "{names:?}");
        assert!(names.iter().any(|name| name == "localhost"), "{names:?}");
        assert!(names.iter().any(|name| name == "127.0.0.1"), "{names:?}");
        assert!(!names.iter().any(|name| name.starts_with("fe80")), "no link-local addresses: {names:?}");
    }
}
