//! The SSRF guard for webhook URLs: which addresses a delivery may connect to, a resolver that
//! enforces it at connect time (so DNS rebinding cannot swap a checked name for an internal
//! address), and the URL check done when an endpoint is created.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// Why an address may not be a webhook target, or `None` when it may.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let reason = match o {
        [0, ..] => "unspecified (0.0.0.0/8)",
        [127, ..] => "loopback",
        [10, ..] => "private (10.0.0.0/8)",
        [172, b, ..] if (16..=31).contains(&b) => "private (172.16.0.0/12)",
        [192, 168, ..] => "private (192.168.0.0/16)",
        [169, 254, ..] => "link-local",
        [100, b, ..] if (64..=127).contains(&b) => "shared address space (100.64.0.0/10)",
        [192, 0, 0, _] => "IETF protocol assignments (192.0.0.0/24)",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation",
        [198, 18 | 19, ..] => "benchmarking (198.18.0.0/15)",
        [a, ..] if (224..=239).contains(&a) => "multicast",
        [a, ..] if a >= 240 => "reserved or broadcast",
        _ => return None,
    };
    Some(reason)
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    let s = ip.segments();
    // Addresses that embed an IPv4 address are judged by it: a translator, relay or dual
    // stack may deliver them to that IPv4 address.
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = ip.to_ipv4_mapped() {
        // ::ffff:a.b.c.d (IPv4-mapped).
        return v4_reason(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        // ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765 / 6145).
        return v4_reason(v4(s[6], s[7]));
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        // ::a.b.c.d (IPv4-compatible, deprecated by RFC 4291): nothing public uses it.
        return v4_reason(v4(s[6], s[7])).or(Some("IPv4-compatible (::/96)"));
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix, RFC 6052); 64:ff9b:1::/48 is for local
        // use only (RFC 8215), whatever it embeds.
        return v4_reason(v4(s[6], s[7])).or(if s[2..6] == [0, 0, 0, 0] {
            None
        } else {
            Some("NAT64 local-use (64:ff9b:1::/48)")
        });
    }
    if s[0] == 0x2002 {
        // 2002:aabb:ccdd::/48 (6to4, RFC 3056) is routed to a.b.c.d's network.
        return v4_reason(v4(s[1], s[2]));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        // 2001:0::/32 (Teredo, RFC 4380): server at s[2..4], client inverted at s[6..8].
        return v4_reason(v4(s[2], s[3]))
            .or_else(|| v4_reason(v4(!s[6], !s[7])))
            .map(|_| "Teredo (2001::/32) embedding a non-public IPv4 address");
    }
    let reason = match s[0] {
        x if x & 0xfe00 == 0xfc00 => "unique local (fc00::/7)",
        x if x & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        x if x & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        x if x & 0xff00 == 0xff00 => "multicast (ff00::/8)",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only (100::/64)",
        0x2001 if s[1] == 0x0db8 => "documentation (2001:db8::/32)",
        _ => return None,
    };
    Some(reason)
}

/// Resolves `host:port` and keeps only permitted addresses. The HTTP client connects to exactly
/// what this returns, so the check and the connection see the same address.
pub fn resolve_checked(netloc: &str, allow_private: bool) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
    if allow_private {
        return Ok(addrs);
    }
    let mut refused = None;
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| match forbidden_reason(a.ip()) {
            None => true,
            Some(why) => {
                refused.get_or_insert((a.ip(), why));
                false
            }
        })
        .collect();
    match (allowed.is_empty(), refused) {
        (true, Some((ip, why))) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refused to connect to {ip}: {why} address (set webhooks.allow_private_addresses to allow)"
            ),
        )),
        _ => Ok(allowed),
    }
}

/// The ureq resolver that applies [`resolve_checked`]. ureq's connector connects to exactly
/// the addresses it returns (no proxy is configured, so the target is always resolved here).
#[derive(Debug)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let netloc = match (uri.scheme(), uri.authority()) {
            (Some(scheme), Some(authority)) => DefaultResolver::host_and_port(scheme, authority),
            _ => None,
        }
        .ok_or_else(|| ureq::Error::BadUri("no host or port".into()))?;
        let mut out = self.empty();
        for addr in resolve_checked(&netloc, self.allow_private)? {
            // ureq keeps at most 16 addresses; the rest are dropped, as its own resolver does.
            if out.try_push(addr).is_err() {
                break;
            }
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

/// Longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Checks a webhook URL at creation time: absolute `https://` (or `http://` when `allow_http`),
/// a host, no credentials, no fragment, at most [`MAX_URL_LEN`] bytes. Addresses are checked
/// again at every delivery (names can change what they resolve to).
pub fn check_url(url: &str, allow_http: bool) -> Result<(), String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let u = url::Url::parse(url).map_err(|_| "is not a valid absolute URL".to_string())?;
    match u.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => return Err("must use https:// (webhooks.allow_http is off)".into()),
        _ => return Err("must be an https:// URL".into()),
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if u.fragment().is_some() {
        return Err("must not contain a #fragment".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(s: &str) -> bool {
        forbidden_reason(s.parse().unwrap()).is_some()
    }

    #[test]
    fn classifies_addresses() {
        for s in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(bad(s), "{s} must be refused");
        }
        for s in [
            "93.184.216.34",
            "172.15.0.1",
            "172.32.0.1",
            "100.63.0.1",
            "100.128.0.1",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!bad(s), "{s} must be allowed");
        }
    }

    #[test]
    fn classifies_ipv6_by_the_ipv4_address_it_embeds() {
        for s in [
            // IPv4-translated ::ffff:0:a.b.c.d (RFC 2765 / 6052 forms).
            "::ffff:0:127.0.0.1",
            "::ffff:0:10.0.0.1",
            "::ffff:0:169.254.169.254",
            "::ffff:0:192.168.0.1",
            "::ffff:0:7f00:1",
            // IPv4-compatible ::a.b.c.d (deprecated): refused whatever it embeds.
            "::127.0.0.1",
            "::10.0.0.1",
            "::169.254.169.254",
            "::8.8.8.8",
            // NAT64 64:ff9b::/96, and anything in the local-use 64:ff9b:1::/48.
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.1.2.3",
            "64:ff9b::192.168.1.1",
            "64:ff9b::100.64.0.1",
            "64:ff9b:1::808:808",
            // 6to4 2002:aabb:ccdd:: of a private, loopback or link-local IPv4.
            "2002:0a00:0001::1",
            "2002:c0a8:0101::",
            "2002:a9fe:a9fe::1",
            "2002:7f00:0001:ffff::1",
            // Teredo with a private server or client.
            "2001:0:0a00:0001::1",
            "2001:0:4136:e378:8000:63bf:f5ff:fffe",
        ] {
            let ip: IpAddr = s.parse().unwrap();
            let why = forbidden_reason(ip);
            assert!(why.is_some(), "{s} must be refused");
        }
        for s in [
            "::ffff:0:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "64:ff9b::93.184.216.34",
            "2002:0808:0808::1",
            "2002:5db8:d822::1",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        ] {
            assert!(!bad(s), "{s} must be allowed");
        }
        // The reason names what the embedded address is.
        assert_eq!(
            forbidden_reason("::ffff:0:127.0.0.1".parse().unwrap()),
            Some("loopback")
        );
        assert_eq!(
            forbidden_reason("64:ff9b::10.0.0.1".parse().unwrap()),
            Some("private (10.0.0.0/8)")
        );
        assert_eq!(
            forbidden_reason("2002:a9fe:a9fe::".parse().unwrap()),
            Some("link-local")
        );
    }

    #[test]
    fn resolver_refuses_loopback_literals() {
        let e = resolve_checked("127.0.0.1:9", false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("127.0.0.1"), "{e}");
        assert!(resolve_checked("[::1]:9", false).is_err());
        assert_eq!(resolve_checked("127.0.0.1:9", true).unwrap().len(), 1);
    }

    #[test]
    fn checks_urls() {
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("http://example.com/hook", false).is_err());
        assert!(check_url("http://example.com/hook", true).is_ok());
        assert!(check_url("ftp://example.com/", true).is_err());
        assert!(check_url("https://user:pw@example.com/", false).is_err());
        assert!(check_url("https://example.com/#x", false).is_err());
        assert!(check_url("not a url", true).is_err());
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(3000)), false).is_err());
    }
}
