//! Typed host→node calls. A node-side tool's arguments are a value of the tool's own clap
//! definition (`lifecycle::cli::Cmd::Down { .. }`); the host renders that value back to the
//! argv the tool's binary parses, so no flag is spelt twice. Each tool's round-trip test
//! ([`round_trip`]) proves that the rendering and the clap definition agree: a renamed
//! field fails to compile, a renamed flag fails that test.

use std::collections::BTreeSet;
use std::fmt::{Debug, Display};

use clap::Parser;

/// A node-side tool's command line: the tool and the arguments after its binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The tool binary (`lifecycle`, `deploy`, `drills`, `clean-room`, `verify`).
    pub tool: &'static str,
    /// The arguments after the binary, as its clap definition parses them.
    pub args: Vec<String>,
}

impl ToolCall {
    /// The argv with `bin` (where the tool is on the node) in front.
    pub fn argv<'a>(&'a self, bin: &'a str) -> Vec<&'a str> {
        std::iter::once(bin)
            .chain(self.args.iter().map(String::as_str))
            .collect()
    }

    /// `tool arg…`, for progress lines and messages.
    pub fn line(&self) -> String {
        self.argv(self.tool).join(" ")
    }
}

/// A node-side tool's arguments as a value that renders back to its argv.
pub trait ToArgv {
    /// The binary whose clap definition parses what [`ToArgv::render`] writes.
    const TOOL: &'static str;

    /// Appends this value's subcommand words and flags to `out`.
    fn render(&self, out: &mut Args);

    /// The call that runs this value on the node.
    fn call(&self) -> ToolCall {
        let mut args = Args::default();
        self.render(&mut args);
        ToolCall {
            tool: Self::TOOL,
            args: args.0,
        }
    }
}

/// Arguments being rendered: subcommand words, then `--flag value` pairs and switches.
#[derive(Debug, Default)]
pub struct Args(Vec<String>);

impl Args {
    /// A subcommand word.
    pub fn word(&mut self, word: &str) -> &mut Args {
        self.0.push(word.to_string());
        self
    }

    /// `--long value`; `--long=value` when the value starts with `-`, so clap cannot
    /// mistake it for a flag.
    pub fn opt(&mut self, long: &str, value: impl Display) -> &mut Args {
        let value = value.to_string();
        if value.starts_with('-') {
            self.0.push(format!("--{long}={value}"));
        } else {
            self.0.push(format!("--{long}"));
            self.0.push(value);
        }
        self
    }

    /// `--long value` when there is a value.
    pub fn opt_some(&mut self, long: &str, value: Option<impl Display>) -> &mut Args {
        if let Some(v) = value {
            self.opt(long, v);
        }
        self
    }

    /// `--long value` once per value.
    pub fn opt_each<V: Display>(
        &mut self,
        long: &str,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Args {
        for v in values {
            self.opt(long, v);
        }
        self
    }

    /// `--long` when `on`.
    pub fn flag(&mut self, long: &str, on: bool) -> &mut Args {
        if on {
            self.0.push(format!("--{long}"));
        }
        self
    }
}

/// Parses `call` as the tool's binary does, `P` being its clap definition: how a round-trip
/// test and a test's fake node read a call.
pub fn parse<P: Parser>(call: &ToolCall) -> Result<P, clap::Error> {
    P::try_parse_from(std::iter::once(call.tool).chain(call.args.iter().map(String::as_str)))
}

/// The check behind every tool's round-trip test: each value renders to argv that `P`
/// parses back (`pick` takes the value out of the parsed `P`) into an equal value, and the
/// values together use every subcommand `P` defines. Returns every mismatch found.
pub fn round_trip<P, T>(values: &[T], pick: impl Fn(P) -> Option<T>) -> Result<(), String>
where
    P: Parser,
    T: ToArgv + PartialEq + Debug,
{
    let mut wrong = Vec::new();
    let mut used = BTreeSet::new();
    let root = P::command();
    for value in values {
        let call = value.call();
        if call.tool != root.get_name() {
            wrong.push(format!(
                "{value:?} names tool {}, the definition is {}",
                call.tool,
                root.get_name()
            ));
        }
        used.insert(subcommand_path(&root, &call.args));
        match parse::<P>(&call).map(&pick) {
            Ok(Some(back)) if &back == value => {}
            Ok(back) => wrong.push(format!(
                "`{}` parses back to {back:?}, not {value:?}",
                call.line()
            )),
            Err(e) => wrong.push(format!("`{}` does not parse: {e}", call.line())),
        }
    }
    for path in leaf_subcommands(&root) {
        if !used.contains(&path) {
            wrong.push(format!(
                "no value renders `{} {}`: add one to the round-trip test",
                root.get_name(),
                path.join(" ")
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n"))
    }
}

/// The subcommand words at the start of `args` that `cmd` defines.
fn subcommand_path(cmd: &clap::Command, args: &[String]) -> Vec<String> {
    let mut path = Vec::new();
    let mut at = cmd;
    for a in args {
        match at.find_subcommand(a) {
            Some(sub) => {
                path.push(a.clone());
                at = sub;
            }
            None => break,
        }
    }
    path
}

/// Every path of subcommand words that ends at a command without subcommands (clap's own
/// `help` aside); a command without subcommands has the empty path.
fn leaf_subcommands(cmd: &clap::Command) -> Vec<Vec<String>> {
    let subs: Vec<&clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .collect();
    if subs.is_empty() {
        return vec![vec![]];
    }
    subs.into_iter()
        .flat_map(|s| {
            leaf_subcommands(s).into_iter().map(|mut p| {
                p.insert(0, s.get_name().to_string());
                p
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tool with one subcommand of each shape the real tools use.
    #[derive(clap::Parser, Debug, PartialEq)]
    #[command(name = "tool")]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(clap::Subcommand, Debug, Clone, PartialEq)]
    enum Cmd {
        Up {
            #[arg(long, default_value = "dev")]
            env: String,
            #[arg(long)]
            image: Option<String>,
            #[arg(long = "set")]
            sets: Vec<String>,
            #[arg(long)]
            recreate: bool,
        },
        Down {
            #[arg(long)]
            since: String,
        },
    }

    impl ToArgv for Cmd {
        const TOOL: &'static str = "tool";
        fn render(&self, out: &mut Args) {
            match self {
                Cmd::Up {
                    env,
                    image,
                    sets,
                    recreate,
                } => out
                    .word("up")
                    .opt("env", env)
                    .opt_some("image", image.as_ref())
                    .opt_each("set", sets)
                    .flag("recreate", *recreate),
                Cmd::Down { since } => out.word("down").opt("since", since),
            };
        }
    }

    fn up() -> Cmd {
        Cmd::Up {
            env: "prod".into(),
            image: Some("pg:15".into()),
            sets: vec!["A=1".into(), "B=2".into()],
            recreate: true,
        }
    }

    #[test]
    fn a_value_renders_to_the_argv_its_definition_parses() {
        assert_eq!(
            up().call().line(),
            "tool up --env prod --image pg:15 --set A=1 --set B=2 --recreate"
        );
        let down = Cmd::Down {
            since: "-5m".into(),
        };
        assert_eq!(round_trip::<Cli, _>(&[up(), down], |c| Some(c.cmd)), Ok(()));
    }

    #[test]
    fn a_value_starting_with_a_dash_is_joined_to_its_flag() {
        let down = Cmd::Down {
            since: "-5m".into(),
        };
        assert_eq!(down.call().args, ["down", "--since=-5m"]);
    }

    #[test]
    fn a_subcommand_without_a_value_is_reported() {
        let e = round_trip::<Cli, _>(&[up()], |c| Some(c.cmd)).err();
        assert!(
            e.as_deref().is_some_and(|e| e.contains("`tool down`")),
            "{e:?}"
        );
    }

    /// The same subcommand with a flag renamed in the definition only.
    #[derive(clap::Parser, Debug)]
    #[command(name = "tool")]
    struct Renamed {
        #[command(subcommand)]
        cmd: RenamedCmd,
    }

    #[derive(clap::Subcommand, Debug)]
    enum RenamedCmd {
        Down {
            #[arg(long = "after")]
            since: String,
        },
    }

    #[test]
    fn a_flag_renamed_in_the_definition_fails_the_round_trip() {
        let down = Cmd::Down { since: "5m".into() };
        let e = round_trip::<Renamed, _>(&[down], |r| match r.cmd {
            RenamedCmd::Down { since } => Some(Cmd::Down { since }),
        })
        .err();
        assert!(
            e.as_deref().is_some_and(|e| e.contains("does not parse")),
            "{e:?}"
        );
    }
}
