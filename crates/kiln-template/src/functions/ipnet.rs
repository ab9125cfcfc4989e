//! IP network functions: cidrhost, cidrnetmask, cidrsubnet, cidrsubnets
//! (go-cty-funcs over apparentlymart/go-cidr, with Go's `net` parsing and
//! printing).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Fail, Func, FuncCtx, P, int_arg, p, str_arg};
use crate::value::Value;

pub(crate) const FUNCS: &[Func] = &[
    Func {
        name: "cidrhost",
        params: &[p("prefix", P::String), p("hostnum", P::Number)],
        var_param: None,
        imp: cidrhost,
    },
    Func {
        name: "cidrnetmask",
        params: &[p("prefix", P::String)],
        var_param: None,
        imp: cidrnetmask,
    },
    Func {
        name: "cidrsubnet",
        params: &[
            p("prefix", P::String),
            p("newbits", P::Number),
            p("netnum", P::Number),
        ],
        var_param: None,
        imp: cidrsubnet,
    },
    Func {
        name: "cidrsubnets",
        params: &[p("prefix", P::String)],
        var_param: Some(p("newbits", P::Number)),
        imp: cidrsubnets,
    },
];

/// A network as Go's `net.ParseCIDR` returns it: the address with host
/// bits cleared, its prefix length, and its width (32 or 128 bits).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Net {
    addr: u128,
    prefix: u32,
    bits: u32,
}

impl Net {
    fn mask(prefix: u32, bits: u32) -> u128 {
        if prefix == 0 {
            0
        } else {
            let all = if bits == 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            };
            all & !((1u128 << (bits - prefix)) - 1)
        }
    }

    fn last(&self) -> u128 {
        self.addr | !Net::mask(self.prefix, self.bits) & self.all_ones()
    }

    fn all_ones(&self) -> u128 {
        if self.bits == 128 {
            u128::MAX
        } else {
            (1u128 << self.bits) - 1
        }
    }

    fn contains(&self, addr: u128) -> bool {
        addr & Net::mask(self.prefix, self.bits) == self.addr
    }
}

fn ip_string(addr: u128, bits: u32) -> String {
    if bits == 32 {
        Ipv4Addr::from(addr as u32).to_string()
    } else {
        let v6 = Ipv6Addr::from(addr);
        // Go prints IPv4-mapped addresses in dotted form.
        match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        }
    }
}

fn net_string(n: &Net) -> String {
    format!("{}/{}", ip_string(n.addr, n.bits), n.prefix)
}

/// Go's `net.ParseCIDR`.
fn parse_cidr(s: &str) -> Result<Net, String> {
    let bad = || format!("invalid CIDR expression: invalid CIDR address: {s}");
    let (ip, len) = s.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    if len.is_empty()
        || !len.bytes().all(|b| b.is_ascii_digit())
        || (len.len() > 1 && len.starts_with('0'))
    {
        return Err(bad());
    }
    let prefix: u32 = len.parse().map_err(|_| bad())?;
    let (addr, bits) = match ip {
        IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    if prefix > bits {
        return Err(bad());
    }
    Ok(Net {
        addr: addr & Net::mask(prefix, bits),
        prefix,
        bits,
    })
}

fn prefix_arg(args: &[Value]) -> Result<Net, Fail> {
    parse_cidr(str_arg(args, 0)?).map_err(Fail::call)
}

fn cidrhost(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let hostnum = int_arg(&args, 1)?;
    let net = prefix_arg(&args)?;
    let host_len = net.bits - net.prefix;
    let max: u128 = if host_len >= 128 {
        u128::MAX
    } else {
        (1u128 << host_len) - 1
    };
    let (offset, magnitude) = if hostnum < 0 {
        let m = (-(hostnum as i128) - 1) as u128;
        (max.wrapping_sub(m), m)
    } else {
        (hostnum as u128, hostnum as u128)
    };
    if magnitude > max {
        return Err(Fail::call(format!(
            "prefix of {} does not accommodate a host numbered {hostnum}",
            net.prefix
        )));
    }
    Ok(Value::String(ip_string(net.addr | offset, net.bits)))
}

fn cidrnetmask(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let net = prefix_arg(&args)?;
    Ok(Value::String(ip_string(
        Net::mask(net.prefix, net.bits),
        net.bits,
    )))
}

fn cidrsubnet(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let newbits = int_arg(&args, 1)?;
    let netnum = int_arg(&args, 2)?;
    let net = prefix_arg(&args)?;
    if newbits > 32 {
        return Err(Fail::call("may not extend prefix by more than 32 bits"));
    }
    let new_prefix = net.prefix as i64 + newbits;
    if new_prefix > net.bits as i64 {
        return Err(Fail::call(format!(
            "insufficient address space to extend prefix of {} by {newbits}",
            net.prefix
        )));
    }
    if newbits < 0 || new_prefix < 0 {
        return Err(Fail::call(format!(
            "prefix extension of {newbits} does not accommodate a subnet numbered {netnum}"
        )));
    }
    let max_netnum: u64 = if newbits >= 64 {
        u64::MAX
    } else {
        (1u64 << newbits) - 1
    };
    if netnum < 0 || netnum as u64 > max_netnum {
        return Err(Fail::call(format!(
            "prefix extension of {newbits} does not accommodate a subnet numbered {netnum}"
        )));
    }
    let new_prefix = new_prefix as u32;
    let shift = net.bits - new_prefix;
    let addr = net.addr | ((netnum as u128) << shift);
    Ok(Value::String(net_string(&Net {
        addr,
        prefix: new_prefix,
        bits: net.bits,
    })))
}

fn cidrsubnets(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let net = parse_cidr(str_arg(&args, 0)?).map_err(|e| Fail::arg(0, e))?;
    if args.len() == 1 {
        return Ok(Value::List(vec![]));
    }
    let first = int_arg(&args, 1)?;
    let all = net.all_ones();
    // go-cidr's PreviousSubnet: the block of the first length just below
    // the start of the network.
    let first_len = (first + net.prefix as i64).clamp(0, net.bits as i64) as u32;
    let mask = Net::mask(first_len, net.bits);
    let mut current = Net {
        addr: net.addr.wrapping_sub(1) & all & mask,
        prefix: first_len,
        bits: net.bits,
    };
    let mut out = Vec::with_capacity(args.len() - 1);
    for i in 1..args.len() {
        let length = int_arg(&args, i)?;
        if length < 1 {
            return Err(Fail::arg(i, "must extend prefix by at least one bit"));
        }
        if length > 32 {
            return Err(Fail::arg(i, "may not extend prefix by more than 32 bits"));
        }
        let length = length as u32 + net.prefix;
        if length > net.bits {
            let protocol = if net.bits == 32 { "IPv4" } else { "IPv6" };
            return Err(Fail::arg(
                i,
                format!(
                    "would extend prefix to {length} bits, which is too long for an {protocol} address"
                ),
            ));
        }
        // go-cidr's NextSubnet.
        let mask = Net::mask(length, net.bits);
        let current_last = current.last();
        let same_size = Net {
            addr: current_last & mask,
            prefix: length,
            bits: net.bits,
        };
        let after = same_size.last().wrapping_add(1) & all;
        let next = Net {
            addr: after & mask,
            prefix: length,
            bits: net.bits,
        };
        if after == 0 || !net.contains(next.addr) {
            return Err(Fail::arg(
                i,
                format!(
                    "not enough remaining address space for a subnet with a prefix of {length} bits after {}",
                    net_string(&current)
                ),
            ));
        }
        current = next;
        out.push(Value::String(net_string(&current)));
    }
    Ok(Value::List(out))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn cidrhost_examples() {
        assert_eq!(
            call_ok("cidrhost", vec![s("10.12.112.0/20"), n(16.0)]),
            s("10.12.112.16")
        );
        assert_eq!(
            call_ok("cidrhost", vec![s("10.12.112.0/20"), n(268.0)]),
            s("10.12.113.12")
        );
        assert_eq!(
            call_ok("cidrhost", vec![s("10.0.0.0/24"), n(-1.0)]),
            s("10.0.0.255")
        );
        assert_eq!(
            call_ok("cidrhost", vec![s("10.0.0.7/24"), n(0.0)]),
            s("10.0.0.0")
        );
        assert_eq!(
            call_ok(
                "cidrhost",
                vec![s("fd00:fd12:3456:7890:00a2::/72"), n(34.0)]
            ),
            s("fd00:fd12:3456:7890::22")
        );
        assert_eq!(
            call_err("cidrhost", vec![s("10.0.0.0/24"), n(256.0)]),
            "`cidrhost`: prefix of 24 does not accommodate a host numbered 256"
        );
        assert_eq!(
            call_err("cidrhost", vec![s("10.0.0.0/33"), n(1.0)]),
            "`cidrhost`: invalid CIDR expression: invalid CIDR address: 10.0.0.0/33"
        );
        assert_eq!(
            call_err("cidrhost", vec![s("not-an-ip"), n(1.0)]),
            "`cidrhost`: invalid CIDR expression: invalid CIDR address: not-an-ip"
        );
    }

    #[test]
    fn cidrnetmask_examples() {
        assert_eq!(
            call_ok("cidrnetmask", vec![s("172.16.0.0/12")]),
            s("255.240.0.0")
        );
        assert_eq!(call_ok("cidrnetmask", vec![s("10.0.0.0/0")]), s("0.0.0.0"));
        assert_eq!(
            call_ok("cidrnetmask", vec![s("10.0.0.1/32")]),
            s("255.255.255.255")
        );
        assert_eq!(
            call_ok("cidrnetmask", vec![s("fd00::/64")]),
            s("ffff:ffff:ffff:ffff::")
        );
    }

    #[test]
    fn cidrsubnet_examples() {
        assert_eq!(
            call_ok("cidrsubnet", vec![s("172.16.0.0/12"), n(4.0), n(2.0)]),
            s("172.18.0.0/16")
        );
        assert_eq!(
            call_ok("cidrsubnet", vec![s("10.1.2.0/24"), n(4.0), n(15.0)]),
            s("10.1.2.240/28")
        );
        assert_eq!(
            call_ok(
                "cidrsubnet",
                vec![s("fd00:fd12:3456:7890::/56"), n(16.0), n(162.0)]
            ),
            s("fd00:fd12:3456:7800:a200::/72")
        );
        assert_eq!(
            call_err("cidrsubnet", vec![s("10.1.2.0/24"), n(4.0), n(16.0)]),
            "`cidrsubnet`: prefix extension of 4 does not accommodate a subnet numbered 16"
        );
        assert_eq!(
            call_err("cidrsubnet", vec![s("10.1.2.0/24"), n(9.0), n(0.0)]),
            "`cidrsubnet`: insufficient address space to extend prefix of 24 by 9"
        );
        assert_eq!(
            call_err("cidrsubnet", vec![s("fd00::/56"), n(33.0), n(0.0)]),
            "`cidrsubnet`: may not extend prefix by more than 32 bits"
        );
    }

    #[test]
    fn cidrsubnets_examples() {
        assert_eq!(
            call_ok(
                "cidrsubnets",
                vec![s("10.1.0.0/16"), n(4.0), n(4.0), n(8.0), n(4.0)]
            ),
            str_list(&[
                "10.1.0.0/20",
                "10.1.16.0/20",
                "10.1.32.0/24",
                "10.1.48.0/20"
            ])
        );
        assert_eq!(
            call_ok(
                "cidrsubnets",
                vec![
                    s("fd00:fd12:3456:7890::/56"),
                    n(16.0),
                    n(16.0),
                    n(16.0),
                    n(32.0)
                ]
            ),
            str_list(&[
                "fd00:fd12:3456:7800::/72",
                "fd00:fd12:3456:7800:100::/72",
                "fd00:fd12:3456:7800:200::/72",
                "fd00:fd12:3456:7800:300::/88",
            ])
        );
        assert_eq!(call_ok("cidrsubnets", vec![s("10.0.0.0/8")]), str_list(&[]));
        // go-cidr wraps around below 0.0.0.0 and then sees a rollover.
        assert!(
            call_err("cidrsubnets", vec![s("0.0.0.0/0"), n(1.0)])
                .contains("not enough remaining address space")
        );
        assert_eq!(
            call_err(
                "cidrsubnets",
                vec![s("10.0.0.0/30"), n(1.0), n(1.0), n(1.0)]
            ),
            "`cidrsubnets`: argument 4 (`newbits`): not enough remaining address space for a subnet with a prefix of 31 bits after 10.0.0.2/31"
        );
        assert_eq!(
            call_err("cidrsubnets", vec![s("10.0.0.0/30"), n(3.0)]),
            "`cidrsubnets`: argument 2 (`newbits`): would extend prefix to 33 bits, which is too long for an IPv4 address"
        );
        assert_eq!(
            call_err("cidrsubnets", vec![s("10.0.0.0/30"), n(0.0)]),
            "`cidrsubnets`: argument 2 (`newbits`): must extend prefix by at least one bit"
        );
    }
}
