//! Fuzzes the routing value parsers of yubin-addr: transport(5) values
//! (`transport:nexthop`), smtp nexthops and lmtp(8) destinations, and the
//! update rules applied with them. Any input must give a value or a clear
//! error, never a panic; a parsed nexthop must read back from its own
//! Display form unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yubin_addr::routing::agent;
use yubin_addr::transport::{Route, Service, Spec};
use yubin_addr::{LmtpNexthop, Nexthop};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut route = Route {
        service: Service::Smtp,
        nexthop: "example.test".into(),
    };
    for line in text.lines() {
        if let Ok(n) = Nexthop::parse(line) {
            assert_eq!(Nexthop::parse(&n.to_string()).as_ref(), Ok(&n), "{line:?}");
        }
        if let Ok(n) = LmtpNexthop::parse(line) {
            assert_eq!(LmtpNexthop::parse(&n.to_string()).as_ref(), Ok(&n), "{line:?}");
        }
        if let Ok(spec) = Spec::parse(line) {
            route.apply(&spec, "example.test");
            if route.service.check_nexthop(&route.nexthop).is_ok()
                && !matches!(route.service, Service::Local | Service::Virtual)
            {
                let _ = agent(route.service, &route.nexthop, "example.test");
            }
        }
    }
});
