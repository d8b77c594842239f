//! `shmstore`: look after the shared-memory regions of this host.
//!
//! `list`, `inspect`, `get`, `set`, `watch`, `rm`, `gc`, `header` (DESIGN §9) and `compat`. Every
//! subcommand reads
//! regions through the library's read-only [`shmstore::inspect::Inspector`]: it never locks a
//! region, so it cannot disturb the processes that use it. A region is given by its location as
//! [`shmstore::Location::parse`] reads it: a POSIX name, a file path (any text with a `/`), or
//! a System V key (`sysv:0x5eed0001`). Exit codes: 0 success, 1 error (one line
//! on stderr starting with `shmstore: `), 2 usage.

// The subcommands live in the library (src/lib.rs), where the fuzz targets reach them too.
use shmstore_cli::{cheader, compat, gc, get, inspect, list, rm, set, watch};

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use shmstore_cli::failure::{Failure, Outcome};
use shmstore_cli::fields::DEFAULT_MAX_ELEMENTS;

#[derive(Parser)]
#[command(
    name = "shmstore",
    version,
    about = "List, inspect, watch, read, change, remove and garbage-collect shmstore regions; \
             write C headers for them",
    after_help = "A region is given by its location: a POSIX name (gateway.limits, in \
                  /dev/shm), a file path (any text with a `/`: ./state.shm, \
                  /var/lib/app/state.shm), or a System V key (sysv:0x5eed0001, or decimal \
                  sysv:1592590337).\n\n\
                  Examples:\n  shmstore list\n  shmstore inspect gateway.limits\n  \
                  shmstore inspect ./state.shm\n  shmstore get gateway.config log_level\n  \
                  shmstore set gateway.config log_level=Debug tls=true\n  \
                  shmstore watch sysv:0x5eed0001\n  \
                  shmstore header gateway.limits -o limits.h"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every object in /dev/shm (regions, queues, and other programs' objects: foreign), and
    /// the System V segments that are regions.
    #[command(
        after_help = "The BACKEND column (\"backend\" in JSON) says posix for /dev/shm and \
                      sysv for a System V segment, named sysv:0x<key>. Other programs' System V \
                      segments are not listed (`ipcs -m` shows them). File regions can be \
                      anywhere and are not searched for: pass the path to inspect \
                      (shmstore inspect ./state.shm).\n\n\
                      Example:\n  shmstore list\n  shmstore list --json"
    )]
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a region's header and every field of its value, decoded from its stored descriptor.
    #[command(after_help = "Example:\n  shmstore inspect gateway.limits\n  \
                            shmstore inspect gateway.limits --json --max-elements 1000\n  \
                            shmstore inspect ./state.shm\n  \
                            shmstore inspect /var/lib/app/state.shm\n  \
                            shmstore inspect sysv:0x5eed0001")]
    Inspect {
        /// The region: a name (as given to Shm::open, without /dev/shm/), a file path (text
        /// with a `/`), or sysv:KEY.
        #[arg(value_name = "LOCATION")]
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Show at most this many elements of each array.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ELEMENTS)]
        max_elements: usize,
    },
    /// Print each new version of a value and the fields it changed, until interrupted.
    #[command(
        after_help = "Values with kinds (text, flags, enums, timestamps, lists) are shown \
                            as inspect shows them: `log_level: Info -> Debug`.\n\n\
                            Example:\n  shmstore watch gateway.limits\n  \
                            shmstore watch gateway.limits --count 1   \
                            # wait for the next change\n  \
                            shmstore watch gateway.config log_level tls   \
                            # only these fields\n  \
                            shmstore watch ./state.shm\n  \
                            shmstore watch sysv:0x5eed0001"
    )]
    Watch {
        /// The region: a name, a file path (text with a `/`), or sysv:KEY.
        #[arg(value_name = "LOCATION")]
        name: String,
        /// Only changes of these fields (`log_level`, `limits.rate`, `peers[1].name`); versions
        /// that change none of them are not shown.
        #[arg(value_name = "FIELD")]
        fields: Vec<String>,
        /// Stop after showing this many changes. Commits published faster than watch reads
        /// them are shown as one change (its line says how many commits it covers), so this
        /// counts changes shown, not commits.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// Show at most this many elements of an array that changed in many places.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ELEMENTS)]
        max_elements: usize,
    },
    /// Print values by their kinds: the named fields, one per line, or every field.
    #[command(
        after_help = "With FIELDs, one value per line: text as it is (unquoted: \
                      NAME=$(shmstore get cfg service_name) gets the text itself, control \
                      characters escaped as \\u{a}, \\u{1b} …), flags true/false, enums by \
                      variant name (`7 (unknown variant)` for a value no variant has), \
                      timestamps in RFC 3339, an absent optional value as none, lists as \
                      [a, b]. Without FIELDs, `field = value` for every field, as inspect \
                      shows them. --json prints one object, field to value (text as strings, \
                      flags as booleans, none as null, an unknown enum value as \
                      {\"unknown_variant\": 7}, a corrupt text or list as {\"error\": \"why\"}). \
                      A value stored wrongly (a length above its capacity, text that is not \
                      UTF-8) is reported on stderr, with exit code 1.\n\n\
                      Example:\n  shmstore get gateway.config service_name\n  \
                      shmstore get gateway.config log_level tls upstream_ports\n  \
                      shmstore get gateway.config 'peers[1].name'\n  \
                      shmstore get gateway.config --json"
    )]
    Get {
        /// The region: a name, a file path (text with a `/`), or sysv:KEY.
        #[arg(value_name = "LOCATION")]
        name: String,
        /// The fields: `log_level`, `limits.rate`, `peers[1].name`; every top-level field
        /// when none is given.
        #[arg(value_name = "FIELD")]
        fields: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change values, parsed by each field's kind, all in one crash-atomic update.
    #[command(
        after_help = "Each VALUE is parsed by its field's kind: a number within the field's \
                      range, text within its capacity (quote it for the shell), true/false for \
                      a flag, a variant's name for an enum, RFC 3339 or `now` for a timestamp, \
                      `none` or the value for an optional value, [a, b] for a list (elements in \
                      double quotes may hold commas). Every assignment is checked before any is \
                      written; then all are committed under the region's lock, as Shm::lock \
                      commits: readers see all of them or none, and a crash in the middle is \
                      rolled back. Prints the new version.\n\n\
                      Example:\n  shmstore set gateway.config log_level=Debug\n  \
                      shmstore set gateway.config tls=true maintenance=false \
                      'upstream_ports=[8080, 8081]'\n  \
                      shmstore set gateway.config service_name=\"billing api\" \
                      updated_at=now request_limit=none\n  \
                      shmstore set --in-place gateway.fast rate=2.5\n  \
                      shmstore set app.hits =42   (a value without fields: a u64, an array)"
    )]
    Set {
        /// The region: a name, a file path (text with a `/`), or sysv:KEY.
        #[arg(value_name = "LOCATION")]
        name: String,
        /// The assignments: FIELD=VALUE (`log_level=Debug`, `peers[1].name=db-2`; `=VALUE`
        /// for a value without fields).
        #[arg(required = true, value_name = "FIELD=VALUE", value_parser = set::parse_assignment)]
        assignments: Vec<(String, String)>,
        /// Allow an in_place region: its readers wait for the commit, and a crash in the middle
        /// of it poisons the region.
        #[arg(long)]
        in_place: bool,
        /// Allow a region that belongs to another user (whoever owns it can change its
        /// descriptor: trust it first).
        #[arg(long)]
        allow_other_owner: bool,
    },
    /// Remove regions by name, file path or System V key (processes that have them open keep
    /// using them).
    #[command(
        after_help = "A file is removed only if it starts with the shmstore magic, and a System V \
                      segment only if it is a shmstore region (ready, or abandoned by a creator \
                      that died), unless --force.\n\n\
                      Example:\n  shmstore rm gateway.limits gateway.routes\n  \
                      shmstore rm ./state.shm\n  \
                      shmstore rm sysv:0x5eed0001\n  \
                      shmstore rm --force some-other-programs-segment"
    )]
    Rm {
        /// The regions to remove: names, file paths (text with a `/`) or sysv:KEY; every one
        /// is tried even if one fails.
        #[arg(required = true, value_name = "LOCATION")]
        names: Vec<String>,
        /// Also remove objects that are not shmstore regions (any file given by its path).
        #[arg(long)]
        force: bool,
    },
    /// Remove regions in /dev/shm whose creator is dead and that no live process uses.
    #[command(
        after_help = "gc covers POSIX regions (/dev/shm) only: it never removes a System V \
                      segment or a file region; remove those with `shmstore rm sysv:KEY` or \
                      `shmstore rm PATH`.\n\n\
                      Example:\n  shmstore gc --dry-run\n  shmstore gc gateway.   \
                      # only regions whose name starts with `gateway.`"
    )]
    Gc {
        /// Only regions whose name starts with this prefix.
        prefix: Option<String>,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also say why each region was kept.
        #[arg(long, short)]
        verbose: bool,
        /// Count processes whose memory maps this user cannot read (other users', or more
        /// privileged ones) as using no region. Without it, any such process keeps every region.
        #[arg(long)]
        ignore_unreadable: bool,
        /// Remove regions even though /proc may not show every process that could use them:
        /// gc runs in a PID namespace other than the host's (a container: processes outside
        /// it may share /dev/shm, as the containers of a Kubernetes pod do, and creator pids
        /// may be another namespace's), or /proc is mounted with hidepid. Without it, gc then
        /// removes nothing. Use it only when no process outside this view can use the regions.
        #[arg(long)]
        ignore_hidden_processes: bool,
    },
    /// Write a C header for the region: its type, the region header, helpers to open, lock and
    /// read.
    #[command(
        after_help = "For a region in a file or a System V segment, map it yourself (mmap, or \
                      shmget + shmat) and pass the mapping to shmstore_from_base.\n\n\
                      Example:\n  shmstore header gateway.limits -o limits.h\n  \
                      cc -std=c11 -Wall app.c -o app -lpthread   # app.c includes \"limits.h\"\n  \
                      shmstore header sysv:0x5eed0001 -o state.h"
    )]
    Header {
        /// The region: a name, a file path (text with a `/`), or sysv:KEY.
        #[arg(value_name = "LOCATION")]
        name: String,
        /// Write to this file instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Dry-run whether another type may share a region: field by field, from another region or
    /// an `inspect --json` dump; exit 0 when compatible, 1 when not.
    #[command(
        after_help = "Fields match by path. Each line says: same; added (only the other type \
                      has it: it reads as its zero value); kept (only the region has it: \
                      writes keep it untouched); widened (a wider integer or float, a longer \
                      text or list capacity, new enum variants: reads lose nothing, and a \
                      write of a value only the wider field holds is refused while the region \
                      keeps the narrower one, as it does after a migration); or incompatible, \
                      with the reason (\"here\" is the other type). A compatible type reads and \
                      writes the region's layout, projected onto its own (`Shm::open` migrates \
                      the region first when that type adds fields). README, \"Changing a \
                      region's type\", gives the rules.\n\n\
                      Example:\n  shmstore compat gateway.config --with gateway.config-next\n  \
                      shmstore inspect gateway.config-next --json > next.json\n  \
                      shmstore compat gateway.config --descriptor next.json --json"
    )]
    Compat {
        /// The region: a name, a file path (text with a `/`), or sysv:KEY.
        #[arg(value_name = "LOCATION")]
        name: String,
        /// The other type: another region's (a name, a file path or sysv:KEY).
        #[arg(
            long,
            value_name = "OTHER",
            conflicts_with = "descriptor",
            required_unless_present = "descriptor"
        )]
        with: Option<String>,
        /// The other type: the descriptor in a `shmstore inspect --json` dump.
        #[arg(long, value_name = "FILE")]
        descriptor: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // Usage errors exit with 2 and --help/--version with 0: clap's defaults.
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match run(cli.command, &mut out) {
        Ok(()) | Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Reported) => ExitCode::FAILURE,
        Err(Failure::Message(message)) => {
            let _ = out.flush();
            eprintln!("shmstore: {}", shmstore_cli::failure::terminal(&message));
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, out: &mut dyn Write) -> Outcome {
    match command {
        Command::List { json } => list::run(json, out),
        Command::Inspect {
            name,
            json,
            max_elements,
        } => inspect::run(&name, json, max_elements, out),
        Command::Watch {
            name,
            fields,
            count,
            max_elements,
        } => watch::run(&name, &fields, count, max_elements, out),
        Command::Get { name, fields, json } => get::run(&name, &fields, json, out),
        Command::Set {
            name,
            assignments,
            in_place,
            allow_other_owner,
        } => set::run(
            &name,
            &assignments,
            set::Options {
                in_place,
                allow_other_owner,
            },
            out,
        ),
        Command::Rm { names, force } => rm::run(&names, force, out),
        Command::Gc {
            prefix,
            dry_run,
            verbose,
            ignore_unreadable,
            ignore_hidden_processes,
        } => {
            let options = gc::Options {
                prefix: prefix.as_deref(),
                dry_run,
                verbose,
                ignore_unreadable,
                ignore_hidden_processes,
            };
            gc::run(&options, out)
        }
        Command::Header { name, output } => cheader::run(&name, output.as_deref(), out),
        Command::Compat {
            name,
            with,
            descriptor,
            json,
        } => {
            let other = match (&with, &descriptor) {
                (Some(region), _) => compat::Other::Region(region),
                (None, Some(file)) => compat::Other::Dump(file),
                // clap requires one of the two.
                (None, None) => {
                    return Err(shmstore_cli::failure::Failure::Message(
                        "give --with OTHER or --descriptor FILE".into(),
                    ))
                }
            };
            compat::run(&name, other, json, out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_a_description_and_an_example() {
        for sub in Cli::command().get_subcommands() {
            assert!(
                sub.get_about().is_some(),
                "{} has no description",
                sub.get_name()
            );
            let after = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                after.contains(&format!("shmstore {}", sub.get_name())),
                "{} has no example",
                sub.get_name()
            );
        }
    }
}
