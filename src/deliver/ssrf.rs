//! The SSRF guard: webhooks go only to global addresses, or to ranges the operator allowed
//! (`SEISMO_WEBHOOK_ALLOW_CIDRS`).
//!
//! The idea is svix-webhooks' (`webhook_http_client.rs`): a name is resolved **once**, by a
//! resolver that drops every address the guard refuses, and the HTTP client connects only to
//! the addresses that resolver returned. A name that answers with a public address when
//! checked and a private one when connected (DNS rebinding) cannot slip through, because
//! there is no second lookup. An IP literal in the URL is never resolved, so it is checked
//! on its own before the request ([`Guard::check_url`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    #[error("{0:?} is not a CIDR like 10.0.0.0/8")]
    BadCidr(String),
    #[error("the URL must be http or https with a host")]
    NotHttp,
    #[error("{0} is not a global address and is not in SEISMO_WEBHOOK_ALLOW_CIDRS")]
    Refused(IpAddr),
    #[error("{0} resolves to no address webhooks may reach")]
    NothingAllowed(String),
}

/// Which addresses webhooks may reach.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Vec<IpNet>,
}

impl Guard {
    pub fn new(cidrs: &[String]) -> Result<Guard, SsrfError> {
        let allowed = cidrs
            .iter()
            .map(|c| c.parse().map_err(|_| SsrfError::BadCidr(c.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Guard { allowed })
    }

    /// A global address, or one inside an allowed range.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed.iter().any(|net| net.contains(&ip)) || is_global(ip)
    }

    /// The scheme, and the host when it is an IP literal (a name is checked when resolved).
    pub fn check_url(&self, url: &Url) -> Result<(), SsrfError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SsrfError::NotHttp);
        }
        let ip = match url.host() {
            None => return Err(SsrfError::NotHttp),
            Some(Host::Domain(_)) => return Ok(()),
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        };
        match self.permits(ip) {
            true => Ok(()),
            false => Err(SsrfError::Refused(ip)),
        }
    }

    /// Resolves `host` once and keeps the addresses this guard permits.
    pub async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, SsrfError> {
        let found = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|_| SsrfError::NothingAllowed(host.to_owned()))?;
        let kept: Vec<SocketAddr> = found.filter(|a| self.permits(a.ip())).collect();
        if kept.is_empty() {
            return Err(SsrfError::NothingAllowed(host.to_owned()));
        }
        Ok(kept)
    }

    /// A name that resolves only to refused addresses is refused (with the first); one that
    /// resolves to an allowed address, or not at all yet, passes (sends check again).
    pub async fn check_name(&self, host: &str) -> Result<(), SsrfError> {
        let Ok(found) = tokio::net::lookup_host((host, 0)).await else {
            return Ok(());
        };
        let found: Vec<IpAddr> = found.map(|a| a.ip()).collect();
        match found.iter().find(|ip| !self.permits(**ip)) {
            Some(refused) if !found.iter().any(|ip| self.permits(*ip)) => {
                Err(SsrfError::Refused(*refused))
            }
            _ => Ok(()),
        }
    }

    /// The resolver to give the HTTP client: every name it connects to goes through here.
    pub fn resolver(self: &Arc<Self>) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver(self.clone()))
    }
}

/// The guard as reqwest's DNS resolver.
pub struct GuardedResolver(Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let addrs = guard.resolve(name.as_str()).await?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Reachable on the public internet: none of the special-purpose ranges of RFC 6890 and
/// its successors (private, loopback, link-local, CGNAT, documentation, benchmarking,
/// multicast, reserved, NAT64/6to4/Teredo translations that could lead back inside).
pub fn is_global(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let in_prefix = |value: u16, mask: u16| segments[0] & mask == value;
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || in_prefix(0xfc00, 0xfe00) // unique local
        || in_prefix(0xfe80, 0xffc0) // link-local
        || in_prefix(0xfec0, 0xffc0) // site-local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x2001 && segments[1] == 0) // Teredo
        || segments[0] == 0x2002 // 6to4
        || (segments[0] == 0x0064 && segments[1] == 0xff9b) // NAT64
        || segments[..6] == [0; 6]) // IPv4-compatible and other ::/96
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn non_global_addresses_are_refused() {
        let guard = Guard::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "::127.0.0.1",
        ] {
            assert!(!guard.permits(ip(refused)), "{refused} must be refused");
        }
        for allowed in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(guard.permits(ip(allowed)), "{allowed} is global");
        }
    }

    #[test]
    fn the_allow_list_opens_exactly_its_ranges() {
        let guard = Guard::new(&["127.0.0.0/8".into(), "10.1.0.0/16".into()]).expect("valid");
        assert!(guard.permits(ip("127.0.0.1")));
        assert!(guard.permits(ip("::ffff:127.0.0.1")));
        assert!(guard.permits(ip("10.1.200.1")));
        assert!(!guard.permits(ip("10.2.0.1")));
        assert!(!guard.permits(ip("::1")));
        assert!(Guard::new(&["10.0.0.0/40".into()]).is_err());
    }

    #[test]
    fn urls_are_checked_for_scheme_and_literal_hosts() {
        let guard = Guard::default();
        let url = |text: &str| Url::parse(text).expect("a URL");
        assert_eq!(
            guard.check_url(&url("http://127.0.0.1:9/hook")),
            Err(SsrfError::Refused(ip("127.0.0.1")))
        );
        assert!(guard.check_url(&url("http://[::1]/")).is_err());
        assert_eq!(
            guard.check_url(&url("ftp://example.com/")),
            Err(SsrfError::NotHttp)
        );
        assert!(guard.check_url(&url("https://hooks.example.com/x")).is_ok());
        assert!(guard.check_url(&url("https://8.8.8.8/x")).is_ok());
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_inside_is_refused() {
        let guard = Guard::default();
        assert!(matches!(
            guard.resolve("localhost").await,
            Err(SsrfError::NothingAllowed(_))
        ));
        let open = Guard::new(&["127.0.0.0/8".into(), "::1/128".into()]).expect("valid");
        assert!(!open.resolve("localhost").await.expect("allowed").is_empty());
    }
}
