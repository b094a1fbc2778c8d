//! The one JUnit XML writer: `make ci`'s steps, the drills and verify's checks all report
//! to CI systems through it, so skipped work is always `<skipped>` with its reason, never
//! a pass.

use std::fmt::Write as _;

/// How one test case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and passed.
    Passed,
    /// It ran and failed, with the message.
    Failed(String),
    /// It did not run (or could not be judged), with why.
    Skipped(String),
}

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The `classname` attribute (what the case belongs to).
    pub classname: String,
    /// The case's name.
    pub name: String,
    /// Seconds it took.
    pub seconds: f64,
    /// How it ended.
    pub outcome: Outcome,
}

/// One `<testsuite>` inside `<testsuites>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    /// The suite's name.
    pub name: String,
    /// Seconds the whole suite took, when known.
    pub seconds: Option<f64>,
    /// Its cases, in order.
    pub cases: Vec<Case>,
}

impl Suite {
    /// The JUnit XML document with this one suite.
    pub fn render(&self) -> String {
        let count = |f: fn(&Outcome) -> bool| self.cases.iter().filter(|c| f(&c.outcome)).count();
        let failures = count(|o| matches!(o, Outcome::Failed(_)));
        let skipped = count(|o| matches!(o, Outcome::Skipped(_)));
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
        let _ = write!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\"",
            escape(&self.name),
            self.cases.len()
        );
        if let Some(s) = self.seconds {
            let _ = write!(out, " time=\"{s:.3}\"");
        }
        out.push_str(">\n");
        for c in &self.cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                escape(&c.classname),
                escape(&c.name),
                c.seconds
            );
            let (tag, message) = match &c.outcome {
                Outcome::Passed => {
                    out.push_str("/>\n");
                    continue;
                }
                Outcome::Failed(m) => ("failure", m),
                Outcome::Skipped(m) => ("skipped", m),
            };
            let _ = write!(
                out,
                ">\n      <{tag} message=\"{}\"/>\n    </testcase>\n",
                escape(message)
            );
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }
}

/// Escapes text for an XML attribute; control characters other than tab become spaces.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            c if (c as u32) < 0x20 && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, outcome: Outcome) -> Case {
        Case {
            classname: "ci".into(),
            name: name.into(),
            seconds: 1.5,
            outcome,
        }
    }

    #[test]
    fn passed_failed_and_skipped_cases_are_counted_and_told_apart() {
        let xml = Suite {
            name: "stackpilot ci".into(),
            seconds: Some(2.0015),
            cases: vec![
                case("checks", Outcome::Passed),
                case("drills", Outcome::Skipped("capability missing".into())),
                case("teardown", Outcome::Failed("exit 1".into())),
            ],
        }
        .render();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  \
<testsuite name=\"stackpilot ci\" tests=\"3\" failures=\"1\" skipped=\"1\" time=\"2.002\">\n    \
<testcase classname=\"ci\" name=\"checks\" time=\"1.500\"/>\n    \
<testcase classname=\"ci\" name=\"drills\" time=\"1.500\">\n      <skipped message=\"capability missing\"/>\n    </testcase>\n    \
<testcase classname=\"ci\" name=\"teardown\" time=\"1.500\">\n      <failure message=\"exit 1\"/>\n    </testcase>\n  \
</testsuite>\n</testsuites>\n"
        );
    }

    #[test]
    fn messages_are_escaped_for_an_attribute() {
        assert_eq!(
            escape("expected \"a\" <b> & 'c'\nnext\u{1}"),
            "expected &quot;a&quot; &lt;b&gt; &amp; &apos;c&apos;&#10;next "
        );
    }
}
