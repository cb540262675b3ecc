//! The egress policy: where outbound calls whose destination a procedure or an API caller chose may go
//! (`http_request`, registered agents' URLs, MCP servers a procedure declares, secrets endpoints a procedure moves).
//! Loopback, link-local (cloud metadata included), private, CGNAT and unspecified addresses, their IPv4-mapped IPv6
//! forms, and ckp's own listen address are refused unless the server's `egress_allow` setting lists them; ckp's own
//! address is refused whatever the list. Destinations the operator configured (the LLM gateway, the secrets
//! providers' server settings, MCP servers of the server's settings, `ckp run --agent`) do not pass through here.
//!
//! One [`Egress`] is checked at three points, so that no path around it exists:
//! * the client's DNS resolver ([`Egress::client`]): every address a host name resolves to is checked and refused
//!   ones are dropped before connecting, for the first request and for every redirect (a name resolving to
//!   127.0.0.1 is refused; a name cannot be re-pointed between a check and the connection);
//! * the client's redirect policy: every hop's URL, since IP-literal hosts never reach a resolver;
//! * [`Egress::check_url`] before the first request, for the same reason.
//!
//! The resolver does not see the port. So `egress_allow` entries with a port are enforced by the URL checks:
//! `IP:port` opens that address only when a URL names it by its address, `host:port` opens that name on that port
//! (another port of a listed name is refused). A host name on ckp's own port is resolved by [`Egress::check_url`]
//! and refused when it reaches ckp; a redirect to one is not followed (the redirect policy cannot wait for DNS).
//! Cost: a few comparisons per request, and the filter per DNS resolution; nothing when connections are reused.
//!
//! With an HTTP proxy in the environment (`HTTP_PROXY`, ...) the proxy resolves host names: list the proxy's own
//! address when it is private; IP-literal URLs are still checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use ckp_core::procedure::ErrorKind;
use ckp_engine::error::StepError;

/// The setting that opens destinations, as messages name it.
pub const SETTING: &str = "egress_allow (CKP_EGRESS_ALLOW)";

/// How many redirects a guarded client follows.
const MAX_REDIRECTS: usize = 10;

/// The policy; clones share the allow-list and ckp's own address.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    allow: Vec<Allow>,
    /// Where ckp listens, once it does.
    own: OnceLock<SocketAddr>,
}

/// One `egress_allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allow {
    /// A CIDR block or one address, every port.
    Net(ipnet::IpNet),
    /// One address on one port, when a URL names it by that address.
    Addr(IpAddr, u16),
    /// A host name (lower case), every port or one.
    Host(String, Option<u16>),
}

impl Allow {
    fn parse(entry: &str) -> Result<Allow, String> {
        let e = entry.trim();
        if e.is_empty() {
            return Err("an egress_allow entry is empty".into());
        }
        if e.contains('/') {
            return e.parse().map(Allow::Net).map_err(|_| format!("{e:?} is not a CIDR block (10.0.0.0/8, fd00::/8)"));
        }
        if let Ok(ip) = e.parse::<IpAddr>() {
            return Ok(Allow::Net(ipnet::IpNet::from(canonical(ip))));
        }
        if let Ok(addr) = e.parse::<SocketAddr>() {
            return Ok(Allow::Addr(canonical(addr.ip()), addr.port()));
        }
        let (host, port) = match e.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| format!("{e:?}: the port is not a number"))?)),
            None => (e, None),
        };
        let valid = !host.is_empty()
            && host.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !valid {
            return Err(format!("{e:?} is not a CIDR block, an address, or a host name (with an optional :port)"));
        }
        Ok(Allow::Host(host.to_ascii_lowercase(), port))
    }
}

/// A destination the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Refused {
    /// What was asked for: `host:port`, with the address a name resolved to.
    pub destination: String,
    /// The destination is ckp itself (never opened).
    pub own: bool,
}

impl Refused {
    fn message(&self) -> String {
        match self.own {
            true => format!("egress to {} is refused: it is ckp's own address", self.destination),
            false => format!(
                "egress to {} is refused: loopback, link-local, private and unspecified addresses are closed to \
                 procedures unless the server's setting {SETTING} lists them",
                self.destination
            ),
        }
    }

    /// The step error of a refused call: not transient, so neither retried nor counted against an agent's health.
    pub fn step_error(&self, what: &str) -> StepError {
        let mut e = StepError::new(ErrorKind::ValidationError, format!("{what}: {self}"));
        e.code = Some(ckp_engine::error::REFUSED.into());
        e
    }
}

/// The policy's refusal inside a client's error, if that is why it failed.
pub fn refusal(e: &reqwest::Error) -> Option<&Refused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(r);
        }
        cause = c.source();
    }
    None
}

impl Egress {
    /// The policy with `allow` (the `egress_allow` entries: CIDR blocks, addresses, host names, each with an
    /// optional `:port`).
    pub fn new(allow: &[String]) -> Result<Egress, String> {
        let allow = allow.iter().map(|e| Allow::parse(e)).collect::<Result<_, _>>()?;
        Ok(Egress { inner: Arc::new(Inner { allow, own: OnceLock::new() }) })
    }

    /// Records where ckp listens (refused whatever the allow-list); the first call wins.
    pub fn set_own_address(&self, addr: SocketAddr) {
        let _ = self.inner.own.set(addr);
    }

    /// Whether `ip` may be reached: `name` is the host name it was resolved from (None: the URL named the address),
    /// `port` the destination's port (None: unknown, in the resolver).
    fn permits(&self, name: Option<&str>, ip: IpAddr, port: Option<u16>) -> Result<(), Refused> {
        let ip = canonical(ip);
        let destination = || {
            let at = match port {
                Some(p) => SocketAddr::new(ip, p).to_string(),
                None => ip.to_string(),
            };
            match name {
                Some(n) => format!("{n} ({at})"),
                None => at,
            }
        };
        if let Some(port) = port
            && self.is_own(ip, port)
        {
            return Err(Refused { destination: destination(), own: true });
        }
        if !closed(ip) {
            return Ok(());
        }
        let listed = self.inner.allow.iter().any(|a| match a {
            Allow::Net(net) => net.contains(&ip),
            Allow::Addr(addr, p) => name.is_none() && *addr == ip && port == Some(*p),
            Allow::Host(h, p) => {
                name.is_some_and(|n| n.eq_ignore_ascii_case(h)) && (p.is_none() || port.is_none() || *p == port)
            }
        });
        match listed {
            true => Ok(()),
            false => Err(Refused { destination: destination(), own: false }),
        }
    }

    /// Whether `ip:port` is where ckp listens (with a wildcard bind: any address of this machine on that port).
    fn is_own(&self, ip: IpAddr, port: u16) -> bool {
        let Some(own) = self.inner.own.get() else { return false };
        if own.port() != port {
            return false;
        }
        match own.ip().is_unspecified() {
            // An address is this machine's when a socket can be bound to it.
            true => ip.is_unspecified() || ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok(),
            false => ip == canonical(own.ip()) || ip.is_unspecified(),
        }
    }

    /// The checks on a URL that need no DNS: an IP-literal host in full; a host name listed only with other ports
    /// is refused. `Ok(Some(name))` when the host is a name on ckp's own port (it must be resolved to be judged).
    fn check_parsed<'u>(&self, url: &'u reqwest::Url) -> Result<Option<&'u str>, Refused> {
        let Some(port) = url.port_or_known_default() else { return Ok(None) };
        let Some(name) = url.host_str() else { return Ok(None) };
        if let Some(ip) = literal(name) {
            return self.permits(None, ip, Some(port)).map(|()| None);
        }
        let ports: Vec<Option<u16>> = self
            .inner
            .allow
            .iter()
            .filter_map(|a| match a {
                Allow::Host(h, p) if h.eq_ignore_ascii_case(name) => Some(*p),
                _ => None,
            })
            .collect();
        if !ports.is_empty() && !ports.iter().any(|p| p.is_none_or(|p| p == port)) {
            return Err(Refused { destination: format!("{name}:{port}"), own: false });
        }
        Ok(self.inner.own.get().is_some_and(|own| own.port() == port).then_some(name))
    }

    /// Checks `url` before a request (its redirects are checked by the client): an IP-literal host, a listed
    /// name's port, and a name on ckp's own port (resolved here). A URL that does not parse passes: the request
    /// fails on its own.
    pub async fn check_url(&self, url: &str) -> Result<(), Refused> {
        let Ok(parsed) = reqwest::Url::parse(url) else { return Ok(()) };
        let Some(name) = self.check_parsed(&parsed)? else { return Ok(()) };
        let port = parsed.port_or_known_default().unwrap_or_default();
        if let Ok(addrs) = tokio::net::lookup_host((name, port)).await {
            for a in addrs {
                if self.is_own(canonical(a.ip()), port) {
                    return Err(Refused { destination: format!("{name} ({a})"), own: true });
                }
            }
        }
        Ok(())
    }

    /// [`Egress::check_url`], and a host name resolved now as the client's resolver would: refused when none of its
    /// addresses may be reached. For a one-off check (registering an agent), not per request. A name that does not
    /// resolve passes (the call fails later on its own).
    pub async fn check_destination(&self, url: &str) -> Result<(), Refused> {
        self.check_url(url).await?;
        let Ok(parsed) = reqwest::Url::parse(url) else { return Ok(()) };
        match parsed.host_str().filter(|h| literal(h).is_none()) {
            Some(name) => match self.resolve(name).await {
                Err(Resolution::Refused(r)) => Err(r),
                Ok(_) | Err(Resolution::Failed(_)) => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// The addresses of `name` this policy lets a client connect to (any port).
    async fn resolve(&self, name: &str) -> Result<Vec<SocketAddr>, Resolution> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, 0)).await.map_err(Resolution::Failed)?.collect();
        let mut first_refusal = None;
        let kept: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match self.permits(Some(name), a.ip(), None) {
                Ok(()) => true,
                Err(r) => {
                    first_refusal.get_or_insert(r);
                    false
                }
            })
            .collect();
        match (kept.is_empty(), first_refusal) {
            (true, Some(r)) => Err(Resolution::Refused(r)),
            _ => Ok(kept),
        }
    }

    /// A client builder whose resolver and redirect policy apply this policy (add timeouts, then build).
    pub fn client(&self) -> reqwest::ClientBuilder {
        let redirects = self.clone();
        reqwest::Client::builder().dns_resolver(Arc::new(Resolver(self.clone()))).redirect(
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                }
                match redirects.check_parsed(attempt.url()) {
                    Ok(None) => attempt.follow(),
                    Ok(Some(name)) => {
                        let port = attempt.url().port_or_known_default().unwrap_or_default();
                        let refused =
                            Refused { destination: format!("{name}:{port} (a redirect to ckp's port)"), own: true };
                        attempt.error(refused)
                    }
                    Err(r) => attempt.error(r),
                }
            }),
        )
    }
}

/// Why a name gave no address to connect to.
#[derive(Debug)]
enum Resolution {
    Failed(std::io::Error),
    Refused(Refused),
}

/// The guarded clients' resolver: the system's, then the policy.
struct Resolver(Egress);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.0.clone();
        Box::pin(async move {
            match egress.resolve(name.as_str()).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(Resolution::Failed(e)) => Err(e.into()),
                Err(Resolution::Refused(r)) => Err(r.into()),
            }
        })
    }
}

/// The address of a URL's host when it is one (`[v6]` with its brackets, as URLs write it).
fn literal(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse().ok()
}

/// The IPv4 address behind an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`) or NAT64
/// (`64:ff9b::a.b.c.d`) IPv6 address, so each is judged as the address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let embedded = Ipv4Addr::from(u32::from(s[6]) << 16 | u32::from(s[7]));
    match s[..6] {
        // `::` and `::1` stay themselves: they are IPv6's unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0] if !(v6.is_unspecified() || v6.is_loopback()) => IpAddr::V4(embedded),
        [0x64, 0xff9b, 0, 0, 0, 0] => IpAddr::V4(embedded),
        _ => ip,
    }
}

/// Whether `ip` (canonical) is in a range closed by default.
fn closed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 0 // 0.0.0.0/8, "this network"; 0.0.0.0 reaches the local machine
                || a == 127
                || a == 10
                || (a == 169 && b == 254)
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168)
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6 == Ipv6Addr::UNSPECIFIED
                || v6 == Ipv6Addr::LOCALHOST
                || (first & 0xffc0) == 0xfe80
                || (first & 0xfe00) == 0xfc00
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> Egress {
        Egress::new(&allow.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).expect("valid entries")
    }

    #[test]
    fn closed_ranges_in_every_form_are_refused_by_default() {
        let p = policy(&[]);
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "fc00::1",
            "fd12::1",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            assert!(p.permits(None, ip, Some(80)).is_err(), "{ip} is refused");
        }
        for ip in ["93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "192.169.0.1"] {
            let ip: IpAddr = ip.parse().expect("address");
            assert_eq!(p.permits(None, ip, Some(80)), Ok(()), "{ip} is open");
        }
    }

    #[test]
    fn the_allow_list_opens_exactly_what_it_lists() {
        let p = policy(&["10.1.0.0/16", "127.0.0.1:9000", "vault.internal:8200", "LocalHost"]);
        let ip = |s: &str| s.parse::<IpAddr>().expect("address");
        assert_eq!(p.permits(None, ip("10.1.2.3"), Some(5)), Ok(()));
        assert!(p.permits(None, ip("10.2.0.1"), Some(5)).is_err());
        assert_eq!(p.permits(None, ip("127.0.0.1"), Some(9000)), Ok(()));
        assert_eq!(p.permits(None, ip("::ffff:127.0.0.1"), Some(9000)), Ok(()), "the mapped form is the address");
        assert!(p.permits(None, ip("127.0.0.1"), Some(9001)).is_err(), "another port");
        assert!(
            p.permits(Some("evil.example"), ip("127.0.0.1"), None).is_err(),
            "an address:port entry is for URLs naming it"
        );
        assert_eq!(p.permits(Some("localhost"), ip("127.0.0.1"), None), Ok(()), "a listed name, any port");
        assert_eq!(p.permits(Some("vault.internal"), ip("10.9.9.9"), None), Ok(()));
        let url = |u: &str| reqwest::Url::parse(u).expect("url");
        assert_eq!(p.check_parsed(&url("http://vault.internal:8200/v1")), Ok(None));
        assert!(p.check_parsed(&url("http://vault.internal:22/")).is_err(), "a listed name on another port");
        assert!(p.check_parsed(&url("http://169.254.169.254/latest/meta-data")).is_err());
        assert!(p.check_parsed(&url("http://[::ffff:a9fe:a9fe]/")).is_err());
        assert!(p.check_parsed(&url("http://0x7f.1:9001/")).is_err(), "hex IPv4 is still an address");
        for bad in ["", "10.0.0.0/33", "host:port", "a b", "http://x"] {
            assert!(Egress::new(&[bad.to_owned()]).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn ckps_own_address_is_refused_whatever_the_list() {
        let p = policy(&["127.0.0.0/8"]);
        p.set_own_address("127.0.0.1:8000".parse().expect("addr"));
        let ip = |s: &str| s.parse::<IpAddr>().expect("address");
        let own = p.permits(None, ip("127.0.0.1"), Some(8000)).expect_err("own");
        assert!(own.own && own.to_string().contains("ckp's own address"), "{own}");
        assert_eq!(p.permits(None, ip("127.0.0.1"), Some(8001)), Ok(()));
        let wildcard = policy(&["127.0.0.0/8"]);
        wildcard.set_own_address("0.0.0.0:8000".parse().expect("addr"));
        assert!(wildcard.permits(None, ip("127.0.0.1"), Some(8000)).is_err(), "a wildcard bind is every local address");
        assert_eq!(wildcard.permits(None, ip("93.184.216.34"), Some(8000)), Ok(()), "not this machine");
    }
}
