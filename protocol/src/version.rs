//! Lenient Seata version strings (`core/protocol/Version.java`).
//!
//! Clients send "2.2.0", "2.3.0-SNAPSHOT", "1.1.0" (seata-go TM), "1.0" (seata-python). Split on
//! `.`, keep at most four parts, and in each part only the digits before a `-`. Anything that does
//! not parse counts as older than 1.5.0, as in Java.

/// A parsed client version. Unparseable strings compare as 0.0.0.0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Version {
    parts: [u32; 4],
    raw: String,
}

impl Version {
    /// Parses a version string leniently; never fails.
    pub fn parse(raw: &str) -> Version {
        let mut parts = [0u32; 4];
        let mut ok = !raw.trim().is_empty();
        for (i, part) in raw.trim().split('.').enumerate() {
            if i >= 4 {
                break;
            }
            let digits = part.split('-').next().unwrap_or("");
            match digits.parse::<u32>() {
                Ok(n) if digits.len() <= 6 => parts[i] = n,
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            parts = [0; 4];
        }
        Version { parts, raw: raw.to_owned() }
    }

    /// True when this version is at least `major.minor.patch`.
    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.parts >= [major, minor, patch, 0]
    }

    /// The string as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::Version;

    #[test]
    fn parses_what_clients_send() {
        assert!(Version::parse("2.3.0-SNAPSHOT").at_least(2, 3, 0));
        assert!(Version::parse("1.5.2").at_least(1, 5, 0));
        assert!(!Version::parse("1.1.0").at_least(1, 5, 0));
        assert!(!Version::parse("1.0").at_least(1, 5, 0));
        assert!(Version::parse("1.0").at_least(1, 0, 0));
        assert!(!Version::parse("garbage").at_least(0, 0, 1));
        assert!(!Version::parse("").at_least(0, 0, 1));
        assert!(Version::parse("2.2.0.1").at_least(2, 2, 0));
        assert!(!Version::parse("99999999999.0").at_least(1, 0, 0));
    }
}
