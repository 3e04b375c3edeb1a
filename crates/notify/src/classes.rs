//! postconf(5) `notify_classes`: which problems the postmaster hears about.

/// One notify class, as postconf(5) names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Copies of bounces (headers only) to bounce_notice_recipient.
    Bounce,
    /// Undeliverable bounces to 2bounce_notice_recipient.
    DoubleBounce,
    /// Mail-system data errors.
    Data,
    /// Copies of delay warnings to delay_notice_recipient.
    Delay,
    /// Sessions refused by policy (UCE restrictions).
    Policy,
    /// Sessions with protocol errors.
    Protocol,
    /// Resource problems (queue file write errors).
    Resource,
    /// Software errors.
    Software,
}

impl Class {
    pub const ALL: [Class; 8] = [
        Class::Bounce,
        Class::DoubleBounce,
        Class::Data,
        Class::Delay,
        Class::Policy,
        Class::Protocol,
        Class::Resource,
        Class::Software,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Bounce => "bounce",
            Class::DoubleBounce => "2bounce",
            Class::Data => "data",
            Class::Delay => "delay",
            Class::Policy => "policy",
            Class::Protocol => "protocol",
            Class::Resource => "resource",
            Class::Software => "software",
        }
    }

    pub fn parse(name: &str) -> Option<Class> {
        Class::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of classes (the value of notify_classes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Classes(u16);

impl Classes {
    /// Parses the list; names Postfix does not know are returned apart, so
    /// the caller can warn about them (Postfix ignores them likewise).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> (Classes, Vec<String>) {
        let mut set = Classes::default();
        let mut unknown = Vec::new();
        for n in names {
            match Class::parse(n.as_ref()) {
                Some(c) => set.insert(c),
                None => unknown.push(n.as_ref().to_string()),
            }
        }
        (set, unknown)
    }

    pub fn insert(&mut self, c: Class) {
        self.0 |= c.bit();
    }

    pub fn contains(self, c: Class) -> bool {
        self.0 & c.bit() != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_postfix_names() {
        let (set, unknown) = Classes::parse(&["resource", "software", "2bounce", "nonsense"]);
        assert!(set.contains(Class::Resource));
        assert!(set.contains(Class::Software));
        assert!(set.contains(Class::DoubleBounce));
        assert!(!set.contains(Class::Policy));
        assert_eq!(unknown, ["nonsense"]);
        for c in Class::ALL {
            assert_eq!(Class::parse(c.name()), Some(c));
        }
    }
}
