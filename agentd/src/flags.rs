//! Parsers of the agent's command-line values, in Mesos' syntax:
//! `--resources 'cpus:4;mem:8192;disk:20000;ports:[31000-32000]'`,
//! `--reserve 'ROLE:cpus:1;mem:512'`, `--attributes 'rack:a;zone:z1'`.
//! Pure functions; errors name the item and the reason.

use std::collections::BTreeMap;

use meseta_schemas::resources::{normalize_ports, PortRange, Resources};

/// A value of a flag that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{item:?}: {reason}")]
pub struct FlagError {
    /// The offending item, e.g. `mem:lots`.
    pub item: String,
    /// Why.
    pub reason: String,
}

fn err(item: &str, reason: impl Into<String>) -> FlagError {
    FlagError { item: item.to_string(), reason: reason.into() }
}

/// Parses `cpus:4;mem:8192;disk:20000;gpus:1;ports:[31000-32000,33000-33100]`.
pub fn parse_resources(s: &str) -> Result<Resources, FlagError> {
    let mut r = Resources::default();
    for item in s.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, value) = item.split_once(':').ok_or_else(|| err(item, "expected NAME:VALUE"))?;
        let scalar = || -> Result<f64, FlagError> {
            let v: f64 = value.trim().parse().map_err(|_| err(item, "expected a number"))?;
            if !v.is_finite() || v < 0.0 {
                return Err(err(item, "must be a non-negative number"));
            }
            Ok(v)
        };
        match name.trim() {
            "cpus" => r.cpus = scalar()?,
            "mem" => r.mem = scalar()?,
            "disk" => r.disk = scalar()?,
            "gpus" => r.gpus = scalar()?,
            "ports" => r.ports = parse_ports(item, value.trim())?,
            other => return Err(err(item, format!("unknown resource {other:?} (cpus, mem, disk, gpus, ports)"))),
        }
    }
    Ok(r)
}

fn parse_ports(item: &str, value: &str) -> Result<Vec<PortRange>, FlagError> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .ok_or_else(|| err(item, "ports are written [BEGIN-END,...]"))?;
    let mut ranges = Vec::new();
    for range in inner.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let (b, e) = range.split_once('-').unwrap_or((range, range));
        let port = |p: &str| p.trim().parse::<u16>().map_err(|_| err(item, format!("{p:?} is not a port")));
        let (begin, end) = (port(b)?, port(e)?);
        if end < begin {
            return Err(err(item, format!("range {range} ends before it begins")));
        }
        ranges.push(PortRange { begin, end });
    }
    Ok(normalize_ports(ranges))
}

/// Parses `ROLE:cpus:1;mem:512` into the role and its reserved resources.
pub fn parse_reserve(s: &str) -> Result<(String, Resources), FlagError> {
    let (role, rest) = s.split_once(':').ok_or_else(|| err(s, "expected ROLE:RESOURCES"))?;
    let role = role.trim();
    if role.is_empty() || !role.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(err(s, format!("{role:?} is not a role name (lower-case letters, digits, '-')")));
    }
    Ok((role.to_string(), parse_resources(rest)?))
}

/// Parses `rack:a;zone:z1` into attributes.
pub fn parse_attributes(s: &str) -> Result<BTreeMap<String, String>, FlagError> {
    let mut out = BTreeMap::new();
    for item in s.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once(':').ok_or_else(|| err(item, "expected NAME:VALUE"))?;
        if k.trim().is_empty() {
            return Err(err(item, "empty attribute name"));
        }
        if out.insert(k.trim().to_string(), v.trim().to_string()).is_some() {
            return Err(err(item, "attribute given twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_parse_scalars_and_port_ranges() {
        let r = parse_resources("cpus:4;mem:8192;disk:20000;ports:[31000-32000, 33000]").unwrap();
        assert_eq!((r.cpus, r.mem, r.disk), (4.0, 8192.0, 20000.0));
        assert_eq!(r.ports, vec![PortRange { begin: 31000, end: 32000 }, PortRange { begin: 33000, end: 33000 }]);
    }

    #[test]
    fn bad_resources_name_the_item_and_the_reason() {
        let e = parse_resources("cpus:4;mem:lots").unwrap_err();
        assert_eq!(e.item, "mem:lots");
        assert!(parse_resources("tpus:1").unwrap_err().reason.contains("unknown resource"));
        assert!(parse_resources("ports:31000-32000").unwrap_err().reason.contains("[BEGIN-END"));
        assert!(parse_resources("ports:[2-1]").unwrap_err().reason.contains("ends before"));
        assert!(parse_resources("cpus:-1").is_err());
    }

    #[test]
    fn reserve_takes_a_role_then_resources() {
        let (role, r) = parse_reserve("web:cpus:1;mem:512").unwrap();
        assert_eq!(role, "web");
        assert_eq!((r.cpus, r.mem), (1.0, 512.0));
        assert!(parse_reserve("Web:cpus:1").is_err());
    }

    #[test]
    fn attributes_are_name_value_pairs() {
        let a = parse_attributes("rack:a;zone:z1").unwrap();
        assert_eq!(a["rack"], "a");
        assert_eq!(a["zone"], "z1");
        assert!(parse_attributes("rack").is_err());
        assert!(parse_attributes("rack:a;rack:b").is_err());
    }
}
