//! How long a VM test may wait, kept below the point where nextest kills
//! it: a test that runs out of time should fail with kiln's own diagnosis
//! (the events so far, the last console lines), not be killed with none.

use std::time::{Duration, Instant};

/// nextest kills a `vm_` test after this long: `slow-timeout` period ×
/// `terminate-after` of the `vm_` override in `.config/nextest.toml`
/// (a unit test below keeps the two in step).
pub const NEXTEST_VM_KILL: Duration = Duration::from_secs(900);

/// What a VM test's waits add up to at most: nextest's kill less a margin
/// for the test to print its diagnosis and for its cleanups to stop QEMU.
pub const VM_TEST_BUDGET: Duration = Duration::from_secs(840);

/// The end of a VM test's budget, from when the test started.
#[derive(Debug, Clone, Copy)]
pub struct TestDeadline {
    at: Instant,
}

impl TestDeadline {
    /// [`VM_TEST_BUDGET`] from now.
    pub fn start() -> TestDeadline {
        TestDeadline {
            at: Instant::now() + VM_TEST_BUDGET,
        }
    }

    /// What is left of the budget.
    pub fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// `limit`, or what is left of the budget if that is less.
    pub fn within(&self, limit: Duration) -> Duration {
        limit.min(self.left())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// `period = "120s", terminate-after = 5` of the `vm_` overrides.
    fn vm_kills(config: &str) -> Vec<Duration> {
        let mut kills = Vec::new();
        let mut in_vm_override = false;
        for line in config.lines() {
            let line = line.trim();
            if line.starts_with("[[") || line.starts_with('[') {
                in_vm_override = false;
            }
            if line.starts_with("filter") && line.contains("vm_") {
                in_vm_override = true;
            }
            if in_vm_override && line.starts_with("slow-timeout") {
                let number = |key: &str| -> u64 {
                    let rest = &line[line.find(key).unwrap() + key.len()..];
                    let digits: String = rest
                        .chars()
                        .skip_while(|c| !c.is_ascii_digit())
                        .take_while(char::is_ascii_digit)
                        .collect();
                    digits.parse().unwrap()
                };
                let period = number("period");
                let times = number("terminate-after");
                kills.push(Duration::from_secs(period * times));
            }
        }
        kills
    }

    #[test]
    fn the_budget_of_a_vm_test_ends_before_nextest_kills_it() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.config/nextest.toml");
        let config = std::fs::read_to_string(&path).unwrap();
        let kills = vm_kills(&config);
        assert!(!kills.is_empty(), "no `vm_` override in {}", path.display());
        for kill in kills {
            assert_eq!(kill, NEXTEST_VM_KILL, "{}", path.display());
        }
        assert!(VM_TEST_BUDGET + Duration::from_secs(30) <= NEXTEST_VM_KILL);
    }

    #[test]
    fn within_is_the_smaller_of_limit_and_what_is_left() {
        let deadline = TestDeadline::start();
        assert_eq!(
            deadline.within(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert!(deadline.within(Duration::from_secs(10_000)) <= VM_TEST_BUDGET);
    }
}
