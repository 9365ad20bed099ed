//! Selective outbound traffic: the rules a privacy policy (a region's, a cloudlet's) or a
//! developer's cluster gives for what may leave, and how they stack.
//!
//! Each party says one of three things ([`Egress`]): anything may leave, nothing may, or only
//! TCP to these networks and ports. A cluster's containers get what every party lets out:
//! nothing if any party says nothing, else every party's rules at once ([`EgressLayer`]s, each
//! of which must let a destination out). Rules are enforced by the cluster's egress gateway
//! (`op-egress`): members have no route out of their internal network, and reach the outside
//! only through the gateway, which checks each destination against every layer.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::specs::Protocol;
use crate::validate::{ensure, FieldError};

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`; a bare address
/// is one host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr.trim().parse().map_err(|_| format!("'{s}' is not an IP network: give one as 10.0.0.0/8 or 2001:db8::/32"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("'{s}': the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One destination range traffic may go to: TCP to `remoteCidr` on ports `portMin` to
/// `portMax`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutboundRule {
    /// `TCP` (the gateway relays TCP; UDP cannot be let out selectively).
    pub protocol: Protocol,
    /// The destination network, e.g. `10.20.0.0/16`; `0.0.0.0/0` for any IPv4 address.
    pub remote_cidr: String,
    /// First port.
    pub port_min: u16,
    /// Last port (default: `portMin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_max: Option<u16>,
}

impl OutboundRule {
    /// Whether TCP to `ip`:`port` is within the rule (a rule whose network does not parse,
    /// which validation refuses, lets nothing out).
    pub fn allows(&self, ip: IpAddr, port: u16) -> bool {
        (self.port_min..=self.port_max.unwrap_or(self.port_min)).contains(&port) && self.remote_cidr.parse::<Cidr>().is_ok_and(|c| c.contains(ip))
    }
}

impl fmt::Display for OutboundRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port_max.filter(|m| *m != self.port_min) {
            Some(max) => write!(f, "tcp:{}:{}-{max}", self.remote_cidr, self.port_min),
            None => write!(f, "tcp:{}:{}", self.remote_cidr, self.port_min),
        }
    }
}

impl FromStr for OutboundRule {
    type Err = String;

    /// The form [`Display`](fmt::Display) writes: `tcp:CIDR:PORT` or `tcp:CIDR:FIRST-LAST`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}': give tcp:NETWORK:PORT or tcp:NETWORK:FIRST-LAST, e.g. tcp:10.0.0.0/8:443");
        let rest = s.strip_prefix("tcp:").or_else(|| s.strip_prefix("TCP:")).ok_or_else(bad)?;
        let (cidr, ports) = rest.rsplit_once(':').ok_or_else(bad)?;
        cidr.parse::<Cidr>()?;
        let (min, max) = match ports.split_once('-') {
            Some((a, b)) => (a.parse().map_err(|_| bad())?, Some(b.parse().map_err(|_| bad())?)),
            None => (ports.parse().map_err(|_| bad())?, None),
        };
        Ok(Self { protocol: Protocol::TCP, remote_cidr: cidr.to_string(), port_min: min, port_max: max })
    }
}

/// Checks `rules` (at most 64 of them) as given under `field`.
pub fn validate_rules(rules: &[OutboundRule], outbound_allowed: bool, field: &str) -> Result<(), FieldError> {
    ensure(rules.len() <= 64, field, "at most 64 rules")?;
    ensure(!outbound_allowed || rules.is_empty(), field, "give rules only when outboundAllowed is false: outboundAllowed lets everything out")?;
    for (i, r) in rules.iter().enumerate() {
        let at = format!("{field}[{i}]");
        ensure(r.protocol == Protocol::TCP, &format!("{at}.protocol"), "only TCP can be let out selectively (the egress gateway relays TCP)")?;
        r.remote_cidr.parse::<Cidr>().map_err(|e| FieldError::new(format!("{at}.remoteCidr"), e))?;
        ensure(r.port_min > 0, &format!("{at}.portMin"), "must be 1 to 65535")?;
        ensure(r.port_max.is_none_or(|m| m >= r.port_min), &format!("{at}.portMax"), "must not be below portMin")?;
    }
    Ok(())
}

/// What one party lets out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Egress {
    /// Anything.
    All,
    /// Only TCP within these rules.
    Rules(Vec<OutboundRule>),
    /// Nothing.
    Nothing,
}

impl Egress {
    /// From an `outboundAllowed` flag and its rules (rules count only while the flag is off).
    pub fn from_policy(outbound_allowed: bool, rules: &[OutboundRule]) -> Self {
        match (outbound_allowed, rules.is_empty()) {
            (true, _) => Self::All,
            (false, false) => Self::Rules(rules.to_vec()),
            (false, true) => Self::Nothing,
        }
    }

    /// Whether anything at all may leave.
    pub fn lets_anything_out(&self) -> bool {
        !matches!(self, Self::Nothing)
    }
}

/// One party's rules in a cluster's effective egress: `by` says whose (the cluster, a
/// cloudlet's privacy policy, a region's regulation), so a refusal can name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressLayer {
    /// Whose rules: `cluster`, `cloudlet privacy policy`, `region <name> regulation`.
    pub by: String,
    /// What it lets out.
    pub rules: Vec<OutboundRule>,
}

/// What a cluster's containers may reach, all parties taken together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", tag = "mode", content = "layers")]
pub enum EffectiveEgress {
    /// Anything: members are also on the egress network.
    All,
    /// Only what every layer lets out, through the egress gateway.
    Rules(Vec<EgressLayer>),
    /// Nothing leaves.
    Nothing,
}

impl EffectiveEgress {
    /// Stacks what each party (`by`, what it says) lets out.
    pub fn stack<'a>(parties: impl IntoIterator<Item = (String, &'a Egress)>) -> Self {
        let mut layers = Vec::new();
        for (by, e) in parties {
            match e {
                Egress::All => {}
                Egress::Nothing => return Self::Nothing,
                Egress::Rules(rules) => layers.push(EgressLayer { by, rules: rules.clone() }),
            }
        }
        if layers.is_empty() {
            Self::All
        } else {
            Self::Rules(layers)
        }
    }

    /// Whether TCP to `ip`:`port` may leave; otherwise the layer that refuses it.
    pub fn check(&self, ip: IpAddr, port: u16) -> Result<(), String> {
        match self {
            Self::All => Ok(()),
            Self::Nothing => Err("the cluster's policy (nothing leaves)".into()),
            Self::Rules(layers) => match layers.iter().find(|l| !l.rules.iter().any(|r| r.allows(ip, port))) {
                None => Ok(()),
                Some(l) => Err(format!("the {} (allows {})", l.by, l.rules.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(cidr: &str, min: u16, max: Option<u16>) -> OutboundRule {
        OutboundRule { protocol: Protocol::TCP, remote_cidr: cidr.into(), port_min: min, port_max: max }
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let net: Cidr = "10.20.0.0/16".parse().unwrap();
        assert!(net.contains("10.20.255.1".parse().unwrap()));
        assert!(!net.contains("10.21.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.20.0.9".parse().unwrap()), "IPv4-mapped IPv6 counts as IPv4");
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains("203.0.113.7".parse().unwrap()));
        let host: Cidr = "192.0.2.1".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.1/32");
        assert!(!host.contains("192.0.2.2".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "10.0.0/8", "example.com", "::/129", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let e = validate_rules(&[rule("10.0.0.0/8", 443, None), rule("10.0.0.0/40", 80, None)], false, "outboundRules").unwrap_err();
        assert_eq!(e.field, "outboundRules[1].remoteCidr");
        let mut udp = rule("10.0.0.0/8", 53, None);
        udp.protocol = Protocol::UDP;
        assert_eq!(validate_rules(&[udp], false, "r").unwrap_err().field, "r[0].protocol");
        assert_eq!(validate_rules(&[rule("10.0.0.0/8", 90, Some(80))], false, "r").unwrap_err().field, "r[0].portMax");
        assert_eq!(validate_rules(&[rule("10.0.0.0/8", 80, None)], true, "r").unwrap_err().field, "r");
        assert!(validate_rules(&[rule("10.0.0.0/8", 80, Some(90))], false, "r").is_ok());
    }

    #[test]
    fn rules_read_as_they_print() {
        for r in [rule("10.0.0.0/8", 443, None), rule("2001:db8::/32", 8000, Some(8100))] {
            assert_eq!(r.to_string().parse::<OutboundRule>().unwrap(), r);
        }
        for bad in ["udp:10.0.0.0/8:53", "tcp:10.0.0.0/8", "tcp:nowhere:80", "tcp:10.0.0.0/8:80-x"] {
            assert!(bad.parse::<OutboundRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parties_stack() {
        let all = Egress::All;
        let web = Egress::Rules(vec![rule("0.0.0.0/0", 443, None)]);
        let corp = Egress::Rules(vec![rule("10.0.0.0/8", 1, Some(65535))]);
        assert_eq!(EffectiveEgress::stack([("cluster".to_string(), &all)]), EffectiveEgress::All);
        assert_eq!(EffectiveEgress::stack([("cluster".to_string(), &web), ("region".to_string(), &Egress::Nothing)]), EffectiveEgress::Nothing);
        let both = EffectiveEgress::stack([("cluster".to_string(), &web), ("cloudlet privacy policy".to_string(), &corp), ("region".to_string(), &all)]);
        assert!(both.check("10.1.2.3".parse().unwrap(), 443).is_ok(), "both layers let it out");
        let refused = both.check("203.0.113.5".parse().unwrap(), 443).unwrap_err();
        assert!(refused.contains("cloudlet privacy policy"), "{refused}");
        let refused = both.check("10.1.2.3".parse().unwrap(), 80).unwrap_err();
        assert!(refused.starts_with("the cluster"), "{refused}");
        assert!(EffectiveEgress::Nothing.check("10.1.2.3".parse().unwrap(), 443).is_err());
    }

    proptest! {
        /// A network contains exactly the addresses that agree with it on its prefix bits.
        #[test]
        fn contains_agrees_with_the_prefix(net in any::<u32>(), a in any::<u32>(), prefix in 0u8..=32) {
            let c: Cidr = format!("{}/{prefix}", std::net::Ipv4Addr::from(net)).parse().unwrap();
            let shift = 32 - u32::from(prefix);
            let same = shift == 32 || (net >> shift) == (a >> shift);
            prop_assert_eq!(c.contains(IpAddr::V4(a.into())), same);
        }
    }
}
