//! Where the client may go: links from the service are checked before they are fetched, and
//! redirects are followed only within the origin they start from.
//!
//! A service answer names the links the export downloads (`originalImageUri`, model packages,
//! stored predictions). Trusting them blindly would let one answer make the export fetch the
//! cloud metadata service or a local admin page and archive what it says (a server-side
//! request forgery). So only http(s) links are fetched; link-local and platform addresses
//! never; loopback and private ones only when the endpoint is itself one (the emulator, or a
//! test server). Names are not resolved: a name is judged by its spelling (`localhost` is
//! loopback), so a private endpoint reached by name (Azure Private Link) keeps working.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// How far from this machine a host is, for deciding which links to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// 169.254.0.0/16 or fe80::/10: where cloud metadata services answer (169.254.169.254).
    LinkLocal,
    /// Azure's platform address 168.63.129.16 (its DNS, health probes and agent channel; see
    /// Microsoft's "What is IP address 168.63.129.16?").
    Platform,
    /// Loopback, private or unspecified: 127/8, ::1, 0.0.0.0, ::, 10/8, 172.16/12, 192.168/16,
    /// 100.64/10, fc00::/7, and the name `localhost`.
    Local,
    /// Anything else, every name included.
    Public,
}

/// The reach of `host`.
pub fn reach(host: &Host<&str>) -> Reach {
    match host {
        Host::Ipv4(ip) => reach_ip(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => reach_ip(IpAddr::V6(*ip)),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                Reach::Local
            } else {
                Reach::Public
            }
        }
    }
}

fn reach_ip(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => reach_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => reach_v4(v4),
            None => reach_v6(v6),
        },
    }
}

fn reach_v4(ip: Ipv4Addr) -> Reach {
    let [a, b, ..] = ip.octets();
    if ip.is_link_local() {
        Reach::LinkLocal
    } else if ip == Ipv4Addr::new(168, 63, 129, 16) {
        Reach::Platform
    } else if ip.is_loopback() || ip.is_private() || ip.is_unspecified() || (a == 100 && (64..128).contains(&b)) {
        Reach::Local
    } else {
        Reach::Public
    }
}

fn reach_v6(ip: Ipv6Addr) -> Reach {
    let first = ip.segments()[0];
    if first & 0xffc0 == 0xfe80 {
        Reach::LinkLocal
    } else if ip.is_loopback() || ip.is_unspecified() || first & 0xfe00 == 0xfc00 {
        Reach::Local
    } else {
        Reach::Public
    }
}

/// Why `link` is not fetched by a client of an endpoint of reach `endpoint`, or `None` to
/// fetch it.
pub fn link_refusal(link: &Url, endpoint: Reach) -> Option<&'static str> {
    if !matches!(link.scheme(), "http" | "https") {
        return Some("only http and https links are fetched");
    }
    let Some(host) = link.host() else { return Some("the link names no host") };
    match reach(&host) {
        Reach::LinkLocal => Some("it points at a link-local address, where cloud metadata services answer"),
        Reach::Platform => Some("it points at the cloud platform's own address"),
        Reach::Local if endpoint != Reach::Local => {
            Some("it points at a loopback or private address, and the endpoint is not one")
        }
        Reach::Local | Reach::Public => None,
    }
}

/// The redirect policy of every request: follow (up to 10 hops) only within the origin the
/// request went to; a redirect elsewhere fails with [`CrossOrigin`].
pub(super) fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(from) = attempt.previous().last() else { return attempt.stop() };
        if from.origin() != attempt.url().origin() {
            let error = CrossOrigin { from: origin(from), to: origin(attempt.url()) };
            return attempt.error(error);
        }
        if attempt.previous().len() > 10 {
            return attempt.stop();
        }
        attempt.follow()
    })
}

/// A redirect to another origin, refused (carried through reqwest's error to
/// [`super::wire::transport`]).
#[derive(Debug, thiserror::Error)]
#[error("{from} redirected to {to}")]
pub(super) struct CrossOrigin {
    pub from: String,
    pub to: String,
}

/// `scheme://host:port` of a URL, without userinfo, path or query.
fn origin(url: &Url) -> String {
    match url.origin() {
        url::Origin::Tuple(..) => url.origin().ascii_serialization(),
        url::Origin::Opaque(_) => format!("{}:", url.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(link: &str, endpoint: &str) -> Option<&'static str> {
        let endpoint = Url::parse(endpoint).unwrap();
        link_refusal(&Url::parse(link).unwrap(), reach(&endpoint.host().unwrap()))
    }

    #[test]
    fn links_from_the_service_are_judged_against_the_endpoint() {
        let public = "https://westus.api.cognitive.microsoft.com";
        let local = "http://127.0.0.1:7070";
        let blob = "https://irisprodwustraining.blob.core.windows.net/i-1/o-2?sv=1&sig=x";
        assert_eq!(refusal(blob, public), None);
        assert_eq!(refusal(blob, local), None);
        for link in [
            "http://127.0.0.1:8080/x",
            "http://10.0.0.5/x",
            "http://[::1]/x",
            "http://localhost/x",
            "http://192.168.1.1/x",
            "http://172.16.0.1/x",
            "http://[fd00:ec2::254]/x",
            "http://0.0.0.0/x",
            "http://2130706433/x",
            "http://[::ffff:127.0.0.1]/x",
        ] {
            assert!(refusal(link, public).is_some(), "{link} from a public endpoint");
            assert_eq!(refusal(link, local), None, "{link} from a local endpoint");
        }
        for link in [
            "http://169.254.169.254/metadata/instance",
            "http://[fe80::1]/x",
            "http://169.254.1.1/x",
            "http://[::ffff:169.254.169.254]/x",
            "http://0xa9fea9fe/x",
            "http://168.63.129.16/machine",
        ] {
            assert!(refusal(link, public).is_some(), "{link} from a public endpoint");
            assert!(refusal(link, local).is_some(), "{link} from a local endpoint");
        }
        for link in ["file:///etc/passwd", "ftp://example.com/x", "data:text/plain,hi", "gopher://127.0.0.1/x"] {
            assert_eq!(refusal(link, local), refusal(link, public));
            assert!(refusal(link, local).is_some(), "{link}");
        }
    }
}
